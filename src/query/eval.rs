//! Evaluating queries against records, sorting, grouping and directory listing.

use std::collections::HashMap;

use crate::error::ReadError;
use crate::query::parse::{Term, Test};
use crate::query::{Field, Query, Value, natural_cmp, value};
use crate::record::{Kind, RecordView};
use crate::store::{FileEntry, Snapshot};

fn text_of<'v>(v: &'v Value<'_>) -> Option<std::borrow::Cow<'v, str>> {
    match v {
        Value::Text(t) => Some(std::borrow::Cow::Borrowed(t)),
        Value::Bytes(b) => Some(String::from_utf8_lossy(b)),
        Value::Int(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(std::borrow::Cow::Owned(b.to_string())),
        Value::List(_) | Value::Null => None,
    }
}

fn any_text(v: &Value<'_>, mut f: impl FnMut(&str) -> bool) -> bool {
    match v {
        Value::List(items) => items.iter().any(|s| f(s)),
        other => text_of(other).is_some_and(|t| f(&t)),
    }
}

/// The fields a bare word is looked for in.
pub(crate) const ANY_FIELDS: [Field; 6] = [
    Field::Title,
    Field::Artists,
    Field::Album,
    Field::AlbumArtist,
    Field::Genres,
    Field::Path,
];

fn test(t: &Test, r: &RecordView<'_>) -> bool {
    match t {
        Test::Any(n) => ANY_FIELDS
            .iter()
            .any(|f| any_text(&value(r, *f), |s| n.found_in(s))),
        Test::Subtree(dir) => {
            let p = r.path();
            dir.as_slice() == b"/"
                || p == dir.as_slice()
                || (p.len() > dir.len() && p.starts_with(dir) && p[dir.len()] == b'/')
        }
        _ => t.field().is_some_and(|f| test_value(t, &value(r, f))),
    }
}

/// A field test on the field's value `v` (for [`Test::Any`] and [`Test::Subtree`], which need
/// the whole record, false).
pub(crate) fn test_value(t: &Test, v: &Value<'_>) -> bool {
    match t {
        Test::Substring(_, n) => any_text(v, |s| n.found_in(s)),
        Test::Exact(_, want) => match v {
            Value::Bytes(b) => *b == want.as_bytes(),
            v => any_text(v, |s| s == want),
        },
        Test::Regex(_, re) => any_text(v, |s| re.is_match(s)),
        Test::Equal(_, n) => matches!(v, Value::Int(x) if x == n),
        Test::Range(_, lo, hi) => match v {
            Value::Int(x) => lo.is_none_or(|lo| *x >= lo) && hi.is_none_or(|hi| *x <= hi),
            _ => false,
        },
        Test::Bool(_, b) => matches!(v, Value::Bool(x) if x == b),
        Test::Present(_) => match v {
            Value::Null => false,
            Value::List(l) => !l.is_empty(),
            Value::Text(t) => !t.is_empty(),
            _ => true,
        },
        Test::Any(_) | Test::Subtree(_) => false,
    }
}

fn term(t: &Term, r: &RecordView<'_>) -> bool {
    test(&t.test, r) != t.negate
}

/// Fields an index entry holds, so terms on them are decided without reading the record.
const ENTRY_FIELDS: [Field; 4] = [Field::Id, Field::Size, Field::MtimeNs, Field::Kind];

/// `f` of the record with `id` and entry `e`, for the fields of [`ENTRY_FIELDS`].
fn entry_value(id: u64, e: &FileEntry, f: Field) -> Value<'static> {
    match f {
        Field::Id => Value::Int(id as i64),
        Field::Size => Value::Int(e.size as i64),
        Field::MtimeNs => Value::Int(e.mtime_ns),
        Field::Kind => Value::Text(std::borrow::Cow::Borrowed(
            Kind::from_fb(crate::store::fb::Kind(e.kind)).as_str(),
        )),
        _ => Value::Null,
    }
}

