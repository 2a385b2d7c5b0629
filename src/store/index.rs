//! The in-memory index: per-id [`FileEntry`]s and a path-hash table, both split into chunks that
//! the writer and every snapshot share copy-on-write. A commit copies only the chunks it
//! touches, so a snapshot costs a few pointer copies and never blocks the writer.
//!
//! Invariants:
//! * `entries.len() == next_id`; entry 0 is never used; an entry is live iff `offset != 0`.
//! * every live id has exactly one table slot, `(entry.path_hash, id, entry.offset)`: the
//!   table alone says where the live record of a path is. A removed id's slot is a tombstone
//!   (see [`Slot::tombstone`]), which keeps probe runs intact and matches no lookup. The load
//!   (tombstones included) stays at or below 1/2.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use super::crc;
use super::format::{ENTRY_LEN, IDX_CHUNK, TABLE_SLOT_LEN, get_u32, get_u64};
use super::map::Mapping;

/// Items per chunk; also the unit a checkpoint checksums (docs/FORMAT.md §3).
const CHUNK: usize = IDX_CHUNK as usize;
/// Smallest table capacity.
const MIN_TABLE: usize = 1024;

/// What the index knows about one record without reading it: enough for a rescan to decide
/// whether a file changed, and for counts by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileEntry {
    /// XXH3-64 of the path bytes (never 0).
    pub path_hash: u64,
    /// File size in bytes.
    pub size: u64,
    /// Modification time, ns since the Unix epoch.
    pub mtime_ns: i64,
    /// Inode number.
    pub inode: u64,
    /// Absolute offset of the record buffer in the database file; 0 when not live.
    pub offset: u64,
    /// Length of the record buffer (size prefix included).
    pub len: u32,
    /// Extractor version of the stored tags.
    pub extractor_version: u16,
    /// Kind, as the schema's enum value.
    pub kind: u8,
    /// Flags (`FLAG_ERROR`).
    pub flags: u8,
}

impl FileEntry {
    /// Whether a live record has this id.
    pub fn is_live(&self) -> bool {
        self.offset != 0
    }
}

/// A fixed-size item stored little-endian in checkpoint sections.
pub(crate) trait Fixed: Copy + Default + Send + Sync + 'static {
    const LEN: usize;
    fn decode(b: &[u8]) -> Self;
    fn encode(&self, out: &mut Vec<u8>);
}

impl Fixed for FileEntry {
    const LEN: usize = ENTRY_LEN;
    fn decode(b: &[u8]) -> FileEntry {
        FileEntry {
            path_hash: get_u64(b, 0),
            size: get_u64(b, 8),
            mtime_ns: get_u64(b, 16) as i64,
            inode: get_u64(b, 24),
            offset: get_u64(b, 32),
            len: get_u32(b, 40),
            extractor_version: u16::from_le_bytes([b[44], b[45]]),
            kind: b[46],
            flags: b[47],
        }
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.path_hash.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.mtime_ns.to_le_bytes());
        out.extend_from_slice(&self.inode.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.extractor_version.to_le_bytes());
        out.push(self.kind);
        out.push(self.flags);
    }
}

/// One table slot (docs/FORMAT.md §3): the low 32 bits of a path hash (its tag), an id, and
/// the offset of the id's live record (0 when unknown, which only an offset past 2^48 could
/// cause). A lookup by path reads the record there without reading the id's entry. An id of 0
/// marks an empty slot (ids start at 1); an id of 2^48 - 1, a tombstone.
///
/// Stored as two little-endian words: `tag | id << 32`, then `id >> 32 | at << 16`, so the id
/// and the offset have 48 bits each. Both fit: the log is shorter than `MAX_FILE_LEN` (2^48
/// bytes), and every id a log hands out costs at least 8 bytes of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Slot {
    lo: u64,
    hi: u64,
}

impl Slot {
    const LOW_48: u64 = (1 << 48) - 1;

    /// The slot for `id`, whose path hashes to `hash` and whose record is at `at`.
    pub fn new(hash: u64, id: u64, at: u64) -> Slot {
        debug_assert!(id != 0 && id < Slot::DEAD_ID, "id {id} out of slot range");
        let at = if at <= Slot::LOW_48 { at } else { 0 };
        Slot {
            lo: (hash & 0xFFFF_FFFF) | id << 32,
            hi: (id >> 32) | at << 16,
        }
    }

    /// The low 32 bits of the path hash.
    pub fn tag(self) -> u32 {
        self.lo as u32
    }

    /// Whether `hash` has this slot's tag.
    pub fn tag_of(self, hash: u64) -> bool {
        self.tag() == hash as u32
    }

    pub fn id(self) -> u64 {
        (self.lo >> 32) | (self.hi & 0xFFFF) << 32
    }

    /// Where the id's record was when the slot was set; 0 when unknown.
    pub fn at(self) -> u64 {
        self.hi >> 16
    }

    pub fn is_empty(self) -> bool {
        self.id() == 0
    }

    /// The id of a tombstone: never a record's (a log shorter than 2^48 bytes hands out fewer
    /// than 2^45 ids).
    pub const DEAD_ID: u64 = Slot::LOW_48;

