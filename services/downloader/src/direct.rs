//! The `.part`'s direct receiver, for a plain-`http` body ([`crate::plain`]): the bytes
//! go from the socket into the file without passing through this process's memory, and
//! are hashed from the file's own pages.
//!
//! Why: with reqwest, every byte is copied twice on our side, kernel → hyper's buffer
//! (`recv`) and buffer → page cache (`pwritev` on the writer thread), ~0.4 CPU-s per GiB
//! each with hyper's and the batching's own work (BENCHMARKS.md, issue 16). Here
//! `splice(2)` moves the socket's pages into a pipe by reference and from the pipe into
//! the file: one copy (pipe → page cache), made by the kernel on the receiving task. The
//! hashing thread reads the written range through a read-only `mmap` of the file: no
//! copy, and the pages are usually still in the cache from the write.
//!
//! The file only ever grows by written bytes (no mapping is written, nothing is
//! preallocated): a crash leaves a `.part` holding a prefix of the body, as the
//! [`crate::pipeline`] path does.

use crate::part::Locked;
use crate::pipeline::{Sink, Stage};
use nix::libc;
use sha2::{Digest, Sha256};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// The pipe between socket and file. 1 MiB is the largest an unprivileged process may
/// ask for (`/proc/sys/fs/pipe-max-size`); with the default 64 KiB every splice moves
/// 16 times less.
const PIPE_BYTES: usize = 1 << 20;
/// The hashing thread is told about new bytes once this many have arrived (one wake-up
/// per 2 MiB, as the pipeline's batches).
const NOTIFY_BYTES: u64 = 2 << 20;
/// The hashing thread maps the file in windows of this size (aligned): one `mmap` and
/// one `munmap` (a TLB flush on every CPU running this process) per 64 MiB.
const WINDOW_BYTES: u64 = 64 << 20;
/// Notices queued for the hashing thread; when it's full, a notice is skipped (the
/// next one covers the same bytes and more).
const QUEUE_NOTICES: usize = 8;

/// What went wrong while receiving: the socket's side or the file's.
#[derive(Debug)]
pub enum ReceiveError {
    Socket(io::Error),
    File(io::Error),
}

/// A pipe and the hashing thread, held by the `.part` while a plain body comes in.
pub struct Direct {
    file: Arc<Locked>,
    pipe_read: OwnedFd,
    pipe_write: OwnedFd,
    pipe_bytes: usize,
    /// The file's length: everything before it is written.
    written: u64,
    /// What the hashing thread was last told to hash up to.
    told: u64,
    hasher: Stage<u64, Sha256>,
}

impl Direct {
    /// Starts receiving into `file` at `offset`; `hasher` covers the bytes before it.
    pub fn start(file: Arc<Locked>, offset: u64, hasher: Sha256) -> io::Result<Direct> {
        let (pipe_read, pipe_write) = pipe()?;
        // SAFETY: F_SETPIPE_SZ on a pipe we own; no memory is passed.
        let set = unsafe { libc::fcntl(pipe_write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES) };
        // Refused (a lowered pipe-max-size): the default size works, only slower.
        let pipe_bytes = usize::try_from(set).unwrap_or(64 << 10);
        let hashing = Hashing {
            file: file.clone(),
            hashed: offset,
            hasher,
            window: None,
        };
        Ok(Direct {
            file,
            pipe_read,
            pipe_write,
            pipe_bytes,
            written: offset,
            told: offset,
            hasher: Stage::start_with("part-hasher", hashing, QUEUE_NOTICES)?,
        })
    }

    /// The file's length (everything received is in it).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes `data` (body bytes that came in with the response head) at the end.
    pub fn put(&mut self, data: &[u8]) -> io::Result<()> {
        let mut rest = data;
        while !rest.is_empty() {
            let at = i64::try_from(self.written).map_err(|_| too_large())?;
            match nix::sys::uio::pwrite(self.file.as_fd(), rest, at) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    rest = &rest[n..];
                    self.written += n as u64;
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.notify(false);
        Ok(())
    }

    /// Waits for bytes on `socket` and moves up to `max` of them into the file; returns
    /// how many (0: the server closed the connection). Cancel-safe: a dropped call has
    /// moved nothing, or everything it took from the socket is in the file.
    pub async fn receive(&mut self, socket: &TcpStream, max: u64) -> Result<usize, ReceiveError> {
        let want = usize::try_from(max)
            .unwrap_or(usize::MAX)
            .min(self.pipe_bytes);
        let (from, to) = (socket.as_raw_fd(), self.pipe_write.as_raw_fd());
        let moved = loop {
            socket.readable().await.map_err(ReceiveError::Socket)?;
            // try_io: an EAGAIN clears the readiness, so the next await really waits.
            match socket.try_io(Interest::READABLE, || {
                splice(from, None, to, want, libc::SPLICE_F_NONBLOCK)
            }) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(ReceiveError::Socket(e)),
            }
        };
        // The pipe now holds exactly `moved` bytes (it was empty): all go to the file
        // before returning, with no await in between (a cancel can't leave any there).
        let mut left = moved;
        while left > 0 {
            let mut at =
                i64::try_from(self.written).map_err(|_| ReceiveError::File(too_large()))?;
            let n = splice(
                self.pipe_read.as_raw_fd(),
                Some(&mut at),
                self.file.as_raw_fd(),
                left,
                0,
            )
            .map_err(ReceiveError::File)?;
            if n == 0 {
                return Err(ReceiveError::File(io::ErrorKind::WriteZero.into()));
            }
            left -= n;
            self.written += n as u64;
        }
        self.notify(false);
        Ok(moved)
    }

