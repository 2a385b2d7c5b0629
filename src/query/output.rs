//! Output formats for records: JSON (one array), JSON Lines, CSV (RFC 4180), a table fitted to
//! a width, paths one per line, and NUL-separated raw path bytes. Control characters never reach
//! a terminal raw: JSON escapes them, the text formats write them as `\x1b`-style escapes.
//! The inverse of the JSON shape, for `import`, is in [`import`](super::import).

use std::io::{self, Write};

use base64::Engine;
use serde_json::{Map, Value as Json, json};

use crate::query::{Field, Value, value};
use crate::record::RecordView;

pub use super::import::{ImportError, record_from_json};

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
