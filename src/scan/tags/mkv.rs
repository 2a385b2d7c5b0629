//! Duration, audio properties and tags of Matroska and WebM files (`.mkv`, `.mka`, `.webm`,
//! `.weba`, `.mk3d`), which `lofty` does not read.
//!
//! A Matroska file is a tree of EBML elements, each a variable-length id, a variable-length
//! size (all ones: unknown, to the end of its parent) and its data. After the `EBML` header
//! comes one `Segment` whose children include `Info` (the timestamp scale, the duration and a
//! title), `Tracks` (one `TrackEntry` per track, audio ones with their sampling frequency,
//! channels and bit depth), `Tags`, and the `Cluster`s that hold the media. `Info` and
//! `Tracks` come before the first cluster in practice, and a `SeekHead` before them gives the
//! position of any that does not, and of `Tags`, usually at the end. Only element headers and
//! those few elements are read: never the clusters.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::record::Record;

const EBML: u64 = 0x1A45_DFA3;
const SEGMENT: u64 = 0x1853_8067;
const SEEK_HEAD: u64 = 0x114D_9B74;
const SEEK: u64 = 0x4DBB;
const SEEK_ID: u64 = 0x53AB;
const SEEK_POSITION: u64 = 0x53AC;
const INFO: u64 = 0x1549_A966;
const TIMESTAMP_SCALE: u64 = 0x2A_D7B1;
const DURATION: u64 = 0x4489;
const TITLE: u64 = 0x7BA9;
const TRACKS: u64 = 0x1654_AE6B;
const TRACK_ENTRY: u64 = 0xAE;
const TRACK_TYPE: u64 = 0x83;
const CODEC_ID: u64 = 0x86;
const AUDIO: u64 = 0xE1;
const SAMPLING_FREQUENCY: u64 = 0xB5;
const CHANNELS: u64 = 0x9F;
const BIT_DEPTH: u64 = 0x6264;
const TAGS: u64 = 0x1254_C367;
const TAG: u64 = 0x7373;
const TARGETS: u64 = 0x63C0;
const TARGET_TYPE_VALUE: u64 = 0x68CA;
const SIMPLE_TAG: u64 = 0x67C8;
const TAG_NAME: u64 = 0x45A3;
const TAG_STRING: u64 = 0x4487;
const CLUSTER: u64 = 0x1F43_B675;

/// Elements looked at, at most, among the children of any one element: no real file comes
/// near it, and a damaged one cannot make the reader walk millions of tiny elements.
const MAX_CHILDREN: usize = 4096;
/// Bytes of one element's data read into memory at most (`Info`, `Tracks` or `Tags` are
/// read whole; a larger one, say tags with a picture in them, is skipped).
const MAX_READ: u64 = 1 << 20;
/// Track type of audio tracks.
const TRACK_AUDIO: u64 = 2;
/// Target type of tags about a whole album (and of tags about one track: 30).
const TARGET_ALBUM: u64 = 50;

/// One element: its id and where its data lies.
#[derive(Clone, Copy)]
struct Element {
    id: u64,
    data: u64,
    end: u64,
}

/// A variable-length integer at the start of `b`: its value (with the length marker kept when
/// `keep_marker`, as ids are written) and length; `None` when `b` does not hold all of it. A
/// size whose value bits are all ones is unknown: `u64::MAX`.
fn vint(b: &[u8], keep_marker: bool) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 || b.len() < len {
        return None;
    }
    let mut v = u64::from(first);
    if !keep_marker {
        v &= (1u64 << (8 - len)) - 1;
    }
    for &byte in &b[1..len] {
        v = v << 8 | u64::from(byte);
    }
    let all_ones = (1u64 << (7 * len)) - 1;
    Some((
        if !keep_marker && v == all_ones {
            u64::MAX
        } else {
            v
        },
        len,
    ))
}

/// The element whose header is at `at`, inside a parent ending at `end`: `None` when its
/// header or its data does not fit. An unknown size runs to `end`.
fn element_at(file: &File, at: u64, end: u64) -> Option<Element> {
    element_within(file, at, end, false)
}

/// As [`element_at`], but data that runs past `end` is cut there instead of refused.
fn element_cut_at(file: &File, at: u64, end: u64) -> Option<Element> {
    element_within(file, at, end, true)
}

