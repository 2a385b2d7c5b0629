//! Playlist files: reading M3U, M3U8 and PLS into entries, and writing entries back out. Pure
//! functions over bytes; no database and no file system.
//!
//! What must stay true:
//! - Parsing never panics, whatever the bytes, and never allocates in proportion to a number
//!   found in the file: PLS entry numbers are ordered as digit strings, never used as an index.
//! - Paths are bytes throughout. A written path is its raw bytes, unless those bytes cannot
//!   survive as one line of a playlist (CR, LF, `\`, white space at either end); such an absolute
//!   path is written as a percent-encoded `file://` URI instead, which parses back to the same
//!   bytes.
//! - Nothing written can start a line of its own: CR and LF in titles become spaces.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{self, Write};

/// A playlist file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// M3U: UTF-8 when the bytes are valid UTF-8, Latin-1 otherwise.
    M3u,
    /// M3U8: M3U in UTF-8.
    M3u8,
    /// PLS: the INI-like `[playlist]` format.
    Pls,
}

impl Format {
    /// From a file extension (case-insensitive): `.m3u`, `.m3u8`, `.pls`.
    pub fn from_path(path: &[u8]) -> Option<Format> {
        let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
        let dot = name.iter().rposition(|&b| b == b'.')?;
        std::str::from_utf8(&name[dot + 1..])
            .ok()
            .and_then(Format::from_name)
    }

    /// From a `--format` value: `m3u`, `m3u8`, `pls` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Format> {
        [Format::M3u, Format::M3u8, Format::Pls]
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(name))
    }

    /// The name, which is also the file extension.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::M3u => "m3u",
            Format::M3u8 => "m3u8",
            Format::Pls => "pls",
        }
    }
}

/// One entry read from a playlist file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// An absolute, normalized local path; or a URL or Windows path, kept as written.
    pub path: Vec<u8>,
    /// The title the file gave, trimmed.
    pub title: Option<String>,
    /// The duration the file gave, in whole seconds; `None` when unknown (`-1`).
    pub duration_secs: Option<i64>,
    /// For an M3U or PLS file that is not UTF-8 (whose `path` is its Latin-1 reading): the
    /// path from the line's exact bytes, when that differs. Such a file may hold a name that is
    /// not UTF-8 exactly as the file system has it (mediadb's own export writes them so); the
    /// caller takes whichever of the two it knows.
    pub raw_path: Option<Vec<u8>>,
}

/// One entry to write.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExportEntry<'a> {
    /// A local path or a URL (exact bytes).
    pub path: &'a [u8],
    /// Shown as `artist - title` when there is also a title.
    pub artist: Option<&'a str>,
    /// Shown alone when there is no artist; the file name is shown when there is no title.
    pub title: Option<&'a str>,
    /// Written in whole seconds, rounded; `-1` when unknown.
    pub duration_ms: Option<u64>,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Parses a playlist file. `base_dir` is the absolute directory holding the playlist (bytes);
/// relative entries are resolved against it.
pub fn parse(bytes: &[u8], format: Format, base_dir: &[u8]) -> Vec<Entry> {
    let text = decode(bytes, format);
    let mut entries = parse_decoded(&text, format, base_dir);
    if let Cow::Owned(_) = text {
        // Latin-1 changes no byte below 0x80, so both readings have the same lines and entries.
        let raw = parse_decoded(bytes.strip_prefix(BOM).unwrap_or(bytes), format, base_dir);
        if raw.len() == entries.len() {
            for (e, r) in entries.iter_mut().zip(raw) {
                e.raw_path = (r.path != e.path).then_some(r.path);
            }
        }
    }
    entries
}

/// Longest line a playlist may have: no path or URL comes near it, and a longer one is no
/// playlist entry (a 10 MB line would be stored, and shown, whole).
pub const MAX_LINE: usize = 64 << 10;

/// Reads a playlist file as [`parse`] does, after checking that it is one: text (UTF-8, Latin-1,
/// or UTF-16 or UTF-32 with a byte-order mark) with no NUL character and no line over
/// [`MAX_LINE`] bytes. The content decides between M3U and PLS when it says (a first line of
/// `[playlist]`, or `#EXTM3U`) whatever `format` the name gave; a PLS file must hold an entry.
/// `Err` says in a few words why the file is not a playlist.
pub fn read(bytes: &[u8], format: Format, base_dir: &[u8]) -> Result<Vec<Entry>, String> {
    let wide = wide(bytes)?;
    let text: &[u8] = wide.as_deref().map_or(bytes, str::as_bytes);
    if text.contains(&0) {
        return Err("it holds binary data (NUL bytes)".into());
    }
    if let Some((n, line)) = text
        .split(|&b| b == b'\n' || b == b'\r')
        .enumerate()
        .find(|(_, l)| l.len() > MAX_LINE)
    {
        return Err(format!(
            "line {} is {} bytes long, over the {MAX_LINE}-byte limit of a playlist line",
            n + 1,
            line.len()
        ));
    }
    let first = lines(text).next().unwrap_or_default();
    let format = if first.eq_ignore_ascii_case(b"[playlist]") {
        Format::Pls
    } else if format == Format::Pls && first.starts_with(b"#EXTM3U") {
        Format::M3u8
    } else {
        format
    };
    let entries = match &wide {
        Some(text) => parse_decoded(text.as_bytes(), format, base_dir),
        None => parse(bytes, format, base_dir),
    };
    if format == Format::Pls && entries.is_empty() && !lines(text).all(|l| l.starts_with(b"[")) {
        return Err("it has no FileN= entry in a [playlist] section".into());
    }
    Ok(entries)
}

