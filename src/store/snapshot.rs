//! Read access to one committed state. A [`Snapshot`] owns its version (index chunks and map),
//! so it stays valid and unchanged while the writer commits, and it never takes a lock.

use std::sync::Arc;

use super::Version;
use super::fb;
use super::format::{LOG_START, path_hash};
use super::index::{FileEntry, PlaylistLoc, Slot};
use crate::error::ReadError;
use crate::playlist::{self, Playlist};
use crate::record::{self, Kind, RecordView};

/// A consistent, read-only view of the database at one commit.
///
/// `Send + Sync` and cheap to clone: a server can hand one to every request thread.
#[derive(Clone)]
pub struct Snapshot {
    pub(super) v: Arc<Version>,
}

/// Counts and sizes at one commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Sequence number of the commit.
    pub seq: u64,
    /// Format version of the file.
    pub format_version: u32,
    /// Live records.
    pub records: u64,
    /// Bytes of live record buffers.
    pub live_bytes: u64,
    /// Bytes of the committed log (header slots included).
    pub committed_bytes: u64,
    /// Committed bytes that hold no live record: replaced and removed records, and the index
    /// entries, frame headers and padding every commit writes (which a compacted file holds
    /// too; [`Snapshot::reclaimable_bytes`] is what `compact` gives back).
    pub dead_bytes: u64,
    /// The next id the database will hand out.
    pub next_id: u64,
    /// When the database was created (ns since the Unix epoch).
    pub created_unix_ns: u64,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("seq", &self.v.header.seq)
            .field("records", &self.v.index.live_records)
            .finish()
    }
}

impl Snapshot {
    pub(crate) fn new(v: Arc<Version>) -> Snapshot {
        Snapshot { v }
    }

    /// The column cache, if one belongs to this database (see `columns.rs`).
    pub(crate) fn columns(&self) -> Option<&super::columns::Columns> {
        self.v.columns.as_deref()
    }

    /// The ids of the records stored by the frames from absolute log offset `from` to this
    /// snapshot's end: every id whose index entry may have changed since a state whose log
    /// ended at `from` (a removed id may be missing; its entry says it is not live). Each frame
    /// is read whole: its checksum and its Batch are checked, and the frames must follow one
    /// another up to the end exactly. `None` when they do not, or when `from` is not in the
    /// log: the caller then cannot tell which entries changed.
    ///
    /// The cost is one pass over those frames' bytes (a checksum) plus one id per record: a
    /// column cache that lags the log by a little uses it instead of reading every entry.
    pub(crate) fn ids_written_since(&self, from: u64) -> Option<Vec<u64>> {
        let log = self.v.log.bytes();
        let end = LOG_START + log.len() as u64;
        if from < LOG_START || from > end {
            return None;
        }
        let mut ids = Vec::new();
        let mut offset = from;
        while offset < end {
            let frame = super::log::read_frame(log, offset).ok()?;
            let payload_offset = offset + super::format::FRAME_HEADER_LEN as u64;
            let batch = super::log::parse_payload(frame.payload, payload_offset).ok()?;
            ids.extend(batch.records().into_iter().flatten().map(|re| re.id()));
            offset = offset.checked_add(frame.header.frame_len())?;
        }
        (offset == end).then_some(ids)
    }

    /// Sequence number of the commit this snapshot shows (0 for an empty database).
    pub fn seq(&self) -> u64 {
        self.v.header.seq
    }

    /// Number of live records.
    pub fn len(&self) -> u64 {
        self.v.index.live_records
    }

    /// Whether there are no live records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counts and sizes.
    pub fn stats(&self) -> Stats {
        let h = &self.v.header;
        Stats {
            seq: h.seq,
            format_version: h.format_version,
            records: self.v.index.live_records,
            live_bytes: self.v.index.live_bytes,
            committed_bytes: h.committed_len,
            dead_bytes: h.committed_len
                - LOG_START
                - self.v.index.live_bytes.min(h.committed_len - LOG_START),
            next_id: h.next_id,
            created_unix_ns: h.created_unix_ns,
        }
    }

    /// About how many bytes `compact` would give back: the committed log less the compacted
    /// file's length (planned as compaction plans it, its Batch tables estimated generously, so
    /// this errs low). Reads every index entry.
    pub fn reclaimable_bytes(&self) -> u64 {
        self.v
            .header
            .committed_len
            .saturating_sub(super::compact::compacted_len(&self.v))
    }

    /// Live record counts per kind, from the index alone.
    pub fn count_by_kind(&self) -> [(Kind, u64); 5] {
        let mut counts = [0u64; 5];
        for e in self.v.index.entries.iter().filter(FileEntry::is_live) {
            let k = Kind::from_fb(super::fb::Kind(e.kind));
            counts[k as usize] += 1;
        }
        [
            Kind::Other,
            Kind::Audio,
            Kind::Video,
            Kind::Image,
            Kind::Playlist,
        ]
        .map(|k| (k, counts[k as usize]))
    }

