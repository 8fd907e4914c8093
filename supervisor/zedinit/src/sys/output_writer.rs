//! The log writer thread: the only code that writes service logs to disk, so a slow
//! disk stalls this thread, never PID 1's loop. The loop hands lines over through a
//! bounded queue; when the queue is full the lines are dropped, counted, and a marker
//! saying how many is written in their place. Files are `<dir>/<service>.log`, rotated
//! by size (`.1` … `.keep`). The thread starts with the first line.

use crate::log;
use crate::output::rotation_renames;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Bytes of lines waiting for the writer before new ones are dropped.
pub const MAX_QUEUED_BYTES: usize = 4 * 1024 * 1024;

/// Where and how one service's file is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilePolicy {
    pub max_size: u64,
    pub keep: u32,
}

/// A batch of one service's lines (read from its pipe at once), joined into one buffer,
/// each line ended by `\n`.
///
/// One buffer, not the loop's `String` per line: the writer thread frees what it is
/// handed, and glibc keeps a thread's most recently freed small blocks in that thread's
/// cache (tcache) for its own next allocations. The writer allocates almost nothing, so
/// the line-sized blocks a flood left in its cache stayed allocated for good, each
/// pinning a page in the middle of the heap the flood had grown (measured, five services
/// writing 100,000 lines each at once: 1,116 KiB of PID 1's heap still resident after
/// the flood, 308 KiB with one buffer a batch; BENCHMARKS.md, issue 16). A flood's
/// batches are larger than the cache's blocks (1 KiB), and at a line a second there is
/// one block a batch, reused by the loop's next one.
struct Entry {
    service: Arc<str>,
    policy: FilePolicy,
    text: Vec<u8>,
}

#[derive(Default)]
struct Queue {
    entries: Vec<Entry>,
    bytes: usize,
    /// Lines dropped per service since the writer last looked.
    dropped: BTreeMap<Arc<str>, (u64, FilePolicy)>,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

pub struct LogWriter {
    dir: PathBuf,
    shared: Arc<Shared>,
    started: bool,
}

impl LogWriter {
    pub fn new(dir: PathBuf) -> Self {
        LogWriter {
            dir,
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                wake: Condvar::new(),
            }),
            started: false,
        }
    }

    /// Queues lines for `service`'s file; never blocks on the disk.
    pub fn push(&mut self, service: &Arc<str>, policy: FilePolicy, mut lines: Vec<String>) {
        if !self.started {
            self.start();
        }
        let Ok(mut q) = self.shared.queue.lock() else {
            return;
        };
        let room = MAX_QUEUED_BYTES.saturating_sub(q.bytes);
        let mut kept_bytes = 0;
        let kept = lines
            .iter()
            .take_while(|l| {
                kept_bytes += l.len() + 1;
                kept_bytes <= room
            })
            .count();
        let dropped = lines.len() - kept;
        if dropped > 0 {
            lines.truncate(kept);
            q.dropped.entry(service.clone()).or_insert((0, policy)).0 += dropped as u64;
        }
        if !lines.is_empty() {
            let mut text = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum::<usize>());
            for line in &lines {
                text.extend_from_slice(line.as_bytes());
                text.push(b'\n');
            }
            q.bytes += text.len();
            q.entries.push(Entry {
                service: service.clone(),
                policy,
                text,
            });
        }
        drop(q);
        self.shared.wake.notify_one();
        // `lines` is freed here, by the loop's thread, whose next batch reuses the blocks.
        drop(lines);
    }

    fn start(&mut self) {
        self.started = true;
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            log::warn(format_args!(
                "log directory {}: {e}; service output is kept in memory only",
                self.dir.display()
            ));
        }
        let shared = self.shared.clone();
        let dir = self.dir.clone();
        let spawned = std::thread::Builder::new()
            .name("zedinit-logs".into())
            .stack_size(64 * 1024)
            .spawn(move || writer_loop(&shared, &dir));
        if let Err(e) = spawned {
            log::warn(format_args!(
                "cannot start the log writer: {e}; service output is kept in memory only"
            ));
        }
    }
}

struct OpenLog {
    file: Option<File>,
    size: u64,
    /// Could not be opened: tried again from then on (a disk mounted late, a full
    /// directory made room).
    retry_at: Option<Instant>,
    /// Lines that could not be written since the last that could, and why: said in the
    /// file itself once writing works again.
    lost_lines: u64,
    lost_why: String,
    /// The last write failed: said in zedinit's log once, not for every batch (on a
    /// full disk the small "lost" marker may fit and the batch after it not).
    failing: bool,
}