/// Whether every term of `query` is on a field of the index entry: then it is evaluated on
/// entries alone, and only the records that match are read.
fn entry_only(query: &Query) -> bool {
    !query.is_empty()
        && query.groups.iter().flatten().all(|t| match &t.test {
            Test::Substring(f, _)
            | Test::Exact(f, _)
            | Test::Regex(f, _)
            | Test::Equal(f, _)
            | Test::Range(f, _, _)
            | Test::Bool(f, _) => ENTRY_FIELDS.contains(f),
            Test::Any(_) | Test::Subtree(_) | Test::Present(_) => false,
        })
}

/// Whether index entries hold `f`.
pub(crate) fn is_entry_field(f: Field) -> bool {
    ENTRY_FIELDS.contains(&f)
}

/// [`test`] on an index entry, for a query where [`entry_only`] holds.
pub(crate) fn entry_test(t: &Test, id: u64, e: &FileEntry) -> bool {
    let v = |f: Field| entry_value(id, e, f);
    match t {
        Test::Substring(f, n) => any_text(&v(*f), |s| n.found_in(s)),
        Test::Exact(f, want) => any_text(&v(*f), |s| s == want),
        Test::Regex(f, re) => any_text(&v(*f), |s| re.is_match(s)),
        Test::Equal(f, n) => matches!(v(*f), Value::Int(x) if x == *n),
        Test::Range(f, lo, hi) => match v(*f) {
            Value::Int(x) => lo.is_none_or(|lo| x >= lo) && hi.is_none_or(|hi| x <= hi),
            _ => false,
        },
        Test::Bool(f, b) => matches!(v(*f), Value::Bool(x) if x == *b),
        Test::Any(_) | Test::Subtree(_) | Test::Present(_) => false,
    }
}

impl Query {
    /// [`Query::matches`] on an index entry, for a query where [`entry_only`] holds.
    fn matches_entry(&self, id: u64, e: &FileEntry) -> bool {
        self.groups
            .iter()
            .any(|g| g.iter().all(|t| entry_test(&t.test, id, e) != t.negate))
    }
}

impl Query {
    /// Whether `r` matches.
    pub fn matches(&self, r: &RecordView<'_>) -> bool {
        self.groups.is_empty() || self.groups.iter().any(|g| g.iter().all(|t| term(t, r)))
    }

    /// Whether the query matches everything.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// A sort key: a field and a direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SortKey {
    /// The field.
    pub field: Field,
    /// Descending when true.
    pub descending: bool,
}

/// The matching records of `snap`, sorted by `sort` (stable; ties keep path order; absent
/// values last, ascending or descending), at most `limit` of them.
pub fn select<'s>(
    snap: &'s Snapshot,
    query: &Query,
    sort: &[SortKey],
    limit: Option<usize>,
) -> Result<Vec<RecordView<'s>>, ReadError> {
    // The first few by keys the cache holds: only they (and records it does not cover) are
    // read. One exact path is found through the path index instead.
    if let Some(n) = limit
        && !sort.is_empty()
        && !single_path(query)
        && let Some(ids) = super::columns::first_sorted_ids(snap, query, sort, n)
    {
        return ids?
            .into_iter()
            .filter_map(|id| snap.get_by_id(id).transpose())
            .collect();
    }
    let out = matching(snap, query)?;
    if let Some(n) = limit
        && n < out.len()
    {
        return Ok(first_sorted(out, sort, n));
    }
    // Each record's keys are read once, not in every comparison, and the paths are copied
    // side by side: compared where they lie in the map, every comparison missed the cache.
    let mut paths = Vec::new();
    let mut keyed: Vec<(Vec<Value<'s>>, std::ops::Range<usize>, RecordView<'s>)> = out
        .into_iter()
        .map(|r| {
            let start = paths.len();
            paths.extend_from_slice(r.path());
            let keys = sort.iter().map(|k| value(&r, k.field)).collect();
            (keys, start..paths.len(), r)
        })
        .collect();
    keyed.sort_by(|(ka, pa, _), (kb, pb, _)| {
        keys_cmp(sort, ka, kb).then_with(|| natural_cmp(&paths[pa.clone()], &paths[pb.clone()]))
    });
    Ok(keyed.into_iter().map(|(_, _, r)| r).collect())
}