    /// What the slot of a removed id becomes: not empty, so that probes for the slots after it
    /// go on, and of an id that no entry has, so that no lookup takes it.
    pub fn tombstone() -> Slot {
        Slot {
            lo: Slot::DEAD_ID << 32 & !0xFFFF_FFFF,
            hi: Slot::DEAD_ID >> 32,
        }
    }

    pub fn is_tombstone(self) -> bool {
        self.id() == Slot::DEAD_ID
    }

    /// The slot a probe for this slot's hash starts at, in a table of `mask + 1` slots.
    fn home(self, mask: usize) -> usize {
        Slot::home_of(self.tag().into(), mask)
    }

    /// The slot a probe for `hash` starts at: picked by the tag's bits alone (a table has at
    /// most 2^32 slots, docs/FORMAT.md §3), so that a slot's home is known from the slot.
    fn home_of(hash: u64, mask: usize) -> usize {
        hash as u32 as usize & mask
    }
}

impl Fixed for Slot {
    const LEN: usize = TABLE_SLOT_LEN;
    fn decode(b: &[u8]) -> Slot {
        Slot {
            lo: get_u64(b, 0),
            hi: get_u64(b, 8),
        }
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.lo.to_le_bytes());
        out.extend_from_slice(&self.hi.to_le_bytes());
    }
}

#[derive(Clone)]
enum Chunk<T> {
    Owned(Vec<T>),
    /// `len` items decoded on access from `map` at byte `start`.
    Mapped {
        map: Mapping,
        start: usize,
        len: usize,
        /// Present when the bytes have not been checked yet: they are checked on first access.
        check: Option<Arc<ChunkCheck>>,
    },
}

/// The checksum of one mapped checkpoint chunk, checked on first access, so that opening a
/// large database reads only the chunks a reader touches. A chunk that fails reads as empty
/// (dead entries, empty slots) and raises the index's damage flag, which every fallible read
/// reports (`ReadError::IndexDamaged`).
pub(crate) struct ChunkCheck {
    crc: u32,
    /// 0: not checked yet; 1: intact; 2: damaged.
    state: AtomicU8,
    damage: Arc<AtomicBool>,
}

impl ChunkCheck {
    fn intact(&self, bytes: &[u8]) -> bool {
        match self.state.load(Ordering::Acquire) {
            1 => true,
            2 => false,
            _ => {
                // Racing readers compute the same answer; storing it twice is harmless.
                let ok = crc::of(bytes) == self.crc;
                if !ok {
                    self.damage.store(true, Ordering::Release);
                }
                self.state.store(if ok { 1 } else { 2 }, Ordering::Release);
                ok
            }
        }
    }
}

impl<T: Fixed> Chunk<T> {
    fn len(&self) -> usize {
        match self {
            Chunk::Owned(v) => v.len(),
            Chunk::Mapped { len, .. } => *len,
        }
    }

    fn get(&self, i: usize) -> T {
        match self {
            Chunk::Owned(v) => v[i],
            Chunk::Mapped {
                map,
                start,
                len,
                check,
            } => {
                let bytes = &map.bytes()[*start..start + len * T::LEN];
                if check.as_ref().is_some_and(|c| !c.intact(bytes)) {
                    return T::default();
                }
                T::decode(&bytes[i * T::LEN..])
            }
        }
    }

    fn owned(&mut self) -> &mut Vec<T> {
        if let Chunk::Mapped { .. } = self {
            let v = (0..self.len()).map(|i| self.get(i)).collect();
            *self = Chunk::Owned(v);
        }
        match self {
            Chunk::Owned(v) => v,
            Chunk::Mapped { .. } => unreachable!("converted above"),
        }
    }
}

/// A growable array of chunks shared copy-on-write.
#[derive(Clone)]
pub(crate) struct Chunked<T> {
    chunks: Vec<Arc<Chunk<T>>>,
    len: usize,
}

impl<T: Fixed> Chunked<T> {
    pub fn new() -> Chunked<T> {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }

    /// `n` default items.
    pub fn filled(n: usize) -> Chunked<T> {
        let mut c = Chunked::new();
        let mut left = n;
        while left > 0 {
            let k = left.min(CHUNK);
            c.chunks.push(Arc::new(Chunk::Owned(vec![T::default(); k])));
            left -= k;
        }
        c.len = n;
        c
    }

    /// Items in chunks of `CHUNK` (the last one may be shorter).
    fn from_chunks(chunks: Vec<Vec<T>>) -> Chunked<T> {
        debug_assert!(chunks.iter().rev().skip(1).all(|c| c.len() == CHUNK));
        let len = chunks.iter().map(Vec::len).sum();
        Chunked {
            chunks: chunks
                .into_iter()
                .map(|c| Arc::new(Chunk::Owned(c)))
                .collect(),
            len,
        }
    }

