//! Stream properties and the ID3v2 tag of DSDIFF files (`.dff`, DSD audio as Philips specified
//! it for SACD masters), which `lofty` does not read.
//!
//! A DSDIFF file is one `FRM8` chunk of form type `DSD `: a 4-byte id and a 64-bit big-endian
//! size, then chunks of the same shape, each padded to an even length. The `PROP` chunk (of
//! property type `SND `) holds `FS  ` (the sampling frequency), `CHNL` (the channel count, then
//! an id per channel) and `CMPR` (`DSD ` for plain DSD, `DST ` for DST-compressed). The audio
//! is a `DSD ` chunk of one bit per sample and channel, or a `DST ` chunk whose `FRTE` chunk
//! gives the number of frames and the frames per second. Tags are in an `ID3 ` chunk, which the
//! format does not define but which every tagger writes.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::record::Record;

/// Chunks looked at, at most, on each of the two levels read.
const MAX_CHUNKS: usize = 256;

/// Whether `head` (a file's first bytes) starts a DSDIFF file.
pub(super) fn is_dff(head: &[u8]) -> bool {
    head.starts_with(b"FRM8") && head.get(12..16) == Some(b"DSD ")
}

/// A chunk: its id, where its body starts and how long it is.
struct Chunk {
    id: [u8; 4],
    body: u64,
    len: u64,
    /// It claimed more bytes than there are: `len` is what there is, and it is the last.
    cut: bool,
}

/// The chunks in `[from, to)` of `file`, in order; one that runs past `to` is the last, cut
/// to what there is.
fn chunks(file: &File, from: u64, to: u64) -> impl Iterator<Item = Chunk> + '_ {
    let mut at = from;
    std::iter::from_fn(move || {
        let mut h = [0u8; 12];
        if at.checked_add(12)? > to {
            return None;
        }
        file.read_exact_at(&mut h, at).ok()?;
        let id: [u8; 4] = h[..4].try_into().ok()?;
        let len = u64::from_be_bytes(h[4..].try_into().ok()?);
        let body = at + 12;
        let (len, cut) = match body.checked_add(len) {
            Some(end) if end <= to => (len, false),
            _ => (to - body, true),
        };
        at = if cut { to } else { body + len + (len & 1) };
        Some(Chunk { id, body, len, cut })
    })
    .take(MAX_CHUNKS)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The first bytes of a chunk's body, up to `N`.
fn head_of<const N: usize>(file: &File, c: &Chunk) -> Option<([u8; N], usize)> {
    let mut b = [0u8; N];
    let n = usize::try_from(c.len).map_or(N, |len| len.min(N));
    file.read_exact_at(&mut b[..n], c.body).ok()?;
    Some((b, n))
}

