//! Writing: a [`WriteBatch`] collects upserts and removals, encoding each record into the frame
//! as it arrives, and `commit()` appends the frame and flips the header slot (docs/FORMAT.md §2).

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use flatbuffers::FlatBufferBuilder;

use super::ahead::WriteAhead;
use super::columns::{Delta, Deltas};
use super::crc;
use super::format::{
    ALIGN, FLAG_ERROR, FRAME_HEADER_LEN, FrameHeader, LOG_START, MAX_FILE_LEN, MAX_FRAME_PAYLOAD,
    MAX_PLAYLIST_LEN, MAX_RECORD_LEN, SLOT_OFFSETS, align_up, path_hash,
};
use super::{Database, IdentityHasher, Version, fb, log};
use crate::error::CommitError;
use crate::playlist::{self, Playlist};
use crate::record::{self, Record};

/// What a commit did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CommitInfo {
    /// Sequence number of the commit (unchanged when the batch was empty and nothing was written).
    pub seq: u64,
    /// Records written (new and updated).
    pub upserted: u64,
    /// Of those, records that got a new id.
    pub inserted: u64,
    /// Records removed.
    pub removed: u64,
    /// Bytes appended to the file.
    pub bytes: u64,
}

type ByHash = HashMap<u64, u32, BuildHasherDefault<IdentityHasher>>;

const NONE: u32 = u32::MAX;

struct Pending {
    entry: fb::RecordEntry,
    live: bool,
    /// Previous pending record with the same path hash, or `NONE` (set when `by_hash` takes
    /// this record in).
    prev_same_hash: u32,
}

/// A set of changes that commit together or not at all. Operations apply in the order they are
/// made; the last one on a path wins. Dropping a batch without committing discards it.
pub struct WriteBatch<'db> {
    db: &'db mut Database,
    /// Frame being built: header placeholder, then the record area.
    frame: Vec<u8>,
    pending: Vec<Pending>,
    /// The last pending record of each path hash, for `pending[..indexed]`: filled in only
    /// when a lookup needs it, so a batch made by one `upsert_many` never builds it.
    by_hash: ByHash,
    indexed: usize,
    removals: Vec<u64>,
    removed: HashSet<u64>,
    next_id: u64,
    fbb: FlatBufferBuilder<'static>,
    /// Playlists written in this batch: (id, name, offset, len); a later write of an id
    /// replaces the earlier one.
    playlists: Vec<(u64, String, u32, u32)>,
    playlist_removals: Vec<u64>,
    /// Column rows of the pending records, for the column cache (when the database keeps one).
    cols: Option<Deltas>,
    /// The payload as far as it was written ahead of the commit.
    ahead: WriteAhead,
}

impl std::fmt::Debug for WriteBatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBatch")
            .field("upserts", &self.pending.len())
            .field("removals", &self.removals.len())
            .finish()
    }
}

