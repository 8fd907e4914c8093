//! The follower: one thread, blocked in `poll` on an inotify descriptor and a signalfd
//! until something changes. No timer runs while nothing is rotated away, so an idle
//! logtail never wakes up.
//!
//! Each cycle reads what the changed files gained (a bounded batch, so one flooding
//! file can't starve the others) and prints it to stdout ([`Console`]: behind a console
//! slower than the logs, in large chunks between naps). Where every file was left is
//! saved after printing, at most every [`SAVE_EVERY`] while lines keep coming (a timer
//! runs only while something printed is unsaved): after SIGKILL at most
//! what was printed in that time repeats, after SIGTERM nothing does. Saving after every
//! batch cost a flood half of logtail's CPU where the state is on ext4 (a file created
//! and renamed over the last: ext4 starts writing back on such a rename), and delayed
//! the next read, losing more lines at a copy-truncate rotation.
//!
//! Watches: each pattern's directory (files appearing, renamed, removed: a rescan), and
//! each followed file itself, by its descriptor (`/proc/self/fd/N`), so its writes are
//! seen under any name it gets: a file rotated away is read on as its writer goes on
//! with it until it has been quiet for the grace time.
//!
//! Only regular files owned by root or the directory's owner are followed, opened so
//! that the check is about the file read (`entry`); every refused entry is said once.

use crate::console::Console;
use crate::copy;
use crate::entry::{self, OpenError, Refusal};
use crate::lines::{LineBuffer, escaped, last_lines_start};
use crate::pattern::Pattern;
use crate::plan::{self, Change, Held, Seen, Start};
use crate::state::{Identity, Saved, State, VERSION};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How logtail runs (the command line's flags).
#[derive(Debug, Clone)]
pub struct Options {
    pub patterns: Vec<Pattern>,
    /// Where each file was left (`/run/logtail/state.json`).
    pub state: PathBuf,
    /// A file rotated away and quiet this long is let go.
    pub grace: Duration,
    /// On the first start (no state), each file's last lines shown.
    pub first_lines: usize,
    /// Longer lines are printed in pieces.
    pub max_line: usize,
}

/// Bytes read per file per cycle, and the output batch's bound.
const READ_CHUNK: usize = 64 << 10;
const BATCH_BYTES: usize = 256 << 10;
/// The most read from a copy-truncate rotation's copy: what logtail had not read yet
/// when the file was emptied. More means it was far behind (a console slower than the
/// logs); the rest is skipped, and said.
const COPY_MAX: u64 = 4 << 20;
/// The longest a printed line stays unsaved while lines keep coming (see the header).
pub const SAVE_EVERY: Duration = Duration::from_millis(500);

/// One followed file.
struct Tracked {
    label: PathBuf,
    /// The label as printed (escaped: a file's name is anyone's choice).
    label_text: String,
    file: File,
    id: Identity,
    /// Bytes read (printed, plus what `lines` holds).
    offset: u64,
    lines: LineBuffer,
    /// The last bytes read ([`copy::TAIL`]), ending at `offset`: how its copy is
    /// recognised after a copy-truncate rotation.
    tail: Vec<u8>,
    watch: Option<WatchDescriptor>,
    /// Something may be left to read.
    dirty: bool,
    /// Rotated away: when it last gave data (or was rotated).
    rotated: Option<Instant>,
}

impl Tracked {
    /// Where a restart goes on: the start of the line it holds.
    fn saved(&self) -> Saved {
        Saved {
            path: self.label.clone(),
            id: self.id,
            offset: self.offset - self.lines.held() as u64,
            rotated: self.rotated.is_some(),
        }
    }
}

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// SIGTERM or SIGINT: the state is saved as clean.
    Signalled(Signal),
}

