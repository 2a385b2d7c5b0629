//! The column cache `NAME.cols`: for every record id, the values of the fields people browse and
//! filter by (artist, artists, album, album artist, genre, genres, year, directory, MusicBrainz
//! album id), each column a dictionary of distinct values plus one ord per id, and the title and
//! the rest of the path after the directory, one string per id. A query on these fields (a bare
//! word reads them all), a count or a `--group-by` then reads some megabytes of columns instead
//! of verifying a million records.
//!
//! Like the checkpoint it is only a cache, and a weaker one: it may lag the log. It covers the
//! records written before its `committed_len`; a record written later (a new or updated file)
//! has its index entry at or past that offset, and is read from the log instead. Records are
//! never rewritten in place and ids are never reused, so `id < n_ids && entry.offset <
//! committed_len` is exactly "the column holds this record's current values". A file that does
//! not match the database (`file_id`), fails a checksum or is malformed is not used: queries
//! read records, as they would without it. The writer rebuilds it when it writes a checkpoint,
//! reading only the records written since the last build.
//!
//! Layout (little-endian; docs/FORMAT.md §3.1):
//!
//! ```text
//!  off  size  field
//!    0     8  magic          "MDBCOLS\0"
//!    8     4  version        2
//!   12     4  columns        number of column descriptors (11)
//!   16    16  file_id        the database's
//!   32     8  committed_len  records at offsets below this are covered
//!   40     8  n_ids          ids 0..n_ids have a row
//!   48  32 x columns         descriptors: kind u32 (0 one value, 1 a list, 2 an i32,
//!                            3 a string), ndict u32, region offset u64, region length u64,
//!                            region crc u32, 0 u32
//!   …      4  crc            CRC-32C of the bytes before it (at 48 + 32 x columns)
//! 4096     …  regions        one per column, in descriptor order:
//!                              kind 0: dict_offsets (ndict+1) u32, ords n_ids u32, dict bytes
//!                              kind 1: dict_offsets (ndict+1) u32, rows (n_ids+1) u32,
//!                                      ords rows[n_ids] u32, dict bytes
//!                              kind 2: values n_ids i32 (i32::MIN: absent)
//!                              kind 3: offsets (n_ids+1) u32, bytes; a row is empty when
//!                                      absent, else 0x01 followed by its value
//!                            an ord of u32::MAX is "absent"
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs::{self, File};
use std::hash::BuildHasherDefault;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::crc;
use super::format::{get_u32, get_u64};
use super::index::FileEntry;
use super::map::Mapping;
use super::storage::Pieces;
use super::{IdentityHasher, Version};
use crate::record::{Record, RecordView};

const MAGIC: [u8; 8] = *b"MDBCOLS\0";
const VERSION: u32 = 2;
/// How many columns there are.
const NCOLS: usize = Col::ALL.len();
/// The header's bytes up to and including its checksum.
const HEADER_LEN: usize = 48 + DESC_LEN * NCOLS + 4;
const HEADER_BLOCK: u64 = 4096;
const DESC_LEN: usize = 32;
/// The ord of an absent value.
pub(crate) const ABSENT: u32 = u32::MAX;
const ABSENT_INT: i32 = i32::MIN;

/// A column of the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Col {
    /// The artists joined for display (`"A; B"`).
    Artist,
    /// Each artist.
    Artists,
    Album,
    AlbumArtist,
    /// The genres joined for display.
    Genre,
    /// Each genre.
    Genres,
    Year,
    /// The path up to its last `/`.
    Dir,
    MusicbrainzAlbumId,
    /// The title.
    Title,
    /// The path after [`Col::Dir`]'s value: the path is the two joined. It starts with the
    /// `/` before the name, except after the directory `/` itself and the empty one.
    Rest,
}

impl Col {
    pub(crate) const ALL: [Col; 11] = [
        Col::Artist,
        Col::Artists,
        Col::Album,
        Col::AlbumArtist,
        Col::Genre,
        Col::Genres,
        Col::Year,
        Col::Dir,
        Col::MusicbrainzAlbumId,
        Col::Title,
        Col::Rest,
    ];

    fn kind(self) -> u32 {
        match self {
            Col::Artists | Col::Genres => 1,
            Col::Year => 2,
            Col::Title | Col::Rest => 3,
            _ => 0,
        }
    }
}

/// The path after its directory ([`dir_of`]), which [`Col::Rest`] holds.
pub(crate) fn rest_of(p: &[u8]) -> &[u8] {
    // The directory is a prefix of the path (`/` for `/x` is its first byte).
    &p[dir_of(p).len()..]
}

