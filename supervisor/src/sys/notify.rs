//! Per-service notify sockets (`NOTIFY_SOCKET`, sd_notify(3) style): a datagram socket
//! for each service with `[ready] notify = true`, at `<dir>/<service>.sock`. Senders are
//! identified by SO_PASSCRED credentials, checked by the core against the service.

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, UnixCredentials, recvmsg, setsockopt, sockopt::PassCred,
};
use std::collections::BTreeMap;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Longest notify message read; longer ones are truncated (sd_notify messages are short).
const MAX_MESSAGE: usize = 4096;

pub struct NotifySockets {
    dir: PathBuf,
    sockets: BTreeMap<String, UnixDatagram>,
    /// Sockets made since the event loop last registered them.
    fresh: Vec<String>,
}

impl NotifySockets {
    pub fn new(dir: PathBuf) -> Self {
        NotifySockets {
            dir,
            sockets: BTreeMap::new(),
            fresh: Vec::new(),
        }
    }

    pub fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.sock"))
    }

    /// The service's socket path, made on first use (and kept across its restarts).
    pub fn ensure(&mut self, name: &str) -> Result<PathBuf, String> {
        let path = self.path_of(name);
        if self.sockets.contains_key(name) {
            return Ok(path);
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        // Only root reaches the sockets by their path; each service reaches its own
        // through the bind zedinit puts in its root.
        let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700));
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path)
            .map_err(|e| format!("notify socket {}: {e}", path.display()))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| format!("notify socket: {e}"))?;
        setsockopt(&socket, PassCred, &true)
            .map_err(|e| format!("notify socket SO_PASSCRED: {e}"))?;
        // The service may run under another uid (issue 4): it must be able to send.
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666));
        self.sockets.insert(name.to_string(), socket);
        self.fresh.push(name.to_string());
        Ok(path)
    }

    pub fn take_fresh(&mut self) -> Vec<String> {
        std::mem::take(&mut self.fresh)
    }

    pub fn fd(&self, name: &str) -> Option<BorrowedFd<'_>> {
        self.sockets.get(name).map(|s| s.as_fd())
    }

    pub fn remove(&mut self, name: &str) {
        if self.sockets.remove(name).is_some() {
            let _ = std::fs::remove_file(self.path_of(name));
        }
    }

    /// Every datagram waiting on the service's socket, with the sender's pid.
    pub fn receive(&self, name: &str) -> Vec<(Option<i32>, String)> {
        let Some(socket) = self.sockets.get(name) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            let mut cmsg = nix::cmsg_space!(UnixCredentials);
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = match recvmsg::<()>(
                socket.as_raw_fd(),
                &mut iov,
                Some(cmsg.as_mut_slice()),
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC,
            ) {
                Ok(msg) => msg,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            };
            let mut sender = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmCredentials(creds) = c {
                        sender = Some(creds.pid());
                    }
                }
            }
            let len = msg.bytes.min(MAX_MESSAGE);
            out.push((sender, String::from_utf8_lossy(&buf[..len]).into_owned()));
        }
        out
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
