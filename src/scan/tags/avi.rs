//! Duration, audio properties and `INFO` tags of AVI files (`.avi`), which `lofty` does not
//! read.
//!
//! An AVI file is a RIFF file of form `AVI `: chunks, each a four-byte id, a 32-bit
//! little-endian size and the data padded to an even length; a `LIST` chunk's data is a
//! four-byte list type and more chunks. The `hdrl` list holds the main header `avih`
//! (microseconds per frame, total frames), one `strl` list per stream (its header `strh`: type,
//! scale, rate and length; its format `strf`, for audio a `WAVEFORMATEX`), and for files over
//! 1 GiB an `odml` list whose `dmlh` counts the frames of all RIFF parts. An `INFO` list may
//! hold a title, artist, genre, date and product (album). The `movi` list of media is skipped
//! by its size, never read.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::record::Record;
use crate::store::format::get_u32;

/// Chunks looked at, at most, in any one list.
const MAX_CHUNKS: usize = 1024;
/// Bytes of one list read into memory at most (`hdrl` or `INFO`); a larger one is skipped.
const MAX_READ: u64 = 1 << 20;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|_| get_u32(b, at))
}

/// The chunks of `b` (a list's data after its type): `(id, data)` pairs, until one does not
/// fit.
fn chunks(b: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut rest = b;
    std::iter::from_fn(move || {
        let id: [u8; 4] = rest.get(..4)?.try_into().ok()?;
        let size = usize::try_from(u32_at(rest, 4)?).ok()?;
        let data = rest.get(8..8usize.checked_add(size)?)?;
        let next = (8 + size + (size & 1)).min(rest.len());
        rest = &rest[next..];
        Some((id, data))
    })
    .take(MAX_CHUNKS)
}

/// The list type and data of `LIST` chunk data.
fn list(data: &[u8]) -> Option<([u8; 4], &[u8])> {
    Some((data.get(..4)?.try_into().ok()?, &data[4..]))
}

/// Reads `file` as AVI into `out`. `Err` with a one-line message when it is not one or has no
/// header list; a part that cannot be read is left out.
pub(super) fn read(file: &File, out: &mut Record) -> Result<(), String> {
    let len = super::file_len(file)?;
    let mut h = [0u8; 12];
    if file.read_exact_at(&mut h, 0).is_err() || &h[..4] != b"RIFF" || &h[8..12] != b"AVI " {
        return Err("not an AVI file: no RIFF AVI header at its start".to_owned());
    }
    // The RIFF chunk's own size may be wrong (files cut short, or over 4 GiB): the file's
    // length bounds the walk instead.
    let mut at = 12u64;
    let (mut hdrl, mut info) = (None, None);
    for _ in 0..MAX_CHUNKS {
        let mut c = [0u8; 12];
        if at.checked_add(12).is_none_or(|end| end > len) || file.read_exact_at(&mut c, at).is_err()
        {
            break;
        }
        let size = u64::from(get_u32(&c, 4));
        let data = at + 8;
        if &c[..4] == b"LIST" && size >= 4 && size - 4 <= MAX_READ && data + size <= len {
            let kind = &c[8..12];
            if kind == b"hdrl" || kind == b"INFO" {
                let mut bytes = vec![0u8; (size - 4) as usize];
                if file.read_exact_at(&mut bytes, data + 4).is_ok() {
                    let slot = if kind == b"hdrl" {
                        &mut hdrl
                    } else {
                        &mut info
                    };
                    slot.get_or_insert(bytes);
                }
            }
        }
        if hdrl.is_some() && info.is_some() {
            break;
        }
        at = data + size + (size & 1);
    }
    let hdrl = hdrl.ok_or("damaged AVI file: no header list (hdrl)")?;
    read_header(&hdrl, out);
    if let Some(info) = info {
        read_info(&info, out);
    }
    out.has_cover = Some(false);
    Ok(())
}