/// Orders two records' sort keys as [`select`] does: field by field, absent values (and empty
/// lists) last in either direction.
pub(crate) fn keys_cmp(sort: &[SortKey], ka: &[Value<'_>], kb: &[Value<'_>]) -> std::cmp::Ordering {
    let absent =
        |v: &Value<'_>| matches!(v, Value::Null) || matches!(v, Value::List(l) if l.is_empty());
    for ((va, vb), k) in ka.iter().zip(kb).zip(sort) {
        let o = match (absent(va), absent(vb)) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            (false, false) if k.descending => va.sort_cmp(vb).reverse(),
            (false, false) => va.sort_cmp(vb),
        };
        if o.is_ne() {
            return o;
        }
    }
    std::cmp::Ordering::Equal
}

/// A match with its sort keys.
#[derive(Clone)]
struct Keyed<'s> {
    keys: Vec<Value<'s>>,
    r: RecordView<'s>,
}

/// The first `n` of a stream of items in the order of `cmp` (a total order), without sorting
/// them all: the kept ones are cut back to `n` whenever they reach `2n`, and an item that
/// sorts after the `n`th kept then ([`FirstN::nth`]) cannot be among the first `n`, so memory
/// and comparisons stay near `n` per item.
pub(crate) struct FirstN<T, F> {
    n: usize,
    kept: Vec<T>,
    nth: Option<T>,
    cmp: F,
}

impl<T: Clone, F: Fn(&T, &T) -> std::cmp::Ordering> FirstN<T, F> {
    pub(crate) fn new(n: usize, cmp: F) -> FirstN<T, F> {
        FirstN {
            n,
            kept: Vec::new(),
            nth: None,
            cmp,
        }
    }

    /// The `n`th item kept when they were last cut back: no item that sorts after it can be
    /// among the first `n`.
    pub(crate) fn nth(&self) -> Option<&T> {
        self.nth.as_ref()
    }

    /// Offers `item`.
    pub(crate) fn push(&mut self, item: T) {
        if self.n == 0
            || self
                .nth
                .as_ref()
                .is_some_and(|w| (self.cmp)(&item, w).is_gt())
        {
            return;
        }
        self.kept.push(item);
        if self.kept.len() >= self.n.saturating_mul(2) {
            self.kept.select_nth_unstable_by(self.n - 1, &self.cmp);
            self.kept.truncate(self.n);
            self.nth = Some(self.kept[self.n - 1].clone());
        }
    }

    /// The first `n` items offered, in order.
    pub(crate) fn finish(mut self) -> Vec<T> {
        self.kept.sort_unstable_by(&self.cmp);
        self.kept.truncate(self.n);
        self.kept
    }
}

/// The first `n` of `out` in [`select`]'s order (see [`FirstN`]). Natural path order ends in a
/// byte comparison, so no two live records tie: the answer is exactly the sorted list cut
/// short.
fn first_sorted<'s>(out: Vec<RecordView<'s>>, sort: &[SortKey], n: usize) -> Vec<RecordView<'s>> {
    let mut first = FirstN::new(n, |a: &Keyed<'_>, b: &Keyed<'_>| {
        keys_cmp(sort, &a.keys, &b.keys).then_with(|| natural_cmp(a.r.path(), b.r.path()))
    });
    for r in out {
        first.push(Keyed {
            keys: sort.iter().map(|s| value(&r, s.field)).collect(),
            r,
        });
    }
    first.finish().into_iter().map(|k| k.r).collect()
}