    /// Tells the hashing thread about new bytes, every [`NOTIFY_BYTES`] or `now`.
    fn notify(&mut self, now: bool) {
        if self.written > self.told
            && (now || self.written - self.told >= NOTIFY_BYTES)
            && self.hasher.offer(self.written)
        {
            self.told = self.written;
        }
    }

    /// Waits until the hashing thread has hashed everything written, and has ended;
    /// returns the hasher. Cancel-safe (call it again); once returned, the receiver is
    /// spent.
    pub async fn finish(&mut self) -> io::Result<Sha256> {
        if self.written > self.told {
            let permit = self.hasher.reserve().await?;
            permit.send(self.written);
            self.told = self.written;
        }
        self.hasher.close();
        self.hasher.end.wait().await;
        self.hasher.end.take()
    }
}

/// The hashing thread's state: what it has hashed, and the window of the file it maps.
struct Hashing {
    file: Arc<Locked>,
    hashed: u64,
    hasher: Sha256,
    window: Option<Window>,
}

impl Sink for Hashing {
    type Input = u64;
    type Output = Sha256;

    /// Hashes up to `upto` (the file's length when the notice was sent).
    fn consume(&mut self, upto: u64) -> io::Result<()> {
        while self.hashed < upto {
            let start = self.hashed - self.hashed % WINDOW_BYTES;
            if self.window.as_ref().is_none_or(|w| w.start != start) {
                // The old mapping goes first: one window mapped at a time.
                self.window = None;
                self.window = Some(Window::map(&self.file, start)?);
            }
            let Some(window) = &self.window else {
                break;
            };
            let end = upto.min(start + WINDOW_BYTES);
            // Both within the window: offsets below WINDOW_BYTES.
            let (from, to) = ((self.hashed - start) as usize, (end - start) as usize);
            self.hasher.update(&window.bytes()[from..to]);
            self.hashed = end;
        }
        Ok(())
    }

    fn end(self) -> Sha256 {
        self.hasher
    }
}

/// A read-only shared mapping of `WINDOW_BYTES` of the file from `start`.
struct Window {
    start: u64,
    addr: *mut libc::c_void,
}

// SAFETY: the mapping is read-only memory owned by this value; moving it to the
// hashing thread moves its only user.
unsafe impl Send for Window {}

impl Window {
    fn map(file: &std::fs::File, start: u64) -> io::Result<Window> {
        let offset = libc::off_t::try_from(start).map_err(|_| too_large())?;
        // SAFETY: a new mapping chosen by the kernel (no address given), of a file we
        // hold open; nothing else in the process is touched.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                WINDOW_BYTES as usize,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                offset,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Window { start, addr })
    }

    /// The whole window. Only the part below the file's length may be read (a page
    /// past the end of the file raises SIGBUS): [`Hashing::consume`] reads only bytes
    /// that were written, and the file never shrinks while the thread runs (the `.part`
    /// is locked, and truncating it settles the receiver first).
    fn bytes(&self) -> &[u8] {
        // SAFETY: `addr` is a live mapping of WINDOW_BYTES readable bytes until drop;
        // the caller keeps to the written part (see above).
        unsafe { std::slice::from_raw_parts(self.addr.cast::<u8>(), WINDOW_BYTES as usize) }
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`, no longer borrowed (`bytes`
        // borrows `self`).
        unsafe {
            libc::munmap(self.addr, WINDOW_BYTES as usize);
        }
    }
}

/// `splice(2)` of up to `len` bytes; `offset`: the file position to write at (the
/// file's own offset is left alone, as `pwritev` does). EINTR is retried.
fn splice(
    from: RawFd,
    offset: Option<&mut i64>,
    to: RawFd,
    len: usize,
    flags: u32,
) -> io::Result<usize> {
    let out = offset.map_or(std::ptr::null_mut(), |o| o as *mut i64);
    loop {
        // SAFETY: plain descriptors; `out` is null or points to a live i64 (loff_t).
        let n = unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                out,
                len,
                flags | libc::SPLICE_F_MOVE,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A pipe (read end, write end), close-on-exec.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills the two-element array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and belong to nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn too_large() -> io::Error {
    io::ErrorKind::FileTooLarge.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A file received in two parts (bytes with the head, then the socket's), over
    /// several windows' worth of notices, from a kept prefix.
    #[tokio::test]
    async fn receives_and_hashes_everything_from_the_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"kept|").expect("write");
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open");
        let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .expect("lock");
        let mut kept = Sha256::new();
        kept.update(b"kept|");
        let mut d = Direct::start(Arc::new(Locked::from(lock)), 5, kept).expect("start");

        let body: Vec<u8> = (0..(3 * 1024 * 1024 + 12345u32))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let sent = body[100..].to_vec();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            s.write_all(&sent).await.expect("send");
        });
        let socket = TcpStream::connect(addr).await.expect("connect");
        d.put(&body[..100]).expect("put");
        let mut left = (body.len() - 100) as u64;
        while left > 0 {
            let n = d.receive(&socket, left).await.expect("receive");
            assert!(n > 0, "closed early");
            left -= n as u64;
        }
        server.await.expect("server");
        assert_eq!(d.written(), 5 + body.len() as u64);
        let hasher = d.finish().await.expect("finish");
        let mut expected = b"kept|".to_vec();
        expected.extend_from_slice(&body);
        assert_eq!(std::fs::read(&path).expect("read"), expected);
        assert_eq!(hasher.finalize(), Sha256::digest(&expected));
    }
}