/// How long a log file that could not be opened rests before it is tried again.
const REOPEN_AFTER: Duration = Duration::from_secs(30);

/// Bytes written after which the writer, once its queue is empty, gives freed heap
/// back to the kernel: a burst's lines were allocated by PID 1's loop and are freed
/// here, so this is where the heap they used can be returned.
const TRIM_AFTER_BYTES: usize = 16 * 1024;

fn writer_loop(shared: &Shared, dir: &std::path::Path) {
    let mut files: BTreeMap<Arc<str>, OpenLog> = BTreeMap::new();
    let mut since_trim = 0usize;
    loop {
        let (entries, dropped) = {
            let Ok(mut q) = shared.queue.lock() else {
                return;
            };
            if q.entries.is_empty() && q.dropped.is_empty() && since_trim >= TRIM_AFTER_BYTES {
                since_trim = 0;
                // SAFETY: malloc_trim only returns free memory; it is thread-safe.
                unsafe { libc::malloc_trim(0) };
            }
            while q.entries.is_empty() && q.dropped.is_empty() {
                q = match shared.wake.wait(q) {
                    Ok(q) => q,
                    Err(_) => return,
                };
            }
            q.bytes = 0;
            (
                std::mem::take(&mut q.entries),
                std::mem::take(&mut q.dropped),
            )
        };
        for (service, (count, policy)) in dropped {
            let marker = format!(
                "{} zedinit: {count} lines of {service} dropped (the log writer could not keep up)",
                crate::output::utc_timestamp(std::time::SystemTime::now())
            );
            write_line(&mut files, dir, &service, policy, &marker);
        }
        for e in entries {
            since_trim += write_lines(&mut files, dir, &e.service, e.policy, &e.text);
        }
    }
}

/// Writes a batch (whole lines, each ended by `\n`) with as few write(2) calls as
/// rotation allows; returns bytes written.
fn write_lines(
    files: &mut BTreeMap<Arc<str>, OpenLog>,
    dir: &std::path::Path,
    service: &Arc<str>,
    policy: FilePolicy,
    text: &[u8],
) -> usize {
    const CHUNK: usize = 64 * 1024;
    let size_now = |files: &mut BTreeMap<Arc<str>, OpenLog>| {
        files
            .entry(service.clone())
            .or_insert_with(|| open(&dir.join(format!("{service}.log"))))
            .size
    };
    let mut size = size_now(files);
    let mut start = 0;
    for (i, _) in text.iter().enumerate().filter(|(_, b)| **b == b'\n') {
        let end = i + 1;
        let len = end - start;
        // Rotation is decided after each line, so a file always ends on a line boundary.
        if len >= CHUNK || size + len as u64 >= policy.max_size {
            write_out(files, dir, service, policy, &text[start..end]);
            start = end;
            size = size_now(files);
        }
    }
    if start < text.len() {
        write_out(files, dir, service, policy, &text[start..]);
    }
    text.len()
}

fn write_line(
    files: &mut BTreeMap<Arc<str>, OpenLog>,
    dir: &std::path::Path,
    service: &Arc<str>,
    policy: FilePolicy,
    line: &str,
) {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    write_out(files, dir, service, policy, &bytes);
}

