//! The `.part`'s append pipeline: the chunks a download receives are hashed on one
//! thread and written on another, both fed the same chunks by refcount (no copy), in
//! batches, through bounded channels.
//!
//! Why two threads: per GiB, hashing costs ~0.7 CPU-s (SHA-NI, the hardware's speed),
//! writing 0.5–1 (into a tmpfs: page allocation and copy) and receiving ~0.3. Hashing
//! on the receiving task leaves receive + hash (~1 s) as one serial path; on threads of
//! their own the three overlap and the scheduler spreads them, with the server when it
//! is local, over the CPUs. Measured with `bench/downloads.py` (issue 5: 1 GiB from
//! nginx on loopback, two CPUs): hashing on the receiving task ~870 MiB/s, on the
//! writer's thread ~870, on its own thread ~1,030.
//!
//! Why not `tokio::fs::File`: it hands every write to the blocking pool (a
//! `spawn_blocking` round trip per ~70 KB chunk: ~57,000 futex and 15,000 epoll
//! wake-ups per GiB), copies each chunk into its own buffer first, and keeps one write
//! in flight, so receiving waits for the disk. Here a batch costs one wake-up per
//! thread and one `pwritev`.
//!
//! Backpressure: each thread's queue holds a few batches; the receiving task waits when
//! either is full, so a slow disk slows the download instead of filling the memory.
//!
//! Errors: the writer stops at the first failed write (nothing is written after it: the
//! file holds a prefix of what was pushed) and closes its queue; the next
//! [`Pipeline::push`], or [`Pipeline::finish`], returns that error.

use bytes::Bytes;
use nix::errno::Errno;
use sha2::{Digest, Sha256};
use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Chunks go to the threads in batches of about this many bytes: one wake-up and one
/// `pwritev` per batch, not per chunk (hyper's chunks are 8–400 KiB). 128 KiB to 1 MiB
/// measured the same; 2 MiB halves the context switches against 512 KiB and measured
/// 4–12 % faster in two interleaved runs on a busy host (BENCHMARKS.md, issue 5), where
/// the CPU is what limits.
const BATCH_BYTES: usize = 2 << 20;
/// `pwritev` takes at most IOV_MAX (1024) slices; tiny chunks (a slow link) stop here.
const BATCH_CHUNKS: usize = 256;
/// A batch older than this goes out with the next chunk even if small: on a slow link
/// the `.part` keeps growing (what a crash keeps) instead of waiting for 2 MiB.
const BATCH_AGE: Duration = Duration::from_millis(200);
/// Batches queued per thread: with the one each is working on and the one being
/// filled, about 10 MiB in flight at most per download.
const QUEUE_BATCHES: usize = 3;

/// One batch, shared by both threads; the chunks are freed when both are done with it.
type Shared = Arc<[Bytes]>;

/// Both threads, held by the `.part` while a download appends.
pub struct Pipeline {
    batch: Batch,
    hasher: Stage<Sha256>,
    writer: Stage<()>,
}

impl Pipeline {
    /// Starts the threads: the writer puts every pushed byte into `file` (dropped when
    /// it ends: a shared lock holder lives until then) from `offset` on; `hasher`, which
    /// covers the bytes before `offset`, takes them all in.
    pub fn start<F: AsFd + Send + 'static>(
        file: F,
        offset: u64,
        hasher: Sha256,
    ) -> io::Result<Pipeline> {
        Ok(Pipeline {
            batch: Batch::default(),
            hasher: Stage::start("part-hasher", Hashing(hasher))?,
            writer: Stage::start("part-writer", Writing { file, offset })?,
        })
    }

    /// Queues `chunk` after everything pushed before. Waits only while a queue is
    /// full. An error is the writer's (it stopped at a failed write): push no more.
    pub async fn push(&mut self, chunk: Bytes) -> io::Result<()> {
        if self.batch.add(chunk) {
            self.send_batch().await?;
        }
        Ok(())
    }

    /// Hands over what is left and waits until both threads are done: every pushed
    /// byte is in the file (not yet on disk: the commit fsyncs), and the writer's
    /// descriptor is closed. Returns the hasher, now covering all of it. Cancel-safe
    /// (call it again); once it has returned, the pipeline is spent.
    pub async fn finish(&mut self) -> io::Result<Sha256> {
        if !self.batch.is_empty() {
            self.send_batch().await?;
        }
        self.writer.close();
        self.hasher.close();
        tokio::join!(self.writer.end.wait(), self.hasher.end.wait());
        let written = self.writer.end.take();
        let hashed = self.hasher.end.take();
        written?;
        hashed
    }

    /// Sends the batch being filled to both threads. Cancel-safe: both slots are
    /// reserved before the batch leaves `self`, so a dropped future loses nothing.
    async fn send_batch(&mut self) -> io::Result<()> {
        let to_writer = self.writer.reserve().await?;
        let to_hasher = self.hasher.reserve().await?;
        let batch = self.batch.take();
        to_hasher.send(batch.clone());
        to_writer.send(batch);
        Ok(())
    }
}

