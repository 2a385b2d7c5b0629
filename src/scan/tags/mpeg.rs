//! The duration of MPEG transport streams (`.ts`, `.mts`, `.m2ts`: broadcast recordings, AVCHD
//! camcorders) and program streams (`.mpg`, `.mpeg`, `.vob`), which carry no duration anywhere:
//! it is the span of the presentation timestamps (PTS, 90 kHz) of a stream, from the first in
//! the file's first 256 KiB to the last in its last 256 KiB (2 MiB when those hold too few).
//! Nothing between is read.
//!
//! A transport stream is 188-byte packets (192 in `.m2ts`, with a 4-byte time code before each)
//! that start with the sync byte `0x47`; the packet that starts a PES packet of a stream has its
//! payload-unit-start bit set, and the PES header holds the PTS. A program stream is a sequence
//! of packs (`00 00 01 BA`) holding PES packets (`00 00 01` and a stream id) directly.
//!
//! A file that shows neither gets no duration and no error: `.ts` is also the extension of
//! TypeScript sources.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::record::Record;

/// Bytes read at each end of the file: a few seconds of a broadcast stream. When they hold
/// too few timestamps (a stream of a low bit rate, or one that starts with a long run of other
/// data), the larger window is read.
const WINDOWS: [u64; 2] = [256 << 10, 2 << 20];
/// PTS values wrap at 2^33 ticks of 90 kHz (about 26.5 hours).
const PTS_WRAP: u64 = 1 << 33;

/// Whether `head` (a file's first bytes) starts a program stream: a pack header.
pub(super) fn is_program_stream(head: &[u8]) -> bool {
    head.starts_with(&[0, 0, 1, 0xBA])
}

/// Reads the duration of `file`, a transport or program stream, into `out`.
pub(super) fn read(file: &File, out: &mut Record) -> Result<(), String> {
    let len = super::file_len(file)?;
    for window in WINDOWS {
        let head = read_window(file, 0, len.min(window))?;
        let layout = transport_layout(&head);
        if layout.is_none() && !is_program_stream(&head) {
            return Ok(());
        }
        let tail_at = len.saturating_sub(window).max(head.len() as u64);
        let tail = read_window(file, tail_at, len - tail_at)?;
        let parse = |b: &[u8], seen: &mut Timestamps| match layout {
            Some(layout) => transport_pts(b, layout, seen),
            None => program_pts(b, seen),
        };
        let mut first = Timestamps::default();
        parse(&head, &mut first);
        let mut last = Timestamps::default();
        parse(&tail, &mut last);
        // A short file is all head: its last timestamps are in it too.
        let last = if tail.is_empty() { &first } else { &last };
        out.duration_ms = duration_ms(&first, last);
        if out.duration_ms.is_some() || tail.is_empty() {
            break;
        }
    }
    Ok(())
}

fn read_window(file: &File, at: u64, len: u64) -> Result<Vec<u8>, String> {
    let mut b = vec![0u8; usize::try_from(len).map_err(|_| "window too large".to_owned())?];
    file.read_exact_at(&mut b, at)
        .map_err(|e| super::cannot_read(&e))?;
    Ok(b)
}

/// The timestamps seen in one window, by stream (PID in a transport stream, stream id in a
/// program stream), with whether the stream is video.
#[derive(Default)]
struct Timestamps {
    streams: HashMap<u32, (bool, Vec<u64>)>,
}

impl Timestamps {
    fn add(&mut self, stream: u32, video: bool, pts: u64) {
        self.streams
            .entry(stream)
            .or_insert((video, Vec::new()))
            .1
            .push(pts);
    }

    /// `stream`'s timestamps in order, without those that no other lies within a second of:
    /// a bit flipped in a recording (it happens on air) must not stretch the span.
    fn trusted(&self, stream: u32) -> Vec<u64> {
        let Some((_, all)) = self.streams.get(&stream) else {
            return Vec::new();
        };
        let mut v = all.clone();
        v.sort_unstable();
        let near = |a: u64, b: u64| a.abs_diff(b) <= SECOND;
        (0..v.len())
            .filter(|&i| {
                (i > 0 && near(v[i - 1], v[i])) || v.get(i + 1).is_some_and(|&n| near(v[i], n))
            })
            .map(|i| v[i])
            .collect()
    }
}

/// One second in PTS ticks.
const SECOND: u64 = 90_000;

