//! Writing a large batch's frame ahead of its commit.
//!
//! While a batch is being built, its payload is handed in pieces to a background thread that
//! writes each one where the frame will lie, past the committed length, and keeps the crc of
//! what it wrote. `commit()` then writes only the rest of the payload and the frame header
//! before its first `sync`. Copying into new page-cache pages is the largest single cost of a
//! big commit; this way it runs on another core while records are still being encoded.
//!
//! A piece is either a copy of whole segments of the payload ([`WriteAhead::offer`]), or a
//! bulk upsert's own encoding buffer, handed over without a copy ([`WriteAhead::hand`]) and
//! given back for reuse once written ([`WriteAhead::reclaim`]).
//!
//! What must stay true: bytes past the committed length are never trusted (docs/FORMAT.md §2),
//! so nothing written ahead matters until the header slot that covers it is synced; the thread
//! writes pieces in the order they were handed over, and has finished every write before the
//! batch ends (commit or drop), so no late write can land over a later batch's frame.

use std::io;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use super::Storage;
use super::crc;

/// Pieces that may wait for the thread: the memory written ahead is bounded by this many pieces
/// (plus the one being written and those given back for reuse). A bulk upsert hands over a
/// slice of 8 encoding buffers of about 1 MB at a time, and must not wait for the thread to
/// take each.
const QUEUE: usize = 16;

/// The payload of one batch, as far as it has been written ahead.
pub(crate) struct WriteAhead {
    storage: Arc<dyn Storage>,
    /// File offset of payload byte 0.
    base: u64,
    /// Bytes per segment; 0 writes nothing ahead.
    segment: usize,
    /// Payload bytes handed to the thread: `[0, handed)`.
    handed: usize,
    /// Set when the batch took back bytes already handed over (a failed bulk upsert): what
    /// was written ahead no longer matches the payload, and the commit writes all of it.
    stale: bool,
    worker: Option<Worker>,
    /// Buffers a finished thread gave back.
    spare: Vec<Vec<u8>>,
}

struct Worker {
    pieces: SyncSender<(u64, Vec<u8>)>,
    /// Buffers the thread is done with, for reuse.
    returned: Receiver<Vec<u8>>,
    /// Ends with the crc of everything written, in order, or the first write error.
    done: JoinHandle<io::Result<u32>>,
}

impl WriteAhead {
    /// Nothing written yet; payload byte 0 goes to file offset `base`.
    pub(crate) fn new(storage: Arc<dyn Storage>, base: u64, segment: usize) -> WriteAhead {
        WriteAhead {
            storage,
            base,
            segment,
            handed: 0,
            stale: false,
            worker: None,
            spare: Vec::new(),
        }
    }

    /// Hands over whole segments of `payload` (the payload so far) that have not been handed
    /// over yet. Blocks while the thread is `QUEUE` pieces behind.
    pub(crate) fn offer(&mut self, payload: &[u8]) {
        if self.segment == 0 || self.stale {
            return;
        }
        while payload.len() - self.handed >= self.segment {
            let Some(piece) = self.copy_of(&payload[self.handed..self.handed + self.segment])
            else {
                return;
            };
            if self.send(self.handed, piece).is_err() {
                return;
            }
            self.handed += self.segment;
        }
    }

    /// Hands over `buf`, which holds the last `buf.len()` bytes of `payload` (the payload so
    /// far), without copying it, after a copy of any bytes before it not handed over yet.
    /// Gives `buf` back when it is not written ahead: the write-ahead is off or stale, or the
    /// payload is still smaller than a segment. Blocks while the thread is `QUEUE` pieces
    /// behind.
    pub(crate) fn hand(&mut self, payload: &[u8], buf: Vec<u8>) -> Option<Vec<u8>> {
        let Some(start) = payload.len().checked_sub(buf.len()) else {
            return Some(buf);
        };
        if self.segment == 0 || self.stale || payload.len() < self.segment || self.handed > start {
            return Some(buf);
        }
        debug_assert!(payload[start..] == buf[..], "the buffer ends the payload");
        if self.handed < start {
            let Some(before) = self.copy_of(&payload[self.handed..start]) else {
                return Some(buf);
            };
            if self.send(self.handed, before).is_err() {
                return Some(buf);
            }
        }
        match self.send(start, buf) {
            Ok(()) => {
                self.handed = payload.len();
                None
            }
            Err(buf) => Some(buf),
        }
    }