/// The directory part of a path, as the query language's `dir` field has it.
pub(crate) fn dir_of(p: &[u8]) -> &[u8] {
    crate::record::split_path(p).0
}

fn joined<'a>(parts: &[&'a [u8]]) -> Option<Cow<'a, [u8]>> {
    match parts {
        [] => None,
        [one] => Some(Cow::Borrowed(*one)),
        many => Some(Cow::Owned(many.join(&b"; "[..]))),
    }
}

/// One record's values for every column, borrowed from the record where they can be.
struct Row<'a> {
    one: [Option<Cow<'a, [u8]>>; 9],
    lists: [Vec<&'a [u8]>; 2],
    year: i32,
    /// Title and rest of the path.
    strings: [Option<&'a [u8]>; 2],
}

fn row_of<'a>(r: &RecordView<'a>) -> Row<'a> {
    let s = |v: Option<&'a str>| v.map(|x| Cow::Borrowed(x.as_bytes()));
    let artists: Vec<&'a [u8]> = r.artists().map(str::as_bytes).collect();
    let genres: Vec<&'a [u8]> = r.genres().map(str::as_bytes).collect();
    Row {
        one: [
            joined(&artists),
            None,
            s(r.album()),
            s(r.album_artist()),
            joined(&genres),
            None,
            None,
            Some(Cow::Borrowed(dir_of(r.path()))),
            s(r.musicbrainz_album_id()),
        ],
        lists: [artists, genres],
        year: r.year().unwrap_or(ABSENT_INT),
        strings: [r.title().map(str::as_bytes), Some(rest_of(r.path()))],
    }
}

/// The column rows of the records a writer committed (or a batch is about to), so that
/// rebuilding the cache need not read them back from the log. Rows are in commit order; the
/// last row of an id is its current one.
pub(crate) struct Delta {
    ids: Vec<u64>,
    cols: Vec<Builder>,
}

impl Default for Delta {
    fn default() -> Delta {
        Delta {
            ids: Vec::new(),
            cols: Col::ALL.iter().map(|c| Builder::new(*c, 0)).collect(),
        }
    }
}

impl Delta {
    /// Room for `n` rows.
    pub fn with_capacity(n: usize) -> Delta {
        let mut d = Delta::default();
        d.ids.reserve(n);
        for b in &mut d.cols {
            match b.col.kind() {
                1 => {
                    b.ords.reserve(n);
                    b.rows.reserve(n);
                }
                3 => b.rows.reserve(n),
                _ => b.ords.reserve(n),
            }
        }
        d
    }

    /// Adds `rec`'s values as the row of `id`.
    pub fn push(&mut self, id: u64, rec: &Record) {
        self.ids.push(id);
        let one = |b: &mut Builder, v: Option<&[u8]>| {
            let o = v.map_or(ABSENT, |v| b.dict.ord_run(v));
            b.ords.push(o);
        };
        let joined_one = |b: &mut Builder, parts: &[String]| match parts {
            [] => b.ords.push(ABSENT),
            [p] => one(b, Some(p.as_bytes())),
            many => one(b, Some(many.join("; ").as_bytes())),
        };
        let list = |b: &mut Builder, parts: &[String]| {
            for p in parts {
                let o = b.dict.ord_run(p.as_bytes());
                b.ords.push(o);
            }
            b.rows.push(b.ords.len() as u32);
        };
        let c = &mut self.cols;
        // In the order of Col::ALL.
        joined_one(&mut c[0], &rec.artists);
        list(&mut c[1], &rec.artists);
        one(&mut c[2], rec.album.as_deref().map(str::as_bytes));
        one(&mut c[3], rec.album_artist.as_deref().map(str::as_bytes));
        joined_one(&mut c[4], &rec.genres);
        list(&mut c[5], &rec.genres);
        c[6].ords.push(rec.year.unwrap_or(ABSENT_INT) as u32);
        one(&mut c[7], Some(dir_of(&rec.path)));
        one(
            &mut c[8],
            rec.musicbrainz_album_id.as_deref().map(str::as_bytes),
        );
        c[9].push_string(rec.title.as_deref().map(str::as_bytes));
        c[10].push_string(Some(rest_of(&rec.path)));
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

/// The column rows of what a writer committed (or a batch is about to): chunks of rows, each
/// with its own values (runs folded, not interned), in commit order. Chunks are moved, never
/// merged, as batches commit; they are combined only when the cache is written.
#[derive(Default)]
pub(crate) struct Deltas {
    chunks: Vec<Delta>,
}

impl Deltas {
    /// Adds `rec`'s values as the row of `id`.
    pub fn push(&mut self, id: u64, rec: &Record) {
        if self.chunks.last().is_none_or(|c| c.len() >= 4096) {
            self.chunks.push(Delta::default());
        }
        if let Some(c) = self.chunks.last_mut() {
            c.push(id, rec);
        }
    }

    /// Adds a chunk of rows after these.
    pub fn add(&mut self, chunk: Delta) {
        if chunk.len() > 0 {
            self.chunks.push(chunk);
        }
    }

    /// Moves `other`'s rows after these.
    pub fn extend(&mut self, other: Deltas) {
        self.chunks.extend(other.chunks);
    }

    /// Forgets every row (a cache covering them was written).
    pub fn clear(&mut self) {
        self.chunks.clear();
    }

    /// (id, chunk, row) of each id's last row, by id.
    fn latest(&self) -> Vec<(u64, u32, u32)> {
        let mut v: Vec<(u64, u32, u32)> = self
            .chunks
            .iter()
            .enumerate()
            .flat_map(|(c, d)| {
                d.ids
                    .iter()
                    .enumerate()
                    .map(move |(r, &id)| (id, c as u32, r as u32))
            })
            .collect();
        // Stable: rows of one id stay in commit order, and the last one wins.
        v.sort_by_key(|x| x.0);
        let mut out: Vec<(u64, u32, u32)> = Vec::with_capacity(v.len());
        for x in v {
            match out.last_mut() {
                Some(l) if l.0 == x.0 => *l = x,
                _ => out.push(x),
            }
        }
        out
    }
}

/// The column cache's path for database `db`.
pub(crate) fn cols_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".cols");
    PathBuf::from(s)
}

