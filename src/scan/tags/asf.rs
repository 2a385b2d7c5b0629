//! Tags and stream properties of ASF files (`.wma`, `.wmv`, `.asf`), which `lofty` does not
//! read.
//!
//! An ASF file begins with a Header Object that holds a list of objects, each a 16-byte GUID and
//! a 64-bit size. The ones read here: the Content Description (title, author), the Extended
//! Content Description and the Metadata Library inside the Header Extension (`WM/...`
//! attributes), the File Properties (duration) and the first audio Stream Properties (channels,
//! sample rate, bitrate, bit depth). Everything is read with `pread` at offsets checked
//! against the sizes the file gives; an attribute value over [`MAX_VALUE`] bytes (a picture) is
//! skipped, not read, so no file makes this hold more than a few kilobytes.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::record::Record;
use crate::store::format::{get_u32, get_u64};

/// The Header Object's GUID, as its bytes lie in the file.
const HEADER: [u8; 16] = guid(
    0x75B2_2630,
    0x668E,
    0x11CF,
    [0xA6, 0xD9, 0x00, 0xAA, 0x00, 0x62, 0xCE, 0x6C],
);
const FILE_PROPERTIES: [u8; 16] = guid(
    0x8CAB_DCA1,
    0xA947,
    0x11CF,
    [0x8E, 0xE4, 0x00, 0xC0, 0x0C, 0x20, 0x53, 0x65],
);
const STREAM_PROPERTIES: [u8; 16] = guid(
    0xB7DC_0791,
    0xA9B7,
    0x11CF,
    [0x8E, 0xE6, 0x00, 0xC0, 0x0C, 0x20, 0x53, 0x65],
);
const CONTENT_DESCRIPTION: [u8; 16] = guid(
    0x75B2_2633,
    0x668E,
    0x11CF,
    [0xA6, 0xD9, 0x00, 0xAA, 0x00, 0x62, 0xCE, 0x6C],
);
const EXTENDED_CONTENT_DESCRIPTION: [u8; 16] = guid(
    0xD2D0_A440,
    0xE307,
    0x11D2,
    [0x97, 0xF0, 0x00, 0xA0, 0xC9, 0x5E, 0xA8, 0x50],
);
const HEADER_EXTENSION: [u8; 16] = guid(
    0x5FBF_03B5,
    0xA92E,
    0x11CF,
    [0x8E, 0xE3, 0x00, 0xC0, 0x0C, 0x20, 0x53, 0x65],
);
const METADATA: [u8; 16] = guid(
    0xC5F8_CBEA,
    0x5BAF,
    0x4877,
    [0x84, 0x67, 0xAA, 0x8C, 0x44, 0xFA, 0x4C, 0xCA],
);
const METADATA_LIBRARY: [u8; 16] = guid(
    0x4423_1C94,
    0x9498,
    0x49D1,
    [0xA1, 0x41, 0x1D, 0x13, 0x4E, 0x45, 0x70, 0x54],
);
const AUDIO_MEDIA: [u8; 16] = guid(
    0xF869_9E40,
    0x5B4D,
    0x11CF,
    [0xA8, 0xFD, 0x00, 0x80, 0x5F, 0x5C, 0x44, 0x2B],
);

/// Bytes of one attribute value read at most; larger ones (pictures) are skipped.
const MAX_VALUE: u64 = 64 * 1024;
/// Objects looked at in the header, at most (a real file has a dozen or so).
const MAX_OBJECTS: u32 = 4096;
/// Attributes looked at in one description object, at most.
const MAX_ATTRIBUTES: u32 = 65_535;

/// A GUID's bytes as they lie in the file: the first three fields little-endian.
const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let (a, b, c) = (a.to_le_bytes(), b.to_le_bytes(), c.to_le_bytes());
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// Whether `head` (a file's first bytes) starts an ASF file.
pub(super) fn is_asf(head: &[u8]) -> bool {
    head.starts_with(&HEADER)
}

/// A value of an attribute.
enum Value {
    Text(String),
    Number(u64),
    /// A byte array, or a value too large to read (its name is all that matters).
    Other,
}

