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
    /// It claimed more bytes than there are (see [`atoms_cut`]).
    cut: bool,
}

/// The atoms in `[from, to)` of `file`, in order, until one does not fit.
fn atoms(file: &File, from: u64, to: u64) -> impl Iterator<Item = Atom> + '_ {
    atoms_with(file, from, to, false)
}

/// As [`atoms`], but an atom that runs past `to` is the last one, cut at `to` and marked: in a
/// file cut short, the headers before the cut can still be read.
fn atoms_cut(file: &File, from: u64, to: u64) -> impl Iterator<Item = Atom> + '_ {
    atoms_with(file, from, to, true)
}

fn atoms_with(file: &File, from: u64, to: u64, cut: bool) -> impl Iterator<Item = Atom> + '_ {
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
        if size < header {
            return None;
        }
        let (end, overran) = match at.checked_add(size) {
            Some(end) if end <= to => (end, false),
            _ if cut => (to, true),
            _ => return None,
        };
        let atom = Atom {
            kind,
            body: at + header,
            end,
            cut: overran,
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
    movie_duration_ms_in(file, &moov)
}

/// What an MP4 file's first sound track says of its audio, read from the movie header alone.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Sound {
    /// The track's length (its media header), else the movie's.
    pub duration_ms: Option<u64>,
    /// The rate the audio plays at: for HE-AAC (SBR), the extension's rate, twice the core's.
    pub sample_rate: Option<u32>,
    pub channels: Option<u8>,
    /// Whether the rate and channels come from the codec's own configuration (an MPEG-4 audio
    /// config, AC-3's or E-AC-3's box), not only from the sample entry's fields (which say 2
    /// channels for 5.1 AC-3, and the core's rate for HE-AAC).
    pub from_config: bool,
    /// The movie header runs past the end of the file (a cut download): read as far as it goes.
    pub cut: bool,
}

/// The first sound track of `file` (an MP4 or QuickTime file), for what `lofty` gets wrong or
/// cannot read: HE-AAC reported at its core rate, the channels of object types it misreads, a
/// codec it does not know (Vorbis in MP4), a movie header that runs past the end of the file.
/// `None` when the file has no movie header or no sound track.
pub(super) fn sound(file: &File) -> Option<Sound> {
    let len = file.metadata().ok()?.len();
    let moov = atoms_cut(file, 0, len).find(|a| &a.kind == b"moov")?;
    let mut out = Sound {
        cut: moov.cut || cut_short(file),
        ..Sound::default()
    };
    let track = atoms_cut(file, moov.body, moov.end)
        .filter(|a| &a.kind == b"trak")
        .take(MAX_CHILDREN)
        .filter_map(|trak| child(file, &trak, b"mdia"))
        .find(|mdia| {
            child(file, mdia, b"hdlr")
                .and_then(|h| read_array::<4>(file, h.body + 8, h.end))
                .is_some_and(|handler| &handler == b"soun")
        });
    let Some(track) = track else {
        // Cut before its sound track: the movie's length, if its header came before the cut.
        if out.cut {
            out.duration_ms = movie_duration_ms_in(file, &moov);
            return Some(out);
        }
        return None;
    };
    out.duration_ms = child(file, &track, b"mdhd")
        .and_then(|mdhd| header_duration_ms(file, &mdhd))
        .or_else(|| movie_duration_ms_in(file, &moov));
    let entry = child(file, &track, b"minf")
        .and_then(|minf| child(file, &minf, b"stbl"))
        .and_then(|stbl| child(file, &stbl, b"stsd"))
        .and_then(|stsd| atoms_cut(file, stsd.body + 8, stsd.end).next());
    if let Some(entry) = entry {
        sample_entry(file, &entry, &mut out);
    }
    Some(out)
}

/// Tracks, and atoms inside a track, looked at: real files have a few of each, and a file of
/// thousands of tracks of thousands of atoms each must not cost millions of reads.
const MAX_CHILDREN: usize = 64;

/// The first atom of `kind` among the first [`MAX_CHILDREN`] inside `parent` (which may have
/// been cut short: then so may it).
fn child(file: &File, parent: &Atom, kind: &[u8; 4]) -> Option<Atom> {
    atoms_cut(file, parent.body, parent.end)
        .take(MAX_CHILDREN)
        .find(|a| &a.kind == kind)
}

