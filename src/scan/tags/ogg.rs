//! Duration, audio properties and tags of the Ogg files `lofty` does not read: Ogg video
//! (Theora, usually with a Vorbis or Opus sound track: `.ogv`, and `.ogg` files from before
//! `.ogv` was named), FLAC in Ogg, and Ogg files that open with a Skeleton stream. `lofty`
//! reads an Ogg file only when its first stream is Vorbis, Opus or Speex.
//!
//! An Ogg file is a sequence of pages, each `OggS`, a version (0), flags (bit 1: the first page
//! of a stream), a 64-bit granule position, the stream's serial number, a page number, a CRC,
//! a segment count and that many segment sizes, then the segments. A packet ends at a segment
//! shorter than 255 bytes. Every stream's first page comes before any other page and holds
//! the stream's identification header, which names the codec; the stream's second packet is
//! its comment header (Vorbis comments for Theora, Vorbis, Opus, Speex and FLAC).
//!
//! A page's granule position says how far its stream has come: samples for the audio codecs,
//! a frame number for Theora. The duration is the furthest any stream reaches in the pages of
//! the file's last [`TAIL`] bytes (a page is at most [`PAGE_MAX`] bytes), and the audio
//! properties are the first audio stream's. Pages are taken only when their CRC holds, so bytes
//! in a packet that happen to read `OggS` are never taken for a page. The one exception is a
//! last page that runs past the end of the file (a download that stopped), which cannot hold:
//! the file is reported cut short, and the page's header gives the length only when no whole
//! page does (the whole pages reach as far as the file can be played).

use std::fs::File;
use std::os::unix::fs::FileExt;

use lofty::ogg::tag::VorbisComments;
use lofty::tag::Tag;
use lofty::tag::TagExt;

use crate::record::Record;

/// The largest page: a 27-byte header, 255 segment sizes and 255 segments of 255 bytes.
const PAGE_MAX: usize = 27 + 255 + 255 * 255;
/// Bytes read from the file's end for the streams' last granule positions.
const TAIL: u64 = 2 * PAGE_MAX as u64;
/// Pages read from the start at most, for the streams' headers, and how far into the file.
const MAX_HEADER_PAGES: usize = 512;
const MAX_HEADERS: u64 = 8 << 20;
/// Bytes of one comment header kept at most (a larger one holds pictures; the comments before
/// the cut are still read).
const MAX_COMMENT: usize = 4 << 20;
/// Streams followed at most.
const MAX_STREAMS: usize = 16;

/// The CRC of Ogg pages: polynomial 0x04C11DB7, not reflected, starting at 0.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ 0x04C1_1DB7
            } else {
                c << 1
            };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

fn crc(c: u32, bytes: &[u8]) -> u32 {
    bytes.iter().fold(c, |c, &b| {
        (c << 8) ^ CRC_TABLE[((c >> 24) as u8 ^ b) as usize]
    })
}

/// One page, checked: its header fields and its segments.
struct Page<'a> {
    bos: bool,
    /// `None` when no packet ends on the page (the field is all ones).
    granule: Option<u64>,
    serial: u32,
    /// The segment sizes.
    lacing: &'a [u8],
    body: &'a [u8],
    /// Header and body.
    len: usize,
}

/// The page at the start of `b`, if one is there whole and its CRC holds.
fn page(b: &[u8]) -> Option<Page<'_>> {
    if b.get(..5)? != b"OggS\0" {
        return None;
    }
    let segments = usize::from(*b.get(26)?);
    let lacing = b.get(27..27 + segments)?;
    let body_len: usize = lacing.iter().map(|&s| usize::from(s)).sum();
    let len = 27 + segments + body_len;
    let whole = b.get(..len)?;
    let stored = u32::from_le_bytes(whole[22..26].try_into().ok()?);
    // The CRC is of the page with its own field zeroed.
    if crc(crc(crc(0, &whole[..22]), &[0; 4]), &whole[26..]) != stored {
        return None;
    }
    let granule = u64::from_le_bytes(whole[6..14].try_into().ok()?);
    Some(Page {
        bos: whole[5] & 2 != 0,
        granule: (granule != u64::MAX).then_some(granule),
        serial: u32::from_le_bytes(whole[14..18].try_into().ok()?),
        lacing,
        body: &whole[27 + segments..],
        len,
    })
}