    /// `n` items stored in `map` from byte `start`; the caller has checked the bounds. With
    /// `lazy`, chunk `k` is checked against `lazy.0[k]` on its first access and a failure raises
    /// `lazy.1`; without, the caller has checked every chunk already.
    pub fn mapped(
        map: &Mapping,
        start: usize,
        n: usize,
        lazy: Option<(&[u32], &Arc<AtomicBool>)>,
    ) -> Chunked<T> {
        let mut c = Chunked::new();
        let mut i = 0;
        while i < n {
            let k = (n - i).min(CHUNK);
            let check = lazy.map(|(crcs, damage)| {
                Arc::new(ChunkCheck {
                    crc: crcs[i / CHUNK],
                    state: AtomicU8::new(0),
                    damage: damage.clone(),
                })
            });
            c.chunks.push(Arc::new(Chunk::Mapped {
                map: map.clone(),
                start: start + i * T::LEN,
                len: k,
                check,
            }));
            i += k;
        }
        c.len = n;
        c
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn get(&self, i: usize) -> Option<T> {
        if i >= self.len {
            return None;
        }
        Some(self.chunks[i / CHUNK].get(i % CHUNK))
    }

    /// Chunk `k`'s items, to change in place (copied first if shared or mapped).
    fn chunk_mut(&mut self, k: usize) -> &mut [T] {
        Arc::make_mut(&mut self.chunks[k]).owned()
    }

    /// Sets item `i` to `v` for each `(i, v)`, handing `seen` the old and the new item first.
    /// Items that follow each other in one chunk take one copy-on-write check between them,
    /// not one each (the check is an atomic compare-and-swap).
    pub fn set_each(
        &mut self,
        items: impl IntoIterator<Item = (usize, T)>,
        mut seen: impl FnMut(T, T),
    ) {
        let mut k = usize::MAX;
        let mut chunk: &mut [T] = &mut [];
        for (i, v) in items {
            if i / CHUNK != k {
                k = i / CHUNK;
                chunk = self.chunk_mut(k);
            }
            let item = &mut chunk[i % CHUNK];
            seen(*item, v);
            *item = v;
        }
    }

    pub fn set(&mut self, i: usize, v: T) {
        let chunk = Arc::make_mut(&mut self.chunks[i / CHUNK]);
        chunk.owned()[i % CHUNK] = v;
    }

    /// Appends default items until there are `n`.
    pub fn grow_to(&mut self, n: usize) {
        while self.len < n {
            if self.len.is_multiple_of(CHUNK) {
                self.chunks
                    .push(Arc::new(Chunk::Owned(Vec::with_capacity(CHUNK))));
            }
            let last = Arc::make_mut(self.chunks.last_mut().expect("a chunk was pushed"));
            let v = last.owned();
            let k = (n - self.len).min(CHUNK - v.len());
            v.resize(v.len() + k, T::default());
            self.len += k;
        }
    }

    pub fn push(&mut self, v: T) {
        if self.len.is_multiple_of(CHUNK) {
            let mut fresh = Vec::with_capacity(CHUNK);
            fresh.push(v);
            self.chunks.push(Arc::new(Chunk::Owned(fresh)));
        } else {
            let last = self.chunks.last_mut().expect("len > 0 implies a chunk");
            Arc::make_mut(last).owned().push(v);
        }
        self.len += 1;
    }

    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        self.chunks
            .iter()
            .flat_map(|c| (0..c.len()).map(move |i| c.get(i)))
    }

    /// Appends every item's encoding to `out`.
    #[cfg(test)]
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.len * T::LEN);
        for chunk in &self.chunks {
            Self::encode_chunk(chunk, out);
        }
    }

    fn encode_chunk(chunk: &Chunk<T>, out: &mut Vec<u8>) {
        match chunk {
            // Checkpoints are written by writers, whose chunks were all checked at load.
            Chunk::Mapped {
                map, start, len, ..
            } => {
                out.extend_from_slice(&map.bytes()[*start..start + len * T::LEN]);
            }
            Chunk::Owned(v) => v.iter().for_each(|x| x.encode(out)),
        }
    }

    /// Writes every item's encoding to `w` one chunk at a time (memory stays one chunk, not
    /// the whole array) and returns each chunk's CRC-32C and the length written.
    pub fn write_to(&self, w: &mut impl std::io::Write) -> std::io::Result<(Vec<u32>, u64)> {
        self.write_chunks_to(0..self.chunks.len(), w)
    }

    /// Number of chunks: every one holds `CHUNK` items but the last, which may hold fewer.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// [`write_to`](Self::write_to) for chunks `range` only.
    pub fn write_chunks_to(
        &self,
        range: std::ops::Range<usize>,
        w: &mut impl std::io::Write,
    ) -> std::io::Result<(Vec<u32>, u64)> {
        let mut buf = Vec::with_capacity(CHUNK * T::LEN);
        let mut crcs = Vec::with_capacity(range.len());
        let mut n = 0u64;
        for chunk in &self.chunks[range] {
            buf.clear();
            Self::encode_chunk(chunk, &mut buf);
            crcs.push(crc::of(&buf));
            n += buf.len() as u64;
            w.write_all(&buf)?;
        }
        Ok((crcs, n))
    }
}

/// Open-addressing multimap from path hash to id (linear probing, power-of-two capacity).
#[derive(Clone)]
pub(crate) struct Table {
    slots: Chunked<Slot>,
    used: usize,
}