/// The longest time of a video stream, else of an audio one: from its lowest timestamp in
/// `first` to its highest in `last`, plus the length of its last frame (the step to the
/// highest). A span across the 33-bit wrap is counted once round.
fn duration_ms(first: &Timestamps, last: &Timestamps) -> Option<u64> {
    let span = |video: bool| {
        first
            .streams
            .iter()
            .filter(|&(_, &(v, _))| v == video)
            .filter_map(|(&id, _)| {
                let lowest = *first.trusted(id).first()?;
                let tail = last.trusted(id);
                let (&highest, rest) = tail.split_last()?;
                let frame = rest
                    .iter()
                    .rev()
                    .find(|&&p| p < highest)
                    .map_or(0, |&p| highest - p);
                Some((highest + PTS_WRAP - lowest) % PTS_WRAP + frame)
            })
            .max()
    };
    let ticks = span(true).or_else(|| span(false))?;
    let ms = ticks / 90;
    (ms > 0).then_some(ms)
}

/// Packet size and the bytes before each packet's sync byte, when `head` is a transport stream:
/// three sync bytes a packet apart.
fn transport_layout(head: &[u8]) -> Option<(usize, usize)> {
    [(188, 0), (192, 4)]
        .into_iter()
        .find(|&(size, prefix)| (0..3).all(|k| head.get(prefix + k * size) == Some(&0x47)))
}

fn transport_pts(b: &[u8], (size, prefix): (usize, usize), seen: &mut Timestamps) {
    // Packets are found from the first sync byte, which in the tail is not at offset 0.
    let Some(start) = (0..size.min(b.len())).find(|&i| {
        b.get(i + prefix) == Some(&0x47) && b.get(i + prefix + size).is_none_or(|&s| s == 0x47)
    }) else {
        return;
    };
    for packet in b[start..].chunks_exact(size) {
        let p = &packet[prefix..];
        if p[0] != 0x47 || p[1] & 0x40 == 0 {
            continue;
        }
        let pid = u32::from(p[1] & 0x1F) << 8 | u32::from(p[2]);
        let control = p[3] >> 4 & 3;
        if control & 1 == 0 {
            continue;
        }
        let payload = if control & 2 != 0 {
            1 + usize::from(p[4]) + 4
        } else {
            4
        };
        if let Some((video, pts)) = p.get(payload..).and_then(pes_pts) {
            seen.add(pid, video, pts);
        }
    }
}

fn program_pts(b: &[u8], seen: &mut Timestamps) {
    let mut i = 0;
    while let Some(at) = b[i..].windows(3).position(|w| w == [0, 0, 1]) {
        let pes = &b[i + at..];
        match pes_pts(pes) {
            Some((video, pts)) => {
                seen.add(u32::from(pes[3]), video, pts);
                // The PES packet's own length (bytes 4 and 5) leads to the next start code.
                let len = usize::from(u16::from_be_bytes([pes[4], pes[5]]));
                i += at + 6 + len.max(1);
            }
            None => i += at + 3,
        }
        if i >= b.len() {
            break;
        }
    }
}

