//! Queries answered from the column cache (`store/columns.rs`) instead of the records: a term on
//! artist, album, genre, year, directory and the like is decided once per distinct value, then
//! per record by looking up its ord; a term on the title, name or path (and a bare word, which
//! reads those with the artists, album and genres) is decided on each record's row. Records the
//! cache does not cover (written since it was built) are read and tested as usual, so answers
//! are exactly those of a full record scan.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::error::ReadError;
use crate::query::eval::{
    ANY_FIELDS, FirstN, GroupBy, GroupRow, PathList, SortKey, entry_test, is_entry_field, keys_cmp,
    test_value,
};
use crate::query::parse::{Term, Test};
use crate::query::{Field, Query, Value, natural_cmp};
use crate::record::Kind;
use crate::store::columns::{ABSENT, Col, ColView, Columns};
use crate::store::{FileEntry, Snapshot};

/// The cache column that holds `f`'s value.
fn column_of(f: Field) -> Option<Col> {
    Some(match f {
        Field::Artist => Col::Artist,
        Field::Artists => Col::Artists,
        Field::Album => Col::Album,
        Field::AlbumArtist => Col::AlbumArtist,
        Field::Genre => Col::Genre,
        Field::Genres => Col::Genres,
        Field::Year => Col::Year,
        Field::Dir => Col::Dir,
        Field::MusicbrainzAlbumId => Col::MusicbrainzAlbumId,
        _ => return None,
    })
}

/// The value a dictionary entry stands for, as [`crate::query::value`] gives it.
fn dict_value(col: Col, bytes: &[u8]) -> Value<'_> {
    match col {
        Col::Dir => Value::Bytes(bytes),
        Col::Artists | Col::Genres => Value::List(vec![text(bytes)]),
        _ => Value::Text(Cow::Borrowed(text(bytes))),
    }
}

fn text(bytes: &[u8]) -> &str {
    // Written from verified FlatBuffer strings, so UTF-8; anything else matches nothing.
    std::str::from_utf8(bytes).unwrap_or("\u{fffd}")
}

