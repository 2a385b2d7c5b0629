//! Output formats for records and `--group-by` rows: JSON (one array), JSON Lines, CSV
//! (RFC 4180), a table fitted to a width, paths one per line, and NUL-separated raw path bytes.
//! The inverse of the JSON shape, for `import`, is in [`import`](super::import).
//!
//! What must stay true: nothing a file name or tag holds reaches a terminal raw, and nothing
//! written for a program is rewritten. On a terminal ([`Sink::terminal`]) the text formats
//! escape control characters (`\n`, `\x1b`...), and `paths` also escapes backslashes and the
//! bytes that are not UTF-8, so that each line names exactly one path. Into a pipe or a file,
//! `paths` writes each path's exact bytes and CSV the values' real characters, quoted as RFC 4180
//! says. JSON escapes by its own rules everywhere; tables, being for reading, are escaped
//! everywhere. JSON and CSV are UTF-8: a path that is not is written lossily, and exactly in
//! base64 as `path_b64`.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

use base64::Engine;
use serde_json::{Map, Value as Json, json};

use crate::query::{Field, FieldType, GroupBy, GroupRow, Value, value};
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
    /// One path per line: exact bytes, or escaped on a terminal.
    Paths,
    /// Raw path bytes, each followed by NUL.
    Print0,
}

/// Where the output goes, which decides how text is made safe and how wide a table is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sink {
    /// A terminal: text is escaped for display (see the module doc). Otherwise `paths` and CSV
    /// carry names and values exactly.
    pub terminal: bool,
    /// The columns a table is fitted to.
    pub width: usize,
}

/// A column of `--fields`: a record field, or `path_b64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    /// A record field (BRIEF §2).
    Field(Field),
    /// The exact bytes of the path in standard base64, for every record, UTF-8 or not.
    PathB64,
}

impl Column {
    /// The name in headers, JSON keys and `--fields`.
    pub fn name(self) -> &'static str {
        match self {
            Column::Field(f) => f.name(),
            Column::PathB64 => "path_b64",
        }
    }

    /// The column called `name`.
    pub fn from_name(name: &str) -> Option<Column> {
        match name {
            "path_b64" => Some(Column::PathB64),
            _ => Field::from_name(name).map(Column::Field),
        }
    }

    /// All names `--fields` takes, comma separated, for error messages.
    pub fn all_names() -> String {
        format!("{}, path_b64", Field::all_names())
    }

    /// Every record field, in output order: the default columns of all formats but the table.
    pub fn all() -> Vec<Column> {
        Field::ALL.into_iter().map(Column::Field).collect()
    }

    /// The column's value in `r` as text; control characters escaped when `escape`.
    fn text(self, r: &RecordView<'_>, escape: bool) -> String {
        match self {
            Column::Field(f) => text(&value(r, f), escape),
            Column::PathB64 => b64(r.path()),
        }
    }
}

impl From<Field> for Column {
    fn from(f: Field) -> Column {
        Column::Field(f)
    }
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
    let columns: Vec<Column> = fields.iter().copied().map(Column::Field).collect();
    row_json(r, &columns)
}

/// The JSON object of a record with `columns`. `path_b64` is there when asked
/// for, and else right after `path` when the path is not UTF-8.
pub fn row_json(r: &RecordView<'_>, columns: &[Column]) -> Json {
    let asked_b64 = columns.contains(&Column::PathB64);
    let mut m = Map::with_capacity(columns.len() + 1);
    let mut fields = 0;
    for c in columns {
        match *c {
            Column::Field(f) => {
                fields += 1;
                m.insert(f.name().to_owned(), to_json(value(r, f)));
                if f == Field::Path && !asked_b64 && std::str::from_utf8(r.path()).is_err() {
                    m.insert("path_b64".into(), json!(b64(r.path())));
                }
            }
            Column::PathB64 => {
                m.insert("path_b64".into(), json!(b64(r.path())));
            }
        }
    }
    // Tags with no field of their own (kept by `migrate`) ride along with a whole record, so
    // that `export` loses nothing; they are not a queryable field.
    if fields == Field::ALL.len() && r.tags().next().is_some() {
        let tags: Vec<[&str; 2]> = r.tags().map(|(k, v)| [k, v]).collect();
        m.insert("tags".into(), json!(tags));
    }
    Json::Object(m)
}

