//! Compaction: rewrite the database with only its live records, into a new file that is renamed
//! over the old one (docs/FORMAT.md §6, "Compaction").
//!
//! The new file keeps every live record's id and bytes (records are copied verbatim; every frame
//! that holds one is checked against its checksum, beside the copy, before the new file gets a
//! header slot), the sequence number, `next_id` and the creation time, and gets a fresh
//! `file_id`. Its frames are written through [`Storage`] ([`Database::compact_into`]), so tests
//! can inject faults at every I/O operation; [`Database::compact`] adds the file steps around
//! it: free-space check, temporary file, `sync_all`, checkpoint, rename, directory fsync.

use std::fs::{self, OpenOptions as FsOpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use flatbuffers::FlatBufferBuilder;
use rayon::prelude::*;

use super::checkpoint::{self, idx_path};
use super::crc;
use super::format::{
    ALIGN, ENTRY_LEN, FORMAT_VERSION, FRAME_HEADER_LEN, FRAME_MAGIC, FrameHeader, Header,
    IDX_HEADER_BLOCK, LOG_START, MAX_FRAME_PAYLOAD, SLOT_LEN, SLOT_OFFSETS, TABLE_SLOT_LEN,
    align_up, get_u32,
};
use super::index::{FileEntry, Index, Table};
use super::log::{self, TRAILER_LEN};
use super::storage::{FileStorage, Storage};
use super::{Database, fb, random_id, sync_parent};

/// Largest payload of a compacted frame: records, padding, Batch and trailer. The same half of
/// the format's limit that commits keep to.
const FRAME_BUDGET: u64 = MAX_FRAME_PAYLOAD as u64 / 2;
/// Bytes of one `RecordEntry` in a Batch.
const RECORD_ENTRY_LEN: u64 = 56;
/// Generous bound on a Batch's bytes besides its `RecordEntry` vector, plus the trailer.
const BATCH_OVERHEAD: u64 = 256 + TRAILER_LEN as u64 + ALIGN as u64;
/// Most records in one compacted frame: the Batch of each frame is built and written while the
/// next frame's records are copied, so only the last one waits at the end.
const FRAME_RECORDS: u64 = 1 << 16;
/// Bytes copied per write.
const COPY_CHUNK: usize = 8 << 20;
/// Records handed to the index thread at a time.
const INDEX_PIECE: usize = 1 << 16;

/// Compaction failed or was refused. Unless the variant says otherwise, nothing was changed:
/// the database file is the old one and the temporary file was removed.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    /// The handle is read-only.
    #[error("{}: opened read-only; compaction needs the writer: open the database for writing", .path.display())]
    ReadOnly {
        /// The database path.
        path: PathBuf,
    },
    /// An earlier write through this handle failed.
    #[error("{}: an earlier write failed, so this handle stopped writing; reopen the database, then compact", .path.display())]
    Poisoned {
        /// The database path.
        path: PathBuf,
    },
    /// The handle is not backed by a database file.
    #[error("{}: not a database file; compact a storage-backed database with Database::compact_into", .path.display())]
    NotAFile {
        /// The database path.
        path: PathBuf,
    },
    /// Not enough free space beside the database for the new file and its checkpoint.
    #[error("{}: compaction needs {needed} bytes free in {}, only {available} are; free space or move the database to a larger disk, then retry (nothing was changed)", .path.display(), .dir.display())]
    NoSpace {
        /// The database path.
        path: PathBuf,
        /// The directory the new file would be written in.
        dir: PathBuf,
        /// Bytes the new file and its checkpoint need.
        needed: u64,
        /// Bytes available to this user.
        available: u64,
    },
    /// A frame holding live records fails its checksum (or the index points outside the log):
    /// compaction would hide the damage behind fresh checksums.
    #[error("{}: damaged at byte {offset}: {what}; nothing was changed: run `mediadb verify`, then `mediadb recover OUT`", .path.display())]
    Damaged {
        /// The database path.
        path: PathBuf,
        /// Byte offset of the damaged frame or record.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// The storage handed to [`Database::compact_into`] is not empty.
    #[error("{}: the storage to compact into already holds {len} bytes; pass an empty one", .path.display())]
    NotEmpty {
        /// The database path.
        path: PathBuf,
        /// Bytes found in it.
        len: u64,
    },
    /// Reading, writing or syncing failed.
    #[error("{}: compaction failed: {source}; the database was not changed and no temporary file was left (fix the cause, e.g. free space, and retry)", .path.display())]
    Io {
        /// The file the operation concerned.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The new file was renamed into place but its directory could not be synced: after a crash
    /// the path may hold the old database or the new one (both complete, with the same
    /// records). This handle stopped writing.
    #[error("{}: the compacted file replaced the database, but syncing its directory failed ({source}); reopen the database before writing to it", .path.display())]
    AfterRename {
        /// The database path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// What a compaction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactReport {
    /// The database path.
    pub path: PathBuf,
    /// Length of the database file before.
    pub before_bytes: u64,
    /// Length of the database file after.
    pub after_bytes: u64,
    /// Live records copied.
    pub records: u64,
    /// Frames written.
    pub frames: u64,
    /// Sequence number of the compacted database (the one before, unless the live records need
    /// more frames than there were commits: docs/FORMAT.md §6).
    pub seq: u64,
    /// next_id of the compacted database (unchanged).
    pub next_id: u64,
    /// Whether the new file's checkpoint was written (it is a cache: the next writer writes one
    /// if not).
    pub checkpoint_written: bool,
}

impl CompactReport {
    /// Bytes given back.
    pub fn reclaimed(&self) -> u64 {
        self.before_bytes.saturating_sub(self.after_bytes)
    }
}

/// Refuses when `available` bytes are fewer than `needed`; the threshold check of
/// [`Database::compact`], separate so it can be tested.
pub fn check_free_space(
    path: &Path,
    dir: &Path,
    needed: u64,
    available: u64,
) -> Result<(), CompactError> {
    if available < needed {
        return Err(CompactError::NoSpace {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
            needed,
            available,
        });
    }
    Ok(())
}

/// One frame of the compacted file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FramePlan {
    /// Live ids in `[first, end)` go in this frame.
    first: u64,
    end: u64,
    records: u64,
    /// Record bytes, each padded to 8.
    record_bytes: u64,
    /// next_id before the frame and after it.
    prev_next: u64,
    next_id: u64,
}

impl FramePlan {
    /// Zero bytes after the records so the payload holds 8 bytes per id the frame hands out
    /// (the `next_id` bound of docs/FORMAT.md §1.2).
    fn pad(&self) -> u64 {
        ((self.next_id - self.prev_next) * ALIGN as u64).saturating_sub(self.record_bytes)
    }

    fn payload_estimate(&self) -> u64 {
        self.record_bytes + self.pad() + self.records * RECORD_ENTRY_LEN + BATCH_OVERHEAD
    }
}

/// Splits the live records (in id order) into frames within [`FRAME_BUDGET`] and
/// [`FRAME_RECORDS`].
fn plan(entries: impl Iterator<Item = (u64, u32)>, next_id: u64, seq: u64) -> Vec<FramePlan> {
    // Ids a frame can hand out with nothing but padding.
    let max_ids = (FRAME_BUDGET - BATCH_OVERHEAD) / ALIGN as u64;
    let fits = |records: u64, record_bytes: u64, span: u64| {
        records <= FRAME_RECORDS
            && record_bytes.max(span * ALIGN as u64) + records * RECORD_ENTRY_LEN + BATCH_OVERHEAD
                <= FRAME_BUDGET
    };
    let mut frames = Vec::new();
    let mut cur = FramePlan {
        first: 1,
        end: 1,
        records: 0,
        record_bytes: 0,
        prev_next: 1,
        next_id: 1,
    };
    let fresh = |prev_next: u64| FramePlan {
        first: prev_next,
        end: prev_next,
        records: 0,
        record_bytes: 0,
        prev_next,
        next_id: prev_next,
    };
    for (id, len) in entries {
        let rec = align_up(len as usize) as u64;
        while !fits(
            cur.records + 1,
            cur.record_bytes + rec,
            id + 1 - cur.prev_next,
        ) {
            if cur.records > 0 {
                cur.next_id = cur.end;
            } else {
                cur.next_id = cur.prev_next + max_ids;
                cur.end = cur.next_id;
            }
            frames.push(cur);
            cur = fresh(cur.next_id);
        }
        cur.records += 1;
        cur.record_bytes += rec;
        cur.end = id + 1;
    }
    while !fits(cur.records, cur.record_bytes, next_id - cur.prev_next) {
        if cur.records > 0 {
            cur.next_id = cur.end;
        } else {
            cur.next_id = cur.prev_next + max_ids;
            cur.end = cur.next_id;
        }
        frames.push(cur);
        cur = fresh(cur.next_id);
    }
    if cur.records > 0 || next_id > cur.prev_next || (frames.is_empty() && seq > 0) {
        cur.next_id = next_id;
        cur.end = next_id;
        frames.push(cur);
    }
    frames
}

/// Ends the frame that began at `frame_at`, whose record area holds `rel` bytes: writes its
/// Batch (listing `entries` and `refs`) and trailer, then has its header written (the writer
/// thread knows the payload's crc and the previous frame's). The Batch is verified, as opening
/// the file would, and checked to list what it was given. Returns the frame's payload length,
/// and for a frame of playlists a copy of its Batch.
#[allow(
    clippy::too_many_arguments,
    reason = "the frame's fields, each needed once; a struct would only rename them"
)]
fn close_frame(
    w: &mut Out<'_>,
    fbb: &mut FlatBufferBuilder<'_>,
    frame_at: u64,
    rel: u64,
    seq: u64,
    next_id: u64,
    entries: &[fb::RecordEntry],
    refs: &[fb::PlaylistRef],
) -> io::Result<(u64, Option<Vec<u8>>)> {
    fbb.reset();
    let records = fbb.create_vector(entries);
    let removals = fbb.create_vector::<u64>(&[]);
    let playlists = (!refs.is_empty()).then(|| fbb.create_vector(refs));
    let root = fb::Batch::create(
        fbb,
        &fb::BatchArgs {
            seq,
            next_id,
            records: Some(records),
            removals: Some(removals),
            time_unix_ns: super::now_ns() as i64,
            playlists,
            playlist_removals: None,
        },
    );
    fbb.finish(root, None);
    let batch = fbb.finished_data();
    let parsed = flatbuffers::root_with_opts::<fb::Batch>(&log::batch_options(batch.len()), batch)
        .map_err(|e| e.to_string())
        .and_then(|b| {
            let listed = (
                b.records().map_or(0, |r| r.len()),
                b.playlists().map_or(0, |r| r.len()),
                b.next_id(),
            );
            if listed == (entries.len(), refs.len(), next_id) {
                Ok(())
            } else {
                Err("its Batch does not list the frame's records".into())
            }
        });
    if let Err(what) = parsed {
        return Err(io::Error::other(format!(
            "internal error: compacted frame at byte {frame_at} does not replay: {what}"
        )));
    }
    let kept = (!refs.is_empty()).then(|| batch.to_vec());
    let mut trailer = [0u8; TRAILER_LEN];
    trailer[..4].copy_from_slice(&(rel as u32).to_le_bytes());
    trailer[4..].copy_from_slice(&(batch.len() as u32).to_le_bytes());
    // The Batch goes to the writer in the builder's own buffer: copying tens of megabytes into
    // fresh memory cost more than building them.
    let (mut bytes, head) = std::mem::take(fbb).collapse();
    bytes.drain(..head);
    bytes.resize(align_up(bytes.len()), 0);
    bytes.extend_from_slice(&trailer);
    w.put_owned(bytes)?;
    let payload_len = w.at - frame_at - FRAME_HEADER_LEN as u64;
    w.end_frame(frame_at, seq)?;
    Ok((payload_len, kept))
}

