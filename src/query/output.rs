//! Output formats for records: JSON (one array), JSON Lines, CSV (RFC 4180), a table fitted to
//! a width, paths one per line, and NUL-separated raw path bytes. Control characters never reach
//! a terminal raw: JSON escapes them, the text formats write them as `\x1b`-style escapes.
//! Also the inverse of the JSON shape, for `import`.

use std::io::{self, Write};

use base64::Engine;
use serde_json::{Map, Value as Json, json};

use crate::query::{Field, Value, value};
use crate::record::{Kind, Record, RecordView};

/// The output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// One JSON array.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// CSV with a header row.
    Csv,
    /// One path per line (control characters escaped).
    Paths,
    /// Raw path bytes, each followed by NUL.
    Print0,
}

/// Default columns of the table format.
pub const TABLE_FIELDS: [Field; 6] = [
    Field::Artist,
    Field::Album,
    Field::Track,
    Field::Title,
    Field::Year,
    Field::Path,
];

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn to_json(v: Value<'_>) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Int(n) => json!(n),
        Value::Bool(b) => json!(b),
        Value::Text(t) => json!(t),
        Value::Bytes(b) => json!(String::from_utf8_lossy(b)),
        Value::List(l) => json!(l),
    }
}

/// The JSON object of a record with `fields` (in that order), plus `path_b64` when the path is
/// requested and not UTF-8.
pub fn record_json(r: &RecordView<'_>, fields: &[Field]) -> Json {
    let mut m = Map::with_capacity(fields.len() + 1);
    for f in fields {
        m.insert(f.name().to_owned(), to_json(value(r, *f)));
        if *f == Field::Path && std::str::from_utf8(r.path()).is_err() {
            m.insert("path_b64".into(), json!(b64(r.path())));
        }
    }
    // Tags with no field of their own (kept by `migrate`) ride along with a whole record, so
    // that `export` loses nothing; they are not a queryable field.
    if fields.len() == Field::ALL.len() && r.tags().next().is_some() {
        let tags: Vec<[&str; 2]> = r.tags().map(|(k, v)| [k, v]).collect();
        m.insert("tags".into(), json!(tags));
    }
    Json::Object(m)
}

/// Text for a terminal or a CSV cell: control characters escaped.
pub fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A field's value as display text (lists joined with `; `, absent empty).
pub fn display(v: &Value<'_>) -> String {
    match v {
        Value::Null => String::new(),
        Value::Int(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Text(t) => escape_controls(t).into_owned(),
        Value::Bytes(b) => escape_controls(&String::from_utf8_lossy(b)).into_owned(),
        Value::List(l) => escape_controls(&l.join("; ")).into_owned(),
    }
}

fn csv_cell(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        std::borrow::Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Display columns of `s` (East Asian wide characters take two).
fn cols(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

/// Truncates `s` on a character boundary to at most `width` columns, ending with `…` when cut.
fn fit(s: &str, width: usize) -> String {
    if cols(s) <= width {
        return s.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    if width > 0 {
        out.push('…');
    }
    out
}

/// Writes `records` in `format`. `width` is the terminal width for tables.
pub fn write_records(
    w: &mut dyn Write,
    records: &[RecordView<'_>],
    fields: &[Field],
    format: Format,
    width: usize,
) -> io::Result<()> {
    match format {
        Format::Jsonl => {
            for r in records {
                serde_json::to_writer(&mut *w, &record_json(r, fields))?;
                w.write_all(b"\n")?;
            }
        }
        Format::Json => {
            w.write_all(b"[")?;
            for (i, r) in records.iter().enumerate() {
                if i > 0 {
                    w.write_all(b",")?;
                }
                w.write_all(b"\n")?;
                serde_json::to_writer(&mut *w, &record_json(r, fields))?;
            }
            w.write_all(if records.is_empty() { b"]\n" } else { b"\n]\n" })?;
        }
        Format::Csv => {
            let header: Vec<&str> = fields.iter().map(|f| f.name()).collect();
            writeln!(w, "{}\r", header.join(","))?;
            for r in records {
                let row: Vec<String> = fields
                    .iter()
                    .map(|f| csv_cell(&display(&value(r, *f))).into_owned())
                    .collect();
                writeln!(w, "{}\r", row.join(","))?;
            }
        }
        Format::Paths => {
            for r in records {
                writeln!(w, "{}", escape_controls(&String::from_utf8_lossy(r.path())))?;
            }
        }
        Format::Print0 => {
            for r in records {
                w.write_all(r.path())?;
                w.write_all(b"\0")?;
            }
        }
        Format::Table => write_table(w, records, fields, width)?,
    }
    Ok(())
}

fn write_table(
    w: &mut dyn Write,
    records: &[RecordView<'_>],
    fields: &[Field],
    width: usize,
) -> io::Result<()> {
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| fields.iter().map(|f| display(&value(r, *f))).collect())
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let header: Vec<String> = fields.iter().map(|f| f.name().to_uppercase()).collect();
    write_grid(w, &header, &rows, width)
}

/// Writes aligned columns: the widest column is cut so that a row fits `width`.
pub fn write_grid(
    w: &mut dyn Write,
    header: &[String],
    rows: &[Vec<String>],
    width: usize,
) -> io::Result<()> {
    let n = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| cols(h)).collect();
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(cols(c));
        }
    }
    // Shrink the widest columns until the row fits (two spaces between columns).
    let gaps = 2 * n.saturating_sub(1);
    while widths.iter().sum::<usize>() + gaps > width {
        let (i, &max) = widths
            .iter()
            .enumerate()
            .max_by_key(|(_, w)| **w)
            .expect("columns");
        if max <= 8 {
            break;
        }
        widths[i] = max - 1;
    }
    let line = |cells: &[String]| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let cell = fit(c, widths[i]);
            if i + 1 < n {
                s.push_str(&cell);
                s.extend(std::iter::repeat_n(
                    ' ',
                    widths[i].saturating_sub(cols(&cell)) + 2,
                ));
            } else {
                s.push_str(&cell);
            }
        }
        s
    };
    writeln!(w, "{}", line(header).trim_end())?;
    for row in rows {
        writeln!(w, "{}", line(row).trim_end())?;
    }
    Ok(())
}

/// Why an imported JSON line could not become a record.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ImportError(pub String);

/// Builds a record from the JSON shape `record_json` writes (all fields). `id` is returned
/// separately (0 when absent).
pub fn record_from_json(v: &Json) -> Result<Record, ImportError> {
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
    if path.is_empty() {
        return Err(ImportError("empty `path`".into()));
    }
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
            Some(y) => {
                Some(i32::try_from(y).map_err(|_| ImportError("`year` is out of range".into()))?)
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_csv_quotes() {
        assert_eq!(escape_controls("a\u{1b}[31mb\n"), "a\\x1b[31mb\\n");
        assert_eq!(csv_cell("a,\"b\""), "\"a,\"\"b\"\"\"");
        assert_eq!(fit("héllo wörld", 6), "héllo…");
    }
}