/// The paths of the records matching `query`, in the order [`select`] gives them without sort
/// keys (natural path order), at most `limit` of them: what `--format paths` and `-0` print.
/// Answered from the column cache without reading the records it covers; `None` when the
/// cache cannot answer (then [`select`] the records).
pub fn select_paths(
    snap: &Snapshot,
    query: &Query,
    limit: Option<usize>,
) -> Option<Result<PathList, ReadError>> {
    // One exact path is found through the path index, faster than any column.
    if single_path(query) {
        return None;
    }
    let ids = match super::columns::matching_ids(snap, query)? {
        Ok(ids) => ids,
        Err(e) => return Some(Err(e)),
    };
    let mut list = match super::columns::paths_of(snap, &ids) {
        Ok(list) => list,
        Err(e) => return Some(Err(e)),
    };
    let bytes = &list.bytes;
    list.spans
        .sort_by(|a, b| natural_cmp(&bytes[a.clone()], &bytes[b.clone()]));
    if let Some(n) = limit {
        list.spans.truncate(n);
    }
    Some(Ok(list))
}

/// Paths side by side, as [`select_paths`] gives them.
#[derive(Debug, Default)]
pub struct PathList {
    pub(crate) bytes: Vec<u8>,
    /// Path `i` is `bytes[spans[i]]`.
    pub(crate) spans: Vec<std::ops::Range<usize>>,
}

impl PathList {
    /// The paths, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.spans.iter().map(|s| &self.bytes[s.clone()])
    }
}

/// Counts the matching records without sorting them.
pub fn count(snap: &Snapshot, query: &Query) -> Result<u64, ReadError> {
    if query.is_empty() {
        return Ok(snap.len());
    }
    if let Some(ids) = super::columns::matching_ids(snap, query) {
        return Ok(ids?.len() as u64);
    }
    if entry_only(query) {
        let n = snap
            .entries()
            .filter(|(id, e)| query.matches_entry(*id, e))
            .count() as u64;
        snap.index_intact()?;
        return Ok(n);
    }
    Ok(matching(snap, query)?.len() as u64)
}

/// Every record that matches `query`, in id order. Reading and testing records is spread over
/// all cores (each record is verified on its own, so the work splits freely).
fn matching<'s>(snap: &'s Snapshot, query: &Query) -> Result<Vec<RecordView<'s>>, ReadError> {
    use rayon::prelude::*;
    if single_path(query) {
        let mut out = Vec::new();
        for r in candidates(snap, query) {
            let r = r?;
            if query.matches(&r) {
                out.push(r);
            }
        }
        return Ok(out);
    }
    if let Some(ids) = super::columns::matching_ids(snap, query) {
        // Only the matches are read.
        let parts: Vec<Vec<RecordView<'s>>> = ids?
            .par_chunks(4096)
            .map(|chunk| {
                let mut part = Vec::with_capacity(chunk.len());
                for &id in chunk {
                    part.extend(snap.get_by_id(id)?);
                }
                Ok(part)
            })
            .collect::<Result<_, ReadError>>()?;
        return Ok(parts.into_iter().flatten().collect());
    }
    let ids: Vec<u64> = if entry_only(query) {
        snap.entries()
            .filter(|(id, e)| query.matches_entry(*id, e))
            .map(|(id, _)| id)
            .collect()
    } else {
        snap.entries().map(|(id, _)| id).collect()
    };
    let parts: Vec<Vec<RecordView<'s>>> = ids
        .par_chunks(4096)
        .map(|chunk| {
            let mut part = Vec::new();
            for &id in chunk {
                if let Some(r) = snap.get_by_id(id)?
                    && query.matches(&r)
                {
                    part.push(r);
                }
            }
            Ok(part)
        })
        .collect::<Result<_, ReadError>>()?;
    snap.index_intact()?;
    Ok(parts.into_iter().flatten().collect())
}