/// A playlist's id and its buffer in the log.
type PlaylistBytes<'l> = (u64, &'l [u8]);

/// Every live playlist's bytes, verified, in id order; `Err((offset, what))` for a damaged one.
/// Their total must fit one frame.
fn playlist_bytes<'l>(
    log: &'l [u8],
    index: &Index,
) -> Result<Vec<PlaylistBytes<'l>>, (u64, String)> {
    let mut out = Vec::with_capacity(index.playlists.len());
    let mut total = 0usize;
    for (&id, loc) in index.playlists.iter() {
        let bytes = super::log::committed_bytes(log, loc.offset, loc.len).ok_or((
            loc.offset,
            format!("playlist {id} lies outside the committed log"),
        ))?;
        let p = crate::playlist::verify(bytes)
            .map_err(|e| (loc.offset, format!("playlist {id}: {}", e.0)))?;
        if p.id() != id {
            return Err((
                loc.offset,
                format!("playlist {id} does not match its location"),
            ));
        }
        total += align_up(bytes.len());
        if total > MAX_FRAME_PAYLOAD as usize / 2 {
            return Err((loc.offset, "the playlists together exceed one frame".into()));
        }
        out.push((id, bytes));
    }
    Ok(out)
}

/// The seq of the first of `k` frames, so that the last one carries `seq` (or `k`, when there
/// were fewer commits than frames).
fn first_seq(seq: u64, k: u64) -> u64 {
    seq.max(k) + 1 - k
}

