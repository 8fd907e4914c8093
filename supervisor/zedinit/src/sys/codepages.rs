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
///
/// With `drop_cached` (once, after start-up), the range's pages also leave the page
/// cache (`MADV_PAGEOUT`: clean pages mapped by no one else are dropped) and its
/// read-ahead is turned off (`MADV_RANDOM`). Why: the kernel maps a whole window of
/// cached pages around each code fault (fault-around, 64 KiB; a whole large folio on
/// kernels that cache files in large folios: 128 KiB here), so while the whole binary
/// is cached, each page the steady state runs keeps its neighbours resident too
/// (measured: 128 KiB of rodata and ~200 KiB of text after `MADV_DONTNEED` alone).
/// Once only what runs is cached, one page at a time, a fault maps little more than
/// itself. The price: what the steady state runs is read back from the file once
/// (major faults, right after start-up), and so is a rarer path (a restart, a verb)
/// the first time it runs; after that every give-back is `MADV_DONTNEED` again and
/// those pages come back as minor faults. Measured in BENCHMARKS.md (issue 16).
pub fn give_back(drop_cached: bool) -> Result<usize, Errno> {
    let (start, end) = code_range();
    let len = end.saturating_sub(start);
    if len == 0 {
        return Ok(0);
    }
    if drop_cached {
        // SAFETY: advice only, on this executable's own read-only file mappings (see
        // below): MADV_RANDOM changes read-ahead; MADV_PAGEOUT drops clean pages, which
        // fault back from the file on use.
        unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_RANDOM) };
        // SAFETY: as above.
        let rc = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_PAGEOUT) };
        if rc == 0 {
            return Ok(len);
        }
        // A kernel before 5.4 has no MADV_PAGEOUT: unmapping still helps.
    }
    // SAFETY: the range is this executable's own file-backed, read-only mappings (ELF
    // headers and rodata up to the end of text: RELRO and data come after `etext`);
    // never written, so MADV_DONTNEED loses nothing and each page faults back from the
    // file on use.
    let rc = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
    if rc == 0 { Ok(len) } else { Err(Errno::last()) }
}

/// Hands back the pages of the calling thread's stack below its stack pointer: start-up's
/// deep calls (parsers, the first spawns) and one-off work (a restart, a `status
/// --json`) left them dirty, and an anonymous page stays resident until it is unmapped
/// (measured: 48 KiB of PID 1's main stack, BENCHMARKS.md, issue 16). Called from the
/// event loop's top, where the stack is shallow; what the steady state uses below it
/// faults back in as zero pages. Returns the bytes advised.
pub fn give_back_stack() -> Result<usize, Errno> {
    // An address in this frame: everything a page below it is unused (the x86-64 red
    // zone is 128 bytes, and the page margin covers the calls made from here).
    let marker = 0u8;
    let sp = std::ptr::addr_of!(marker) as usize;
    let page = page_size();
    let Some(low) = stack_low(sp) else {
        return Ok(0);
    };
    let end = (sp & !(page - 1)).saturating_sub(page);
    if end <= low {
        return Ok(0);
    }
    // SAFETY: `[low, end)` is in this thread's stack mapping, entirely below the current
    // stack pointer less a page: no live frame is there (this thread's frames are above
    // `sp`; no other thread runs on this stack, and nothing else lives in it). MADV_DONTNEED on a private
    // anonymous mapping makes the next touch a fresh zero page, which is what an
    // unused stack page may hold.
    let rc = unsafe { libc::madvise(low as *mut libc::c_void, end - low, libc::MADV_DONTNEED) };
    if rc == 0 {
        Ok(end - low)
    } else {
        Err(Errno::last())
    }
}

/// The low end of the mapping that holds `sp`, if it is a private, writable, anonymous
/// one (the main thread's `[stack]`, a thread's mmap'd stack), from /proc/self/maps.
fn stack_low(sp: usize) -> Option<usize> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|l| {
        let mut fields = l.split_whitespace();
        let (lo, hi) = fields.next()?.split_once('-')?;
        let (lo, hi) = (
            usize::from_str_radix(lo, 16).ok()?,
            usize::from_str_radix(hi, 16).ok()?,
        );
        let perms = fields.next()?;
        // offset, device, inode, then the path: none, or "[stack]".
        let path = fields.nth(3).unwrap_or("");
        let anonymous = path.is_empty() || path == "[stack]";
        (lo <= sp && sp < hi && perms == "rw-p" && anonymous).then_some(lo)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_the_cached_code_is_harmless_and_code_runs_after_it() {
        let advised = give_back(true).expect("MADV_PAGEOUT");
        assert!(advised > 0);
        let v: Vec<u64> = (0..1000).map(|i| i * i).collect();
        assert_eq!(v.iter().sum::<u64>(), 332_833_500);
    }

    #[test]
    fn the_range_covers_this_code() {
        let (start, end) = code_range();
        let here = the_range_covers_this_code as *const () as usize;
        assert!(start < here && here < end, "{start:#x} {here:#x} {end:#x}");
    }

    /// Resident kB of the mapping holding `addr` (/proc/self/smaps).
    fn resident_kb(addr: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if let Some((lo, hi)) = first.split_once('-') {
                if let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                {
                    inside = lo <= addr && addr < hi;
                    continue;
                }
            }
            if inside && line.starts_with("Rss:") {
                return line.split_whitespace().nth(1).unwrap().parse().unwrap();
            }
        }
        panic!("no mapping holds {addr:#x}");
    }

    /// Dirties `depth` × 16 KiB of stack below the caller, then returns.
    #[inline(never)]
    fn deep(depth: u32) -> u64 {
        let mut frame = [0u8; 16 * 1024];
        for (i, b) in frame.iter_mut().enumerate() {
            *b = i as u8;
        }
        let here = std::hint::black_box(&frame)
            .iter()
            .map(|b| u64::from(*b))
            .sum::<u64>();
        if depth == 0 {
            here
        } else {
            here + deep(depth - 1)
        }
    }

    #[test]
    fn the_stack_below_the_caller_goes_back_and_is_usable_again() {
        let marker = 0u8;
        let sp = std::ptr::addr_of!(marker) as usize;
        std::hint::black_box(deep(32)); // 512 KiB of stack dirtied, then unused
        let before = resident_kb(sp);
        assert!(before >= 512, "the recursion dirtied only {before} kB");
        let advised = give_back_stack().expect("MADV_DONTNEED");
        assert!(advised >= 512 * 1024, "{advised}");
        let after = resident_kb(sp);
        assert!(
            after + 400 <= before,
            "{before} kB resident before, {after} after"
        );
        // What was given back is zero pages now, and runs as before.
        let again = deep(32);
        assert_eq!(again, deep(32));
        let frame_sum: u64 = (0..16 * 1024).map(|i| u64::from(i as u8)).sum();
        assert_eq!(again, 33 * frame_sum);
    }

    #[test]
    fn giving_back_is_harmless_and_code_runs_after_it() {
        let advised = give_back(false).expect("MADV_DONTNEED");
        assert!(advised > 0);
        // The code this test runs was unmapped: it faults back in.
        let v: Vec<u64> = (0..1000).map(|i| i * i).collect();
        assert_eq!(v.iter().sum::<u64>(), 332_833_500);
    }
}