/// How one term is decided.
enum Decide<'c> {
    /// On the index entry.
    Entry(Test),
    /// Per dictionary entry: `ok[ord]`, and `absent` for a record without a value.
    Dict {
        col: ColView<'c>,
        ok: Vec<bool>,
        absent: bool,
    },
    /// On an integer column.
    Int { col: ColView<'c>, test: Test },
    /// A subtree (`path:/a/b`) per directory: `state[ord]` is [`IN`], [`OUT`] or [`READ`].
    Subtree { col: ColView<'c>, state: Vec<u8> },
    /// On the title's row.
    Title { col: ColView<'c>, test: Test },
    /// On the name, from the row of the path after its directory.
    Name { rest: ColView<'c>, test: Test },
    /// A substring of the path that holds no `/`: it cannot span the `/` that starts the rest
    /// (or follows a directory `/`), so it is in the directory (`dir_ok[ord]`) or in the rest.
    /// Text conversion and case folding go a character at a time, and `/` is one.
    PathParts {
        dir: ColView<'c>,
        dir_ok: Vec<bool>,
        rest: ColView<'c>,
        test: Test,
    },
    /// On the path, the directory's value joined to the row of the rest.
    Path {
        dir: ColView<'c>,
        rest: ColView<'c>,
        test: Test,
    },
    /// A bare word: any of these (one per field it reads) holds.
    AnyOf(Vec<Decide<'c>>),
}

/// Appends `id`'s path, its directory joined to the rest, to `out`.
fn push_path(dir: &ColView<'_>, rest: &ColView<'_>, id: u64, out: &mut Vec<u8>) {
    match dir.one(id) {
        ABSENT => {}
        o => out.extend_from_slice(dir.value(o)),
    }
    out.extend_from_slice(rest.string(id).unwrap_or_default());
}

thread_local! {
    /// A path put together from its directory and the rest, for [`Decide::Path`].
    static PATH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The column decision for `test`, a test on field `f`; `None` when no column holds `f` (or
/// the cache's column failed its checks).
fn field_plan<'c>(cols: &'c Columns, f: Field, test: &Test) -> Option<Decide<'c>> {
    if is_entry_field(f) {
        if matches!(test, Test::Present(_)) {
            return None;
        }
        return Some(Decide::Entry(test.clone()));
    }
    let test = test.clone();
    match f {
        Field::Title => {
            return Some(Decide::Title {
                col: cols.column(Col::Title)?,
                test,
            });
        }
        Field::Name => {
            return Some(Decide::Name {
                rest: cols.column(Col::Rest)?,
                test,
            });
        }
        Field::Path => {
            if let Test::Substring(_, n) = &test
                && !n.folded.contains('/')
            {
                let dir = cols.column(Col::Dir)?;
                let dir_ok = (0..dir.ndict() as u32)
                    .map(|o| test_value(&test, &Value::Bytes(dir.value(o))))
                    .collect();
                return Some(Decide::PathParts {
                    dir,
                    dir_ok,
                    rest: cols.column(Col::Rest)?,
                    test,
                });
            }
            return Some(Decide::Path {
                dir: cols.column(Col::Dir)?,
                rest: cols.column(Col::Rest)?,
                test,
            });
        }
        _ => {}
    }
    let c = column_of(f)?;
    let col = cols.column(c)?;
    if c == Col::Year {
        return Some(Decide::Int { col, test });
    }
    let ok = (0..col.ndict() as u32)
        .map(|o| test_value(&test, &dict_value(c, col.value(o))))
        .collect();
    let none = if col.is_list() {
        Value::List(Vec::new())
    } else {
        Value::Null
    };
    Some(Decide::Dict {
        absent: test_value(&test, &none),
        col,
        ok,
    })
}

/// A directory whose files are all in the subtree.
const IN: u8 = 0;
/// A directory none of whose files are.
const OUT: u8 = 1;
/// The subtree root's own directory: a file there is in the subtree when it is the root
/// itself, which only its record's name tells.
const READ: u8 = 2;

/// Where the files of directory `d` (a [`crate::store::columns::dir_of`] value) stand against
/// the subtree at `root`, which is `/` or has no trailing `/` (see [`subtree_plan`]). A path is
/// in the subtree when it is `root` or starts with `root/`; its name holds no `/`, so the
/// second holds exactly when its directory is `root` or starts with `root/`.
fn subtree_state(root: &[u8], d: &[u8]) -> u8 {
    if root == b"/"
        || d == root
        || (d.len() > root.len() && d.starts_with(root) && d[root.len()] == b'/')
    {
        IN
    } else if d == crate::store::columns::dir_of(root) {
        READ
    } else {
        OUT
    }
}

/// The column decision for a subtree at `root`; `None` for a root the per-directory rule does
/// not fit (empty, or ending in `/` other than `/` itself), which the records decide.
fn subtree_plan<'c>(cols: &'c Columns, root: &[u8]) -> Option<Decide<'c>> {
    if root.is_empty() || (root.len() > 1 && root.ends_with(b"/")) {
        return None;
    }
    let col = cols.column(Col::Dir)?;
    let state = (0..col.ndict() as u32)
        .map(|o| subtree_state(root, col.value(o)))
        .collect();
    Some(Decide::Subtree { col, state })
}

/// A query made ready to run on index entries and the column cache.
pub(crate) struct Plan<'c> {
    cols: &'c Columns,
    groups: Vec<Vec<(bool, Decide<'c>)>>,
}

impl<'c> Plan<'c> {
    /// A plan when every term of `query` is on an entry field or a cached column and the cache
    /// is usable; `None` otherwise (the caller reads records).
    pub fn new(snap: &'c Snapshot, query: &Query) -> Option<Plan<'c>> {
        let cols = snap.columns()?;
        let mut groups = Vec::with_capacity(query.groups.len());
        for g in &query.groups {
            let mut terms = Vec::with_capacity(g.len());
            for Term { negate, test } in g {
                let d = match test {
                    Test::Subtree(root) => subtree_plan(cols, root)?,
                    // A bare word is a substring of any of its fields.
                    Test::Any(n) => Decide::AnyOf(
                        ANY_FIELDS
                            .iter()
                            .map(|&f| field_plan(cols, f, &Test::Substring(f, n.clone())))
                            .collect::<Option<_>>()?,
                    ),
                    _ => field_plan(cols, test.field()?, test)?,
                };
                terms.push((*negate, d));
            }
            groups.push(terms);
        }
        Some(Plan { cols, groups })
    }

    /// Whether live record `id` (entry `e`) matches; `None` when the cache does not cover it,
    /// or its row cannot tell (a file beside a subtree's root): then its record must be read.
    pub fn matches(&self, id: u64, e: &FileEntry) -> Option<bool> {
        if !self.cols.covers(id, e) {
            return None;
        }
        self.test(id, Some(e))
    }

    /// Whether `id`'s row could match when its entry is not looked at: terms on entry fields
    /// count as passing. Exact for a record the cache covers when that says no.
    fn could_match(&self, id: u64) -> bool {
        self.test(id, None) != Some(false)
    }

    /// The groups on `id`'s row, `None` when the row cannot tell; terms on entry fields pass
    /// when `e` is `None`. Groups are ORed and terms ANDed in three values: a term that
    /// cannot tell leaves its group undecided unless another term is false, and the query
    /// undecided unless another group is true.
    fn test(&self, id: u64, e: Option<&FileEntry>) -> Option<bool> {
        if self.groups.is_empty() {
            return Some(true);
        }
        let mut undecided = false;
        for g in &self.groups {
            match self.test_group(g, id, e) {
                Some(true) => return Some(true),
                Some(false) => {}
                None => undecided = true,
            }
        }
        if undecided { None } else { Some(false) }
    }

    /// One group's terms, ANDed.
    fn test_group(&self, g: &[(bool, Decide<'c>)], id: u64, e: Option<&FileEntry>) -> Option<bool> {
        let mut undecided = false;
        for (negate, d) in g {
            let hit = match decide(d, id, e) {
                Hit::Yes => true,
                Hit::No => false,
                Hit::Pass => continue,
                Hit::Read => {
                    undecided = true;
                    continue;
                }
            };
            if hit == *negate {
                return Some(false);
            }
        }
        if undecided { None } else { Some(true) }
    }
}

/// What a term says of a row.
enum Hit {
    Yes,
    No,
    /// A term on an entry field when no entry is given: it counts as passing.
    Pass,
    /// The row cannot tell: the record must be read.
    Read,
}

impl From<bool> for Hit {
    fn from(b: bool) -> Hit {
        if b { Hit::Yes } else { Hit::No }
    }
}

/// Term `d` on the row of `id` (entry `e`, when looked at).
fn decide(d: &Decide<'_>, id: u64, e: Option<&FileEntry>) -> Hit {
    match d {
        Decide::Subtree { col, state } => match state.get(col.one(id) as usize) {
            Some(&IN) => Hit::Yes,
            Some(&OUT) => Hit::No,
            _ => Hit::Read,
        },
        Decide::Entry(t) => match e {
            Some(e) => entry_test(t, id, e).into(),
            None => Hit::Pass,
        },
        Decide::Dict { col, ok, absent } if col.is_list() => {
            let mut ords = col.many(id).peekable();
            if ords.peek().is_none() {
                (*absent).into()
            } else {
                ords.any(|o| ok[o as usize]).into()
            }
        }
        Decide::Dict { col, ok, absent } => match col.one(id) {
            ABSENT => (*absent).into(),
            o => ok[o as usize].into(),
        },
        Decide::Int { col, test } => {
            let v = col
                .int(id)
                .map_or(Value::Null, |y| Value::Int(i64::from(y)));
            test_value(test, &v).into()
        }
        Decide::Title { col, test } => {
            let v = col
                .string(id)
                .map_or(Value::Null, |t| Value::Text(Cow::Borrowed(text(t))));
            test_value(test, &v).into()
        }
        Decide::Name { rest, test } => {
            // The rest is the name, after a `/` unless the directory is `/` or empty.
            let rest = rest.string(id).unwrap_or_default();
            let name = rest.strip_prefix(b"/").unwrap_or(rest);
            test_value(test, &Value::Bytes(name)).into()
        }
        Decide::PathParts {
            dir,
            dir_ok,
            rest,
            test,
        } => {
            let in_dir = match dir.one(id) {
                ABSENT => false,
                o => dir_ok[o as usize],
            };
            (in_dir || test_value(test, &Value::Bytes(rest.string(id).unwrap_or_default()))).into()
        }
        Decide::Path { dir, rest, test } => PATH
            .with_borrow_mut(|p| {
                p.clear();
                push_path(dir, rest, id, p);
                test_value(test, &Value::Bytes(p))
            })
            .into(),
        Decide::AnyOf(fields) => {
            let mut read = false;
            for f in fields {
                match decide(f, id, e) {
                    Hit::Yes => return Hit::Yes,
                    Hit::Read => read = true,
                    Hit::No | Hit::Pass => {}
                }
            }
            if read { Hit::Read } else { Hit::No }
        }
    }
}

/// Calls `f(id, entry)` for every live id that `keep` accepts (the others' entries are not
/// read), a block of ids per core, and collects what it returns.
fn par_ids<T: Send>(
    snap: &Snapshot,
    keep: impl Fn(u64) -> bool + Sync,
    f: impl Fn(u64, FileEntry) -> Result<Option<T>, ReadError> + Sync,
) -> Result<Vec<T>, ReadError> {
    use rayon::prelude::*;
    const BLOCK: u64 = 1 << 14;
    let n = snap.stats().next_id;
    let parts: Vec<Vec<T>> = (0..n.div_ceil(BLOCK))
        .into_par_iter()
        .map(|b| {
            let mut out = Vec::new();
            for id in b * BLOCK..((b + 1) * BLOCK).min(n) {
                if keep(id)
                    && let Some(e) = snap.entry_by_id(id)
                    && let Some(x) = f(id, e)?
                {
                    out.push(x);
                }
            }
            Ok(out)
        })
        .collect::<Result<_, ReadError>>()?;
    snap.index_intact()?;
    Ok(parts.into_iter().flatten().collect())
}

/// The rows below the cache's `n_ids` that may be out of date at a snapshot: those of the ids
/// stored since the cache was written. Every other row holds its record's current values, or
/// belongs to an id that is no longer live (which its entry says).
struct Stale {
    bits: Vec<u64>,
}

impl Stale {
    /// Whether `id`'s row may be out of date (ids at or past the cache's `n_ids` have none).
    fn contains(&self, id: u64) -> bool {
        let word = usize::try_from(id / 64).unwrap_or(usize::MAX);
        self.bits.get(word).is_some_and(|w| w >> (id % 64) & 1 == 1)
    }

    /// Whether `id` has a row that holds its current values, if it is live: a row that
    /// cannot match then settles the record without its index entry being read.
    fn row_current(&self, cols: &Columns, id: u64) -> bool {
        id < cols.n_ids() && !self.contains(id)
    }
}

/// A cache that lags the log by more than this fraction of it is not worth reading the frames
/// past it for: every index entry is read instead.
const STALE_WALK: u64 = 4;

/// The [`Stale`] rows of `cols` at `snap`: none when the cache was written at this snapshot's
/// commit; else the ids stored by the frames past it, when those pass their checks and are
/// fewer bytes than both a quarter of the log and the index entries (which every id's
/// [`ENTRY_LEN`](crate::store::format::ENTRY_LEN) bytes would be read instead). `None` when
/// they cannot be told, or are not worth it: then every entry is read.
fn stale_rows(snap: &Snapshot, cols: &Columns) -> Option<Stale> {
    let stats = snap.stats();
    let end = stats.committed_bytes;
    let lag = end.checked_sub(cols.committed_len())?;
    // A cache written at this commit has no stale rows: no bits at all.
    let mut bits = Vec::new();
    if lag > 0 {
        bits = vec![0u64; usize::try_from(cols.n_ids().div_ceil(64)).ok()?];
        let entries = stats
            .next_id
            .saturating_mul(crate::store::format::ENTRY_LEN as u64);
        if lag > end / STALE_WALK || lag > entries {
            return None;
        }
        for id in snap.ids_written_since(cols.committed_len())? {
            if let Some(w) = usize::try_from(id / 64).ok().and_then(|i| bits.get_mut(i)) {
                *w |= 1 << (id % 64);
            }
        }
    }
    Some(Stale { bits })
}

/// The ids of the records matching `query`, in id order, from the cache (records it does not
/// cover are read and tested); `None` when the query cannot use the cache.
pub(crate) fn matching_ids(snap: &Snapshot, query: &Query) -> Option<Result<Vec<u64>, ReadError>> {
    let plan = Plan::new(snap, query)?;
    // A row that holds its record's current values and cannot match settles the record
    // without its index entry being read; the others' entries are read.
    let stale = stale_rows(snap, plan.cols);
    let keep = |id: u64| match &stale {
        Some(s) => !s.row_current(plan.cols, id) || plan.could_match(id),
        None => true,
    };
    Some(par_ids(snap, keep, |id, e| {
        let hit = match plan.matches(id, &e) {
            Some(hit) => hit,
            None => snap.get_by_id(id)?.is_some_and(|r| query.matches(&r)),
        };
        Ok(hit.then_some(id))
    }))
}

/// Where a sort key's value comes from without its record: the index entry, or a column.
enum KeySrc<'c> {
    Id,
    Size,
    MtimeNs,
    /// An int column (the year).
    Int(ColView<'c>),
    /// A string column (the title).
    Text(ColView<'c>),
    /// A dictionary column of one value per record (artist and genre as joined for display,
    /// album, album artist, MusicBrainz album id).
    One(ColView<'c>),
    /// A dictionary column of lists (artists, genres).
    List(ColView<'c>),
}

impl<'c> KeySrc<'c> {
    /// The source of `f`'s values; `None` when only the record holds them.
    fn of(cols: &'c Columns, f: Field) -> Option<KeySrc<'c>> {
        Some(match f {
            Field::Id => KeySrc::Id,
            Field::Size => KeySrc::Size,
            Field::MtimeNs => KeySrc::MtimeNs,
            Field::Year => KeySrc::Int(cols.column(Col::Year)?),
            Field::Title => KeySrc::Text(cols.column(Col::Title)?),
            Field::Artists | Field::Genres => KeySrc::List(cols.column(column_of(f)?)?),
            Field::Artist
            | Field::Album
            | Field::AlbumArtist
            | Field::Genre
            | Field::MusicbrainzAlbumId => KeySrc::One(cols.column(column_of(f)?)?),
            _ => return None,
        })
    }

    /// The value [`crate::query::value`] gives for the record of live `id` (entry `e`),
    /// which the cache covers (entry fields need no cover).
    fn value(&self, id: u64, e: &FileEntry) -> Value<'c> {
        match self {
            KeySrc::Id => Value::Int(id as i64),
            KeySrc::Size => Value::Int(e.size as i64),
            KeySrc::MtimeNs => Value::Int(e.mtime_ns),
            KeySrc::Int(c) => c.int(id).map_or(Value::Null, |y| Value::Int(i64::from(y))),
            KeySrc::Text(c) => c
                .string(id)
                .map_or(Value::Null, |t| Value::Text(Cow::Borrowed(text(t)))),
            KeySrc::One(c) => match c.one(id) {
                ABSENT => Value::Null,
                o => Value::Text(Cow::Borrowed(text(c.value(o)))),
            },
            KeySrc::List(c) => Value::List(c.many(id).map(|o| text(c.value(o))).collect()),
        }
    }
}

/// A match with its sort keys and its path, for [`first_sorted_ids`].
#[derive(Clone)]
struct KeyedId<'c> {
    keys: Vec<Value<'c>>,
    path: Vec<u8>,
    id: u64,
}

/// The ids of the first `n` matches of `query` in the order [`crate::query::eval::select`]
/// gives for `sort`, with the sort keys (and the paths that break ties) read from the cache's
/// columns and the index entries, so that only a record the cache does not cover is read.
/// Each core takes a block of ids at a time and keeps its first `n`: a match that sorts after
/// the `n`th kept so far is dropped as soon as its keys are read, and the kept ones are cut
/// back to `n` whenever they reach `2n`; the blocks' firsts are then merged. `None` when a
/// sort field has no column (or its column failed its checks) or the query cannot use the
/// cache.
pub(crate) fn first_sorted_ids(
    snap: &Snapshot,
    query: &Query,
    sort: &[SortKey],
    n: usize,
) -> Option<Result<Vec<u64>, ReadError>> {
    use rayon::prelude::*;
    const BLOCK: usize = 1 << 14;
    let cols = snap.columns()?;
    let srcs: Vec<KeySrc<'_>> = sort
        .iter()
        .map(|k| KeySrc::of(cols, k.field))
        .collect::<Option<_>>()?;
    let (dir, rest) = (cols.column(Col::Dir)?, cols.column(Col::Rest)?);
    // Every live id for a query that matches everything, else the matches.
    let ids = if query.is_empty() {
        None
    } else {
        match matching_ids(snap, query)? {
            Ok(ids) => Some(ids),
            Err(e) => return Some(Err(e)),
        }
    };
    if n == 0 {
        return Some(Ok(Vec::new()));
    }
    let cmp = |a: &KeyedId<'_>, b: &KeyedId<'_>| {
        keys_cmp(sort, &a.keys, &b.keys).then_with(|| natural_cmp(&a.path, &b.path))
    };
    let block = |ids: &mut dyn Iterator<Item = u64>| -> Result<Vec<KeyedId<'_>>, ReadError> {
        let mut first = FirstN::new(n, cmp);
        let mut keys: Vec<Value<'_>> = Vec::with_capacity(srcs.len());
        for id in ids {
            let Some(e) = snap.entry_by_id(id) else {
                continue;
            };
            let k = if cols.covers(id, &e) {
                keys.clear();
                keys.extend(srcs.iter().map(|s| s.value(id, &e)));
                // The path is put together only when the keys alone cannot drop the match.
                if let Some(w) = first.nth()
                    && keys_cmp(sort, &keys, &w.keys).is_gt()
                {
                    continue;
                }
                let mut path = Vec::new();
                push_path(&dir, &rest, id, &mut path);
                KeyedId {
                    keys: keys.clone(),
                    path,
                    id,
                }
            } else {
                let Some(r) = snap.get_by_id(id)? else {
                    continue;
                };
                KeyedId {
                    keys: sort
                        .iter()
                        .map(|k| crate::query::value(&r, k.field))
                        .collect(),
                    path: r.path().to_vec(),
                    id,
                }
            };
            first.push(k);
        }
        Ok(first.finish())
    };
    let result = (|| {
        let parts: Vec<Vec<KeyedId<'_>>> = match &ids {
            Some(ids) => ids
                .par_chunks(BLOCK)
                .map(|c| block(&mut c.iter().copied()))
                .collect::<Result<_, ReadError>>()?,
            None => {
                let next = snap.stats().next_id;
                (0..next.div_ceil(BLOCK as u64))
                    .into_par_iter()
                    .map(|b| {
                        let start = b * BLOCK as u64;
                        block(&mut (start..(start + BLOCK as u64).min(next)))
                    })
                    .collect::<Result<_, ReadError>>()?
            }
        };
        snap.index_intact()?;
        let mut firsts: Vec<KeyedId<'_>> = parts.into_iter().flatten().collect();
        firsts.sort_unstable_by(cmp);
        firsts.truncate(n);
        Ok(firsts.into_iter().map(|k| k.id).collect())
    })();
    Some(result)
}

/// Matches up to this many have their paths read from their records: checking the cache's
/// `rest` column on first use (its checksum and a pass over a million rows) costs more than
/// reading a few thousand records.
const PATHS_FROM_RECORDS: usize = 4096;

/// The paths of live records `ids` (matches of a query), in that order: a record the cache
/// covers has its directory joined to the rest, any other is read. With few ids, all are read.
pub(crate) fn paths_of(snap: &Snapshot, ids: &[u64]) -> Result<PathList, ReadError> {
    use rayon::prelude::*;
    let cols = snap
        .columns()
        .filter(|_| ids.len() > PATHS_FROM_RECORDS)
        .and_then(|c| Some((c, c.column(Col::Dir)?, c.column(Col::Rest)?)));
    let chunk = |ids: &[u64]| -> Result<PathList, ReadError> {
        let mut out = PathList::default();
        for &id in ids {
            let start = out.bytes.len();
            match (&cols, snap.entry_by_id(id)) {
                (_, None) => continue,
                (Some((c, dir, rest)), Some(e)) if c.covers(id, &e) => {
                    push_path(dir, rest, id, &mut out.bytes);
                }
                (_, Some(_)) => match snap.get_by_id(id)? {
                    Some(r) => out.bytes.extend_from_slice(r.path()),
                    None => continue,
                },
            }
            out.spans.push(start..out.bytes.len());
        }
        Ok(out)
    };
    let parts: Vec<PathList> = ids
        .par_chunks(1 << 14)
        .map(chunk)
        .collect::<Result<_, ReadError>>()?;
    let mut all = PathList::default();
    for p in parts {
        let base = all.bytes.len();
        all.bytes.extend_from_slice(&p.bytes);
        all.spans
            .extend(p.spans.into_iter().map(|s| s.start + base..s.end + base));
    }
    Ok(all)
}

/// A map keyed by [`Key`]: counting groups hashes one key per record, and SipHash was a
/// third of `stats` on a million records. Keys are small integers the cache assigns (ords,
/// years, kinds), so a multiplicative hash spreads them well.
type KeyMap<V> = HashMap<Key, V, BuildHasherDefault<KeyHasher>>;

/// The multiplicative hash of rustc's `FxHasher`, for [`KeyMap`].
#[derive(Default)]
struct KeyHasher(u64);

impl KeyHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..b.len()].copy_from_slice(b);
            self.add(u64::from_le_bytes(w));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }
    fn write_i32(&mut self, n: i32) {
        self.add(u64::from(n as u32));
    }
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
    fn write_isize(&mut self, n: isize) {
        self.add(n as u64);
    }
}

/// Per-record group keys from the cache, for [`group_by`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Ord(u32),
    Year(i32),
    Kind(u8),
    /// (MusicBrainz album id ord) or (artist ord, its column: 0 album artist, 1 artists; album
    /// ord).
    MbAlbum(u32),
    Album(u32, u8, u32),
}

/// [`crate::query::eval::group_by`]'s groups from the cache, unsorted, each with its byte key;
/// `None` when the cache cannot be used. Without `named`, only the keys and counts are right:
/// a group named after its first record (an album with a MusicBrainz id) is not read for its
/// name, which is what counting the groups needs.
pub(crate) fn groups(
    snap: &Snapshot,
    query: &Query,
    by: GroupBy,
    named: bool,
) -> Option<Result<crate::query::eval::KeyedGroups, ReadError>> {
    let plan = Plan::new(snap, query)?;
    let cols = snap.columns()?;
    let col = |c| cols.column(c);
    let (main, aa, artists, mb) = match by {
        GroupBy::Artist => (Some(col(Col::Artists)?), None, None, None),
        GroupBy::Genre => (Some(col(Col::Genres)?), None, None, None),
        GroupBy::AlbumArtist => (Some(col(Col::AlbumArtist)?), None, None, None),
        GroupBy::Dir => (Some(col(Col::Dir)?), None, None, None),
        GroupBy::Year => (Some(col(Col::Year)?), None, None, None),
        GroupBy::Kind => (None, None, None, None),
        GroupBy::Album => (
            Some(col(Col::Album)?),
            Some(col(Col::AlbumArtist)?),
            Some(col(Col::Artists)?),
            Some(col(Col::MusicbrainzAlbumId)?),
        ),
    };
    let keys_of = |id: u64, e: &FileEntry, out: &mut Vec<Key>| {
        let Some(main) = &main else {
            out.push(Key::Kind(e.kind));
            return;
        };
        match by {
            GroupBy::Artist | GroupBy::Genre => out.extend(main.many(id).map(Key::Ord)),
            GroupBy::AlbumArtist | GroupBy::Dir => match main.one(id) {
                ABSENT => {}
                o => out.push(Key::Ord(o)),
            },
            GroupBy::Year => out.extend(main.int(id).map(Key::Year)),
            GroupBy::Kind => out.push(Key::Kind(e.kind)),
            GroupBy::Album => {
                let album = main.one(id);
                let (Some(aa), Some(artists), Some(mb)) = (&aa, &artists, &mb) else {
                    return;
                };
                if album == ABSENT {
                    return;
                }
                match mb.one(id) {
                    o if o != ABSENT && !mb.value(o).is_empty() => out.push(Key::MbAlbum(o)),
                    _ => out.push(match aa.one(id) {
                        ABSENT => Key::Album(artists.many(id).next().unwrap_or(ABSENT), 1, album),
                        a => Key::Album(a, 0, album),
                    }),
                }
            }
        }
    };
    // Covered records count by key; the others are read and grouped as the record path does.
    struct Part {
        counts: KeyMap<(u64, u64)>,
        read: Vec<u64>,
    }
    let result = (|| {
        use rayon::prelude::*;
        const BLOCK: u64 = 1 << 14;
        let n = snap.stats().next_id;
        let parts: Vec<Part> = (0..n.div_ceil(BLOCK))
            .into_par_iter()
            .map(|b| {
                let mut p = Part {
                    counts: KeyMap::default(),
                    read: Vec::new(),
                };
                let mut keys = Vec::new();
                for id in b * BLOCK..((b + 1) * BLOCK).min(n) {
                    let Some(e) = snap.entry_by_id(id) else {
                        continue;
                    };
                    match plan.matches(id, &e) {
                        None => p.read.push(id),
                        Some(false) => {}
                        Some(true) => {
                            keys.clear();
                            keys_of(id, &e, &mut keys);
                            for k in &keys {
                                // (count, first id): a group's name comes from its first record.
                                p.counts.entry(*k).or_insert((0, id)).0 += 1;
                            }
                        }
                    }
                }
                p
            })
            .collect();
        snap.index_intact()?;
        let mut counts: KeyMap<(u64, u64)> = KeyMap::default();
        let mut read = Vec::new();
        for p in parts {
            for (k, (c, first)) in p.counts {
                let slot = counts.entry(k).or_insert((0, first));
                slot.0 += c;
                slot.1 = slot.1.min(first);
            }
            read.extend(p.read);
        }
        let mut groups: HashMap<Vec<u8>, (GroupRow, u64)> = HashMap::new();
        for (k, (count, first)) in counts {
            let cols = KeyCols {
                main: main.as_ref(),
                aa: aa.as_ref(),
                artists: artists.as_ref(),
                mb: mb.as_ref(),
            };
            let (key, row) = row_of(k, count, &cols, named.then_some(first));
            merge(&mut groups, key, row, first);
        }
        for id in read {
            if let Some(r) = snap.get_by_id(id)?
                && query.matches(&r)
            {
                let mut one = HashMap::new();
                crate::query::eval::group_one(&r, by, &mut one);
                for (key, row) in one {
                    merge(&mut groups, key, row, id);
                }
            }
        }
        Ok(groups.into_iter().map(|(k, (r, _))| (k, r)).collect())
    })();
    Some(result)
}

/// Adds `row` (whose first record is `first`) to `groups` under `key`.
fn merge(groups: &mut HashMap<Vec<u8>, (GroupRow, u64)>, key: Vec<u8>, row: GroupRow, first: u64) {
    match groups.get_mut(&key) {
        Some((g, f)) => {
            g.count += row.count;
            if first < *f {
                // The name and album artist come from the group's first record in id order.
                g.name = row.name;
                g.album_artist = row.album_artist;
                *f = first;
            }
        }
        None => {
            groups.insert(key, (row, first));
        }
    }
}

/// The columns group keys refer to.
struct KeyCols<'a, 'c> {
    main: Option<&'a ColView<'c>>,
    aa: Option<&'a ColView<'c>>,
    artists: Option<&'a ColView<'c>>,
    mb: Option<&'a ColView<'c>>,
}

/// The byte key and row that [`crate::query::eval::group_one`] would give for cache key `k`.
/// `first` is the group's first record, which names a MusicBrainz album group; with `None` that
/// name is left empty.
fn row_of(k: Key, count: u64, cols: &KeyCols<'_, '_>, first: Option<u64>) -> (Vec<u8>, GroupRow) {
    let row = |name: Vec<u8>, album_artist: Option<String>| GroupRow {
        name,
        album_artist,
        count,
    };
    let value = |c: Option<&ColView<'_>>, o: u32| c.map_or(Vec::new(), |c| c.value(o).to_vec());
    match k {
        Key::Ord(o) => {
            let v = value(cols.main, o);
            (v.clone(), row(v, None))
        }
        Key::Year(y) => {
            let v = y.to_string().into_bytes();
            (v.clone(), row(v, None))
        }
        Key::Kind(k) => {
            let v = Kind::from_fb(crate::store::fb::Kind(k))
                .as_str()
                .as_bytes()
                .to_vec();
            (v.clone(), row(v, None))
        }
        Key::MbAlbum(o) => {
            let key = [&b"mb\0"[..], &value(cols.mb, o)].concat();
            // The group's name and artist are those of its first record.
            let (album, artist) = match first {
                Some(first) => first_album_cached(cols, first),
                None => (Vec::new(), None),
            };
            (key, row(album, artist))
        }
        Key::Album(a, which, album) => {
            let artist = match (a, which) {
                (ABSENT, _) => None,
                (a, 0) => Some(text(&value(cols.aa, a)).to_owned()),
                (a, _) => Some(text(&value(cols.artists, a)).to_owned()),
            };
            let name = value(cols.main, album);
            let key = format!(
                "t\0{}\0{}",
                artist.as_deref().unwrap_or_default(),
                text(&name)
            )
            .into_bytes();
            (key, row(name, artist))
        }
    }
}

/// The album and its artist (the album artist, else the first artist) of record `id`, as
/// [`crate::query::eval::group_one`] names an album group, from the cache, which covers the
/// record (its group key came from there): reading the first record of each of 66,000 albums
/// was most of `--group-by album` on a million records.
fn first_album_cached(cols: &KeyCols<'_, '_>, id: u64) -> (Vec<u8>, Option<String>) {
    fn value<'c>(c: Option<&ColView<'c>>, o: u32) -> Option<&'c [u8]> {
        c.map(|c| c.value(o))
    }
    let album = match cols.main.map(|c| c.one(id)) {
        Some(o) if o != ABSENT => value(cols.main, o).unwrap_or_default().to_vec(),
        _ => Vec::new(),
    };
    let artist = match cols.aa.map(|c| c.one(id)) {
        Some(o) if o != ABSENT => value(cols.aa, o),
        _ => cols
            .artists
            .and_then(|c| c.many(id).next())
            .and_then(|o| value(cols.artists, o)),
    };
    (album, artist.map(|a| text(a).to_owned()))
}

