//! Media records: the owned [`Record`] callers build and receive, the zero-copy [`RecordView`]
//! over a verified FlatBuffer in the map, and the encoder between them.

use flatbuffers::VerifierOptions;
#[cfg(test)]
use flatbuffers::{FlatBufferBuilder, ForwardsUOffset, Vector, WIPOffset};

use crate::store::fb;
use crate::store::format::{MAX_RECORD_LEN, VERIFY_MAX_DEPTH, VERIFY_MAX_TABLES};

/// `$e` over the record table `$r` of view `$v`, for the accessors both tables have.
macro_rules! either {
    ($v:expr, $r:ident => $e:expr) => {
        match $v.fb {
            Layout::V2($r) => $e,
            Layout::V3($r) => $e,
        }
    };
}
/// A fixed field of a version-3 record, or the field of a version-2 one.
macro_rules! fixed_or {
    ($v:expr, $f:ident => $e3:expr, $r:ident => $e2:expr) => {
        match $v.fb {
            Layout::V2($r) => $e2,
            Layout::V3(r) => {
                let $f = r.fixed();
                $e3
            }
        }
    };
}

/// What kind of media a file is, from its extension.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Anything else.
    #[default]
    Other,
    /// Music and other sound.
    Audio,
    /// Moving pictures.
    Video,
    /// Still pictures.
    Image,
    /// Playlist files (m3u, pls, …).
    Playlist,
}

impl Kind {
    /// Every kind, in display order.
    pub const ALL: [Kind; 5] = [
        Kind::Audio,
        Kind::Video,
        Kind::Image,
        Kind::Playlist,
        Kind::Other,
    ];

    /// The stable lower-case name used in JSON and queries.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Other => "other",
            Kind::Audio => "audio",
            Kind::Video => "video",
            Kind::Image => "image",
            Kind::Playlist => "playlist",
        }
    }

    pub(crate) fn to_fb(self) -> fb::Kind {
        match self {
            Kind::Other => fb::Kind::Other,
            Kind::Audio => fb::Kind::Audio,
            Kind::Video => fb::Kind::Video,
            Kind::Image => fb::Kind::Image,
            Kind::Playlist => fb::Kind::Playlist,
        }
    }

    pub(crate) fn from_fb(k: fb::Kind) -> Kind {
        match k {
            fb::Kind::Audio => Kind::Audio,
            fb::Kind::Video => Kind::Video,
            fb::Kind::Image => Kind::Image,
            fb::Kind::Playlist => Kind::Playlist,
            // Other, and values a newer writer may add.
            _ => Kind::Other,
        }
    }
}

/// One indexed file, owned. `id` is assigned by the database; it is ignored on upsert.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(
    missing_docs,
    reason = "field names are the documented record fields of BRIEF §2"
)]
pub struct Record {
    pub id: u64,
    /// Exact bytes of the path; not necessarily UTF-8.
    pub path: Vec<u8>,
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: u64,
    pub kind: Kind,
    /// Version of the tag extractor that produced the tags (a rescan re-reads older ones).
    pub extractor_version: u16,
    pub mime: Option<String>,
    pub title: Option<String>,
    pub artists: Vec<String>,
    pub album: Option<String>,
    pub album_artist: Option<String>,
    pub genres: Vec<String>,
    pub year: Option<i32>,
    pub track: Option<u32>,
    pub track_total: Option<u32>,
    pub disc: Option<u32>,
    pub disc_total: Option<u32>,
    pub duration_ms: Option<u64>,
    pub bitrate: Option<u32>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u8>,
    pub bit_depth: Option<u8>,
    pub compilation: Option<bool>,
    pub has_cover: Option<bool>,
    pub musicbrainz_track_id: Option<String>,
    pub musicbrainz_album_id: Option<String>,
    /// Why the file could not be read fully, if it could not.
    pub error: Option<String>,
    /// Tags with no field of their own, as (key, value) pairs in order; a key may repeat.
    /// `scan` leaves this empty; `migrate` keeps VuIO's extra tags here.
    pub tags: Vec<(String, String)>,
}