impl Value {
    fn text(&self) -> Option<String> {
        match self {
            Value::Text(s) => super::clean(s),
            Value::Number(n) => Some(n.to_string()),
            Value::Other => None,
        }
    }
}

/// Reads `file` as ASF into `out`. `Err` with a one-line message when it is not one or its
/// header is damaged.
pub(super) fn read(file: &File, out: &mut Record) -> Result<(), String> {
    let len = super::file_len(file)?;
    let mut head = [0u8; 30];
    read_at(file, &mut head, 0)
        .map_err(|_| "not an ASF file: shorter than its header".to_owned())?;
    if !is_asf(&head) {
        return Err("not an ASF file: no ASF header object at its start".to_owned());
    }
    let header_size = get_u64(&head, 16);
    let count = get_u32(&head, 24);
    if header_size < 30 || header_size > len {
        return Err(format!(
            "damaged ASF file: its header claims {header_size} bytes of a {len}-byte file"
        ));
    }
    let mut attrs: Vec<(String, Value)> = Vec::new();
    let mut has_cover = false;
    let mut at = 30;
    for _ in 0..count.min(MAX_OBJECTS) {
        let Some((id, size)) = object_at(file, at, header_size) else {
            break;
        };
        let body = at + 24;
        let end = at + size;
        match id {
            CONTENT_DESCRIPTION => content_description(file, body, end, &mut attrs),
            EXTENDED_CONTENT_DESCRIPTION => {
                extended_description(file, body, end, &mut attrs, &mut has_cover);
            }
            HEADER_EXTENSION => header_extension(file, body, end, &mut attrs, &mut has_cover),
            FILE_PROPERTIES => file_properties(file, body, end, out),
            STREAM_PROPERTIES => stream_properties(file, body, end, out),
            _ => {}
        }
        at = end;
    }
    fill(&attrs, out);
    out.has_cover = Some(has_cover);
    Ok(())
}

/// The GUID and size of the object at `at`, if it lies whole before `limit`.
fn object_at(file: &File, at: u64, limit: u64) -> Option<([u8; 16], u64)> {
    let mut h = [0u8; 24];
    if at.checked_add(24)? > limit {
        return None;
    }
    read_at(file, &mut h, at).ok()?;
    let size = get_u64(&h, 16);
    if size < 24 || at.checked_add(size)? > limit {
        return None;
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&h[..16]);
    Some((id, size))
}

/// Title and author: five lengths, then the strings.
fn content_description(file: &File, body: u64, end: u64, attrs: &mut Vec<(String, Value)>) {
    let mut lens = [0u8; 10];
    if body + 10 > end || read_at(file, &mut lens, body).is_err() {
        return;
    }
    let mut at = body + 10;
    for (i, name) in ["Title", "Author", "Copyright", "Description", "Rating"]
        .into_iter()
        .enumerate()
    {
        let n = u64::from(u16::from_le_bytes([lens[2 * i], lens[2 * i + 1]]));
        if at + n > end {
            return;
        }
        if i < 2
            && let Some(s) = utf16_at(file, at, n)
        {
            attrs.push((name.to_owned(), Value::Text(s)));
        }
        at += n;
    }
}

/// `WM/...` attributes: a count, then name, type, value for each.
fn extended_description(
    file: &File,
    body: u64,
    end: u64,
    attrs: &mut Vec<(String, Value)>,
    has_cover: &mut bool,
) {
    let mut n = [0u8; 2];
    if body + 2 > end || read_at(file, &mut n, body).is_err() {
        return;
    }
    let mut at = body + 2;
    for _ in 0..u32::from(u16::from_le_bytes(n)).min(MAX_ATTRIBUTES) {
        let mut len = [0u8; 2];
        if at + 2 > end || read_at(file, &mut len, at).is_err() {
            return;
        }
        let name_len = u64::from(u16::from_le_bytes(len));
        let Some(name) = (at + 2 + name_len <= end)
            .then(|| utf16_at(file, at + 2, name_len))
            .flatten()
        else {
            return;
        };
        let mut tv = [0u8; 4];
        let typed_at = at + 2 + name_len;
        if typed_at + 4 > end || read_at(file, &mut tv, typed_at).is_err() {
            return;
        }
        let ty = u16::from_le_bytes([tv[0], tv[1]]);
        let value_len = u64::from(u16::from_le_bytes([tv[2], tv[3]]));
        let value_at = typed_at + 4;
        if value_at + value_len > end {
            return;
        }
        keep(file, name, ty, value_at, value_len, attrs, has_cover);
        at = value_at + value_len;
    }
}