/// Where records whose `dir` is a given value go in a listing of one directory.
#[derive(Clone, Copy)]
enum Place {
    Outside,
    File,
    /// Below a subdirectory: the length of its path (a prefix of the value).
    Sub(usize),
}

/// [`crate::query::eval::list_dir`] from the cache (`dir` already normalized: no trailing `/`,
/// the root as empty); `None` when it cannot be used.
pub(crate) fn list_dir<'s>(
    snap: &'s Snapshot,
    dir: &[u8],
    kind: Option<Kind>,
) -> Option<Result<crate::query::eval::Listing<'s>, ReadError>> {
    let cols = snap.columns()?;
    let dcol = cols.column(Col::Dir)?;
    // Decided once per distinct directory, as the record path would decide it.
    let places: Vec<Place> = (0..dcol.ndict() as u32)
        .map(|o| {
            let d = dcol.value(o);
            if (d == dir && !dir.is_empty()) || (dir.is_empty() && d == b"/") {
                Place::File
            } else if d.len() > dir.len() && d.starts_with(dir) && d[dir.len()] == b'/' {
                let rest = &d[dir.len() + 1..];
                let end = rest.iter().position(|b| *b == b'/').unwrap_or(rest.len());
                Place::Sub(dir.len() + 1 + end)
            } else {
                Place::Outside
            }
        })
        .collect();
    let want_kind = kind.map(|k| k.to_fb().0);
    // A row that holds its record's current values and places it outside `dir` settles the
    // record without its index entry being read.
    let stale = stale_rows(snap, cols);
    let outside = |id: u64| {
        stale.as_ref().is_some_and(|s| s.row_current(cols, id))
            && match dcol.one(id) {
                ABSENT => true,
                o => matches!(places.get(o as usize), Some(Place::Outside)),
            }
    };
    let result = (|| {
        let mut subs: HashMap<u32, u64> = HashMap::new();
        let mut file_ids = Vec::new();
        let mut read = Vec::new();
        let n = snap.stats().next_id;
        for id in 0..n {
            if outside(id) {
                continue;
            }
            let Some(e) = snap.entry_by_id(id) else {
                continue;
            };
            if !cols.covers(id, &e) {
                read.push(id);
                continue;
            }
            if want_kind.is_some_and(|k| k != e.kind) {
                continue;
            }
            match dcol.one(id) {
                ABSENT => {}
                o => match places[o as usize] {
                    Place::Outside => {}
                    Place::File => file_ids.push(id),
                    Place::Sub(_) => *subs.entry(o).or_default() += 1,
                },
            }
        }
        snap.index_intact()?;
        let mut dirs: HashMap<Vec<u8>, u64> = HashMap::new();
        for (o, c) in subs {
            if let Place::Sub(len) = places[o as usize] {
                *dirs.entry(dcol.value(o)[..len].to_vec()).or_default() += c;
            }
        }
        let mut files = Vec::with_capacity(file_ids.len());
        for id in file_ids {
            // A path that ends in `/` has an empty name, which a listing leaves out.
            if let Some(r) = snap.get_by_id(id)?
                && r.path().len() > dir.len() + 1
            {
                files.push(r);
            }
        }
        // Records written after the cache, placed from their paths.
        for id in read {
            if let Some(r) = snap.get_by_id(id)? {
                crate::query::eval::place(r, dir, kind, &mut dirs, &mut files);
            }
        }
        Ok(crate::query::eval::listing(dirs, files))
    })();
    Some(result)
}