impl Record {
    /// A record for `path` with nothing else set.
    pub fn new(path: impl Into<Vec<u8>>) -> Record {
        Record {
            path: path.into(),
            ..Record::default()
        }
    }

    /// The artists joined for display (`"A; B"`), if any.
    pub fn artist(&self) -> Option<String> {
        join(&self.artists)
    }

    /// The genres joined for display, if any.
    pub fn genre(&self) -> Option<String> {
        join(&self.genres)
    }
}

/// A path's directory (up to its last `/`; `/` for a top-level name, empty without a `/`) and
/// name.
pub(crate) fn split_path(p: &[u8]) -> (&[u8], &[u8]) {
    match p.iter().rposition(|b| *b == b'/') {
        Some(0) => (b"/", &p[1..]),
        Some(i) => (&p[..i], &p[i + 1..]),
        None => (b"", p),
    }
}

fn join(v: &[String]) -> Option<String> {
    if v.is_empty() {
        None
    } else {
        Some(v.join("; "))
    }
}

#[cfg(test)]
fn opt_str<'b>(fbb: &mut FlatBufferBuilder<'b>, v: &Option<String>) -> Option<WIPOffset<&'b str>> {
    v.as_deref().map(|x| fbb.create_string(x))
}

#[cfg(test)]
type StrList<'b> = WIPOffset<Vector<'b, ForwardsUOffset<&'b str>>>;

#[cfg(test)]
fn str_list<'b>(fbb: &mut FlatBufferBuilder<'b>, v: &[String]) -> Option<StrList<'b>> {
    if v.is_empty() {
        return None;
    }
    let items: Vec<_> = v.iter().map(|x| fbb.create_string(x)).collect();
    Some(fbb.create_vector(&items))
}

/// The file identifier of a `Record3` buffer (format version 3).
const RECORD3_ID: &str = "MDR3";

// Bits of `RecordFixed::present`: which optional numbers a version-3 record has.
const FIXED_YEAR: u16 = 1 << 0;
const FIXED_TRACK: u16 = 1 << 1;
const FIXED_TRACK_TOTAL: u16 = 1 << 2;
const FIXED_DISC: u16 = 1 << 3;
const FIXED_DISC_TOTAL: u16 = 1 << 4;
const FIXED_DURATION: u16 = 1 << 5;
const FIXED_BITRATE: u16 = 1 << 6;
const FIXED_SAMPLE_RATE: u16 = 1 << 7;
const FIXED_CHANNELS: u16 = 1 << 8;
const FIXED_BIT_DEPTH: u16 = 1 << 9;
const FIXED_COMPILATION: u16 = 1 << 10;
const FIXED_HAS_COVER: u16 = 1 << 11;

// Bits of `RecordFixed::flags`.
const FLAG_COMPILATION: u8 = 1 << 0;
const FLAG_HAS_COVER: u8 = 1 << 1;

/// `rec`'s fixed-size fields with `id`, absent numbers stored as 0 with their bit clear.
fn fixed(rec: &Record, id: u64) -> fb::RecordFixed {
    let mut present = 0;
    let mut has = |bit: u16, some: bool| {
        if some {
            present |= bit;
        }
    };
    has(FIXED_YEAR, rec.year.is_some());
    has(FIXED_TRACK, rec.track.is_some());
    has(FIXED_TRACK_TOTAL, rec.track_total.is_some());
    has(FIXED_DISC, rec.disc.is_some());
    has(FIXED_DISC_TOTAL, rec.disc_total.is_some());
    has(FIXED_DURATION, rec.duration_ms.is_some());
    has(FIXED_BITRATE, rec.bitrate.is_some());
    has(FIXED_SAMPLE_RATE, rec.sample_rate.is_some());
    has(FIXED_CHANNELS, rec.channels.is_some());
    has(FIXED_BIT_DEPTH, rec.bit_depth.is_some());
    has(FIXED_COMPILATION, rec.compilation.is_some());
    has(FIXED_HAS_COVER, rec.has_cover.is_some());
    let mut flags = 0;
    if rec.compilation == Some(true) {
        flags |= FLAG_COMPILATION;
    }
    if rec.has_cover == Some(true) {
        flags |= FLAG_HAS_COVER;
    }
    fb::RecordFixed::new(
        id,
        rec.size,
        rec.mtime_ns,
        rec.inode,
        rec.duration_ms.unwrap_or(0),
        rec.year.unwrap_or(0),
        rec.track.unwrap_or(0),
        rec.track_total.unwrap_or(0),
        rec.disc.unwrap_or(0),
        rec.disc_total.unwrap_or(0),
        rec.bitrate.unwrap_or(0),
        rec.sample_rate.unwrap_or(0),
        rec.extractor_version,
        present,
        rec.kind.to_fb(),
        rec.channels.unwrap_or(0),
        rec.bit_depth.unwrap_or(0),
        flags,
    )
}