    /// `bytes` in a buffer for the thread (one it gave back, if any); `None` when no thread
    /// can be had.
    fn copy_of(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        let mut buf = self.worker()?.returned.try_recv().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(bytes);
        Some(buf)
    }

    /// Sends `buf`, payload bytes from `at` on, to the thread. When the thread is gone (it
    /// cannot panic; this is only defensive), the whole payload is written at commit instead,
    /// and `buf` comes back.
    fn send(&mut self, at: usize, buf: Vec<u8>) -> Result<(), Vec<u8>> {
        let offset = self.base + at as u64;
        let Some(worker) = self.worker() else {
            return Err(buf);
        };
        worker.pieces.send((offset, buf)).map_err(|e| {
            self.stale = true;
            e.0.1
        })
    }

    /// A buffer the thread has written and given back, if any.
    pub(crate) fn reclaim(&mut self) -> Option<Vec<u8>> {
        self.spare
            .pop()
            .or_else(|| self.worker.as_ref()?.returned.try_recv().ok())
    }

    /// Every buffer given back so far, for the next batch to reuse.
    pub(crate) fn take_spare(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.spare)
    }

    /// The payload was cut back to `len` bytes.
    pub(crate) fn truncated(&mut self, len: usize) {
        if len < self.handed {
            self.stale = true;
        }
    }

    /// Waits for the thread. Returns how many payload bytes are on file (a prefix) and their
    /// crc: `(0, 0)` when nothing usable was written ahead. Any error the thread met is
    /// returned, even for bytes no longer needed: the handle stops writing after any failed
    /// write (docs/FORMAT.md §2), so the commit must fail.
    pub(crate) fn finish(&mut self) -> io::Result<(usize, u32)> {
        let Some(worker) = self.worker.take() else {
            return Ok((0, 0));
        };
        let crc = join(worker, &mut self.spare)?;
        Ok(if self.stale {
            (0, 0)
        } else {
            (self.handed, crc)
        })
    }

    /// Whether nothing was handed to a thread: then [`finish`](Self::finish) has nothing to
    /// wait for and returns `(0, 0)`.
    pub(crate) fn is_idle(&self) -> bool {
        self.worker.is_none()
    }

    fn worker(&mut self) -> Option<&Worker> {
        if self.worker.is_none() {
            let (pieces, inbox) = sync_channel::<(u64, Vec<u8>)>(QUEUE);
            let (give_back, returned) = channel();
            let storage = Arc::clone(&self.storage);
            let spawned = std::thread::Builder::new()
                .name("mediadb-write-ahead".into())
                .spawn(move || {
                    let mut crc = 0;
                    let mut failed = None;
                    for (offset, buf) in inbox {
                        if failed.is_none() {
                            crc = crc::append(crc, &buf);
                            failed = storage.write_at(&buf, offset).err();
                            if failed.is_none() {
                                // Start the disk on it now, so the commit's own sync has less
                                // left to wait for. (A hint, not a commit: the header slot
                                // still points before all of it.)
                                storage.start_writeback(offset, buf.len() as u64);
                            }
                        }
                        let _ = give_back.send(buf);
                    }
                    failed.map_or(Ok(crc), Err)
                });
            match spawned {
                Ok(done) => {
                    self.worker = Some(Worker {
                        pieces,
                        returned,
                        done,
                    });
                }
                // No thread to be had: the commit writes everything, as without write-ahead.
                Err(_) => self.segment = 0,
            }
        }
        self.worker.as_ref()
    }
}