/// A file in UTF-32 or UTF-16 with its byte-order mark (as Windows' Notepad saves "Unicode"),
/// as text; a unit that is no character reads as U+FFFD. `Ok(None)` for any other file.
fn wide(bytes: &[u8]) -> Result<Option<String>, String> {
    // UTF-32's marks first: FF FE 00 00 also starts with UTF-16 LE's.
    let (unit, little) = match bytes {
        [0xFF, 0xFE, 0, 0, ..] => (4, true),
        [0, 0, 0xFE, 0xFF, ..] => (4, false),
        [0xFF, 0xFE, ..] => (2, true),
        [0xFE, 0xFF, ..] => (2, false),
        _ => return Ok(None),
    };
    let body = &bytes[unit..];
    if !body.len().is_multiple_of(unit) {
        return Err(format!(
            "its UTF-{} text ends in the middle of a character",
            unit * 8
        ));
    }
    let text = if unit == 4 {
        body.chunks_exact(4)
            .map(|u| {
                let u = [u[0], u[1], u[2], u[3]];
                let n = if little {
                    u32::from_le_bytes(u)
                } else {
                    u32::from_be_bytes(u)
                };
                char::from_u32(n).unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .collect()
    } else {
        let units = body.chunks_exact(2).map(|u| {
            let pair = [u[0], u[1]];
            if little {
                u16::from_le_bytes(pair)
            } else {
                u16::from_be_bytes(pair)
            }
        });
        char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    };
    Ok(Some(text))
}

/// The file as UTF-8 bytes, without a BOM. M3U8 bytes are taken as they are, so a path that is
/// not UTF-8 keeps its exact bytes; M3U and PLS that are not valid UTF-8 are read as Latin-1.
fn decode(bytes: &[u8], format: Format) -> Cow<'_, [u8]> {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    if format == Format::M3u8 || std::str::from_utf8(bytes).is_ok() {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 4);
    for &b in bytes {
        if b < 0x80 {
            out.push(b);
        } else {
            out.extend_from_slice(&[0xC0 | (b >> 6), 0x80 | (b & 0x3F)]);
        }
    }
    Cow::Owned(out)
}

/// Entries from a playlist's text, already UTF-8 (or M3U8 bytes taken as they are).
fn parse_decoded(text: &[u8], format: Format, base_dir: &[u8]) -> Vec<Entry> {
    match format {
        Format::M3u | Format::M3u8 => parse_m3u(text, base_dir),
        Format::Pls => parse_pls(text, base_dir),
    }
}

/// The non-blank lines, trimmed (of white space, and of a byte-order mark a concatenation left
/// at a line's start); CRLF, CR and LF all end a line.
fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|&b| b == b'\r' || b == b'\n')
        .map(|l| {
            let l = l.trim_ascii();
            l.strip_prefix(BOM).unwrap_or(l).trim_ascii()
        })
        .filter(|l| !l.is_empty())
}

fn strip_prefix_ignore_case<'a>(b: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = b.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &b[prefix.len()..])
}

/// Text for a title: trimmed, `None` when empty.
fn title_text(b: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(b);
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// Seconds from a duration field: whole or decimal (rounded); negative (`-1`) or unreadable is
/// unknown.
fn secs(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?.trim();
    if let Ok(n) = s.parse::<i64>() {
        return (n >= 0).then_some(n);
    }
    let f: f64 = s.parse().ok()?;
    // `as` saturates, and the range check keeps the value meaningful.
    (f.is_finite() && f >= 0.0 && f < i64::MAX as f64).then(|| f.round() as i64)
}

fn parse_m3u(text: &[u8], base_dir: &[u8]) -> Vec<Entry> {
    let mut entries = Vec::new();
    // Title and duration from the last `#EXTINF`, waiting for the entry they describe.
    let mut pending = None;
    for line in lines(text) {
        if line.starts_with(b"#") {
            if let Some(info) = strip_prefix_ignore_case(line, b"#EXTINF:") {
                pending = Some(extinf(info));
            }
            continue;
        }
        let (title, duration_secs) = pending.take().unwrap_or_default();
        if let Some(path) = resolve(line, base_dir) {
            entries.push(Entry {
                path,
                title,
                duration_secs,
                raw_path: None,
            });
        }
    }
    entries
}

/// Title and duration from what follows `#EXTINF:`: `<secs>[ attrs],<title>`. Attribute values
/// are quoted and may hold commas, so the title starts after the first comma outside quotes.
fn extinf(info: &[u8]) -> (Option<String>, Option<i64>) {
    let mut quoted = false;
    let comma = info
        .iter()
        .position(|&b| {
            quoted ^= b == b'"';
            b == b',' && !quoted
        })
        .or_else(|| info.iter().position(|&b| b == b','));
    let (head, title) = match comma {
        Some(i) => (&info[..i], title_text(&info[i + 1..])),
        None => (info, None),
    };
    let duration = head
        .trim_ascii()
        .split(u8::is_ascii_whitespace)
        .next()
        .and_then(secs);
    (title, duration)
}

/// An entry number of a PLS key, as its digits without leading zeros: compared by length, then
/// by digits, it orders like the number however large.
#[derive(PartialEq, Eq)]
struct Number<'a>(&'a [u8]);

impl Ord for Number<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(other.0))
    }
}

impl PartialOrd for Number<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Clone, Copy)]
enum PlsKey {
    File,
    Title,
    Length,
}

/// The values given for one entry number.
#[derive(Default)]
struct PlsSlot<'a> {
    file: Option<&'a [u8]>,
    title: Option<&'a [u8]>,
    length: Option<&'a [u8]>,
}