/// The Metadata and Metadata Library objects inside the Header Extension.
fn header_extension(
    file: &File,
    body: u64,
    end: u64,
    attrs: &mut Vec<(String, Value)>,
    has_cover: &mut bool,
) {
    // Reserved GUID and u16, then the data size and the objects.
    let mut size = [0u8; 4];
    if body + 22 > end || read_at(file, &mut size, body + 18).is_err() {
        return;
    }
    let data_end = (body + 22)
        .saturating_add(u64::from(u32::from_le_bytes(size)))
        .min(end);
    let mut at = body + 22;
    for _ in 0..MAX_OBJECTS {
        let Some((id, size)) = object_at(file, at, data_end) else {
            return;
        };
        if id == METADATA || id == METADATA_LIBRARY {
            metadata_records(file, at + 24, at + size, attrs, has_cover);
        }
        at += size;
    }
}

/// Records of a Metadata or Metadata Library object: language, stream, name length, type,
/// value length (32 bits), name, value.
fn metadata_records(
    file: &File,
    body: u64,
    end: u64,
    attrs: &mut Vec<(String, Value)>,
    has_cover: &mut bool,
) {
    let mut n = [0u8; 2];
    if body + 2 > end || read_at(file, &mut n, body).is_err() {
        return;
    }
    let mut at = body + 2;
    for _ in 0..u32::from(u16::from_le_bytes(n)).min(MAX_ATTRIBUTES) {
        let mut h = [0u8; 12];
        if at + 12 > end || read_at(file, &mut h, at).is_err() {
            return;
        }
        let name_len = u64::from(u16::from_le_bytes([h[4], h[5]]));
        let ty = u16::from_le_bytes([h[6], h[7]]);
        let value_len = u64::from(get_u32(&h, 8));
        let name_at = at + 12;
        let value_at = name_at + name_len;
        let Some(next) = value_at.checked_add(value_len).filter(|&n| n <= end) else {
            return;
        };
        let Some(name) = utf16_at(file, name_at, name_len) else {
            return;
        };
        keep(file, name, ty, value_at, value_len, attrs, has_cover);
        at = next;
    }
}

/// Reads the value of attribute `name` (type `ty`, `len` bytes at `at`) into `attrs`, unless
/// nothing here uses it.
fn keep(
    file: &File,
    name: String,
    ty: u16,
    at: u64,
    len: u64,
    attrs: &mut Vec<(String, Value)>,
    has_cover: &mut bool,
) {
    if name.eq_ignore_ascii_case("WM/Picture") {
        *has_cover |= len > 0;
        return;
    }
    if !USED.iter().any(|u| u.eq_ignore_ascii_case(&name)) {
        return;
    }
    let value = if len > MAX_VALUE {
        Value::Other
    } else {
        match ty {
            0 => utf16_at(file, at, len).map_or(Value::Other, Value::Text),
            2..=5 => {
                let mut b = [0u8; 8];
                let n = len.min(8) as usize;
                if read_at(file, &mut b[..n], at).is_err() {
                    return;
                }
                Value::Number(u64::from_le_bytes(b))
            }
            _ => Value::Other,
        }
    };
    attrs.push((name, value));
}

/// The attribute names [`fill`] reads.
const USED: [&str; 13] = [
    "Title",
    "Author",
    "WM/AlbumTitle",
    "WM/AlbumArtist",
    "WM/Genre",
    "WM/Year",
    "WM/TrackNumber",
    "WM/Track",
    "WM/PartOfSet",
    "WM/IsCompilation",
    "MusicBrainz/Track Id",
    "MusicBrainz/Album Id",
    "WM/MusicBrainz/Album Id",
];