/// What the writer thread does next, in order.
enum Job {
    /// Writes the bytes at `at`, adding them to the current frame's payload.
    Bytes(Vec<u8>, u64),
    /// Ends the frame whose header goes at `at`: its payload is everything written since the
    /// previous header.
    Header { at: u64, seq: u64, len: u32 },
}

/// Writes frames at increasing offsets a chunk at a time. A second thread makes the writes, in
/// order, and keeps the CRC-32C of each frame's payload and the chain of frame crcs, while this
/// one gathers the next chunk.
struct Out<'scope> {
    /// Where the next gathered byte goes.
    at: u64,
    buf: Vec<u8>,
    jobs: Option<mpsc::SyncSender<Job>>,
    /// Buffers the thread is done with, for reuse.
    spare: mpsc::Receiver<Vec<u8>>,
    /// Ends with the last frame's crc, or the first error.
    writer: Option<std::thread::ScopedJoinHandle<'scope, io::Result<u32>>>,
}

impl<'scope> Out<'scope> {
    /// Starts the writer thread in `scope`.
    fn start(scope: &'scope std::thread::Scope<'scope, '_>, storage: &'scope dyn Storage) -> Self {
        let (jobs, job_rx) = mpsc::sync_channel::<Job>(1);
        let (spare_tx, spare) = mpsc::sync_channel(2);
        let writer = scope.spawn(move || {
            let (mut crc, mut prev_crc) = (0u32, 0u32);
            for job in job_rx {
                match job {
                    Job::Bytes(bytes, at) => {
                        crc = crc::append(crc, &bytes);
                        storage.write_at(&bytes, at)?;
                        // The disk starts on each chunk now, not all at the final sync.
                        storage.start_writeback(at, bytes.len() as u64);
                        let _ = spare_tx.try_send(bytes);
                    }
                    Job::Header { at, seq, len } => {
                        let (raw, frame_crc) = frame_header(seq, prev_crc, len, crc);
                        storage.write_at(&raw, at)?;
                        (crc, prev_crc) = (0, frame_crc);
                    }
                }
            }
            Ok(prev_crc)
        });
        Out {
            at: LOG_START,
            buf: Vec::with_capacity(COPY_CHUNK + (1 << 20)),
            jobs: Some(jobs),
            spare,
            writer: Some(writer),
        }
    }