/// An object a `Record3` table points at.
#[derive(Clone, Copy)]
enum Object<'r> {
    Bytes(&'r [u8]),
    Str(&'r str),
    Strs(&'r [String]),
    TagKeys(&'r [(String, String)]),
    TagValues(&'r [(String, String)]),
}

/// Fields of `Record3` after `fixed` (field ids 1 to 12), each an object.
const RECORD3_OBJECTS: usize = 12;

/// Encodes `rec` with `id` as a size-prefixed `Record3` FlatBuffer with its file identifier,
/// appended to `out`. Its size is worked out first, then it is written front to back into
/// zeroed bytes (so padding and string terminators need no writes), in this layout (offsets
/// from the size prefix):
///
/// * 0: size prefix; 4: root offset; 8: `MDR3`;
/// * 12: the vtable, with an entry for each field up to the last present one (0 for an absent
///   one);
/// * then the table, placed so that its `RecordFixed` struct is 8-aligned: its vtable offset,
///   the struct, then an offset for each present object, in field order;
/// * then the objects in field order, each 4-aligned: `path` as a byte vector, strings with
///   their terminating NUL, string lists as a vector of offsets followed by the strings.
///
/// Every offset points forward and every scalar is aligned from the buffer's start, as in what
/// `FlatBufferBuilder` makes; reads verify it like any buffer. The builder works back to front
/// and copies its result out.
pub(crate) fn encode(rec: &Record, id: u64, out: &mut Vec<u8>) {
    fn opt(v: &Option<String>) -> Option<Object<'_>> {
        v.as_deref().map(Object::Str)
    }
    fn list(v: &[String]) -> Option<Object<'_>> {
        (!v.is_empty()).then_some(Object::Strs(v))
    }
    const VTABLE: usize = 12;
    const FIXED_LEN: usize = std::mem::size_of::<fb::RecordFixed>();
    let tags = !rec.tags.is_empty();
    let objects: [Option<Object<'_>>; RECORD3_OBJECTS] = [
        Some(Object::Bytes(&rec.path)),
        opt(&rec.mime),
        opt(&rec.title),
        list(&rec.artists),
        opt(&rec.album),
        opt(&rec.album_artist),
        list(&rec.genres),
        opt(&rec.musicbrainz_track_id),
        opt(&rec.musicbrainz_album_id),
        opt(&rec.error),
        tags.then_some(Object::TagKeys(&rec.tags)),
        tags.then_some(Object::TagValues(&rec.tags)),
    ];
    let present = objects.iter().flatten().count();
    // Fields in the vtable: `fixed`, then up to the last present object.
    let fields = 2 + objects.iter().rposition(Option::is_some).unwrap_or(0);
    let vtable_len = 4 + 2 * fields;
    // The table's struct (4 bytes in) must be 8-aligned.
    let table = (VTABLE + vtable_len + 4).next_multiple_of(8) - 4;
    let table_len = 4 + FIXED_LEN + 4 * present;
    let align4 = |n: usize| n.next_multiple_of(4);
    let str_len = |s: &[u8]| 4 + s.len() + 1;
    let strs_end = |at: usize, n: usize, strs: &mut dyn Iterator<Item = &[u8]>| {
        strs.fold(at + 4 + 4 * n, |end, s| align4(end) + str_len(s))
    };
    let mut end = table + table_len;
    for o in objects.iter().flatten() {
        let at = align4(end);
        end = match *o {
            Object::Bytes(b) => at + 4 + b.len(),
            Object::Str(s) => at + str_len(s.as_bytes()),
            Object::Strs(v) => strs_end(at, v.len(), &mut v.iter().map(String::as_bytes)),
            Object::TagKeys(t) => strs_end(at, t.len(), &mut t.iter().map(|t| t.0.as_bytes())),
            Object::TagValues(t) => strs_end(at, t.len(), &mut t.iter().map(|t| t.1.as_bytes())),
        };
    }
    let start = out.len();
    out.resize(start + end, 0);
    let b = &mut out[start..];
    let put16 = |b: &mut [u8], at: usize, v: usize| {
        b[at..at + 2].copy_from_slice(&(v as u16).to_le_bytes());
    };
    let put32 = |b: &mut [u8], at: usize, v: usize| {
        b[at..at + 4].copy_from_slice(&(v as u32).to_le_bytes());
    };
    let put_str = |b: &mut [u8], at: usize, s: &[u8]| {
        put32(b, at, s.len());
        b[at + 4..at + 4 + s.len()].copy_from_slice(s);
        at + str_len(s)
    };
    let put_strs = |b: &mut [u8], at: usize, n: usize, strs: &mut dyn Iterator<Item = &[u8]>| {
        put32(b, at, n);
        let items = at + 4;
        let mut s_at = items + 4 * n;
        for (i, s) in strs.enumerate() {
            s_at = align4(s_at);
            put32(b, items + 4 * i, s_at - (items + 4 * i));
            s_at = put_str(b, s_at, s);
        }
        s_at
    };
    put32(b, 0, end - 4);
    put32(b, 4, table - 4);
    b[8..12].copy_from_slice(RECORD3_ID.as_bytes());
    put16(b, VTABLE, vtable_len);
    put16(b, VTABLE + 2, table_len);
    put16(b, VTABLE + 4, 4);
    put32(b, table, table - VTABLE);
    b[table + 4..table + 4 + FIXED_LEN].copy_from_slice(&fixed(rec, id).0);
    let offsets = table + 4 + FIXED_LEN;
    let mut at = offsets + 4 * present;
    let mut slot = 0;
    for (field, o) in objects.iter().enumerate() {
        let Some(o) = *o else { continue };
        put16(b, VTABLE + 6 + 2 * field, 4 + FIXED_LEN + 4 * slot);
        at = align4(at);
        let offset_at = offsets + 4 * slot;
        put32(b, offset_at, at - offset_at);
        slot += 1;
        at = match o {
            Object::Bytes(v) => {
                put32(b, at, v.len());
                b[at + 4..at + 4 + v.len()].copy_from_slice(v);
                at + 4 + v.len()
            }
            Object::Str(s) => put_str(b, at, s.as_bytes()),
            Object::Strs(v) => put_strs(b, at, v.len(), &mut v.iter().map(String::as_bytes)),
            Object::TagKeys(t) => put_strs(b, at, t.len(), &mut t.iter().map(|t| t.0.as_bytes())),
            Object::TagValues(t) => put_strs(b, at, t.len(), &mut t.iter().map(|t| t.1.as_bytes())),
        };
    }
    debug_assert_eq!(at, end);
}

/// The same record through `FlatBufferBuilder`, which [`encode`] replaced: the tests check that
/// both read back alike.
#[cfg(test)]
fn encode_with_builder(fbb: &mut FlatBufferBuilder<'_>, rec: &Record, id: u64, out: &mut Vec<u8>) {
    fbb.reset();
    let path = fbb.create_vector(&rec.path);
    let s = opt_str;
    let list = str_list;
    let mime = s(fbb, &rec.mime);
    let title = s(fbb, &rec.title);
    let artists = list(fbb, &rec.artists);
    let album = s(fbb, &rec.album);
    let album_artist = s(fbb, &rec.album_artist);
    let genres = list(fbb, &rec.genres);
    let mb_track = s(fbb, &rec.musicbrainz_track_id);
    let mb_album = s(fbb, &rec.musicbrainz_album_id);
    let error = s(fbb, &rec.error);
    let (tag_keys, tag_values) = if rec.tags.is_empty() {
        (None, None)
    } else {
        let keys: Vec<_> = rec.tags.iter().map(|t| fbb.create_string(&t.0)).collect();
        let keys = fbb.create_vector(&keys);
        let values: Vec<_> = rec.tags.iter().map(|t| fbb.create_string(&t.1)).collect();
        (Some(keys), Some(fbb.create_vector(&values)))
    };
    let f = fixed(rec, id);
    let root = fb::Record3::create(
        fbb,
        &fb::Record3Args {
            fixed: Some(&f),
            path: Some(path),
            mime,
            title,
            artists,
            album,
            album_artist,
            genres,
            musicbrainz_track_id: mb_track,
            musicbrainz_album_id: mb_album,
            error,
            tag_keys,
            tag_values,
        },
    );
    fbb.finish_size_prefixed(root, Some(RECORD3_ID));
    out.extend_from_slice(fbb.finished_data());
}

fn verifier_options(len: usize) -> VerifierOptions {
    VerifierOptions {
        max_depth: VERIFY_MAX_DEPTH,
        max_tables: VERIFY_MAX_TABLES,
        max_apparent_size: len.saturating_mul(4),
        ignore_missing_null_terminator: false,
    }
}

/// A FlatBuffers verifier error on one line: its own text adds a tab-indented trace line per
/// level of nesting.
pub(crate) fn flat_error(e: &flatbuffers::InvalidFlatbuffer) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a record buffer was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordProblem {
    /// The size prefix points past the available bytes or over the size limit.
    BadLength(u64),
    /// The FlatBuffers verifier refused it.
    Invalid(String),
}

impl std::fmt::Display for RecordProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordProblem::BadLength(n) => write!(f, "impossible size prefix {n}"),
            RecordProblem::Invalid(why) => write!(f, "{why}"),
        }
    }
}