/// Whether an atom at the top of `file` claims more bytes than the file has: a download or
/// copy that stopped part way (the media data of a "fast start" file, whose movie header comes
/// first, or the movie header at the end of another). `lofty` reads such a file as whole.
pub(super) fn cut_short(file: &File) -> bool {
    let Ok(len) = file.metadata().map(|m| m.len()) else {
        return false;
    };
    atoms_cut(file, 0, len).any(|a| a.cut)
}

/// `N` bytes of `file` at `at`, if they lie before `end`.
fn read_array<const N: usize>(file: &File, at: u64, end: u64) -> Option<[u8; N]> {
    let mut b = [0u8; N];
    (at.checked_add(N as u64)? <= end).then_some(())?;
    file.read_exact_at(&mut b, at).ok()?;
    Some(b)
}

/// The duration a movie header (`mvhd`) or media header (`mdhd`) gives, in milliseconds: a
/// version byte, 3 bytes of flags, creation and modification times, the time scale and the
/// duration, the times and duration 32 bits wide in version 0 and 64 in version 1.
fn header_duration_ms(file: &File, atom: &Atom) -> Option<u64> {
    let mut b = [0u8; 32];
    let n = usize::try_from(atom.end - atom.body).ok()?.min(b.len());
    file.read_exact_at(&mut b[..n], atom.body).ok()?;
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

fn movie_duration_ms_in(file: &File, moov: &Atom) -> Option<u64> {
    let mvhd = atoms(file, moov.body, moov.end).find(|a| &a.kind == b"mvhd")?;
    header_duration_ms(file, &mvhd)
}

/// Bytes of an audio sample entry before its child atoms: 6 reserved, the data reference
/// index, then (QuickTime sound description version 0) version, revision, vendor, channels,
/// sample size, compression id, packet size and the 16.16 sample rate. Version 1 adds 16
/// bytes, version 2 36.
const SOUND_ENTRY: u64 = 28;

/// The rate and channels of a sample entry of the sound track's `stsd`: from its MPEG-4 audio
/// configuration when it has one (`esds`), else from the entry's own fields.
fn sample_entry(file: &File, entry: &Atom, out: &mut Sound) {
    let Some(b) = read_array::<{ SOUND_ENTRY as usize }>(file, entry.body, entry.end) else {
        return;
    };
    let version = u16::from_be_bytes([b[8], b[9]]);
    let channels = u16::from_be_bytes([b[16], b[17]]);
    let rate = u32::from_be_bytes([b[24], b[25], b[26], b[27]]) >> 16;
    out.channels = u8::try_from(channels).ok().filter(|&c| c > 0);
    out.sample_rate = Some(rate).filter(|&r| r > 0);
    let children = match version {
        0 => SOUND_ENTRY,
        1 => SOUND_ENTRY + 16,
        2 => SOUND_ENTRY + 36,
        _ => return,
    };
    let config = match &entry.kind {
        b"ac-3" => child_at(file, entry, children, b"dac3").and_then(|d| ac3_channels(file, &d)),
        b"ec-3" => child_at(file, entry, children, b"dec3").and_then(|d| eac3_channels(file, &d)),
        _ => child_at(file, entry, children, b"esds")
            .and_then(|esds| audio_config(file, &esds))
            .map(|c| (c.rate(), c.channels())),
    };
    let Some((rate, channels)) = config else {
        return;
    };
    out.from_config = true;
    out.sample_rate = rate.or(out.sample_rate);
    out.channels = channels.or(out.channels);
}

/// The first atom of `kind` among a sample entry's children, which start `skip` bytes into it.
fn child_at(file: &File, entry: &Atom, skip: u64, kind: &[u8; 4]) -> Option<Atom> {
    atoms_cut(file, entry.body + skip, entry.end)
        .take(MAX_CHILDREN)
        .find(|a| &a.kind == kind)
}

/// Full-bandwidth channels by AC-3 audio coding mode (`acmod`, ATSC A/52 Table 5.8; 0 is two
/// independent mono channels).
const ACMOD_CHANNELS: [u8; 8] = [2, 1, 2, 3, 3, 4, 4, 5];

/// Channels from an `AC3SpecificBox` (ETSI TS 102 366 F.4): `fscod` (2 bits), `bsid` (5),
/// `bsmod` (3), `acmod` (3), `lfeon` (1), ...
fn ac3_channels(file: &File, dac3: &Atom) -> Option<(Option<u32>, Option<u8>)> {
    let b = read_array::<3>(file, dac3.body, dac3.end)?;
    let bits = u32::from_be_bytes([0, b[0], b[1], b[2]]);
    let acmod = (bits >> 11 & 7) as usize;
    let lfe = (bits >> 10 & 1) as u8;
    Some((None, Some(ACMOD_CHANNELS[acmod] + lfe)))
}

/// Channels from an `EC3SpecificBox` (ETSI TS 102 366 F.6): the data rate (13 bits) and the
/// number of independent substreams less one (3), then for each: `fscod` (2), `bsid` (5), a
/// reserved bit, `asvc` (1), `bsmod` (3), `acmod` (3), `lfeon` (1), 3 reserved bits, the number
/// of dependent substreams (4) and, when there are any, the 9-bit locations of the channels
/// they add. The first independent substream's channels and its dependents'.
fn eac3_channels(file: &File, dec3: &Atom) -> Option<(Option<u32>, Option<u8>)> {
    // Six bytes with the channel locations, five without.
    let b = read_array::<6>(file, dec3.body, dec3.end).or_else(|| {
        read_array::<5>(file, dec3.body, dec3.end).map(|b| {
            let mut w = [0u8; 6];
            w[..5].copy_from_slice(&b);
            w
        })
    })?;
    let mut r = Bits { b: &b, at: 16 };
    r.get(2 + 5 + 1 + 1 + 3)?;
    let acmod = r.get(3)? as usize;
    let lfe = r.get(1)? as u8;
    r.get(3)?;
    let dependents = r.get(4)?;
    let mut channels = ACMOD_CHANNELS[acmod] + lfe;
    if dependents > 0 {
        // Lc/Rc, Lrs/Rrs, Cs, Ts, Lsd/Rsd, Lw/Rw, Lvh/Rvh, Cvh, LFE2.
        const PER_BIT: [u8; 9] = [2, 2, 1, 1, 2, 2, 2, 1, 1];
        let locations = r.get(9)?;
        for (i, n) in PER_BIT.iter().enumerate() {
            if locations >> (8 - i) & 1 == 1 {
                channels += n;
            }
        }
    }
    Some((None, Some(channels)))
}

/// Most bytes of an `esds` atom read.
const MAX_ESDS: u64 = 256;

/// The `AudioSpecificConfig` in an `esds` atom (ISO 14496-1 §7.2.6.5: an ES descriptor holding
/// a decoder config descriptor holding the decoder-specific info), when its object type says
/// MPEG-4 audio.
fn audio_config(file: &File, esds: &Atom) -> Option<AudioConfig> {
    let n = usize::try_from((esds.end - esds.body).min(MAX_ESDS)).ok()?;
    let mut b = vec![0u8; n];
    file.read_exact_at(&mut b, esds.body).ok()?;
    // Version and flags, then the ES descriptor.
    let (tag, es) = descriptor(b.get(4..)?)?;
    if tag != 3 {
        return None;
    }
    let flags = *es.get(2)?;
    let mut at = 3;
    if flags & 0x80 != 0 {
        at += 2; // depends on ES id
    }
    if flags & 0x40 != 0 {
        at += 1 + usize::from(*es.get(at)?); // URL
    }
    if flags & 0x20 != 0 {
        at += 2; // OCR ES id
    }
    let (tag, dc) = descriptor(es.get(at..)?)?;
    // Object type 0x40: MPEG-4 audio; 0x66..=0x68: MPEG-2 AAC, which carries the same config.
    if tag != 4 || !matches!(dc.first()?, 0x40 | 0x66..=0x68) {
        return None;
    }
    let (tag, specific) = descriptor(dc.get(13..)?)?;
    (tag == 5).then(|| AudioConfig::parse(specific)).flatten()
}

/// A descriptor at the start of `b`: its tag and body (ISO 14496-1 §8.3.3: the size in one to
/// four bytes of 7 bits each, the high bit set on all but the last).
fn descriptor(b: &[u8]) -> Option<(u8, &[u8])> {
    let tag = *b.first()?;
    let mut size = 0usize;
    let mut at = 1;
    loop {
        let byte = *b.get(at)?;
        size = size << 7 | usize::from(byte & 0x7F);
        at += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if at == 5 {
            return None;
        }
    }
    // A descriptor cut by `MAX_ESDS` keeps what is there.
    let body = b.get(at..)?;
    Some((tag, &body[..size.min(body.len())]))
}

/// What an MPEG-4 `AudioSpecificConfig` says (ISO 14496-3 §1.6.2.1).
#[derive(Debug, PartialEq, Eq)]
struct AudioConfig {
    /// The core's audio object type (2: AAC LC, 42: USAC, ...).
    object_type: u8,
    core_rate: Option<u32>,
    /// The rate SBR doubles the core's to, when the config says SBR is used.
    sbr_rate: Option<u32>,
    channel_config: u8,
    /// Parametric stereo is signalled.
    ps: bool,
}

/// Sampling frequencies by index (ISO 14496-3 Table 1.18).
const RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

impl AudioConfig {
    fn parse(b: &[u8]) -> Option<AudioConfig> {
        let mut r = Bits { b, at: 0 };
        let mut object_type = r.object_type()?;
        let core_rate = r.rate()?;
        let channel_config = r.get(4)? as u8;
        let mut sbr_rate = None;
        // Parametric stereo (HE-AAC v2) makes stereo of a mono core.
        let mut ps = object_type == 29;
        if matches!(object_type, 5 | 29) {
            // Explicit hierarchical signalling: SBR's rate, then the core's object type.
            sbr_rate = r.rate()?;
            object_type = r.object_type()?;
        } else if matches!(object_type, 1 | 2 | 3 | 4 | 6 | 7) && channel_config != 0 {
            // Backward-compatible signalling: after the core's config, a sync extension
            // announcing SBR. GASpecificConfig: frame length, depends on core coder (and its
            // 14-bit delay), extension flag (none for these object types), layer for type 6.
            r.get(1)?;
            if r.get(1)? == 1 {
                r.get(14)?;
            }
            if r.get(1)? == 1 {
                return Some(AudioConfig {
                    object_type,
                    core_rate,
                    sbr_rate,
                    channel_config,
                    ps,
                });
            }
            if object_type == 6 {
                r.get(3)?;
            }
            if r.left() >= 16 && r.get(11)? == 0x2B7 && r.object_type()? == 5 && r.get(1)? == 1 {
                sbr_rate = r.rate()?;
                // Then, maybe, a second sync extension announcing parametric stereo.
                if r.left() >= 12 && r.get(11) == Some(0x548) {
                    ps = r.get(1) == Some(1);
                }
            }
        }
        Some(AudioConfig {
            object_type,
            core_rate,
            sbr_rate,
            channel_config,
            ps,
        })
    }

    fn rate(&self) -> Option<u32> {
        self.sbr_rate.or(self.core_rate)
    }

    /// Channels by configuration (ISO 14496-3 Table 1.19, and 23003-3 for 11 to 14), a mono
    /// core with parametric stereo being stereo (as mutagen and ffprobe count it); `None` for 0
    /// (given by a program config element) and reserved values.
    fn channels(&self) -> Option<u8> {
        match self.channel_config {
            1 if self.ps => Some(2),
            c @ 1..=6 => Some(c),
            7 | 12 | 14 => Some(8),
            11 => Some(7),
            13 => Some(24),
            _ => None,
        }
    }
}

/// A big-endian bit reader.
struct Bits<'a> {
    b: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn get(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.b.get(self.at / 8)?;
            v = v << 1 | u32::from(byte >> (7 - self.at % 8) & 1);
            self.at += 1;
        }
        Some(v)
    }

    fn left(&self) -> usize {
        (self.b.len() * 8).saturating_sub(self.at)
    }

    /// An audio object type: 5 bits, 31 escaping to 32 plus 6 more.
    fn object_type(&mut self) -> Option<u8> {
        match self.get(5)? {
            31 => Some(32 + self.get(6)? as u8),
            t => Some(t as u8),
        }
    }

    /// A sampling frequency: a 4-bit index, 15 escaping to 24 explicit bits. `Some(None)` for
    /// a reserved index.
    fn rate(&mut self) -> Option<Option<u32>> {
        match self.get(4)? {
            15 => Some(Some(self.get(24)?).filter(|&r| r > 0)),
            i => Some(RATES.get(i as usize).copied()),
        }
    }
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

    /// `bytes` as an open file.
    fn file_of(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, bytes).unwrap();
        f
    }

    fn duration_of(bytes: &[u8]) -> Option<u64> {
        movie_duration_ms(&file_of(bytes))
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

    fn full_atom(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        atom(kind, &[&[0u8; 4][..], body].concat())
    }

    fn descriptor(tag: u8, body: &[u8]) -> Vec<u8> {
        // The size in the 4-byte form most muxers write.
        let n = body.len();
        let mut d = vec![
            tag,
            0x80 | (n >> 21) as u8,
            0x80 | (n >> 14) as u8,
            0x80 | (n >> 7) as u8,
        ];
        d.push(n as u8 & 0x7F);
        d.extend_from_slice(body);
        d
    }

    /// An `mp4a` sample entry (sound description version 0) whose `esds` holds `config` under
    /// object type `oti`.
    fn mp4a(channels: u16, rate: u32, oti: u8, config: &[u8]) -> Vec<u8> {
        let mut e = vec![0u8; 6];
        e.extend(1u16.to_be_bytes());
        e.extend([0u8; 8]);
        e.extend(channels.to_be_bytes());
        e.extend(16u16.to_be_bytes());
        e.extend([0u8; 4]);
        e.extend((rate << 16).to_be_bytes());
        let mut dc = vec![oti, 0x15, 0, 0x18, 0];
        dc.extend(128_000u32.to_be_bytes());
        dc.extend(128_000u32.to_be_bytes());
        dc.extend(descriptor(5, config));
        let mut es = vec![0, 1, 0];
        es.extend(descriptor(4, &dc));
        es.extend(descriptor(6, &[2]));
        e.extend(full_atom(b"esds", &descriptor(3, &es)));
        atom(b"mp4a", &e)
    }

    /// A movie of one track with handler `handler`, `ms` long, whose sample description is
    /// `entry`.
    fn movie(handler: &[u8; 4], ms: u32, entry: &[u8]) -> Vec<u8> {
        let mut mdhd = vec![0u8; 8];
        mdhd.extend(1000u32.to_be_bytes());
        mdhd.extend(ms.to_be_bytes());
        mdhd.extend([0u8; 4]);
        let mut hdlr = vec![0u8; 4];
        hdlr.extend(handler);
        hdlr.extend([0u8; 13]);
        let stsd = full_atom(b"stsd", &[&1u32.to_be_bytes()[..], entry].concat());
        // The sample tables after the description (one time-to-sample entry).
        let stts = full_atom(b"stts", &[0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 4, 0]);
        let stbl = atom(b"stbl", &[stsd, stts].concat());
        let minf = atom(b"minf", &stbl);
        let mdia = atom(
            b"mdia",
            &[full_atom(b"mdhd", &mdhd), full_atom(b"hdlr", &hdlr), minf].concat(),
        );
        let trak = atom(b"trak", &mdia);
        let mut f = atom(b"ftyp", b"M4A \0\0\0\0");
        let udta = atom(b"udta", &[0u8; 16]);
        f.extend(atom(b"moov", &[mvhd_v0(600, 600 * 7), trak, udta].concat()));
        f.extend(atom(b"mdat", &[0u8; 64]));
        f
    }

    fn sound_of(bytes: &[u8]) -> Option<Sound> {
        sound(&file_of(bytes))
    }

    #[test]
    fn he_aac_plays_at_the_sbr_rate() {
        // Explicit: object type 5 (SBR), 22.05 kHz core, mono, SBR at 44.1, then AAC LC.
        let explicit = [0x2B, 0x8A, 0x08, 0x00];
        assert_eq!(
            AudioConfig::parse(&explicit),
            Some(AudioConfig {
                object_type: 2,
                core_rate: Some(22_050),
                sbr_rate: Some(44_100),
                channel_config: 1,
                ps: false,
            })
        );
        // Object type 29 (SBR and parametric stereo): a mono core plays as stereo.
        let v2 = AudioConfig::parse(&[0xEB, 0x8A, 0x08, 0x00]).unwrap();
        assert_eq!((v2.rate(), v2.channels()), (Some(44_100), Some(2)));
        // Backward compatible (TagLib's zero-length-mdat.m4a): AAC LC at 22.05 kHz, then the
        // sync extension 0x2B7 announcing SBR at 44.1 kHz, then 0x548 announcing PS (its
        // flag, the last byte's top bit, set: stereo, as mutagen counts it; clear: mono).
        let compatible = [0x13, 0x88, 0x56, 0xE5, 0xA5, 0x48, 0x80];
        let c = AudioConfig::parse(&compatible).unwrap();
        assert_eq!((c.rate(), c.channels()), (Some(44_100), Some(2)));
        let no_ps = AudioConfig::parse(&[0x13, 0x88, 0x56, 0xE5, 0xA5, 0x48, 0x00]).unwrap();
        assert_eq!((no_ps.rate(), no_ps.channels()), (Some(44_100), Some(1)));
        // Plain AAC LC, 44.1 kHz stereo: no SBR.
        let lc = AudioConfig::parse(&[0x12, 0x10]).unwrap();
        assert_eq!(
            (lc.object_type, lc.rate(), lc.channels()),
            (2, Some(44_100), Some(2))
        );

        let s = sound_of(&movie(b"soun", 4_000, &mp4a(1, 22_050, 0x40, &explicit))).unwrap();
        assert_eq!(
            s,
            Sound {
                duration_ms: Some(4_000),
                sample_rate: Some(44_100),
                channels: Some(1),
                from_config: true,
                cut: false,
            }
        );
    }

    /// A sample entry of `kind` (sound description version 0, 2 channels at 48 kHz, as AC-3's
    /// always says) holding `config` as its child atom `config_kind`.
    fn entry_with(kind: &[u8; 4], config_kind: &[u8; 4], config: &[u8]) -> Vec<u8> {
        let mut e = vec![0u8; 6];
        e.extend(1u16.to_be_bytes());
        e.extend([0u8; 8]);
        e.extend(2u16.to_be_bytes());
        e.extend(16u16.to_be_bytes());
        e.extend([0u8; 4]);
        e.extend((48_000u32 << 16).to_be_bytes());
        e.extend(atom(config_kind, config));
        atom(kind, &e)
    }

    #[test]
    fn ac3_and_eac3_take_their_channels_from_their_boxes() {
        let channels = |entry: &[u8]| sound_of(&movie(b"soun", 1_000, entry)).unwrap().channels;
        // AC-3 3/2 with LFE: 5.1.
        assert_eq!(
            channels(&entry_with(b"ac-3", b"dac3", &[0x10, 0x3D, 0xC0])),
            Some(6)
        );
        // E-AC-3: one independent substream, 5.1; then with a dependent one adding Lrs/Rrs.
        let dec3 = [0x0C, 0x00, 0x20, 0x0F, 0x00];
        assert_eq!(channels(&entry_with(b"ec-3", b"dec3", &dec3)), Some(6));
        let dec3 = [0x0C, 0x00, 0x20, 0x0F, 0x02, 0x80];
        assert_eq!(channels(&entry_with(b"ec-3", b"dec3", &dec3)), Some(8));
        // Without its box, the entry's own (2) stands, and is not taken for the codec's.
        let bare = sound_of(&movie(b"soun", 1_000, &entry_with(b"ac-3", b"free", &[]))).unwrap();
        assert_eq!((bare.channels, bare.from_config), (Some(2), false));
    }

    #[test]
    fn an_escaped_object_type_keeps_its_channels() {
        // USAC (object type 31 + 11 = 42), 44.1 kHz, mono: `lofty` made 32 channels of it.
        let usac = [0xF9, 0x48, 0x24, 0x21, 0x1C, 0xC0];
        let c = AudioConfig::parse(&usac).unwrap();
        assert_eq!(
            (c.object_type, c.rate(), c.channels()),
            (42, Some(44_100), Some(1))
        );
        // Channel configurations: 7 is 7.1, 0 is given elsewhere (a program config element).
        let seven = AudioConfig::parse(&[0x12, 0x38]).unwrap();
        assert_eq!(seven.channels(), Some(8));
        assert_eq!(AudioConfig::parse(&[0x12, 0x00]).unwrap().channels(), None);
    }

    #[test]
    fn a_codec_without_an_audio_config_keeps_the_entry_fields() {
        // Vorbis in MP4 (object type 0xDD): the decoder info is Vorbis headers, not a config.
        let s = sound_of(&movie(
            b"soun",
            1_015,
            &mp4a(2, 44_100, 0xDD, b"\x01vorbis"),
        ))
        .unwrap();
        assert_eq!(
            (s.duration_ms, s.sample_rate, s.channels),
            (Some(1_015), Some(44_100), Some(2))
        );
        // A video track only: no sound.
        assert_eq!(
            sound_of(&movie(b"vide", 1_000, &mp4a(2, 8_000, 0x40, &[0x12, 0x10]))),
            None
        );
    }

    #[test]
    fn a_movie_header_past_the_end_is_read_as_far_as_it_goes() {
        let whole = movie(b"soun", 9_000, &mp4a(2, 48_000, 0x40, &[0x11, 0x90]));
        let s = sound_of(&whole).unwrap();
        assert_eq!(
            (s.duration_ms, s.sample_rate, s.cut),
            (Some(9_000), Some(48_000), false)
        );
        assert!(!cut_short(&file_of(&whole)));
        let found = |cut: usize| {
            let s = sound_of(&whole[..cut]).unwrap();
            (s.duration_ms, s.sample_rate, s.channels, s.cut)
        };
        let all = (Some(9_000), Some(48_000), Some(2), true);
        // Cut inside the trailing mdat (an interrupted download of a "fast start" file).
        assert_eq!(found(whole.len() - 10), all);
        assert!(cut_short(&file_of(&whole[..whole.len() - 10])));
        // The moov's last 4 bytes gone (of its user data), and the mdat after it, as in
        // music-metadata's issue-749.m4a; or cut inside the sample tables, after the sample
        // description: what the headers before the cut say is read.
        let moov_end = whole.len() - 72;
        assert_eq!(found(moov_end - 4), all);
        let stts = whole.windows(4).position(|w| w == b"stts").unwrap();
        assert_eq!(found(stts + 8), all);
        // Cut before the sound track's headers: the movie header's length, and the cut.
        let trak = whole.windows(4).position(|w| w == b"trak").unwrap();
        assert_eq!(found(trak + 20), (Some(7_000), None, None, true));
        let r = super::super::tests::extract_bytes("early.m4a", &whole[..trak + 20]);
        assert!(r.error.unwrap().starts_with("file cut short"));
        // Damage anywhere never panics.
        for at in 0..whole.len() {
            for byte in [0x00, 0xFF, 0x7F] {
                let mut bad = whole.clone();
                bad[at] = byte;
                let _ = sound_of(&bad);
            }
        }
    }

    #[test]
    fn a_scan_corrects_what_lofty_reads_and_reads_what_it_refuses() {
        let he_aac = movie(
            b"soun",
            4_000,
            &mp4a(1, 22_050, 0x40, &[0x2B, 0x8A, 0x08, 0x00]),
        );
        let r = super::super::tests::extract_bytes("he.m4a", &he_aac);
        assert_eq!(r.error, None);
        assert_eq!(
            (r.duration_ms, r.sample_rate, r.channels),
            (Some(4_000), Some(44_100), Some(1))
        );
        // `lofty` refuses an object type it does not know; the track's header still tells.
        let vorbis = movie(b"soun", 1_015, &mp4a(2, 44_100, 0xDD, b"\x01vorbis"));
        let r = super::super::tests::extract_bytes("v.mp4", &vorbis);
        assert_eq!(r.error, None);
        assert_eq!(
            (r.duration_ms, r.sample_rate, r.channels),
            (Some(1_015), Some(44_100), Some(2))
        );
        // A 3GPP2 file is an MP4 file.
        let r = super::super::tests::extract_bytes("clip.3g2", &he_aac);
        assert_eq!((r.duration_ms, r.sample_rate), (Some(4_000), Some(44_100)));
        // A movie header first (no `ftyp`) and cut short, as in music-metadata's issue-749.m4a:
        // `lofty` finds no movie header; what is there, and an error that says so.
        let cut = &he_aac[16..he_aac.len() - 72 - 4];
        let r = super::super::tests::extract_bytes("cut.m4a", cut);
        assert_eq!((r.duration_ms, r.sample_rate), (Some(4_000), Some(44_100)));
        assert!(r.error.unwrap().starts_with("file cut short"));
        // A "fast start" file whose media data stops part way: `lofty` reads it as whole.
        let r = super::super::tests::extract_bytes("dl.m4a", &he_aac[..he_aac.len() - 10]);
        assert_eq!((r.duration_ms, r.sample_rate), (Some(4_000), Some(44_100)));
        assert!(r.error.unwrap().starts_with("file cut short"));
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