/// The live record for `path` committed in `snap` and not in `removed`, if any.
fn committed_id(
    snap: &super::Snapshot,
    removed: &HashSet<u64>,
    hash: u64,
    path: &[u8],
) -> Result<Option<u64>, CommitError> {
    for (id, _) in snap.v.index.live_candidates(hash) {
        if removed.contains(&id) {
            continue;
        }
        if let Some(v) = snap.get_by_id(id)?
            && v.path() == path
        {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Records per encode task of a bulk upsert.
const CHUNK: usize = 2048;
/// Records a bulk upsert encodes before it appends them to the frame and writes them ahead.
const SLICE: usize = 8 * CHUNK;

/// One encoded slice of a bulk upsert: the index of its first record in the call, and for each
/// chunk of it, the encoded records with their index entries (offsets within the chunk), and
/// the column rows when kept.
struct Encoded {
    first: usize,
    chunks: Vec<(Vec<u8>, Vec<fb::RecordEntry>)>,
    col_rows: Vec<Option<Delta>>,
}

/// Encodes a slice of a bulk upsert (`recs`, the first at index `first` of the call, with
/// their ids and path hashes) on all cores, each chunk into one of `bufs`, while its records
/// are in cache.
fn encode_slice(
    first: usize,
    recs: &[Record],
    ids: &[u64],
    hashes: &[u64],
    bufs: Vec<(Vec<u8>, Vec<fb::RecordEntry>)>,
    keep_cols: bool,
) -> Encoded {
    use rayon::prelude::*;
    let (chunks, col_rows) = recs
        .par_chunks(CHUNK)
        .zip(ids.par_chunks(CHUNK))
        .zip(hashes.par_chunks(CHUNK))
        .zip(bufs)
        .map(|(((rs, is), hs), spare)| {
            let (mut buf, mut entries) = spare;
            buf.clear();
            entries.clear();
            let mut cols = keep_cols.then(|| Delta::with_capacity(rs.len()));
            for ((r, &id), &hash) in rs.iter().zip(is).zip(hs) {
                let start = buf.len();
                record::encode(r, id, &mut buf);
                entries.push(entry_of(r, id, hash, start, buf.len() - start));
                buf.resize(align_up(buf.len()), 0);
                if let Some(c) = &mut cols {
                    c.push(id, r);
                }
            }
            ((buf, entries), cols)
        })
        .unzip();
    Encoded {
        first,
        chunks,
        col_rows,
    }
}

/// What appending an encoded slice to a batch changes.
struct Appending<'a> {
    frame: &'a mut Vec<u8>,
    pending: &'a mut Vec<Pending>,
    ahead: &'a mut WriteAhead,
    spares: &'a mut Spares,
    col_rows: &'a mut Vec<Delta>,
}

impl Appending<'_> {
    /// Appends `done` (a slice of `recs`) to the frame, hands its buffers to the write-ahead
    /// thread, and adds its records as pending but not live. Refuses a slice with a record
    /// over the size limit, or one that would make the frame too large for database `db`.
    fn append(
        &mut self,
        done: Encoded,
        recs: &[Record],
        db: &std::path::Path,
    ) -> Result<(), CommitError> {
        let mut total = 0usize;
        for (chunk, (buf, entries)) in done.chunks.iter().enumerate() {
            total += buf.len();
            if let Some(k) = entries
                .iter()
                .position(|e| e.len() as usize - 4 > MAX_RECORD_LEN)
            {
                return Err(CommitError::BadRecord {
                    path: recs[done.first + chunk * CHUNK + k].path.clone(),
                    what: format!(
                        "encodes to {} bytes, over the {MAX_RECORD_LEN}-byte record limit",
                        entries[k].len()
                    ),
                });
            }
        }
        if self.frame.len() + total > MAX_FRAME_PAYLOAD as usize / 2 {
            return Err(CommitError::TooLarge {
                path: db.to_path_buf(),
                bytes: (self.frame.len() + total) as u64,
            });
        }
        if done.first == 0 {
            // Room for every slice, guessed from the first.
            let slices = recs.len().div_ceil(SLICE);
            self.frame.reserve(total.saturating_mul(slices) + total / 8);
        }
        for (buf, entries) in done.chunks {
            let base = (self.frame.len() - FRAME_HEADER_LEN) as u32;
            self.frame.extend_from_slice(&buf);
            // The write-ahead thread writes these bytes from `buf` itself, not a copy.
            if let Some(buf) = self.ahead.hand(&self.frame[FRAME_HEADER_LEN..], buf) {
                self.spares.bufs.push(buf);
            }
            // Pending, but not live until every slice is in: a refused slice takes them back.
            self.pending.extend(entries.iter().map(|&e| {
                let mut entry = e;
                entry.set_offset(base + e.offset());
                Pending {
                    entry,
                    live: false,
                    prev_same_hash: NONE,
                }
            }));
            self.spares.entries.push(entries);
        }
        self.col_rows.extend(done.col_rows.into_iter().flatten());
        Ok(())
    }
}

/// The index entry of `rec`, stored with `id` at payload `offset` in `len` bytes.
fn entry_of(rec: &Record, id: u64, hash: u64, offset: usize, len: usize) -> fb::RecordEntry {
    let flags = if rec.error.is_some() { FLAG_ERROR } else { 0 };
    fb::RecordEntry::new(
        id,
        hash,
        rec.size,
        rec.mtime_ns,
        rec.inode,
        offset as u32,
        len as u32,
        rec.extractor_version,
        rec.kind.to_fb(),
        flags,
        0,
    )
}

/// Records stored or removed from which a commit does its I/O on a thread of its own (see
/// `commit`): about where applying them to the index takes as long as starting a thread.
const OWN_IO_THREAD: usize = 1000;

/// Encoding buffers (about 1 MB each) a writer keeps for its next batch: what two slices of a
/// bulk upsert use at once (one being encoded, one being appended). Buffers on their way
/// through the write-ahead thread come back for reuse as it writes them.
const KEEP_BUFS: usize = 16;

/// Buffers a writer keeps from one batch to the next. A bulk batch fills tens of megabytes of
/// them, and in fresh memory each page costs a fault, so they are cleared and used again.
#[derive(Default)]
pub(crate) struct Spares {
    /// The frame.
    frame: Vec<u8>,
    /// The builder of the batch table (its records' index entries).
    fbb: Option<FlatBufferBuilder<'static>>,
    /// The pending records.
    pending: Vec<Pending>,
    /// The live pending records' index entries, at commit.
    live: Vec<fb::RecordEntry>,
    /// A bulk upsert's encoding buffers, one per chunk of records: the encoded records (the
    /// write-ahead thread gives these back once it has written them), and their index entries.
    bufs: Vec<Vec<u8>>,
    entries: Vec<Vec<fb::RecordEntry>>,
}

impl Drop for WriteBatch<'_> {
    fn drop(&mut self) {
        // A batch dropped without commit: its write-ahead thread must be done before the next
        // frame is written, and a write of it that failed stops this handle from writing, as
        // a failed commit would (docs/FORMAT.md §2). Nothing committed is touched: those bytes
        // lie past the committed length. (After a commit, `finish` has nothing left to report.)
        if self.ahead.finish().is_err() {
            self.db.poison();
        }
        let spares = &mut self.db.spares;
        spares.bufs.extend(self.ahead.take_spare());
        // As many as a batch usually has in use at once; more would only hold memory.
        spares.bufs.truncate(KEEP_BUFS);
        spares.frame = std::mem::take(&mut self.frame);
        spares.fbb = Some(std::mem::take(&mut self.fbb));
        spares.pending = std::mem::take(&mut self.pending);
        spares.pending.clear();
    }
}