    /// Appends `bytes` and zeros up to the next multiple of 8.
    fn put_padded(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(bytes);
        self.buf.resize(align_up(self.buf.len()), 0);
        if self.buf.len() >= COPY_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn zeros(&mut self, mut n: u64) -> io::Result<()> {
        while n > 0 {
            let k = n.min(COPY_CHUNK as u64) as usize;
            let l = self.buf.len();
            self.buf.resize(l + k, 0);
            n -= k as u64;
            if self.buf.len() >= COPY_CHUNK {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Queues `bytes` (whole, padded) after what was gathered, without copying them.
    fn put_owned(&mut self, bytes: Vec<u8>) -> io::Result<()> {
        self.flush()?;
        let len = bytes.len() as u64;
        self.send(Job::Bytes(bytes, self.at))?;
        self.at += len;
        Ok(())
    }

    /// Ends the frame whose header goes at `frame_at`, with everything queued since.
    fn end_frame(&mut self, frame_at: u64, seq: u64) -> io::Result<()> {
        self.flush()?;
        let len = self.at - frame_at - FRAME_HEADER_LEN as u64;
        self.send(Job::Header {
            at: frame_at,
            seq,
            len: len as u32,
        })
    }

    /// Hands the gathered bytes to the writer thread.
    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut spare = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(COPY_CHUNK + (1 << 20)));
        spare.clear();
        let full = std::mem::replace(&mut self.buf, spare);
        let len = full.len() as u64;
        self.send(Job::Bytes(full, self.at))?;
        self.at += len;
        Ok(())
    }

    /// Queues a job behind the earlier ones.
    fn send(&mut self, job: Job) -> io::Result<()> {
        let sent = self.jobs.as_ref().is_some_and(|j| j.send(job).is_ok());
        if sent {
            return Ok(());
        }
        // The writer stopped at an error: report it.
        Err(self
            .finish()
            .err()
            .unwrap_or_else(|| io::Error::other("the compaction writer thread stopped")))
    }

    /// Waits for every queued write; returns the last frame's crc.
    fn finish(&mut self) -> io::Result<u32> {
        self.jobs = None;
        match self.writer.take() {
            Some(w) => w
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the compaction writer thread panicked"))),
            None => Err(io::Error::other("the compaction writer thread stopped")),
        }
    }
}

/// The 24-byte frame header for a payload of `len` bytes whose CRC-32C is `payload_crc`
/// (docs/FORMAT.md §1.2); returns it and the frame's crc.
fn frame_header(seq: u64, prev_crc: u32, len: u32, payload_crc: u32) -> ([u8; 24], u32) {
    let mut h = [0u8; FRAME_HEADER_LEN];
    h[0..4].copy_from_slice(&FRAME_MAGIC);
    h[4..8].copy_from_slice(&len.to_le_bytes());
    h[8..16].copy_from_slice(&seq.to_le_bytes());
    h[16..20].copy_from_slice(&prev_crc.to_le_bytes());
    let crc = crc::combine(crc::of(&h[..20]), payload_crc, len as usize);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    (h, crc)
}

/// The frames of the compacted file for commit `v`.
fn plan_of(v: &super::Version) -> Vec<FramePlan> {
    plan(
        v.index
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_live())
            .map(|(id, e)| (id as u64, e.len)),
        v.header.next_id,
        v.header.seq,
    )
}

/// The length of the compacted file for commit `v`, at most (each frame's Batch is estimated
/// generously): what compaction would leave of the log.
pub(crate) fn compacted_len(v: &super::Version) -> u64 {
    // The playlists' frame after the records' (docs/FORMAT.md §6): each buffer padded, a
    // `PlaylistRef` of 16 bytes each in its Batch.
    let playlists = &v.index.playlists;
    let playlist_frame = if playlists.is_empty() {
        0
    } else {
        FRAME_HEADER_LEN as u64
            + playlists
                .values()
                .map(|p| u64::from(p.len).next_multiple_of(ALIGN as u64) + 16)
                .sum::<u64>()
            + BATCH_OVERHEAD
    };
    planned_len(&plan_of(v)) + playlist_frame
}

/// The file length `plans` make, at most.
fn planned_len(plans: &[FramePlan]) -> u64 {
    LOG_START
        + plans
            .iter()
            .map(|p| FRAME_HEADER_LEN as u64 + p.payload_estimate())
            .sum::<u64>()
}

impl Database {
    /// The frames of the compacted file for the current commit.
    fn plan(&self) -> Vec<FramePlan> {
        plan_of(&self.current)
    }

    /// Writes this database's current commit, compacted, into the empty storage `out`: every
    /// live record (copied byte for byte with its id; its frame checked against its checksum
    /// before any header slot is written), the sequence number, `next_id` and creation time, a
    /// fresh `file_id`, both header slots; then syncs `out`.
    /// Every byte goes through `out`, which is how the tests inject faults. The database itself
    /// is not changed. [`compact`](Self::compact) uses this for the file it renames into place.
    pub fn compact_into(&self, out: &dyn Storage) -> Result<CompactReport, CompactError> {
        let (header, frames, _) = self.write_compacted(out, &self.path, &self.plan())?;
        let io = |source| CompactError::Io {
            path: self.path.clone(),
            source,
        };
        out.sync().map_err(io)?;
        Ok(CompactReport {
            path: self.path.clone(),
            before_bytes: self.storage.len().map_err(io)?,
            after_bytes: out.len().map_err(io)?,
            records: header.live_records,
            frames,
            seq: header.seq,
            next_id: header.next_id,
            checkpoint_written: false,
        })
    }