/// `FileN`, `TitleN` or `LengthN` (any case), with N.
fn pls_key(key: &[u8]) -> Option<(PlsKey, Number<'_>)> {
    let (kind, digits) = [
        (PlsKey::File, &b"file"[..]),
        (PlsKey::Title, b"title"),
        (PlsKey::Length, b"length"),
    ]
    .into_iter()
    .find_map(|(kind, name)| Some((kind, strip_prefix_ignore_case(key, name)?)))?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let first = digits
        .iter()
        .position(|&b| b != b'0')
        .unwrap_or(digits.len());
    Some((kind, Number(&digits[first..])))
}

fn parse_pls(text: &[u8], base_dir: &[u8]) -> Vec<Entry> {
    let mut slots: BTreeMap<Number<'_>, PlsSlot<'_>> = BTreeMap::new();
    // Keys before any section header count, for files that leave `[playlist]` out.
    let mut in_playlist = true;
    for line in lines(text) {
        if let Some(section) = line.strip_prefix(b"[") {
            let name = section.strip_suffix(b"]").unwrap_or(section);
            in_playlist = name.trim_ascii().eq_ignore_ascii_case(b"playlist");
            continue;
        }
        if !in_playlist || line.starts_with(b";") || line.starts_with(b"#") {
            continue;
        }
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            continue;
        };
        let Some((kind, n)) = pls_key(line[..eq].trim_ascii()) else {
            continue;
        };
        let value = line[eq + 1..].trim_ascii();
        let slot = slots.entry(n).or_default();
        match kind {
            PlsKey::File => slot.file = Some(value),
            PlsKey::Title => slot.title = Some(value),
            PlsKey::Length => slot.length = Some(value),
        }
    }
    slots
        .into_values()
        .filter_map(|slot| {
            Some(Entry {
                path: resolve(slot.file?, base_dir)?,
                title: slot.title.and_then(title_text),
                duration_secs: slot.length.and_then(secs),
                raw_path: None,
            })
        })
        .collect()
}

/// What is wrong with `path` as a playlist entry, when it is nothing a playlist file's import
/// stores: a URL, a Windows drive or UNC path as written (with `/` for `\`), or an absolute,
/// normalized local path. `None` when it is one of those.
pub fn entry_problem(path: &[u8]) -> Option<String> {
    let shown = || String::from_utf8_lossy(path).into_owned();
    if path.is_empty() {
        return Some("an empty path".into());
    }
    if path.contains(&0) {
        return Some(format!(
            "{:?} holds a NUL byte, which no file name can",
            shown()
        ));
    }
    if is_url(path) || is_drive(path) || path.starts_with(b"//") {
        return None;
    }
    if !path.starts_with(b"/") {
        return Some(format!(
            "{:?} is neither an absolute path nor a URL",
            shown()
        ));
    }
    if normalize(path) != path {
        return Some(format!(
            "{:?} has a `.`, `..` or empty component, which no stored path has",
            shown()
        ));
    }
    None
}

/// `X:/…` or `X:`: a Windows drive path.
fn is_drive(p: &[u8]) -> bool {
    matches!(p, [letter, b':', rest @ ..]
        if letter.is_ascii_alphabetic() && (rest.is_empty() || rest[0] == b'/'))
}

/// `scheme://…` with a scheme of two characters or more (one letter is a drive).
fn is_url(p: &[u8]) -> bool {
    let Some(colon) = p.iter().position(|&b| b == b':') else {
        return false;
    };
    let scheme = &p[..colon];
    scheme.len() >= 2
        && scheme[0].is_ascii_alphabetic()
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        && p[colon + 1..].starts_with(b"//")
}

/// An entry's path as written in the file, made into the path the entry names: local paths
/// absolute and normalized; URLs, UNC and drive paths as written (with `/` for `\`).
fn resolve(raw: &[u8], base_dir: &[u8]) -> Option<Vec<u8>> {
    let raw = raw.trim_ascii();
    if raw.is_empty() {
        return None;
    }
    let unc = raw.starts_with(b"\\\\");
    let p: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'\\' { b'/' } else { b })
        .collect();
    if unc || is_drive(&p) {
        return Some(p);
    }
    if strip_prefix_ignore_case(&p, b"file:/").is_some() {
        // `%00` decodes to a NUL, which no file name holds (and which would split the entry
        // in two under `-0`): such an entry names nothing, as an empty line.
        return Some(file_uri_path(p)).filter(|path| !path.contains(&0));
    }
    if is_url(&p) {
        return Some(p);
    }
    if p.starts_with(b"/") || base_dir.is_empty() {
        return Some(normalize(&p));
    }
    let mut joined = base_dir.to_vec();
    joined.push(b'/');
    joined.extend_from_slice(&p);
    Some(normalize(&joined))
}

