//! Duration and audio properties of Flash Video files (`.flv`), which `lofty` does not read.
//!
//! An FLV file is a 9-byte header (`FLV`, a version, flags, the header's size), then tags, each
//! after the 32-bit size of the one before: a type (8 audio, 9 video, 18 script data), a 24-bit
//! data size, a 24-bit timestamp in milliseconds and its 8-bit extension, a 24-bit stream id,
//! and the data. The first tag is usually the script tag `onMetaData`, an AMF0 name and an
//! array of named values: `duration` (seconds), `audiosamplerate`, `audiodatarate` (kbit/s),
//! `stereo`. When it gives no duration, the timestamp of the last tag does (the file ends with
//! the size of that tag).

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::record::Record;

/// Bytes of the metadata tag read at most.
const MAX_META: usize = 64 << 10;
/// Nesting of AMF values skipped at most.
const MAX_DEPTH: usize = 8;
/// Named values looked at, at most, in the metadata array.
const MAX_ENTRIES: usize = 1024;

fn u24(b: &[u8]) -> u32 {
    u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2])
}

/// Reads `file` as FLV into `out`. `Err` with a one-line message when it is not one.
pub(super) fn read(file: &File, out: &mut Record) -> Result<(), String> {
    let len = super::file_len(file)?;
    let mut h = [0u8; 9];
    if file.read_exact_at(&mut h, 0).is_err() || &h[..3] != b"FLV" {
        return Err("not an FLV file: no FLV header at its start".to_owned());
    }
    out.has_cover = Some(false);
    let first = u64::from(u32::from_be_bytes([h[5], h[6], h[7], h[8]])).saturating_add(4);
    let mut t = [0u8; 11];
    if file.read_exact_at(&mut t, first).is_ok() && t[0] & 0x1F == 18 {
        let size = (u24(&t[1..4]) as usize).min(MAX_META);
        let mut data = vec![0u8; size];
        let got = file.read_at(&mut data, first + 11).unwrap_or(0);
        data.truncate(got);
        read_metadata(&data, out);
    }
    if out.duration_ms.is_none() {
        out.duration_ms = last_timestamp_ms(file, len);
    }
    Ok(())
}

/// The timestamp of the last tag, found through the size the file ends with.
fn last_timestamp_ms(file: &File, len: u64) -> Option<u64> {
    let mut b = [0u8; 4];
    file.read_exact_at(&mut b, len.checked_sub(4)?).ok()?;
    let size = u64::from(u32::from_be_bytes(b));
    let at = len.checked_sub(4)?.checked_sub(size)?;
    let mut t = [0u8; 11];
    file.read_exact_at(&mut t, at).ok()?;
    if !matches!(t[0] & 0x1F, 8 | 9 | 18) || u64::from(u24(&t[1..4])) + 11 != size {
        return None;
    }
    let ms = u64::from(u24(&t[4..7]) | u32::from(t[7]) << 24);
    (ms > 0).then_some(ms)
}

/// The values `onMetaData` gives.
fn read_metadata(data: &[u8], out: &mut Record) {
    let mut r = Amf { b: data, at: 0 };
    if r.string_value().as_deref() != Some(&b"onMetaData"[..]) {
        return;
    }
    let count = match r.byte() {
        Some(0x08) => r.take(4).map(|_| ()),
        Some(0x03) => Some(()),
        _ => None,
    };
    if count.is_none() {
        return;
    }
    for _ in 0..MAX_ENTRIES {
        let Some(key) = r.key() else { return };
        if key.is_empty() {
            return; // the end marker
        }
        let Some(value) = r.value(0) else { return };
        let number = match value {
            Value::Number(n) if n.is_finite() && n >= 0.0 => Some(n),
            _ => None,
        };
        match (key, number, value) {
            (b"duration", Some(s), _) => {
                let ms = s * 1000.0;
                out.duration_ms = (ms >= 1.0 && ms < u64::MAX as f64).then_some(ms as u64);
            }
            (b"audiosamplerate", Some(hz), _) if hz >= 1.0 && hz <= f64::from(u32::MAX) => {
                out.sample_rate = Some(hz.round() as u32);
            }
            (b"audiodatarate", Some(k), _) if k >= 1.0 && k <= f64::from(u32::MAX) => {
                out.bitrate = Some(k.round() as u32);
            }
            (b"stereo", _, Value::Bool(stereo)) => out.channels = Some(if stereo { 2 } else { 1 }),
            _ => {}
        }
    }
}

#[derive(Clone, Copy)]
enum Value {
    Number(f64),
    Bool(bool),
    Other,
}