fn element_within(file: &File, at: u64, end: u64, cut: bool) -> Option<Element> {
    let mut h = [0u8; 12];
    let n = usize::try_from(end.checked_sub(at)?)
        .unwrap_or(usize::MAX)
        .min(h.len());
    file.read_exact_at(&mut h[..n], at).ok()?;
    let (id, id_len) = vint(&h[..n], true)?;
    let (size, size_len) = vint(&h[id_len..n], false)?;
    let data = at + (id_len + size_len) as u64;
    let stop = if size == u64::MAX {
        end
    } else {
        match data.checked_add(size) {
            Some(e) if e <= end => e,
            _ if cut => end,
            _ => return None,
        }
    };
    Some(Element {
        id,
        data,
        end: stop,
    })
}

/// The children of the data `[from, to)` of `file`, in order, until one does not fit or one
/// of unknown size (whose end cannot be known without parsing it) has been given.
fn children_in_file(file: &File, from: u64, to: u64) -> impl Iterator<Item = Element> + '_ {
    let mut at = Some(from);
    std::iter::from_fn(move || {
        let e = element_at(file, at?, to)?;
        at = (e.end < to).then_some(e.end);
        Some(e)
    })
    .take(MAX_CHILDREN)
}

/// An element read into memory, whose children are parsed from there.
struct Loaded {
    bytes: Vec<u8>,
}

impl Loaded {
    fn read(file: &File, e: Element) -> Option<Loaded> {
        let len = e.end - e.data;
        if len > MAX_READ {
            return None;
        }
        let mut bytes = vec![0u8; usize::try_from(len).ok()?];
        file.read_exact_at(&mut bytes, e.data).ok()?;
        Some(Loaded { bytes })
    }
}

/// The children of `b`: `(id, data)` pairs, until one does not fit (an unknown size runs to
/// the end of `b`).
fn children(b: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let mut rest = b;
    std::iter::from_fn(move || {
        let (id, id_len) = vint(rest, true)?;
        let (size, size_len) = vint(rest.get(id_len..)?, false)?;
        let start = id_len + size_len;
        let end = if size == u64::MAX {
            rest.len()
        } else {
            start.checked_add(usize::try_from(size).ok()?)?
        };
        let data = rest.get(start..end)?;
        rest = &rest[end..];
        Some((id, data))
    })
    .take(MAX_CHILDREN)
}

fn uint(b: &[u8]) -> Option<u64> {
    (b.len() <= 8).then(|| b.iter().fold(0u64, |v, &x| v << 8 | u64::from(x)))
}

fn float(b: &[u8]) -> Option<f64> {
    match b.len() {
        4 => Some(f64::from(f32::from_be_bytes(b.try_into().ok()?))),
        8 => Some(f64::from_be_bytes(b.try_into().ok()?)),
        _ => None,
    }
}

/// A string element's text: UTF-8 up to its first NUL (padding), cleaned; `None` when empty
/// or not UTF-8.
fn text(b: &[u8]) -> Option<String> {
    let b = b.split(|&c| c == 0).next().unwrap_or_default();
    std::str::from_utf8(b).ok().and_then(super::clean)
}

/// Reads `file` as Matroska or WebM into `out`. `Err` with a one-line message when it is not
/// one; a part that cannot be read is left out.
pub(super) fn read(file: &File, out: &mut Record) -> Result<(), String> {
    let len = super::file_len(file)?;
    let header = element_at(file, 0, len)
        .filter(|e| e.id == EBML)
        .ok_or("not a Matroska file: no EBML header at its start")?;
    // A file cut short (a download that stopped) keeps its segment's size: what is there of it
    // is read.
    let segment = element_cut_at(file, header.end, len)
        .filter(|e| e.id == SEGMENT)
        .ok_or("damaged Matroska file: no segment after its EBML header")?;
    out.has_cover = Some(false);

    let (mut info, mut tracks, mut tags, mut seek_head) = (None, None, None, None);
    for e in children_in_file(file, segment.data, segment.end) {
        match e.id {
            INFO => info = info.or(Some(e)),
            TRACKS => tracks = tracks.or(Some(e)),
            TAGS => tags = tags.or(Some(e)),
            SEEK_HEAD => seek_head = seek_head.or(Some(e)),
            CLUSTER => break,
            _ => {}
        }
    }
    // What was not found before the first cluster, where the seek head says it is.
    if let Some(seek_head) = seek_head.and_then(|e| Loaded::read(file, e)) {
        for (_, seek) in children(&seek_head.bytes).filter(|&(id, _)| id == SEEK) {
            let (mut target, mut position) = (None, None);
            for (id, data) in children(seek) {
                match id {
                    SEEK_ID => target = vint(data, true).map(|(v, _)| v),
                    SEEK_POSITION => position = uint(data),
                    _ => {}
                }
            }
            let slot = match target {
                Some(INFO) => &mut info,
                Some(TRACKS) => &mut tracks,
                Some(TAGS) => &mut tags,
                _ => continue,
            };
            if slot.is_none()
                && let Some(at) = position.and_then(|p| segment.data.checked_add(p))
            {
                *slot = element_at(file, at, segment.end).filter(|e| Some(e.id) == target);
            }
        }
    }

    if let Some(info) = info.and_then(|e| Loaded::read(file, e)) {
        read_info(&info.bytes, out);
    }
    if let Some(tracks) = tracks.and_then(|e| Loaded::read(file, e)) {
        read_tracks(&tracks.bytes, out);
    }
    if let Some(tags) = tags.and_then(|e| Loaded::read(file, e)) {
        read_tags(&tags.bytes, out);
    }
    // A segment of known size that runs past the end (a live recording writes an unknown
    // size instead, which runs to the end by definition).
    if element_at(file, header.end, len).is_none() {
        return Err(
            "file cut short: its segment runs past the end of the file; read as far as it goes"
                .to_owned(),
        );
    }
    Ok(())
}