/// What a stream's identification header says.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Codec {
    /// Frames per second as a fraction; the granule's low `shift` bits count frames since the
    /// last key frame; `one_less` for streams before version 3.2.1, whose frames count from 0.
    Theora {
        fps_num: u32,
        fps_den: u32,
        shift: u32,
        one_less: bool,
    },
    Vorbis {
        rate: u32,
        channels: u8,
        nominal_bitrate: u32,
    },
    Opus {
        pre_skip: u16,
        channels: u8,
    },
    Flac {
        rate: u32,
        channels: u8,
        bits: u8,
    },
    Speex {
        rate: u32,
        channels: u8,
    },
    /// Skeleton, Dirac, VP8, …: nothing read from it.
    Other,
}

impl Codec {
    fn of(packet: &[u8]) -> Codec {
        Codec::parse(packet).unwrap_or(Codec::Other)
    }

    fn parse(packet: &[u8]) -> Option<Codec> {
        let u32_le = |at: usize| {
            packet
                .get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let u32_be = |at: usize| {
            packet
                .get(at..at + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let byte = |at: usize| packet.get(at).copied();
        if packet.starts_with(b"\x80theora") {
            let (b40, b41) = (byte(40)?, byte(41)?);
            let version = u32::from_be_bytes([0, packet[7], packet[8], packet[9]]);
            Some(Codec::Theora {
                fps_num: u32_be(22)?,
                fps_den: u32_be(26)?,
                shift: u32::from(b40 & 3) << 3 | u32::from(b41 >> 5),
                one_less: version < 0x0003_0201,
            })
        } else if packet.starts_with(b"\x01vorbis") {
            // A signed field: 0 and negative values mean "not given".
            let nominal = u32_le(20)?;
            Some(Codec::Vorbis {
                rate: u32_le(12)?,
                channels: byte(11)?,
                nominal_bitrate: if (nominal as i32) > 0 { nominal } else { 0 },
            })
        } else if packet.starts_with(b"OpusHead") {
            Some(Codec::Opus {
                pre_skip: u16::from_le_bytes([byte(10)?, byte(11)?]),
                channels: byte(9)?,
            })
        } else if packet.starts_with(b"\x7fFLAC") && packet.get(9..13) == Some(b"fLaC") {
            // The STREAMINFO block follows its 4-byte header at 13: sample rate (20 bits),
            // channels - 1 (3 bits) and bits per sample - 1 (5 bits) start at its byte 10.
            let s = packet.get(27..31)?;
            Some(Codec::Flac {
                rate: u32::from(s[0]) << 12 | u32::from(s[1]) << 4 | u32::from(s[2] >> 4),
                channels: (s[2] >> 1 & 7) + 1,
                bits: ((s[2] & 1) << 4 | s[3] >> 4) + 1,
            })
        } else if packet.starts_with(b"Speex   ") {
            Some(Codec::Speex {
                rate: u32_le(36)?,
                channels: u8::try_from(u32_le(48)?).unwrap_or(0),
            })
        } else {
            None
        }
    }

    /// Milliseconds from the stream's start to `granule`.
    fn ms(self, granule: u64) -> Option<u64> {
        let per_s = |units: u64, rate: u32| {
            (rate > 0).then(|| (u128::from(units) * 1000 / u128::from(rate)) as u64)
        };
        match self {
            Codec::Theora {
                fps_num,
                fps_den,
                shift,
                one_less,
            } => {
                if fps_num == 0 || fps_den == 0 || shift >= 64 {
                    return None;
                }
                let key = granule >> shift;
                let since_key = granule & ((1u64 << shift) - 1);
                let frames = key
                    .checked_add(since_key)?
                    .checked_add(u64::from(one_less))?;
                let ms = u128::from(frames) * 1000 * u128::from(fps_den) / u128::from(fps_num);
                u64::try_from(ms).ok()
            }
            Codec::Vorbis { rate, .. } | Codec::Flac { rate, .. } | Codec::Speex { rate, .. } => {
                per_s(granule, rate)
            }
            Codec::Opus { pre_skip, .. } => per_s(
                granule.saturating_sub(u64::from(pre_skip)),
                super::OPUS_RATE,
            ),
            Codec::Other => None,
        }
    }

    fn is_audio(self) -> bool {
        !matches!(self, Codec::Theora { .. } | Codec::Other)
    }

    /// The Vorbis comments in `packet`, if it is this codec's comment header.
    fn comments(self, packet: &[u8]) -> Option<&[u8]> {
        match self {
            Codec::Theora { .. } => packet.strip_prefix(b"\x81theora"),
            Codec::Vorbis { .. } => packet.strip_prefix(b"\x03vorbis"),
            Codec::Opus { .. } => packet.strip_prefix(b"OpusTags"),
            // A metadata block: type 4 is VORBIS_COMMENT.
            Codec::Flac { .. } => packet.get(4..).filter(|_| packet[0] & 0x7f == 4),
            Codec::Speex { .. } => Some(packet),
            Codec::Other => None,
        }
    }
}

/// A stream: its codec, and its second packet as far as it has been read.
struct Stream {
    serial: u32,
    codec: Codec,
    /// Packets ended so far.
    packets: usize,
    comment: Vec<u8>,
    comment_done: bool,
}

/// Whether `head` (a file's first bytes) starts an Ogg file `lofty` does not read: one whose
/// first stream is not Vorbis, Opus or Speex. A first page whose CRC fails is left to `lofty`,
/// which reads pages without checking them.
pub(super) fn is_other_ogg(head: &[u8]) -> bool {
    let Some(first) = page(head) else {
        return false;
    };
    !matches!(
        Codec::of(first_packet(&first)),
        Codec::Vorbis { .. } | Codec::Opus { .. } | Codec::Speex { .. }
    )
}

/// Reads `file` as Ogg into `out`. `Err` with a one-line message when it is not one.
pub(super) fn read(file: &File, out: &mut Record) -> Result<(), String> {
    let len = super::file_len(file)?;
    let mut streams: Vec<Stream> = Vec::new();
    let mut at = 0u64;
    let mut buf = Vec::new();
    let mut resyncs = 0;
    for n in 0..MAX_HEADER_PAGES {
        if at > MAX_HEADERS {
            break;
        }
        let got = read_page(file, &mut buf, at);
        let Some(page) = page(&buf[..got]) else {
            if n == 0 {
                return Err(if buf[..got].starts_with(b"OggS") {
                    "damaged Ogg file: its first page fails its checksum".to_owned()
                } else {
                    "not an Ogg file: no Ogg page at its start".to_owned()
                });
            }
            // Bytes that are no page between two (junk a tagger left, a damaged page): the
            // next page that checks out, a few times and not far, so that the comment header
            // after them is still found.
            match next_capture(file, at + 1).filter(|_| resyncs < MAX_RESYNCS) {
                Some(next) => {
                    resyncs += 1;
                    at = next;
                    continue;
                }
                None => break,
            }
        };
        at += page.len as u64;
        if page.bos {
            if streams.len() < MAX_STREAMS && streams.iter().all(|s| s.serial != page.serial) {
                streams.push(Stream {
                    serial: page.serial,
                    codec: Codec::of(first_packet(&page)),
                    packets: 0,
                    comment: Vec::new(),
                    comment_done: false,
                });
            }
        } else if n == 0 {
            return Err("damaged Ogg file: its first page does not begin a stream".to_owned());
        }
        if let Some(s) = streams.iter_mut().find(|s| s.serial == page.serial) {
            follow_packets(s, &page);
        }
        let waiting = streams
            .iter()
            .any(|s| !s.comment_done && s.codec != Codec::Other);
        if !waiting && !page.bos {
            break;
        }
    }
    out.has_cover = Some(false);

    let audio = streams.iter().find(|s| s.codec.is_audio());
    match audio.map(|s| s.codec) {
        Some(Codec::Vorbis {
            rate,
            channels,
            nominal_bitrate,
        }) => {
            out.sample_rate = Some(rate).filter(|&r| r > 0);
            out.channels = Some(channels).filter(|&c| c > 0);
            out.bitrate = Some(nominal_bitrate / 1000).filter(|&b| b > 0);
        }
        Some(Codec::Opus { channels, .. }) => {
            out.sample_rate = Some(super::OPUS_RATE);
            out.channels = Some(channels).filter(|&c| c > 0);
        }
        Some(Codec::Flac {
            rate,
            channels,
            bits,
        }) => {
            out.sample_rate = Some(rate).filter(|&r| r > 0);
            out.channels = Some(channels);
            out.bit_depth = Some(bits);
        }
        Some(Codec::Speex { rate, channels }) => {
            out.sample_rate = Some(rate).filter(|&r| r > 0);
            out.channels = Some(channels).filter(|&c| c > 0);
        }
        _ => {}
    }

    // Tags: the first stream whose comment header holds any (the audio's and the video's are
    // usually the same).
    for s in &streams {
        let Some(comments) = s.codec.comments(&s.comment) else {
            continue;
        };
        let (tag, has_cover) = vorbis_comments(comments);
        if !tag.is_empty() {
            super::fill_from_tags(&[&tag], out);
            out.has_cover = Some(has_cover);
            break;
        }
    }

    let mut tail = last_granules(file, len, &streams, TAIL);
    if tail.ms.is_none() {
        tail = last_granules(file, len, &streams, 16 * TAIL);
    }
    out.duration_ms = tail.ms.filter(|&ms| ms > 0);
    if tail.cut {
        return Err(CUT.to_owned());
    }
    Ok(())
}

/// The error of an Ogg file whose last page runs past its end.
pub(super) const CUT: &str = "file cut short: its last page runs past the end of the file; the \
                              length is as far as the pages go";

/// The first packet on `page` (or as much of it as the page holds).
fn first_packet<'a>(page: &Page<'a>) -> &'a [u8] {
    let mut end = 0;
    for &s in page.lacing {
        end += usize::from(s);
        if s < 255 {
            break;
        }
    }
    &page.body[..end]
}

/// Adds `page`'s segments to `s`'s second packet, while that is being read.
fn follow_packets(s: &mut Stream, page: &Page) {
    let mut from = 0;
    for &seg in page.lacing {
        let seg = usize::from(seg);
        if s.packets == 1 && !s.comment_done && s.comment.len() < MAX_COMMENT {
            let take = seg.min(MAX_COMMENT - s.comment.len());
            s.comment.extend_from_slice(&page.body[from..from + take]);
        }
        from += seg;
        if seg < 255 {
            s.packets += 1;
            if s.packets == 2 {
                s.comment_done = true;
            }
        }
    }
    if s.comment.len() >= MAX_COMMENT {
        s.comment_done = true;
    }
}

/// Reads into `buf` the page at `at`, as much of it as there is; how many bytes that is.
fn read_page(file: &File, buf: &mut Vec<u8>, at: u64) -> usize {
    buf.resize(27 + 255, 0);
    let got = read_upto(file, buf, at);
    let Some(&segments) = buf[..got].get(26) else {
        return got;
    };
    let lacing = buf.get(27..27 + usize::from(segments)).unwrap_or(&[]);
    let len = 27 + lacing.len() + lacing.iter().map(|&s| usize::from(s)).sum::<usize>();
    if len <= got {
        return got;
    }
    buf.resize(len, 0);
    got + read_upto(file, &mut buf[got..], at + got as u64)
}

/// Times the header pages are looked for again past bytes that are no page.
const MAX_RESYNCS: usize = 4;

/// Bytes searched for the next page's capture pattern.
const RESYNC_WINDOW: usize = 64 << 10;

/// Where the next `OggS` is at or after `from`, within [`RESYNC_WINDOW`] bytes.
fn next_capture(file: &File, from: u64) -> Option<u64> {
    let mut window = vec![0u8; RESYNC_WINDOW];
    let got = read_upto(file, &mut window, from);
    let i = window[..got].windows(4).position(|w| w == b"OggS")?;
    Some(from + i as u64)
}

/// Reads up to `buf.len()` bytes at `at`; what could be read (a failed read reads nothing).
fn read_upto(file: &File, buf: &mut [u8], at: u64) -> usize {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got
}

/// What the pages at the end of a file say.
#[derive(Debug, Default)]
struct Tail {
    /// The furthest any stream reaches, in milliseconds.
    ms: Option<u64>,
    /// Whether the last page runs past the end of the file.
    cut: bool,
}

/// The furthest any of `streams` reaches in the pages of the file's last `tail` bytes.
fn last_granules(file: &File, len: u64, streams: &[Stream], tail: u64) -> Tail {
    let from = len.saturating_sub(tail);
    let Ok(want) = usize::try_from(len - from) else {
        return Tail::default();
    };
    let mut buf = vec![0u8; want];
    let got = read_upto(file, &mut buf, from);
    let buf = &buf[..got];
    let ms_of = |serial: u32, granule: Option<u64>| {
        let s = streams.iter().find(|s| s.serial == serial)?;
        s.codec.ms(granule?)
    };
    let mut best = None;
    // A page of a known stream running past the end, with how far it reaches: kept only if
    // no whole page follows (which would show it was bytes inside a packet).
    let mut cut: Option<Option<u64>> = None;
    let mut i = 0;
    while let Some(off) = find(&buf[i..], b"OggS") {
        let start = i + off;
        if let Some(page) = page(&buf[start..]) {
            best = best.max(ms_of(page.serial, page.granule));
            cut = None;
            i = start + page.len;
        } else {
            if let Some((serial, granule)) = cut_page(&buf[start..])
                && streams.iter().any(|s| s.serial == serial)
            {
                cut = Some(ms_of(serial, granule));
            }
            i = start + 1;
        }
    }
    Tail {
        // What the whole pages reach is what can be played; a cut page's header is taken only
        // when no whole page reaches anywhere.
        ms: best.filter(|&ms| ms > 0).or(cut.flatten()),
        cut: cut.is_some(),
    }
}

/// The serial number and granule position of a page whose header begins `b` and which runs
/// past the end of `b`.
fn cut_page(b: &[u8]) -> Option<(u32, Option<u64>)> {
    if b.get(..5)? != b"OggS\0" {
        return None;
    }
    let header = b.get(..27)?;
    let segments = usize::from(header[26]);
    let len = match b.get(27..27 + segments) {
        Some(lacing) => 27 + segments + lacing.iter().map(|&s| usize::from(s)).sum::<usize>(),
        None => 27 + segments,
    };
    if len <= b.len() {
        return None;
    }
    let granule = u64::from_le_bytes(header[6..14].try_into().ok()?);
    let serial = u32::from_le_bytes(header[14..18].try_into().ok()?);
    Some((serial, (granule != u64::MAX).then_some(granule)))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The tag a Vorbis comment block holds (vendor string, count, `KEY=value` fields), as far as
/// it is whole, and whether it has a picture.
fn vorbis_comments(b: &[u8]) -> (Tag, bool) {
    let mut vc = VorbisComments::default();
    let mut has_cover = false;
    let mut r = b;
    if let Some(vendor) = take_len(&mut r)
        && take(&mut r, vendor).is_some()
        && let Some(count) = take_len(&mut r)
    {
        for _ in 0..count {
            let Some(field) = take_len(&mut r).and_then(|n| take(&mut r, n)) else {
                break;
            };
            let Some((key, value)) = std::str::from_utf8(field)
                .ok()
                .and_then(|f| f.split_once('='))
            else {
                continue;
            };
            let key = key.to_ascii_uppercase();
            if key == "METADATA_BLOCK_PICTURE" || key == "COVERART" {
                has_cover = true;
                continue;
            }
            vc.push(key, value.to_owned());
        }
    }
    (Tag::from(vc), has_cover)
}

/// The first `n` bytes of `r`, which then starts after them.
fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, rest) = (r.get(..n)?, r.get(n..)?);
    *r = rest;
    Some(head)
}