/// An AMF0 reader over `b`.
struct Amf<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Amf<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    fn u32(&mut self) -> Option<usize> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    /// A name in an object or array: a 16-bit length and the bytes (empty before the end
    /// marker, whose type byte 9 is then taken too).
    fn key(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        let key = self.take(n)?;
        if key.is_empty() {
            self.byte().filter(|&t| t == 9)?;
        }
        Some(key)
    }

    /// A string value, type byte first.
    fn string_value(&mut self) -> Option<Vec<u8>> {
        (self.byte()? == 0x02).then_some(())?;
        let n = self.u16()?;
        self.take(n).map(<[u8]>::to_vec)
    }

    /// The next value; what is not a number or a boolean is skipped.
    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        Some(match self.byte()? {
            0x00 => Value::Number(f64::from_be_bytes(self.take(8)?.try_into().ok()?)),
            0x01 => Value::Bool(self.byte()? != 0),
            0x02 => {
                let n = self.u16()?;
                self.take(n)?;
                Value::Other
            }
            kind @ (0x03 | 0x08) => {
                if kind == 0x08 {
                    // An ECMA array's count, which its end marker makes redundant.
                    self.take(4)?;
                }
                for _ in 0..MAX_ENTRIES {
                    if self.key()?.is_empty() {
                        return Some(Value::Other);
                    }
                    self.value(depth + 1)?;
                }
                return None;
            }
            0x0A => {
                let n = self.u32()?;
                for _ in 0..n.min(MAX_ENTRIES) {
                    self.value(depth + 1)?;
                }
                if n > MAX_ENTRIES {
                    return None;
                }
                Value::Other
            }
            0x05 | 0x06 => Value::Other,
            0x0B => {
                self.take(10)?;
                Value::Other
            }
            0x0C => {
                let n = self.u32()?;
                self.take(n)?;
                Value::Other
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amf_string(s: &str) -> Vec<u8> {
        let mut v = vec![0x02];
        v.extend((s.len() as u16).to_be_bytes());
        v.extend(s.as_bytes());
        v
    }

    fn entry(key: &str, value: &[u8]) -> Vec<u8> {
        let mut v = (key.len() as u16).to_be_bytes().to_vec();
        v.extend(key.as_bytes());
        v.extend(value);
        v
    }

    fn number(n: f64) -> Vec<u8> {
        let mut v = vec![0x00];
        v.extend(n.to_be_bytes());
        v
    }

    fn tag(kind: u8, ms: u32, data: &[u8]) -> Vec<u8> {
        let mut t = vec![kind];
        t.extend(&(data.len() as u32).to_be_bytes()[1..]);
        t.extend(&ms.to_be_bytes()[1..]);
        t.push((ms >> 24) as u8);
        t.extend([0, 0, 0]);
        t.extend(data);
        t.extend(((data.len() + 11) as u32).to_be_bytes());
        t
    }

    fn flv(meta: Option<Vec<u8>>, last_ms: u32) -> Vec<u8> {
        let mut f = b"FLV\x01\x05\0\0\0\x09\0\0\0\0".to_vec();
        if let Some(m) = meta {
            f.extend(tag(18, 0, &m));
        }
        f.extend(tag(9, 0, &[0x17; 40]));
        f.extend(tag(8, last_ms, &[0xAF; 20]));
        f
    }

    fn meta(duration: f64) -> Vec<u8> {
        let mut m = amf_string("onMetaData");
        m.push(0x08);
        m.extend(4u32.to_be_bytes());
        m.extend(entry("duration", &number(duration)));
        m.extend(entry("encoder", &amf_string("Lavf")));
        m.extend(entry("nested", &[0x03, 0, 1, b'x', 0x05, 0, 0, 9]));
        m.extend(entry("audiosamplerate", &number(44_100.0)));
        m.extend(entry("stereo", &[0x01, 1]));
        m.extend(entry("audiodatarate", &number(128.0)));
        m.extend([0, 0, 9]);
        m
    }

    fn read_bytes(bytes: &[u8]) -> (Result<(), String>, Record) {
        crate::scan::tags::own_reader_tests::read_bytes(read, bytes)
    }

    #[test]
    fn metadata_gives_duration_and_audio_properties() {
        let (r, rec) = read_bytes(&flv(Some(meta(12.5)), 12_480));
        assert_eq!(r, Ok(()));
        assert_eq!(rec.duration_ms, Some(12_500));
        assert_eq!(rec.sample_rate, Some(44_100));
        assert_eq!(rec.channels, Some(2));
        assert_eq!(rec.bitrate, Some(128));
    }

    #[test]
    fn without_metadata_the_last_tag_gives_the_duration() {
        let (r, rec) = read_bytes(&flv(None, 0x0100_0010));
        assert_eq!((r, rec.duration_ms), (Ok(()), Some(0x0100_0010)));
        assert!(read_bytes(b"RIFF").0.is_err());
    }

    #[test]
    fn damaged_files_never_panic() {
        let whole = flv(Some(meta(3.0)), 2_990);
        crate::scan::tags::own_reader_tests::survives_damage(read, &whole, 1, 0x0BAD_F00D);
        // Deep nesting stops at the limit.
        let mut deep = amf_string("onMetaData");
        deep.push(0x03);
        for _ in 0..100 {
            deep.extend(entry("a", &[0x03]));
        }
        let _ = read_bytes(&flv(Some(deep), 1));
    }
}
