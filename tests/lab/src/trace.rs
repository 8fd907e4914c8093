//! ptrace(2) for tests that hold zedinit's children before they exec (as a child stuck
//! in a pre-exec step would be): seize zedinit, catch its next clones in their first
//! stop, then let zedinit go on untraced. Each call panics on failure (test code).

/// ptrace(2) on a stopped (or, for SEIZE/INTERRUPT, any) tracee.
pub fn ptrace(request: libc::c_uint, pid: i32, data: usize) {
    // SAFETY: the requests used here take no address and an integer `data`.
    let r = unsafe { libc::ptrace(request, pid, 0usize, data) };
    assert!(
        r >= 0,
        "ptrace({request}, {pid}): {}",
        std::io::Error::last_os_error()
    );
}

/// Waits for a stop of the traced `pid`; returns the raw wait status.
pub fn wait_stop(pid: i32) -> i32 {
    let mut status = 0;
    // SAFETY: waitpid(2) writes the status into `status`.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    assert_eq!(
        r,
        pid,
        "waitpid({pid}): {}",
        std::io::Error::last_os_error()
    );
    assert!(libc::WIFSTOPPED(status), "{pid} did not stop: {status:#x}");
    status
}

/// Lets the traced (seized with PTRACE_O_TRACEFORK and/or TRACECLONE) `zedinit` run until
/// it has cloned `n` children; returns their pids, each held in its first stop (before
/// anything of its own: before exec). zedinit stays traced: see [`let_go`].
pub fn catch_clones(zedinit: i32, n: usize) -> Vec<i32> {
    let mut pids = Vec::new();
    while pids.len() < n {
        let status = wait_stop(zedinit);
        let event = status >> 16;
        let mut signal = 0;
        if event == libc::PTRACE_EVENT_FORK || event == libc::PTRACE_EVENT_CLONE {
            let mut child: libc::c_ulong = 0;
            // SAFETY: GETEVENTMSG writes the new child's pid into `child`.
            let r = unsafe {
                libc::ptrace(
                    libc::PTRACE_GETEVENTMSG,
                    zedinit,
                    0usize,
                    &mut child as *mut libc::c_ulong,
                )
            };
            assert!(r >= 0, "GETEVENTMSG: {}", std::io::Error::last_os_error());
            pids.push(child as i32);
        } else if event == 0 {
            // A signal for zedinit: it gets it as it would untraced.
            signal = libc::WSTOPSIG(status) as usize;
        }
        ptrace(libc::PTRACE_CONT, zedinit, signal);
    }
    for &child in &pids {
        wait_stop(child);
    }
    pids
}

/// Stops tracing zedinit (it goes on untraced), passing on any signal meant for it.
pub fn let_go(zedinit: i32) {
    ptrace(libc::PTRACE_INTERRUPT, zedinit, 0);
    loop {
        let status = wait_stop(zedinit);
        if status >> 16 == libc::PTRACE_EVENT_STOP {
            break;
        }
        let signal = if status >> 16 == 0 {
            libc::WSTOPSIG(status) as usize
        } else {
            0
        };
        ptrace(libc::PTRACE_CONT, zedinit, signal);
    }
    ptrace(libc::PTRACE_DETACH, zedinit, 0);
}