    /// The committed log from absolute offset `at` (a table slot's record offset) to its end,
    /// with its first [`HINT_TOUCH`] bytes loaded so that their cache misses overlap; `None`
    /// for offset 0 (unknown) or one outside the log.
    fn log_from(&self, at: u64) -> Option<&[u8]> {
        let start = usize::try_from(at.checked_sub(LOG_START)?).ok()?;
        let rest = self
            .v
            .log
            .bytes()
            .get(start..)
            .filter(|r| at != 0 && !r.is_empty())?;
        touch_lines(&rest[..rest.len().min(HINT_TOUCH)]);
        Some(rest)
    }

    /// The live record of `slot`: the verified record at the slot's offset, when it has the
    /// slot's id. The table holds exactly one slot per live id, with its record's offset
    /// (docs/FORMAT.md §3), so this needs no read of the id's entry: a lookup by path waits
    /// for two cache misses (the slot, then the record), not three. `None` when the slot is a
    /// tombstone, has no offset, or the record there does not verify as the slot's; the entry
    /// then decides (and names any damage).
    fn record_of_slot(&self, slot: Slot) -> Option<RecordView<'_>> {
        let (view, _) = record::verify(self.log_from(slot.at())?).ok()?;
        (view.id() == slot.id()).then_some(view)
    }

    /// The live record at `path`, whose hash is `hash`.
    fn get_hashed(&self, path: &[u8], hash: u64) -> Result<Option<RecordView<'_>>, ReadError> {
        let index = &self.v.index;
        for slot in index.table.candidates(hash) {
            let view = match self.record_of_slot(slot) {
                Some(view) => view,
                None => {
                    let id = slot.id();
                    let Some(e) = index.live_entry(id, hash) else {
                        continue;
                    };
                    self.record_at(id, &e)?
                }
            };
            if view.path() == path {
                return Ok(Some(view));
            }
        }
        self.index_intact()?;
        Ok(None)
    }

    /// Verifies and returns the record an entry points at.
    fn record_at(&self, id: u64, e: &FileEntry) -> Result<RecordView<'_>, ReadError> {
        let bad = |what: String| ReadError::Record {
            offset: e.offset,
            what,
        };
        let bytes = super::log::committed_bytes(self.v.log.bytes(), e.offset, e.len)
            .ok_or_else(|| bad(format!("record {id} lies outside the committed log")))?;
        touch_lines(bytes);
        let (view, len) = record::verify(bytes).map_err(|p| bad(format!("record {id}: {p}")))?;
        if len != e.len as usize || view.id() != id || !agrees(&view, e) {
            return Err(bad(format!(
                "record {id} does not match its index entry: its bytes are damaged"
            )));
        }
        Ok(view)
    }

    /// The index entry of the live record at `path`, with its id. Compares the stored path, so
    /// a hash collision never returns the wrong file.
    pub fn entry(&self, path: &[u8]) -> Result<Option<(u64, FileEntry)>, ReadError> {
        Ok(self.find(path)?.map(|(id, e, _)| (id, e)))
    }

    fn find(&self, path: &[u8]) -> Result<Option<(u64, FileEntry, RecordView<'_>)>, ReadError> {
        self.find_hashed(path, path_hash(path))
    }

    /// [`find`](Self::find) of a path whose hash is known.
    fn find_hashed(
        &self,
        path: &[u8],
        hash: u64,
    ) -> Result<Option<(u64, FileEntry, RecordView<'_>)>, ReadError> {
        let index = &self.v.index;
        for slot in index.table.candidates(hash) {
            // The slot's offset lets the record's cache misses overlap the entry's, instead of
            // waiting for the entry to say where the record is: only the loads are wanted.
            let _ = self.log_from(slot.at());
            let id = slot.id();
            let Some(e) = index.live_entry(id, hash) else {
                continue;
            };
            let view = self.record_at(id, &e)?;
            if view.path() == path {
                return Ok(Some((id, e, view)));
            }
        }
        self.index_intact()?;
        Ok(None)
    }

    /// `Err(ReadError::IndexDamaged)` when a chunk of the index checkpoint that this snapshot
    /// (or another sharing its index) has read failed its checksum. A reader checks each chunk
    /// of the checkpoint the first time it touches it, so that opening a large database costs
    /// only the pages a lookup needs; a damaged chunk reads as empty. The fallible reads check
    /// this themselves; after walking [`entries`](Self::entries), call it to know that nothing
    /// was skipped.
    pub fn index_intact(&self) -> Result<(), ReadError> {
        if self.v.index.is_damaged() {
            return Err(ReadError::IndexDamaged);
        }
        Ok(())
    }

    /// Live entries whose path hash is `hash` (see [`crate::store::format::path_hash`]), without
    /// comparing paths: distinct paths may share a hash. A rescan uses this to recognise an
    /// unchanged file by hash plus size, mtime and inode without reading its record.
    pub fn entries_with_hash(&self, hash: u64) -> impl Iterator<Item = (u64, FileEntry)> + '_ {
        self.v.index.live_candidates(hash)
    }

    /// Brings the index slots of these path hashes into cache ahead of looking them up one by
    /// one (see [`entries_with_hash`](Self::entries_with_hash)): a rescan does this for each
    /// directory's files, so that their cache misses overlap instead of coming in turn.
    pub fn touch_hashes(&self, hashes: &[u64]) {
        self.v.index.table.touch(hashes);
    }

    /// The live record at `path` (exact bytes).
    pub fn get(&self, path: &[u8]) -> Result<Option<RecordView<'_>>, ReadError> {
        self.get_hashed(path, path_hash(path))
    }

    /// The live record with `id`.
    pub fn get_by_id(&self, id: u64) -> Result<Option<RecordView<'_>>, ReadError> {
        match self.v.index.entry(id) {
            Some(e) if e.is_live() => self.record_at(id, &e).map(Some),
            _ => self.index_intact().map(|()| None),
        }
    }

    /// The index entry of `id`, if live.
    pub fn entry_by_id(&self, id: u64) -> Option<FileEntry> {
        self.v.index.entry(id).filter(FileEntry::is_live)
    }

    /// Looks up many paths at once; the result is in the order of `paths`.
    ///
    /// Faster than a [`get`](Self::get) per path: the paths go in groups, and each step of
    /// a group's lookups (table slot, then record) is loaded for the whole group before any
    /// of them is used, so that their cache misses overlap instead of coming one after
    /// another.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("lib.mediadb");
    /// use mediadb::{Database, Record};
    ///
    /// let mut db = Database::create(&path)?;
    /// let mut batch = db.batch()?;
    /// batch.upsert(&Record::new(b"/music/a.flac".to_vec()))?;
    /// batch.upsert(&Record::new(b"/music/b.flac".to_vec()))?;
    /// batch.commit()?;
    ///
    /// let snap = db.snapshot();
    /// let found = snap.get_many(&[&b"/music/b.flac"[..], b"/music/gone.flac", b"/music/a.flac"])?;
    /// let paths: Vec<Option<&[u8]>> = found.iter().map(|r| r.as_ref().map(|v| v.path())).collect();
    /// assert_eq!(paths, [Some(&b"/music/b.flac"[..]), None, Some(b"/music/a.flac")]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_many<'s, P: AsRef<[u8]>>(
        &'s self,
        paths: &[P],
    ) -> Result<Vec<Option<RecordView<'s>>>, ReadError> {
        let index = &self.v.index;
        let mut out = Vec::with_capacity(paths.len());
        let mut hashes = [0u64; GET_GROUP];
        for group in paths.chunks(GET_GROUP) {
            let hashes = &mut hashes[..group.len()];
            for (h, p) in hashes.iter_mut().zip(group) {
                *h = path_hash(p.as_ref());
            }
            index.table.touch(hashes);
            for &h in hashes.iter() {
                if let Some(slot) = index.table.candidates(h).next() {
                    // Only the loads of the record's lines are wanted here.
                    let _ = self.log_from(slot.at());
                }
            }
            for (p, &h) in group.iter().zip(hashes.iter()) {
                out.push(self.get_hashed(p.as_ref(), h)?);
            }
        }
        Ok(out)
    }

    /// Every live id and its entry, in id order, without reading records. Entries of a damaged
    /// checkpoint chunk are skipped: check [`index_intact`](Self::index_intact) afterwards.
    pub fn entries(&self) -> impl Iterator<Item = (u64, FileEntry)> + '_ {
        self.v
            .index
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_live())
            .map(|(id, e)| (id as u64, e))
    }

    /// Every live record, in id order.
    pub fn iter(&self) -> impl Iterator<Item = Result<RecordView<'_>, ReadError>> + '_ {
        let mut end_checked = false;
        self.entries()
            .map(move |(id, e)| self.record_at(id, &e))
            .chain(std::iter::from_fn(move || {
                // One last item when the walk met a damaged chunk of the checkpoint.
                if end_checked {
                    return None;
                }
                end_checked = true;
                self.index_intact().err().map(Err)
            }))
    }

    /// Every live record whose path lies under directory `dir` (at any depth), in id order.
    /// `dir` may end with `/` or not; `"/"` means everything.
    pub fn iter_dir<'s>(
        &'s self,
        dir: &'s [u8],
    ) -> impl Iterator<Item = Result<RecordView<'s>, ReadError>> + 's {
        let dir = dir.strip_suffix(b"/").unwrap_or(dir);
        self.iter().filter(move |r| match r {
            Ok(v) => {
                let p = v.path();
                p.len() > dir.len() && p.starts_with(dir) && p[dir.len()] == b'/'
            }
            Err(_) => true,
        })
    }

    /// Verifies and decodes the playlist with `id` at `loc`.
    fn playlist_at(&self, id: u64, loc: &PlaylistLoc) -> Result<Playlist, ReadError> {
        let fb = self.playlist_fb(id, loc)?;
        Ok(playlist::from_fb(&fb))
    }

    /// The verified playlist buffer with `id` at `loc`.
    fn playlist_fb(&self, id: u64, loc: &PlaylistLoc) -> Result<fb::Playlist<'_>, ReadError> {
        let bad = |what: String| ReadError::Record {
            offset: loc.offset,
            what,
        };
        let bytes = super::log::committed_bytes(self.v.log.bytes(), loc.offset, loc.len)
            .ok_or_else(|| bad(format!("playlist {id} lies outside the committed log")))?;
        let p = playlist::verify(bytes).map_err(|p| bad(format!("playlist {id}: {}", p.0)))?;
        if p.id() != id {
            return Err(bad(format!("playlist {id} does not match its location")));
        }
        Ok(p)
    }

    /// Number of playlists.
    pub fn playlist_count(&self) -> usize {
        self.v.index.playlists.len()
    }

    /// Every playlist's id and name, in id order.
    pub fn playlist_names(&self) -> Result<Vec<(u64, String)>, ReadError> {
        self.v
            .index
            .playlists
            .iter()
            // Only the name: verified, but the entries are not copied out.
            .map(|(&id, loc)| Ok((id, self.playlist_fb(id, loc)?.name().to_owned())))
            .collect()
    }

    /// Every playlist, ordered by name.
    pub fn playlists(&self) -> Result<Vec<Playlist>, ReadError> {
        let mut all = self
            .v
            .index
            .playlists
            .iter()
            .map(|(&id, loc)| self.playlist_at(id, loc))
            .collect::<Result<Vec<_>, _>>()?;
        all.sort_by(|a, b| {
            crate::query::natural_cmp(a.name.as_bytes(), b.name.as_bytes()).then(a.id.cmp(&b.id))
        });
        Ok(all)
    }

    /// The playlist with `id`.
    pub fn playlist(&self, id: u64) -> Result<Option<Playlist>, ReadError> {
        match self.v.index.playlists.get(&id) {
            Some(loc) => self.playlist_at(id, loc).map(Some),
            None => Ok(None),
        }
    }

    /// The playlist named `name` (exactly).
    pub fn playlist_by_name(&self, name: &str) -> Result<Option<Playlist>, ReadError> {
        for (&id, loc) in self.v.index.playlists.iter() {
            let p = self.playlist_at(id, loc)?;
            if p.name == name {
                return Ok(Some(p));
            }
        }
        Ok(None)
    }
}

