//! Stream properties and tags of the WAVE files `lofty` does not read: RF64 and BW64 (the
//! 64-bit WAVE of broadcast recorders, for files past 4 GiB), compressed WAVE (ADPCM, GSM, …,
//! whose sample size is not a whole number of bytes), and WAVE whose `data` chunk does not fit
//! the file: written to a pipe (its size left at 0 or `0xFFFFFFFF`), still being recorded, or
//! cut short.
//!
//! A WAVE file is `RIFF` (or `RF64`/`BW64`), a size, `WAVE`, then chunks, each a four-byte id,
//! a 32-bit little-endian size and the data, padded to an even length. `fmt ` gives the
//! encoding, channels, sample rate, bytes per second and block size; `fact` the number of
//! samples of a compressed stream; `data` the samples; `LIST` of type `INFO` and `id3 ` the
//! tags. An RF64 file's sizes over 32 bits are in its `ds64` chunk, which comes first. The
//! samples are what of `data` lies inside the file.

use std::fs::File;
use std::io::Cursor;
use std::os::unix::fs::FileExt;

use lofty::config::{ParseOptions, ParsingMode};
use lofty::file::{FileType, TaggedFileExt};
use lofty::iff::wav::RiffInfoList;
use lofty::probe::Probe;
use lofty::tag::{Tag, TagExt};

use crate::record::Record;

/// Chunks looked at, at most.
const MAX_CHUNKS: usize = 1024;
/// Bytes of one tag chunk (`LIST`, `id3 `) read at most; a larger one is not read.
const MAX_TAG: u64 = 16 << 20;

/// Encodings whose samples are a whole number of bytes: PCM, IEEE float, A-law, µ-law.
const PLAIN: [u16; 4] = [1, 3, 6, 7];
/// `fmt `'s encoding when the real one is in its extension (a GUID's first two bytes).
const EXTENSIBLE: u16 = 0xFFFE;

/// Whether `head` (a file's first bytes) starts an RF64 or BW64 file.
pub(super) fn is_rf64(head: &[u8]) -> bool {
    (head.starts_with(b"RF64") || head.starts_with(b"BW64")) && head.get(8..12) == Some(b"WAVE")
}

/// Whether `head` starts a WAVE file of any of the three kinds.
pub(super) fn is_wave(head: &[u8]) -> bool {
    is_rf64(head) || head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WAVE")
}

/// The `fmt ` chunk's fields.
#[derive(Clone, Copy)]
struct Format {
    encoding: u16,
    channels: u16,
    rate: u32,
    bytes_per_s: u32,
    block: u16,
    bits: u16,
}