/// Verifies the size-prefixed record starting at `bytes[0]`; returns the view and the total
/// length (prefix included, unpadded).
pub(crate) fn verify(bytes: &[u8]) -> Result<(RecordView<'_>, usize), RecordProblem> {
    let Some(prefix) = bytes.get(..4) else {
        return Err(RecordProblem::BadLength(bytes.len() as u64));
    };
    let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    if len > MAX_RECORD_LEN || len + 4 > bytes.len() || len < 4 {
        return Err(RecordProblem::BadLength(len as u64));
    }
    let buf = &bytes[..len + 4];
    let opts = verifier_options(len);
    let invalid = |e: flatbuffers::InvalidFlatbuffer| RecordProblem::Invalid(flat_error(&e));
    // A `Record` buffer has the start of a vtable here (an even size first), or zero padding.
    let view = if buf.get(8..12) == Some(RECORD3_ID.as_bytes()) {
        let rec = flatbuffers::size_prefixed_root_with_opts::<fb::Record3>(&opts, buf);
        RecordView {
            fb: Layout::V3(rec.map_err(invalid)?),
        }
    } else {
        let rec = flatbuffers::size_prefixed_root_with_opts::<fb::Record>(&opts, buf);
        RecordView {
            fb: Layout::V2(rec.map_err(invalid)?),
        }
    };
    let keys = either!(view, r => r.tag_keys().map_or(0, |v| v.len()));
    let values = either!(view, r => r.tag_values().map_or(0, |v| v.len()));
    if keys != values {
        return Err(RecordProblem::Invalid(
            "tag_keys and tag_values differ in length".into(),
        ));
    }
    Ok((view, len + 4))
}

