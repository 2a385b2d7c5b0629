//! The writer lock: an exclusive `flock` on `NAME.lock`, held for the writer's lifetime, with the
//! holder's pid written inside so a refused writer can say who holds it.
//!
//! A `flock` belongs to the open file, which a child process shares from `fork` until its
//! `exec` closes it. So when a thread of this process starts a program (a media server starting
//! a transcoder, say) just as another thread's writer closes, the lock outlives the writer by the
//! child's time to `exec`, and a writer opened at once would be refused with this process's own
//! pid. [`acquire`] tells that apart with the locks this process holds ([`HELD`]): a lock file
//! naming this process that none of its writers holds is waited for, up to [`FORK_GRACE`].

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::OpenError;

/// The lock files (device, inode) that writers of this process hold.
static HELD: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

/// How long a lock that names this process, and that none of its writers holds, is waited for:
/// a child started by another thread holds it until its `exec`, normally well under a
/// millisecond. A child that never calls `exec` keeps it, and the writer is then `Busy`.
const FORK_GRACE: Duration = Duration::from_secs(2);

/// Holds the lock until dropped (closing the file releases the `flock`).
#[derive(Debug)]
pub(crate) struct WriterLock {
    _file: File,
    /// The lock file's (device, inode), as registered in [`HELD`].
    key: (u64, u64),
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        let mut held = HELD
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(i) = held.iter().position(|k| *k == self.key) {
            held.swap_remove(i);
        }
        // `_file` closes after this, releasing the lock.
    }
}

/// The lock file's path for database `db`.
pub(crate) fn lock_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// Takes the writer lock of `db`, waiting up to `wait` for another writer to finish.
pub(crate) fn acquire(db: &Path, wait: Duration) -> Result<WriterLock, OpenError> {
    let path = lock_path(db);
    let io = |source| OpenError::Io {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    let key = (meta.dev(), meta.ino());
    let deadline = Instant::now() + wait;
    let mut grace: Option<Instant> = None;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = holder(&mut file);
                let ours = pid == Some(std::process::id()) && !held(key);
                let until = *grace.get_or_insert_with(|| Instant::now() + FORK_GRACE);
                if ours && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                }
                return Err(OpenError::Busy {
                    path: db.to_path_buf(),
                    pid,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
    }
    HELD.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(key);
    // The pid is informational; failing to write it does not matter.
    let _ = file
        .set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| writeln!(file, "{}", std::process::id()));
    Ok(WriterLock { _file: file, key })
}

/// The pid the lock file names: the last writer that held it.
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// Whether a writer of this process holds the lock file `key`.
fn held(key: (u64, u64)) -> bool {
    HELD.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .contains(&key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `db`'s lock through an open file of its own, as a child between `fork` and `exec`
    /// holds it, naming this process; releases it after `hold`.
    fn held_as_by_a_child(db: &Path, hold: Duration) -> std::thread::JoinHandle<()> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(lock_path(db))
            .expect("open the lock file");
        file.try_lock().expect("lock");
        writeln!(file, "{}", std::process::id()).expect("pid");
        std::thread::spawn(move || {
            std::thread::sleep(hold);
            drop(file);
        })
    }

    #[test]
    fn a_lock_a_child_of_this_process_holds_until_exec_is_waited_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("f.mediadb");
        let child = held_as_by_a_child(&db, Duration::from_millis(100));
        let lock = acquire(&db, Duration::ZERO).expect("the writer waits for the child's exec");
        child.join().expect("child");
        // A writer of this process holds it now: a second one is refused at once.
        let start = Instant::now();
        let e = acquire(&db, Duration::ZERO).expect_err("busy");
        assert!(
            matches!(e, OpenError::Busy { pid: Some(p), .. } if p == std::process::id()),
            "{e:?}"
        );
        assert!(start.elapsed() < FORK_GRACE, "no grace for our own writer");
        drop(lock);
        acquire(&db, Duration::ZERO).expect("released on drop");
    }

    #[test]
    fn a_child_that_keeps_the_lock_leaves_the_writer_busy_after_the_grace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("k.mediadb");
        let child = held_as_by_a_child(&db, FORK_GRACE * 2);
        let e = acquire(&db, Duration::ZERO).expect_err("busy");
        assert!(matches!(e, OpenError::Busy { .. }), "{e:?}");
        child.join().expect("child");
    }
}