struct Desc {
    kind: u32,
    ndict: u32,
    at: usize,
    len: usize,
    crc: u32,
}

/// A loaded column cache. Each column's region is checked (checksum and structure) the first
/// time a query uses it.
pub(crate) struct Columns {
    map: Mapping,
    committed_len: u64,
    n_ids: u64,
    descs: Vec<Desc>,
    checked: [OnceLock<bool>; NCOLS],
}

impl std::fmt::Debug for Columns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Columns")
            .field("committed_len", &self.committed_len)
            .field("n_ids", &self.n_ids)
            .finish()
    }
}

/// One column's bytes, checked.
pub(crate) struct ColView<'a> {
    kind: u32,
    ndict: usize,
    dict_offsets: &'a [u8],
    rows: &'a [u8],
    ords: &'a [u8],
    dict: &'a [u8],
}

impl<'a> ColView<'a> {
    /// Number of distinct values.
    pub fn ndict(&self) -> usize {
        self.ndict
    }

    /// Distinct value `ord`.
    pub fn value(&self, ord: u32) -> &'a [u8] {
        let o = ord as usize;
        let (a, b) = (
            get_u32(self.dict_offsets, o * 4) as usize,
            get_u32(self.dict_offsets, o * 4 + 4) as usize,
        );
        &self.dict[a..b]
    }

    /// The ord of `id`'s single value (`ABSENT` when it has none).
    pub fn one(&self, id: u64) -> u32 {
        get_u32(self.ords, id as usize * 4)
    }

    /// The ords of `id`'s values, for a list column.
    pub fn many(&self, id: u64) -> impl Iterator<Item = u32> + 'a {
        let i = id as usize;
        let (a, b) = (
            get_u32(self.rows, i * 4) as usize,
            get_u32(self.rows, i * 4 + 4) as usize,
        );
        let ords = self.ords;
        (a..b).map(move |k| get_u32(ords, k * 4))
    }

    /// `id`'s integer value, for an integer column.
    pub fn int(&self, id: u64) -> Option<i32> {
        let v = get_u32(self.ords, id as usize * 4) as i32;
        (v != ABSENT_INT).then_some(v)
    }

    /// `id`'s value, for a string column ([`Col::Title`], [`Col::Rest`]).
    pub fn string(&self, id: u64) -> Option<&'a [u8]> {
        // Checked on load: a row is empty or starts with 0x01.
        self.string_row(id).split_first().map(|(_, v)| v)
    }

    /// `id`'s row as stored, for a string column: empty, or 0x01 and the value.
    fn string_row(&self, id: u64) -> &'a [u8] {
        let i = id as usize;
        &self.dict[get_u32(self.rows, i * 4) as usize..get_u32(self.rows, i * 4 + 4) as usize]
    }

    /// Whether this is a list column.
    pub fn is_list(&self) -> bool {
        self.kind == 1
    }
}