    /// The work of `compact_into` but the final sync; `name` names the output in I/O errors.
    /// Returns the new file's header, its number of frames, and its index: what replaying the
    /// frames would give, built from the entries each records frame's Batch lists (each Batch
    /// verified as it is written) and by applying the playlists frame's Batch.
    fn write_compacted(
        &self,
        out: &dyn Storage,
        name: &Path,
        plans: &[FramePlan],
    ) -> Result<(Header, u64, Index), CompactError> {
        let io = |source| CompactError::Io {
            path: name.to_path_buf(),
            source,
        };
        let len = out.len().map_err(io)?;
        if len != 0 {
            return Err(CompactError::NotEmpty {
                path: name.to_path_buf(),
                len,
            });
        }
        let v = Arc::clone(&self.current);
        let old = v.header;
        let index = &v.index;
        let log = v.log.bytes();
        let live = || {
            index
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.is_live())
                .map(|(id, e)| (id as u64, e))
        };
        let playlists =
            playlist_bytes(log, index).map_err(|(offset, what)| CompactError::Damaged {
                path: self.path.clone(),
                offset,
                what,
            })?;
        // The playlists go in one more frame after the records' (docs/FORMAT.md §6).
        let k = plans.len() as u64 + u64::from(!playlists.is_empty());
        let mut seq = first_seq(old.seq, k);
        // A builder with room for a frame's Batch, so it never grows (and copies) while
        // building it. close_frame hands its buffer to the writer.
        let builder = |records: u64| {
            FlatBufferBuilder::with_capacity(
                usize::try_from(records * RECORD_ENTRY_LEN + BATCH_OVERHEAD).unwrap_or(1 << 16),
            )
        };
        let mut ids = live().peekable();
        // The playlists frame's Batch and where its payload lies, applied after the records'.
        let mut playlist_batch: Option<(Vec<u8>, u64, usize)> = None;
        let (copied, checked) = std::thread::scope(|scope| {
            // The source frames' checksums are checked while their records are copied; the
            // new file gets no header slot unless every one of them holds.
            let checker = scope.spawn(|| {
                let source = self.source_frames(log, live())?;
                check_frame_crcs(&self.path, log, &source)
            });
            let mut w = Out::start(scope, out);
            // The new file's index is built from the records' entries, a piece at a time, on a
            // thread of its own while the copy goes on: what replaying the frames would give.
            let (to_index, pieces) = mpsc::sync_channel::<(u64, Vec<fb::RecordEntry>, u64)>(4);
            let live_records = index.live_records;
            let indexer = scope.spawn(move || {
                let mut index = Index::empty();
                // Sized once for every record, so no piece makes it rebuild.
                index.table = Table::with_capacity_for(live_records as usize);
                for (next_id, entries, payload_at) in pieces {
                    index.reserve_ids(next_id);
                    let items: Vec<(u64, FileEntry)> = entries
                        .iter()
                        .map(|re| (re.id(), log::entry_of(re, payload_at)))
                        .collect();
                    // The ids come from the live index, one each: never twice.
                    if let Err(id) = index.upsert_many(&items) {
                        return Err(io::Error::other(format!(
                            "compaction copied record {id} twice"
                        )));
                    }
                }
                Ok(index)
            });
            let frames = (|| {
                for p in plans {
                    let frame_at = w.at;
                    w.at += FRAME_HEADER_LEN as u64;
                    let mut entries: Vec<fb::RecordEntry> = Vec::with_capacity(p.records as usize);
                    let payload_at = frame_at + FRAME_HEADER_LEN as u64;
                    let mut indexed = 0;
                    let mut rel = 0u64;
                    while let Some(&(id, e)) = ids.peek().filter(|(id, _)| *id < p.end) {
                        if entries.len() - indexed == INDEX_PIECE {
                            let piece = entries[indexed..].to_vec();
                            if to_index.send((id, piece, payload_at)).is_err() {
                                return Err(io::Error::other(
                                    "the compaction index thread stopped",
                                ));
                            }
                            indexed = entries.len();
                        }
                        ids.next();
                        let bytes = record_bytes(log, &e)
                            .filter(|b| get_u32(b, 0) as usize + 4 == b.len())
                            .ok_or_else(|| misplaced_at(id, &e))?;
                        entries.push(fb::RecordEntry::new(
                            id,
                            e.path_hash,
                            e.size,
                            e.mtime_ns,
                            e.inode,
                            rel as u32,
                            e.len,
                            e.extractor_version,
                            fb::Kind(e.kind),
                            e.flags,
                            0,
                        ));
                        w.put_padded(bytes)?;
                        rel += align_up(bytes.len()) as u64;
                    }
                    debug_assert_eq!(entries.len() as u64, p.records);
                    w.zeros(p.pad())?;
                    rel += p.pad();
                    let (payload_len, _) = close_frame(
                        &mut w,
                        &mut builder(p.records),
                        frame_at,
                        rel,
                        seq,
                        p.next_id,
                        &entries,
                        &[],
                    )?;
                    debug_assert!(payload_len <= p.payload_estimate());
                    let piece = entries.split_off(indexed);
                    if to_index.send((p.next_id, piece, payload_at)).is_err() {
                        return Err(io::Error::other("the compaction index thread stopped"));
                    }
                    seq += 1;
                }
                if !playlists.is_empty() {
                    let frame_at = w.at;
                    w.at += FRAME_HEADER_LEN as u64;
                    let mut refs = Vec::with_capacity(playlists.len());
                    let mut rel = 0u64;
                    for &(id, bytes) in &playlists {
                        refs.push(fb::PlaylistRef::new(id, rel as u32, bytes.len() as u32));
                        w.put_padded(bytes)?;
                        rel += align_up(bytes.len()) as u64;
                    }
                    let (payload_len, batch) = close_frame(
                        &mut w,
                        &mut builder(refs.len() as u64 * 2),
                        frame_at,
                        rel,
                        seq,
                        old.next_id,
                        &[],
                        &refs,
                    )?;
                    playlist_batch = Some((
                        batch.unwrap_or_default(),
                        frame_at + FRAME_HEADER_LEN as u64,
                        payload_len as usize,
                    ));
                    seq += 1;
                }
                Ok(w.at)
            })();
            // Every write queued has finished (or failed) before the slots are written.
            let drained = w.finish();
            drop(to_index);
            let index = indexer
                .join()
                .map_err(|_| io::Error::other("the compaction index thread panicked"))
                .and_then(|r| r);
            let checked = checker.join().unwrap_or_else(|_| {
                Err(CompactError::Io {
                    path: self.path.clone(),
                    source: io::Error::other("the compaction checksum thread panicked"),
                })
            });
            (
                frames.and_then(|end| {
                    let last_crc = drained?;
                    index.map(|index| (end, last_crc, index))
                }),
                checked,
            )
        });
        checked?;
        let (committed_len, last_frame_crc, mut new_index) = copied.map_err(|e| {
            match e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<Misplaced>())
            {
                Some(m) => CompactError::Damaged {
                    path: self.path.clone(),
                    offset: m.offset,
                    what: m.what.clone(),
                },
                None => io(e),
            }
        })?;
        if let Some((batch, payload_at, payload_len)) = &playlist_batch {
            let applied =
                flatbuffers::root_with_opts::<fb::Batch>(&log::batch_options(batch.len()), batch)
                    .map_err(|e| e.to_string())
                    .and_then(|b| {
                        log::apply(&mut new_index, &b, *payload_at, *payload_len)
                            .map_err(|d| d.what)
                    });
            if let Err(what) = applied {
                return Err(io(io::Error::other(format!(
                    "internal error: the compacted playlists frame does not replay: {what}"
                ))));
            }
        }
        let mut h = Header {
            format_version: FORMAT_VERSION,
            generation: 1,
            file_id: random_id(),
            committed_len,
            seq: if k == 0 { old.seq } else { seq - 1 },
            last_frame_crc,
            next_id: old.next_id,
            live_records: index.live_records,
            live_bytes: index.live_bytes,
            created_unix_ns: old.created_unix_ns,
        };
        // Both slots describe the compacted state; slot A holds odd generations, B even ones.
        out.write_at(&h.encode(), SLOT_OFFSETS[0]).map_err(io)?;
        h.generation = 2;
        out.write_at(&h.encode(), SLOT_OFFSETS[1]).map_err(io)?;
        if out.len().map_err(io)? < committed_len {
            out.set_len(committed_len).map_err(io)?;
        }
        debug_assert_eq!(SLOT_LEN, h.encode().len());
        // The replayed frames must describe what the header says, as opening checks.
        if (
            new_index.next_id(),
            new_index.live_records,
            new_index.live_bytes,
        ) != (h.next_id, h.live_records, h.live_bytes)
        {
            return Err(io(io::Error::other(
                "internal error: the compacted frames disagree with the header",
            )));
        }
        Ok((h, k, new_index))
    }

    /// Rewrites the database with only its live records, into `NAME.compact.tmp`, and renames
    /// that over `NAME`; this handle then continues on the new file. See docs/FORMAT.md §6 for
    /// the steps and what a crash at each one leaves (always the old database or the new one,
    /// complete).
    ///
    /// Keeps the writer lock throughout. Snapshots and read-only handles opened before keep
    /// reading the old file (its inode lives while they map it); a reader's
    /// [`refresh`](Self::refresh) moves it to the new file. Refuses, changing nothing, when the
    /// directory has less free space than the new file and its checkpoint need, or when a frame
    /// holding live records fails its checksum; removes its temporary files on any failure.
    pub fn compact(&mut self) -> Result<CompactReport, CompactError> {
        self.compact_with(&|s| s)
    }

    /// [`compact`](Self::compact), with every write to the new file going through the storage
    /// `wrap` returns for it (given the real file's storage). For fault-injection tests and I/O
    /// accounting; `compact` passes the file's storage through unchanged.
    pub fn compact_with(
        &mut self,
        wrap: &dyn Fn(Arc<dyn Storage>) -> Arc<dyn Storage>,
    ) -> Result<CompactReport, CompactError> {
        let path = self.path.clone();
        if !self.writable {
            return Err(CompactError::ReadOnly { path });
        }
        if self.poisoned {
            return Err(CompactError::Poisoned { path });
        }
        if !self.checkpoints {
            return Err(CompactError::NotAFile { path });
        }
        let io_at = |p: &Path| {
            let p = p.to_path_buf();
            move |source| CompactError::Io { path: p, source }
        };
        let before_bytes = self.storage.len().map_err(io_at(&path))?;
        self.update_columns();

        // Free space: the new file (planned exactly, up to the Batch estimate) and its checkpoint.
        let v = Arc::clone(&self.current);
        let plans = self.plan();
        let needed = planned_len(&plans) + checkpoint_estimate(&v.index);
        drop(v);
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let vfs = rustix::fs::statvfs(&dir).map_err(|e| CompactError::Io {
            path: dir.clone(),
            source: e.into(),
        })?;
        check_free_space(
            &path,
            &dir,
            needed,
            vfs.f_bavail.saturating_mul(vfs.f_frsize),
        )?;

        let tmp = sibling(&path, ".compact.tmp");
        let tmp_idx = idx_path(&tmp);
        let cleanup = || {
            let _ = fs::remove_file(&tmp);
            let _ = fs::remove_file(&tmp_idx);
            let _ = fs::remove_file(sibling(&tmp_idx, ".tmp"));
        };
        cleanup();
        let prepared = (|| {
            let file = FsOpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(io_at(&tmp))?;
            let storage = Arc::new(FileStorage::new(file).random_access());
            let out = wrap(storage.clone());
            let (header, frames, index) = self.write_compacted(&*out, &tmp, &plans)?;
            // The index was built as the frames were written (what replaying them gives); its
            // checkpoint is written while the file syncs. Nothing is renamed until both are
            // done.
            let (synced, cp) = rayon::join(
                || out.sync().and_then(|()| storage.file().sync_all()),
                || checkpoint::write(&tmp, &header, &index).is_ok(),
            );
            drop(out);
            synced.map_err(io_at(&tmp))?;
            let log = storage
                .map(LOG_START, header.committed_len - LOG_START)
                .map_err(io_at(&tmp))?;
            let version = super::Version {
                header,
                log,
                index,
                columns: None,
            };
            Ok::<_, CompactError>((storage, version, frames, cp))
        })();
        let (storage, version, frames, cp_written) = match prepared {
            Ok(x) => x,
            Err(e) => {
                cleanup();
                return Err(e);
            }
        };

        // The old checkpoint goes first, durably, so the directory never pairs one file with the
        // other's checkpoint (which open would ignore anyway: file_id differs).
        let idx = idx_path(&path);
        let switch = (|| {
            match fs::remove_file(&idx) {
                Ok(()) => self.checkpointed_len = LOG_START,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(&idx)(e)),
            }
            sync_parent(&path).map_err(io_at(&dir))?;
            fs::rename(&tmp, &path).map_err(io_at(&path))
        })();
        if let Err(e) = switch {
            cleanup();
            return Err(e);
        }

        // The new file is in place: this handle continues on it.
        let committed_len = version.header.committed_len;
        let after_bytes = storage.len().unwrap_or(committed_len);
        let report = CompactReport {
            path: path.clone(),
            before_bytes,
            after_bytes,
            records: version.header.live_records,
            frames,
            seq: version.header.seq,
            next_id: version.header.next_id,
            checkpoint_written: false,
        };
        self.storage = storage;
        let mut version = version;
        let old_v = &self.current;
        if let Some(cols) = &old_v.columns
            && super::columns::rebrand(
                &path,
                cols,
                old_v.header.committed_len,
                old_v.header.next_id,
                version.header.file_id,
                committed_len,
            )
        {
            version.columns =
                super::columns::Columns::load(&path, &version.header.file_id, committed_len)
                    .map(Arc::new);
        }
        let old = std::mem::replace(&mut self.current, Arc::new(version));
        // Unmapping the old file and freeing its index take tens of milliseconds for a large
        // database; nobody waits for them (snapshots that still hold it keep it anyway).
        rayon::spawn(move || drop(old));
        self.active_slot = 1;
        self.checkpointed_len = LOG_START;
        if let Err(source) = sync_parent(&path) {
            let _ = fs::remove_file(&tmp_idx);
            self.poison();
            return Err(CompactError::AfterRename { path, source });
        }
        let checkpoint_written = cp_written && fs::rename(&tmp_idx, &idx).is_ok();
        if checkpoint_written {
            self.checkpointed_len = committed_len;
        } else {
            let _ = fs::remove_file(&tmp_idx);
        }
        Ok(CompactReport {
            checkpoint_written,
            ..report
        })
    }
}