/// Text for a terminal or a table cell, unambiguously: control characters escaped (`\n`, `\t`,
/// `\r`, `\x1b`, `\u{85}`) and a backslash as `\\`, so that a tag holding a backslash and an
/// `n` never shows as one holding a newline; everything else as it is.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() || c == '\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => push_control(&mut out, c),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Appends the escape of control character `c`.
fn push_control(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// A path for a terminal, unambiguously: control characters escaped as by
/// [`escape_controls`] (`\x` only below 0x80), a backslash as `\\`, and each byte that is not
/// part of valid UTF-8 as `\xNN` (always 0x80 or above). Two paths never show the same.
pub fn escape_path(path: &[u8]) -> Cow<'_, str> {
    let plain = |c: char| !c.is_control() && c != '\\';
    if let Ok(s) = std::str::from_utf8(path)
        && s.chars().all(plain)
    {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(path.len() + 8);
    for chunk in path.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => push_control(&mut out, c),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    Cow::Owned(out)
}

/// A field's value as text (lists joined with `; `, absent empty, bytes lossily); control
/// characters escaped when `escape`.
fn text(v: &Value<'_>, escape: bool) -> String {
    let esc = |s: &str| {
        if escape {
            escape_controls(s).into_owned()
        } else {
            s.to_owned()
        }
    };
    match v {
        Value::Null => String::new(),
        Value::Int(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Text(t) => esc(t),
        // A path or name shown as terminal `paths` shows it: backslashes and bytes that are not
        // UTF-8 escaped too, so two names never look alike.
        Value::Bytes(b) if escape => escape_path(b).into_owned(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::List(l) => esc(&l.join("; ")),
    }
}

/// A field's value as display text (lists joined with `; `, absent empty), control characters
/// escaped.
pub fn display(v: &Value<'_>) -> String {
    text(v, true)
}

/// A CSV field (RFC 4180): quoted, with `"` doubled, when it holds `,`, `"`, CR or LF.
fn csv_cell(s: &str) -> Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(s)
    }
}

/// Writes one CSV row of `cells`, ended by CRLF.
fn write_csv_row<S: AsRef<str>>(w: &mut dyn Write, cells: &[S]) -> io::Result<()> {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        w.write_all(csv_cell(c.as_ref()).as_bytes())?;
    }
    w.write_all(b"\r\n")
}