impl Table {
    /// The capacity of a table for `n` pairs: a power of two, 2x..4x `n`.
    fn capacity_for(n: usize) -> usize {
        (n.max(1) * 2).next_power_of_two().max(MIN_TABLE)
    }

    pub fn with_capacity_for(n: usize) -> Table {
        let cap = Table::capacity_for(n);
        Table {
            slots: Chunked::filled(cap),
            used: 0,
        }
    }

    /// A table holding the `live` slots, with the capacity of a table for `room` of them (and
    /// at least for the live ones): 2x..4x that count, a load of 1/4 to 1/2 when full. Built in
    /// slot order, so each lands where [`put_sorted`](Table::put_sorted) would put it, without
    /// probing: at its home slot or just past the one before.
    pub fn build_for(mut live: Vec<Slot>, room: usize) -> Table {
        use rayon::slice::ParallelSliceMut;
        let cap = Table::capacity_for(room.max(live.len()));
        let mask = cap - 1;
        live.par_sort_unstable_by_key(|s| s.home(mask));
        let mut chunks: Vec<Vec<Slot>> = (0..cap.div_ceil(CHUNK))
            .map(|k| vec![Slot::default(); CHUNK.min(cap - k * CHUNK)])
            .collect();
        let mut next = 0;
        let mut wrapped = Vec::new();
        for &slot in &live {
            debug_assert!(!slot.is_empty());
            next = next.max(slot.home(mask));
            if next == cap {
                // Probes past the last slot go on from slot 0.
                wrapped.push(slot);
                continue;
            }
            chunks[next / CHUNK][next % CHUNK] = slot;
            next += 1;
        }
        // Capacity is at least twice the count, so there are free slots for these.
        let mut i = 0;
        for slot in wrapped {
            while !chunks[i / CHUNK][i % CHUNK].is_empty() {
                i += 1;
            }
            chunks[i / CHUNK][i % CHUNK] = slot;
        }
        Table {
            slots: Chunked::from_chunks(chunks),
            used: live.len(),
        }
    }

    /// Puts each slot in the table (linear probing): over the slot of the same id and tag if
    /// there is one before the first empty slot from its home on, which moves its record
    /// offset, else in that empty slot. Given in slot order (home slot ascending), each chunk of
    /// the table is changed once per run of slots in it. Returns false when the table filled
    /// up (which only a checkpoint with a wrong `table_used` can cause), with the slots before
    /// that one put.
    #[must_use]
    pub fn put_sorted(&mut self, slots: &[Slot]) -> bool {
        let cap = self.capacity();
        let mask = cap - 1;
        let mut k = usize::MAX;
        let mut chunk: &mut [Slot] = &mut [];
        for &slot in slots {
            debug_assert!(!slot.is_empty());
            let mut i = slot.home(mask);
            let mut probes = 0;
            loop {
                if probes == cap {
                    return false;
                }
                if i / CHUNK != k {
                    k = i / CHUNK;
                    chunk = self.slots.chunk_mut(k);
                }
                let s = &mut chunk[i % CHUNK];
                if s.is_empty() {
                    *s = slot;
                    self.used += 1;
                    break;
                }
                if s.id() == slot.id() && s.tag() == slot.tag() {
                    *s = slot;
                    break;
                }
                i = (i + 1) & mask;
                probes += 1;
            }
        }
        true
    }

    /// Turns the slot of `id` under `hash` into a tombstone; false when there is none.
    pub fn bury(&mut self, hash: u64, id: u64) -> bool {
        let mask = self.capacity() - 1;
        let mut i = Slot::home_of(hash, mask);
        for _ in 0..self.capacity() {
            let Some(s) = self.slots.get(i) else {
                return false;
            };
            if s.is_empty() {
                return false;
            }
            if s.tag_of(hash) && s.id() == id {
                self.slots.set(i, Slot::tombstone());
                return true;
            }
            i = (i + 1) & mask;
        }
        false
    }

    pub fn from_parts(slots: Chunked<Slot>, used: usize) -> Table {
        Table { slots, used }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn used(&self) -> usize {
        self.used
    }

    pub fn slots(&self) -> &Chunked<Slot> {
        &self.slots
    }

    /// The slots whose tag is `hash`'s (callers compare paths: distinct paths may share a tag).
    pub fn candidates(&self, hash: u64) -> impl Iterator<Item = Slot> + '_ {
        let mask = self.capacity() - 1;
        let mut i = Slot::home_of(hash, mask);
        let mut probes = 0;
        std::iter::from_fn(move || {
            while probes < self.capacity() {
                let s = self.slots.get(i)?;
                probes += 1;
                i = (i + 1) & mask;
                if s.is_empty() {
                    probes = usize::MAX;
                    return None;
                }
                if s.tag_of(hash) {
                    return Some(s);
                }
            }
            None
        })
    }

    /// Reads the first slot of each hash, so that lookups of them right after find those
    /// slots in cache: these loads do not depend on one another, so their misses overlap,
    /// where a lookup's probes must wait for each other.
    pub fn touch(&self, hashes: &[u64]) {
        let mask = self.capacity() - 1;
        let sum = hashes.iter().fold(0u64, |acc, &h| {
            acc ^ self.slots.get(Slot::home_of(h, mask)).map_or(0, Slot::id)
        });
        std::hint::black_box(sum);
    }
}