impl Database {
    /// Finds the frames of `log` (the committed bytes from `LOG_START`) and which of them hold
    /// a live record, checking that every live record lies inside a frame's payload. The copy
    /// checks each record's size prefix as it reads it, and [`check_frame_crcs`] the checksum
    /// of every frame marked here, so that bit rot anywhere in such a frame stops compaction,
    /// not only damage that breaks a FlatBuffer; frames of dead records only are dropped unread.
    fn source_frames(
        &self,
        log: &[u8],
        live: impl Iterator<Item = (u64, FileEntry)>,
    ) -> Result<SourceFrames, CompactError> {
        let damaged = |rel: usize, what: String| CompactError::Damaged {
            path: self.path.clone(),
            offset: LOG_START + rel as u64,
            what,
        };
        let mut frames: Vec<(usize, usize)> = Vec::new();
        let mut off = 0;
        while off < log.len() {
            let h = FrameHeader::decode(&log[off..])
                .filter(|h| h.frame_len() <= (log.len() - off) as u64)
                .ok_or_else(|| damaged(off, "not a frame header".into()))?;
            frames.push((off, off + h.frame_len() as usize));
            off += h.frame_len() as usize;
        }
        let mut needed = vec![false; frames.len()];
        for (id, e) in live {
            let rel = e
                .offset
                .checked_sub(LOG_START)
                .and_then(|r| usize::try_from(r).ok())
                .unwrap_or(usize::MAX);
            let k = frames.partition_point(|f| f.1 <= rel);
            let fits = k < frames.len()
                && rel >= frames[k].0 + FRAME_HEADER_LEN
                && rel.saturating_add(e.len as usize) <= frames[k].1
                && e.len >= 8;
            if !fits {
                return Err(damaged(rel.min(log.len()), misplaced(id)));
            }
            needed[k] = true;
        }
        Ok(frames
            .into_iter()
            .zip(needed)
            .filter_map(|(f, n)| n.then_some(f))
            .collect())
    }
}

