//! Handing zedinit's own code pages back to the kernel once start-up is over.
//!
//! Why: no other process maps the zedinit binary, so every page of it that PID 1 has
//! touched stays mapped, resident and private for the device's lifetime. Start-up
//! (parsing the definitions, building the dependency graph, the first spawns) runs code
//! that the steady state never runs again: ~180 KiB of text, plus the read-only data it
//! used. `MADV_DONTNEED` unmaps that range from zedinit: the pages stay in the page
//! cache, unmapped clean file pages (the first the kernel reclaims under pressure), and
//! the steady state maps back only what it runs, which the link order (`zedinit.order`,
//! build.rs) keeps together. Measured with bench/supervisors.py `--only uss`
//! (BENCHMARKS.md, issue 4): 0.97 → ~0.7 MiB with five logging children.
//!
//! Why not `MADV_PAGEOUT`, which frees the page-cache pages as well: a path that runs
//! again later (an orphan storm's reaping, a restart) would then read its code back
//! from disk while PID 1 waits; after `MADV_DONTNEED` it is a minor fault (the orphan
//! storm's drain: 2 minor faults, no difference in the benchmark beyond its noise).
//!
//! Safe for a private file mapping that was never written (text and read-only data, the
//! range below): nothing is lost, the next access maps the file's page again.

use nix::errno::Errno;

unsafe extern "C" {
    /// The first byte of the executable's ELF header: the start of its first, read-only
    /// segment (headers, rodata). Defined by the linker (lld and GNU ld).
    static __ehdr_start: u8;
    /// The end of the text segment. Defined by the linker.
    static etext: u8;
}

/// The page-aligned range of zedinit's read-only data and code: `[start, end)`, never
/// beyond them.
fn code_range() -> (usize, usize) {
    // Only the addresses of the linker-defined symbols are taken, never their bytes.
    let (start, end) = (
        std::ptr::addr_of!(__ehdr_start) as usize,
        std::ptr::addr_of!(etext) as usize,
    );
    let page = page_size();
    // The end rounds down: a partial last page of text stays mapped rather than the
    // range reaching a page of the next, writable, segment (MADV_DONTNEED there would
    // drop written data). The start is the page-aligned ELF header.
    (start & !(page - 1), end & !(page - 1))
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n)
        .ok()
        .filter(|n| n.is_power_of_two())
        .unwrap_or(4096)
}

/// Unmaps zedinit's code and read-only data; what runs next maps its pages again.
/// Returns the number of bytes of the range advised (not all of them were mapped).
pub fn give_back() -> Result<usize, Errno> {
    let (start, end) = code_range();
    let len = end.saturating_sub(start);
    if len == 0 {
        return Ok(0);
    }
    // SAFETY: the range is this executable's own file-backed, read-only mappings (ELF
    // headers and rodata up to the end of text: RELRO and data come after `etext`);
    // never written, so MADV_DONTNEED loses nothing and each page faults back from the
    // file on use.
    let rc = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
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
        let advised = give_back().expect("MADV_DONTNEED");
        assert!(advised > 0);
        // The code this test runs was unmapped: it faults back in.
        let v: Vec<u64> = (0..1000).map(|i| i * i).collect();
        assert_eq!(v.iter().sum::<u64>(), 332_833_500);
    }
}
