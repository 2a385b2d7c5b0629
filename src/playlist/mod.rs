//! Playlists: ordered lists of entries that point at records by id, stored in the database
//! beside the records (docs/FORMAT.md §1.4).
//!
//! An entry keeps the id of the record it was made for and that record's path. While the
//! record is live the entry shows it; once the file is removed the entry stays, *dangling*, with
//! its last path, and it re-attaches by that path as soon as a file with the path is indexed
//! again. Ids survive rescans and compaction, so an entry follows its file through both.

pub mod formats;

use flatbuffers::{FlatBufferBuilder, VerifierOptions};

use crate::ReadError;
use crate::record::RecordView;
use crate::store::Snapshot;
use crate::store::fb;
use crate::store::format::MAX_PLAYLIST_LEN;

/// One playlist, owned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Playlist {
    /// Assigned by the database; 0 in a playlist not yet stored.
    pub id: u64,
    /// Unique among the database's playlists.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The playlist file it was imported from, if any (exact bytes).
    pub source_path: Option<Vec<u8>>,
    /// When it was created (ns since the Unix epoch).
    pub created_unix_ns: i64,
    /// When it last changed (ns since the Unix epoch).
    pub updated_unix_ns: i64,
    /// The entries, in order.
    pub entries: Vec<Entry>,
}

/// One entry of a playlist.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// The record the entry was made for; 0 when it never had one (a URL, a missing file).
    pub record_id: u64,
    /// That record's path, or the path the entry names.
    pub path: Vec<u8>,
    /// A title the source playlist gave (`#EXTINF`).
    pub title: Option<String>,
    /// A duration the source playlist gave.
    pub duration_ms: Option<u64>,
}

impl Entry {
    /// An entry for `path`, attached to `record_id` (0 for none).
    pub fn new(record_id: u64, path: impl Into<Vec<u8>>) -> Entry {
        Entry {
            record_id,
            path: path.into(),
            ..Entry::default()
        }
    }
}

/// Why a playlist buffer was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaylistProblem(pub String);

/// Encodes `p` with `id` as a size-prefixed FlatBuffer, appended to `out`.
pub(crate) fn encode(fbb: &mut FlatBufferBuilder<'_>, p: &Playlist, id: u64, out: &mut Vec<u8>) {
    fbb.reset();
    let entries: Vec<_> = p
        .entries
        .iter()
        .map(|e| {
            let path = fbb.create_vector(&e.path);
            let title = e.title.as_deref().map(|t| fbb.create_string(t));
            fb::PlaylistEntry::create(
                fbb,
                &fb::PlaylistEntryArgs {
                    record_id: e.record_id,
                    path: Some(path),
                    title,
                    duration_ms: e.duration_ms,
                },
            )
        })
        .collect();
    let entries = fbb.create_vector(&entries);
    let name = fbb.create_string(&p.name);
    let description = p.description.as_deref().map(|d| fbb.create_string(d));
    let source_path = p.source_path.as_deref().map(|s| fbb.create_vector(s));
    let root = fb::Playlist::create(
        fbb,
        &fb::PlaylistArgs {
            id,
            name: Some(name),
            description,
            source_path,
            created_unix_ns: p.created_unix_ns,
            updated_unix_ns: p.updated_unix_ns,
            entries: Some(entries),
        },
    );
    fbb.finish_size_prefixed(root, None);
    out.extend_from_slice(fbb.finished_data());
}

/// Verifies the size-prefixed playlist at `bytes[0]` and decodes it.
pub(crate) fn decode(bytes: &[u8]) -> Result<Playlist, PlaylistProblem> {
    Ok(from_fb(&verify(bytes)?))
}

/// An owned copy of a verified playlist buffer.
pub(crate) fn from_fb(p: &fb::Playlist<'_>) -> Playlist {
    let entries = p.entries().into_iter().flatten().map(|e| Entry {
        record_id: e.record_id(),
        path: e.path().map(|v| v.bytes().to_vec()).unwrap_or_default(),
        title: e.title().map(str::to_owned),
        duration_ms: e.duration_ms(),
    });
    Playlist {
        id: p.id(),
        name: p.name().to_owned(),
        description: p.description().map(str::to_owned),
        source_path: p.source_path().map(|v| v.bytes().to_vec()),
        created_unix_ns: p.created_unix_ns(),
        updated_unix_ns: p.updated_unix_ns(),
        entries: entries.collect(),
    }
}

/// Verifies the size-prefixed playlist at `bytes[0]`.
pub(crate) fn verify(bytes: &[u8]) -> Result<fb::Playlist<'_>, PlaylistProblem> {
    let bad = |what: String| PlaylistProblem(what);
    let Some(prefix) = bytes.get(..4) else {
        return Err(bad("shorter than its size prefix".into()));
    };
    let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    if !(4..=MAX_PLAYLIST_LEN).contains(&len) || len + 4 > bytes.len() {
        return Err(bad(format!("size prefix {len} is out of bounds")));
    }
    let opts = VerifierOptions {
        max_depth: 6,
        // Every entry is a table.
        max_tables: len / 8 + 8,
        max_apparent_size: len.saturating_mul(4),
        ignore_missing_null_terminator: false,
    };
    flatbuffers::size_prefixed_root_with_opts::<fb::Playlist>(&opts, &bytes[..len + 4])
        .map_err(|e| bad(format!("playlist: {}", crate::record::flat_error(&e))))
}