pub struct Tailer {
    options: Options,
    inotify: Inotify,
    signals: SignalFd,
    /// Directory watches, to their directory.
    dirs: HashMap<WatchDescriptor, PathBuf>,
    files: Vec<Tracked>,
    buffer: Vec<u8>,
    out: Vec<u8>,
    console: Console,
    /// Where the next cycle starts reading (files take turns: one flooding file can't
    /// keep the others off the console).
    next: usize,
    /// Followed files changed (opened, let go) since the last save.
    changed: bool,
    /// Lines printed since the last save.
    unsaved: bool,
    /// When the state was last saved (or tried).
    last_save: Instant,
    /// The last save failed (said once; printing goes on regardless).
    save_failing: bool,
    /// A watched directory was removed or moved away: the run ends (zedinit restarts it).
    lost_dir: Option<PathBuf>,
    /// Entries refused and said so, kept while they stay refused: each is said once.
    refused: HashSet<(PathBuf, Refusal)>,
}

impl Tailer {
    /// Sets up the watches and the signals, and opens every file where the plan says.
    /// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (they arrive on the
    /// signalfd): call it from the main thread before starting any other.
    pub fn start(options: Options) -> Result<Tailer, String> {
        let mut mask = SigSet::empty();
        for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
            mask.add(signal);
        }
        mask.thread_block()
            .map_err(|e| format!("blocking signals: {e}"))?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(|e| format!("signalfd: {e}"))?;
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .map_err(|e| format!("inotify: {e}"))?;
        let mut dirs = HashMap::new();
        for dir in distinct_dirs(&options.patterns) {
            let flags = AddWatchFlags::IN_CREATE
                | AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_MOVED_FROM
                | AddWatchFlags::IN_DELETE
                | AddWatchFlags::IN_DELETE_SELF
                | AddWatchFlags::IN_MOVE_SELF
                | AddWatchFlags::IN_ONLYDIR;
            let watch = inotify
                .add_watch(&dir, flags)
                .map_err(|e| format!("{}: can't watch this directory: {e}", dir.display()))?;
            dirs.insert(watch, dir);
        }
        let mut tailer = Tailer {
            options,
            inotify,
            signals,
            dirs,
            files: Vec::new(),
            buffer: vec![0; READ_CHUNK],
            out: Vec::with_capacity(BATCH_BYTES + READ_CHUNK),
            console: Console::stdout(),
            next: 0,
            changed: false,
            unsaved: false,
            last_save: Instant::now(),
            save_failing: false,
            lost_dir: None,
            refused: HashSet::new(),
        };
        tailer.open_planned()?;
        Ok(tailer)
    }

    fn open_planned(&mut self) -> Result<(), String> {
        let state_path = &self.options.state.clone();
        let saved = match State::load(state_path) {
            Ok(saved) => saved,
            Err(e) => {
                note(&format!("{e}; starting afresh (each file's last lines)"));
                None
            }
        };
        if saved.as_ref().is_some_and(|s| !s.clean) {
            note(
                "resuming after an unclean stop (killed or crashed): the lines printed just \
                 before it may be printed again",
            );
        }
        let seen = self.scan(true);
        let plan = plan::on_start(saved.as_ref(), &seen, self.options.first_lines);
        for text in &plan.notes {
            note(text);
        }
        for follow in plan.follows {
            let opened = self.open(&follow.label, &follow.path, follow.start);
            match opened {
                Ok(mut tracked) => {
                    if follow.rotated {
                        tracked.rotated = Some(Instant::now());
                    }
                    self.files.push(tracked);
                }
                Err(e) => self.open_failed(&follow.path, e),
            }
        }
        if let Some(dir) = state_path.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            note(&format!("{}: {e}", dir.display()));
        }
        self.save(false);
        Ok(())
    }

    /// Opens `path`, to be printed as `label`, positioned at `start`, if it may be
    /// followed (`entry::open`).
    fn open(&self, label: &Path, path: &Path, start: Start) -> Result<Tracked, OpenError> {
        let (file, meta) = entry::open(path, entry::dir_owner(path)?)?;
        let offset = match start {
            Start::At(offset) if offset <= meta.len() => offset,
            Start::At(_) => 0,
            Start::LastLines(n) => {
                let window_start = meta.len().saturating_sub(READ_CHUNK as u64);
                let mut window = vec![0; (meta.len() - window_start) as usize];
                file.read_exact_at(&mut window, window_start)?;
                last_lines_start(&window, window_start, n)
            }
        };
        // What it ends with where reading starts, to know its copy by; a file that shrank
        // since the look at its size is followed all the same (no copy will be found).
        let kept = offset.min(copy::TAIL as u64);
        let mut tail = vec![0; kept as usize];
        if file.read_exact_at(&mut tail, offset - kept).is_err() {
            tail.clear();
        }
        let watch = self.watch_file(&file, path, &meta);
        Ok(Tracked {
            label: label.to_path_buf(),
            label_text: label_text(label),
            id: Identity::of(&meta),
            file,
            offset,
            lines: LineBuffer::default(),
            tail,
            watch,
            dirty: true,
            rotated: None,
        })
    }

    /// A watch on the file itself, through its descriptor so it is the file opened even if
    /// the name was replaced meanwhile; by name (checked) where /proc is missing.
    fn watch_file(
        &self,
        file: &File,
        path: &Path,
        meta: &std::fs::Metadata,
    ) -> Option<WatchDescriptor> {
        let flags = AddWatchFlags::IN_MODIFY;
        let by_fd = format!("/proc/self/fd/{}", file.as_raw_fd());
        if let Ok(watch) = self.inotify.add_watch(by_fd.as_str(), flags) {
            return Some(watch);
        }
        let by_name = flags | AddWatchFlags::IN_DONT_FOLLOW;
        let watch = self.inotify.add_watch(path, by_name).ok()?;
        let same = std::fs::symlink_metadata(path)
            .is_ok_and(|now| Identity::of(&now) == Identity::of(meta));
        if same {
            Some(watch)
        } else {
            let _ = self.inotify.rm_watch(watch);
            note(&format!(
                "{}: replaced while being opened; read on directory changes only",
                path.display()
            ));
            None
        }
    }

    /// Runs until SIGTERM or SIGINT. An error (the console gone, a watched directory
    /// removed) ends the run; what was printed is saved, so a restart loses nothing.
    pub fn run(&mut self) -> Result<End, String> {
        loop {
            let more = self.read_changed();
            self.let_go_of_quiet_rotated();
            let printed = !self.out.is_empty();
            if printed {
                self.console
                    .write_all(&self.out)
                    .map_err(|e| format!("writing to the console: {e}"))?;
                self.out.clear();
                // A copy-truncate's copy can make one batch up to `COPY_MAX`: not kept.
                self.out.shrink_to(BATCH_BYTES + READ_CHUNK);
            }
            self.unsaved |= printed;
            let save_due = self.unsaved && self.last_save.elapsed() >= SAVE_EVERY;
            if save_due || self.changed || (self.unsaved && self.lost_dir.is_some()) {
                self.save(false);
            }
            if let Some(dir) = &self.lost_dir {
                return Err(format!(
                    "{}: the watched directory was removed or moved",
                    dir.display()
                ));
            }
            let timeout = if more {
                Some(Duration::ZERO)
            } else {
                let save = self
                    .unsaved
                    .then(|| SAVE_EVERY.saturating_sub(self.last_save.elapsed()));
                [self.next_let_go(), save].into_iter().flatten().min()
            };
            if let Some(end) = self.wait(timeout)? {
                self.save(true);
                // Exit 0 promises the state was saved (a restart goes on exactly).
                if self.save_failing {
                    return Err(format!(
                        "{}: stopped without saving where the files were left; a restart may print lines again or miss some",
                        self.options.state.display()
                    ));
                }
                return Ok(end);
            }
        }
    }

    /// Reads what the changed files gained into the batch, a chunk per file in turn (a
    /// rotated file before its successor under the same name); true when something is
    /// left to read (read on at once, without waiting).
    fn read_changed(&mut self) -> bool {
        let count = self.files.len();
        let mut progress = true;
        while progress && self.out.len() < BATCH_BYTES {
            progress = false;
            for k in 0..count {
                let i = (self.next + k) % count;
                if !self.files[i].dirty || self.waits_for_rotated(i) {
                    continue;
                }
                match self.read_chunk(i) {
                    Ok(true) => progress = true,
                    Ok(false) => self.files[i].dirty = false,
                    Err(e) => {
                        note(&format!("{}: {e}", self.files[i].label_text));
                        self.files[i].dirty = false;
                    }
                }
                if self.out.len() >= BATCH_BYTES {
                    break;
                }
            }
        }
        self.next = (self.next + 1) % count.max(1);
        self.files.iter().any(|f| f.dirty)
    }

    /// File `i` succeeds a rotated file still being read under the same name: its lines
    /// wait, so the old file's end is printed first.
    fn waits_for_rotated(&self, i: usize) -> bool {
        let file = &self.files[i];
        file.rotated.is_none()
            && self
                .files
                .iter()
                .any(|f| f.rotated.is_some() && f.dirty && f.label == file.label)
    }

    /// Reads one chunk of file `i`; true when it got bytes or was truncated (there may be more).
    /// A file truncated below where it was read gives nothing there: its size is looked
    /// at only then (not before every read: a `fstat` per chunk in a flood).
    fn read_chunk(&mut self, i: usize) -> io::Result<bool> {
        let tracked = &mut self.files[i];
        let n = loop {
            match tracked.file.read_at(&mut self.buffer, tracked.offset) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            let size = tracked.file.metadata()?.len();
            if size < tracked.offset {
                self.truncated(i, size);
                // Read on, from its start.
                return Ok(true);
            }
            return Ok(false);
        }
        tracked.offset += n as u64;
        copy::keep_tail(&mut tracked.tail, &self.buffer[..n]);
        if tracked.rotated.is_some() {
            tracked.rotated = Some(Instant::now());
        }
        tracked.lines.push(
            &self.buffer[..n],
            &tracked.label_text,
            self.options.max_line,
            &mut self.out,
        );
        Ok(true)
    }

    /// File `i` got shorter than what was read (now `size` bytes): a copy-truncate
    /// rotation. What was not read yet is printed from the copy when there is one
    /// ([`copy::find`]), then the file is read from its start.
    fn truncated(&mut self, i: usize, size: u64) {
        let followed: Vec<Identity> = self.files.iter().map(|f| f.id).collect();
        let tracked = &mut self.files[i];
        let dir = tracked.label.parent().unwrap_or(Path::new("/"));
        let from = tracked.offset;
        let found = copy::find(dir, from, &tracked.tail, &followed);
        let mut recovered = 0;
        let mut skipped = 0;
        if let Some(found) = &found {
            let end = found.size.min(from + COPY_MAX);
            skipped = found.size - end;
            while from + recovered < end {
                let want = self.buffer.len().min((end - from - recovered) as usize);
                let n = match found
                    .file
                    .read_at(&mut self.buffer[..want], from + recovered)
                {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                recovered += n as u64;
                tracked.lines.push(
                    &self.buffer[..n],
                    &tracked.label_text,
                    self.options.max_line,
                    &mut self.out,
                );
            }
        }
        tracked.lines.flush(&tracked.label_text, &mut self.out);
        let what = format!(
            "{}: truncated (from {from} to {size} bytes; copy-truncate rotation?): reading it \
             from its start",
            tracked.label_text
        );
        let text = match &found {
            Some(found) if skipped > 0 => format!(
                "{what}; printed {recovered} bytes it had not read yet from its copy {}, \
                 skipped the copy's last {skipped} bytes (too far behind); lines written \
                 between the copy and the truncation are lost",
                escaped(found.path.as_os_str().as_bytes())
            ),
            Some(found) => format!(
                "{what}; printed the {recovered} bytes it had not read yet from its copy {}; \
                 lines written between the copy and the truncation are lost",
                escaped(found.path.as_os_str().as_bytes())
            ),
            None => format!("{what}; lines written between the copy and the truncation are lost"),
        };
        note(&text);
        tracked.offset = 0;
        tracked.tail.clear();
    }

    /// Closes the rotated files that have been quiet for the grace time, printing their
    /// unfinished last line: nobody writes to them any more.
    fn let_go_of_quiet_rotated(&mut self) {
        let grace = self.options.grace;
        let mut i = 0;
        while i < self.files.len() {
            let tracked = &mut self.files[i];
            let quiet = tracked.rotated.is_some_and(|t| t.elapsed() >= grace) && !tracked.dirty;
            if quiet {
                // A last look: what its writer added since the last event.
                while let Ok(true) = self.read_chunk(i) {}
                let tracked = &mut self.files[i];
                tracked.lines.flush(&tracked.label_text, &mut self.out);
                self.changed = true;
                let tracked = self.files.remove(i);
                // The watch is the inode's: keep it while another followed file has it.
                let shared = self.files.iter().any(|f| f.watch == tracked.watch);
                if let (Some(watch), false) = (tracked.watch, shared) {
                    let _ = self.inotify.rm_watch(watch);
                }
            } else {
                i += 1;
            }
        }
    }

    /// Until the first rotated file may be let go; `None` (no timeout) when none is.
    fn next_let_go(&self) -> Option<Duration> {
        self.files
            .iter()
            .filter_map(|f| f.rotated)
            .map(|t| self.options.grace.saturating_sub(t.elapsed()))
            .min()
    }

    /// Waits for a change, a signal or the timeout; handles what came. `Some` when a
    /// stop signal came.
    fn wait(&mut self, timeout: Option<Duration>) -> Result<Option<End>, String> {
        let timeout = match timeout {
            None => PollTimeout::NONE,
            // Rounded up, so a let-go that is due is not polled for in a busy loop.
            Some(t) => PollTimeout::try_from(t.as_millis().saturating_add(1).min(60_000) as u32)
                .unwrap_or(PollTimeout::MAX),
        };
        let mut fds = [
            PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        let mut rescan = false;
        while let Ok(Some(info)) = self.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(signal @ (Signal::SIGTERM | Signal::SIGINT)) => {
                    return Ok(Some(End::Signalled(signal)));
                }
                _ => rescan = true,
            }
        }
        rescan |= self.take_events();
        if rescan {
            self.rescan();
        }
        Ok(None)
    }

    /// Marks the files whose watches fired; true when a directory changed (or events were
    /// lost) and the directories must be looked at again.
    fn take_events(&mut self) -> bool {
        let mut rescan = false;
        loop {
            let events = match self.inotify.read_events() {
                Ok(events) if !events.is_empty() => events,
                _ => return rescan,
            };
            for event in events {
                if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    rescan = true;
                    self.files.iter_mut().for_each(|f| f.dirty = true);
                } else if let Some(dir) = self.dirs.get(&event.wd) {
                    let gone = AddWatchFlags::IN_DELETE_SELF
                        | AddWatchFlags::IN_MOVE_SELF
                        | AddWatchFlags::IN_IGNORED;
                    if event.mask.intersects(gone) {
                        self.lost_dir = Some(dir.clone());
                    }
                    rescan = true;
                } else {
                    // inotify keeps one watch per inode: files sharing an inode (hard
                    // links) share a descriptor.
                    self.files
                        .iter_mut()
                        .filter(|f| f.watch == Some(event.wd))
                        .for_each(|f| f.dirty = true);
                }
            }
        }
    }

    /// Looks at the directories again: rotations, renames and new files.
    fn rescan(&mut self) {
        // Files without a watch of their own (the watch limit, or no /proc) are read on
        // every directory change.
        for file in self.files.iter_mut().filter(|f| f.watch.is_none()) {
            file.dirty = true;
        }
        let seen = self.scan(false);
        let held: Vec<Held> = self
            .files
            .iter()
            .map(|f| Held {
                label: f.label.clone(),
                id: f.id,
                rotated: f.rotated.is_some(),
            })
            .collect();
        for change in plan::on_rescan(&held, &seen) {
            match change {
                Change::RotatedAway { id } => {
                    if let Some(f) = self.files.iter_mut().find(|f| f.id == id) {
                        f.rotated = Some(Instant::now());
                        f.dirty = true;
                    }
                }
                Change::Renamed { id, to } => {
                    if let Some(f) = self.files.iter_mut().find(|f| f.id == id) {
                        f.label_text = label_text(&to);
                        f.label = to;
                        f.rotated = None;
                        f.dirty = true;
                    }
                }
                Change::Open { path } => match self.open(&path, &path, Start::At(0)) {
                    Ok(tracked) => {
                        self.files.push(tracked);
                        self.changed = true;
                    }
                    Err(e) => self.open_failed(&path, e),
                },
            }
        }
    }

    /// The patterns' directories as [`scan`] sees them; says which entries it refused
    /// (each once).
    fn scan(&mut self, everything: bool) -> Vec<Seen> {
        let scan = scan(&self.options.patterns, everything);
        // Forget what is no longer refused: if it is again later, that is said again.
        let now: HashSet<&(PathBuf, Refusal)> = scan.refused.iter().collect();
        self.refused.retain(|said| now.contains(said));
        for (path, why) in scan.refused {
            self.refuse(path, why);
        }
        scan.seen
    }

    /// Says, once while it stays so, that `path` is not followed and why.
    fn refuse(&mut self, path: PathBuf, why: Refusal) {
        let text = format!(
            "{}: not followed: {why} (only regular files owned by root or the directory's \
             owner are)",
            path.display()
        );
        if self.refused.insert((path, why)) {
            note(&text);
        }
    }

    /// A planned file could not be opened: refused (it changed since the scan), gone
    /// again already (a writer's quick rename), or unreadable.
    fn open_failed(&mut self, path: &Path, e: OpenError) {
        match e {
            OpenError::Refused(why) => self.refuse(path.to_path_buf(), why),
            OpenError::Io(e) => note(&format!("{}: {e}", path.display())),
        }
    }

    /// Saves where every file was left. A failure (a full or read-only /run) is said once
    /// and printing goes on: the console matters more than exact resumption, and the next
    /// save tries again.
    fn save(&mut self, clean: bool) {
        self.changed = false;
        self.unsaved = false;
        self.last_save = Instant::now();
        let state = State {
            version: VERSION,
            clean,
            files: self.files.iter().map(Tracked::saved).collect(),
        };
        match state.save(&self.options.state) {
            Ok(()) if self.save_failing => {
                self.save_failing = false;
                note(&format!("{}: saving again", self.options.state.display()));
            }
            Ok(()) => {}
            Err(e) if !self.save_failing => {
                self.save_failing = true;
                note(&format!(
                    "{}: can't save where the files were left ({e}); printing goes on, but a \
                     restart may print lines again or miss some",
                    self.options.state.display()
                ));
            }
            Err(_) => {}
        }
    }
}

