//! Stream properties and tags of TrueAudio files (`.tta`, a lossless codec), which `lofty` does
//! not read.
//!
//! A TrueAudio file may start with an ID3v2 tag; then comes its 22-byte header: `TTA1`, the
//! format (u16), channels (u16), bits per sample (u16), sample rate (u32), the length in samples
//! (u32), all little-endian, and a CRC-32 of those 18 bytes. The audio follows; an ID3v1 tag
//! may end the file. The tags are handed to `lofty` as in [`super::dsf`].

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::record::Record;
use crate::store::format::get_u32;

/// The size of a leading ID3v2 tag in `head` (header, body and footer), if `head` starts with
/// one.
pub(super) fn id3v2_len(head: &[u8]) -> Option<u64> {
    let h = head.get(..10).filter(|h| h.starts_with(b"ID3"))?;
    let size = h[6..10]
        .iter()
        .fold(0u64, |n, &b| n << 7 | u64::from(b & 0x7F));
    let footer = if h[5] & 0x10 != 0 { 10 } else { 0 };
    Some(10 + size + footer)
}

/// Whether `head` (a file's first bytes, as many as were read) starts a TrueAudio file.
pub(super) fn is_tta(head: &[u8]) -> bool {
    let at = id3v2_len(head).unwrap_or(0);
    usize::try_from(at)
        .ok()
        .and_then(|at| head.get(at..at + 4))
        .is_some_and(|magic| magic == b"TTA1")
}

/// CRC-32 (IEEE 802.3, reflected), as the header's checksum is computed.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                crc >> 1 ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Reads `file` as TrueAudio into `out`. `Err` with a one-line message when it is not one; a
/// tag that cannot be read is an error too, with the stream properties kept.
pub(super) fn read(file: &File, out: &mut Record) -> Result<(), String> {
    let len = super::file_len(file)?;
    let mut id3 = [0u8; 10];
    let tag_len = match file.read_exact_at(&mut id3, 0) {
        Ok(()) => id3v2_len(&id3).unwrap_or(0),
        Err(_) => 0,
    };
    let mut h = [0u8; 22];
    if file.read_exact_at(&mut h, tag_len).is_err() || !h.starts_with(b"TTA1") {
        return Err("not a TrueAudio file: no TTA1 header at its start".to_owned());
    }
    if crc32(&h[..18]) != get_u32(&h, 18) {
        return Err("damaged TrueAudio file: its header fails its checksum".to_owned());
    }
    let u16_at = |at: usize| u16::from_le_bytes([h[at], h[at + 1]]);
    let (channels, bits) = (u16_at(6), u16_at(8));
    let (rate, samples) = (get_u32(&h, 10), get_u32(&h, 14));
    out.channels = u8::try_from(channels).ok().filter(|&c| c > 0);
    out.bit_depth = u8::try_from(bits).ok().filter(|&b| b > 0);
    out.sample_rate = Some(rate).filter(|&r| r > 0);
    out.has_cover = Some(false);
    if rate > 0 {
        let ms = u64::from(samples) * 1000 / u64::from(rate);
        out.duration_ms = Some(ms).filter(|&ms| ms > 0);
    }
    let mut v1 = [0u8; 3];
    let has_v1 = len >= tag_len + 22 + 128 && file.read_exact_at(&mut v1, len - 128).is_ok();
    let v1_len = if has_v1 && &v1 == b"TAG" { 128 } else { 0 };
    let cut = frames_held(file, tag_len, len - v1_len, rate, samples);
    if let Some(held) = cut {
        out.duration_ms = Some(held).filter(|&ms| ms > 0);
    }
    if let Some(ms) = out.duration_ms {
        // The stream's average: its bytes (the file without its tags) over its length.
        let stream = len.saturating_sub(tag_len + v1_len);
        out.bitrate = u32::try_from(stream * 8 / ms).ok().filter(|&b| b > 0);
    }
    let tagged = read_tags(file, len, tag_len, v1_len, out);
    if cut.is_some() {
        return Err(
            "file cut short: its frames run past the end of the file; the length is that of \
             the whole frames left"
                .to_owned(),
        );
    }
    tagged
}

/// Frames looked at, at most: a seek table of this many is 4 MiB.
const MAX_FRAMES: u64 = 1 << 20;