/// What an entry points at now.
#[derive(Clone, Copy, Debug)]
pub enum Target<'s> {
    /// The record it was made for, or one that has since appeared at its path.
    Live(RecordView<'s>),
    /// Nothing is indexed at its path: the file is missing (or the entry is a URL).
    Missing,
}

/// Resolves `entry` in `snap`: the record it was made for if that is still live, else the live
/// record now at its path (the file came back), else missing.
pub fn resolve<'s>(snap: &'s Snapshot, entry: &Entry) -> Result<Target<'s>, ReadError> {
    if entry.record_id != 0
        && let Some(v) = snap.get_by_id(entry.record_id)?
    {
        return Ok(Target::Live(v));
    }
    if entry.path.is_empty() {
        return Ok(Target::Missing);
    }
    Ok(match snap.get(&entry.path)? {
        Some(v) => Target::Live(v),
        None => Target::Missing,
    })
}

fn bytes_json(m: &mut serde_json::Map<String, serde_json::Value>, key: &str, b: &[u8]) {
    use base64::Engine as _;
    m.insert(key.into(), String::from_utf8_lossy(b).into());
    if std::str::from_utf8(b).is_err() {
        let exact = base64::engine::general_purpose::STANDARD.encode(b);
        m.insert(format!("{key}_b64"), exact.into());
    }
}

fn json_bytes(o: &serde_json::Value, key: &str) -> Result<Option<Vec<u8>>, String> {
    use base64::Engine as _;
    if let Some(b) = o.get(format!("{key}_b64")).and_then(|v| v.as_str()) {
        return base64::engine::general_purpose::STANDARD
            .decode(b)
            .map(Some)
            .map_err(|e| format!("`{key}_b64` is not base64: {e}"));
    }
    match o.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone().into_bytes())),
        Some(_) => Err(format!("`{key}` must be a string")),
    }
}

/// The JSON object `export` writes for a playlist (under the key `playlist`): paths as text,
/// with `*_b64` exact bytes when they are not UTF-8.
pub fn to_json(p: &Playlist) -> serde_json::Value {
    let entries: Vec<serde_json::Value> = p
        .entries
        .iter()
        .map(|e| {
            let mut m = serde_json::Map::new();
            m.insert("record_id".into(), e.record_id.into());
            bytes_json(&mut m, "path", &e.path);
            m.insert("title".into(), e.title.clone().into());
            m.insert("duration_ms".into(), e.duration_ms.into());
            serde_json::Value::Object(m)
        })
        .collect();
    let mut m = serde_json::Map::new();
    m.insert("id".into(), p.id.into());
    m.insert("name".into(), p.name.clone().into());
    m.insert("description".into(), p.description.clone().into());
    match &p.source_path {
        Some(s) => bytes_json(&mut m, "source_path", s),
        None => {
            m.insert("source_path".into(), serde_json::Value::Null);
        }
    }
    m.insert("created_unix_ns".into(), p.created_unix_ns.into());
    m.insert("updated_unix_ns".into(), p.updated_unix_ns.into());
    m.insert("entries".into(), entries.into());
    serde_json::Value::Object(m)
}

/// Reads what [`to_json`] writes.
pub fn from_json(o: &serde_json::Value) -> Result<Playlist, String> {
    let text = |k: &str| -> Result<Option<String>, String> {
        match o.get(k) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("`{k}` must be a string")),
        }
    };
    let name = text("name")?.ok_or("a playlist needs `name`")?;
    let entries = match o.get("entries") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|e| {
                Ok(Entry {
                    record_id: e.get("record_id").and_then(|v| v.as_u64()).unwrap_or(0),
                    path: json_bytes(e, "path")?.ok_or("an entry needs `path`")?,
                    title: e.get("title").and_then(|v| v.as_str()).map(str::to_owned),
                    duration_ms: e.get("duration_ms").and_then(|v| v.as_u64()),
                })
            })
            .collect::<Result<_, String>>()?,
        Some(_) => return Err("`entries` must be a list".into()),
    };
    Ok(Playlist {
        id: o.get("id").and_then(|v| v.as_u64()).unwrap_or(0),
        name,
        description: text("description")?,
        source_path: json_bytes(o, "source_path")?,
        created_unix_ns: o
            .get("created_unix_ns")
            .and_then(|v| v.as_i64())
            .unwrap_or(0),
        updated_unix_ns: o
            .get("updated_unix_ns")
            .and_then(|v| v.as_i64())
            .unwrap_or(0),
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playlists_round_trip_and_truncations_are_refused() {
        let p = Playlist {
            id: 0,
            name: "Mix".into(),
            description: Some("d".into()),
            source_path: Some(b"/m/\xffmix.m3u".to_vec()),
            created_unix_ns: 5,
            updated_unix_ns: 6,
            entries: vec![
                Entry::new(3, b"/m/a.flac".to_vec()),
                Entry {
                    record_id: 0,
                    path: b"http://radio/x".to_vec(),
                    title: Some("Radio".into()),
                    duration_ms: Some(1000),
                },
            ],
        };
        let mut out = Vec::new();
        encode(&mut FlatBufferBuilder::new(), &p, 42, &mut out);
        assert_eq!(
            decode(&out),
            Ok(Playlist {
                id: 42,
                ..p.clone()
            })
        );
        assert_eq!(from_json(&to_json(&p)), Ok(p));
        for cut in 0..out.len() {
            assert!(decode(&out[..cut]).is_err(), "cut at {cut}");
        }
    }
}