/// Duration and audio properties from the `hdrl` list.
fn read_header(hdrl: &[u8], out: &mut Record) {
    let mut frames_us = None; // (microseconds per frame, total frames)
    let mut all_frames = None;
    let mut video_ms = None;
    for (id, data) in chunks(hdrl) {
        match (&id, list(data)) {
            (b"avih", _) => frames_us = u32_at(data, 0).zip(u32_at(data, 16)),
            (b"LIST", Some((kind, streams))) if &kind == b"strl" => {
                let mut header = None;
                let mut format = None;
                for (id, data) in chunks(streams) {
                    match &id {
                        b"strh" => header = header.or(Some(data)),
                        b"strf" => format = format.or(Some(data)),
                        _ => {}
                    }
                }
                let Some(strh) = header else { continue };
                match strh.get(..4) {
                    Some(b"vids") if video_ms.is_none() => video_ms = stream_ms(strh),
                    Some(b"auds") if out.sample_rate.is_none() => {
                        if let Some(f) = format {
                            read_audio_format(f, out);
                        }
                    }
                    _ => {}
                }
            }
            (b"LIST", Some((kind, odml))) if &kind == b"odml" => {
                all_frames = chunks(odml)
                    .find(|(id, _)| id == b"dmlh")
                    .and_then(|(_, d)| u32_at(d, 0));
            }
            _ => {}
        }
    }
    let from_main = frames_us.map(|(us, frames)| {
        let frames = all_frames.filter(|&f| f > frames).unwrap_or(frames);
        u64::from(us) * u64::from(frames) / 1000
    });
    out.duration_ms = video_ms.or(from_main).filter(|&ms| ms > 0);
}

/// A stream's length in milliseconds from its `strh`: `length × scale / rate` seconds.
fn stream_ms(strh: &[u8]) -> Option<u64> {
    let (scale, rate, length) = (u32_at(strh, 20)?, u32_at(strh, 24)?, u32_at(strh, 32)?);
    if rate == 0 || scale == 0 {
        return None;
    }
    let ms = u128::from(length) * u128::from(scale) * 1000 / u128::from(rate);
    u64::try_from(ms).ok()
}

/// Channels, sample rate, bit rate and (for PCM) bit depth from a `WAVEFORMATEX`.
fn read_audio_format(f: &[u8], out: &mut Record) {
    let (Some(tag), Some(channels), Some(rate), Some(bytes_per_s)) =
        (u16_at(f, 0), u16_at(f, 2), u32_at(f, 4), u32_at(f, 8))
    else {
        return;
    };
    out.channels = u8::try_from(channels).ok().filter(|&c| c > 0);
    out.sample_rate = Some(rate).filter(|&r| r > 0);
    out.bitrate = Some(bytes_per_s / 125).filter(|&b| b > 0);
    // 1: PCM, 3: IEEE float: the bits per sample are the depth. Compressed formats' are not.
    if tag == 1 || tag == 3 {
        out.bit_depth = u16_at(f, 14)
            .and_then(|b| u8::try_from(b).ok())
            .filter(|&b| b > 0);
    }
}

/// Title, artist, genre, year and album (product) from an `INFO` list's data.
fn read_info(info: &[u8], out: &mut Record) {
    for (id, data) in chunks(info) {
        let Some(value) = text(data) else { continue };
        match &id {
            b"INAM" => out.title = out.title.take().or(Some(value)),
            b"IART" if out.artists.is_empty() => out.artists.push(value),
            b"IGNR" if out.genres.is_empty() => out.genres.push(value),
            b"IPRD" => out.album = out.album.take().or(Some(value)),
            b"ICRD" => {
                let digits = value
                    .get(..4)
                    .filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
                out.year = out.year.or_else(|| digits.and_then(|d| d.parse().ok()));
            }
            _ => {}
        }
    }
}