/// Whether `query` is one group that pins an exact path (`path:=/a/b`), which the path index
/// answers.
fn single_path(query: &Query) -> bool {
    matches!(query.groups.as_slice(), [group] if group.iter().any(|t| {
        matches!(&t.test, Test::Exact(Field::Path, _)) && !t.negate
    }))
}

/// The records that may match: with a single group that pins an exact path (`path:=/a/b`),
/// just that record through the path index; otherwise every record.
fn candidates<'s>(
    snap: &'s Snapshot,
    query: &Query,
) -> Box<dyn Iterator<Item = Result<RecordView<'s>, ReadError>> + 's> {
    let exact_path = match query.groups.as_slice() {
        [group] => group.iter().find_map(|t| match &t.test {
            Test::Exact(Field::Path, p) if !t.negate => Some(p.as_bytes().to_vec()),
            _ => None,
        }),
        _ => None,
    };
    match exact_path {
        Some(p) => Box::new(snap.get(&p).transpose().into_iter()),
        None if entry_only(query) => {
            let query = query.clone();
            Box::new(
                snap.entries()
                    .filter(move |(id, e)| query.matches_entry(*id, e))
                    .filter_map(move |(id, _)| snap.get_by_id(id).transpose()),
            )
        }
        None => Box::new(snap.iter()),
    }
}

/// What `--group-by` groups by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    /// Each artist of a record.
    Artist,
    /// The album artist.
    AlbumArtist,
    /// Album artist (or artist) + album, or the MusicBrainz album id when present.
    Album,
    /// Each genre of a record.
    Genre,
    /// The year.
    Year,
    /// The directory.
    Dir,
    /// The kind.
    Kind,
}

impl GroupBy {
    /// Parses a `--group-by` name.
    pub fn from_name(s: &str) -> Option<GroupBy> {
        Some(match s {
            "artist" | "artists" => GroupBy::Artist,
            "album_artist" => GroupBy::AlbumArtist,
            "album" => GroupBy::Album,
            "genre" | "genres" => GroupBy::Genre,
            "year" => GroupBy::Year,
            "dir" => GroupBy::Dir,
            "kind" => GroupBy::Kind,
            _ => return None,
        })
    }

    /// The name used in output.
    pub fn name(self) -> &'static str {
        match self {
            GroupBy::Artist => "artist",
            GroupBy::AlbumArtist => "album_artist",
            GroupBy::Album => "album",
            GroupBy::Genre => "genre",
            GroupBy::Year => "year",
            GroupBy::Dir => "dir",
            GroupBy::Kind => "kind",
        }
    }

    /// The record field grouped by; its type is the type of the group names.
    pub fn field(self) -> Field {
        match self {
            GroupBy::Artist => Field::Artist,
            GroupBy::AlbumArtist => Field::AlbumArtist,
            GroupBy::Album => Field::Album,
            GroupBy::Genre => Field::Genre,
            GroupBy::Year => Field::Year,
            GroupBy::Dir => Field::Dir,
            GroupBy::Kind => Field::Kind,
        }
    }
}

/// One `--group-by` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRow {
    /// The group's name (for albums: the album title).
    pub name: Vec<u8>,
    /// For albums: the album artist (or artist), if any.
    pub album_artist: Option<String>,
    /// Records in the group.
    pub count: u64,
}

/// Groups the matching records; rows sorted by name (natural order). Records without a value
/// for the field are not counted.
pub fn group_by(snap: &Snapshot, query: &Query, by: GroupBy) -> Result<Vec<GroupRow>, ReadError> {
    Ok(sorted_rows(groups(snap, query, by, true)?))
}

/// How many rows [`group_by`] would give, without naming and sorting them: `stats` counts the
/// artists, albums and genres of a whole library this way.
pub fn count_groups(snap: &Snapshot, query: &Query, by: GroupBy) -> Result<usize, ReadError> {
    Ok(groups(snap, query, by, false)?.len())
}