/// Appends whole lines to the service's file, then rotates it if it reached its size.
fn write_out(
    files: &mut BTreeMap<Arc<str>, OpenLog>,
    dir: &std::path::Path,
    service: &Arc<str>,
    policy: FilePolicy,
    bytes: &[u8],
) {
    let path = dir.join(format!("{service}.log"));
    let log = files.entry(service.clone()).or_insert_with(|| open(&path));
    let lines = bytes.iter().filter(|b| **b == b'\n').count() as u64;
    if log.file.is_none() && log.retry_at.is_none_or(|t| t <= Instant::now()) {
        let (lost_lines, lost_why) = (log.lost_lines, std::mem::take(&mut log.lost_why));
        *log = open(&path);
        log.lost_lines = lost_lines;
        // The first reason is the one owed to the reader.
        if !lost_why.is_empty() {
            log.lost_why = lost_why;
        }
    }
    let Some(file) = &mut log.file else {
        log.lost_lines += lines;
        if log.lost_why.is_empty() {
            log.lost_why = "the file could not be opened".into();
        }
        return;
    };
    if log.lost_lines > 0 {
        let marker = format!(
            "{} zedinit: {} lines of {service} lost ({})\n",
            crate::output::utc_timestamp(std::time::SystemTime::now()),
            log.lost_lines,
            log.lost_why
        );
        if append_whole(file, log.size, marker.as_bytes()).is_ok() {
            log.size += marker.len() as u64;
            log.lost_lines = 0;
            log.lost_why.clear();
        }
    }
    if let Err(e) = append_whole(file, log.size, bytes) {
        if !log.failing {
            log.failing = true;
            log::warn(format_args!(
                "cannot write {}: {e}; its lines are counted as lost until it works again",
                path.display()
            ));
        }
        log.lost_lines += lines;
        log.lost_why = format!("write error: {e}");
        return;
    }
    if log.failing {
        log.failing = false;
        log::info(format_args!("{} is written again", path.display()));
    }
    log.size += bytes.len() as u64;
    if log.size >= policy.max_size {
        log.file = None;
        let base = path.display().to_string();
        for (from, to) in rotation_renames(&base, policy.keep) {
            let _ = std::fs::rename(&from, &to);
        }
        if policy.keep == 0 {
            let _ = std::fs::remove_file(&path);
        }
        *log = open(&path);
    }
}

/// Appends `bytes` (whole lines) to a file of `size` bytes, all or nothing: a write that
/// fails part way (a full disk takes what fits, then ENOSPC) is cut back to `size`, so
/// the file never holds half a line onto which the next one (or the marker saying what
/// was lost) would be glued. What was there before is never touched.
fn append_whole(file: &mut File, size: u64, bytes: &[u8]) -> std::io::Result<()> {
    file.write_all(bytes).inspect_err(|_| {
        // Shrinking frees blocks, so it works on a full disk.
        let _ = file.set_len(size);
    })
}