/// A record encoded into a buffer of its own, for a [`RecordView`] of a record that is not in
/// the database (a playlist entry whose file is missing is shown through one).
#[derive(Clone, Debug)]
pub struct EncodedRecord(Vec<u8>);

impl EncodedRecord {
    /// Encodes `rec` (with `rec.id`).
    pub fn new(rec: &Record) -> EncodedRecord {
        let mut out = Vec::new();
        encode(rec, rec.id, &mut out);
        EncodedRecord(out)
    }

    /// The view; `None` only for a record over the size limit.
    pub fn view(&self) -> Option<RecordView<'_>> {
        verify(&self.0).ok().map(|(v, _)| v)
    }
}

/// A verified record inside the database map: zero-copy accessors, [`RecordView::to_record`]
/// for an owned copy.
#[derive(Clone, Copy)]
pub struct RecordView<'a> {
    fb: Layout<'a>,
}

/// The record table a buffer holds: `Record` (format versions 1 and 2) or `Record3`.
#[derive(Clone, Copy)]
enum Layout<'a> {
    V2(fb::Record<'a>),
    V3(fb::Record3<'a>),
}

/// An optional number of a version-3 record: `value` when `bit` is set in `present`.
fn present<T>(f: &fb::RecordFixed, bit: u16, value: T) -> Option<T> {
    (f.present() & bit != 0).then_some(value)
}

#[allow(missing_docs, reason = "accessors mirror the fields of Record")]
impl<'a> RecordView<'a> {
    pub fn id(&self) -> u64 {
        fixed_or!(self, f => f.id(), r => r.id())
    }
    /// Exact path bytes.
    pub fn path(&self) -> &'a [u8] {
        either!(self, r => r.path().bytes())
    }
    pub fn size(&self) -> u64 {
        fixed_or!(self, f => f.size(), r => r.size())
    }
    pub fn mtime_ns(&self) -> i64 {
        fixed_or!(self, f => f.mtime_ns(), r => r.mtime_ns())
    }
    pub fn inode(&self) -> u64 {
        fixed_or!(self, f => f.inode(), r => r.inode())
    }
    pub fn kind(&self) -> Kind {
        Kind::from_fb(fixed_or!(self, f => f.kind(), r => r.kind()))
    }
    pub fn extractor_version(&self) -> u16 {
        fixed_or!(self, f => f.extractor_version(), r => r.extractor_version())
    }
    pub fn mime(&self) -> Option<&'a str> {
        either!(self, r => r.mime())
    }
    pub fn title(&self) -> Option<&'a str> {
        either!(self, r => r.title())
    }
    pub fn artists(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        either!(self, r => r.artists())
            .into_iter()
            .flat_map(|v| v.iter())
    }
    pub fn album(&self) -> Option<&'a str> {
        either!(self, r => r.album())
    }
    pub fn album_artist(&self) -> Option<&'a str> {
        either!(self, r => r.album_artist())
    }
    pub fn genres(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        either!(self, r => r.genres())
            .into_iter()
            .flat_map(|v| v.iter())
    }
    pub fn year(&self) -> Option<i32> {
        fixed_or!(self, f => present(f, FIXED_YEAR, f.year()), r => r.year())
    }
    pub fn track(&self) -> Option<u32> {
        fixed_or!(self, f => present(f, FIXED_TRACK, f.track()), r => r.track())
    }
    pub fn duration_ms(&self) -> Option<u64> {
        fixed_or!(self, f => present(f, FIXED_DURATION, f.duration_ms()), r => r.duration_ms())
    }
    pub fn error(&self) -> Option<&'a str> {
        either!(self, r => r.error())
    }
    pub fn track_total(&self) -> Option<u32> {
        fixed_or!(self, f => present(f, FIXED_TRACK_TOTAL, f.track_total()), r => r.track_total())
    }
    pub fn disc(&self) -> Option<u32> {
        fixed_or!(self, f => present(f, FIXED_DISC, f.disc()), r => r.disc())
    }
    pub fn disc_total(&self) -> Option<u32> {
        fixed_or!(self, f => present(f, FIXED_DISC_TOTAL, f.disc_total()), r => r.disc_total())
    }
    pub fn bitrate(&self) -> Option<u32> {
        fixed_or!(self, f => present(f, FIXED_BITRATE, f.bitrate()), r => r.bitrate())
    }
    pub fn sample_rate(&self) -> Option<u32> {
        fixed_or!(self, f => present(f, FIXED_SAMPLE_RATE, f.sample_rate()), r => r.sample_rate())
    }
    pub fn channels(&self) -> Option<u8> {
        fixed_or!(self, f => present(f, FIXED_CHANNELS, f.channels()), r => r.channels())
    }
    pub fn bit_depth(&self) -> Option<u8> {
        fixed_or!(self, f => present(f, FIXED_BIT_DEPTH, f.bit_depth()), r => r.bit_depth())
    }
    pub fn compilation(&self) -> Option<bool> {
        fixed_or!(self,
            f => present(f, FIXED_COMPILATION, f.flags() & FLAG_COMPILATION != 0),
            r => r.compilation())
    }
    pub fn has_cover(&self) -> Option<bool> {
        fixed_or!(self,
            f => present(f, FIXED_HAS_COVER, f.flags() & FLAG_HAS_COVER != 0),
            r => r.has_cover())
    }
    pub fn musicbrainz_track_id(&self) -> Option<&'a str> {
        either!(self, r => r.musicbrainz_track_id())
    }
    pub fn musicbrainz_album_id(&self) -> Option<&'a str> {
        either!(self, r => r.musicbrainz_album_id())
    }

    /// Tags with no field of their own, as (key, value) pairs.
    pub fn tags(&self) -> impl Iterator<Item = (&'a str, &'a str)> + use<'a> {
        // `verify` checked both lists have the same length.
        let (keys, values) = either!(self, r => (r.tag_keys(), r.tag_values()));
        keys.into_iter().flatten().zip(values.into_iter().flatten())
    }

    /// An owned copy of every field.
    pub fn to_record(&self) -> Record {
        let f = self;
        let owned = |s: Option<&str>| s.map(str::to_owned);
        Record {
            id: f.id(),
            path: self.path().to_vec(),
            size: f.size(),
            mtime_ns: f.mtime_ns(),
            inode: f.inode(),
            kind: self.kind(),
            extractor_version: f.extractor_version(),
            mime: owned(f.mime()),
            title: owned(f.title()),
            artists: self.artists().map(str::to_owned).collect(),
            album: owned(f.album()),
            album_artist: owned(f.album_artist()),
            genres: self.genres().map(str::to_owned).collect(),
            year: f.year(),
            track: f.track(),
            track_total: f.track_total(),
            disc: f.disc(),
            disc_total: f.disc_total(),
            duration_ms: f.duration_ms(),
            bitrate: f.bitrate(),
            sample_rate: f.sample_rate(),
            channels: f.channels(),
            bit_depth: f.bit_depth(),
            compilation: f.compilation(),
            has_cover: f.has_cover(),
            musicbrainz_track_id: owned(f.musicbrainz_track_id()),
            musicbrainz_album_id: owned(f.musicbrainz_album_id()),
            error: owned(f.error()),
            tags: self
                .tags()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }
}