/// Group rows, unsorted, each with the byte key that identifies its group.
pub(crate) type KeyedGroups = Vec<(Vec<u8>, GroupRow)>;

/// The groups of [`group_by`], unsorted; without `named`, rows may lack their names (see
/// [`super::columns::groups`]).
fn groups(
    snap: &Snapshot,
    query: &Query,
    by: GroupBy,
    named: bool,
) -> Result<KeyedGroups, ReadError> {
    use rayon::prelude::*;
    if let Some(rows) = super::columns::groups(snap, query, by, named) {
        return rows;
    }
    // Key: (identity, display name, album artist). Each core groups its share of the records;
    // the shares are merged.
    let ids: Vec<u64> = snap.entries().map(|(id, _)| id).collect();
    let groups = ids
        .par_chunks(4096)
        .map(|chunk| {
            let mut groups: HashMap<Vec<u8>, GroupRow> = HashMap::new();
            for &id in chunk {
                if let Some(r) = snap.get_by_id(id)?
                    && query.matches(&r)
                {
                    group_one(&r, by, &mut groups);
                }
            }
            Ok(groups)
        })
        .try_reduce(HashMap::new, |mut a, b| {
            for (k, row) in b {
                match a.get_mut(&k) {
                    Some(have) => have.count += row.count,
                    None => {
                        a.insert(k, row);
                    }
                }
            }
            Ok(a)
        })?;
    snap.index_intact()?;
    Ok(groups.into_iter().collect())
}

/// Group rows in their output order: by name (natural order), then album artist, then key (two
/// albums of one name and artist with different MusicBrainz ids stay in a stable order).
fn sorted_rows(mut rows: KeyedGroups) -> Vec<GroupRow> {
    rows.sort_by(|(ka, a), (kb, b)| {
        natural_cmp(&a.name, &b.name)
            .then_with(|| a.album_artist.cmp(&b.album_artist))
            .then_with(|| ka.cmp(kb))
    });
    rows.into_iter().map(|(_, r)| r).collect()
}

/// Counts `r` into its group(s) of `by`.
pub(crate) fn group_one(r: &RecordView<'_>, by: GroupBy, groups: &mut HashMap<Vec<u8>, GroupRow>) {
    let mut add = |key: Vec<u8>, name: &[u8], aa: Option<&str>| {
        groups
            .entry(key)
            .or_insert_with(|| GroupRow {
                name: name.to_vec(),
                album_artist: aa.map(str::to_owned),
                count: 0,
            })
            .count += 1;
    };
    match by {
        GroupBy::Artist => r
            .artists()
            .for_each(|a| add(a.as_bytes().to_vec(), a.as_bytes(), None)),
        GroupBy::Genre => r
            .genres()
            .for_each(|g| add(g.as_bytes().to_vec(), g.as_bytes(), None)),
        GroupBy::AlbumArtist => {
            if let Some(a) = r.album_artist() {
                add(a.as_bytes().to_vec(), a.as_bytes(), None);
            }
        }
        GroupBy::Year => {
            if let Some(y) = r.year() {
                add(y.to_string().into_bytes(), y.to_string().as_bytes(), None);
            }
        }
        GroupBy::Kind => add(r.kind().as_str().into(), r.kind().as_str().as_bytes(), None),
        GroupBy::Dir => {
            if let Value::Bytes(d) = value(r, Field::Dir) {
                add(d.to_vec(), d, None);
            }
        }
        GroupBy::Album => {
            let Some(album) = r.album() else { return };
            let artist = r.album_artist().or_else(|| r.artists().next());
            let key = match r.musicbrainz_album_id() {
                Some(mb) if !mb.is_empty() => format!("mb\0{mb}"),
                _ => format!("t\0{}\0{album}", artist.unwrap_or_default()),
            };
            add(key.into_bytes(), album.as_bytes(), artist);
        }
    }
}