/// The stream kind (video or not) and PTS of the PES packet header at the start of `p`, when
/// it is one of an audio or video stream and carries a PTS (MPEG-2 or MPEG-1 syntax).
fn pes_pts(p: &[u8]) -> Option<(bool, u64)> {
    if p.get(..3)? != [0, 0, 1] {
        return None;
    }
    let id = *p.get(3)?;
    let video = (0xE0..=0xEF).contains(&id);
    if !(video || (0xC0..=0xDF).contains(&id) || id == 0xBD) {
        return None;
    }
    let h = p.get(6..)?;
    let at = if h.first()? & 0xC0 == 0x80 {
        // MPEG-2: flags, then the header length; the PTS comes first when the flag says so.
        if h.get(1)? & 0x80 == 0 {
            return None;
        }
        2 + 1
    } else {
        // MPEG-1: up to 16 stuffing bytes, an optional buffer size, then the PTS.
        let mut k = h.iter().take(16).take_while(|&&b| b == 0xFF).count();
        if h.get(k)? & 0xC0 == 0x40 {
            k += 2;
        }
        if h.get(k)? & 0xE0 != 0x20 {
            return None;
        }
        k
    };
    let t = h.get(at..at + 5)?;
    if t[0] & 1 != 1 || t[2] & 1 != 1 || t[4] & 1 != 1 {
        return None;
    }
    let pts = u64::from(t[0] >> 1 & 7) << 30
        | u64::from(t[1]) << 22
        | u64::from(t[2] >> 1) << 15
        | u64::from(t[3]) << 7
        | u64::from(t[4] >> 1);
    Some((video, pts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts_bytes(prefix: u8, pts: u64) -> [u8; 5] {
        [
            prefix << 4 | ((pts >> 30) as u8 & 7) << 1 | 1,
            (pts >> 22) as u8,
            ((pts >> 15) as u8) << 1 | 1,
            (pts >> 7) as u8,
            (pts as u8) << 1 | 1,
        ]
    }

    fn pes(id: u8, pts: u64) -> Vec<u8> {
        let mut p = vec![0, 0, 1, id, 0, 8, 0x80, 0x80, 5];
        p.extend(pts_bytes(2, pts));
        p
    }

    fn ts_packet(pid: u16, start: Option<(u8, u64)>, m2ts: bool) -> Vec<u8> {
        let mut p = if m2ts { vec![0u8; 4] } else { Vec::new() };
        let pusi = if start.is_some() { 0x40 } else { 0 };
        p.extend([0x47, pusi | (pid >> 8) as u8, pid as u8, 0x10]);
        if let Some((id, pts)) = start {
            p.extend(pes(id, pts));
        }
        p.resize(if m2ts { 192 } else { 188 }, 0xFF);
        p
    }

    fn read_bytes(bytes: &[u8]) -> (Result<(), String>, Option<u64>) {
        let (r, rec) = crate::scan::tags::own_reader_tests::read_bytes(read, bytes);
        (r, rec.duration_ms)
    }

    /// A stream of `n` packets: video (PID 0x100) from PTS 900,000 every 3,600 ticks (25 fps),
    /// audio (PID 0x101) on every fourth packet, filler in between.
    fn transport(n: u64, m2ts: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for k in 0..n {
            let start = match k % 4 {
                0 => Some((0xE0, 900_000 + k / 4 * 3_600)),
                1 => Some((0xC0, 900_000 + k / 4 * 3_600)),
                _ => None,
            };
            out.extend(ts_packet(0x100 + (k % 4 == 1) as u16, start, m2ts));
        }
        out
    }

    #[test]
    fn transport_streams_span_their_video_timestamps() {
        // 40,000 packets (7.5 MB): 10,000 frames of 40 ms.
        for m2ts in [false, true] {
            assert_eq!(
                read_bytes(&transport(40_000, m2ts)),
                (Ok(()), Some(400_000))
            );
        }
        // A short one, all inside the first window.
        assert_eq!(read_bytes(&transport(400, false)), (Ok(()), Some(4_000)));
    }

    #[test]
    fn program_streams_span_their_timestamps() {
        let mut ps = Vec::new();
        for k in 0..20_000u64 {
            ps.extend([0, 0, 1, 0xBA]);
            ps.extend([0x44, 0, 4, 0, 4, 1, 0, 0, 3, 0xF8]);
            ps.extend(pes(0xE0, 9_000 + k * 3_003));
            ps.extend([0u8; 100]);
        }
        let (r, ms) = read_bytes(&ps);
        assert_eq!(r, Ok(()));
        assert_eq!(ms, Some(20_000 * 3_003 / 90));
    }

    #[test]
    fn a_span_across_the_wrap_out_of_order_frames_and_a_flipped_bit() {
        let mut t = Timestamps::default();
        t.add(1, true, PTS_WRAP - 90_000);
        t.add(1, true, PTS_WRAP - 90_000 + 3_600);
        // A timestamp with a flipped bit, far from every other: not the start.
        t.add(1, true, PTS_WRAP - 90_000 - (1 << 30));
        let mut u = Timestamps::default();
        // Frames out of order (B-frames): the last one lasts the step below the highest.
        for k in [0, 3, 1, 2] {
            u.add(1, true, 90_000 + k * 3_600);
        }
        u.add(1, true, 90_000 + (1 << 31));
        assert_eq!(duration_ms(&t, &u), Some(2_000 + 3 * 40 + 40));
        // A lone timestamp proves nothing.
        let mut one = Timestamps::default();
        one.add(1, true, 90_000);
        assert_eq!(duration_ms(&one, &one), None);
        // A TypeScript source is not a transport stream: nothing, and no error.
        assert_eq!(read_bytes(b"export const x = 1;\n"), (Ok(()), None));
        assert_eq!(read_bytes(b""), (Ok(()), None));
    }

    #[test]
    fn damaged_streams_never_panic() {
        let whole = transport(50, false);
        crate::scan::tags::own_reader_tests::survives_damage(read, &whole, 7, 0x1234_5679);
        for p in [
            &[0u8, 0, 1, 0xE0][..],
            &[0, 0, 1, 0xE0, 0, 0, 0x80],
            &[0, 0, 1, 0xC0, 0xFF],
        ] {
            let _ = pes_pts(p);
            let mut ps = vec![0, 0, 1, 0xBA];
            ps.extend_from_slice(p);
            let _ = read_bytes(&ps);
        }
    }
}
