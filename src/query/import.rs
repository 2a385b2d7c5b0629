//! The inverse of the JSON shape of [`output`](super::output): one line of an `export` back into
//! a [`Record`] or a [`Playlist`], for `import`.
//!
//! A line is deserialized straight from its text into one loosely typed slot per key, borrowing
//! strings from the line, and only then validated into a record; no `serde_json::Value` tree is
//! built for a record line. What must stay true: every line is accepted, or refused with the same
//! message, exactly as when it is parsed into a `serde_json::Value` first and read from that
//! (which is what [`record_from_json`] does; the tests hold both to a model of that reading).
//! Hence:
//! - every value, of a known key or not, is read with `deserialize_any`, so that the JSON a
//!   `Value` refuses (a number out of range, a lone surrogate) is refused here too;
//! - a repeated key keeps its last value, as in a `Value` object;
//! - nothing is judged while the line parses: a syntax error anywhere wins, and of several bad
//!   values the one reported is the first in the fixed order of `Fields::into_record`, whatever
//!   the order of the keys.

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;

use crate::playlist::{self, Playlist};
use crate::record::{Kind, Record};

/// Why an imported JSON line could not become a record.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ImportError(pub String);

/// One line of an export.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "nearly every line is a record, moved into its batch at once; a box would cost an \
              allocation per record"
)]
pub enum Line {
    /// Empty, or only whitespace.
    Blank,
    /// A record (the shape `record_json` writes with every field).
    Record(Record),
    /// A `{"playlist": {...}}` line.
    Playlist(Playlist),
}

/// Why a line of an export was refused.
#[derive(Debug)]
pub enum LineError {
    /// Not JSON, or not a valid record.
    Record(ImportError),
    /// A `{"playlist": ...}` line whose playlist is not valid.
    Playlist(String),
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::Record(e) => write!(f, "{e}"),
            LineError::Playlist(e) => write!(f, "playlist: {e}"),
        }
    }
}

impl std::error::Error for LineError {}

/// Parses one line of an export (without its line break). An object with a `playlist` key is a
/// playlist, whatever else it holds.
pub fn parse_line(line: &str) -> Result<Line, LineError> {
    if line.trim().is_empty() {
        return Ok(Line::Blank);
    }
    match serde_json::from_str::<Top<'_>>(line) {
        Err(e) => Err(LineError::Record(ImportError(e.to_string()))),
        Ok(Top::NotObject) => Err(LineError::Record(not_object())),
        Ok(Top::Object(mut f)) => match f.playlist.take() {
            Some(p) => playlist::from_json(&p)
                .and_then(checked_playlist)
                .map(Line::Playlist)
                .map_err(LineError::Playlist),
            None => f
                .into_record()
                .and_then(fits)
                .map(Line::Record)
                .map_err(LineError::Record),
        },
    }
}

/// `r`, unless its record would be over the store's record limit (the line is then bad, like
/// any other, instead of failing the batch it would be committed in). Only a record whose text
/// could come near the limit is encoded to tell.
fn fits(r: Record) -> Result<Record, ImportError> {
    let text = r.path.len()
        + [
            &r.title,
            &r.album,
            &r.album_artist,
            &r.mime,
            &r.error,
            &r.musicbrainz_track_id,
            &r.musicbrainz_album_id,
        ]
        .iter()
        .map(|s| s.as_ref().map_or(0, String::len))
        .sum::<usize>()
        + [&r.artists, &r.genres]
            .iter()
            .flat_map(|l| l.iter())
            .map(|s| s.len() + 8)
            .sum::<usize>()
        + r.tags
            .iter()
            .map(|(k, v)| k.len() + v.len() + 16)
            .sum::<usize>();
    if text < crate::store::format::MAX_RECORD_LEN / 2 {
        return Ok(r);
    }
    let encoded = crate::record::EncodedRecord::new(&r);
    match encoded.view() {
        Some(_) => Ok(r),
        None => Err(ImportError(format!(
            "the record is over the {}-byte record limit",
            crate::store::format::MAX_RECORD_LEN
        ))),
    }
}

/// Builds a record from the JSON shape `record_json` writes (all fields). A `playlist` key is
/// ignored here.
pub fn record_from_json(v: &Json) -> Result<Record, ImportError> {
    match Top::deserialize(v) {
        Err(e) => Err(ImportError(e.to_string())),
        Ok(Top::NotObject) => Err(not_object()),
        Ok(Top::Object(f)) => f.into_record(),
    }
}

fn not_object() -> ImportError {
    ImportError("not a JSON object".into())
}

/// A JSON value with only what validation needs kept: absent and `null` are one, numbers are
/// whole (`u64` or `i64`, a `u64` over `i64::MAX` wrapping as `as` does) or `Other`, and objects
/// are `Other`.
#[derive(Debug, Default)]
enum Loose<'a> {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Str(Cow<'a, str>),
    List(Vec<Loose<'a>>),
    Other,
}

