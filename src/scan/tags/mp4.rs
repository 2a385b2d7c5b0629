//! The duration of an MP4 or QuickTime movie from its movie header (`moov`/`mvhd`), for a
//! video without a sound track: `lofty` reads a file's stream properties from its audio track
//! and fails on a file that has none (a timelapse, a screen recording, a muted clip), which is
//! not damaged.
//!
//! An MP4 file is a sequence of atoms (boxes), each a 32-bit big-endian size (1: a 64-bit size
//! follows the type; 0: to the end of the file), a four-byte type, then its body. The `moov`
//! atom holds the `mvhd` atom: a version byte, 3 bytes of flags, then creation and
//! modification times, the time scale (units per second) and the duration in those units, the
//! times and duration 32 bits wide in version 0 and 64 in version 1.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// Atoms looked at, at most, on each of the two levels searched: a file with more before its
/// movie header is not searched further (no real file has more than a handful).
const MAX_ATOMS: usize = 1024;

/// An atom: where its body starts and where it ends.
struct Atom {
    kind: [u8; 4],
    body: u64,
    end: u64,
}

/// The atoms in `[from, to)` of `file`, in order, until one does not fit.
fn atoms(file: &File, from: u64, to: u64) -> impl Iterator<Item = Atom> + '_ {
    let mut at = from;
    std::iter::from_fn(move || {
        let mut h = [0u8; 16];
        if at.checked_add(8)? > to {
            return None;
        }
        file.read_exact_at(&mut h[..8], at).ok()?;
        let kind: [u8; 4] = h[4..8].try_into().ok()?;
        let (size, header) = match u32::from_be_bytes(h[..4].try_into().ok()?) {
            0 => (to - at, 8),
            1 => {
                file.read_exact_at(&mut h[8..16], at + 8).ok()?;
                (u64::from_be_bytes(h[8..16].try_into().ok()?), 16)
            }
            n => (u64::from(n), 8),
        };
        let end = at
            .checked_add(size)
            .filter(|&end| size >= header && end <= to)?;
        let atom = Atom {
            kind,
            body: at + header,
            end,
        };
        at = end;
        Some(atom)
    })
    .take(MAX_ATOMS)
}

/// The movie's duration in milliseconds from its `mvhd` atom; `None` when there is none, it
/// does not fit its file, or it gives no duration (0, or all ones for "unknown").
pub(super) fn movie_duration_ms(file: &File) -> Option<u64> {
    let len = file.metadata().ok()?.len();
    let moov = atoms(file, 0, len).find(|a| &a.kind == b"moov")?;
    let mvhd = atoms(file, moov.body, moov.end).find(|a| &a.kind == b"mvhd")?;
    let mut b = [0u8; 32];
    let n = usize::try_from(mvhd.end - mvhd.body).ok()?.min(b.len());
    file.read_exact_at(&mut b[..n], mvhd.body).ok()?;
    let b = &b[..n];
    let (scale, duration) = match b.first()? {
        0 => {
            let scale = u32::from_be_bytes(b.get(12..16)?.try_into().ok()?);
            let d = u32::from_be_bytes(b.get(16..20)?.try_into().ok()?);
            (scale, (d != u32::MAX).then_some(u64::from(d))?)
        }
        1 => {
            let scale = u32::from_be_bytes(b.get(20..24)?.try_into().ok()?);
            let d = u64::from_be_bytes(b.get(24..32)?.try_into().ok()?);
            (scale, (d != u64::MAX).then_some(d)?)
        }
        _ => return None,
    };
    if scale == 0 {
        return None;
    }
    let ms = u128::from(duration) * 1000 / u128::from(scale);
    u64::try_from(ms).ok().filter(|&ms| ms > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atom(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut a = (8 + body.len() as u32).to_be_bytes().to_vec();
        a.extend_from_slice(kind);
        a.extend_from_slice(body);
        a
    }

    fn mvhd_v0(scale: u32, duration: u32) -> Vec<u8> {
        let mut b = vec![0u8; 12];
        b.extend(scale.to_be_bytes());
        b.extend(duration.to_be_bytes());
        b.extend([0u8; 80]);
        atom(b"mvhd", &b)
    }

    fn duration_of(bytes: &[u8]) -> Option<u64> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.mp4");
        std::fs::write(&path, bytes).unwrap();
        movie_duration_ms(&File::open(&path).unwrap())
    }

    #[test]
    fn the_movie_header_gives_the_duration() {
        let mut f = atom(b"ftyp", b"isom\0\0\0\0");
        f.extend(atom(b"mdat", &[7u8; 100]));
        f.extend(atom(b"moov", &mvhd_v0(600, 9_000)));
        assert_eq!(duration_of(&f), Some(15_000));

        // Version 1, and a 64-bit size on the atom before it.
        let mut big = 1u32.to_be_bytes().to_vec();
        big.extend(b"free");
        big.extend(24u64.to_be_bytes());
        big.extend([0u8; 8]);
        let mut v1 = vec![1u8, 0, 0, 0];
        v1.extend([0u8; 16]);
        v1.extend(1000u32.to_be_bytes());
        v1.extend(2_500u64.to_be_bytes());
        big.extend(atom(b"moov", &atom(b"mvhd", &v1)));
        assert_eq!(duration_of(&big), Some(2_500));
    }

    #[test]
    fn damaged_headers_give_nothing() {
        // Unknown duration, no time scale, a cut atom, sizes that do not fit, no movie header.
        assert_eq!(duration_of(&atom(b"moov", &mvhd_v0(600, u32::MAX))), None);
        assert_eq!(duration_of(&atom(b"moov", &mvhd_v0(0, 10))), None);
        let whole = atom(b"moov", &mvhd_v0(600, 9_000));
        for cut in 0..whole.len() {
            assert_eq!(duration_of(&whole[..cut]), None, "cut at {cut}");
        }
        let mut lying = whole.clone();
        lying[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(duration_of(&lying), None);
        let mut small = whole.clone();
        small[..4].copy_from_slice(&3u32.to_be_bytes());
        assert_eq!(duration_of(&small), None);
        assert_eq!(duration_of(&atom(b"moov", &atom(b"udta", &[0u8; 8]))), None);
        assert_eq!(duration_of(b""), None);
    }
}