/// An `INFO` value: text up to its NUL, as UTF-8 when it is, else as Latin-1 (what older
/// writers used); cleaned.
fn text(b: &[u8]) -> Option<String> {
    let b = b.split(|&c| c == 0).next().unwrap_or_default();
    let s = match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => b.iter().map(|&c| char::from(c)).collect(),
    };
    super::clean(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(id: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut c = id.to_vec();
        c.extend((data.len() as u32).to_le_bytes());
        c.extend_from_slice(data);
        if data.len() % 2 == 1 {
            c.push(0);
        }
        c
    }

    fn list_of(kind: &[u8; 4], parts: &[Vec<u8>]) -> Vec<u8> {
        let mut d = kind.to_vec();
        d.extend(parts.concat());
        chunk(b"LIST", &d)
    }

    fn sample() -> Vec<u8> {
        let mut avih = vec![0u8; 56];
        avih[..4].copy_from_slice(&40_000u32.to_le_bytes()); // 25 frames/s
        avih[16..20].copy_from_slice(&250u32.to_le_bytes()); // 10 s
        let mut vids = vec![0u8; 56];
        vids[..4].copy_from_slice(b"vids");
        vids[20..24].copy_from_slice(&1001u32.to_le_bytes());
        vids[24..28].copy_from_slice(&30_000u32.to_le_bytes());
        vids[32..36].copy_from_slice(&300u32.to_le_bytes()); // 300 frames at 29.97/s
        let mut auds = vec![0u8; 56];
        auds[..4].copy_from_slice(b"auds");
        let mut wave = vec![0u8; 16];
        wave[..2].copy_from_slice(&1u16.to_le_bytes());
        wave[2..4].copy_from_slice(&2u16.to_le_bytes());
        wave[4..8].copy_from_slice(&44_100u32.to_le_bytes());
        wave[8..12].copy_from_slice(&176_400u32.to_le_bytes());
        wave[14..16].copy_from_slice(&16u16.to_le_bytes());
        let hdrl = list_of(
            b"hdrl",
            &[
                chunk(b"avih", &avih),
                list_of(
                    b"strl",
                    &[chunk(b"strh", &vids), chunk(b"strf", &[0u8; 40])],
                ),
                list_of(b"strl", &[chunk(b"strh", &auds), chunk(b"strf", &wave)]),
            ],
        );
        let movi = list_of(b"movi", &[chunk(b"00dc", &[1u8; 101])]);
        let info = list_of(
            b"INFO",
            &[
                chunk(b"INAM", b"Holiday\0"),
                chunk(b"IART", b"Caf\xe9 Crew\0"),
                chunk(b"ICRD", b"2004-07-01\0"),
            ],
        );
        let body = [b"AVI ".to_vec(), hdrl, movi, info].concat();
        let mut f = b"RIFF".to_vec();
        f.extend((body.len() as u32).to_le_bytes());
        f.extend(body);
        f
    }

    fn read_bytes(bytes: &[u8]) -> (Result<(), String>, Record) {
        crate::scan::tags::own_reader_tests::read_bytes(read, bytes)
    }

    #[test]
    fn header_streams_and_info_are_read() {
        let (r, rec) = read_bytes(&sample());
        assert_eq!(r, Ok(()));
        assert_eq!(rec.duration_ms, Some(10_010));
        assert_eq!(rec.channels, Some(2));
        assert_eq!(rec.sample_rate, Some(44_100));
        assert_eq!(rec.bitrate, Some(1411));
        assert_eq!(rec.bit_depth, Some(16));
        assert_eq!(rec.title.as_deref(), Some("Holiday"));
        assert_eq!(rec.artists, ["Café Crew"]);
        assert_eq!(rec.year, Some(2004));
    }

    #[test]
    fn damaged_files_never_panic() {
        let whole = sample();
        crate::scan::tags::own_reader_tests::survives_damage(read, &whole, 1, 0x2545_F491);
        assert!(read_bytes(b"RIFF\0\0\0\0WAVE").0.is_err());
        let (r, _) = read_bytes(b"RIFF\x04\0\0\0AVI ");
        assert!(r.unwrap_err().contains("no header list"));
    }
}