/// The record's tag fields from the attributes, in the order they came.
fn fill(attrs: &[(String, Value)], out: &mut Record) {
    let all = |name: &str| -> Vec<String> {
        let mut values: Vec<String> = Vec::new();
        for (_, v) in attrs.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)) {
            if let Some(s) = v.text()
                && !values.contains(&s)
            {
                values.push(s);
            }
        }
        values
    };
    let first = |name: &str| all(name).into_iter().next();
    out.title = first("Title");
    out.artists = all("Author");
    out.album = first("WM/AlbumTitle");
    out.album_artist = first("WM/AlbumArtist");
    for g in all("WM/Genre") {
        let g = super::genre_name(&g);
        if !out.genres.contains(&g) {
            out.genres.push(g);
        }
    }
    out.year = first("WM/Year").as_deref().and_then(super::year);
    // WM/Track counts from 0; WM/TrackNumber from 1 and wins.
    let track = first("WM/TrackNumber").or_else(|| {
        let zero_based = first("WM/Track")?;
        Some((zero_based.trim().parse::<u32>().ok()? + 1).to_string())
    });
    (out.track, out.track_total) = super::number_pair(track.as_deref(), None);
    (out.disc, out.disc_total) = super::number_pair(first("WM/PartOfSet").as_deref(), None);
    out.compilation = first("WM/IsCompilation").and_then(|v| super::flag(&v));
    out.musicbrainz_track_id = first("MusicBrainz/Track Id");
    out.musicbrainz_album_id =
        first("MusicBrainz/Album Id").or_else(|| first("WM/MusicBrainz/Album Id"));
}

/// Duration: play duration (100 ns units) less the preroll (ms).
fn file_properties(file: &File, body: u64, end: u64, out: &mut Record) {
    let mut d = [0u8; 68];
    if body + 68 > end || read_at(file, &mut d, body).is_err() {
        return;
    }
    let (play, preroll, flags) = (get_u64(&d, 40), get_u64(&d, 56), get_u32(&d, 64));
    // Bit 0: a broadcast, whose duration fields mean nothing.
    if flags & 1 == 0 {
        let ms = (play / 10_000).saturating_sub(preroll);
        out.duration_ms = (ms > 0).then_some(ms);
    }
}

/// The first audio stream's format (a WAVEFORMATEX).
fn stream_properties(file: &File, body: u64, end: u64, out: &mut Record) {
    let mut d = [0u8; 54 + 16];
    if out.sample_rate.is_some() || body + 54 + 16 > end || read_at(file, &mut d, body).is_err() {
        return;
    }
    if d[..16] != AUDIO_MEDIA || get_u32(&d, 40) < 16 {
        return;
    }
    let w = &d[54..];
    let channels = u16::from_le_bytes([w[2], w[3]]);
    let rate = get_u32(w, 4);
    let bytes_per_s = get_u32(w, 8);
    let bits = u16::from_le_bytes([w[14], w[15]]);
    out.channels = u8::try_from(channels).ok().filter(|&c| c > 0);
    out.sample_rate = Some(rate).filter(|&r| r > 0);
    out.bit_depth = u8::try_from(bits).ok().filter(|&b| b > 0);
    out.bitrate = Some(bytes_per_s / 125).filter(|&b| b > 0);
}

/// `len` bytes of UTF-16LE at `at`, up to the first NUL; `None` when they cannot be read.
fn utf16_at(file: &File, at: u64, len: u64) -> Option<String> {
    if len > MAX_VALUE {
        return None;
    }
    let mut b = vec![0u8; len as usize];
    read_at(file, &mut b, at).ok()?;
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    Some(String::from_utf16_lossy(&units))
}