impl<'de> Deserialize<'de> for Loose<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LooseVisitor)
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Loose<'de>, E> {
        Ok(Loose::Null)
    }
    fn visit_none<E>(self) -> Result<Loose<'de>, E> {
        Ok(Loose::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Loose<'de>, E> {
        Ok(Loose::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Loose<'de>, E> {
        Ok(Loose::Int(n))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Loose<'de>, E> {
        Ok(Loose::Int(n as i64))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Loose<'de>, E> {
        Ok(Loose::Other)
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Loose<'de>, E> {
        Ok(Loose::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Loose<'de>, E> {
        Ok(Loose::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<Loose<'de>, E> {
        Ok(Loose::Str(Cow::Owned(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
        while let Some(x) = seq.next_element()? {
            items.push(x);
        }
        Ok(Loose::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Loose<'de>, A::Error> {
        skip_map(map)?;
        Ok(Loose::Other)
    }
}

/// A value read in full, as a `Value` would be, and dropped.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_none<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Skip, A::Error> {
        skip_map(map)?;
        Ok(Skip)
    }
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<Skip, Skip>()?.is_some() {}
    Ok(())
}

/// The keys import reads; any other is skipped.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Key {
    Id,
    Path,
    PathB64,
    Size,
    MtimeNs,
    Inode,
    Kind,
    ExtractorVersion,
    Mime,
    Title,
    Artists,
    Artist,
    Album,
    AlbumArtist,
    Genres,
    Genre,
    Year,
    Track,
    TrackTotal,
    Disc,
    DiscTotal,
    DurationMs,
    Bitrate,
    SampleRate,
    Channels,
    BitDepth,
    Compilation,
    HasCover,
    MusicbrainzTrackId,
    MusicbrainzAlbumId,
    Error,
    Tags,
    Playlist,
    #[serde(other)]
    Other,
}

/// The top level of a line: an object's keys, or anything else.
enum Top<'a> {
    Object(Box<Fields<'a>>),
    NotObject,
}

/// The value of every key import reads, as the line had it (`Null` when absent).
#[derive(Default)]
struct Fields<'a> {
    id: Loose<'a>,
    path: Loose<'a>,
    path_b64: Loose<'a>,
    size: Loose<'a>,
    mtime_ns: Loose<'a>,
    inode: Loose<'a>,
    kind: Loose<'a>,
    extractor_version: Loose<'a>,
    mime: Loose<'a>,
    title: Loose<'a>,
    artists: Loose<'a>,
    artist: Loose<'a>,
    album: Loose<'a>,
    album_artist: Loose<'a>,
    genres: Loose<'a>,
    genre: Loose<'a>,
    year: Loose<'a>,
    track: Loose<'a>,
    track_total: Loose<'a>,
    disc: Loose<'a>,
    disc_total: Loose<'a>,
    duration_ms: Loose<'a>,
    bitrate: Loose<'a>,
    sample_rate: Loose<'a>,
    channels: Loose<'a>,
    bit_depth: Loose<'a>,
    compilation: Loose<'a>,
    has_cover: Loose<'a>,
    musicbrainz_track_id: Loose<'a>,
    musicbrainz_album_id: Loose<'a>,
    error: Loose<'a>,
    tags: Loose<'a>,
    /// Kept whole: a playlist line is read by `playlist::from_json`.
    playlist: Option<Json>,
}

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_unit<E>(self) -> Result<Top<'de>, E> {
        Ok(Top::NotObject)
    }
    fn visit_none<E>(self) -> Result<Top<'de>, E> {
        Ok(Top::NotObject)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Top<'de>, E> {
        Ok(Top::NotObject)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Top<'de>, E> {
        Ok(Top::NotObject)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Top<'de>, E> {
        Ok(Top::NotObject)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Top<'de>, E> {
        Ok(Top::NotObject)
    }
    fn visit_str<E>(self, _: &str) -> Result<Top<'de>, E> {
        Ok(Top::NotObject)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Top<'de>, A::Error> {
        SkipVisitor.visit_seq(seq)?;
        Ok(Top::NotObject)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
        let mut f = Box::<Fields<'de>>::default();
        while let Some(key) = map.next_key::<Key>()? {
            let slot = match key {
                Key::Id => &mut f.id,
                Key::Path => &mut f.path,
                Key::PathB64 => &mut f.path_b64,
                Key::Size => &mut f.size,
                Key::MtimeNs => &mut f.mtime_ns,
                Key::Inode => &mut f.inode,
                Key::Kind => &mut f.kind,
                Key::ExtractorVersion => &mut f.extractor_version,
                Key::Mime => &mut f.mime,
                Key::Title => &mut f.title,
                Key::Artists => &mut f.artists,
                Key::Artist => &mut f.artist,
                Key::Album => &mut f.album,
                Key::AlbumArtist => &mut f.album_artist,
                Key::Genres => &mut f.genres,
                Key::Genre => &mut f.genre,
                Key::Year => &mut f.year,
                Key::Track => &mut f.track,
                Key::TrackTotal => &mut f.track_total,
                Key::Disc => &mut f.disc,
                Key::DiscTotal => &mut f.disc_total,
                Key::DurationMs => &mut f.duration_ms,
                Key::Bitrate => &mut f.bitrate,
                Key::SampleRate => &mut f.sample_rate,
                Key::Channels => &mut f.channels,
                Key::BitDepth => &mut f.bit_depth,
                Key::Compilation => &mut f.compilation,
                Key::HasCover => &mut f.has_cover,
                Key::MusicbrainzTrackId => &mut f.musicbrainz_track_id,
                Key::MusicbrainzAlbumId => &mut f.musicbrainz_album_id,
                Key::Error => &mut f.error,
                Key::Tags => &mut f.tags,
                Key::Playlist => {
                    f.playlist = Some(map.next_value()?);
                    continue;
                }
                Key::Other => {
                    map.next_value::<Skip>()?;
                    continue;
                }
            };
            *slot = map.next_value()?;
        }
        Ok(Top::Object(f))
    }
}