/// Paths [`Snapshot::get_many`] takes through each step of a lookup together: enough misses in
/// flight to keep the memory system busy, few enough that the first group's lines are still in
/// cache when its records are verified.
const GET_GROUP: usize = 32;

/// Bytes from a table slot's record offset that a lookup loads before verifying the record:
/// a typical music record is about 330 bytes.
const HINT_TOUCH: usize = 384;

/// Loads one byte of every cache line of `bytes`. The loads do not depend on each other, so the
/// CPU overlaps their misses; the verifier that follows chases offsets through the buffer, and
/// without this would wait for each line in turn.
#[inline]
fn touch_lines(bytes: &[u8]) {
    let mut x = 0u8;
    for b in bytes.iter().step_by(64) {
        x ^= *b;
    }
    if let Some(last) = bytes.last() {
        x ^= *last;
    }
    std::hint::black_box(x);
}

/// Whether the fields a record shares with its index entry agree: its path (by hash), size,
/// mtime, inode and kind. The entry comes from a checkpoint or a frame checked by its own CRC,
/// so a record covered by a checkpoint, whose frame open does not read again, still cannot
/// hand out a damaged path or stat as if it were sound (`verify` checks every byte).
fn agrees(view: &RecordView<'_>, e: &FileEntry) -> bool {
    view.size() == e.size
        && view.mtime_ns() == e.mtime_ns
        && view.inode() == e.inode
        && view.kind().to_fb().0 == e.kind
        && path_hash(view.path()) == e.path_hash
}
