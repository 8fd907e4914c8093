//! Syscalls for a child between clone and exec: the kernel's calls, made directly, that
//! return the error instead of setting `errno`.
//!
//! A child cloned with `CLONE_VM` (`sys/launch.rs`) runs in zedinit's address space with
//! the thread pointer of zedinit's main thread: glibc's wrappers would write `errno`
//! (a thread-local of zedinit's, read by zedinit at the same time), and some do more
//! than the syscall (setresuid and friends signal every thread glibc knows of). So
//! everything the child does goes through [`syscall`] here: registers in, a register
//! out, no memory of its own. On x86_64 and aarch64 it is the syscall instruction; on
//! other architectures (where children are always forked, never `CLONE_VM`) glibc's
//! `syscall(2)` and its errno, which a forked child owns.

use std::ffi::c_long;

/// A syscall's result: the value, or the errno as `Err`.
pub type Ret = Result<usize, i32>;

/// The kernel returns -4095..-1 for an error (its errno, negated).
fn result(ret: isize) -> Ret {
    if (-4095..0).contains(&ret) {
        Err(-ret as i32)
    } else {
        Ok(ret as usize)
    }
}

/// Syscall `nr` with up to six arguments (unused ones 0).
///
/// # Safety
/// The arguments must be valid for syscall `nr` (pointers to memory that outlives the
/// call, of the sizes the kernel reads or writes).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn syscall(nr: c_long, a: [usize; 6]) -> Ret {
    let ret: isize;
    // SAFETY: the syscall instruction clobbers rcx and r11 only (and rax, the result);
    // the caller vouches for the arguments. No stack is used.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    result(ret)
}

/// Syscall `nr` with up to six arguments (unused ones 0).
///
/// # Safety
/// As for x86_64.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub unsafe fn syscall(nr: c_long, a: [usize; 6]) -> Ret {
    let ret: isize;
    // SAFETY: `svc 0` takes the number in x8 and arguments in x0..x5, returns in x0 and
    // clobbers nothing else; the caller vouches for the arguments.
    unsafe {
        std::arch::asm!(
            "svc 0",
            in("x8") nr,
            inlateout("x0") a[0] as isize => ret,
            in("x1") a[1],
            in("x2") a[2],
            in("x3") a[3],
            in("x4") a[4],
            in("x5") a[5],
            options(nostack),
        );
    }
    result(ret)
}

/// Syscall `nr` through glibc (only ever called in a forked child or in zedinit).
///
/// # Safety
/// As for x86_64.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub unsafe fn syscall(nr: c_long, a: [usize; 6]) -> Ret {
    // SAFETY: the caller vouches for the arguments.
    let ret = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if ret < 0 {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(ret as usize)
    }
}

/// Shorthand for the common case of integer-only arguments.
///
/// # Safety
/// As [`syscall`].
#[inline(always)]
pub unsafe fn call(nr: c_long, args: &[usize]) -> Ret {
    let mut a = [0usize; 6];
    for (slot, arg) in a.iter_mut().zip(args) {
        *slot = *arg;
    }
    // SAFETY: the caller vouches for the arguments.
    unsafe { syscall(nr, a) }
}

/// As `Ret`, for calls whose result is 0 or an errno.
pub fn unit(r: Ret) -> Result<(), i32> {
    r.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_and_errors_come_back_as_the_kernel_gives_them() {
        // SAFETY: getpid takes no arguments.
        let pid = unsafe { call(libc::SYS_getpid, &[]) };
        assert_eq!(pid, Ok(std::process::id() as usize));
        // SAFETY: close of an fd number that cannot be open.
        let closed = unsafe { call(libc::SYS_close, &[1_000_000]) };
        assert_eq!(closed, Err(libc::EBADF));
    }
}