/// The duration and title from `Info`.
fn read_info(info: &[u8], out: &mut Record) {
    let mut scale = 1_000_000u64; // nanoseconds per tick, the default
    let mut duration = None;
    for (id, data) in children(info) {
        match id {
            TIMESTAMP_SCALE => scale = uint(data).filter(|&s| s > 0).unwrap_or(scale),
            DURATION => duration = float(data),
            TITLE => out.title = out.title.take().or_else(|| text(data)),
            _ => {}
        }
    }
    let ms = duration.map(|ticks| ticks * scale as f64 / 1e6);
    out.duration_ms = ms
        .filter(|ms| ms.is_finite() && *ms >= 1.0 && *ms < u64::MAX as f64)
        .map(|ms| ms as u64);
}

/// The sampling frequency, channels and bit depth of the first audio track.
fn read_tracks(tracks: &[u8], out: &mut Record) {
    for (_, entry) in children(tracks).filter(|&(id, _)| id == TRACK_ENTRY) {
        let is_audio =
            children(entry).any(|(id, d)| id == TRACK_TYPE && uint(d) == Some(TRACK_AUDIO));
        let Some((_, audio)) = children(entry)
            .find(|&(id, _)| id == AUDIO)
            .filter(|_| is_audio)
        else {
            continue;
        };
        let codec = children(entry)
            .find(|&(id, _)| id == CODEC_ID)
            .map_or(&[][..], |(_, codec)| codec);
        // Bit depth means something for lossless codecs only (writers put one on AAC too).
        let lossless = ["A_PCM", "A_FLAC", "A_ALAC", "A_WAVPACK4", "A_TTA1"]
            .iter()
            .any(|c| codec.starts_with(c.as_bytes()));
        for (id, data) in children(audio) {
            match id {
                SAMPLING_FREQUENCY => {
                    out.sample_rate = float(data)
                        .filter(|f| f.is_finite() && *f >= 1.0 && *f <= u32::MAX as f64)
                        .map(|f| f.round() as u32);
                }
                CHANNELS => out.channels = uint(data).and_then(|c| u8::try_from(c).ok()),
                BIT_DEPTH if lossless => {
                    out.bit_depth = uint(data).and_then(|b| u8::try_from(b).ok());
                }
                _ => {}
            }
        }
        if codec == b"A_OPUS" {
            // Opus always decodes at 48 kHz; what a muxer writes here is the encoder's input
            // rate (see `super::OPUS_RATE`).
            out.sample_rate = Some(super::OPUS_RATE);
        }
        out.channels = out.channels.filter(|&c| c > 0);
        out.bit_depth = out.bit_depth.filter(|&b| b > 0);
        return;
    }
}