/// Paths as `--format paths` (a line each) or `-0` (NUL after each, exact bytes) writes them;
/// another format writes nothing.
pub fn write_paths<'p>(
    w: &mut dyn Write,
    paths: impl Iterator<Item = &'p [u8]>,
    format: Format,
    sink: Sink,
) -> io::Result<()> {
    for p in paths {
        match format {
            Format::Paths => write_path_line(w, p, "", sink)?,
            Format::Print0 => {
                w.write_all(p)?;
                w.write_all(b"\0")?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Writes `path` as a line of `paths`: its exact bytes, or escaped on a terminal; `suffix`
/// (`/` for a directory) after it.
pub fn write_path_line(w: &mut dyn Write, path: &[u8], suffix: &str, sink: Sink) -> io::Result<()> {
    if sink.terminal {
        w.write_all(escape_path(path).as_bytes())?;
    } else {
        w.write_all(path)?;
    }
    w.write_all(suffix.as_bytes())?;
    w.write_all(b"\n")
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

/// Writes `records` in `format` with `columns` (ignored by `paths` and NUL-separated paths).
pub fn write_records(
    w: &mut dyn Write,
    records: &[RecordView<'_>],
    columns: &[Column],
    format: Format,
    sink: Sink,
) -> io::Result<()> {
    match format {
        Format::Jsonl => {
            for r in records {
                serde_json::to_writer(&mut *w, &row_json(r, columns))?;
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
                serde_json::to_writer(&mut *w, &row_json(r, columns))?;
            }
            w.write_all(if records.is_empty() { b"]\n" } else { b"\n]\n" })?;
        }
        Format::Csv => {
            let header: Vec<&str> = columns.iter().map(|c| c.name()).collect();
            write_csv_row(w, &header)?;
            for r in records {
                let row: Vec<String> = columns.iter().map(|c| c.text(r, sink.terminal)).collect();
                write_csv_row(w, &row)?;
            }
        }
        Format::Paths | Format::Print0 => {
            write_paths(w, records.iter().map(RecordView::path), format, sink)?;
        }
        Format::Table => write_table(w, records, columns, sink.width)?,
    }
    Ok(())
}

fn write_table(
    w: &mut dyn Write,
    records: &[RecordView<'_>],
    columns: &[Column],
    width: usize,
) -> io::Result<()> {
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| columns.iter().map(|c| c.text(r, true)).collect())
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let header: Vec<String> = columns.iter().map(|c| c.name().to_uppercase()).collect();
    write_grid(w, &header, &rows, width)
}

/// The JSON value of a group's name: a number when the grouped field is one (`year`), else
/// text (lossy when not UTF-8).
fn group_name_json(name: &[u8], by: GroupBy) -> Json {
    let number = match by.field().ty() {
        FieldType::Number => std::str::from_utf8(name)
            .ok()
            .and_then(|s| s.parse::<i64>().ok()),
        _ => None,
    };
    number.map_or_else(|| json!(String::from_utf8_lossy(name)), |n| json!(n))
}

/// Writes `--group-by` rows in `format`: name and count (and the album artist for albums).
/// JSON gives numeric names (years) as numbers. `paths` has no meaning for groups and writes
/// the table.
pub fn write_groups(
    w: &mut dyn Write,
    rows: &[GroupRow],
    by: GroupBy,
    format: Format,
    sink: Sink,
) -> io::Result<()> {
    let name = by.name();
    let albums = by == GroupBy::Album;
    let json_row = |r: &GroupRow| {
        let mut v = json!({ name: group_name_json(&r.name, by), "count": r.count });
        if albums {
            v["album_artist"] = r.album_artist.clone().into();
        }
        if std::str::from_utf8(&r.name).is_err() {
            // A directory whose name is not UTF-8: its exact bytes beside the lossy text, as
            // `path_b64` is beside `path`.
            v[format!("{name}_b64")] = base64::engine::general_purpose::STANDARD
                .encode(&r.name)
                .into();
        }
        v
    };
    match format {
        Format::Json => {
            let all: Vec<_> = rows.iter().map(json_row).collect();
            writeln!(w, "{}", Json::Array(all))
        }
        Format::Jsonl => rows.iter().try_for_each(|r| writeln!(w, "{}", json_row(r))),
        Format::Csv => {
            let text = |s: &str| {
                if sink.terminal {
                    escape_controls(s).into_owned()
                } else {
                    s.to_owned()
                }
            };
            if albums {
                write_csv_row(w, &[name, "count", "album_artist"])?;
            } else {
                write_csv_row(w, &[name, "count"])?;
            }
            rows.iter().try_for_each(|r| {
                let mut row = vec![text(&String::from_utf8_lossy(&r.name)), r.count.to_string()];
                if albums {
                    row.push(text(r.album_artist.as_deref().unwrap_or_default()));
                }
                write_csv_row(w, &row)
            })
        }
        Format::Table | Format::Paths | Format::Print0 => {
            let mut header = vec!["COUNT".to_owned(), name.to_uppercase()];
            if albums {
                header.push("ALBUM_ARTIST".into());
            }
            let grid: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let mut row = vec![r.count.to_string(), escape_path(&r.name).into_owned()];
                    if albums {
                        row.push(
                            escape_controls(r.album_artist.as_deref().unwrap_or_default())
                                .into_owned(),
                        );
                    }
                    row
                })
                .collect();
            write_grid(w, &header, &grid, sink.width)
        }
    }
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
    use crate::record::{EncodedRecord, Record};

    const PIPE: Sink = Sink {
        terminal: false,
        width: 120,
    };
    const TERMINAL: Sink = Sink {
        terminal: true,
        width: 120,
    };

    /// Runs `f` on views of records with these paths (and `title`), and returns what it wrote.
    fn written(
        paths: &[&[u8]],
        title: &str,
        f: impl FnOnce(&mut dyn Write, &[RecordView<'_>]) -> io::Result<()>,
    ) -> Vec<u8> {
        let encoded: Vec<EncodedRecord> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| {
                EncodedRecord::new(&Record {
                    id: i as u64 + 1,
                    title: Some(title.to_owned()),
                    year: Some(1990),
                    ..Record::new(p.to_vec())
                })
            })
            .collect();
        let views: Vec<RecordView<'_>> = encoded.iter().filter_map(EncodedRecord::view).collect();
        assert_eq!(views.len(), paths.len(), "the records encode");
        let mut out = Vec::new();
        f(&mut out, &views).expect("writes to a Vec");
        out
    }

    const ODD: [&[u8]; 5] = [
        b"/m/tab\there.flac",
        b"/m/new\nline.flac",
        b"/m/back\\slash.flac",
        b"/m/latin1 caf\xe9.flac",
        b"/m/esc\x1b[31m.flac",
    ];

    #[test]
    fn controls_are_escaped_and_csv_quotes() {
        assert_eq!(escape_controls("a\u{1b}[31mb\n"), "a\\x1b[31mb\\n");
        assert_eq!(escape_controls("c1\u{85}"), "c1\\u{85}");
        // A backslash is escaped too: a literal `\n` and a newline never look alike.
        assert_eq!(escape_controls("a\\nb"), "a\\\\nb");
        assert_ne!(escape_controls("a\\nb"), escape_controls("a\nb"));
        assert_eq!(csv_cell("a,\"b\""), "\"a,\"\"b\"\"\"");
        assert_eq!(csv_cell("a\nb"), "\"a\nb\"");
        assert_eq!(csv_cell("a\rb"), "\"a\rb\"");
        assert_eq!(csv_cell("plain \\ back"), "plain \\ back");
        assert_eq!(fit("héllo wörld", 6), "héllo…");
        // A path in a table: a tab and a backslash followed by `t` differ, as do bad bytes.
        let shown = |b: &[u8]| text(&Value::Bytes(b), true);
        assert_eq!(shown(b"a\tb"), r"a\tb");
        assert_eq!(shown(br"a\tb"), r"a\\tb");
        assert_eq!(shown(b"x\xff"), r"x\xff");
        assert_eq!(text(&Value::Bytes(b"x\xff"), false), "x\u{fffd}");
    }

    #[test]
    fn paths_into_a_pipe_are_the_exact_bytes_one_per_line() {
        let out = written(&ODD, "t", |w, rs| {
            write_records(w, rs, &Column::all(), Format::Paths, PIPE)
        });
        let mut want = Vec::new();
        for p in ODD {
            want.extend_from_slice(p);
            want.push(b'\n');
        }
        assert_eq!(out, want);
    }

    #[test]
    fn paths_on_a_terminal_are_escaped_unambiguously() {
        let out = written(&ODD, "t", |w, rs| {
            write_records(w, rs, &Column::all(), Format::Paths, TERMINAL)
        });
        let out = String::from_utf8(out).expect("escaped output is UTF-8");
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            [
                "/m/tab\\there.flac",
                "/m/new\\nline.flac",
                "/m/back\\\\slash.flac",
                "/m/latin1 caf\\xe9.flac",
                "/m/esc\\x1b[31m.flac",
            ]
        );
        // A name spelling out an escape differs from the name holding the character, and a
        // byte that is not UTF-8 from the C1 control character of the same number.
        assert_ne!(escape_path(b"a\\tb"), escape_path(b"a\tb"));
        assert_ne!(escape_path(b"a\xc2\x85"), escape_path(b"a\x85"));
        assert_eq!(escape_path(b"a\xc2\x85"), "a\\u{85}");
        assert_eq!(escape_path("plain ✓".as_bytes()), "plain ✓");
        assert!(matches!(escape_path(b"/a/b"), Cow::Borrowed(_)));
    }

    #[test]
    fn csv_into_a_pipe_keeps_real_characters_quoted() {
        let title = "line1\nline2, \"quoted\"\u{1b}";
        let out = written(&[b"/m/a.flac"], title, |w, rs| {
            let cols = [Column::Field(Field::Title), Column::Field(Field::Year)];
            write_records(w, rs, &cols, Format::Csv, PIPE)
        });
        assert_eq!(
            String::from_utf8(out).expect("UTF-8"),
            "title,year\r\n\"line1\nline2, \"\"quoted\"\"\u{1b}\",1990\r\n"
        );
    }

    #[test]
    fn csv_on_a_terminal_escapes_control_characters() {
        let out = written(&[b"/m/a.flac"], "line1\nline2,\u{1b}", |w, rs| {
            write_records(w, rs, &[Column::Field(Field::Title)], Format::Csv, TERMINAL)
        });
        assert_eq!(
            String::from_utf8(out).expect("UTF-8"),
            "title\r\n\"line1\\nline2,\\x1b\"\r\n"
        );
    }

    #[test]
    fn path_b64_is_given_for_every_path_when_asked_for() {
        let paths: [&[u8]; 2] = [b"/m/utf8.flac", b"/m/\xff.flac"];
        let b64s = ["L20vdXRmOC5mbGFj", "L20v/y5mbGFj"];
        let cols = [Column::Field(Field::Id), Column::PathB64];
        let csv = written(&paths, "t", |w, rs| {
            write_records(w, rs, &cols, Format::Csv, PIPE)
        });
        assert_eq!(
            String::from_utf8(csv).expect("UTF-8"),
            format!("id,path_b64\r\n1,{}\r\n2,{}\r\n", b64s[0], b64s[1])
        );
        let jsonl = written(&paths, "t", |w, rs| {
            write_records(w, rs, &cols, Format::Jsonl, PIPE)
        });
        let lines: Vec<Json> = jsonl
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("JSON line"))
            .collect();
        assert_eq!(
            lines,
            [
                json!({"id": 1, "path_b64": b64s[0]}),
                json!({"id": 2, "path_b64": b64s[1]})
            ]
        );
        let table = written(&paths, "t", |w, rs| {
            write_records(w, rs, &cols, Format::Table, PIPE)
        });
        let table = String::from_utf8(table).expect("UTF-8");
        assert!(table.starts_with("ID  PATH_B64\n"), "{table}");
        assert!(
            table.contains(b64s[0]) && table.contains(b64s[1]),
            "{table}"
        );
        // Asked for with path: once, where asked, also for a path that is not UTF-8.
        let both = [Column::PathB64, Column::Field(Field::Path)];
        let v = written(&paths[1..], "t", |w, rs| {
            write_records(w, rs, &both, Format::Jsonl, PIPE)
        });
        let v: Json = serde_json::from_slice(&v).expect("JSON");
        assert_eq!(v, json!({"path_b64": b64s[1], "path": "/m/\u{fffd}.flac"}));
        assert_eq!(Column::from_name("path_b64"), Some(Column::PathB64));
        assert!(Column::all_names().ends_with("path_b64"));
    }

    #[test]
    fn json_gives_path_b64_unasked_only_for_paths_that_are_not_utf8() {
        let paths: [&[u8]; 2] = [b"/m/utf8.flac", b"/m/\xff.flac"];
        let out = written(&paths, "t", |w, rs| {
            write_records(w, rs, &[Column::Field(Field::Path)], Format::Jsonl, PIPE)
        });
        let text = String::from_utf8(out).expect("UTF-8");
        let lines: Vec<Json> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        assert_eq!(
            lines,
            [
                json!({"path": "/m/utf8.flac"}),
                json!({"path": "/m/\u{fffd}.flac", "path_b64": "L20v/y5mbGFj"})
            ]
        );
    }

    #[test]
    fn group_names_of_numeric_fields_are_json_numbers() {
        let rows = [
            GroupRow {
                name: b"1990".to_vec(),
                album_artist: None,
                count: 2,
            },
            GroupRow {
                name: b"2001".to_vec(),
                album_artist: None,
                count: 1,
            },
        ];
        let mut out = Vec::new();
        write_groups(&mut out, &rows, GroupBy::Year, Format::Jsonl, PIPE).expect("writes");
        let lines: Vec<Json> = String::from_utf8(out)
            .expect("UTF-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        assert_eq!(
            lines,
            [
                json!({"year": 1990, "count": 2}),
                json!({"year": 2001, "count": 1})
            ]
        );
        let mut out = Vec::new();
        write_groups(&mut out, &rows, GroupBy::Genre, Format::Json, PIPE).expect("writes");
        let v: Json = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(
            v[0]["genre"],
            json!("1990"),
            "a genre named 1990 stays text"
        );
        // A directory that is not UTF-8 keeps its exact bytes beside the lossy text.
        let dirs = [GroupRow {
            name: b"/m/d\xfe".to_vec(),
            album_artist: None,
            count: 3,
        }];
        let mut out = Vec::new();
        write_groups(&mut out, &dirs, GroupBy::Dir, Format::Jsonl, PIPE).expect("writes");
        let v: Json = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(v["dir"], json!("/m/d\u{fffd}"));
        assert_eq!(v["dir_b64"], json!("L20vZP4="));
    }

    #[test]
    fn group_csv_quotes_into_a_pipe_and_escapes_on_a_terminal() {
        let rows = [GroupRow {
            name: b"Two\nLines, \"Q\"".to_vec(),
            album_artist: None,
            count: 3,
        }];
        let csv = |sink| {
            let mut out = Vec::new();
            write_groups(&mut out, &rows, GroupBy::Artist, Format::Csv, sink).expect("writes");
            String::from_utf8(out).expect("UTF-8")
        };
        assert_eq!(csv(PIPE), "artist,count\r\n\"Two\nLines, \"\"Q\"\"\",3\r\n");
        assert_eq!(
            csv(TERMINAL),
            "artist,count\r\n\"Two\\nLines, \"\"Q\"\"\",3\r\n"
        );
    }
}
