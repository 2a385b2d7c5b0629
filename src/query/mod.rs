//! Queries over a snapshot: the beets-style language (`parse.rs`), its evaluation against
//! records (`eval.rs`), the output formats (`output.rs`) and their inverse for `import`
//! (`import.rs`). Field names and types are those of BRIEF §2, shared by filters, `--fields`,
//! `--sort` and `--group-by`.

mod columns;
pub mod eval;
pub mod import;
pub mod output;
pub mod parse;

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::record::{RecordView, split_path};

pub use eval::{GroupBy, GroupRow};
pub use parse::{ParseError, Query, parse, parse_args};

/// A record field, as named in JSON output and queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(
    missing_docs,
    reason = "each variant is the field of the same name in BRIEF §2"
)]
pub enum Field {
    Id,
    Path,
    Dir,
    Name,
    Size,
    MtimeNs,
    Kind,
    Mime,
    Title,
    Artist,
    Artists,
    Album,
    AlbumArtist,
    Genre,
    Genres,
    Year,
    Track,
    TrackTotal,
    Disc,
    DiscTotal,
    Compilation,
    DurationMs,
    Bitrate,
    SampleRate,
    Channels,
    BitDepth,
    HasCover,
    MusicbrainzTrackId,
    MusicbrainzAlbumId,
    Error,
}

/// How a field's values behave in filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// A number.
    Number,
    /// A string (or the path's bytes).
    Text,
    /// A list of strings.
    List,
    /// true/false.
    Bool,
}

impl Field {
    /// Every field, in output order.
    pub const ALL: [Field; 30] = [
        Field::Id,
        Field::Path,
        Field::Dir,
        Field::Name,
        Field::Size,
        Field::MtimeNs,
        Field::Kind,
        Field::Mime,
        Field::Title,
        Field::Artist,
        Field::Artists,
        Field::Album,
        Field::AlbumArtist,
        Field::Genre,
        Field::Genres,
        Field::Year,
        Field::Track,
        Field::TrackTotal,
        Field::Disc,
        Field::DiscTotal,
        Field::Compilation,
        Field::DurationMs,
        Field::Bitrate,
        Field::SampleRate,
        Field::Channels,
        Field::BitDepth,
        Field::HasCover,
        Field::MusicbrainzTrackId,
        Field::MusicbrainzAlbumId,
        Field::Error,
    ];

    /// The stable name.
    pub fn name(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::Path => "path",
            Field::Dir => "dir",
            Field::Name => "name",
            Field::Size => "size",
            Field::MtimeNs => "mtime_ns",
            Field::Kind => "kind",
            Field::Mime => "mime",
            Field::Title => "title",
            Field::Artist => "artist",
            Field::Artists => "artists",
            Field::Album => "album",
            Field::AlbumArtist => "album_artist",
            Field::Genre => "genre",
            Field::Genres => "genres",
            Field::Year => "year",
            Field::Track => "track",
            Field::TrackTotal => "track_total",
            Field::Disc => "disc",
            Field::DiscTotal => "disc_total",
            Field::Compilation => "compilation",
            Field::DurationMs => "duration_ms",
            Field::Bitrate => "bitrate",
            Field::SampleRate => "sample_rate",
            Field::Channels => "channels",
            Field::BitDepth => "bit_depth",
            Field::HasCover => "has_cover",
            Field::MusicbrainzTrackId => "musicbrainz_track_id",
            Field::MusicbrainzAlbumId => "musicbrainz_album_id",
            Field::Error => "error",
        }
    }

    /// The field called `name`.
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// How the field behaves in filters.
    pub fn ty(self) -> FieldType {
        match self {
            Field::Id
            | Field::Size
            | Field::MtimeNs
            | Field::Year
            | Field::Track
            | Field::TrackTotal
            | Field::Disc
            | Field::DiscTotal
            | Field::DurationMs
            | Field::Bitrate
            | Field::SampleRate
            | Field::Channels
            | Field::BitDepth => FieldType::Number,
            Field::Artists | Field::Genres => FieldType::List,
            Field::Compilation | Field::HasCover => FieldType::Bool,
            _ => FieldType::Text,
        }
    }

    /// All names, comma separated, for error messages.
    pub fn all_names() -> String {
        Field::ALL.map(Field::name).join(", ")
    }
}

/// One field's value in one record.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    /// Absent.
    Null,
    /// A number.
    Int(i64),
    /// true/false.
    Bool(bool),
    /// Text.
    Text(Cow<'a, str>),
    /// Raw bytes (path, dir, name): text when UTF-8.
    Bytes(&'a [u8]),
    /// A list of strings.
    List(Vec<&'a str>),
}

fn opt_text(v: Option<&str>) -> Value<'_> {
    v.map_or(Value::Null, |s| Value::Text(Cow::Borrowed(s)))
}

fn opt_int<T: Into<i64>>(v: Option<T>) -> Value<'static> {
    v.map_or(Value::Null, |n| Value::Int(n.into()))
}

fn joined<'a>(v: Vec<&'a str>) -> Value<'a> {
    match v.len() {
        0 => Value::Null,
        1 => Value::Text(Cow::Borrowed(v[0])),
        _ => Value::Text(Cow::Owned(v.join("; "))),
    }
}