/// Title, artists, album, album artist, genres, year and track number from `Tags`: tags whose
/// target is the album (type 50) give the album's fields, the others the track's, and the
/// track's own title wins over the segment title.
fn read_tags(tags: &[u8], out: &mut Record) {
    let mut title = None;
    for (_, tag) in children(tags).filter(|&(id, _)| id == TAG) {
        let target = children(tag)
            .find(|&(id, _)| id == TARGETS)
            .and_then(|(_, t)| children(t).find(|&(id, _)| id == TARGET_TYPE_VALUE))
            .and_then(|(_, v)| uint(v));
        let album = target == Some(TARGET_ALBUM);
        for (_, simple) in children(tag).filter(|&(id, _)| id == SIMPLE_TAG) {
            let (mut name, mut value) = (None, None);
            for (id, data) in children(simple) {
                match id {
                    TAG_NAME => name = text(data).map(|n| n.to_ascii_uppercase()),
                    TAG_STRING => value = text(data),
                    _ => {}
                }
            }
            let (Some(name), Some(value)) = (name, value) else {
                continue;
            };
            match (name.as_str(), album) {
                ("TITLE", false) => title = title.or(Some(value)),
                ("TITLE", true) | ("ALBUM", _) => out.album = out.album.take().or(Some(value)),
                ("ARTIST", false) => push_new(&mut out.artists, value),
                ("ARTIST", true) | ("ALBUM_ARTIST", _) => {
                    out.album_artist = out.album_artist.take().or(Some(value));
                }
                ("GENRE", _) => push_new(&mut out.genres, value),
                ("DATE_RELEASED" | "DATE_RECORDED", _) => {
                    out.year = out.year.or_else(|| year_of(&value));
                }
                ("PART_NUMBER", false) => {
                    out.track = out.track.or_else(|| value.trim().parse().ok());
                }
                _ => {}
            }
        }
    }
    if title.is_some() {
        out.title = title;
    }
}

fn push_new(list: &mut Vec<String>, value: String) {
    if !list.contains(&value) {
        list.push(value);
    }
}