/// `pread` of exactly `buf.len()` bytes.
fn read_at(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    file.read_exact_at(buf, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(id: [u8; 16], body: &[u8]) -> Vec<u8> {
        let mut o = id.to_vec();
        o.extend((24 + body.len() as u64).to_le_bytes());
        o.extend_from_slice(body);
        o
    }

    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16()
            .chain([0])
            .flat_map(u16::to_le_bytes)
            .collect()
    }

    /// An attribute of the Extended Content Description.
    fn attribute(name: &str, ty: u16, value: &[u8]) -> Vec<u8> {
        let name = utf16(name);
        let mut a = (name.len() as u16).to_le_bytes().to_vec();
        a.extend(name);
        a.extend(ty.to_le_bytes());
        a.extend((value.len() as u16).to_le_bytes());
        a.extend_from_slice(value);
        a
    }

    /// A small ASF file: title, author, album, track (a DWORD), genre, a picture, 3.5 s of
    /// 44.1 kHz stereo 16-bit audio at 16,000 bytes/s, and 300 bytes of "data" after the header.
    fn sample() -> Vec<u8> {
        let (title, author) = (utf16("A Title"), utf16("Some Artist"));
        let mut cd = Vec::new();
        for n in [title.len(), author.len(), 0, 0, 0] {
            cd.extend((n as u16).to_le_bytes());
        }
        cd.extend(title);
        cd.extend(author);
        let attrs = [
            attribute("WM/AlbumTitle", 0, &utf16("An Album")),
            attribute("WM/TrackNumber", 3, &7u32.to_le_bytes()),
            attribute("WM/Genre", 0, &utf16("Jazz")),
            attribute("WM/Picture", 1, &[1; 40]),
        ];
        let mut ecd = (attrs.len() as u16).to_le_bytes().to_vec();
        attrs.iter().for_each(|a| ecd.extend(a));
        let mut fp = vec![0u8; 80];
        fp[40..48].copy_from_slice(&(38_000_000u64).to_le_bytes()); // 3.8 s
        fp[56..64].copy_from_slice(&300u64.to_le_bytes()); // preroll 300 ms
        let mut sp = AUDIO_MEDIA.to_vec();
        sp.extend([0u8; 24]);
        sp.extend(18u32.to_le_bytes());
        sp.extend([0u8; 10]);
        sp.extend(0x0161u16.to_le_bytes());
        sp.extend(2u16.to_le_bytes());
        sp.extend(44_100u32.to_le_bytes());
        sp.extend(16_000u32.to_le_bytes());
        sp.extend(4u16.to_le_bytes());
        sp.extend(16u16.to_le_bytes());
        sp.extend([0u8; 2]);
        let objects = [
            object(FILE_PROPERTIES, &fp),
            object(STREAM_PROPERTIES, &sp),
            object(CONTENT_DESCRIPTION, &cd),
            object(EXTENDED_CONTENT_DESCRIPTION, &ecd),
        ];
        let body: Vec<u8> = objects.concat();
        let mut file = HEADER.to_vec();
        file.extend((30 + body.len() as u64).to_le_bytes());
        file.extend((objects.len() as u32).to_le_bytes());
        file.extend([1, 2]);
        file.extend(body);
        file.extend([0x55; 300]);
        file
    }

    fn read_bytes(bytes: &[u8]) -> (Result<(), String>, Record) {
        super::super::tests::read_bytes_with(read, bytes)
    }

    #[test]
    fn tags_and_stream_properties_are_read() {
        let (result, r) = read_bytes(&sample());
        assert_eq!(result, Ok(()));
        assert_eq!(r.title.as_deref(), Some("A Title"));
        assert_eq!(r.artists, ["Some Artist"]);
        assert_eq!(r.album.as_deref(), Some("An Album"));
        assert_eq!(r.genres, ["Jazz"]);
        assert_eq!((r.track, r.track_total), (Some(7), None));
        assert_eq!(r.duration_ms, Some(3_500));
        assert_eq!(
            (r.sample_rate, r.channels, r.bit_depth),
            (Some(44_100), Some(2), Some(16))
        );
        assert_eq!(r.bitrate, Some(128));
        assert_eq!(r.has_cover, Some(true));
    }

    #[test]
    fn not_asf_or_damaged_is_an_error_or_less_never_a_panic() {
        let (result, _) = read_bytes(b"RIFF....WAVE");
        assert!(result.unwrap_err().starts_with("not an ASF file"));
        let good = sample();
        let mut bad = good.clone();
        bad[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(
            read_bytes(&bad)
                .0
                .unwrap_err()
                .starts_with("damaged ASF file")
        );
        // Every prefix, and every byte of the header set to 0xFF and to 0x00 in turn.
        for cut in 0..good.len() {
            let _ = read_bytes(&good[..cut]);
        }
        for i in 0..good.len() - 300 {
            for v in [0x00, 0xFF] {
                let mut b = good.clone();
                b[i] = v;
                let _ = read_bytes(&b);
            }
        }
    }
}