/// Refuses a path no scan could have stored: empty, relative, holding a NUL byte (which ends a
/// name for the system and splits a record in two under `query -0`), or with a `.` or `..`
/// component (a scan stores each file under one resolved path, so such a record would never
/// be matched, updated or removed).
fn check_path(path: &[u8]) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty `path`".into());
    }
    let shown = || String::from_utf8_lossy(path).into_owned();
    if path.contains(&0) {
        return Err(format!(
            "`path` {:?} holds a NUL byte, which no file name can",
            shown()
        ));
    }
    if path[0] != b'/' {
        return Err(format!("`path` {:?} is not absolute", shown()));
    }
    if path.split(|&b| b == b'/').any(|c| c == b"." || c == b"..") {
        return Err(format!("`path` {:?} has a `.` or `..` component", shown()));
    }
    // Every component but the leading root is a name: no `//`, no trailing `/`, not `/`.
    if path[1..].split(|&b| b == b'/').any(<[u8]>::is_empty) {
        return Err(format!(
            "`path` {:?} has an empty component (`//`, or a `/` at its end)",
            shown()
        ));
    }
    Ok(())
}

/// `p`, unless its name is blank or an entry's path is one that importing a playlist file never
/// stores ([`playlist::formats::entry_problem`]: relative, not normalized, holding a NUL), which
/// could never be matched to a file.
fn checked_playlist(p: playlist::Playlist) -> Result<playlist::Playlist, String> {
    if p.name.trim().is_empty() {
        return Err("a playlist needs a name that is not blank".into());
    }
    for (k, e) in p.entries.iter().enumerate() {
        if let Some(m) = playlist::formats::entry_problem(&e.path) {
            return Err(format!("entry {}: {m}", k + 1));
        }
    }
    Ok(p)
}

fn bad(message: String) -> ImportError {
    ImportError(message)
}

/// A string or null.
fn text(v: Loose<'_>, k: &str) -> Result<Option<String>, ImportError> {
    match v {
        Loose::Null => Ok(None),
        Loose::Str(s) => Ok(Some(s.into_owned())),
        _ => Err(bad(format!("`{k}` must be a string or null"))),
    }
}

/// A whole number or null.
fn whole(v: &Loose<'_>, k: &str) -> Result<Option<i64>, ImportError> {
    match v {
        Loose::Null => Ok(None),
        Loose::Int(n) => Ok(Some(*n)),
        _ => Err(bad(format!("`{k}` must be a whole number or null"))),
    }
}

/// A whole number in `0..=max`, or null.
fn narrow(v: &Loose<'_>, k: &str, max: i64) -> Result<Option<i64>, ImportError> {
    match whole(v, k)? {
        Some(n) if n < 0 || n > max => Err(bad(format!("`{k}` is out of range"))),
        n => Ok(n),
    }
}

fn u32_field(v: &Loose<'_>, k: &str) -> Result<Option<u32>, ImportError> {
    narrow(v, k, u32::MAX.into()).map(|n| n.map(|x| x as u32))
}

fn u8_field(v: &Loose<'_>, k: &str) -> Result<Option<u8>, ImportError> {
    narrow(v, k, u8::MAX.into()).map(|n| n.map(|x| x as u8))
}

/// True, false or null.
fn flag(v: &Loose<'_>, k: &str) -> Result<Option<bool>, ImportError> {
    match v {
        Loose::Null => Ok(None),
        Loose::Bool(b) => Ok(Some(*b)),
        _ => Err(bad(format!("`{k}` must be true, false or null"))),
    }
}