/// The chunks gathered for the next send.
#[derive(Default)]
struct Batch {
    chunks: Vec<Bytes>,
    bytes: usize,
    started: Option<Instant>,
}

impl Batch {
    /// Adds `chunk`; true when the batch should go now.
    fn add(&mut self, chunk: Bytes) -> bool {
        let started = *self.started.get_or_insert_with(Instant::now);
        self.bytes += chunk.len();
        self.chunks.push(chunk);
        self.bytes >= BATCH_BYTES
            || self.chunks.len() >= BATCH_CHUNKS
            || started.elapsed() >= BATCH_AGE
    }

    fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    fn take(&mut self) -> Shared {
        self.bytes = 0;
        self.started = None;
        std::mem::take(&mut self.chunks).into()
    }
}

/// What a thread does with the batches, in order, and what it gives back at the end.
trait Sink: Send + 'static {
    type Output: Send + 'static;
    fn consume(&mut self, batch: &[Bytes]) -> io::Result<()>;
    fn end(self) -> Self::Output;
}

struct Hashing(Sha256);

impl Sink for Hashing {
    type Output = Sha256;

    fn consume(&mut self, batch: &[Bytes]) -> io::Result<()> {
        for chunk in batch {
            self.0.update(chunk);
        }
        Ok(())
    }

    fn end(self) -> Sha256 {
        self.0
    }
}

struct Writing<F> {
    file: F,
    offset: u64,
}

impl<F: AsFd + Send + 'static> Sink for Writing<F> {
    type Output = ();

    fn consume(&mut self, batch: &[Bytes]) -> io::Result<()> {
        self.offset = write_batch(&self.file, self.offset, batch)?;
        Ok(())
    }

    /// The file is closed here, before the thread reports: no write after `finish`.
    fn end(self) {}
}

/// Writes all of `batch` at `offset` with `pwritev`, continuing after short writes;
/// returns the offset after it. Positioned writes: the file offset, shared with the
/// lock's descriptor, plays no part.
fn write_batch(file: impl AsFd, offset: u64, batch: &[Bytes]) -> io::Result<u64> {
    let mut slices: Vec<IoSlice<'_>> = batch.iter().map(|c| IoSlice::new(c)).collect();
    let mut rest = &mut slices[..];
    let mut offset = offset;
    while !rest.is_empty() {
        let at = i64::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::FileTooLarge))?;
        match nix::sys::uio::pwritev(&file, rest, at) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                offset += n as u64;
                IoSlice::advance_slices(&mut rest, n);
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(offset)
}

/// A thread running one [`Sink`], and its queue.
struct Stage<T> {
    /// `None` once closed: the thread then ends after the batches queued.
    tx: Option<mpsc::Sender<Shared>>,
    end: End<T>,
}

/// How far the thread's own end is known. Kept in the stage, not in a future, so that a
/// cancelled wait loses nothing and the next one picks up where it was.
enum End<T> {
    /// The result comes once the thread has dropped its sink (and so closed its file).
    Running(oneshot::Receiver<io::Result<T>>),
    Ended(io::Result<T>),
    Taken,
}

