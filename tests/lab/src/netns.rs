//! Network namespaces from a test's threads: setns(2) changes only the calling
//! thread's namespace, so work in a namespace runs on a thread of its own.

use std::fs::File;
use std::os::fd::AsFd;
use std::process::Child;

/// Runs `f` on a thread that has entered network namespace `ns` (`ip netns` name).
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        enter_netns(&path);
        f()
    })
    .join()
    .expect("netns thread")
}

/// Moves the calling thread into the network namespace at `path` (a thread that exists
/// only to work there).
pub fn enter_netns(path: &str) {
    let fd = File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    nix::sched::setns(fd.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("setns {path}: {e}"));
}

/// SIGKILL to a child's process group (it was started as a group leader), then reaps it.
pub fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.wait();
}