/// The patterns' directories, each once, in order.
fn distinct_dirs(patterns: &[Pattern]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for pattern in patterns {
        if !dirs.contains(&pattern.dir) {
            dirs.push(pattern.dir.clone());
        }
    }
    dirs
}

/// What a look at the directories found.
struct Scan {
    /// The entries that may be followed.
    seen: Vec<Seen>,
    /// The entries with a followed name that may not (`entry::check`), and why.
    refused: Vec<(PathBuf, Refusal)>,
}

/// The regular files of the patterns' directories owned by root or the directory's owner:
/// the followed ones, and with `everything` the others too (where a file rotated while
/// logtail was stopped went). Looked at with `lstat`: a symbolic link is not followed.
fn scan(patterns: &[Pattern], everything: bool) -> Scan {
    let mut found = Scan {
        seen: Vec::new(),
        refused: Vec::new(),
    };
    for dir in distinct_dirs(patterns) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let Ok(dir_owner) = std::fs::metadata(&dir).map(|m| m.uid()) else {
            continue;
        };
        let mut names: Vec<(String, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect();
        names.sort();
        for (name, path) in names {
            let followed = patterns.iter().any(|p| p.dir == dir && p.matches(&name));
            if !followed && !everything {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            match entry::check(&meta, dir_owner) {
                Ok(()) => found.seen.push(Seen {
                    path,
                    id: Identity::of(&meta),
                    size: meta.len(),
                    followed,
                }),
                Err(why) if followed => found.refused.push((path, why)),
                Err(_) => {}
            }
        }
    }
    found
}

/// How `label` is printed before each line: escaped like the lines.
fn label_text(label: &Path) -> String {
    escaped(label.as_os_str().as_bytes())
}

/// A message for the user, on stderr (which zedinit passes to the console as well; a
/// tracing event, svclog's shape): escaped like the lines, as it may name any file.
fn note(text: &str) {
    tracing::info!("{}", escaped(text.as_bytes()));
}