/// The year a Matroska date (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`, …) begins with.
fn year_of(date: &str) -> Option<i32> {
    let digits = date.trim().get(..4)?;
    digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An element with a one-to-four-byte id and an eight-byte size.
    fn el(id: u64, data: &[u8]) -> Vec<u8> {
        let id_bytes = id.to_be_bytes();
        let skip = id_bytes.iter().take_while(|&&b| b == 0).count();
        let mut e = id_bytes[skip..].to_vec();
        e.push(0x01);
        e.extend(&(data.len() as u64).to_be_bytes()[1..]);
        e.extend_from_slice(data);
        e
    }

    fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    fn read_bytes(bytes: &[u8]) -> (Result<(), String>, Record) {
        crate::scan::tags::own_reader_tests::read_bytes(read, bytes)
    }

    fn sample(info_after_cluster: bool) -> Vec<u8> {
        let header = el(EBML, &el(0x4282, b"matroska"));
        let info = el(
            INFO,
            &cat(&[
                el(TIMESTAMP_SCALE, &[0x0F, 0x42, 0x40]),
                el(DURATION, &90_500.0f64.to_be_bytes()),
                el(TITLE, b"Segment title"),
            ]),
        );
        let tracks = el(
            TRACKS,
            &cat(&[
                el(TRACK_ENTRY, &el(TRACK_TYPE, &[1])),
                el(
                    TRACK_ENTRY,
                    &cat(&[
                        el(TRACK_TYPE, &[2]),
                        el(
                            AUDIO,
                            &cat(&[
                                el(SAMPLING_FREQUENCY, &48_000.0f32.to_be_bytes()),
                                el(CHANNELS, &[2]),
                            ]),
                        ),
                    ]),
                ),
            ]),
        );
        let simple = |name: &str, value: &str| {
            el(
                SIMPLE_TAG,
                &cat(&[
                    el(TAG_NAME, name.as_bytes()),
                    el(TAG_STRING, value.as_bytes()),
                ]),
            )
        };
        let tags = el(
            TAGS,
            &cat(&[
                el(
                    TAG,
                    &cat(&[
                        el(TARGETS, &el(TARGET_TYPE_VALUE, &[50])),
                        simple("TITLE", "The Album"),
                        simple("ARTIST", "Album Artist"),
                    ]),
                ),
                el(
                    TAG,
                    &cat(&[
                        simple("TITLE", "Track title"),
                        simple("ARTIST", "One"),
                        simple("artist", "Two"),
                        simple("GENRE", "Jazz"),
                        simple("DATE_RELEASED", "1999-04-01"),
                        simple("PART_NUMBER", "7"),
                    ]),
                ),
            ]),
        );
        let cluster = el(CLUSTER, &[0u8; 64]);
        let body = if info_after_cluster {
            // Info, tracks and tags after the cluster, found through the seek head.
            let seek = |id: u64, pos: u64| {
                el(
                    SEEK,
                    &cat(&[
                        el(SEEK_ID, &id.to_be_bytes()[4..]),
                        el(SEEK_POSITION, &pos.to_be_bytes()),
                    ]),
                )
            };
            let head_len = el(
                SEEK_HEAD,
                &cat(&[seek(INFO, 0), seek(TRACKS, 0), seek(TAGS, 0)]),
            )
            .len();
            let at_info = (head_len + cluster.len()) as u64;
            let at_tracks = at_info + info.len() as u64;
            let at_tags = at_tracks + tracks.len() as u64;
            let head = el(
                SEEK_HEAD,
                &cat(&[
                    seek(INFO, at_info),
                    seek(TRACKS, at_tracks),
                    seek(TAGS, at_tags),
                ]),
            );
            cat(&[head, cluster, info, tracks, tags])
        } else {
            cat(&[info, tracks, tags, cluster])
        };
        cat(&[header, el(SEGMENT, &body)])
    }

    #[test]
    fn info_tracks_and_tags_are_read_before_or_after_the_clusters() {
        for after in [false, true] {
            let (r, rec) = read_bytes(&sample(after));
            assert_eq!(r, Ok(()));
            assert_eq!(rec.duration_ms, Some(90_500), "after: {after}");
            assert_eq!(rec.sample_rate, Some(48_000));
            assert_eq!(rec.channels, Some(2));
            assert_eq!(rec.title.as_deref(), Some("Track title"));
            assert_eq!(rec.album.as_deref(), Some("The Album"));
            assert_eq!(rec.album_artist.as_deref(), Some("Album Artist"));
            assert_eq!(rec.artists, ["One", "Two"]);
            assert_eq!(rec.genres, ["Jazz"]);
            assert_eq!(rec.year, Some(1999));
            assert_eq!(rec.track, Some(7));
        }
    }

    #[test]
    fn an_opus_track_plays_at_48_khz() {
        // A muxer writes the encoder's input rate for Opus (16 kHz here); Opus decodes at 48.
        let track = |codec: &[u8]| {
            let entry = cat(&[
                el(TRACK_TYPE, &[2]),
                el(CODEC_ID, codec),
                el(AUDIO, &el(SAMPLING_FREQUENCY, &16_000.0f32.to_be_bytes())),
            ]);
            let segment = el(TRACKS, &el(TRACK_ENTRY, &entry));
            cat(&[el(EBML, &el(0x4282, b"webm")), el(SEGMENT, &segment)])
        };
        assert_eq!(read_bytes(&track(b"A_OPUS")).1.sample_rate, Some(48_000));
        assert_eq!(read_bytes(&track(b"A_VORBIS")).1.sample_rate, Some(16_000));
    }

    #[test]
    fn damaged_files_never_panic_and_keep_what_can_be_read() {
        let whole = sample(false);
        crate::scan::tags::own_reader_tests::survives_damage(read, &whole, 1, 0x9E37_79B9);
        assert!(read_bytes(b"").0.is_err());
        assert!(read_bytes(b"RIFF....").0.is_err());
        // A header alone: no segment.
        let (r, _) = read_bytes(&el(EBML, &[]));
        assert!(r.unwrap_err().contains("no segment"));
    }

    #[test]
    fn a_file_cut_short_keeps_what_comes_before_the_cut() {
        let whole = sample(false);
        let cluster_at = whole.len() - el(CLUSTER, &[0u8; 64]).len();
        for cut in [cluster_at + 20, cluster_at] {
            let (r, rec) = read_bytes(&whole[..cut]);
            assert!(r.unwrap_err().starts_with("file cut short"), "cut at {cut}");
            assert_eq!(rec.duration_ms, Some(90_500), "cut at {cut}");
            assert_eq!(rec.title.as_deref(), Some("Track title"), "cut at {cut}");
        }
        // A segment of unknown size (a live recording) runs to wherever the file ends.
        let mut live = whole.clone();
        let size_at = el(EBML, &el(0x4282, b"matroska")).len() + 4;
        live[size_at..size_at + 8]
            .copy_from_slice(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        let (r, rec) = read_bytes(&live[..cluster_at + 20]);
        assert_eq!(r, Ok(()));
        assert_eq!(rec.duration_ms, Some(90_500));
    }

    #[test]
    fn variable_length_integers() {
        assert_eq!(vint(&[0x81], false), Some((1, 1)));
        assert_eq!(vint(&[0x40, 0x02], false), Some((2, 2)));
        assert_eq!(vint(&[0xFF], false), Some((u64::MAX, 1)));
        assert_eq!(
            vint(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], false),
            Some((u64::MAX, 8))
        );
        assert_eq!(vint(&[0x1A, 0x45, 0xDF, 0xA3], true), Some((EBML, 4)));
        assert_eq!(vint(&[0x00, 1, 2, 3, 4, 5, 6, 7, 8], false), None);
        assert_eq!(vint(&[0x40], false), None);
        assert_eq!(vint(&[], false), None);
    }
}