/// When the file ends before its frames do (a copy cut short), the length in milliseconds of
/// the whole frames it holds; `None` when every frame is there (or the seek table cannot say).
/// The header is followed by a seek table: each frame's size (u32), then a CRC-32 of them;
/// each frame holds `rate × 256 / 245` samples, the last one the rest.
fn frames_held(file: &File, tag_len: u64, end: u64, rate: u32, samples: u32) -> Option<u64> {
    let per_frame = u64::from(rate) * 256 / 245;
    if per_frame == 0 {
        return None;
    }
    let frames = u64::from(samples).div_ceil(per_frame);
    if frames == 0 || frames > MAX_FRAMES {
        return None;
    }
    let table_at = tag_len + 22;
    let mut table = vec![0u8; usize::try_from(frames * 4).ok()?];
    file.read_exact_at(&mut table, table_at).ok()?;
    let mut at = table_at + frames * 4 + 4;
    let mut whole = 0u64;
    for size in table.chunks_exact(4).map(|s| u64::from(get_u32(s, 0))) {
        at = at.checked_add(size)?;
        if at > end {
            break;
        }
        whole += 1;
    }
    (whole < frames).then(|| whole * per_frame * 1000 / u64::from(rate))
}

/// The tag at the start (ID3v2) or, without one, the one at the end (APEv2, as ffmpeg writes,
/// else ID3v1).
fn read_tags(
    file: &File,
    len: u64,
    tag_len: u64,
    v1_len: u64,
    out: &mut Record,
) -> Result<(), String> {
    if tag_len == 0
        && let Some((at, n)) = ape_tag(file, len - v1_len)
    {
        return super::dsf::read_ape(file, at, n, out)
            .map_err(|e| format!("TrueAudio file's APEv2 tag: {e}"));
    }
    let n = match (tag_len, v1_len) {
        (0, 0) => return Ok(()),
        (0, _) => {
            let mut tag = [0u8; 128];
            file.read_exact_at(&mut tag, len - 128)
                .map_err(|e| format!("TrueAudio file's ID3v1 tag cannot be read: {e}"))?;
            id3v1(&tag, out);
            return Ok(());
        }
        (n, _) => n,
    };
    if n > super::dsf::MAX_TAG {
        return Err(format!(
            "TrueAudio file's ID3v2 tag of {n} bytes is over the {}-byte limit; not read",
            super::dsf::MAX_TAG
        ));
    }
    super::dsf::read_id3(file, 0, n, out).map_err(|e| format!("TrueAudio file's tag: {e}"))
}

/// Where the APEv2 tag ending at `end` starts and how long it is (its header included): its
/// 32-byte footer holds `APETAGEX`, the version, the size of the items and footer, the item
/// count and flags (bit 31: a header comes first).
fn ape_tag(file: &File, end: u64) -> Option<(u64, u64)> {
    let mut f = [0u8; 32];
    file.read_exact_at(&mut f, end.checked_sub(32)?).ok()?;
    if &f[..8] != b"APETAGEX" {
        return None;
    }
    let size = u64::from(get_u32(&f, 12));
    let header = if get_u32(&f, 20) & 1 << 31 != 0 {
        32
    } else {
        0
    };
    let n = size.checked_add(header)?;
    (n <= super::dsf::MAX_TAG).then_some(())?;
    Some((end.checked_sub(n)?, n))
}