/// Reads `file` as WAVE into `out`: stream properties and tags. `Err` with a one-line message
/// when it is not WAVE or has no usable `fmt ` chunk.
pub(super) fn read(file: &File, out: &mut Record) -> Result<(), String> {
    let len = super::file_len(file)?;
    let mut head = [0u8; 12];
    if file.read_exact_at(&mut head, 0).is_err() || !is_wave(&head) {
        return Err("not a WAVE file: no RIFF, RF64 or BW64 header at its start".to_owned());
    }
    let rf64 = is_rf64(&head);
    let (mut format, mut samples, mut data, mut ds64_data) = (None, None, None, None);
    let (mut info, mut id3) = (None, None);
    let mut at = 12u64;
    for _ in 0..MAX_CHUNKS {
        let mut h = [0u8; 8];
        if file.read_exact_at(&mut h, at).is_err() {
            break;
        }
        let id = [h[0], h[1], h[2], h[3]];
        let size = u64::from(u32::from_le_bytes([h[4], h[5], h[6], h[7]]));
        let body = at + 8;
        match &id {
            b"ds64" if rf64 => {
                let mut d = [0u8; 24];
                if file.read_exact_at(&mut d, body).is_ok() {
                    ds64_data = Some(u64::from_le_bytes(d[8..16].try_into().unwrap_or([0; 8])));
                    let count = u64::from_le_bytes(d[16..24].try_into().unwrap_or([0; 8]));
                    samples = samples.or(Some(count).filter(|&c| c > 0));
                }
            }
            b"fmt " => {
                let mut f = [0u8; 40];
                let n = usize::try_from(size.min(40)).unwrap_or(0);
                if n >= 16 && file.read_exact_at(&mut f[..n], body).is_ok() {
                    let u16_at = |i: usize| u16::from_le_bytes([f[i], f[i + 1]]);
                    let u32_at =
                        |i: usize| u32::from_le_bytes([f[i], f[i + 1], f[i + 2], f[i + 3]]);
                    let encoding = match u16_at(0) {
                        EXTENSIBLE if n >= 26 => u16_at(24),
                        e => e,
                    };
                    format = Some(Format {
                        encoding,
                        channels: u16_at(2),
                        rate: u32_at(4),
                        bytes_per_s: u32_at(8),
                        block: u16_at(12),
                        bits: u16_at(14),
                    });
                }
            }
            b"fact" => {
                let mut c = [0u8; 4];
                if file.read_exact_at(&mut c, body).is_ok() {
                    samples = samples.or(Some(u64::from(u32::from_le_bytes(c))).filter(|&c| c > 0));
                }
            }
            b"data" => {
                let claimed = match (size, ds64_data) {
                    (0xFFFF_FFFF, Some(big)) => big,
                    _ => size,
                };
                let there = len.saturating_sub(body);
                // Unknown (0, or all ones when written to a pipe) or past the end: what is there.
                let bytes = if claimed == 0 || claimed == 0xFFFF_FFFF || claimed > there {
                    there
                } else {
                    claimed
                };
                data = Some(bytes);
                if bytes < claimed || claimed == 0 {
                    break; // nothing after it can be found
                }
                at = body.saturating_add(bytes + (bytes & 1));
                continue;
            }
            b"LIST" if size <= MAX_TAG => {
                let mut kind = [0u8; 4];
                if file.read_exact_at(&mut kind, body).is_ok() && &kind == b"INFO" {
                    info = read_chunk(file, body + 4, size.saturating_sub(4));
                }
            }
            b"id3 " | b"ID3 " if size <= MAX_TAG => id3 = read_chunk(file, body, size),
            _ => {}
        }
        at = body.saturating_add(size + (size & 1));
        if at >= len {
            break;
        }
    }
    let format = format.ok_or("damaged WAVE file: no fmt chunk before its data")?;

    out.has_cover = Some(false);
    out.sample_rate = Some(format.rate).filter(|&r| r > 0);
    out.channels = u8::try_from(format.channels).ok().filter(|&c| c > 0);
    let plain = PLAIN.contains(&format.encoding);
    if plain {
        out.bit_depth = u8::try_from(format.bits).ok().filter(|&b| b > 0);
    }
    out.bitrate = Some(u64::from(format.bytes_per_s) * 8 / 1000)
        .and_then(|k| u32::try_from(k).ok())
        .filter(|&k| k > 0);
    let ms = match (plain, data, samples) {
        (true, Some(bytes), _) if format.block > 0 && format.rate > 0 => {
            let frames = bytes / u64::from(format.block);
            Some(u128::from(frames) * 1000 / u128::from(format.rate))
        }
        // A compressed stream's own count, unless the file holds less than it says.
        (false, Some(bytes), Some(n)) if format.rate > 0 => {
            let by_count = u128::from(n) * 1000 / u128::from(format.rate);
            let by_size = by_bytes(bytes, format.bytes_per_s);
            Some(by_size.map_or(by_count, |s| by_count.min(s + 1000)))
        }
        (false, Some(bytes), _) => by_bytes(bytes, format.bytes_per_s),
        _ => None,
    };
    out.duration_ms = ms
        .and_then(|ms| u64::try_from(ms).ok())
        .filter(|&ms| ms > 0);
    // A compressed stream's bytes per second in `fmt ` are a writer's estimate (ffmpeg's
    // ADPCM says 16,000 whatever the rate): its size over its duration is what it is.
    if !plain && let (Some(bytes), Some(ms)) = (data, out.duration_ms) {
        out.bitrate = u32::try_from(bytes.saturating_mul(8) / ms)
            .ok()
            .filter(|&k| k > 0);
    }

    if let Some(tag) = id3.as_deref().and_then(id3_tag) {
        super::fill_tags(&tag, out);
        out.has_cover = Some(tag.tags().iter().any(|t| t.picture_count() > 0));
    } else if let Some(tag) = info.as_deref().map(info_tag).filter(|t| !t.is_empty()) {
        super::fill_from_tags(&[&tag], out);
    }
    Ok(())
}