impl Columns {
    /// Loads the cache of `db` if it belongs to this database (`file_id`) and covers a prefix
    /// of the log of `committed_len` bytes.
    pub fn load(db: &Path, file_id: &[u8; 16], committed_len: u64) -> Option<Columns> {
        let file = File::open(cols_path(db)).ok()?;
        let len = file.metadata().ok()?.len();
        if len < HEADER_BLOCK {
            return None;
        }
        let mut h = [0u8; HEADER_LEN];
        file.read_exact_at(&mut h, 0).ok()?;
        let crc_at = h.len() - 4;
        if h[..8] != MAGIC
            || get_u32(&h, 8) != VERSION
            || get_u32(&h, 12) != NCOLS as u32
            || h[16..32] != file_id[..]
            || crc::of(&h[..crc_at]) != get_u32(&h, crc_at)
        {
            return None;
        }
        let covered = get_u64(&h, 32);
        let n_ids = get_u64(&h, 40);
        if covered > committed_len || n_ids > 1 << 40 {
            return None;
        }
        let mut descs = Vec::with_capacity(NCOLS);
        for (k, col) in Col::ALL.iter().enumerate() {
            let d = &h[48 + k * DESC_LEN..48 + (k + 1) * DESC_LEN];
            let (at, rlen) = (get_u64(d, 8), get_u64(d, 16));
            if get_u32(d, 0) != col.kind() || at < HEADER_BLOCK || at.checked_add(rlen)? > len {
                return None;
            }
            descs.push(Desc {
                kind: get_u32(d, 0),
                ndict: get_u32(d, 4),
                at: usize::try_from(at).ok()?,
                len: usize::try_from(rlen).ok()?,
                crc: get_u32(d, 24),
            });
        }
        let map = Mapping::map_file(&file, 0, len).ok()?;
        Some(Columns {
            map,
            committed_len: covered,
            n_ids,
            descs,
            checked: Default::default(),
        })
    }

    /// The log length the cache covers.
    pub fn committed_len(&self) -> u64 {
        self.committed_len
    }

    /// Ids `0..n_ids` have a row.
    pub fn n_ids(&self) -> u64 {
        self.n_ids
    }

    /// Whether the column holds the current values of live record `id` with entry `e`.
    pub fn covers(&self, id: u64, e: &FileEntry) -> bool {
        id < self.n_ids && e.offset < self.committed_len
    }

    /// Column `c`, checked on first use; `None` when it fails its checks.
    pub fn column(&self, c: Col) -> Option<ColView<'_>> {
        let k = Col::ALL.iter().position(|x| *x == c)?;
        let view = self.view(k)?;
        let ok = *self.checked[k].get_or_init(|| {
            let d = &self.descs[k];
            crc::of(&self.map.bytes()[d.at..d.at + d.len]) == d.crc
                && structure_ok(&view, self.n_ids as usize)
        });
        ok.then_some(view)
    }

    /// Splits column `k`'s region into its parts (bounds only).
    fn view(&self, k: usize) -> Option<ColView<'_>> {
        let d = &self.descs[k];
        let region = self.map.bytes().get(d.at..d.at + d.len)?;
        let n = usize::try_from(self.n_ids).ok()?;
        let ndict = d.ndict as usize;
        fn take<'r>(rest: &mut &'r [u8], bytes: usize) -> Option<&'r [u8]> {
            let (a, b) = rest.split_at_checked(bytes)?;
            *rest = b;
            Some(a)
        }
        let mut rest = region;
        let view = match d.kind {
            2 => ColView {
                kind: 2,
                ndict: 0,
                dict_offsets: &[],
                rows: &[],
                ords: take(&mut rest, n * 4)?,
                dict: &[],
            },
            3 => ColView {
                kind: 3,
                ndict: 0,
                dict_offsets: &[],
                rows: take(&mut rest, (n + 1) * 4)?,
                ords: &[],
                dict: rest,
            },
            kind => {
                let dict_offsets = take(&mut rest, (ndict + 1) * 4)?;
                let (rows, nvals) = if kind == 1 {
                    let rows = take(&mut rest, (n + 1) * 4)?;
                    (rows, get_u32(rows, n * 4) as usize)
                } else {
                    (&[][..], n)
                };
                let ords = take(&mut rest, nvals * 4)?;
                ColView {
                    kind,
                    ndict,
                    dict_offsets,
                    rows,
                    ords,
                    dict: rest,
                }
            }
        };
        Some(view)
    }
}