/// The value of `field` in `r`.
pub fn value<'a>(r: &RecordView<'a>, field: Field) -> Value<'a> {
    match field {
        Field::Id => Value::Int(r.id() as i64),
        Field::Path => Value::Bytes(r.path()),
        Field::Dir => Value::Bytes(split_path(r.path()).0),
        Field::Name => Value::Bytes(split_path(r.path()).1),
        Field::Size => Value::Int(r.size() as i64),
        Field::MtimeNs => Value::Int(r.mtime_ns()),
        Field::Kind => Value::Text(Cow::Borrowed(r.kind().as_str())),
        Field::Mime => opt_text(r.mime()),
        Field::Title => opt_text(r.title()),
        Field::Artist => joined(r.artists().collect()),
        Field::Artists => Value::List(r.artists().collect()),
        Field::Album => opt_text(r.album()),
        Field::AlbumArtist => opt_text(r.album_artist()),
        Field::Genre => joined(r.genres().collect()),
        Field::Genres => Value::List(r.genres().collect()),
        Field::Year => opt_int(r.year()),
        Field::Track => opt_int(r.track()),
        Field::TrackTotal => opt_int(r.track_total()),
        Field::Disc => opt_int(r.disc()),
        Field::DiscTotal => opt_int(r.disc_total()),
        Field::Compilation => r.compilation().map_or(Value::Null, Value::Bool),
        Field::DurationMs => r
            .duration_ms()
            .map_or(Value::Null, |d| Value::Int(d as i64)),
        Field::Bitrate => opt_int(r.bitrate()),
        Field::SampleRate => opt_int(r.sample_rate()),
        Field::Channels => opt_int(r.channels()),
        Field::BitDepth => opt_int(r.bit_depth()),
        Field::HasCover => r.has_cover().map_or(Value::Null, Value::Bool),
        Field::MusicbrainzTrackId => opt_text(r.musicbrainz_track_id()),
        Field::MusicbrainzAlbumId => opt_text(r.musicbrainz_album_id()),
        Field::Error => opt_text(r.error()),
    }
}

/// Natural order: digit runs compare as numbers, the rest case-insensitively, then bytewise.
pub fn natural_cmp(a: &[u8], b: &[u8]) -> Ordering {
    // The common prefix compares equal either way (paths share long ones), except that a digit
    // run reaching into the first difference is compared whole: start at that run.
    let mut start = common_prefix(a, b);
    while start > 0 && a[start - 1].is_ascii_digit() {
        start -= 1;
    }
    natural_cmp_from(a, b, start)
}

/// [`natural_cmp`] of `a` and `b`, whose first `start` bytes are equal and do not end inside a
/// digit run that goes on past them.
fn natural_cmp_from(a: &[u8], b: &[u8], start: usize) -> Ordering {
    let (mut i, mut j) = (start, start);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let si = i;
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let (da, db) = (trim_zeros(&a[si..i]), trim_zeros(&b[sj..j]));
            let o = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            let o = a[i].to_ascii_lowercase().cmp(&b[j].to_ascii_lowercase());
            if o != Ordering::Equal {
                return o;
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j)).then_with(|| a.cmp(b))
}

/// Length of the longest common prefix of `a` and `b`, eight bytes at a time.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    for (x, y) in a[..n].chunks_exact(8).zip(b[..n].chunks_exact(8)) {
        let diff = u64::from_le_bytes(x.try_into().unwrap_or_default())
            ^ u64::from_le_bytes(y.try_into().unwrap_or_default());
        if diff != 0 {
            return i + (diff.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let k = d.iter().position(|c| *c != b'0').unwrap_or(d.len());
    &d[k..]
}

impl Value<'_> {
    /// Ordering for `--sort`: absent values last, numbers numerically, text naturally.
    pub fn sort_cmp(&self, other: &Value<'_>) -> Ordering {
        use Value::*;
        match (self, other) {
            (Null, Null) => Ordering::Equal,
            (Null, _) => Ordering::Greater,
            (_, Null) => Ordering::Less,
            (Int(a), Int(b)) => a.cmp(b),
            (Bool(a), Bool(b)) => a.cmp(b),
            _ => natural_cmp(&self.sort_bytes(), &other.sort_bytes()),
        }
    }

    fn sort_bytes(&self) -> Cow<'_, [u8]> {
        match self {
            Value::Text(t) => Cow::Borrowed(t.as_bytes()),
            Value::Bytes(b) => Cow::Borrowed(b),
            Value::List(l) => Cow::Owned(l.join("; ").into_bytes()),
            Value::Int(n) => Cow::Owned(n.to_string().into_bytes()),
            Value::Bool(b) => Cow::Owned(b.to_string().into_bytes()),
            Value::Null => Cow::Borrowed(&[]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_compares_numbers_as_numbers() {
        let mut v = vec!["track 10", "Track 2", "track 1", "track 02b", "a"];
        v.sort_by(|a, b| natural_cmp(a.as_bytes(), b.as_bytes()));
        assert_eq!(v, ["a", "track 1", "Track 2", "track 02b", "track 10"]);
    }

    proptest::proptest! {
        #[test]
        fn skipping_the_common_prefix_changes_no_comparison(
            prefix in "[a0-9/]{0,8}",
            a in "[aAb0-9 /]{0,8}",
            b in "[aAb0-9 /]{0,8}",
        ) {
            let (a, b) = (format!("{prefix}{a}"), format!("{prefix}{b}"));
            proptest::prop_assert_eq!(
                natural_cmp(a.as_bytes(), b.as_bytes()),
                natural_cmp_from(a.as_bytes(), b.as_bytes(), 0)
            );
        }
    }

    #[test]
    fn every_field_name_round_trips() {
        for f in Field::ALL {
            assert_eq!(Field::from_name(f.name()), Some(f));
        }
        assert_eq!(Field::from_name("nope"), None);
    }

    #[test]
    fn dir_and_name_split_at_the_last_slash() {
        assert_eq!(split_path(b"/a/b/c.flac"), (&b"/a/b"[..], &b"c.flac"[..]));
        assert_eq!(split_path(b"/c.flac"), (&b"/"[..], &b"c.flac"[..]));
    }
}