/// Checks each of `frames` (of `log`, the committed bytes of the database at `path`) against
/// its checksum, on all cores.
fn check_frame_crcs(path: &Path, log: &[u8], frames: &SourceFrames) -> Result<(), CompactError> {
    let bad = frames.par_iter().find_map_first(|&(s, e)| {
        let f = &log[s..e];
        (!FrameHeader::check(&f[..FRAME_HEADER_LEN], &f[FRAME_HEADER_LEN..])).then_some(s)
    });
    match bad {
        Some(s) => Err(CompactError::Damaged {
            path: path.to_path_buf(),
            offset: LOG_START + s as u64,
            what: "a frame holding live records fails its checksum: some of its bytes are damaged"
                .into(),
        }),
        None => Ok(()),
    }
}

/// The frames holding live records: (start, end) in the log, in order.
type SourceFrames = Vec<(usize, usize)>;

/// What is wrong when a live record's bytes are not where its index entry says.
fn misplaced(id: u64) -> String {
    format!("live record {id} is not where its index entry says")
}

/// The record bytes an entry points at, if they lie inside the committed log.
/// The error for a live record whose bytes do not start with their size prefix; the caller
/// turns it into [`CompactError::Damaged`].
fn misplaced_at(id: u64, e: &FileEntry) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        Misplaced {
            offset: e.offset,
            what: misplaced(id),
        },
    )
}