/// Every offset and ord in bounds, so that the accessors cannot fail.
fn structure_ok(v: &ColView<'_>, n: usize) -> bool {
    let u = |b: &[u8], i: usize| get_u32(b, i * 4) as usize;
    match v.kind {
        2 => return true,
        3 => {
            // Each row empty or 0x01 and a value, within the bytes.
            return u(v.rows, 0) == 0
                && u(v.rows, n) <= v.dict.len()
                && (0..n).all(|i| {
                    let (a, b) = (u(v.rows, i), u(v.rows, i + 1));
                    a == b || (a < b && v.dict[a] == 1)
                });
        }
        _ => {}
    }
    let offsets_ok = (0..v.ndict).all(|i| u(v.dict_offsets, i) <= u(v.dict_offsets, i + 1))
        && u(v.dict_offsets, v.ndict) <= v.dict.len();
    let rows_ok =
        v.kind == 0 || (u(v.rows, 0) == 0 && (0..n).all(|i| u(v.rows, i) <= u(v.rows, i + 1)));
    let ords_ok = v
        .ords
        .chunks_exact(4)
        .all(|o| get_u32(o, 0) == ABSENT || (get_u32(o, 0) as usize) < v.ndict);
    offsets_ok && rows_ok && ords_ok
}

/// After compaction: points the cache of `db` at the compacted file (`file_id`, whose log is
/// `committed_len` long), provided it covered every record of the old file (`old`, the cache as
/// loaded for it, and `old_len`, `old_next_id` its log length and next id). Compaction keeps ids
/// and values, so the rows stay right; only the offsets they were tied to change. Returns
/// whether it did.
pub(crate) fn rebrand(
    db: &Path,
    old: &Columns,
    old_len: u64,
    old_next_id: u64,
    file_id: [u8; 16],
    committed_len: u64,
) -> bool {
    if old.committed_len != old_len || old.n_ids != old_next_id {
        return false;
    }
    let Ok(file) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(cols_path(db))
    else {
        return false;
    };
    let mut h = [0u8; HEADER_LEN];
    if file.read_exact_at(&mut h, 0).is_err() || get_u64(&h, 32) != old_len {
        return false;
    }
    h[16..32].copy_from_slice(&file_id);
    h[32..40].copy_from_slice(&committed_len.to_le_bytes());
    let crc_at = h.len() - 4;
    let crc = crc::of(&h[..crc_at]);
    h[crc_at..].copy_from_slice(&crc.to_le_bytes());
    // One small write: torn, it fails its crc and the cache is rebuilt.
    file.write_all_at(&h, 0).is_ok()
}

/// The values of a column, each numbered (its ord) in order of first appearance: distinct
/// ones when interned with [`ord`](Self::ord) (the cache's), runs folded when kept with
/// [`ord_run`](Self::ord_run) (a delta's).
#[derive(Default)]
struct Dict {
    /// The values back to back: value `o` is `bytes[ends[o - 1]..ends[o]]`.
    bytes: Vec<u8>,
    ends: Vec<usize>,
    /// The ord of the first value with each 64-bit hash. A value whose hash an earlier,
    /// different value has is kept in `collided` instead.
    by_hash: HashMap<u64, u32, BuildHasherDefault<IdentityHasher>>,
    collided: HashMap<Box<[u8]>, u32>,
    /// The last value interned: the tracks of an album follow each other by id and share
    /// most values, so this saves most hash lookups.
    last: Option<u32>,
}

impl Dict {
    /// The ord of `v`, numbering it when it is new.
    fn ord(&mut self, v: &[u8]) -> u32 {
        if let Some(o) = self.last
            && self.value(o) == v
        {
            return o;
        }
        let next = self.ends.len() as u32;
        let o = match self.by_hash.entry(xxhash_rust::xxh3::xxh3_64(v)) {
            Entry::Vacant(e) => *e.insert(next),
            Entry::Occupied(e) => {
                let o = *e.get();
                if self.value(o) == v {
                    o
                } else {
                    *self.collided.entry(v.into()).or_insert(next)
                }
            }
        };
        if o == next {
            self.bytes.extend_from_slice(v);
            self.ends.push(self.bytes.len());
        }
        self.last = Some(o);
        o
    }

    /// The ord of `v` in a dictionary that only folds runs: `v` gets the last value's ord when
    /// it equals it, else a new one, even when an earlier value equals it. This is how a
    /// batch's rows are kept: finding every repeat would cost a hash lookup per value while
    /// records are encoded, and the cache's writer interns each value anyway when it merges
    /// the rows; the runs (the tracks of an album, one after another) are most repeats.
    fn ord_run(&mut self, v: &[u8]) -> u32 {
        if let Some(o) = self.last
            && self.value(o) == v
        {
            return o;
        }
        let o = self.ends.len() as u32;
        self.bytes.extend_from_slice(v);
        self.ends.push(self.bytes.len());
        self.last = Some(o);
        o
    }

    /// Value `o` (an ord this dictionary gave).
    fn value(&self, o: u32) -> &[u8] {
        let o = o as usize;
        let start = if o == 0 { 0 } else { self.ends[o - 1] };
        &self.bytes[start..self.ends[o]]
    }