/// A list of strings, or null (empty).
fn strings(v: Loose<'_>, k: &str) -> Result<Vec<String>, ImportError> {
    match v {
        Loose::Null => Ok(Vec::new()),
        Loose::List(items) => items
            .into_iter()
            .map(|x| match x {
                Loose::Str(s) => Ok(s.into_owned()),
                _ => Err(bad(format!("`{k}` must hold strings"))),
            })
            .collect(),
        _ => Err(bad(format!("`{k}` must be a list of strings"))),
    }
}

/// A list of `[key, value]` string pairs, or null (empty).
fn pairs(v: Loose<'_>) -> Result<Vec<(String, String)>, ImportError> {
    match v {
        Loose::Null => Ok(Vec::new()),
        Loose::List(items) => items
            .into_iter()
            .map(|t| match t {
                Loose::List(kv) => match <[Loose<'_>; 2]>::try_from(kv) {
                    Ok([Loose::Str(k), Loose::Str(v)]) => Ok((k.into_owned(), v.into_owned())),
                    _ => Err(bad_pair()),
                },
                _ => Err(bad_pair()),
            })
            .collect(),
        _ => Err(bad("`tags` must be a list of [key, value] pairs".into())),
    }
}

fn bad_pair() -> ImportError {
    bad("`tags` must hold [key, value] string pairs".into())
}