/// Milliseconds that `bytes` of a stream at `bytes_per_s` last.
fn by_bytes(bytes: u64, bytes_per_s: u32) -> Option<u128> {
    (bytes_per_s > 0).then(|| u128::from(bytes) * 1000 / u128::from(bytes_per_s))
}

/// The `len` bytes at `at`, if they are all there.
fn read_chunk(file: &File, at: u64, len: u64) -> Option<Vec<u8>> {
    let mut b = vec![0u8; usize::try_from(len).ok()?];
    file.read_exact_at(&mut b, at).ok()?;
    Some(b)
}

/// An `id3 ` chunk's ID3v2 tag, read by `lofty` as an MP3 file holding nothing else.
fn id3_tag(bytes: &[u8]) -> Option<lofty::file::TaggedFile> {
    let options = ParseOptions::new()
        .parsing_mode(ParsingMode::Relaxed)
        .read_properties(false)
        .read_cover_art(true);
    Probe::with_file_type(Cursor::new(bytes), FileType::Mpeg)
        .options(options)
        .read()
        .ok()
        .filter(|t| !t.tags().is_empty())
}

/// The tag an `INFO` list holds: sub-chunks of four-letter keys (`INAM`, `IART`, …) and
/// NUL-terminated text.
fn info_tag(mut b: &[u8]) -> Tag {
    let mut list = RiffInfoList::default();
    while b.len() >= 8 {
        let key = &b[..4];
        let size = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
        let Some(value) = b.get(8..8 + size) else {
            break;
        };
        if let (Ok(key), Ok(value)) = (std::str::from_utf8(key), std::str::from_utf8(value)) {
            let value = value.trim_end_matches('\0');
            if key.bytes().all(|c| c.is_ascii_alphanumeric()) && !value.is_empty() {
                list.insert(key.to_owned(), value.to_owned());
            }
        }
        b = b.get(8 + size + (size & 1)..).unwrap_or(&[]);
    }
    Tag::from(list)
}

#[cfg(test)]
mod tests {
    use super::super::own_reader_tests::{read_bytes, survives_damage};
    use super::*;

    fn chunk(id: &[u8; 4], body: &[u8], size: Option<u32>) -> Vec<u8> {
        let mut c = id.to_vec();
        c.extend(size.unwrap_or(body.len() as u32).to_le_bytes());
        c.extend_from_slice(body);
        if body.len() % 2 == 1 {
            c.push(0);
        }
        c
    }