impl Drop for WriteAhead {
    fn drop(&mut self) {
        // A batch dropped without commit: its bytes past the committed length are garbage
        // the next frame overwrites, but the thread must be done before that frame is written.
        if let Some(worker) = self.worker.take() {
            let _ = join(worker, &mut self.spare);
        }
    }
}

/// Waits for the thread to write everything handed to it, and keeps the buffers it gave back.
fn join(worker: Worker, spare: &mut Vec<Vec<u8>>) -> io::Result<u32> {
    drop(worker.pieces);
    let done = worker
        .done
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the write-ahead thread panicked")));
    spare.extend(worker.returned.try_iter());
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStorage;

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn whole_segments_land_at_their_offsets_with_their_crc() {
        let mem = Arc::new(MemStorage::new());
        let p = payload(100);
        let mut ahead = WriteAhead::new(mem.clone(), 10, 16);
        ahead.offer(&p[..40]);
        ahead.offer(&p);
        let (written, crc) = ahead.finish().expect("no write fails");
        assert_eq!(written, 96, "six whole segments of 16 bytes");
        assert_eq!(crc, crc::of(&p[..96]));
        assert_eq!(&mem.to_bytes()[10..106], &p[..96]);
    }

    #[test]
    fn a_handed_buffer_lands_after_the_bytes_before_it_and_comes_back() {
        let mem = Arc::new(MemStorage::new());
        let p = payload(100);
        let mut ahead = WriteAhead::new(mem.clone(), 10, 32);
        let small = p[..20].to_vec();
        assert_eq!(
            ahead.hand(&p[..20], small.clone()),
            Some(small),
            "a payload below a segment is not written ahead"
        );
        assert_eq!(ahead.hand(&p[..70], p[40..70].to_vec()), None);
        assert_eq!(ahead.hand(&p[..100], p[70..].to_vec()), None);
        let (written, crc) = ahead.finish().expect("no write fails");
        assert_eq!(
            (written, crc),
            (100, crc::of(&p)),
            "bytes 0..40 were copied first"
        );
        assert_eq!(&mem.to_bytes()[10..110], &p[..]);
        let mut back: Vec<Vec<u8>> = std::iter::from_fn(|| ahead.reclaim()).collect();
        back.sort();
        assert!(back.contains(&p[40..70].to_vec()) && back.contains(&p[70..].to_vec()));
    }

    #[test]
    fn taking_back_written_bytes_leaves_nothing_to_rely_on() {
        let mem = Arc::new(MemStorage::new());
        let p = payload(64);
        let mut ahead = WriteAhead::new(mem.clone(), 0, 16);
        ahead.offer(&p);
        ahead.truncated(64);
        ahead.truncated(40);
        ahead.offer(&p);
        assert_eq!(ahead.finish().expect("no error"), (0, 0));
    }

    /// Memory whose `write_at` always fails.
    struct WriteFails(MemStorage);

    impl Storage for WriteFails {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            self.0.read_at(buf, offset)
        }
        fn write_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
            Err(io::Error::other("injected write failure"))
        }
        fn len(&self) -> io::Result<u64> {
            self.0.len()
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.0.set_len(len)
        }
        fn sync(&self) -> io::Result<()> {
            self.0.sync()
        }
        fn map(&self, offset: u64, len: u64) -> io::Result<crate::store::map::Mapping> {
            self.0.map(offset, len)
        }
    }

    #[test]
    fn a_failed_write_fails_the_commit_even_when_nothing_written_ahead_is_needed() {
        let mut ahead = WriteAhead::new(Arc::new(WriteFails(MemStorage::new())), 0, 16);
        ahead.offer(&payload(64));
        ahead.truncated(0);
        let err = ahead.finish().expect_err("the failed write is reported");
        assert_eq!(err.to_string(), "injected write failure");
    }

    #[test]
    fn zero_segments_write_nothing_ahead() {
        let mem = Arc::new(MemStorage::new());
        let mut ahead = WriteAhead::new(mem.clone(), 0, 0);
        ahead.offer(&payload(1000));
        assert_eq!(ahead.finish().expect("no error"), (0, 0));
        assert!(mem.to_bytes().is_empty());
    }
}