impl std::fmt::Debug for RecordView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordView")
            .field("id", &self.id())
            .field("path", &String::from_utf8_lossy(self.path()))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Record {
        Record {
            id: 0,
            path: b"/m/\xff/a.flac".to_vec(),
            size: 10,
            mtime_ns: -5,
            inode: 77,
            kind: Kind::Audio,
            extractor_version: 3,
            mime: Some("audio/flac".into()),
            title: Some("T".into()),
            artists: vec!["A".into(), "B".into()],
            album: Some("Al".into()),
            album_artist: Some("AA".into()),
            genres: vec!["Rock".into()],
            year: Some(1999),
            track: Some(0),
            track_total: Some(12),
            disc: Some(1),
            disc_total: Some(2),
            duration_ms: Some(1234),
            bitrate: Some(320),
            sample_rate: Some(44100),
            channels: Some(2),
            bit_depth: Some(16),
            compilation: Some(false),
            has_cover: Some(true),
            musicbrainz_track_id: Some("t".into()),
            musicbrainz_album_id: Some("a".into()),
            error: Some("e".into()),
            tags: vec![("Label".into(), "L".into()), ("Label".into(), "M".into())],
        }
    }

    #[test]
    fn every_field_round_trips_and_absent_stays_absent() {
        for rec in [full(), Record::new(b"/x".to_vec())] {
            let mut out = Vec::new();
            encode(&rec, 9, &mut out);
            let (view, len) = verify(&out).expect("verifies");
            assert_eq!(len, out.len());
            assert_eq!(view.to_record(), Record { id: 9, ..rec });
        }
    }

    /// Xorshift numbers for [`varied`].
    struct Xs(u64);

    impl Xs {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn text(&mut self, n: u64) -> String {
            let len = self.next() % n;
            (0..len)
                .map(|_| {
                    if self.next().is_multiple_of(7) {
                        'é'
                    } else {
                        'a'
                    }
                })
                .collect()
        }
        fn maybe(&mut self, n: u64) -> Option<String> {
            (!self.next().is_multiple_of(3)).then(|| self.text(n))
        }
    }

    /// A record with each field present or not, and strings of every length modulo 4 (so
    /// that every padding case is met), some empty, some not ASCII.
    fn varied(seed: u64) -> Record {
        let mut x = Xs(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let path_len = 1 + x.next() % 90;
        let mut rec = Record::new((0..path_len).map(|i| i as u8).collect::<Vec<u8>>());
        rec.mime = x.maybe(12);
        rec.title = x.maybe(40);
        rec.album = x.maybe(9);
        rec.album_artist = x.maybe(5);
        rec.musicbrainz_track_id = x.maybe(37);
        rec.musicbrainz_album_id = x.maybe(3);
        rec.error = x.maybe(60);
        rec.artists = (0..x.next() % 4).map(|_| x.text(11)).collect();
        rec.genres = (0..x.next() % 3).map(|_| x.text(6)).collect();
        rec.tags = (0..x.next() % 3).map(|_| (x.text(7), x.text(13))).collect();
        rec.year = x.next().is_multiple_of(2).then(|| x.next() as i32);
        rec.track = x.next().is_multiple_of(2).then(|| x.next() as u32);
        rec.size = x.next();
        rec.mtime_ns = x.next() as i64;
        rec.inode = x.next();
        rec
    }

    #[test]
    fn records_of_every_shape_read_back_as_the_builder_s_do() {
        let mut fbb = FlatBufferBuilder::new();
        for seed in 0..2000 {
            let rec = varied(seed);
            let mut ours = vec![0xAA; (seed % 8) as usize];
            let at = ours.len();
            encode(&rec, seed + 1, &mut ours);
            let mut theirs = Vec::new();
            encode_with_builder(&mut fbb, &rec, seed + 1, &mut theirs);
            let (view, len) = verify(&ours[at..]).expect("our encoding verifies");
            assert_eq!(len, ours.len() - at, "seed {seed}");
            let (builder_view, _) = verify(&theirs).expect("the builder's verifies");
            assert_eq!(
                view.to_record(),
                Record {
                    id: seed + 1,
                    ..rec.clone()
                }
            );
            assert_eq!(view.to_record(), builder_view.to_record(), "seed {seed}");
        }
    }

    #[test]
    fn truncated_and_oversized_buffers_are_refused() {
        let mut out = Vec::new();
        encode(&full(), 1, &mut out);
        for cut in 0..out.len() {
            assert!(verify(&out[..cut]).is_err(), "cut at {cut}");
        }
        let mut big = out.clone();
        big[..4].copy_from_slice(&(MAX_RECORD_LEN as u32 + 1).to_le_bytes());
        assert!(matches!(verify(&big), Err(RecordProblem::BadLength(_))));
    }
}