    /// A `fmt ` chunk holding `f`.
    fn fmt(f: Format) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(f.encoding.to_le_bytes());
        b.extend(f.channels.to_le_bytes());
        b.extend(f.rate.to_le_bytes());
        b.extend(f.bytes_per_s.to_le_bytes());
        b.extend(f.block.to_le_bytes());
        b.extend(f.bits.to_le_bytes());
        chunk(b"fmt ", &b, None)
    }

    fn info(pairs: &[(&[u8; 4], &str)]) -> Vec<u8> {
        let mut body = b"INFO".to_vec();
        for (k, v) in pairs {
            body.extend(chunk(k, &[v.as_bytes(), b"\0"].concat(), None));
        }
        chunk(b"LIST", &body, None)
    }

    fn riff(magic: &[u8; 4], chunks: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = chunks.concat();
        let mut f = magic.to_vec();
        f.extend((body.len() as u32 + 4).to_le_bytes());
        f.extend(b"WAVE");
        f.extend(body);
        f
    }

    #[test]
    fn a_wave_written_to_a_pipe_is_as_long_as_its_data() {
        // 16-bit stereo at 8 kHz: 32,000 bytes a second; 48,000 bytes are there.
        let f = riff(
            b"RIFF",
            &[
                fmt(Format {
                    encoding: 1,
                    channels: 2,
                    rate: 8000,
                    bytes_per_s: 32_000,
                    block: 4,
                    bits: 16,
                }),
                info(&[(b"INAM", "Piped"), (b"IART", "Someone")]),
                chunk(b"data", &[0; 48_000], Some(0xFFFF_FFFF)),
            ],
        );
        let (r, rec) = read_bytes(read, &f);
        r.unwrap();
        assert_eq!(rec.duration_ms, Some(1500));
        assert_eq!(
            (rec.sample_rate, rec.channels, rec.bit_depth),
            (Some(8000), Some(2), Some(16))
        );
        assert_eq!(rec.bitrate, Some(256));
        assert_eq!(rec.title.as_deref(), Some("Piped"));
        assert_eq!(rec.artists, ["Someone"]);
        // Cut short: the data chunk claims more than is there.
        let (_, rec) = read_bytes(read, &f[..f.len() - 16_000]);
        assert_eq!(rec.duration_ms, Some(1000));
    }

    #[test]
    fn rf64_takes_the_data_size_from_ds64() {
        let mut ds64 = Vec::new();
        ds64.extend(0u64.to_le_bytes());
        ds64.extend(16_000u64.to_le_bytes());
        ds64.extend(8_000u64.to_le_bytes());
        ds64.extend(0u32.to_le_bytes());
        let f = riff(
            b"RF64",
            &[
                chunk(b"ds64", &ds64, None),
                fmt(Format {
                    encoding: 1,
                    channels: 1,
                    rate: 8000,
                    bytes_per_s: 16_000,
                    block: 2,
                    bits: 16,
                }),
                chunk(b"data", &[0; 16_000], Some(0xFFFF_FFFF)),
                info(&[(b"INAM", "After the data")]),
            ],
        );
        assert!(is_rf64(&f) && is_wave(&f));
        let (r, rec) = read_bytes(read, &f);
        r.unwrap();
        assert_eq!(rec.duration_ms, Some(1000));
        assert_eq!(rec.title.as_deref(), Some("After the data"));
    }

    #[test]
    fn compressed_wave_counts_its_samples() {
        // IMA ADPCM, mono at 22,050 Hz, 4 bits a sample; `fmt ` claims 16,000 bytes a second.
        let f = riff(
            b"RIFF",
            &[
                fmt(Format {
                    encoding: 0x11,
                    channels: 1,
                    rate: 22_050,
                    bytes_per_s: 16_000,
                    block: 512,
                    bits: 4,
                }),
                chunk(b"fact", &44_100u32.to_le_bytes(), None),
                chunk(b"data", &[0; 22_200], None),
            ],
        );
        let (r, rec) = read_bytes(read, &f);
        r.unwrap();
        assert_eq!(rec.duration_ms, Some(2000));
        assert_eq!(rec.bit_depth, None);
        // 22,200 bytes in 2 s, not the 128 kbit/s `fmt ` claims.
        assert_eq!(rec.bitrate, Some(88));
    }

    #[test]
    fn not_wave_or_damaged_is_an_error_never_a_panic() {
        assert!(
            read_bytes(read, b"RIFF\0\0\0\0AVI ")
                .0
                .unwrap_err()
                .starts_with("not a WAVE")
        );
        let no_fmt = riff(b"RIFF", &[chunk(b"data", &[0; 100], None)]);
        assert!(
            read_bytes(read, &no_fmt)
                .0
                .unwrap_err()
                .contains("no fmt chunk")
        );
        let good = riff(
            b"RF64",
            &[
                chunk(b"ds64", &[0; 28], None),
                fmt(Format {
                    encoding: 1,
                    channels: 2,
                    rate: 44_100,
                    bytes_per_s: 176_400,
                    block: 4,
                    bits: 16,
                }),
                info(&[(b"INAM", "T")]),
                chunk(b"data", &[1; 64], None),
            ],
        );
        survives_damage(read, &good, 1, 0x2545_f491);
    }
}