/// One level of a directory, as a DLNA browse shows it.
#[derive(Debug, Default)]
pub struct Listing<'s> {
    /// Subdirectories (full paths) with the number of records below each, natural order.
    pub dirs: Vec<(Vec<u8>, u64)>,
    /// Records directly in the directory: disc, track, then natural file-name order.
    pub files: Vec<RecordView<'s>>,
}

impl Listing<'_> {
    /// No subdirectories and no files: no record (of the kind asked for) is under the directory.
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty() && self.files.is_empty()
    }
}

/// Lists directory `dir` one level deep, optionally only records of `kind`.
pub fn list_dir<'s>(
    snap: &'s Snapshot,
    dir: &[u8],
    kind: Option<Kind>,
) -> Result<Listing<'s>, ReadError> {
    let dir = match dir.strip_suffix(b"/") {
        Some(d) if !d.is_empty() => d,
        _ if dir == b"/" => b"",
        _ => dir,
    };
    if let Some(listing) = super::columns::list_dir(snap, dir, kind) {
        return listing;
    }
    let mut dirs: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut files = Vec::new();
    for r in snap.iter() {
        place(r?, dir, kind, &mut dirs, &mut files);
    }
    Ok(listing(dirs, files))
}

/// Puts record `r` into the listing of `dir` (normalized as [`list_dir`] does): counted under
/// its subdirectory, listed as a file, or left out (elsewhere, or not of `kind`).
pub(crate) fn place<'s>(
    r: RecordView<'s>,
    dir: &[u8],
    kind: Option<Kind>,
    dirs: &mut HashMap<Vec<u8>, u64>,
    files: &mut Vec<RecordView<'s>>,
) {
    if kind.is_some_and(|k| r.kind() != k) {
        return;
    }
    let p = r.path();
    if p.len() <= dir.len() + 1 || !p.starts_with(dir) || p[dir.len()] != b'/' {
        return;
    }
    let rest = &p[dir.len() + 1..];
    match rest.iter().position(|b| *b == b'/') {
        Some(i) => *dirs.entry(p[..dir.len() + 1 + i].to_vec()).or_default() += 1,
        None => files.push(r),
    }
}

/// A listing in its output order: directories in natural order; files by disc, track, then
/// natural path order.
pub(crate) fn listing(dirs: HashMap<Vec<u8>, u64>, files: Vec<RecordView<'_>>) -> Listing<'_> {
    let mut dirs: Vec<_> = dirs.into_iter().collect();
    dirs.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    // Each file's keys are read once, not in every comparison.
    let mut keyed: Vec<_> = files
        .into_iter()
        .map(|f| {
            (
                f.disc().unwrap_or(0),
                f.track().unwrap_or(u32::MAX),
                f.path(),
                f,
            )
        })
        .collect();
    keyed.sort_by(|a, b| {
        (a.0, a.1)
            .cmp(&(b.0, b.1))
            .then_with(|| natural_cmp(a.2, b.2))
    });
    let files = keyed.into_iter().map(|(_, _, _, f)| f).collect();
    Listing { dirs, files }
}

impl Snapshot {
    /// `query`'s matches grouped for browsing (see [`group_by`]).
    pub fn group_by(&self, query: &Query, by: GroupBy) -> Result<Vec<GroupRow>, ReadError> {
        group_by(self, query, by)
    }

    /// How many groups [`group_by`](Self::group_by) would give (see [`count_groups`]).
    pub fn count_groups(&self, query: &Query, by: GroupBy) -> Result<usize, ReadError> {
        count_groups(self, query, by)
    }

    /// One directory level (see [`list_dir`]).
    pub fn list_dir(&self, dir: &[u8], kind: Option<Kind>) -> Result<Listing<'_>, ReadError> {
        list_dir(self, dir, kind)
    }
}