/// A 32-bit little-endian length taken from `r`.
fn take_len(r: &mut &[u8]) -> Option<usize> {
    take(r, 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

#[cfg(test)]
mod tests {
    use super::super::own_reader_tests::{read_bytes, survives_damage};
    use super::*;

    /// A page of one stream holding `packets` whole.
    fn page_of(serial: u32, flags: u8, granule: u64, packets: &[&[u8]]) -> Vec<u8> {
        let mut lacing = Vec::new();
        let mut body = Vec::new();
        for p in packets {
            let mut left = p.len();
            while left >= 255 {
                lacing.push(255);
                left -= 255;
            }
            lacing.push(left as u8);
            body.extend_from_slice(p);
        }
        let mut page = b"OggS\0".to_vec();
        page.push(flags);
        page.extend_from_slice(&granule.to_le_bytes());
        page.extend_from_slice(&serial.to_le_bytes());
        page.extend_from_slice(&0u32.to_le_bytes());
        page.extend_from_slice(&[0; 4]);
        page.push(lacing.len() as u8);
        page.extend_from_slice(&lacing);
        page.extend_from_slice(&body);
        let c = crc(0, &page);
        page[22..26].copy_from_slice(&c.to_le_bytes());
        page
    }

    fn theora_ident(fps_num: u32, fps_den: u32, shift: u8) -> Vec<u8> {
        let mut p = b"\x80theora\x03\x02\x01".to_vec();
        p.extend_from_slice(&[0, 20, 0, 15]); // macroblocks
        p.extend_from_slice(&[0, 1, 64, 0, 0, 240, 0, 0]); // picture size and offset
        p.extend_from_slice(&fps_num.to_be_bytes());
        p.extend_from_slice(&fps_den.to_be_bytes());
        p.extend_from_slice(&[0, 0, 1, 0, 0, 1, 0, 0, 0, 0]); // aspect, colour space, bitrate
        p.push(shift >> 3);
        p.push((shift & 7) << 5);
        p
    }

    fn vorbis_ident(rate: u32, channels: u8) -> Vec<u8> {
        let mut p = b"\x01vorbis".to_vec();
        p.extend_from_slice(&0u32.to_le_bytes());
        p.push(channels);
        p.extend_from_slice(&rate.to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes());
        p.extend_from_slice(&128_000u32.to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes());
        p.extend_from_slice(&[0xb8, 1]);
        p
    }

    fn comments(magic: &[u8], fields: &[&str]) -> Vec<u8> {
        let mut p = magic.to_vec();
        p.extend_from_slice(&6u32.to_le_bytes());
        p.extend_from_slice(b"vendor");
        p.extend_from_slice(&(fields.len() as u32).to_le_bytes());
        for f in fields {
            p.extend_from_slice(&(f.len() as u32).to_le_bytes());
            p.extend_from_slice(f.as_bytes());
        }
        p
    }

    /// A Theora video (25 fps, shift 6) of `frames` frames with a 44.1 kHz stereo Vorbis track
    /// of `samples` samples, tagged in the Theora stream.
    fn sample(frames: u64, samples: u64) -> Vec<u8> {
        let mut f = page_of(7, 2, 0, &[&theora_ident(25, 1, 6)]);
        f.extend(page_of(9, 2, 0, &[&vorbis_ident(44_100, 2)]));
        let tags = comments(
            b"\x81theora",
            &["TITLE=Night bus", "ARTIST=A", "artist=B", "DATE=2009-04-01"],
        );
        f.extend(page_of(7, 0, 0, &[&tags, b"\x82theora setup"]));
        f.extend(page_of(
            9,
            0,
            0,
            &[&comments(b"\x03vorbis", &[]), b"\x05vorbis"],
        ));
        f.extend(page_of(7, 0, 1 << 6, &[&[0u8; 300]]));
        f.extend(page_of(9, 0, 4096, &[&[0u8; 200]]));
        // The last key frame, then frames since it.
        let key = frames - 3;
        f.extend(page_of(7, 4, key << 6 | 3, &[&[0u8; 100]]));
        f.extend(page_of(9, 4, samples, &[&[0u8; 100]]));
        f
    }

    #[test]
    fn theora_with_vorbis_gets_duration_audio_and_tags() {
        let (r, rec) = read_bytes(read, &sample(100, 44_100 * 3));
        r.unwrap();
        // 100 frames at 25 fps: 4 s, longer than the 3 s of sound.
        assert_eq!(rec.duration_ms, Some(4000));
        assert_eq!(rec.sample_rate, Some(44_100));
        assert_eq!(rec.channels, Some(2));
        assert_eq!(rec.bitrate, Some(128));
        assert_eq!(rec.title.as_deref(), Some("Night bus"));
        assert_eq!(rec.artists, ["A", "B"]);
        assert_eq!(rec.year, Some(2009));
        assert_eq!(rec.has_cover, Some(false));
        // The sound track longer than the picture.
        let (_, rec) = read_bytes(read, &sample(100, 44_100 * 5));
        assert_eq!(rec.duration_ms, Some(5000));
    }

    #[test]
    fn a_page_whose_crc_fails_is_not_taken() {
        // The last two pages are 128 bytes each: the video's, then the sound's. A granule
        // position made huge on the video's would be a day long, were its page taken.
        let mut f = sample(100, 1000);
        let video_last = f.len() - 256;
        f[video_last + 12] = 0x7f;
        let (_, rec) = read_bytes(read, &f);
        // The video's earlier page (one frame) and the sound's 4096 samples at 44.1 kHz.
        assert_eq!(rec.duration_ms, Some(92));
        let mut bad_first = sample(100, 1000);
        bad_first[30] ^= 1;
        let (r, _) = read_bytes(read, &bad_first);
        assert!(r.unwrap_err().contains("checksum"));
        let (r, _) = read_bytes(read, b"not ogg at all");
        assert!(r.unwrap_err().contains("not an Ogg file"));
    }

    #[test]
    fn opus_plays_at_48_khz_whatever_its_input_rate() {
        let mut head = b"OpusHead\x01\x02".to_vec();
        head.extend(312u16.to_le_bytes());
        head.extend(44_100u32.to_le_bytes());
        head.extend([0, 0, 0]);
        let mut f = page_of(5, 2, 0, &[&head]);
        f.extend(page_of(
            5,
            0,
            0,
            &[&comments(b"OpusTags", &["TITLE=Input"])],
        ));
        f.extend(page_of(5, 4, 2 * 48_000 + 312, &[&[0xFCu8; 60]]));
        // As `lofty` reads it, and as the reader here does.
        let rec = super::super::tests::extract_bytes("a.opus", &f);
        assert_eq!(rec.error, None);
        assert_eq!(
            (rec.sample_rate, rec.duration_ms),
            (Some(48_000), Some(2_000))
        );
        assert_eq!(rec.title.as_deref(), Some("Input"));
        let (r, rec) = read_bytes(read, &f);
        r.unwrap();
        assert_eq!(
            (rec.sample_rate, rec.duration_ms),
            (Some(48_000), Some(2_000))
        );
    }

    #[test]
    fn a_vorbis_file_lofty_refuses_is_read_here() {
        // Bytes that are no page between the comment header and the setup header, as in
        // music-metadata's issue_62.ogg: `lofty` gives up; the pages here are checked one by
        // one and the length is the last one's.
        let mut f = page_of(3, 2, 0, &[&vorbis_ident(22_050, 2)]);
        f.extend(page_of(
            3,
            0,
            0,
            &[&comments(b"\x03vorbis", &["TITLE=Recitation"])],
        ));
        f.extend([0u8; 57]);
        f.extend(page_of(3, 0, 0, &[b"\x05vorbis setup"]));
        f.extend(page_of(3, 4, 22_050 * 52, &[&[0u8; 100]]));
        let rec = super::super::tests::extract_bytes("recitation.ogg", &f);
        assert_eq!(rec.error, None);
        assert_eq!(rec.duration_ms, Some(52_000));
        assert_eq!((rec.sample_rate, rec.channels), (Some(22_050), Some(2)));
        assert_eq!(rec.title.as_deref(), Some("Recitation"));
        // The junk between the first two pages instead: the comment header after it is
        // still found.
        let mut f = page_of(3, 2, 0, &[&vorbis_ident(22_050, 2)]);
        f.extend(b"junk, then OggS that is no page, then more junk");
        f.extend(page_of(
            3,
            0,
            0,
            &[&comments(b"\x03vorbis", &["TITLE=Recitation"])],
        ));
        f.extend(page_of(3, 0, 0, &[b"\x05vorbis setup"]));
        f.extend(page_of(3, 4, 22_050 * 52, &[&[0u8; 100]]));
        let rec = super::super::tests::extract_bytes("junk-first.ogg", &f);
        assert_eq!(rec.duration_ms, Some(52_000));
        assert_eq!(rec.title.as_deref(), Some("Recitation"));
    }

    #[test]
    fn a_last_page_cut_short_is_reported_with_how_far_it_reaches() {
        // The sound's last page (128 bytes) cut in its body, then in its segment table: the
        // video's last page reaches 4 s, as far as the file plays.
        let whole = sample(100, 44_100 * 5);
        for cut in [whole.len() - 40, whole.len() - 128 + 27] {
            let (r, rec) = read_bytes(read, &whole[..cut]);
            assert_eq!(r, Err(CUT.to_owned()), "cut at {cut}");
            assert_eq!(rec.duration_ms, Some(4000), "cut at {cut}");
            assert_eq!(rec.title.as_deref(), Some("Night bus"));
        }
        // Cut at a page boundary: nothing shows it.
        let (r, rec) = read_bytes(read, &whole[..whole.len() - 128]);
        assert_eq!((r, rec.duration_ms), (Ok(()), Some(4000)));
        // A Vorbis file `lofty` reads, whose only page of sound is cut (as ExifTool's
        // Vorbis.ogg): `lofty` gives no length, and only the cut page's header says one.
        let mut f = page_of(3, 2, 0, &[&vorbis_ident(22_050, 2)]);
        f.extend(page_of(
            3,
            0,
            0,
            &[
                &comments(b"\x03vorbis", &["TITLE=Cut"]),
                b"\x05vorbis setup",
            ],
        ));
        f.extend(page_of(3, 4, 22_050 * 4, &[&[0u8; 200]]));
        let rec = super::super::tests::extract_bytes("cut.ogg", &f[..f.len() - 30]);
        assert_eq!(rec.error.as_deref(), Some(CUT));
        assert_eq!(rec.duration_ms, Some(4000));
        assert_eq!(rec.title.as_deref(), Some("Cut"));
        let rec = super::super::tests::extract_bytes("whole.ogg", &f);
        assert_eq!((rec.error, rec.duration_ms), (None, Some(4000)));
    }

    #[test]
    fn which_ogg_files_are_read_here() {
        assert!(is_other_ogg(&sample(10, 10)));
        let vorbis = page_of(1, 2, 0, &[&vorbis_ident(8000, 1)]);
        assert!(!is_other_ogg(&vorbis));
        assert!(!is_other_ogg(b"RIFF"));
    }

    #[test]
    fn damaged_files_never_panic() {
        survives_damage(read, &sample(100, 44_100), 7, 0x9e37_79b9);
    }
}