/// A live record found out of place during the copy.
#[derive(Debug)]
struct Misplaced {
    offset: u64,
    what: String,
}

impl std::fmt::Display for Misplaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for Misplaced {}

fn record_bytes<'a>(log: &'a [u8], e: &FileEntry) -> Option<&'a [u8]> {
    super::log::committed_bytes(log, e.offset, e.len)
}

fn checkpoint_estimate(index: &Index) -> u64 {
    let entries = index.next_id() * ENTRY_LEN as u64;
    let table = (index.live_records.max(1) * 4).next_power_of_two() * TABLE_SLOT_LEN as u64;
    2 * IDX_HEADER_BLOCK + entries + table
}

fn sibling(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_below_the_need_is_refused_naming_the_file() {
        let p = Path::new("/x/lib.mediadb");
        let d = Path::new("/x");
        assert!(check_free_space(p, d, 100, 100).is_ok());
        assert!(check_free_space(p, d, 100, 1 << 40).is_ok());
        let e = check_free_space(p, d, 101, 100).expect_err("refused");
        assert!(matches!(
            e,
            CompactError::NoSpace {
                needed: 101,
                available: 100,
                ..
            }
        ));
        let msg = e.to_string();
        assert!(
            msg.contains("/x/lib.mediadb") && msg.contains("free space"),
            "{msg}"
        );
    }

    #[test]
    fn a_live_record_not_where_its_entry_says_stops_compaction() {
        let mut db =
            Database::with_storage(Arc::new(super::super::MemStorage::new()), true).expect("db");
        let mut b = db.batch().expect("batch");
        for i in 0..3 {
            let rec = crate::Record {
                path: format!("/m/{i}.flac").into_bytes(),
                ..crate::Record::default()
            };
            b.upsert(&rec).expect("upsert");
        }
        b.commit().expect("commit");
        // An index entry (as a damaged checkpoint could give) 8 bytes past its record: still
        // inside the frame, but not at a size prefix.
        let v = Arc::make_mut(&mut db.current);
        let mut e = v.index.entry(2).expect("entry");
        e.offset += 8;
        e.len = 16;
        v.index.entries.set(2, e);
        let out = super::super::MemStorage::new();
        let err = db.compact_into(&out).expect_err("refused");
        assert!(
            matches!(err, CompactError::Damaged { offset, ref what, .. }
                if offset == e.offset && what.contains("record 2 is not where")),
            "{err:?}"
        );
    }

    #[test]
    fn plans_keep_the_next_id_bound_and_the_budget() {
        // Sparse ids: every frame pays 8 bytes per id it hands out.
        let entries = (1..=1000u64).map(|i| (i * 1000, 100u32));
        let plans = plan(entries, 2_000_000, 5);
        assert_eq!(plans.len(), 1);
        let p = plans[0];
        assert_eq!((p.prev_next, p.next_id, p.records), (1, 2_000_000, 1000));
        assert!(p.record_bytes + p.pad() >= 8 * (2_000_000 - 1));
        // Nothing live but a high next_id: one padding frame.
        let plans = plan(std::iter::empty(), 1000, 3);
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].pad(), 8 * 999);
        // An empty, never-written database: no frame.
        assert!(plan(std::iter::empty(), 1, 0).is_empty());
        // Many large records split into frames within the budget, ids contiguous.
        let big = (1..=3000u64).map(|i| (i, 400_000u32));
        let plans = plan(big, 3001, 2);
        assert!(plans.len() >= 3);
        for w in plans.windows(2) {
            assert_eq!(w[0].next_id, w[1].prev_next);
        }
        for p in &plans {
            assert!(p.payload_estimate() <= FRAME_BUDGET);
        }
        assert_eq!(plans.iter().map(|p| p.records).sum::<u64>(), 3000);
        // Many small records: frames of FRAME_RECORDS, the last one holding the rest.
        let n = 3 * FRAME_RECORDS + 5;
        let plans = plan((1..=n).map(|i| (i, 300u32)), n + 1, 9);
        let counts: Vec<u64> = plans.iter().map(|p| p.records).collect();
        assert_eq!(counts, [FRAME_RECORDS, FRAME_RECORDS, FRAME_RECORDS, 5]);
        assert_eq!(plans.last().map(|p| p.next_id), Some(n + 1));
        assert_eq!(first_seq(2, plans.len() as u64), 1);
        assert_eq!(first_seq(10, 3), 8);
    }
}