/// The local path of a `file:` URI (`file:///p`, `file://localhost/p`, `file:/p`),
/// percent-decoded and normalized; a URI naming another host is kept as written.
fn file_uri_path(uri: Vec<u8>) -> Vec<u8> {
    // After `file:`, which the caller checked.
    let rest = &uri[5..];
    let path = match rest.strip_prefix(b"//") {
        Some(authority) => {
            let Some(slash) = authority.iter().position(|&b| b == b'/') else {
                return uri;
            };
            let host = &authority[..slash];
            if !host.is_empty() && !host.eq_ignore_ascii_case(b"localhost") {
                return uri;
            }
            &authority[slash..]
        }
        None => rest,
    };
    // A drive is written with its `:` as it is (`file:///C:/Music`); a Unix path whose first
    // name looks like one is written with `%3A`, and stays a Unix path.
    match path.strip_prefix(b"/") {
        Some(drive) if is_drive(drive) => percent_decode(drive),
        _ => normalize(&percent_decode(path)),
    }
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && let Some(hi) = s.get(i + 1).and_then(|&b| hex(b))
            && let Some(lo) = s.get(i + 2).and_then(|&b| hex(b))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// Collapses `//`, `.` and `..` lexically. An absolute path never climbs above `/`; a relative
/// one keeps the `..` it cannot resolve, and becomes `.` when nothing is left. Empty stays empty.
pub fn normalize(path: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        return Vec::new();
    }
    let absolute = path.starts_with(b"/");
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => match parts.last() {
                Some(&last) if last != b".." => {
                    parts.pop();
                }
                _ if absolute => {}
                _ => parts.push(part),
            },
            _ => parts.push(part),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    if absolute {
        out.push(b'/');
    } else if parts.is_empty() {
        out.push(b'.');
    }
    out.extend_from_slice(&parts.join(&b'/'));
    out
}

/// `path` relative to the directory `dir`, with `../` as needed (`.` when they are the same),
/// both taken lexically. When one is absolute and the other not, or `dir` climbs above what the
/// two share, no relative path can be known and `path` comes back normalized.
pub fn relative(path: &[u8], dir: &[u8]) -> Vec<u8> {
    let path = normalize(path);
    let dir = normalize(dir);
    if path.starts_with(b"/") != dir.starts_with(b"/") {
        return path;
    }
    let parts = |p: &[u8]| -> Vec<Vec<u8>> {
        p.split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .map(<[u8]>::to_vec)
            .collect()
    };
    let (p, d) = (parts(&path), parts(&dir));
    let shared = p.iter().zip(&d).take_while(|(a, b)| a == b).count();
    if d[shared..].iter().any(|c| c == b"..") {
        return path;
    }
    let mut out: Vec<&[u8]> = vec![b".."; d.len() - shared];
    out.extend(p[shared..].iter().map(Vec::as_slice));
    if out.is_empty() {
        return b".".to_vec();
    }
    out.join(&b'/')
}