impl<T: Send + 'static> Stage<T> {
    fn start<S: Sink<Output = T>>(name: &str, sink: S) -> io::Result<Stage<T>> {
        let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
        let (done_tx, done) = oneshot::channel();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let result = run(sink, rx);
                // Nobody waiting (the download was dropped): nothing to report to.
                let _ = done_tx.send(result);
            })?;
        Ok(Stage {
            tx: Some(tx),
            end: End::Running(done),
        })
    }

    /// A slot in the queue, waiting while it is full; the thread's error if it stopped.
    async fn reserve(&mut self) -> io::Result<mpsc::Permit<'_, Shared>> {
        let Some(tx) = &self.tx else {
            return Err(already_finished());
        };
        match tx.reserve().await {
            Ok(permit) => Ok(permit),
            // The thread dropped its queue: it failed, and says why at its end.
            Err(_) => {
                self.end.wait().await;
                Err(match self.end.take() {
                    Err(e) => e,
                    Ok(_) => ended_unexpectedly(),
                })
            }
        }
    }

    /// Closes the queue: the thread ends after the batches queued.
    fn close(&mut self) {
        self.tx = None;
    }
}

impl<T> End<T> {
    /// Waits for the thread to end. Cancel-safe.
    async fn wait(&mut self) {
        if let End::Running(done) = self {
            let result = done.await.unwrap_or_else(|_| Err(ended_unexpectedly()));
            *self = End::Ended(result);
        }
    }

    /// The thread's result, once [`Self::wait`] has returned; only once.
    fn take(&mut self) -> io::Result<T> {
        match std::mem::replace(self, End::Taken) {
            End::Ended(result) => result,
            End::Running(done) => {
                *self = End::Running(done);
                Err(io::Error::other("a .part pipeline thread is still running"))
            }
            End::Taken => Err(already_finished()),
        }
    }
}

/// The thread's body: every batch in order until the queue closes, or the first error
/// (returning drops the queue, so the sender learns at once, and the sink).
fn run<S: Sink>(mut sink: S, mut rx: mpsc::Receiver<Shared>) -> io::Result<S::Output> {
    while let Some(batch) = rx.blocking_recv() {
        sink.consume(&batch)?;
    }
    Ok(sink.end())
}

fn ended_unexpectedly() -> io::Error {
    io::Error::other("a .part pipeline thread ended unexpectedly")
}

fn already_finished() -> io::Error {
    io::Error::other("the .part pipeline is already finished")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    #[tokio::test]
    async fn writes_and_hashes_everything_in_order_from_the_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"kept|").expect("write");
        let file = File::options().write(true).open(&path).expect("open");
        let mut kept = Sha256::new();
        kept.update(b"kept|");
        let mut p = Pipeline::start(file, 5, kept).expect("start");
        let mut expected = b"kept|".to_vec();
        // Enough chunks for several full batches, then a partial one.
        for i in 0..200u32 {
            let chunk = vec![(i % 251) as u8; 7000 + i as usize];
            expected.extend_from_slice(&chunk);
            p.push(Bytes::from(chunk)).await.expect("push");
        }
        let hasher = p.finish().await.expect("finish");
        assert_eq!(std::fs::read(&path).expect("read"), expected);
        assert_eq!(hasher.finalize(), Sha256::digest(&expected));
    }

    #[tokio::test]
    async fn a_cancelled_finish_loses_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let file = File::create(&path).expect("create");
        let mut p = Pipeline::start(file, 0, Sha256::new()).expect("start");
        let mut expected = Vec::new();
        for i in 0..100u32 {
            let chunk = vec![(i % 7) as u8; 30_000];
            expected.extend_from_slice(&chunk);
            p.push(Bytes::from(chunk)).await.expect("push");
        }
        // Dropped at its first wait (a cancelled download), then called again.
        let first = tokio::time::timeout(Duration::ZERO, p.finish()).await;
        let hasher = match first {
            Ok(done) => done.expect("finish"),
            Err(_) => p.finish().await.expect("finish after a cancelled one"),
        };
        assert_eq!(std::fs::read(&path).expect("read"), expected);
        assert_eq!(hasher.finalize(), Sha256::digest(&expected));
    }

    #[tokio::test]
    async fn a_failed_write_is_reported() {
        // /dev/full: every write fails with ENOSPC.
        let file = File::options()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let mut p = Pipeline::start(file, 0, Sha256::new()).expect("start");
        let mut result = Ok(());
        for _ in 0..64 {
            result = p.push(Bytes::from(vec![1u8; 64 << 10])).await;
            if result.is_err() {
                break;
            }
        }
        let err = match result {
            Err(e) => e,
            Ok(()) => p.finish().await.expect_err("finish must fail"),
        };
        assert_eq!(err.raw_os_error(), Some(nix::libc::ENOSPC), "{err}");
    }
}