/// Reads `file` as DSDIFF into `out`. `Err` with a one-line message when it is not one; a tag
/// that cannot be read is an error too, with the stream properties kept.
pub(super) fn read(file: &File, out: &mut Record) -> Result<(), String> {
    let len = super::file_len(file)?;
    let mut h = [0u8; 16];
    if file.read_exact_at(&mut h, 0).is_err() || !is_dff(&h) {
        return Err("not a DSDIFF file: no FRM8 chunk of form DSD at its start".to_owned());
    }
    // A form that claims more than the file holds (a cut copy) is read as far as it goes.
    let form_end = u64::from_be_bytes(h[4..12].try_into().unwrap_or_default())
        .saturating_add(12)
        .min(len);
    let (mut rate, mut channels, mut dst) = (0u32, 0u16, false);
    let (mut dsd_bytes, mut dst_frames) = (None, None);
    let (mut tag, mut props_read, mut cut) = (None, false, false);
    for c in chunks(file, 16, form_end) {
        cut |= c.cut;
        match &c.id {
            // Only the first of each: a file of many must not cost a read of all their chunks.
            b"PROP" if !props_read => {
                props_read = true;
                let mut kind = [0u8; 4];
                if file.read_exact_at(&mut kind, c.body).is_err() || &kind != b"SND " {
                    continue;
                }
                for p in chunks(file, c.body + 4, c.body + c.len) {
                    let Some((b, n)) = head_of::<8>(file, &p) else {
                        continue;
                    };
                    let b = &b[..n];
                    match &p.id {
                        b"FS  " => rate = u32_at(b, 0).unwrap_or(0),
                        b"CHNL" => channels = u16_at(b, 0).unwrap_or(0),
                        b"CMPR" => dst = b.starts_with(b"DST "),
                        _ => {}
                    }
                }
            }
            b"DSD " => dsd_bytes = Some(c.len),
            b"DST " if dst_frames.is_none() => {
                dst_frames = chunks(file, c.body, c.body + c.len)
                    .find(|f| &f.id == b"FRTE")
                    .and_then(|f| head_of::<6>(file, &f))
                    .and_then(|(b, n)| Some((u32_at(&b[..n], 0)?, u16_at(&b[..n], 4)?)));
            }
            // A tag cut short is not read; one before the cut is.
            b"ID3 " if !c.cut => tag = Some((c.body, c.len)),
            _ => {}
        }
    }
    if rate == 0 || channels == 0 {
        return Err("damaged DSDIFF file: no sampling frequency or channel count".to_owned());
    }
    out.sample_rate = Some(rate);
    out.channels = u8::try_from(channels).ok();
    out.bit_depth = Some(1);
    out.has_cover = Some(false);
    let ms = match (dst, dsd_bytes, dst_frames) {
        // One bit per sample and channel.
        (false, Some(bytes), _) => {
            Some(u128::from(bytes) * 8 * 1000 / (u128::from(rate) * u128::from(channels)))
        }
        (true, _, Some((frames, per_s))) if per_s > 0 => {
            Some(u128::from(frames) * 1000 / u128::from(per_s))
        }
        _ => None,
    };
    out.duration_ms = ms
        .and_then(|ms| u64::try_from(ms).ok())
        .filter(|&ms| ms > 0);
    if !dst {
        let bits_per_s = u64::from(rate) * u64::from(channels);
        out.bitrate = u32::try_from(bits_per_s / 1000).ok().filter(|&b| b > 0);
    }
    let tagged = match tag {
        None => Ok(()),
        Some((_, tag_len)) if tag_len > super::dsf::MAX_TAG => Err(format!(
            "DSDIFF file's ID3v2 tag of {tag_len} bytes is over the {}-byte limit; not read",
            super::dsf::MAX_TAG
        )),
        Some((at, tag_len)) => super::dsf::read_id3(file, at, tag_len, out)
            .map_err(|e| format!("DSDIFF file's ID3v2 tag: {e}")),
    };
    if cut {
        // A copy that stopped part way: the length is that of the sound that is there.
        return Err(
            "file cut short: a chunk runs past the end of the file; read as far as it goes"
                .to_owned(),
        );
    }
    tagged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::tags::own_reader_tests::{read_bytes, survives_damage};

    fn chunk(id: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut c = id.to_vec();
        c.extend((body.len() as u64).to_be_bytes());
        c.extend_from_slice(body);
        if body.len() % 2 == 1 {
            c.push(0);
        }
        c
    }

    fn prop(rate: u32, channels: u16, compression: &[u8; 4]) -> Vec<u8> {
        let mut p = b"SND ".to_vec();
        p.extend(chunk(b"FS  ", &rate.to_be_bytes()));
        let mut ch = channels.to_be_bytes().to_vec();
        for _ in 0..channels {
            ch.extend(b"SLFT");
        }
        p.extend(chunk(b"CHNL", &ch));
        let mut cmpr = compression.to_vec();
        cmpr.push(3);
        cmpr.extend(b"odd");
        p.extend(chunk(b"CMPR", &cmpr));
        chunk(b"PROP", &p)
    }

    fn form(chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut body = b"DSD ".to_vec();
        body.extend(chunk(b"FVER", &0x0105_0000u32.to_be_bytes()));
        for c in chunks {
            body.extend_from_slice(c);
        }
        chunk(b"FRM8", &body)
    }

    fn id3(title: &str) -> Vec<u8> {
        let mut body = vec![3u8];
        body.extend_from_slice(title.as_bytes());
        super::super::tests::id3v23(&[(b"TIT2", &body)])
    }

    #[test]
    fn plain_dsd_with_a_tag() {
        // Two channels at 2.8224 MHz, 3 s: 2,822,400 × 2 × 3 ÷ 8 bytes.
        let f = form(&[
            prop(2_822_400, 2, b"DSD "),
            chunk(b"DSD ", &vec![0x69; 2_116_800]),
            chunk(b"ID3 ", &id3("A DSDIFF Title")),
        ]);
        let (result, r) = read_bytes(read, &f);
        assert_eq!(result, Ok(()));
        assert_eq!(r.duration_ms, Some(3_000));
        assert_eq!(r.sample_rate, Some(2_822_400));
        assert_eq!(r.channels, Some(2));
        assert_eq!(r.bit_depth, Some(1));
        assert_eq!(r.bitrate, Some(5_644));
        assert_eq!(r.title.as_deref(), Some("A DSDIFF Title"));
    }

    #[test]
    fn dst_compressed_takes_its_length_from_the_frame_count() {
        let mut frte = 150u32.to_be_bytes().to_vec();
        frte.extend(75u16.to_be_bytes());
        let dst = chunk(
            b"DST ",
            &[chunk(b"FRTE", &frte), chunk(b"DSTF", &[1, 2, 3])].concat(),
        );
        let (result, r) = read_bytes(read, &form(&[prop(5_644_800, 6, b"DST "), dst]));
        assert_eq!(result, Ok(()));
        assert_eq!(r.duration_ms, Some(2_000));
        assert_eq!(r.channels, Some(6));
        assert_eq!(r.bitrate, None);
    }

    #[test]
    fn not_dsdiff_or_without_properties_is_an_error() {
        assert!(read_bytes(read, b"FRM8\0\0\0\0\0\0\0\x04WAVE").0.is_err());
        assert!(read_bytes(read, b"").0.is_err());
        let (result, _) = read_bytes(read, &form(&[chunk(b"DSD ", &[0; 64])]));
        assert!(result.unwrap_err().contains("no sampling frequency"));
    }

    #[test]
    fn a_cut_file_is_read_as_far_as_it_goes_and_damage_never_panics() {
        let f = form(&[
            prop(2_822_400, 2, b"DSD "),
            chunk(b"DSD ", &vec![0x69; 705_600]),
        ]);
        // The form's size still counts the bytes cut away; the audio chunk no longer fits:
        // its length is that of the sound left, and the record says the file is cut.
        let (result, r) = read_bytes(read, &f[..f.len() - 705_600 / 2]);
        assert!(result.unwrap_err().starts_with("file cut short"));
        assert_eq!(r.sample_rate, Some(2_822_400));
        assert_eq!(r.duration_ms, Some(500));
        // A tag before the sound is whole, and read.
        let f = form(&[
            prop(2_822_400, 2, b"DSD "),
            chunk(b"ID3 ", &id3("Before the cut")),
            chunk(b"DSD ", &vec![0x69; 705_600]),
        ]);
        let (result, r) = read_bytes(read, &f[..f.len() - 705_600 / 2]);
        assert!(result.unwrap_err().starts_with("file cut short"));
        assert_eq!(r.title.as_deref(), Some("Before the cut"));
        survives_damage(read, &f[..400], 1, 7);
    }
}