/// Writes `entries` as a playlist file in `format`. With `relative_to`, local absolute paths are
/// written relative to that directory; URLs never are.
pub fn write(
    out: &mut dyn Write,
    format: Format,
    entries: &[ExportEntry<'_>],
    relative_to: Option<&[u8]>,
) -> io::Result<()> {
    match format {
        Format::M3u | Format::M3u8 => {
            out.write_all(b"#EXTM3U\n")?;
            for e in entries {
                writeln!(
                    out,
                    "#EXTINF:{},{}",
                    written_secs(e.duration_ms),
                    display(e)
                )?;
                out.write_all(&written_path(e.path, relative_to))?;
                out.write_all(b"\n")?;
            }
        }
        Format::Pls => {
            out.write_all(b"[playlist]\n")?;
            for (i, e) in entries.iter().enumerate() {
                let n = i + 1;
                write!(out, "File{n}=")?;
                out.write_all(&written_path(e.path, relative_to))?;
                writeln!(out)?;
                writeln!(out, "Title{n}={}", display(e))?;
                writeln!(out, "Length{n}={}", written_secs(e.duration_ms))?;
            }
            writeln!(out, "NumberOfEntries={}", entries.len())?;
            writeln!(out, "Version=2")?;
        }
    }
    Ok(())
}

/// Whole seconds, rounded; `-1` for unknown.
fn written_secs(ms: Option<u64>) -> i64 {
    // u64::MAX / 1000 + 1 fits in an i64.
    ms.map_or(-1, |ms| (ms / 1000 + u64::from(ms % 1000 >= 500)) as i64)
}

/// `artist - title`, else the title, else the path's file name; on one line.
fn display(e: &ExportEntry<'_>) -> String {
    fn given(s: Option<&str>) -> Option<&str> {
        s.filter(|s| !s.trim().is_empty())
    }
    let shown = match (given(e.artist), given(e.title)) {
        (Some(artist), Some(title)) => format!("{artist} - {title}"),
        (_, Some(title)) => title.to_owned(),
        _ => {
            let trimmed = e.path.strip_suffix(b"/").unwrap_or(e.path);
            let name = trimmed.rsplit(|&b| b == b'/').next().unwrap_or(trimmed);
            String::from_utf8_lossy(if name.is_empty() { e.path } else { name }).into_owned()
        }
    };
    shown.replace(['\r', '\n'], " ")
}

/// The bytes of a path line. See the module doc for when a path becomes a `file://` URI.
fn written_path(path: &[u8], relative_to: Option<&[u8]>) -> Vec<u8> {
    if !path.starts_with(b"/") {
        // A URL or a foreign path: no line break may pass, and URLs know percent-encoding.
        let mut out = Vec::with_capacity(path.len());
        for &b in path {
            match b {
                b'\r' => out.extend_from_slice(b"%0D"),
                b'\n' => out.extend_from_slice(b"%0A"),
                b => out.push(b),
            }
        }
        return out;
    }
    let fits_a_line = path.trim_ascii().len() == path.len()
        && !path.iter().any(|&b| matches!(b, b'\r' | b'\n' | b'\\'));
    if !fits_a_line {
        return file_uri(path);
    }
    let Some(dir) = relative_to else {
        return path.to_vec();
    };
    let rel = relative(path, dir);
    // Read back, a line starting `#` is a comment, white space at the start is trimmed, and a
    // first component holding `:` reads as a drive or a URL; `./` keeps each a plain path.
    let first = rel.split(|&b| b == b'/').next().unwrap_or(&rel);
    let guard = rel.starts_with(b"#")
        || rel.first().is_some_and(u8::is_ascii_whitespace)
        || first.contains(&b':');
    if guard {
        [&b"./"[..], &rel].concat()
    } else {
        rel
    }
}

/// `file://` and `path` percent-encoded (all but unreserved characters and `/`).
fn file_uri(path: &[u8]) -> Vec<u8> {
    let mut out = b"file://".to_vec();
    for &b in path {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn paths(entries: &[Entry]) -> Vec<&[u8]> {
        entries.iter().map(|e| e.path.as_slice()).collect()
    }

    fn written(format: Format, entries: &[ExportEntry<'_>], rel: Option<&[u8]>) -> Vec<u8> {
        let mut out = Vec::new();
        write(&mut out, format, entries, rel).expect("writing to a Vec");
        out
    }

    #[test]
    fn format_from_extension_and_name() {
        assert_eq!(Format::from_path(b"/a/b.M3U"), Some(Format::M3u));
        assert_eq!(Format::from_path(b"x.m3u8"), Some(Format::M3u8));
        assert_eq!(Format::from_path(b"/a.b/list.Pls"), Some(Format::Pls));
        assert_eq!(Format::from_path(b"/a.pls/list"), None);
        assert_eq!(Format::from_path(b"list.txt"), None);
        assert_eq!(Format::from_path(b"\xff.m3u"), Some(Format::M3u));
        assert_eq!(Format::from_name("m3u8"), Some(Format::M3u8));
        assert_eq!(Format::from_name("pls"), Some(Format::Pls));
        assert_eq!(Format::from_name("xspf"), None);
        for f in [Format::M3u, Format::M3u8, Format::Pls] {
            assert_eq!(Format::from_name(f.as_str()), Some(f));
        }
    }

    fn wide(text: &str, unit: usize, little: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for c in ['\u{feff}'].into_iter().chain(text.chars()) {
            if unit == 4 {
                let n = u32::from(c);
                out.extend(if little {
                    n.to_le_bytes()
                } else {
                    n.to_be_bytes()
                });
            } else {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.extend(if little {
                        u.to_le_bytes()
                    } else {
                        u.to_be_bytes()
                    });
                }
            }
        }
        out
    }

    #[test]
    fn read_takes_wide_text_and_refuses_what_is_no_playlist() {
        let text = "#EXTM3U\r\n/m/été 😀.mp3\r\n\u{feff}/m/b.mp3\n";
        for (unit, little) in [(2, true), (2, false), (4, true), (4, false)] {
            let got = read(&wide(text, unit, little), Format::M3u, b"/").unwrap();
            assert_eq!(
                paths(&got),
                ["/m/été 😀.mp3".as_bytes(), b"/m/b.mp3"],
                "UTF-{} {little}",
                unit * 8
            );
        }
        let refused = |bytes: &[u8], format| read(bytes, format, b"/").unwrap_err();
        assert!(refused(b"/m/a.mp3\0x\n", Format::M3u).contains("NUL"));
        assert!(refused(&wide("/m/a\0.mp3\n", 2, true), Format::M3u).contains("NUL"));
        let mut odd = wide("/m/a.mp3\n", 2, true);
        odd.push(b'/');
        assert!(refused(&odd, Format::M3u).contains("middle of a character"));
        let long = format!("/m/{}.mp3\n", "a".repeat(MAX_LINE));
        assert!(refused(long.as_bytes(), Format::M3u8).contains("line 1 is"));
        // What the text says wins over the name; a PLS file must hold an entry.
        let pls = read(b"[playlist]\nFile1=/m/a.mp3\n", Format::M3u, b"/").unwrap();
        assert_eq!(paths(&pls), [b"/m/a.mp3"]);
        let m3u = read(b"#EXTM3U\n/m/a.mp3\n", Format::Pls, b"/").unwrap();
        assert_eq!(paths(&m3u), [b"/m/a.mp3"]);
        assert!(refused(b"/m/a.mp3\n", Format::Pls).contains("no FileN= entry"));
        assert!(refused(b"[other]\nFile1=/m/a.mp3\n", Format::Pls).contains("no FileN="));
        assert_eq!(
            read(b"[playlist]\nNumberOfEntries=0\n", Format::Pls, b"/").map(|e| e.len()),
            Err("it has no FileN= entry in a [playlist] section".into())
        );
        assert_eq!(read(b"", Format::Pls, b"/"), Ok(Vec::new()));
    }

    #[test]
    fn latin1_m3u_name_is_decoded() {
        let got = parse(b"/music/caf\xe9.mp3\n", Format::M3u, b"/");
        assert_eq!(paths(&got), [&b"/music/caf\xc3\xa9.mp3"[..]]);
        // Valid UTF-8 is read as UTF-8, not re-encoded.
        let got = parse("/music/café.mp3\n".as_bytes(), Format::M3u, b"/");
        assert_eq!(paths(&got), ["/music/café.mp3".as_bytes()]);
        let got = parse(b"File1=/caf\xe9\nTitle1=Caf\xe9\n", Format::Pls, b"/");
        assert_eq!(got[0].title.as_deref(), Some("Café"));
        // The exact bytes stay at hand too, for a name that is not UTF-8 on disk; a line that
        // Latin-1 leaves alone has none.
        let got = parse(b"/music/caf\xe9.mp3\n/music/plain.mp3\n", Format::M3u, b"/");
        assert_eq!(got[0].raw_path.as_deref(), Some(&b"/music/caf\xe9.mp3"[..]));
        assert_eq!(got[1].raw_path, None);
        let got = parse(b"File1=/caf\xe9\n", Format::Pls, b"/");
        assert_eq!(got[0].raw_path.as_deref(), Some(&b"/caf\xe9"[..]));
    }

    #[test]
    fn m3u8_bom_is_stripped_and_bytes_kept() {
        let got = parse(b"\xEF\xBB\xBF#EXTM3U\n/a.mp3\n", Format::M3u8, b"/");
        assert_eq!(paths(&got), [&b"/a.mp3"[..]]);
        // Not UTF-8, though it should be: the path keeps its bytes.
        let got = parse(b"/caf\xe9.mp3\n", Format::M3u8, b"/");
        assert_eq!(paths(&got), [&b"/caf\xe9.mp3"[..]]);
    }

    #[test]
    fn crlf_cr_and_lf_end_lines_and_blank_lines_are_skipped() {
        let got = parse(b"/a\r\n\r\n/b\r/c\n\n  \n/d", Format::M3u, b"/");
        assert_eq!(paths(&got), [&b"/a"[..], b"/b", b"/c", b"/d"]);
        let got = parse(b"[playlist]\r\nFile1=/a\r\nFile2=/b\r", Format::Pls, b"/");
        assert_eq!(paths(&got), [&b"/a"[..], b"/b"]);
    }

    #[test]
    fn relative_paths_resolve_against_base_dir() {
        let got = parse(
            b"../x.mp3\nsub\\a.mp3\n./b//c.mp3\n../../../../up.mp3\n",
            Format::M3u,
            b"/music/lists",
        );
        assert_eq!(
            paths(&got),
            [
                &b"/music/x.mp3"[..],
                b"/music/lists/sub/a.mp3",
                b"/music/lists/b/c.mp3",
                b"/up.mp3",
            ]
        );
        let got = parse(b"File1=../x.mp3\n", Format::Pls, b"/music/lists/");
        assert_eq!(paths(&got), [&b"/music/x.mp3"[..]]);
    }

    #[test]
    fn file_uris_are_percent_decoded() {
        let got = parse(
            b"file:///a%20b\nfile://localhost/x\nFILE:///m/caf%C3%A9%2Fz\nfile:///p/%e9%zz%4\n\
              file:/short/../s\nfile:///C:/Music/a%20b.mp3\nfile://server/share/x\n\
              file:///m/a%00b.mp3\nfile:///A%3A/b\n",
            Format::M3u,
            b"/base",
        );
        assert_eq!(
            paths(&got),
            [
                &b"/a b"[..],
                b"/x",
                "/m/café/z".as_bytes(),
                b"/p/\xe9%zz%4",
                b"/s",
                b"C:/Music/a b.mp3",
                b"file://server/share/x",
                // No NUL entry; a drive only with its colon as written.
                b"/A:/b",
            ]
        );
    }

    #[test]
    fn urls_and_windows_paths_are_kept_unresolved() {
        let got = parse(
            b"http://radio.example/a/../s%20t.mp3\nrtsp+x://h/a\nC:\\Music\\a.mp3\nd:\n\
              \\\\server\\share\\a.mp3\na:b.mp3\n",
            Format::M3u,
            b"/base",
        );
        assert_eq!(
            paths(&got),
            [
                &b"http://radio.example/a/../s%20t.mp3"[..],
                b"rtsp+x://h/a",
                b"C:/Music/a.mp3",
                b"d:",
                b"//server/share/a.mp3",
                b"/base/a:b.mp3",
            ]
        );
    }

    #[test]
    fn extinf_describes_the_next_entry_only() {
        let file = b"#EXTM3U\n\
            #EXTINF:123,  Artist - Song  \n\
            #EXTGRP:ignored\n\
            /a.mp3\n\
            /b.mp3\n\
            #EXTINF:-1,Stream\n\
            http://s/x\n\
            #EXTINF:abc,Bad length\n\
            /c.mp3\n\
            #EXTINF:12.6 tvg-name=\"x,y\" group-title=\"g\",Quoted, with comma\n\
            /d.mp3\n\
            #EXTINF:7\n\
            /e.mp3\n\
            #EXTINF:1,Lost\n\
            #extinf:2,Replaces\n\
            /f.mp3\n\
            #EXTINF:3,Dangling at the end\n";
        let got = parse(file, Format::M3u8, b"/");
        let info: Vec<(&[u8], Option<&str>, Option<i64>)> = got
            .iter()
            .map(|e| (e.path.as_slice(), e.title.as_deref(), e.duration_secs))
            .collect();
        assert_eq!(
            info,
            [
                (&b"/a.mp3"[..], Some("Artist - Song"), Some(123)),
                (b"/b.mp3", None, None),
                (b"http://s/x", Some("Stream"), None),
                (b"/c.mp3", Some("Bad length"), None),
                (b"/d.mp3", Some("Quoted, with comma"), Some(13)),
                (b"/e.mp3", None, Some(7)),
                (b"/f.mp3", Some("Replaces"), Some(2)),
            ]
        );
    }

    #[test]
    fn pls_entries_follow_their_numbers() {
        let file = b"; comment\n\
            [Playlist]\n\
            NumberOfEntries=99\n\
            file10=/ten\n\
            File2=/two\n\
            TITLE2= Two \n\
            Length2=200\n\
            File99999999999999999999=/huge\n\
            File1=/one\n\
            Length1=-1\n\
            Title3=no file, so no entry\n\
            File007=/seven\n\
            Filex=/not-a-number\n\
            File=/no-number\n\
            File4=\n\
            Version=2\n\
            [other]\n\
            File5=/other-section\n";
        let got = parse(file, Format::Pls, b"/");
        assert_eq!(
            paths(&got),
            [&b"/one"[..], b"/two", b"/seven", b"/ten", b"/huge"]
        );
        assert_eq!(got[0].duration_secs, None);
        assert_eq!(got[1].title.as_deref(), Some("Two"));
        assert_eq!(got[1].duration_secs, Some(200));
    }

    #[test]
    fn m3u_is_written_with_extinf_lines() {
        let entries = [
            ExportEntry {
                path: b"/m/a.flac",
                artist: Some("Art"),
                title: Some("Song"),
                duration_ms: Some(61_500),
            },
            ExportEntry {
                path: b"/m/b\xff.mp3",
                title: Some("Only title"),
                duration_ms: Some(1_499),
                ..ExportEntry::default()
            },
            ExportEntry {
                path: b"/m/c.mp3",
                artist: Some("Artist alone"),
                ..ExportEntry::default()
            },
            ExportEntry {
                path: b"http://radio/live",
                ..ExportEntry::default()
            },
        ];
        let expected: &[u8] = b"#EXTM3U\n\
            #EXTINF:62,Art - Song\n/m/a.flac\n\
            #EXTINF:1,Only title\n/m/b\xff.mp3\n\
            #EXTINF:-1,c.mp3\n/m/c.mp3\n\
            #EXTINF:-1,live\nhttp://radio/live\n";
        assert_eq!(written(Format::M3u, &entries, None), expected);
        assert_eq!(written(Format::M3u8, &entries, None), expected);
    }

    #[test]
    fn pls_is_written_numbered() {
        let entries = [
            ExportEntry {
                path: b"/m/a.flac",
                title: Some("A"),
                duration_ms: Some(500),
                ..ExportEntry::default()
            },
            ExportEntry {
                path: b"/m/b.mp3",
                ..ExportEntry::default()
            },
        ];
        let got = written(Format::Pls, &entries, Some(b"/m"));
        assert_eq!(
            String::from_utf8(got).expect("UTF-8"),
            "[playlist]\nFile1=a.flac\nTitle1=A\nLength1=1\n\
             File2=b.mp3\nTitle2=b.mp3\nLength2=-1\nNumberOfEntries=2\nVersion=2\n"
        );
    }

    #[test]
    fn titles_cannot_inject_lines() {
        let entries = [ExportEntry {
            path: b"/a.mp3",
            artist: Some("x\r\n/etc/passwd"),
            title: Some("t\rFile2=/evil\nLength1=9"),
            duration_ms: None,
        }];
        for format in [Format::M3u8, Format::Pls] {
            let got = parse(&written(format, &entries, None), format, b"/");
            assert_eq!(paths(&got), [&b"/a.mp3"[..]], "{format:?}");
            assert_eq!(
                got[0].title.as_deref(),
                Some("x  /etc/passwd - t File2=/evil Length1=9")
            );
            assert_eq!(got[0].duration_secs, None);
        }
    }

    #[test]
    fn paths_that_cannot_be_a_line_are_written_as_file_uris() {
        let odd: [&[u8]; 4] = [
            b"/m/new\nline.mp3",
            b"/m/back\\slash",
            b"/m/end ",
            b"/m/\r\xff",
        ];
        let entries: Vec<ExportEntry<'_>> = odd
            .iter()
            .map(|p| ExportEntry {
                path: p,
                ..ExportEntry::default()
            })
            .collect();
        for format in [Format::M3u8, Format::Pls] {
            for rel in [None, Some(&b"/m"[..])] {
                let file = written(format, &entries, rel);
                assert_eq!(paths(&parse(&file, format, b"/m")), odd, "{format:?}");
            }
        }
        let url = [ExportEntry {
            path: b"http://h/a\nb",
            ..ExportEntry::default()
        }];
        let got = parse(&written(Format::M3u8, &url, None), Format::M3u8, b"/");
        assert_eq!(paths(&got), [&b"http://h/a%0Ab"[..]]);
    }

    #[test]
    fn relative_paths_that_would_misread_get_a_dot_slash() {
        let odd: [&[u8]; 3] = [b"/m/#hash.mp3", b"/m/ lead.mp3", b"/m/c:/x.mp3"];
        let entries: Vec<ExportEntry<'_>> = odd
            .iter()
            .map(|p| ExportEntry {
                path: p,
                ..ExportEntry::default()
            })
            .collect();
        let file = written(Format::M3u8, &entries, Some(b"/m"));
        let text = String::from_utf8(file.clone()).expect("UTF-8");
        for line in ["./#hash.mp3", "./ lead.mp3", "./c:/x.mp3"] {
            assert!(text.lines().any(|l| l == line), "{line:?} in {text}");
        }
        assert_eq!(paths(&parse(&file, Format::M3u8, b"/m")), odd);
    }

    fn sample() -> Vec<ExportEntry<'static>> {
        vec![
            ExportEntry {
                path: "/music/Artist/Album/01 Café.flac".as_bytes(),
                artist: Some("Artist"),
                title: Some("Café"),
                duration_ms: Some(241_700),
            },
            ExportEntry {
                path: b"/music/Other/02 b.mp3",
                title: Some("B"),
                duration_ms: None,
                ..ExportEntry::default()
            },
            ExportEntry {
                path: b"/elsewhere/c.ogg",
                ..ExportEntry::default()
            },
            ExportEntry {
                path: b"https://radio.example/stream?x=1",
                title: Some("Radio"),
                ..ExportEntry::default()
            },
        ]
    }

    #[test]
    fn written_files_parse_back() {
        let entries = sample();
        let expected: Vec<Entry> = entries
            .iter()
            .map(|e| Entry {
                path: e.path.to_vec(),
                title: Some(display(e)),
                duration_secs: e.duration_ms.map(|ms| (ms + 500) as i64 / 1000),
                raw_path: None,
            })
            .collect();
        for format in [Format::M3u, Format::M3u8, Format::Pls] {
            let absolute = written(format, &entries, None);
            assert_eq!(parse(&absolute, format, b"/unused"), expected);
            let rel = written(format, &entries, Some(b"/music/Artist"));
            assert!(
                String::from_utf8_lossy(&rel).contains("../Other/02 b.mp3\n"),
                "{format:?}"
            );
            assert_eq!(parse(&rel, format, b"/music/Artist"), expected);
            // Moved with the files, a relative playlist still finds them.
            let moved = parse(&rel, format, b"/srv/music/Artist");
            assert_eq!(moved[1].path, b"/srv/music/Other/02 b.mp3");
        }
    }

    #[test]
    fn normalize_and_relative_are_lexical() {
        let cases: [(&[u8], &[u8]); 9] = [
            (b"/a//b/./c/", b"/a/b/c"),
            (b"/../../a/../b", b"/b"),
            (b"/", b"/"),
            (b"//", b"/"),
            (b"a/../..", b".."),
            (b"./a/./", b"a"),
            (b"a/..", b"."),
            (b"", b""),
            (b"../a/../../b", b"../../b"),
        ];
        for (path, want) in cases {
            assert_eq!(normalize(path), want, "{}", String::from_utf8_lossy(path));
        }
        let cases: [(&[u8], &[u8], &[u8]); 7] = [
            (b"/m/a/x.mp3", b"/m/a", b"x.mp3"),
            (b"/m/b/x.mp3", b"/m/a/", b"../b/x.mp3"),
            (b"/x", b"/m/a", b"../../x"),
            (b"/m/a", b"/m/a", b"."),
            (b"/m", b"/m/a", b".."),
            (b"/m/x", b"rel", b"/m/x"),
            (b"x", b"../d", b"x"),
        ];
        for (path, dir, want) in cases {
            assert_eq!(relative(path, dir), want);
        }
    }

    /// Byte strings built from pieces that reach the parsers' branches, mixed with any byte.
    fn playlist_bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"#EXTINF:".to_vec()),
            Just(b"#EXTM3U".to_vec()),
            Just(b"File".to_vec()),
            Just(b"title".to_vec()),
            Just(b"Length".to_vec()),
            Just(b"99999999999999999999".to_vec()),
            Just(b"=".to_vec()),
            Just(b",".to_vec()),
            Just(b"\"".to_vec()),
            Just(b"[playlist]".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"file://".to_vec()),
            Just(b"%".to_vec()),
            Just(b"C:".to_vec()),
            Just(b"\\".to_vec()),
            Just(b"/".to_vec()),
            Just(b"..".to_vec()),
            Just(b"-1".to_vec()),
            Just(b"1e400".to_vec()),
            Just(BOM.to_vec()),
            prop::collection::vec(any::<u8>(), 0..8),
        ];
        prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn parse_never_panics(
            random in prop::collection::vec(any::<u8>(), 0..512),
            built in playlist_bytes(),
        ) {
            for bytes in [&random, &built] {
                for format in [Format::M3u, Format::M3u8, Format::Pls] {
                    for base in [&b"/base/dir"[..], b"", b"rel"] {
                        for e in parse(bytes, format, base) {
                            prop_assert!(!e.path.is_empty());
                        }
                    }
                }
            }
        }

        #[test]
        fn normalize_is_idempotent(path in prop::collection::vec(
            prop_oneof![Just(b'/'), Just(b'.'), Just(b'a'), any::<u8>()], 0..40,
        )) {
            let once = normalize(&path);
            prop_assert_eq!(normalize(&once), once.clone());
            // And `relative` inverts a join.
            if once.starts_with(b"/") {
                let dir: &[u8] = b"/x/a/b";
                let mut joined = dir.to_vec();
                joined.push(b'/');
                joined.extend(relative(&once, dir));
                prop_assert_eq!(normalize(&joined), once);
            }
        }

        #[test]
        fn a_unix_path_whose_first_name_looks_like_a_drive_survives_m3u8(
            rel in any::<bool>(),
        ) {
            // Written as file:///A%3A/%5C (it holds a backslash), read back as itself and not
            // as the Windows path A:/\.
            let path = b"/A:/\\".to_vec();
            let entries = [ExportEntry { path: &path, ..ExportEntry::default() }];
            let dir: &[u8] = b"/d/e";
            let file = written(Format::M3u8, &entries, rel.then_some(dir));
            let got = parse(&file, Format::M3u8, dir);
            prop_assert_eq!(paths(&got), [path.as_slice()]);
        }

        #[test]
        fn any_absolute_path_survives_m3u8(
            // Any byte but NUL, which no path holds (an entry decoding to one names nothing).
            parts in prop::collection::vec(prop::collection::vec(1u8..=255, 1..6), 1..5),
            rel in any::<bool>(),
        ) {
            let path = normalize(&[&b"/"[..], &parts.join(&b'/')].concat());
            let entries = [ExportEntry { path: &path, ..ExportEntry::default() }];
            let dir: &[u8] = b"/d/e";
            let file = written(Format::M3u8, &entries, rel.then_some(dir));
            let got = parse(&file, Format::M3u8, dir);
            prop_assert_eq!(paths(&got), [path.as_slice()]);
        }
    }
}