/// Where a live playlist's buffer lies: the absolute offset of its size prefix, and its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PlaylistLoc {
    pub offset: u64,
    pub len: u32,
}

/// Live playlists by id. Few and small next to the records: a plain map, shared until changed.
pub(crate) type Playlists = std::sync::Arc<std::collections::BTreeMap<u64, PlaylistLoc>>;

/// The whole index at one committed sequence.
#[derive(Clone)]
pub(crate) struct Index {
    pub entries: Chunked<FileEntry>,
    pub table: Table,
    pub live_records: u64,
    pub live_bytes: u64,
    pub playlists: Playlists,
    /// Raised when a lazily checked checkpoint chunk fails its checksum (see [`ChunkCheck`]).
    pub damage: Arc<AtomicBool>,
}

impl Index {
    pub fn empty() -> Index {
        let mut entries = Chunked::new();
        entries.push(FileEntry::default());
        Index {
            entries,
            table: Table::with_capacity_for(0),
            live_records: 0,
            live_bytes: 0,
            playlists: Playlists::default(),
            damage: Arc::default(),
        }
    }

    /// Whether a checkpoint chunk this index reads from failed its checksum.
    pub fn is_damaged(&self) -> bool {
        self.damage.load(Ordering::Acquire)
    }

    pub fn next_id(&self) -> u64 {
        self.entries.len() as u64
    }

    pub fn entry(&self, id: u64) -> Option<FileEntry> {
        self.entries.get(usize::try_from(id).ok()?)
    }

