//! Handing zedinit's own code pages back to the kernel once start-up is over.
//!
//! Why: no other process maps the zedinit binary, so every page of it that PID 1 has
//! touched stays resident and private for the device's lifetime. Start-up (parsing the
//! definitions, building the dependency graph, the first spawns) runs code that the
//! steady state never runs again: ~180 KiB of text, plus the read-only data it used.
//! `MADV_PAGEOUT` reclaims those pages (clean, file-backed: nothing is written), and
//! the steady state faults back only what it runs, which the link order
//! (`zedinit.order`, build.rs) keeps together. Measured with bench/supervisors.py
//! `--only uss` (BENCHMARKS.md, issue 4): 0.97 → ~0.8 MiB with five logging children.
//!
//! The cost is one-off: the steady-state code is read again from the page cache or the
//! image (a few hundred KiB). Android reclaims the file pages of idle apps the same way.
//! A kernel without `MADV_PAGEOUT` (before 5.4) says EINVAL, and nothing changes.

use nix::errno::Errno;

unsafe extern "C" {
    /// The first byte of the executable's ELF header: the start of its first, read-only
    /// segment (headers, rodata). Defined by the linker (lld and GNU ld).
    static __ehdr_start: u8;
    /// The end of the text segment. Defined by the linker.
    static etext: u8;
}

/// The page-aligned range of zedinit's read-only data and code: `[start, end)`.
fn code_range() -> (usize, usize) {
    // Only the addresses of the linker-defined symbols are taken, never their bytes.
    let (start, end) = (
        std::ptr::addr_of!(__ehdr_start) as usize,
        std::ptr::addr_of!(etext) as usize,
    );
    let page = page_size();
    (start & !(page - 1), end.div_ceil(page) * page)
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n)
        .ok()
        .filter(|n| n.is_power_of_two())
        .unwrap_or(4096)
}

/// Asks the kernel to reclaim the pages of zedinit's code and read-only data. Returns
/// the number of bytes of the range advised (not all of them were resident).
pub fn give_back() -> Result<usize, Errno> {
    let (start, end) = code_range();
    let len = end.saturating_sub(start);
    if len == 0 {
        return Ok(0);
    }
    // SAFETY: the range is this executable's own file-backed, read-only mappings;
    // MADV_PAGEOUT only drops their clean pages, which fault back in on use.
    let rc = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_PAGEOUT) };
    if rc == 0 { Ok(len) } else { Err(Errno::last()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_covers_this_code() {
        let (start, end) = code_range();
        let here = the_range_covers_this_code as *const () as usize;
        assert!(start < here && here < end, "{start:#x} {here:#x} {end:#x}");
    }

    #[test]
    fn giving_back_is_harmless_and_code_runs_after_it() {
        let advised = give_back().expect("MADV_PAGEOUT (Linux >= 5.4)");
        assert!(advised > 0);
        // The code this test runs was (possibly) reclaimed: it faults back in.
        let v: Vec<u64> = (0..1000).map(|i| i * i).collect();
        assert_eq!(v.iter().sum::<u64>(), 332_833_500);
    }
}