/// Opens (or makes) a log file: readable by root and its group only (a service's
/// output may hold what others should not read), never through a symlink.
fn open(path: &std::path::Path) -> OpenLog {
    use std::os::unix::fs::OpenOptionsExt;
    let opened = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path);
    match opened {
        Ok(file) => {
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            OpenLog {
                file: Some(file),
                size,
                retry_at: None,
                lost_lines: 0,
                lost_why: String::new(),
                failing: false,
            }
        }
        Err(e) => {
            log::warn(format_args!(
                "cannot open {}: {e}; its lines are kept in memory only, trying again in {}s",
                path.display(),
                REOPEN_AFTER.as_secs()
            ));
            OpenLog {
                file: None,
                size: 0,
                retry_at: Some(Instant::now() + REOPEN_AFTER),
                lost_lines: 0,
                lost_why: format!("cannot open: {e}"),
                failing: false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_over_the_queue_budget_are_dropped_counted_and_marked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = LogWriter::new(dir.path().to_path_buf());
        // Hold the writer (as a stalled disk would): nothing drains the queue.
        writer.started = true;
        let service: Arc<str> = Arc::from("flood");
        let policy = FilePolicy {
            max_size: 64 * 1024 * 1024,
            keep: 1,
        };
        let line = "x".repeat(1023);
        let lines: Vec<String> = (0..6000).map(|_| line.clone()).collect();
        writer.push(&service, policy, lines);
        let dropped = writer
            .shared
            .queue
            .lock()
            .expect("lock")
            .dropped
            .get(&service)
            .map(|d| d.0);
        let kept = MAX_QUEUED_BYTES / 1024;
        assert_eq!(dropped, Some(6000 - kept as u64));
        // The disk comes back: the kept lines and a marker with the count are written.
        writer.started = false;
        writer.push(&service, policy, Vec::new());
        let file = dir.path().join("flood.log");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            if text.lines().count() == kept + 1 {
                assert!(
                    text.lines()
                        .next()
                        .unwrap_or("")
                        .contains(&format!("zedinit: {} lines of flood dropped", 6000 - kept)),
                    "{}",
                    &text[..200]
                );
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} lines written",
                text.lines().count()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// A small tmpfs, unmounted when dropped.
    struct Tmpfs(PathBuf);

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }

    /// bench/faults.py found, with the log directory on a full tmpfs, a line cut where
    /// the disk filled and the "lines lost" marker glued onto it once there was room:
    /// `... chatty.out: line 762026-12-05T21:37:07.085Z zedinit: 1425 lines of chatty lost`.
    #[test]
    fn a_full_disk_cuts_no_line_and_keeps_what_was_written_before() {
        if !lab::require_root("a_full_disk_cuts_no_line_and_keeps_what_was_written_before") {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "zedinit-full"])
            .arg(dir.path())
            .status()
            .expect("mount");
        assert!(mounted.success());
        let fs = Tmpfs(dir.path().to_path_buf());
        let service: Arc<str> = Arc::from("svc");
        let policy = FilePolicy {
            max_size: 1 << 20,
            keep: 1,
        };
        let mut files = BTreeMap::new();
        let batch = |first: usize| -> Vec<u8> {
            (first..first + 10)
                .map(|n| format!("line {n:05} {}\n", "x".repeat(88)))
                .collect::<String>()
                .into_bytes()
        };
        write_out(&mut files, &fs.0, &service, policy, &batch(0));
        // Fill the disk but for a few KiB: the log's next batches fill it part way.
        std::fs::write(fs.0.join("filler"), vec![0u8; 56 * 1024]).expect("filler");
        let mut n = 10;
        while files[&service].lost_lines == 0 {
            assert!(n < 100_000, "the disk never filled");
            write_out(&mut files, &fs.0, &service, policy, &batch(n));
            n += 10;
        }
        // A while on the full disk, then room again.
        for _ in 0..5 {
            write_out(&mut files, &fs.0, &service, policy, &batch(n));
            n += 10;
        }
        std::fs::remove_file(fs.0.join("filler")).expect("room again");
        write_out(&mut files, &fs.0, &service, policy, b"after\n");
        let text = std::fs::read_to_string(fs.0.join("svc.log")).expect("log");
        // Every line whole, in order, each either as written or a marker of what was lost;
        // together they account for every line.
        let mut next = 0;
        let mut lost = 0;
        let lines: Vec<&str> = text.lines().collect();
        for line in &lines[..lines.len() - 1] {
            if let Some(rest) = line.strip_prefix("line ") {
                assert_eq!(
                    *line,
                    format!("line {next:05} {}", "x".repeat(88)),
                    "{text}"
                );
                assert!(rest.len() == 5 + 1 + 88);
                next += 1;
            } else {
                let (_, marker) = line.split_once(" zedinit: ").expect("a marker");
                let (count, why) = marker.split_once(" lines of svc lost ").expect("lost");
                assert_eq!(
                    why, "(write error: No space left on device (os error 28))",
                    "{line}"
                );
                let count: usize = count.parse().expect("count");
                lost += count;
                next += count;
            }
        }
        assert_eq!(next, n, "every line written or counted lost");
        assert!(lost >= 10, "the disk was full for at least a batch");
        assert_eq!(lines[lines.len() - 1], "after");
    }

    #[test]
    fn a_file_that_cannot_be_opened_is_tried_again_and_says_what_was_lost() {
        let dir = tempfile::tempdir().expect("tempdir");
        let service: Arc<str> = Arc::from("svc");
        let policy = FilePolicy {
            max_size: 1 << 20,
            keep: 1,
        };
        // Something else sits where the file goes.
        let path = dir.path().join("svc.log");
        std::fs::create_dir(&path).expect("dir in the way");
        let mut files = BTreeMap::new();
        write_out(&mut files, dir.path(), &service, policy, b"one\ntwo\n");
        write_out(&mut files, dir.path(), &service, policy, b"three\n");
        assert_eq!(files[&service].lost_lines, 3);
        std::fs::remove_dir(&path).expect("rmdir");
        // Not before its rest is over...
        write_out(&mut files, dir.path(), &service, policy, b"four\n");
        assert!(!path.exists());
        // ...then opened again, with what was lost said first.
        files.get_mut(&service).expect("entry").retry_at = Some(Instant::now());
        write_out(&mut files, dir.path(), &service, policy, b"five\n");
        let text = std::fs::read_to_string(&path).expect("log");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].ends_with(
                "zedinit: 4 lines of svc lost (cannot open: Is a directory (os error 21))"
            ),
            "{text}"
        );
        assert_eq!(lines[1], "five");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "not world-readable");
    }
}