impl<'db> WriteBatch<'db> {
    pub(crate) fn new(db: &'db mut Database) -> WriteBatch<'db> {
        let next_id = db.current.header.next_id;
        let cols = db.checkpoints.then(Deltas::default);
        let ahead = WriteAhead::new(
            Arc::clone(&db.storage),
            db.current.header.committed_len + FRAME_HEADER_LEN as u64,
            db.write_ahead,
        );
        let fbb = db
            .spares
            .fbb
            .take()
            .unwrap_or_else(|| FlatBufferBuilder::with_capacity(1024));
        let mut frame = std::mem::take(&mut db.spares.frame);
        frame.clear();
        frame.resize(FRAME_HEADER_LEN, 0);
        let pending = std::mem::take(&mut db.spares.pending);
        WriteBatch {
            db,
            frame,
            pending,
            by_hash: ByHash::default(),
            indexed: 0,
            removals: Vec::new(),
            removed: HashSet::new(),
            next_id,
            fbb,
            playlists: Vec::new(),
            playlist_removals: Vec::new(),
            cols,
            ahead,
        }
    }

    fn base(&self) -> &Version {
        &self.db.current
    }

    /// Number of operations so far.
    pub fn len(&self) -> usize {
        self.pending.len()
            + self.removals.len()
            + self.playlists.len()
            + self.playlist_removals.len()
    }

    /// Whether the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The path of pending record `i` (our own, already verified encoding).
    fn pending_path(&self, i: usize) -> &[u8] {
        let e = &self.pending[i].entry;
        let start = FRAME_HEADER_LEN + e.offset() as usize;
        match record::verify(&self.frame[start..start + e.len() as usize]) {
            Ok((v, _)) => v.path(),
            Err(_) => &[],
        }
    }

    /// The live pending record for `path`, if any.
    fn find_pending(&mut self, hash: u64, path: &[u8]) -> Option<usize> {
        if self.indexed < self.pending.len() {
            self.by_hash.reserve(self.pending.len() - self.indexed);
            for i in self.indexed..self.pending.len() {
                let h = self.pending[i].entry.path_hash();
                let prev = self.by_hash.insert(h, i as u32).unwrap_or(NONE);
                self.pending[i].prev_same_hash = prev;
            }
            self.indexed = self.pending.len();
        }
        let mut i = *self.by_hash.get(&hash)?;
        while i != NONE {
            let p = &self.pending[i as usize];
            if p.live && self.pending_path(i as usize) == path {
                return Some(i as usize);
            }
            i = p.prev_same_hash;
        }
        None
    }

    /// The live committed record for `path` not yet removed in this batch.
    fn find_committed(&self, hash: u64, path: &[u8]) -> Result<Option<u64>, CommitError> {
        let snap = super::Snapshot::new(Arc::clone(&self.db.current));
        committed_id(&snap, &self.removed, hash, path)
    }

    /// Inserts or replaces the record at `rec.path`; returns its id (kept when the path was
    /// already live). `rec.id` is ignored.
    pub fn upsert(&mut self, rec: &Record) -> Result<u64, CommitError> {
        let hash = path_hash(&rec.path);
        // Nothing changes until the record is encoded: a failed upsert leaves the batch as it
        // was (the earlier pending record of the path stays live, no id is used up).
        let replaced = self.find_pending(hash, &rec.path);
        let id = if let Some(i) = replaced {
            Some(self.pending[i].entry.id())
        } else {
            self.find_committed(hash, &rec.path)?
        };
        let id = self.encode_pending(rec, hash, id)?;
        if let Some(i) = replaced {
            self.pending[i].live = false;
        }
        Ok(id)
    }

    /// Encodes `rec` into the frame as a pending record with `id`, or a new id when `None`.
    fn encode_pending(
        &mut self,
        rec: &Record,
        hash: u64,
        id: Option<u64>,
    ) -> Result<u64, CommitError> {
        if rec.path.is_empty() {
            return Err(CommitError::BadRecord {
                path: Vec::new(),
                what: "empty path".into(),
            });
        }
        let id = id.unwrap_or(self.next_id);
        let start = self.frame.len();
        record::encode(rec, id, &mut self.frame);
        let len = self.frame.len() - start;
        if len - 4 > MAX_RECORD_LEN {
            self.frame.truncate(start);
            return Err(CommitError::BadRecord {
                path: rec.path.clone(),
                what: format!(
                    "encodes to {len} bytes, over the {MAX_RECORD_LEN}-byte record limit"
                ),
            });
        }
        self.frame.resize(align_up(self.frame.len()), 0);
        if self.frame.len() > MAX_FRAME_PAYLOAD as usize / 2 {
            let bytes = self.frame.len() as u64;
            self.frame.truncate(start);
            return Err(CommitError::TooLarge {
                path: self.db.path.clone(),
                bytes,
            });
        }
        if id == self.next_id {
            self.next_id += 1;
        }
        self.push_pending(rec, id, hash, start - FRAME_HEADER_LEN, len, true);
        if let Some(cols) = &mut self.cols {
            cols.push(id, rec);
        }
        self.ahead.offer(&self.frame[FRAME_HEADER_LEN..]);
        Ok(id)
    }

    /// Inserts `rec` under a new id, for a caller that knows its path has no live record,
    /// committed or in this batch, and has its path hash already: a scan, whose walk yields each
    /// path once and whose snapshot, taken under the writer lock, said the path was new. Skips
    /// the lookups [`upsert`](Self::upsert) makes; otherwise the same.
    pub(crate) fn insert_new(&mut self, rec: &Record, hash: u64) -> Result<u64, CommitError> {
        debug_assert_eq!(hash, path_hash(&rec.path));
        debug_assert!(self.find_pending(hash, &rec.path).is_none());
        debug_assert!(matches!(self.find_committed(hash, &rec.path), Ok(None)));
        self.encode_pending(rec, hash, None)
    }

    /// Upserts every record of `recs`, as if by [`upsert`](Self::upsert) on each in order (the
    /// last one on a path wins), but encodes them on all cores. Returns their ids in order. On
    /// an error the batch is left as it was.
    pub fn upsert_many(&mut self, recs: &[Record]) -> Result<Vec<u64>, CommitError> {
        self.upsert_many_inner(recs, false)
    }

    /// Like [`upsert_many`](Self::upsert_many), for restoring a backup: a record whose path
    /// is not live keeps its `id` when that id was never handed out here (`id >= next_id`) and
    /// the gap before it stays within what one frame may skip (docs/FORMAT.md §1.2: a batch
    /// may advance `next_id` by at most its payload length / 8). Otherwise it gets a new id, as
    /// with `upsert`. Ids are never reused.
    pub fn restore_many(&mut self, recs: &[Record]) -> Result<Vec<u64>, CommitError> {
        self.upsert_many_inner(recs, true)
    }

    fn upsert_many_inner(
        &mut self,
        recs: &[Record],
        keep_ids: bool,
    ) -> Result<Vec<u64>, CommitError> {
        use rayon::prelude::*;
        // One pass on all cores: whether a path is empty, and the paths' bytes (which bound
        // how far this call may advance next_id, below).
        let (empty, path_bytes) = recs
            .par_iter()
            .map(|r| (r.path.is_empty(), r.path.len()))
            .reduce(|| (false, 0), |a, b| (a.0 || b.0, a.1 + b.1));
        if let Some(r) = empty
            .then(|| recs.iter().find(|r| r.path.is_empty()))
            .flatten()
        {
            return Err(CommitError::BadRecord {
                path: r.path.clone(),
                what: "empty path".into(),
            });
        }
        let hashes: Vec<u64> = recs.par_iter().map(|r| path_hash(&r.path)).collect();

        // Which paths already have a committed record: probed in table-slot order, so a large
        // batch walks the table sequentially instead of missing the cache per record.
        // Sorted by the hash rotated so that its slot bits come first: slot order, with equal
        // hashes next to each other.
        let slot_bits = self.base().index.table.capacity().trailing_zeros();
        // The keys sit beside the indices, so comparisons do not reach into `hashes`.
        let mut keyed: Vec<(u64, u32)> = hashes
            .par_iter()
            .enumerate()
            .map(|(i, h)| (h.rotate_right(slot_bits), i as u32))
            .collect();
        keyed.par_sort_unstable_by_key(|&(k, _)| k);
        let mut order: Vec<u32> = keyed.into_iter().map(|(_, i)| i).collect();
        // For each record, the one before it in the call with the same hash, if any (compared
        // by path when ids are resolved below).
        let mut local_prev = vec![NONE; recs.len()];
        let mut run = 0;
        while run < order.len() {
            let h = hashes[order[run] as usize];
            let end = run
                + order[run..]
                    .iter()
                    .take_while(|&&i| hashes[i as usize] == h)
                    .count();
            if end - run > 1 {
                order[run..end].sort_unstable();
                for k in run + 1..end {
                    local_prev[order[k] as usize] = order[k - 1];
                }
            }
            run = end;
        }
        // Each core probes its own run of slots.
        let snap = super::Snapshot::new(Arc::clone(&self.db.current));
        let removed = &self.removed;
        let found: Vec<(u32, u64)> = order
            .par_chunks(4096)
            .map(|run| {
                let mut found = Vec::new();
                for &i in run {
                    let (hash, path) = (hashes[i as usize], &recs[i as usize].path);
                    if let Some(id) = committed_id(&snap, removed, hash, path)? {
                        found.push((i, id));
                    }
                }
                Ok(found)
            })
            .collect::<Result<Vec<_>, CommitError>>()?
            .into_iter()
            .flatten()
            .collect();
        drop(snap);
        let mut committed = vec![None; recs.len()];
        for (i, id) in found {
            committed[i as usize] = Some(id);
        }

        // Resolve ids in order, without changing the batch yet.
        let mut ids = Vec::with_capacity(recs.len());
        let mut replaced_local = vec![false; recs.len()];
        let mut replaced_pending = Vec::new();
        let mut next_id = self.next_id;
        // A lower bound on the payload after this call (a record buffer is at least 36 bytes
        // plus its path), hence on how far this batch may advance next_id.
        let min_payload = self.frame.len() - FRAME_HEADER_LEN + 36 * recs.len() + path_bytes;
        let base_next = self.db.current.header.next_id;
        let id_limit = base_next + (min_payload / ALIGN) as u64;
        for (i, (rec, &hash)) in recs.iter().zip(&hashes).enumerate() {
            let mut earlier = local_prev[i];
            let mut found = None;
            while earlier != NONE {
                let j = earlier as usize;
                if !replaced_local[j] && recs[j].path == rec.path {
                    found = Some(j);
                    break;
                }
                earlier = local_prev[j];
            }
            let id = if let Some(j) = found {
                replaced_local[j] = true;
                ids[j]
            } else if let Some(p) = self.find_pending(hash, &rec.path) {
                replaced_pending.push(p);
                self.pending[p].entry.id()
            } else if let Some(id) = committed[i] {
                id
            } else if keep_ids && rec.id >= next_id && rec.id < id_limit {
                next_id = rec.id + 1;
                rec.id
            } else {
                next_id += 1;
                next_id - 1
            };
            ids.push(id);
        }

        // Encode in slices, each on all cores: every chunk of a slice into its own buffer,
        // 8-aligned, with each record's index entry (its offset in the chunk). While one slice
        // is encoded, the one before is appended to the frame and handed to the write-ahead
        // thread, so copying and writing overlap encoding. The batch's records, ids and column
        // rows change only once every slice is in (its pending entries are not live until
        // then).
        let frame_start = self.frame.len();
        let keep_cols = self.cols.is_some();
        let pending_start = self.pending.len();
        let mut col_rows_all: Vec<Delta> = Vec::new();
        let slices: Vec<&[Record]> = recs.chunks(SLICE).collect();
        let mut prev: Option<Encoded> = None;
        for s in 0..=slices.len() {
            let db = &mut *self.db;
            let ahead = &mut self.ahead;
            let n_bufs = slices.get(s).map_or(0, |r| r.len().div_ceil(CHUNK));
            let bufs: Vec<_> = (0..n_bufs)
                .map(|_| {
                    let buf = db.spares.bufs.pop().or_else(|| ahead.reclaim());
                    let entries = db.spares.entries.pop().unwrap_or_default();
                    (buf.unwrap_or_default(), entries)
                })
                .collect();
            let mut to = Appending {
                frame: &mut self.frame,
                pending: &mut self.pending,
                ahead,
                spares: &mut db.spares,
                col_rows: &mut col_rows_all,
            };
            let (next, appended) = rayon::join(
                || {
                    let slice = slices.get(s)?;
                    let first = s * SLICE;
                    let range = first..first + slice.len();
                    Some(encode_slice(
                        first,
                        slice,
                        &ids[range.clone()],
                        &hashes[range],
                        bufs,
                        keep_cols,
                    ))
                },
                || match prev.take() {
                    Some(done) => to.append(done, recs, &db.path),
                    None => Ok(()),
                },
            );
            if let Err(e) = appended {
                // Take back the slices already appended.
                self.frame.truncate(frame_start);
                self.pending.truncate(pending_start);
                self.ahead.truncated(frame_start - FRAME_HEADER_LEN);
                return Err(e);
            }
            prev = next;
        }

        // Apply.
        for p in replaced_pending {
            self.pending[p].live = false;
        }
        if let Some(cols) = &mut self.cols {
            col_rows_all.into_iter().for_each(|c| cols.add(c));
        }
        for (p, replaced) in self.pending[pending_start..].iter_mut().zip(replaced_local) {
            p.live = !replaced;
        }
        self.next_id = next_id;
        Ok(ids)
    }

    /// Stores `rec` under the given `id` (for `recover`, which keeps the ids of the damaged
    /// database). Ids must come in increasing order, each at or above every id handed out so
    /// far, and the path must not be live. Ids skipped on the way are paid for with 8 zero bytes
    /// each in the record area, so the batch keeps the `next_id` bound of docs/FORMAT.md §1.2.
    pub(crate) fn upsert_with_id(&mut self, rec: &Record, id: u64) -> Result<(), CommitError> {
        let bad = |what: String| CommitError::BadRecord {
            path: rec.path.clone(),
            what,
        };
        if rec.path.is_empty() {
            return Err(bad("empty path".into()));
        }
        if id < self.next_id || id == 0 {
            return Err(bad(format!(
                "id {id} is below the next id {}",
                self.next_id
            )));
        }
        let hash = path_hash(&rec.path);
        if self.find_pending(hash, &rec.path).is_some()
            || self.find_committed(hash, &rec.path)?.is_some()
        {
            return Err(bad("the path is already live".into()));
        }
        let start = self.frame.len();
        self.pad_ids(id - self.next_id)?;
        let rstart = self.frame.len();
        record::encode(rec, id, &mut self.frame);
        let len = self.frame.len() - rstart;
        if len - 4 > MAX_RECORD_LEN || align_up(self.frame.len()) > MAX_FRAME_PAYLOAD as usize / 2 {
            self.frame.truncate(start);
            return Err(bad(format!(
                "encodes to {len} bytes, over the record or batch limit"
            )));
        }
        self.frame.resize(align_up(self.frame.len()), 0);
        self.next_id = id + 1;
        self.push_pending(rec, id, hash, rstart - FRAME_HEADER_LEN, len, true);
        if let Some(cols) = &mut self.cols {
            cols.push(id, rec);
        }
        self.ahead.offer(&self.frame[FRAME_HEADER_LEN..]);
        Ok(())
    }

    /// Raises the next id the batch commits to `next_id` (for `recover`), paying 8 zero bytes
    /// per skipped id as [`upsert_with_id`](Self::upsert_with_id) does. A batch that holds no
    /// upsert or removal still commits nothing.
    pub(crate) fn advance_next_id(&mut self, next_id: u64) -> Result<(), CommitError> {
        if next_id > self.next_id {
            self.pad_ids(next_id - self.next_id)?;
            self.next_id = next_id;
        }
        Ok(())
    }

    /// Appends 8 zero bytes per id in `ids` to the record area.
    fn pad_ids(&mut self, ids: u64) -> Result<(), CommitError> {
        let pad = ids
            .checked_mul(ALIGN as u64)
            .and_then(|p| usize::try_from(p).ok())
            .and_then(|p| p.checked_add(self.frame.len()))
            .filter(|&end| end <= MAX_FRAME_PAYLOAD as usize / 2);
        let Some(end) = pad else {
            return Err(CommitError::TooLarge {
                path: self.db.path.clone(),
                bytes: ids.saturating_mul(ALIGN as u64),
            });
        };
        self.frame.resize(end, 0);
        Ok(())
    }

    /// Records an encoded record (at `offset` in the payload, `len` bytes) as pending.
    fn push_pending(
        &mut self,
        rec: &Record,
        id: u64,
        hash: u64,
        offset: usize,
        len: usize,
        live: bool,
    ) {
        let entry = entry_of(rec, id, hash, offset, len);
        self.pending.push(Pending {
            entry,
            live,
            prev_same_hash: NONE,
        });
    }

    /// Removes the record at `path`; returns whether one was live.
    pub fn remove(&mut self, path: &[u8]) -> Result<bool, CommitError> {
        let hash = path_hash(path);
        if let Some(i) = self.find_pending(hash, path) {
            self.pending[i].live = false;
            let id = self.pending[i].entry.id();
            self.remove_committed(id);
            return Ok(true);
        }
        Ok(match self.find_committed(hash, path)? {
            Some(id) => self.remove_committed(id),
            None => false,
        })
    }

    /// Removes the record with `id`; returns whether one was live.
    pub fn remove_id(&mut self, id: u64) -> bool {
        let mut found = false;
        for p in self
            .pending
            .iter_mut()
            .filter(|p| p.live && p.entry.id() == id)
        {
            p.live = false;
            found = true;
        }
        self.remove_committed(id) || found
    }

    /// Records the removal of committed `id` if it is live and not yet removed.
    fn remove_committed(&mut self, id: u64) -> bool {
        let live = self.base().index.entry(id).is_some_and(|e| e.is_live());
        if live && self.removed.insert(id) {
            self.removals.push(id);
            return true;
        }
        false
    }

    /// Writes playlist `p` whole: a new one when `p.id` is 0 (its id is returned), else a
    /// replacement of the live playlist with that id. Names are unique.
    pub fn put_playlist(&mut self, p: &Playlist) -> Result<u64, CommitError> {
        self.put_playlist_inner(p, false)
    }

    /// [`put_playlist`](Self::put_playlist) for a restore (`import` of an export): a playlist
    /// whose `p.id` no live playlist has keeps that id when it was never used in this database
    /// (and the ids before it are not too sparse, as for records restored with
    /// [`restore_many`](Self::restore_many)); otherwise it gets a new one. Restore playlists
    /// in ascending id order to keep as many ids as can be kept.
    pub fn restore_playlist(&mut self, p: &Playlist) -> Result<u64, CommitError> {
        self.put_playlist_inner(p, true)
    }

    fn put_playlist_inner(&mut self, p: &Playlist, keep_id: bool) -> Result<u64, CommitError> {
        let bad = |what: String| CommitError::BadPlaylist {
            name: p.name.clone(),
            what,
        };
        if p.name.trim().is_empty() {
            return Err(bad("a playlist needs a name that is not blank".into()));
        }
        let pending = |id: u64| self.playlists.iter().any(|q| q.0 == id);
        let committed = |id: u64| {
            self.base().index.playlists.contains_key(&id) && !self.playlist_removals.contains(&id)
        };
        // The id asked for, if it is to be new (restored), else the id of the playlist replaced.
        let mut wanted = None;
        let mut replaced_id = p.id;
        if p.id != 0 && !pending(p.id) && !committed(p.id) {
            if !keep_id {
                return Err(bad(format!("no playlist has id {}", p.id)));
            }
            wanted = (p.id >= self.next_id).then_some(p.id);
            replaced_id = 0;
        }
        // The name must not belong to another playlist, committed or in this batch.
        let snap = super::Snapshot::new(Arc::clone(&self.db.current));
        for (id, name) in snap.playlist_names()? {
            let replaced = self.playlists.iter().any(|q| q.0 == id);
            if id != replaced_id && name == p.name && committed(id) && !replaced {
                return Err(bad(
                    "the name is taken; pick another or delete that one".into()
                ));
            }
        }
        if self
            .playlists
            .iter()
            .any(|q| q.0 != replaced_id && q.1 == p.name)
        {
            return Err(bad(
                "the name is taken; pick another or delete that one".into()
            ));
        }
        let start = self.frame.len();
        let mut id = match (replaced_id, wanted) {
            (0, Some(w)) => w,
            (0, None) => self.next_id,
            (r, _) => r,
        };
        playlist::encode(&mut self.fbb, p, id, &mut self.frame);
        if wanted.is_some() {
            // Each id a batch hands out has at least ALIGN bytes of its payload (see
            // `restore_many`): past that bound the id is not kept, and the playlist is encoded
            // again under the next id.
            let payload = align_up(self.frame.len()) - FRAME_HEADER_LEN;
            let limit = self.base().header.next_id + (payload / ALIGN) as u64;
            if id >= limit {
                self.frame.truncate(start);
                id = self.next_id;
                playlist::encode(&mut self.fbb, p, id, &mut self.frame);
            }
        }
        let len = self.frame.len() - start;
        if len - 4 > MAX_PLAYLIST_LEN || align_up(self.frame.len()) > MAX_FRAME_PAYLOAD as usize / 2
        {
            self.frame.truncate(start);
            return Err(bad(format!(
                "encodes to {len} bytes, over the {MAX_PLAYLIST_LEN}-byte playlist limit"
            )));
        }
        self.frame.resize(align_up(self.frame.len()), 0);
        if id >= self.next_id {
            self.next_id = id + 1;
        }
        let offset = (start - FRAME_HEADER_LEN) as u32;
        self.playlists.retain(|q| q.0 != id);
        self.playlists
            .push((id, p.name.clone(), offset, len as u32));
        Ok(id)
    }

    /// Deletes the playlist with `id`; returns whether there was one.
    pub fn delete_playlist(&mut self, id: u64) -> bool {
        let before = self.playlists.len();
        self.playlists.retain(|q| q.0 != id);
        let was_pending = self.playlists.len() != before;
        if self.base().index.playlists.contains_key(&id) && !self.playlist_removals.contains(&id) {
            self.playlist_removals.push(id);
            return true;
        }
        was_pending
    }

    /// Appends the batch durably and publishes it. On an I/O error nothing is committed and the
    /// database handle is poisoned (reopen it; every earlier commit is intact).
    pub fn commit(mut self) -> Result<CommitInfo, CommitError> {
        let base_header = self.base().header;
        let mut live = std::mem::take(&mut self.db.spares.live);
        live.clear();
        live.extend(self.pending.iter().filter(|p| p.live).map(|p| p.entry));
        if live.is_empty()
            && self.removals.is_empty()
            && self.playlists.is_empty()
            && self.playlist_removals.is_empty()
        {
            return Ok(CommitInfo {
                seq: base_header.seq,
                ..CommitInfo::default()
            });
        }
        let seq = base_header.seq + 1;
        let changes = live.len() + self.removals.len();
        // The Batch table, then the trailer.
        self.fbb.reset();
        let records = self.fbb.create_vector(&live);
        let removals = self.fbb.create_vector(&self.removals);
        let refs: Vec<fb::PlaylistRef> = self
            .playlists
            .iter()
            .map(|&(id, _, off, len)| fb::PlaylistRef::new(id, off, len))
            .collect();
        let playlists = (!refs.is_empty()).then(|| self.fbb.create_vector(&refs));
        let playlist_removals = (!self.playlist_removals.is_empty())
            .then(|| self.fbb.create_vector(&self.playlist_removals));
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        let root = fb::Batch::create(
            &mut self.fbb,
            &fb::BatchArgs {
                seq,
                next_id: self.next_id,
                records: Some(records),
                removals: Some(removals),
                time_unix_ns: time,
                playlists,
                playlist_removals,
            },
        );
        self.fbb.finish(root, None);
        let batch_off = self.frame.len() - FRAME_HEADER_LEN;
        self.frame.extend_from_slice(self.fbb.finished_data());
        let batch_len = self.frame.len() - FRAME_HEADER_LEN - batch_off;
        self.frame.resize(align_up(self.frame.len()), 0);
        self.frame
            .extend_from_slice(&(batch_off as u32).to_le_bytes());
        self.frame
            .extend_from_slice(&(batch_len as u32).to_le_bytes());
        debug_assert_eq!(self.frame.len() % ALIGN, 0);
        let at = base_header.committed_len;
        let new_len = at + self.frame.len() as u64;
        if new_len >= MAX_FILE_LEN {
            return Err(CommitError::TooLarge {
                path: self.db.path.clone(),
                bytes: new_len,
            });
        }

        // Counts after the batch, for the header (from the index as it was).
        let index = &self.base().index;
        let mut live_records = index.live_records;
        let mut live_bytes = index.live_bytes;
        let mut inserted = 0;
        for &id in &self.removals {
            let e = index.entry(id).unwrap_or_default();
            live_records -= 1;
            live_bytes -= u64::from(e.len);
        }
        for e in &live {
            match index.entry(e.id()) {
                Some(old) if old.is_live() && !self.removed.contains(&e.id()) => {
                    live_bytes -= u64::from(old.len);
                }
                _ => {
                    live_records += 1;
                    inserted += 1;
                }
            }
            live_bytes += u64::from(e.len());
        }
        let header = super::format::Header {
            format_version: super::format::FORMAT_VERSION,
            generation: base_header.generation + 1,
            committed_len: new_len,
            seq,
            next_id: self.next_id,
            live_records,
            live_bytes,
            ..base_header
        };

        // Two things at once: the I/O that makes the frame durable (mostly waiting for the
        // write-ahead and the two syncs), and applying the frame to the index. The index changes in place, but nothing reads it before this
        // returns: on success the new header and map are published with it; on a failed write
        // the handle is poisoned and its version rebuilt from the file as it was.
        let db = &mut *self.db;
        let storage = Arc::clone(&db.storage);
        let slot = 1 - db.active_slot;
        let payload_offset = at + FRAME_HEADER_LEN as u64;
        // The frame's header needs the payload's crc. With nothing written ahead (a batch
        // smaller than a segment, or the write-ahead off) it is known now, and the whole frame
        // goes in one write; else the I/O thread waits for the write-ahead's crc and writes
        // the header and the rest on their own.
        let payload_len = self.frame.len() - FRAME_HEADER_LEN;
        let frame_header = |payload_crc| {
            FrameHeader::encode_with(seq, base_header.last_frame_crc, payload_len, payload_crc)
        };
        let whole = self.ahead.is_idle().then(|| {
            let (raw, crc) = frame_header(crc::of(&self.frame[FRAME_HEADER_LEN..]));
            self.frame[..FRAME_HEADER_LEN].copy_from_slice(&raw);
            crc
        });
        let ahead = std::sync::Mutex::new(&mut self.ahead);
        let frame: &[u8] = &self.frame;
        let payload = &frame[FRAME_HEADER_LEN..];
        // Set when only the sync that makes the header slot durable failed.
        let unconfirmed = std::sync::atomic::AtomicBool::new(false);
        let io = || -> std::io::Result<super::format::Header> {
            let crc = if let Some(crc) = whole {
                storage.write_at(frame, at)?;
                crc
            } else {
                // What the write-ahead thread wrote: a prefix of the payload, its crc.
                let mut ahead = ahead.lock().unwrap_or_else(|e| e.into_inner());
                let (ahead, ahead_crc) = ahead.finish()?;
                let (raw, crc) = frame_header(crc::append(ahead_crc, &payload[ahead..]));
                storage.write_at(&raw, at)?;
                storage.write_at(&payload[ahead..], payload_offset + ahead as u64)?;
                crc
            };
            storage.sync()?;
            let header = super::format::Header {
                last_frame_crc: crc,
                ..header
            };
            storage.write_at(&header.encode(), SLOT_OFFSETS[slot])?;
            storage.sync().inspect_err(|_| {
                // The slot may be on the disk or not: which is not known.
                unconfirmed.store(true, std::sync::atomic::Ordering::Relaxed);
            })?;
            Ok(header)
        };
        let apply = |current: &mut Arc<Version>| {
            let version = Arc::make_mut(current);
            log::parse_payload(payload, payload_offset)
                .and_then(|b| log::apply(&mut version.index, &b, payload_offset, payload.len()))
        };
        // A large batch's I/O goes on a thread of its own, so that the apply has every thread
        // of the pool (its parts run side by side). A small batch, whose apply takes less than
        // starting a thread, and any batch when the OS refuses a thread, split the two between
        // the threads of the pool instead.
        let big = changes >= OWN_IO_THREAD;
        let (durable, applied) = std::thread::scope(|scope| {
            let spawned = big.then(|| {
                std::thread::Builder::new()
                    .name("mediadb-commit".into())
                    .spawn_scoped(scope, io)
                    .ok()
            });
            match spawned.flatten() {
                Some(thread) => {
                    let applied = apply(&mut db.current);
                    let durable = thread.join().unwrap_or_else(|_| {
                        Err(std::io::Error::other("the commit's I/O thread panicked"))
                    });
                    (durable, applied)
                }
                None => rayon::join(io, || apply(&mut db.current)),
            }
        });
        let header = match durable {
            Ok(header) => header,
            Err(source) => {
                db.poison();
                db.restore(base_header);
                let path = db.path.clone();
                return Err(if unconfirmed.load(std::sync::atomic::Ordering::Relaxed) {
                    CommitError::Unconfirmed { path, source }
                } else {
                    CommitError::Io { path, source }
                });
            }
        };
        // Durable from here on.
        db.active_slot = slot;
        let log_map = match storage.map(LOG_START, new_len - LOG_START) {
            Ok(m) => m,
            Err(source) => {
                db.poison();
                db.restore(base_header);
                return Err(CommitError::Unpublished {
                    path: db.path.clone(),
                    source,
                });
            }
        };
        let version = Arc::make_mut(&mut db.current);
        version.header = header;
        version.log = log_map;
        if let Err(d) = applied {
            // Our own frame failed to parse: a bug. The commit is durable; the next open
            // will report the frame. Stop writing through this handle.
            db.poison();
            return Err(CommitError::Io {
                path: db.path.clone(),
                source: std::io::Error::other(format!(
                    "internal error applying commit: {}",
                    d.what
                )),
            });
        }
        if let Some(cols) = self.cols.take() {
            db.col_delta.extend(cols);
        }
        let upserted = live.len() as u64;
        self.db.spares.live = live;
        self.db.after_commit();
        Ok(CommitInfo {
            seq,
            upserted,
            inserted,
            removed: self.removals.len() as u64,
            bytes: self.frame.len() as u64,
        })
    }
}