impl Fields<'_> {
    /// Validates the fields into a record. The order of the checks decides which problem a line
    /// with several is reported for; keep it.
    fn into_record(self) -> Result<Record, ImportError> {
        let path = match text(self.path_b64, "path_b64")? {
            Some(b) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|e| bad(format!("`path_b64` is not base64: {e}")))?,
            None => text(self.path, "path")?
                .ok_or_else(|| bad("missing `path`".into()))?
                .into_bytes(),
        };
        check_path(&path).map_err(bad)?;
        let kind = match &self.kind {
            Loose::Null => Kind::Other,
            Loose::Str(k) => match k.as_ref() {
                "other" => Kind::Other,
                "audio" => Kind::Audio,
                "video" => Kind::Video,
                "image" => Kind::Image,
                "playlist" => Kind::Playlist,
                k => return Err(bad(format!("unknown kind `{k}`"))),
            },
            _ => return Err(bad("`kind` must be a string or null".into())),
        };
        let mut artists = strings(self.artists, "artists")?;
        if artists.is_empty() {
            artists.extend(text(self.artist, "artist")?);
        }
        let mut genres = strings(self.genres, "genres")?;
        if genres.is_empty() {
            genres.extend(text(self.genre, "genre")?);
        }
        let tags = pairs(self.tags)?;
        Ok(Record {
            id: narrow(&self.id, "id", i64::MAX)?.unwrap_or(0) as u64,
            path,
            size: narrow(&self.size, "size", i64::MAX)?.unwrap_or(0) as u64,
            mtime_ns: whole(&self.mtime_ns, "mtime_ns")?.unwrap_or(0),
            inode: narrow(&self.inode, "inode", i64::MAX)?.unwrap_or(0) as u64,
            kind,
            extractor_version: narrow(
                &self.extractor_version,
                "extractor_version",
                u16::MAX.into(),
            )?
            .unwrap_or(0) as u16,
            mime: text(self.mime, "mime")?,
            title: text(self.title, "title")?,
            artists,
            album: text(self.album, "album")?,
            album_artist: text(self.album_artist, "album_artist")?,
            genres,
            year: match whole(&self.year, "year")? {
                Some(y) => {
                    Some(i32::try_from(y).map_err(|_| bad("`year` is out of range".into()))?)
                }
                None => None,
            },
            track: u32_field(&self.track, "track")?,
            track_total: u32_field(&self.track_total, "track_total")?,
            disc: u32_field(&self.disc, "disc")?,
            disc_total: u32_field(&self.disc_total, "disc_total")?,
            duration_ms: narrow(&self.duration_ms, "duration_ms", i64::MAX)?.map(|v| v as u64),
            bitrate: u32_field(&self.bitrate, "bitrate")?,
            sample_rate: u32_field(&self.sample_rate, "sample_rate")?,
            channels: u8_field(&self.channels, "channels")?,
            bit_depth: u8_field(&self.bit_depth, "bit_depth")?,
            compilation: flag(&self.compilation, "compilation")?,
            has_cover: flag(&self.has_cover, "has_cover")?,
            musicbrainz_track_id: text(self.musicbrainz_track_id, "musicbrainz_track_id")?,
            musicbrainz_album_id: text(self.musicbrainz_album_id, "musicbrainz_album_id")?,
            error: text(self.error, "error")?,
            tags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reading `import` had before this module: parse into a `Value`, then read that. Kept
    /// as the model the streaming reading must agree with, line for line and message for
    /// message.
    fn model_line(line: &str) -> Result<Line, LineError> {
        if line.trim().is_empty() {
            return Ok(Line::Blank);
        }
        let v = serde_json::from_str::<Json>(line)
            .map_err(|e| LineError::Record(ImportError(e.to_string())))?;
        if let Some(p) = v.get("playlist") {
            return playlist::from_json(p)
                .and_then(checked_playlist)
                .map(Line::Playlist)
                .map_err(LineError::Playlist);
        }
        model_record(&v)
            .map(Line::Record)
            .map_err(LineError::Record)
    }

    fn model_record(v: &Json) -> Result<Record, ImportError> {
        let o = v
            .as_object()
            .ok_or_else(|| ImportError("not a JSON object".into()))?;
        let s = |k: &str| -> Result<Option<String>, ImportError> {
            match o.get(k) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ImportError(format!("`{k}` must be a string or null"))),
            }
        };
        let n = |k: &str| -> Result<Option<i64>, ImportError> {
            match o.get(k) {
                None | Some(Json::Null) => Ok(None),
                Some(j) => j
                    .as_i64()
                    .or_else(|| j.as_u64().map(|u| u as i64))
                    .map(Some)
                    .ok_or_else(|| ImportError(format!("`{k}` must be a whole number or null"))),
            }
        };
        let narrow = |k: &str, max: i64| -> Result<Option<i64>, ImportError> {
            match n(k)? {
                Some(v) if v < 0 || v > max => Err(ImportError(format!("`{k}` is out of range"))),
                v => Ok(v),
            }
        };
        let b = |k: &str| -> Result<Option<bool>, ImportError> {
            match o.get(k) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::Bool(b)) => Ok(Some(*b)),
                Some(_) => Err(ImportError(format!("`{k}` must be true, false or null"))),
            }
        };
        let list = |k: &str| -> Result<Vec<String>, ImportError> {
            match o.get(k) {
                None | Some(Json::Null) => Ok(Vec::new()),
                Some(Json::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| ImportError(format!("`{k}` must hold strings")))
                    })
                    .collect(),
                Some(_) => Err(ImportError(format!("`{k}` must be a list of strings"))),
            }
        };
        let path = match s("path_b64")? {
            Some(b) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|e| ImportError(format!("`path_b64` is not base64: {e}")))?,
            None => s("path")?
                .ok_or_else(|| ImportError("missing `path`".into()))?
                .into_bytes(),
        };
        check_path(&path).map_err(ImportError)?;
        let kind = match s("kind")?.as_deref() {
            None | Some("other") => Kind::Other,
            Some("audio") => Kind::Audio,
            Some("video") => Kind::Video,
            Some("image") => Kind::Image,
            Some("playlist") => Kind::Playlist,
            Some(k) => return Err(ImportError(format!("unknown kind `{k}`"))),
        };
        let u32f = |k: &str| narrow(k, u32::MAX as i64).map(|v| v.map(|x| x as u32));
        let u8f = |k: &str| narrow(k, u8::MAX as i64).map(|v| v.map(|x| x as u8));
        let mut artists = list("artists")?;
        if artists.is_empty() {
            artists.extend(s("artist")?);
        }
        let mut genres = list("genres")?;
        if genres.is_empty() {
            genres.extend(s("genre")?);
        }
        let tags = match o.get("tags") {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Array(a)) => a
                .iter()
                .map(|t| match t.as_array().map(Vec::as_slice) {
                    Some([Json::String(k), Json::String(v)]) => Ok((k.clone(), v.clone())),
                    _ => Err(ImportError(
                        "`tags` must hold [key, value] string pairs".into(),
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(ImportError(
                    "`tags` must be a list of [key, value] pairs".into(),
                ));
            }
        };
        Ok(Record {
            id: narrow("id", i64::MAX)?.unwrap_or(0) as u64,
            path,
            size: narrow("size", i64::MAX)?.unwrap_or(0) as u64,
            mtime_ns: n("mtime_ns")?.unwrap_or(0),
            inode: narrow("inode", i64::MAX)?.unwrap_or(0) as u64,
            kind,
            extractor_version: narrow("extractor_version", u16::MAX as i64)?.unwrap_or(0) as u16,
            mime: s("mime")?,
            title: s("title")?,
            artists,
            album: s("album")?,
            album_artist: s("album_artist")?,
            genres,
            year: match n("year")? {
                Some(y) => Some(
                    i32::try_from(y).map_err(|_| ImportError("`year` is out of range".into()))?,
                ),
                None => None,
            },
            track: u32f("track")?,
            track_total: u32f("track_total")?,
            disc: u32f("disc")?,
            disc_total: u32f("disc_total")?,
            duration_ms: narrow("duration_ms", i64::MAX)?.map(|v| v as u64),
            bitrate: u32f("bitrate")?,
            sample_rate: u32f("sample_rate")?,
            channels: u8f("channels")?,
            bit_depth: u8f("bit_depth")?,
            compilation: b("compilation")?,
            has_cover: b("has_cover")?,
            musicbrainz_track_id: s("musicbrainz_track_id")?,
            musicbrainz_album_id: s("musicbrainz_album_id")?,
            error: s("error")?,
            tags,
        })
    }

    /// Both readings of `line` (and `record_from_json` over its `Value`) agree.
    fn check(line: &str) {
        let got = format!("{:?}", parse_line(line));
        let want = format!("{:?}", model_line(line));
        assert_eq!(got, want, "line: {line}");
        if let Ok(v) = serde_json::from_str::<Json>(line) {
            let got = format!("{:?}", record_from_json(&v));
            let want = format!("{:?}", model_record(&v));
            assert_eq!(got, want, "record_from_json: {line}");
        }
    }

    fn message(line: &str) -> String {
        match parse_line(line) {
            Err(e) => e.to_string(),
            Ok(l) => panic!("{line} was accepted: {l:?}"),
        }
    }

    fn record(line: &str) -> Record {
        match parse_line(line) {
            Ok(Line::Record(r)) => r,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn every_validation_message_is_the_one_users_see() {
        let cases: &[(&str, &str)] = &[
            ("[1, 2]", "not a JSON object"),
            ("5", "not a JSON object"),
            ("null", "not a JSON object"),
            (r#""x""#, "not a JSON object"),
            ("{not json", "key must be a string at line 1 column 2"),
            (r#"{"path": "/a",}"#, "trailing comma at line 1 column 15"),
            (
                r#"{"path": "/a"} x"#,
                "trailing characters at line 1 column 16",
            ),
            (r#"{"title": "no path"}"#, "missing `path`"),
            (r#"{"path": null}"#, "missing `path`"),
            (r#"{"path": ""}"#, "empty `path`"),
            (r#"{"path_b64": ""}"#, "empty `path`"),
            (
                r#"{"path": "/m/a\u0000b.mp3"}"#,
                r#"`path` "/m/a\0b.mp3" holds a NUL byte, which no file name can"#,
            ),
            (
                r#"{"path": "m/e.mp3"}"#,
                r#"`path` "m/e.mp3" is not absolute"#,
            ),
            (
                r#"{"path": "/x/../x/l.mp3"}"#,
                r#"`path` "/x/../x/l.mp3" has a `.` or `..` component"#,
            ),
            (
                r#"{"path": "/m//a.mp3"}"#,
                r#"`path` "/m//a.mp3" has an empty component (`//`, or a `/` at its end)"#,
            ),
            (
                r#"{"path": "/"}"#,
                r#"`path` "/" has an empty component (`//`, or a `/` at its end)"#,
            ),
            (r#"{"path": 5}"#, "`path` must be a string or null"),
            (
                r#"{"path_b64": ["L2E="]}"#,
                "`path_b64` must be a string or null",
            ),
            (
                r#"{"path_b64": "!!!", "path": "/b.flac"}"#,
                "`path_b64` is not base64: Invalid symbol 33, offset 0.",
            ),
            (
                r#"{"path": "/k", "kind": "hologram"}"#,
                "unknown kind `hologram`",
            ),
            (
                r#"{"path": "/k", "kind": 1}"#,
                "`kind` must be a string or null",
            ),
            (
                r#"{"path": "/a", "artists": "A"}"#,
                "`artists` must be a list of strings",
            ),
            (
                r#"{"path": "/a", "artists": ["A", 1]}"#,
                "`artists` must hold strings",
            ),
            (
                r#"{"path": "/a", "artists": [], "artist": 1}"#,
                "`artist` must be a string or null",
            ),
            (
                r#"{"path": "/a", "genres": {}}"#,
                "`genres` must be a list of strings",
            ),
            (
                r#"{"path": "/a", "genres": [null]}"#,
                "`genres` must hold strings",
            ),
            (
                r#"{"path": "/a", "genre": true}"#,
                "`genre` must be a string or null",
            ),
            (
                r#"{"path": "/a", "tags": {"k": "v"}}"#,
                "`tags` must be a list of [key, value] pairs",
            ),
            (
                r#"{"path": "/a", "tags": [["k", "v", "w"]]}"#,
                "`tags` must hold [key, value] string pairs",
            ),
            (
                r#"{"path": "/a", "tags": [["k", 1]]}"#,
                "`tags` must hold [key, value] string pairs",
            ),
            (
                r#"{"path": "/a", "tags": ["k"]}"#,
                "`tags` must hold [key, value] string pairs",
            ),
            (r#"{"path": "/a", "id": -1}"#, "`id` is out of range"),
            (
                r#"{"path": "/a", "size": 1.5}"#,
                "`size` must be a whole number or null",
            ),
            (
                r#"{"path": "/a", "size": 1e2}"#,
                "`size` must be a whole number or null",
            ),
            (
                r#"{"path": "/a", "mtime_ns": "1"}"#,
                "`mtime_ns` must be a whole number or null",
            ),
            (
                r#"{"path": "/a", "inode": 9223372036854775808}"#,
                "`inode` is out of range",
            ),
            (
                r#"{"path": "/a", "extractor_version": 65536}"#,
                "`extractor_version` is out of range",
            ),
            (
                r#"{"path": "/a", "mime": 1}"#,
                "`mime` must be a string or null",
            ),
            (
                r#"{"path": "/a", "title": []}"#,
                "`title` must be a string or null",
            ),
            (
                r#"{"path": "/a", "album": false}"#,
                "`album` must be a string or null",
            ),
            (
                r#"{"path": "/a", "album_artist": 2}"#,
                "`album_artist` must be a string or null",
            ),
            (
                r#"{"path": "/x.flac", "year": "nineteen"}"#,
                "`year` must be a whole number or null",
            ),
            (
                r#"{"path": "/a", "year": 2147483648}"#,
                "`year` is out of range",
            ),
            (
                r#"{"path": "/a", "year": -2147483649}"#,
                "`year` is out of range",
            ),
            (
                r#"{"path": "/t.flac", "track": -1}"#,
                "`track` is out of range",
            ),
            (
                r#"{"path": "/a", "track_total": 4294967296}"#,
                "`track_total` is out of range",
            ),
            (
                r#"{"path": "/a", "disc": "1"}"#,
                "`disc` must be a whole number or null",
            ),
            (
                r#"{"path": "/a", "disc_total": -5}"#,
                "`disc_total` is out of range",
            ),
            (
                r#"{"path": "/a", "duration_ms": -1}"#,
                "`duration_ms` is out of range",
            ),
            (
                r#"{"path": "/a", "bitrate": 4294967296}"#,
                "`bitrate` is out of range",
            ),
            (
                r#"{"path": "/a", "sample_rate": 0.5}"#,
                "`sample_rate` must be a whole number or null",
            ),
            (
                r#"{"path": "/a", "channels": 256}"#,
                "`channels` is out of range",
            ),
            (
                r#"{"path": "/a", "bit_depth": 300}"#,
                "`bit_depth` is out of range",
            ),
            (
                r#"{"path": "/a", "compilation": 1}"#,
                "`compilation` must be true, false or null",
            ),
            (
                r#"{"path": "/a", "has_cover": "yes"}"#,
                "`has_cover` must be true, false or null",
            ),
            (
                r#"{"path": "/a", "musicbrainz_track_id": 1}"#,
                "`musicbrainz_track_id` must be a string or null",
            ),
            (
                r#"{"path": "/a", "musicbrainz_album_id": 1}"#,
                "`musicbrainz_album_id` must be a string or null",
            ),
            (
                r#"{"path": "/a", "error": {}}"#,
                "`error` must be a string or null",
            ),
            (r#"{"playlist": {}}"#, "playlist: a playlist needs `name`"),
            (
                r#"{"playlist": null, "path": "/a"}"#,
                "playlist: a playlist needs `name`",
            ),
            // Of several problems, the first in the fixed order is reported, whatever the order
            // of the keys.
            (
                r#"{"year": "x", "kind": "hologram", "path": "/a"}"#,
                "unknown kind `hologram`",
            ),
            (
                r#"{"error": 1, "track": -1, "path": "/a"}"#,
                "`track` is out of range",
            ),
            // JSON a `Value` refuses is refused in a key nobody reads too.
            (
                r#"{"path": "/a", "x": 1e999}"#,
                "number out of range at line 1 column 25",
            ),
            (
                r#"{"path": "/a", "x": ["\ud800"]}"#,
                "unexpected end of hex escape at line 1 column 29",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(message(line), *want, "{line}");
            check(line);
        }
        // A record too large to store is a bad line, not a failed batch.
        let artists = vec!["a".repeat(100); 20_000];
        let huge = serde_json::json!({ "path": "/m/huge.mp3", "artists": artists }).to_string();
        assert_eq!(
            parse_line(&huge).unwrap_err().to_string(),
            format!(
                "the record is over the {}-byte record limit",
                crate::store::format::MAX_RECORD_LEN
            )
        );
    }

    #[test]
    fn accepted_inputs_read_as_before() {
        // path_b64 wins over path, which is then not looked at.
        assert_eq!(
            record(r#"{"path_b64": "L23/YQ==", "path": 5}"#).path,
            b"/m\xffa"
        );
        // A repeated key keeps its last value; keys may be escaped; unknown keys are ignored.
        assert_eq!(record(r#"{"path": "/a", "path": "/b"}"#).path, b"/b");
        assert_eq!(
            record(r#"{"pa\u0074h": "/a", "dir": {"x": [1]}}"#).path,
            b"/a"
        );
        // A u64 past i64::MAX wraps where the range allows it, as before.
        assert_eq!(
            record(r#"{"path": "/a", "mtime_ns": 18446744073709551615}"#).mtime_ns,
            -1
        );
        // Absent and null are the same; the single artist and genre are read only when the lists
        // are empty.
        let r = record(
            r#"{"path": "/a", "artists": null, "artist": "A", "genres": ["G"], "genre": 5}"#,
        );
        assert_eq!(
            (r.artists, r.genres),
            (vec!["A".to_owned()], vec!["G".to_owned()])
        );
        let r = record(
            r#"{"path": "/a", "id": 7, "size": 9223372036854775807, "kind": "audio", "year": -5,
               "track": 4294967295, "channels": 255, "compilation": false, "title": "t\u00e9\n",
               "tags": [["k", "v"], ["k", "w"]]}"#,
        );
        assert_eq!(
            (r.id, r.size, r.kind, r.year),
            (7, i64::MAX as u64, Kind::Audio, Some(-5))
        );
        assert_eq!(
            (r.track, r.channels, r.compilation),
            (Some(u32::MAX), Some(255), Some(false))
        );
        assert_eq!(r.title.as_deref(), Some("t\u{e9}\n"));
        assert_eq!(r.tags, [("k".into(), "v".into()), ("k".into(), "w".into())]);
        assert!(matches!(parse_line(" \t"), Ok(Line::Blank)));
        assert!(matches!(
            parse_line(r#"{"playlist": {"name": "Mix"}, "path": 5}"#),
            Ok(Line::Playlist(p)) if p.name == "Mix"
        ));
    }

    /// A JSON value, as text, from the kinds validation tells apart; now and then one that no
    /// `Value` can hold.
    fn value() -> impl Strategy<Value = String> {
        let common = prop::sample::select(vec![
            "true",
            "false",
            "0",
            "-0",
            "1",
            "-1",
            "255",
            "256",
            "65535",
            "65536",
            "2147483647",
            "2147483648",
            "-2147483648",
            "-2147483649",
            "4294967295",
            "4294967296",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "1.0",
            "1e2",
            "-0.5",
            r#""""#,
            r#""/m/a.flac""#,
            r#""audio""#,
            r#""playlist""#,
            r#""hologram""#,
            r#""L20vYS5mbGFj""#,
            r#""L23/YQ==""#,
            r#""!!!""#,
            r#""a\u00e9\n\"""#,
            r#""\ud83d\ude00""#,
            "[]",
            r#"["a","b"]"#,
            r#"["a",1]"#,
            "[null]",
            r#"[["k","v"]]"#,
            r#"[["k"]]"#,
            r#"[["k","v","w"]]"#,
            r#"[["k",1]]"#,
            r#"[["k","v"],"x"]"#,
            "{}",
            r#"{"name":"Mix"}"#,
            r#"{"name":"Mix","entries":[{"path":"/a"}]}"#,
            r#"{"entries":5}"#,
        ]);
        let refused = prop::sample::select(vec!["1e999", r#""\ud800""#, "[[[1e999]]]"]);
        prop_oneof![
            8 => Just("null"),
            16 => common,
            1 => refused,
        ]
        .prop_map(str::to_owned)
    }

    fn key() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "id",
            "path",
            "path",
            "path",
            "path_b64",
            "size",
            "mtime_ns",
            "inode",
            "kind",
            "extractor_version",
            "mime",
            "title",
            "artists",
            "artist",
            "album",
            "album_artist",
            "genres",
            "genre",
            "year",
            "track",
            "track_total",
            "disc",
            "disc_total",
            "duration_ms",
            "bitrate",
            "sample_rate",
            "channels",
            "bit_depth",
            "compilation",
            "has_cover",
            "musicbrainz_track_id",
            "musicbrainz_album_id",
            "error",
            "tags",
            "playlist",
            "dir",
            "name",
            "x",
            r"pa\u0074h",
            "",
        ])
    }

    /// An object line, mostly with a valid path so that later checks are reached, sometimes
    /// cut short or followed by more text.
    fn line() -> impl Strategy<Value = String> {
        let entry = (key(), value()).prop_map(|(k, v)| format!("\"{k}\":{v}"));
        let path = prop::option::weighted(0.8, Just(r#""path":"/m/a.flac""#.to_owned()));
        (
            path,
            prop::collection::vec(entry, 0..8),
            prop::sample::select(vec![0, 0, 0, 0, 0, 0, 1, 2]),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(path, mut entries, mangle, at)| {
                if let Some(p) = path {
                    let i = at.index(entries.len() + 1);
                    entries.insert(i, p);
                }
                let line = format!("{{{}}}", entries.join(","));
                match mangle {
                    0 => line,
                    1 => line[..at.index(line.len() + 1)].to_owned(),
                    _ => format!("{line} {}", &line[..at.index(line.len() + 1)]),
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn streaming_reading_agrees_with_the_value_model(line in line()) {
            check(&line);
        }
    }
}