/// The fields of an ID3v1 tag (128 bytes: `TAG`, then title, artist and album of 30 Latin-1
/// bytes each, NUL-padded, the year in 4, a comment of 30 whose last byte is the track when the
/// one before it is 0 (ID3v1.1), and a genre number).
fn id3v1(tag: &[u8; 128], out: &mut Record) {
    let text = |from: usize, len: usize| {
        let latin1: String = tag[from..from + len]
            .iter()
            .map(|&b| char::from(b))
            .collect();
        super::clean(&latin1)
    };
    out.title = text(3, 30);
    out.artists = text(33, 30).into_iter().collect();
    out.album = text(63, 30);
    out.year = text(93, 4).and_then(|y| y.parse().ok());
    out.track = (tag[125] == 0 && tag[126] != 0).then(|| u32::from(tag[126]));
    out.genres = (tag[127] != 255)
        .then(|| super::genre_name(&tag[127].to_string()))
        .filter(|g| !g.is_empty() && !g.bytes().all(|b| b.is_ascii_digit()))
        .into_iter()
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::tags::own_reader_tests::{read_bytes, survives_damage};

    /// A TrueAudio file of `samples` samples, 44.1 kHz stereo 16-bit, with `front` before it and
    /// `back` after its audio: a seek table, then 1,000 bytes a frame (46,080 samples).
    fn tta(samples: u32, front: &[u8], back: &[u8]) -> Vec<u8> {
        let mut h = b"TTA1".to_vec();
        for v in [1u16, 2, 16] {
            h.extend(v.to_le_bytes());
        }
        h.extend(44_100u32.to_le_bytes());
        h.extend(samples.to_le_bytes());
        let crc = crc32(&h);
        h.extend(crc.to_le_bytes());
        let frames = samples.div_ceil(46_080) as usize;
        let mut table: Vec<u8> = (0..frames).flat_map(|_| 1000u32.to_le_bytes()).collect();
        let crc = crc32(&table);
        table.extend(crc.to_le_bytes());
        [front, &h, &table, &vec![0x5A; 1000 * frames], back].concat()
    }

    fn id3v1(title: &str) -> Vec<u8> {
        let mut t = b"TAG".to_vec();
        t.extend(title.as_bytes());
        t.resize(127, 0);
        t.push(255);
        t
    }

    #[test]
    fn the_header_gives_the_stream_and_the_tags_come_from_either_end() {
        // TagLib's empty.tta: 162,496 samples at 44.1 kHz are 3,684.7 ms.
        let (r, rec) = read_bytes(read, &tta(162_496, &[], &[]));
        r.unwrap();
        assert_eq!(rec.duration_ms, Some(3_684));
        assert_eq!(
            (rec.sample_rate, rec.channels, rec.bit_depth),
            (Some(44_100), Some(2), Some(16))
        );
        assert_eq!(rec.bitrate, Some((22 + 20 + 4000) * 8 / 3_684));
        assert_eq!(rec.title, None);

        let mut body = vec![3u8];
        body.extend(b"From ID3v2");
        let front = super::super::tests::id3v23(&[(b"TIT2", &body)]);
        let (r, rec) = read_bytes(read, &tta(44_100, &front, &id3v1("From ID3v1")));
        r.unwrap();
        assert_eq!(rec.title.as_deref(), Some("From ID3v2"));
        assert_eq!(rec.duration_ms, Some(1_000));
        let (r, rec) = read_bytes(read, &tta(44_100, &[], &id3v1("From ID3v1")));
        r.unwrap();
        assert_eq!(rec.title.as_deref(), Some("From ID3v1"));
        assert!(is_tta(&tta(1, &front, &[])));
        assert!(!is_tta(b"TTA2"));
    }

    /// An APEv2 tag (header, `items`, footer), as ffmpeg writes one.
    fn ape(items: &[(&str, &str)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (k, v) in items {
            body.extend((v.len() as u32).to_le_bytes());
            body.extend(0u32.to_le_bytes());
            body.extend(k.as_bytes());
            body.push(0);
            body.extend(v.as_bytes());
        }
        let frame = |flags: u32| {
            let mut f = b"APETAGEX".to_vec();
            f.extend(2000u32.to_le_bytes());
            f.extend((body.len() as u32 + 32).to_le_bytes());
            f.extend((items.len() as u32).to_le_bytes());
            f.extend(flags.to_le_bytes());
            f.extend([0u8; 8]);
            f
        };
        [frame(0xA000_0000), body.clone(), frame(0x8000_0000)].concat()
    }

    #[test]
    fn an_apev2_tag_at_the_end_is_read() {
        let tag = ape(&[("Title", "APE Title"), ("Artist", "APE Artist")]);
        let (r, rec) = read_bytes(read, &tta(44_100, &[], &tag));
        r.unwrap();
        assert_eq!(rec.title.as_deref(), Some("APE Title"));
        assert_eq!(rec.artists, ["APE Artist"]);
        assert_eq!(rec.duration_ms, Some(1_000));
    }

    #[test]
    fn a_file_cut_short_has_the_length_of_its_whole_frames() {
        let whole = tta(162_496, &[], &[]);
        // Two whole frames of four, and half the third.
        let (r, rec) = read_bytes(read, &whole[..whole.len() - 1500]);
        assert!(r.unwrap_err().starts_with("file cut short"));
        assert_eq!(rec.duration_ms, Some(2 * 46_080 * 1000 / 44_100));
        assert_eq!(rec.sample_rate, Some(44_100));
    }

    #[test]
    fn a_damaged_header_is_an_error_and_nothing_panics() {
        let mut bad = tta(44_100, &[], &[]);
        bad[12] ^= 1;
        let (r, _) = read_bytes(read, &bad);
        assert!(r.unwrap_err().contains("checksum"));
        assert!(read_bytes(read, b"TTA").0.is_err());
        survives_damage(read, &tta(44_100, &[], &id3v1("T"))[..200], 1, 11);
    }
}