    /// How many values there are.
    fn len(&self) -> usize {
        self.ends.len()
    }
}

/// Rebuilds the cache of `db` for `version`: the rows the old cache covers are copied, the rest
/// read from the log (on all cores). Written to `NAME.cols.tmp` and renamed into place; not
/// synced, since a torn cache fails its checksums and is not used.
pub(crate) fn write(db: &Path, v: &Version, delta: &Deltas) -> io::Result<()> {
    use rayon::prelude::*;
    /// Ids per block: the rows read from the log for one block are held at once.
    const BLOCK: u64 = 1 << 16;
    let h = &v.header;
    // An old cache with a damaged column cannot be copied from: rebuild from the log.
    let old = Columns::load(db, &h.file_id, h.committed_len)
        .filter(|o| Col::ALL.iter().all(|c| o.column(*c).is_some()));
    let old_views: Option<Vec<Option<ColView<'_>>>> = old
        .as_ref()
        .map(|o| Col::ALL.iter().map(|c| o.column(*c)).collect());
    // Old ord -> new ord, per column, filled on first use.
    let mut remap: Vec<Vec<u32>> = match old_views.as_ref() {
        Some(vs) => vs
            .iter()
            .map(|cv| vec![ABSENT; cv.as_ref().map_or(0, ColView::ndict)])
            .collect(),
        None => vec![Vec::new(); Col::ALL.len()],
    };
    let n = v.index.next_id();
    let latest = delta.latest();
    // Delta ord -> new ord, per column and delta chunk.
    let mut delta_remap: Vec<Vec<Vec<u32>>> = (0..Col::ALL.len())
        .map(|k| {
            delta
                .chunks
                .iter()
                .map(|d| vec![ABSENT; d.cols[k].dict.len()])
                .collect()
        })
        .collect();
    let mut builders: Vec<Builder> = Col::ALL
        .iter()
        .map(|c| Builder::new(*c, n as usize))
        .collect();
    // A string column's bytes are about the old cache's plus the delta's: room for them at
    // once, instead of growing (and copying) a hundred megabytes step by step.
    for (k, b) in builders.iter_mut().enumerate() {
        if b.col.kind() == 3 {
            let old = old_views
                .as_ref()
                .and_then(|vs| vs[k].as_ref())
                .map_or(0, |cv| cv.dict.len());
            let new: usize = delta.chunks.iter().map(|d| d.cols[k].strings.len()).sum();
            b.strings.reserve(old + new);
        }
    }
    /// Where a row of the new cache comes from.
    #[derive(Clone, Copy)]
    enum Src {
        Absent,
        Old,
        /// Chunk and row of the delta.
        Delta(u32, u32),
        /// Index into the block's rows read from the log.
        Read(u32),
    }
    // The delta's rows by id: ids ascend, so one cursor walks them with the blocks.
    let mut next_delta = 0usize;
    let mut start = 0;
    while start < n {
        let end = (start + BLOCK).min(n);
        let mut srcs = Vec::with_capacity((end - start) as usize);
        let mut to_read = Vec::new();
        for id in start..end {
            while next_delta < latest.len() && latest[next_delta].0 < id {
                next_delta += 1;
            }
            let src = match v.index.entry(id).filter(FileEntry::is_live) {
                None => Src::Absent,
                Some(_) if latest.get(next_delta).is_some_and(|d| d.0 == id) => {
                    Src::Delta(latest[next_delta].1, latest[next_delta].2)
                }
                Some(e) if old.as_ref().is_some_and(|o| o.covers(id, &e)) => Src::Old,
                Some(e) => {
                    to_read.push((id, e));
                    Src::Read(to_read.len() as u32 - 1)
                }
            };
            srcs.push(src);
        }
        // The block's records neither the delta nor the old cache has, read on all cores.
        // `None` marks one that fails to verify: verify reports it, and no cache is written.
        let rows: Vec<Option<Row<'_>>> = to_read
            .par_iter()
            .map(|(_, e)| {
                super::log::committed_bytes(v.log.bytes(), e.offset, e.len)
                    .and_then(|b| crate::record::verify(b).ok())
                    .map(|(view, _)| row_of(&view))
            })
            .collect();
        if rows.iter().any(Option::is_none) {
            return Ok(());
        }
        // Each column takes the block's rows in id order; the columns are filled on all cores.
        builders
            .par_iter_mut()
            .zip(remap.par_iter_mut())
            .zip(delta_remap.par_iter_mut())
            .enumerate()
            .for_each(|(k, ((b, remap), delta_remap))| {
                for (id, src) in (start..end).zip(&srcs) {
                    match (*src, old_views.as_ref().map(|vs| &vs[k])) {
                        (Src::Read(i), _) => match &rows[i as usize] {
                            Some(row) => b.push_row(row),
                            None => b.absent(),
                        },
                        (Src::Delta(c, r), _) => b.push_delta(
                            &delta.chunks[c as usize].cols[k],
                            r,
                            &mut delta_remap[c as usize],
                        ),
                        // The old cache was checked whole above, so every column is there.
                        (Src::Old, Some(Some(cv))) => b.push_old(cv, id, remap),
                        _ => b.absent(),
                    }
                }
            });
        start = end;
    }
    let path = cols_path(db);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = write_file(&tmp, h.file_id, h.committed_len, n, &builders)
        .and_then(|()| fs::rename(&tmp, &path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A region's bytes, in order.
type RegionBytes<'a> = Vec<Cow<'a, [u8]>>;

/// One column under construction.
struct Builder {
    col: Col,
    dict: Dict,
    /// A list column's row starts, or a string column's offsets, both from 0.
    rows: Vec<u32>,
    ords: Vec<u32>,
    /// A string column's rows, back to back (see the module's layout). Its length may pass
    /// `u32::MAX` (the offsets then wrap): [`region`](Self::region) refuses it.
    strings: Vec<u8>,
}

impl Builder {
    fn new(col: Col, n: usize) -> Builder {
        let mut rows = Vec::new();
        let mut ords = Vec::new();
        match col.kind() {
            1 | 3 => {
                rows.reserve(n + 1);
                rows.push(0);
            }
            _ => ords.reserve(n),
        }
        Builder {
            col,
            dict: Dict::default(),
            rows,
            ords,
            strings: Vec::new(),
        }
    }

    fn absent(&mut self) {
        match self.col.kind() {
            1 => self.rows.push(self.ords.len() as u32),
            2 => self.ords.push(ABSENT_INT as u32),
            3 => self.rows.push(self.strings.len() as u32),
            _ => self.ords.push(ABSENT),
        }
    }

    /// Appends a row of a string column.
    fn push_string(&mut self, v: Option<&[u8]>) {
        if let Some(v) = v {
            self.strings.push(1);
            self.strings.extend_from_slice(v);
        }
        self.rows.push(self.strings.len() as u32);
    }

    /// Appends a string column's row as stored (empty, or 0x01 and the value).
    fn push_string_row(&mut self, row: &[u8]) {
        self.strings.extend_from_slice(row);
        self.rows.push(self.strings.len() as u32);
    }

    fn push_row(&mut self, row: &Row<'_>) {
        let k = Col::ALL
            .iter()
            .position(|c| *c == self.col)
            .expect("a column");
        match self.col {
            Col::Artists | Col::Genres => {
                let list = &row.lists[usize::from(self.col == Col::Genres)];
                for v in list {
                    let o = self.dict.ord(v);
                    self.ords.push(o);
                }
                self.rows.push(self.ords.len() as u32);
            }
            Col::Year => self.ords.push(row.year as u32),
            Col::Title => self.push_string(row.strings[0]),
            Col::Rest => self.push_string(row.strings[1]),
            _ => {
                let o = row.one[k].as_ref().map_or(ABSENT, |v| self.dict.ord(v));
                self.ords.push(o);
            }
        }
    }

    /// Appends one row given as ords of another dictionary of this column (`value` gives their
    /// values): each is interned here once and remembered in `remap`. For an integer column,
    /// `ords` yields the value itself.
    fn push_remapped<'v>(
        &mut self,
        mut ords: impl Iterator<Item = u32>,
        remap: &mut [u32],
        value: impl Fn(u32) -> &'v [u8],
    ) {
        let mut map = |o: u32, dict: &mut Dict| -> u32 {
            if o == ABSENT {
                return ABSENT;
            }
            let slot = &mut remap[o as usize];
            if *slot == ABSENT {
                *slot = dict.ord(value(o));
            }
            *slot
        };
        match self.col.kind() {
            1 => {
                for o in ords {
                    let n = map(o, &mut self.dict);
                    self.ords.push(n);
                }
                self.rows.push(self.ords.len() as u32);
            }
            2 => self.ords.push(ords.next().unwrap_or(ABSENT_INT as u32)),
            _ => {
                let n = map(ords.next().unwrap_or(ABSENT), &mut self.dict);
                self.ords.push(n);
            }
        }
    }

    /// Appends row `row` of `delta` (a builder of the same column).
    fn push_delta(&mut self, delta: &Builder, row: u32, remap: &mut [u32]) {
        let r = row as usize;
        if self.col.kind() == 3 {
            let at = delta.rows[r] as usize..delta.rows[r + 1] as usize;
            self.push_string_row(&delta.strings[at]);
            return;
        }
        let ords = if self.col.kind() == 1 {
            &delta.ords[delta.rows[r] as usize..delta.rows[r + 1] as usize]
        } else {
            &delta.ords[r..=r]
        };
        self.push_remapped(ords.iter().copied(), remap, |o| delta.dict.value(o));
    }

    /// Appends the row of `id` in the old cache's column `cv`.
    fn push_old(&mut self, cv: &ColView<'_>, id: u64, remap: &mut [u32]) {
        let value = |o| cv.value(o);
        match self.col.kind() {
            1 => self.push_remapped(cv.many(id), remap, value),
            3 => self.push_string_row(cv.string_row(id)),
            2 => {
                let raw = cv.int(id).unwrap_or(ABSENT_INT) as u32;
                self.push_remapped(std::iter::once(raw), remap, value);
            }
            _ => self.push_remapped(std::iter::once(cv.one(id)), remap, value),
        }
    }

    /// The column's region bytes, in pieces (a string column's bytes are not copied).
    fn region(&self) -> Option<RegionBytes<'_>> {
        if self.col.kind() == 3 {
            u32::try_from(self.strings.len()).ok()?;
            let mut offsets = Vec::with_capacity(self.rows.len() * 4);
            for x in &self.rows {
                offsets.extend_from_slice(&x.to_le_bytes());
            }
            return Some(vec![Cow::Owned(offsets), Cow::Borrowed(&self.strings[..])]);
        }
        let dict_bytes = self.dict.bytes.len();
        u32::try_from(dict_bytes).ok()?;
        let dicts = self.col.kind() != 2;
        let words = self.ords.len()
            + if dicts {
                self.dict.len() + 1 + self.rows.len()
            } else {
                0
            };
        let mut out = Vec::with_capacity(words * 4 + dict_bytes);
        let put = |out: &mut Vec<u8>, xs: &[u32]| {
            for x in xs {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
        if dicts {
            let mut off = 0u32;
            out.extend_from_slice(&off.to_le_bytes());
            for &end in &self.dict.ends {
                // Fits: the sum of the lengths does.
                off = end as u32;
                out.extend_from_slice(&off.to_le_bytes());
            }
            put(&mut out, &self.rows);
        }
        put(&mut out, &self.ords);
        out.extend_from_slice(&self.dict.bytes);
        Some(vec![Cow::Owned(out)])
    }
}

fn write_file(
    tmp: &Path,
    file_id: [u8; 16],
    committed_len: u64,
    n_ids: u64,
    builders: &[Builder],
) -> io::Result<()> {
    let too_big = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "column too large for u32 offsets",
        )
    };
    let file = File::create(tmp)?;
    let mut out = BufWriter::with_capacity(1 << 20, Pieces(&file));
    out.write_all(&[0u8; HEADER_BLOCK as usize])?;
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(&MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&(NCOLS as u32).to_le_bytes());
    header.extend_from_slice(&file_id);
    header.extend_from_slice(&committed_len.to_le_bytes());
    header.extend_from_slice(&n_ids.to_le_bytes());
    let mut at = HEADER_BLOCK;
    // Each column's bytes and checksum on its own core; written in order.
    let regions: Vec<Option<(RegionBytes<'_>, u32)>> = {
        use rayon::prelude::*;
        builders
            .par_iter()
            .map(|b| {
                b.region().map(|r| {
                    let crc = r.iter().fold(0, |c, piece| crc::append(c, piece));
                    (r, crc)
                })
            })
            .collect()
    };
    for (b, region) in builders.iter().zip(regions) {
        let (pieces, crc) = match region {
            Some(r) => r,
            // Over 4 GiB of titles or paths (some 60 million records): that column is written
            // empty, which fails its bounds on load, so queries that need it read records while
            // the other columns serve.
            None if b.col.kind() == 3 => (Vec::new(), crc::of(&[])),
            None => return Err(too_big()),
        };
        let len: usize = pieces.iter().map(|p| p.len()).sum();
        header.extend_from_slice(&b.col.kind().to_le_bytes());
        let ndict = u32::try_from(b.dict.len()).map_err(|_| too_big())?;
        header.extend_from_slice(&ndict.to_le_bytes());
        header.extend_from_slice(&at.to_le_bytes());
        header.extend_from_slice(&(len as u64).to_le_bytes());
        header.extend_from_slice(&crc.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        for p in &pieces {
            out.write_all(p)?;
        }
        at += len as u64;
    }
    let crc = crc::of(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    out.flush()?;
    drop(out);
    file.write_all_at(&header, 0)?;
    Ok(())
}