    /// Live ids whose entry carries `hash`.
    pub fn live_candidates(&self, hash: u64) -> impl Iterator<Item = (u64, FileEntry)> + '_ {
        self.table
            .candidates(hash)
            .filter_map(move |s| Some((s.id(), self.live_entry(s.id(), hash)?)))
    }

    /// The entry of `id` if it is live and carries `hash`.
    pub fn live_entry(&self, id: u64, hash: u64) -> Option<FileEntry> {
        let e = self.entry(id)?;
        (e.is_live() && e.path_hash == hash).then_some(e)
    }

    /// Grows `entries` so that `next_id` ids exist.
    pub fn reserve_ids(&mut self, next_id: u64) {
        self.entries
            .grow_to(usize::try_from(next_id).unwrap_or(usize::MAX));
    }

    /// Marks `id` dead; returns whether it was live.
    pub fn remove(&mut self, id: u64) -> bool {
        match self.entry(id) {
            Some(e) if e.is_live() => {
                self.live_records -= 1;
                self.live_bytes -= u64::from(e.len);
                self.entries.set(id as usize, FileEntry::default());
                self.table.bury(e.path_hash, id);
                true
            }
            _ => false,
        }
    }

    /// Stores every `(id, entry)` as an update or insert of each would, but fills the table in
    /// slot order, so a large batch walks the table sequentially instead of missing the cache
    /// per record.
    ///
    /// The entries and the table change at once, on two cores: each item's slot is put (which
    /// moves the record offset of an id whose path hash is unchanged), and the number of new
    /// slots is counted from the entries as they were. The slot of an id whose path hash
    /// changed (which no writer does) is buried afterwards.
    ///
    /// An id given twice in one call is refused with `Err(id)`, after the call changed the
    /// index: either offset could end up in its slot. No writer does it, so a frame that does
    /// is damaged (and `verify` says so); the caller drops the index.
    pub fn upsert_many(&mut self, items: &[(u64, FileEntry)]) -> Result<(), u64> {
        let mut fresh = 0;
        let mut moved = Vec::new();
        let slots: Vec<Slot> = items
            .iter()
            .map(|&(id, e)| {
                let old = self.entry(id).unwrap_or_default();
                if !old.is_live() || old.path_hash != e.path_hash {
                    fresh += 1;
                    if old.is_live() && !Slot::new(old.path_hash, id, 0).tag_of(e.path_hash) {
                        moved.push((old.path_hash, id));
                    }
                }
                Slot::new(e.path_hash, id, e.offset)
            })
            .collect();
        // Every entry before this call points before the first of its records, so an old
        // entry at or past that offset was set by this call.
        let first_new = items
            .iter()
            .map(|(_, e)| e.offset)
            .min()
            .unwrap_or(u64::MAX);
        let mut twice = false;
        // The rebuild takes every live entry, these included, so it waits for them.
        let rebuild = (self.table.used() + fresh) * 2 > self.table.capacity();
        let Index {
            entries,
            table,
            live_records,
            live_bytes,
            ..
        } = self;
        let ((), inserted) = rayon::join(
            || {
                let items = items.iter().map(|&(id, e)| (id as usize, e));
                entries.set_each(items, |old, new| {
                    if old.is_live() {
                        *live_bytes -= u64::from(old.len);
                        twice |= old.offset >= first_new;
                    } else {
                        *live_records += 1;
                    }
                    *live_bytes += u64::from(new.len);
                });
            },
            || {
                if rebuild {
                    return false;
                }
                let mask = table.capacity() - 1;
                let mut slots = slots;
                slots.sort_unstable_by_key(|s| s.home(mask));
                table.put_sorted(&slots)
            },
        );
        if inserted {
            for (hash, id) in moved {
                self.table.bury(hash, id);
            }
        } else {
            self.rebuild_table();
        }
        if twice {
            let mut seen = std::collections::HashSet::new();
            let id = items
                .iter()
                .find(|(id, _)| !seen.insert(*id))
                .map_or(0, |x| x.0);
            return Err(id);
        }
        Ok(())
    }

    /// The table as a checkpoint writes it, when it differs from this one: rebuilt with the
    /// capacity of a table for its live slots (a load of 1/4 to 1/2, no tombstones) when this
    /// one is larger. A writer's table grows with room to spare (see
    /// [`rebuild_table`](Self::rebuild_table)), which would leave a million records in 4M slots
    /// (64 MB) on disk; written tight, readers map half that, and an unchanged rescan, which
    /// looks up every path, touches half as many pages.
    pub fn tight_table(&self) -> Option<Table> {
        let live = usize::try_from(self.live_records).ok()?;
        if Table::capacity_for(live) >= self.table.capacity() {
            return None;
        }
        let slots: Vec<Slot> = self
            .table
            .slots
            .iter()
            .filter(|s| !s.is_empty() && !s.is_tombstone())
            .collect();
        let room = slots.len();
        Some(Table::build_for(slots, room))
    }

    /// Rebuilds the table from live entries, with room for twice as many; drops tombstones.
    /// The table is rebuilt only when it must grow, and the room makes a database that grows
    /// by large batches rebuild it at every 2x to 4x of its size, not at every batch
    /// that crosses a load of 1/2: a 1M-record ingest in batches of 100,000 rebuilds twice (at
    /// 100,000 and 300,000 records), not four times (the rebuilds' sorts took 48 ms of a 0.49 s
    /// ingest).
    pub fn rebuild_table(&mut self) {
        // The old table goes first: when nothing else shares its chunks, the new one is built
        // in their memory, not in fresh pages that each cost a fault.
        self.table = Table::with_capacity_for(0);
        let mut live = Vec::with_capacity((self.live_records as usize).min(self.entries.len()));
        live.extend(
            self.entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.is_live())
                .map(|(id, e)| Slot::new(e.path_hash, id as u64, e.offset)),
        );
        let room = live.len() * 2;
        self.table = Table::build_for(live, room);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(hash: u64, offset: u64) -> FileEntry {
        FileEntry {
            path_hash: hash,
            offset,
            len: 10,
            ..FileEntry::default()
        }
    }

    #[test]
    fn a_grown_table_is_written_at_the_capacity_of_its_live_slots_and_finds_every_one() {
        let mut ix = Index::empty();
        // Ids start at 1.
        let n = 20_000u64;
        ix.reserve_ids(n + 1);
        // Batches as a bulk load commits them: the table grows with room to spare.
        let hash = |id: u64| id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        for start in (1..=n).step_by(2_000) {
            let batch: Vec<(u64, FileEntry)> = (start..start + 2_000)
                .map(|id| (id, e(hash(id), 4096 + id * 64)))
                .collect();
            ix.upsert_many(&batch).expect("upsert");
        }
        for id in (7..=n).step_by(7) {
            assert!(ix.remove(id));
        }
        let live = ix.live_records as usize;
        assert!(
            ix.table.capacity() > Table::capacity_for(live),
            "the writer's table has room to spare ({} slots for {live})",
            ix.table.capacity()
        );
        let tight = ix.tight_table().expect("a tight table");
        assert_eq!(tight.capacity(), Table::capacity_for(live));
        assert_eq!(tight.used(), live, "no tombstones");
        for id in 1..=n {
            let found: Vec<Slot> = tight
                .candidates(hash(id))
                .filter(|s| s.id() == id)
                .collect();
            if id % 7 == 0 {
                assert!(found.is_empty(), "removed id {id}");
            } else {
                assert_eq!(found.len(), 1, "id {id}");
                assert_eq!(found[0].at(), 4096 + id * 64, "id {id}'s record offset");
            }
        }
        // A tight table is written as it is.
        let mut again = ix.clone();
        again.table = tight;
        assert!(again.tight_table().is_none());
    }

    #[test]
    fn snapshots_do_not_see_later_changes() {
        let mut a = Index::empty();
        a.reserve_ids(3);
        a.upsert_many(&[(1, e(5, 100))]).expect("upsert");
        let snap = a.clone();
        a.upsert_many(&[(2, e(5, 200))]).expect("upsert");
        a.remove(1);
        assert_eq!(
            snap.live_candidates(5).map(|x| x.0).collect::<Vec<_>>(),
            vec![1]
        );
        assert_eq!(
            a.live_candidates(5).map(|x| x.0).collect::<Vec<_>>(),
            vec![2]
        );
        assert_eq!((snap.live_records, a.live_records), (1, 1));
    }

    #[test]
    fn an_id_given_twice_in_one_call_is_refused() {
        let mut ix = Index::empty();
        ix.reserve_ids(3);
        ix.upsert_many(&[(1, e(5, 100))]).expect("upsert");
        assert_eq!(
            ix.upsert_many(&[(2, e(7, 300)), (1, e(5, 400)), (1, e(5, 500))]),
            Err(1)
        );
        // Not an id that was live before the call and is given once.
        let mut ix = Index::empty();
        ix.reserve_ids(3);
        ix.upsert_many(&[(1, e(5, 100))]).expect("upsert");
        ix.upsert_many(&[(1, e(5, 200)), (2, e(5, 300))])
            .expect("each id once");
    }

    /// Asserts the index invariant: each live id has exactly one slot, with its path hash's
    /// tag and its record's offset, and every other occupied slot is a tombstone.
    #[track_caller]
    fn assert_exact(ix: &Index) {
        let mut seen = std::collections::HashMap::new();
        for s in ix.table.slots().iter().filter(|s| !s.is_empty()) {
            if s.is_tombstone() {
                continue;
            }
            let e = ix.entry(s.id()).expect("slot of an id in range");
            assert!(e.is_live(), "slot of dead id {}", s.id());
            assert!(
                s.tag_of(e.path_hash),
                "slot of id {} has a stale tag",
                s.id()
            );
            assert_eq!(s.at(), e.offset, "slot of id {} has a stale offset", s.id());
            assert!(seen.insert(s.id(), ()).is_none(), "id {} twice", s.id());
            assert!(
                ix.table.candidates(e.path_hash).any(|c| c == s),
                "unreachable"
            );
        }
        assert_eq!(seen.len() as u64, ix.live_records);
    }

    #[test]
    fn the_table_holds_exactly_the_live_records_through_updates_removals_and_moves() {
        let mut ix = Index::empty();
        let n = 3000u64;
        ix.reserve_ids(n + 1);
        // Hashes crowded onto few tags (and so onto few homes), so that runs are long and
        // tombstones sit inside them.
        let hash = |id: u64, v: u64| (id % 37) | (id * 7 + v) << 32 | 1;
        let mut at = 8192u64;
        let mut version = vec![0u64; n as usize + 1];
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for round in 0..40 {
            let mut items = Vec::new();
            let mut given = std::collections::HashSet::new();
            for _ in 0..150 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let id = rng % n + 1;
                match rng >> 60 {
                    0..=2 => {
                        if given.insert(id) {
                            ix.remove(id);
                        }
                    }
                    k => {
                        if given.insert(id) {
                            // Now and then the path hash moves (no writer does this).
                            if k == 15 {
                                version[id as usize] += 1;
                            }
                            at += 64;
                            items.push((id, e(hash(id, version[id as usize]), at)));
                        }
                    }
                }
            }
            ix.upsert_many(&items).expect("each id once");
            assert_exact(&ix);
            if round % 10 == 9 {
                ix.rebuild_table();
                assert_exact(&ix);
            }
        }
        // Removing every other one leaves tombstones that lookups of the rest probe past.
        for id in (1..=n).step_by(2) {
            ix.remove(id);
        }
        assert_exact(&ix);
        for id in (2..=n).step_by(2) {
            if let Some(e) = ix.entry(id).filter(FileEntry::is_live) {
                let found: Vec<u64> = ix.live_candidates(e.path_hash).map(|x| x.0).collect();
                assert_eq!(found, vec![id]);
            }
        }
    }

    #[test]
    fn growing_ids_across_chunks_adds_dead_entries_only() {
        let mut c = Chunked::<FileEntry>::new();
        c.push(e(1, 1));
        c.grow_to(3 * CHUNK + 5);
        assert_eq!(c.len(), 3 * CHUNK + 5);
        assert_eq!(c.get(0), Some(e(1, 1)));
        assert!(c.iter().skip(1).all(|x| !x.is_live()));
        c.grow_to(10);
        assert_eq!(c.len(), 3 * CHUNK + 5, "never shrinks");
        c.push(e(2, 2));
        assert_eq!(c.get(3 * CHUNK + 5), Some(e(2, 2)));
    }

    #[test]
    fn table_grows_and_keeps_every_live_id() {
        let mut ix = Index::empty();
        let n = 20_000u64;
        ix.reserve_ids(n + 1);
        for id in 1..=n {
            ix.upsert_many(&[(id, e(id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1, 8192 + id))])
                .expect("upsert");
        }
        for id in (1..=n).step_by(2) {
            ix.remove(id);
        }
        ix.rebuild_table();
        for id in 1..=n {
            let h = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let found: Vec<_> = ix.live_candidates(h).map(|x| x.0).collect();
            assert_eq!(found, if id % 2 == 0 { vec![id] } else { vec![] });
        }
    }

    /// Asserts that `t` holds exactly `pairs` of (hash, id), each findable: no empty slot
    /// between a pair's home slot and the slot it is in (linear probing stops at the first
    /// empty one), and each slot's record offset is the one [`slot_of`] gave it.
    #[track_caller]
    fn assert_holds(t: &Table, pairs: &[(u64, u64)]) {
        let (cap, n) = (t.capacity(), pairs.len());
        let mask = cap - 1;
        assert_eq!(t.used(), n);
        let slots: Vec<Slot> = t.slots().iter().collect();
        let mut held = Vec::new();
        for (at, s) in slots.iter().enumerate().filter(|(_, s)| !s.is_empty()) {
            let mut i = s.home(mask);
            while i != at {
                assert!(!slots[i].is_empty(), "n = {n}: a gap before slot {at}");
                i = (i + 1) % cap;
            }
            assert_eq!(
                s.at(),
                8192 + s.id(),
                "n = {n}: record offset of id {}",
                s.id()
            );
            held.push((s.tag(), s.id()));
        }
        held.sort_unstable();
        let mut want: Vec<(u32, u64)> = pairs.iter().map(|&(h, id)| (h as u32, id)).collect();
        want.sort_unstable();
        assert_eq!(held, want, "n = {n}");
        for &(h, id) in pairs {
            assert!(t.candidates(h).any(|s| s.id() == id), "n = {n}, id {id}");
        }
    }

    /// The slot of `(hash, id)` whose record is at `8192 + id`.
    fn slot_of((hash, id): (u64, u64)) -> Slot {
        Slot::new(hash, id, 8192 + id)
    }

    #[test]
    fn slots_keep_tag_id_and_offset_through_their_encoding() {
        let top = (1 << 48) - 1;
        for (hash, id, at) in [
            (1, 1, 0),
            (u64::MAX, top - 1, top),
            (0xdead_beef_0000_0001, 5, 8192),
        ] {
            let s = Slot::new(hash, id, at);
            let mut b = Vec::new();
            s.encode(&mut b);
            assert_eq!(b.len(), TABLE_SLOT_LEN);
            let d = Slot::decode(&b);
            assert_eq!((d.tag(), d.id(), d.at()), (hash as u32, id, at));
            assert!(!d.is_empty() && d.tag_of(hash));
        }
        // An offset beyond 48 bits (never in a log, which is shorter) is stored as unknown.
        assert_eq!(Slot::new(7, 3, 1 << 48).at(), 0);
        assert!(Slot::default().is_empty());
        // A tombstone is occupied, of no id an entry has, and points nowhere.
        let t = Slot::tombstone();
        assert!(!t.is_empty() && t.is_tombstone());
        assert_eq!((t.id(), t.at()), (top, 0));
    }

    #[test]
    fn built_and_put_tables_hold_every_pair_within_its_probe_run() {
        // Homes crowded at both ends of the table, so runs wrap past the last slot onto pairs
        // whose homes are near slot 0; and a table of several chunks.
        for n in [1usize, 3, 500, 511, 512, 20_000] {
            let cap = Table::capacity_for(n);
            let mask = cap as u64 - 1;
            let pairs: Vec<(u64, u64)> = (0..n as u64)
                .map(|i| {
                    let spread = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    let home = match i % 4 {
                        0 => mask - i % 3,
                        1 => i % 2,
                        _ => spread & mask,
                    };
                    // Distinct hashes, some with the same tag (i above bit 32), with the home
                    // chosen.
                    ((i + 1) << 32 | home, i + 1)
                })
                .collect();
            let built = Table::build_for(pairs.iter().copied().map(slot_of).collect(), n);
            assert_eq!(built.capacity(), cap);
            assert_holds(&built, &pairs);

            // The same pairs put in two batches, each in slot order, the second probing past
            // the first's.
            let mut t = Table::with_capacity_for(n);
            for half in [&pairs[..n / 2], &pairs[n / 2..]] {
                let mut half: Vec<Slot> = half.iter().copied().map(slot_of).collect();
                half.sort_by_key(|s| s.home(mask as usize));
                assert!(t.put_sorted(&half));
            }
            assert_holds(&t, &pairs);
        }
    }

    #[test]
    fn an_update_that_keeps_the_path_moves_the_offset_and_adds_no_slot() {
        let mut ix = Index::empty();
        ix.reserve_ids(3);
        ix.upsert_many(&[(1, e(5, 100)), (2, e(5 | 1 << 40, 200))])
            .expect("upsert");
        ix.upsert_many(&[(1, e(5, 300))]).expect("upsert");
        assert_eq!(ix.table.used(), 2);
        let offsets: Vec<(u64, u64)> = ix.table.candidates(5).map(|s| (s.id(), s.at())).collect();
        assert_eq!(
            offsets,
            vec![(1, 300), (2, 200)],
            "both share the tag; id 1's offset moved"
        );
        assert_eq!(
            ix.live_candidates(5).map(|x| x.0).collect::<Vec<_>>(),
            vec![1],
            "the full hash tells them apart"
        );
    }

    #[test]
    fn mapped_chunks_round_trip_and_copy_on_write() {
        let mut c = Chunked::<FileEntry>::new();
        for i in 0..5000u64 {
            c.push(e(i + 1, i));
        }
        let mut bytes = Vec::new();
        c.encode_into(&mut bytes);
        let map = Mapping::from_vec(bytes);
        let mut m = Chunked::<FileEntry>::mapped(&map, 0, 5000, None);
        assert!(m.iter().eq(c.iter()));
        m.set(4999, e(1, 1));
        assert_eq!(m.get(4999), Some(e(1, 1)));
        assert_eq!(m.get(0), Some(e(1, 0)));
    }
}
