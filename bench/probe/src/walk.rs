//! The parallel walk: per directory one `openat` and `getdents64` calls through rustix's
//! `RawDir` (one 64 KiB buffer per thread), and per regular file one `statx` relative to the
//! directory's fd, asking for what a rescan compares (type, size, mtime, inode). It is the least
//! work a scanner that notices changed files can do on Linux, so it is the floor mediadb's
//! rescan is measured against.
//!
//! Subdirectories are known from `d_type` and never stat'ed; an entry of unknown type is
//! stat'ed to learn it. Symbolic links are not followed. Threads share a LIFO queue of
//! directory paths; the walk is over when the queue is empty and no thread holds a directory
//! (which could add more).

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::fd::BorrowedFd;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, Statx, StatxFlags};

/// What the walk asks `statx` for: what mediadb's rescan compares.
const STATX_MASK: StatxFlags = StatxFlags::TYPE
    .union(StatxFlags::SIZE)
    .union(StatxFlags::MTIME)
    .union(StatxFlags::INO);

/// Bytes of the per-thread `getdents64` buffer.
const DIRENT_BUF: usize = 64 * 1024;

/// Work done on each regular file after its `statx`, from many threads at once.
pub trait PerFile: Sync {
    /// Handles the file `name` in the directory open as `dir`; returns a count of bytes it
    /// looked at (to keep the work observable), or `None` when the file could not be handled.
    fn file(&self, dir: BorrowedFd<'_>, name: &CStr, stat: &Statx) -> Option<u64>;
}

/// What a walk saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    /// Regular files.
    pub files: u64,
    /// Directories read.
    pub dirs: u64,
    /// Sum of what [`PerFile::file`] returned.
    pub bytes: u64,
    /// Directories that could not be read, entries that could not be stat'ed, files that
    /// [`PerFile::file`] could not handle.
    pub errors: u64,
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.files += other.files;
        self.dirs += other.dirs;
        self.bytes += other.bytes;
        self.errors += other.errors;
    }
}

/// Walks `roots` with `threads` threads, calling `per_file` for every regular file.
pub fn walk<P: PerFile>(roots: &[Vec<u8>], threads: usize, per_file: &P) -> Totals {
    let queue = Queue::new(roots.to_vec());
    let mut totals = Totals::default();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| s.spawn(|| worker(&queue, per_file)))
            .collect();
        for w in workers {
            match w.join() {
                Ok(t) => totals.add(&t),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    totals
}

fn worker<P: PerFile>(queue: &Queue, per_file: &P) -> Totals {
    let mut buf = vec![MaybeUninit::<u8>::uninit(); DIRENT_BUF];
    let mut totals = Totals::default();
    let mut found = Vec::new();
    while let Some(dir) = queue.pop() {
        read_dir(&dir, &mut buf, per_file, &mut totals, &mut found);
        queue.finish(&mut found);
    }
    totals
}

/// Reads one directory: counts its files, hands each to `per_file`, and pushes its
/// subdirectories' paths onto `found`.
fn read_dir<P: PerFile>(
    dir: &[u8],
    buf: &mut [MaybeUninit<u8>],
    per_file: &P,
    totals: &mut Totals,
    found: &mut Vec<Vec<u8>>,
) {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let fd = match rustix::fs::openat(rustix::fs::CWD, dir, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(_) => {
            totals.errors += 1;
            return;
        }
    };
    totals.dirs += 1;
    let mut path = dir.to_vec();
    if path.last() != Some(&b'/') {
        path.push(b'/');
    }
    let base = path.len();
    let mut subdir = |name: &[u8]| {
        path.truncate(base);
        path.extend_from_slice(name);
        found.push(path.clone());
    };
    let mut entries = RawDir::new(&fd, buf);
    while let Some(entry) = entries.next() {
        let Ok(entry) = entry else {
            totals.errors += 1;
            break;
        };
        let name = entry.file_name();
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        match entry.file_type() {
            FileType::Directory => {
                subdir(bytes);
                continue;
            }
            FileType::RegularFile | FileType::Unknown => {}
            _ => continue,
        }
        let Ok(stat) = rustix::fs::statx(&fd, name, AtFlags::SYMLINK_NOFOLLOW, STATX_MASK) else {
            totals.errors += 1;
            continue;
        };
        match FileType::from_raw_mode(u32::from(stat.stx_mode)) {
            FileType::RegularFile => {
                totals.files += 1;
                match per_file.file(rustix::fd::AsFd::as_fd(&fd), name, &stat) {
                    Some(n) => totals.bytes += n,
                    None => totals.errors += 1,
                }
            }
            FileType::Directory => subdir(bytes),
            _ => {}
        }
    }
}

/// Directories waiting to be read, shared by the workers.
struct Queue {
    state: Mutex<QueueState>,
    changed: Condvar,
}

struct QueueState {
    /// Paths not yet taken (LIFO: depth first, so the queue stays short).
    pending: Vec<Vec<u8>>,
    /// Workers holding a directory; while any does, more may come.
    busy: usize,
}

impl Queue {
    fn new(roots: Vec<Vec<u8>>) -> Queue {
        Queue {
            state: Mutex::new(QueueState {
                pending: roots,
                busy: 0,
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next directory to read, or `None` when the walk is over.
    fn pop(&self) -> Option<Vec<u8>> {
        let mut state = self.lock();
        loop {
            if let Some(dir) = state.pending.pop() {
                state.busy += 1;
                return Some(dir);
            }
            if state.busy == 0 {
                return None;
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Ends the caller's hold on a directory, queueing the subdirectories it found.
    fn finish(&self, found: &mut Vec<Vec<u8>>) {
        let mut state = self.lock();
        let more = !found.is_empty();
        state.pending.append(found);
        state.busy -= 1;
        if more || state.busy == 0 {
            self.changed.notify_all();
        }
    }
}
