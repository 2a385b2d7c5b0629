//! Stream properties and the ID3v2 tag of DSF files (`.dsf`, DSD audio), which `lofty` does not
//! read.
//!
//! A DSF file is a `DSD ` chunk (its size, the file's size and the offset of an ID3v2 tag, 0
//! when there is none), a `fmt ` chunk (channels, sampling frequency, bits per sample, sample
//! count), the audio, and the tag at the end. The tag is handed to `lofty` as if it were an MP3
//! file holding nothing else, read for its tags alone.

use std::fs::File;
use std::io::Cursor;
use std::os::unix::fs::FileExt;

use lofty::config::{ParseOptions, ParsingMode};
use lofty::file::{FileType, TaggedFileExt};
use lofty::probe::Probe;

use crate::record::Record;
use crate::store::format::{get_u32, get_u64};

/// Bytes of an ID3v2 tag read at most; a larger one (a big picture) is not read.
pub(super) const MAX_TAG: u64 = 16 << 20;

/// Whether `head` (a file's first bytes) starts a DSF file.
pub(super) fn is_dsf(head: &[u8]) -> bool {
    head.starts_with(b"DSD \x1c\0\0\0\0\0\0\0")
}

/// Reads `file` as DSF into `out`. `Err` with a one-line message when it is not one; a tag that
/// cannot be read is an error too, with the stream properties kept.
pub(super) fn read(file: &File, out: &mut Record) -> Result<(), String> {
    let len = super::file_len(file)?;
    let mut h = [0u8; 80];
    if file.read_exact_at(&mut h, 0).is_err() || !is_dsf(&h) {
        return Err("not a DSF file: no DSD chunk at its start".to_owned());
    }
    if &h[28..32] != b"fmt " {
        return Err("damaged DSF file: no fmt chunk after the DSD chunk".to_owned());
    }
    let (u32_at, u64_at) = (|at| get_u32(&h, at), |at| get_u64(&h, at));
    let (channels, rate, bits, mut samples) = (u32_at(52), u32_at(56), u32_at(60), u64_at(64));
    out.channels = u8::try_from(channels).ok().filter(|&c| c > 0);
    out.sample_rate = Some(rate).filter(|&r| r > 0);
    out.bit_depth = u8::try_from(bits).ok().filter(|&b| b > 0);
    // The data chunk (its size counts its 12-byte header) after the fmt chunk: the samples it
    // holds, as far as the file goes, bound the sample count the header gives. A header that
    // claims more (13 years in 73 KB) is damaged, or the file was cut; either way the length
    // is what is there, and the record says so.
    let mut cut = None;
    let mut d = [0u8; 12];
    if file.read_exact_at(&mut d, 80).is_ok() && &d[..4] == b"data" && channels > 0 {
        let bytes = get_u64(&d, 4)
            .saturating_sub(12)
            .min(len.saturating_sub(92));
        let held = bytes.saturating_mul(8) / u64::from(channels);
        // Each channel's last block of 4,096 bytes is padded.
        if samples > held.saturating_add(4096 * 8) {
            cut = Some(samples);
            samples = held;
        }
    }
    if rate > 0 {
        let ms = samples.saturating_mul(1000) / u64::from(rate);
        out.duration_ms = (ms > 0).then_some(ms);
        let bits_per_s = u64::from(rate) * u64::from(channels) * u64::from(bits);
        out.bitrate = u32::try_from(bits_per_s / 1000).ok().filter(|&b| b > 0);
    }
    out.has_cover = Some(false);
    if let Some(claimed) = cut {
        return Err(format!(
            "damaged or cut DSF file: its header claims {claimed} samples a channel, its data \
             holds {samples}; the length is what is there"
        ));
    }
    let tag_at = u64_at(20);
    if tag_at == 0 {
        return Ok(());
    }
    if tag_at < 80 || tag_at >= len {
        return Err(format!(
            "damaged DSF file: its tag offset {tag_at} is outside the {len}-byte file"
        ));
    }
    let tag_len = len - tag_at;
    if tag_len > MAX_TAG {
        return Err(format!(
            "DSF file's ID3v2 tag of {tag_len} bytes is over the {MAX_TAG}-byte limit; not read"
        ));
    }
    read_id3(file, tag_at, tag_len, out).map_err(|e| format!("DSF file's ID3v2 tag: {e}"))
}

/// Reads the ID3v2 tag of `len` bytes at `at` in `file` into `out`'s tag fields (and
/// `has_cover`). The tag is handed to `lofty` as if it were an MP3 file holding nothing else.
pub(super) fn read_id3(file: &File, at: u64, len: u64, out: &mut Record) -> Result<(), String> {
    // `lofty`'s time grows with the square of the frames (see `super::too_many_tag_items`).
    if super::id3_frames_over(file, &[], at, super::MAX_ID3_FRAMES) {
        return Err(format!(
            "more than {} frames: tags not read",
            super::MAX_ID3_FRAMES
        ));
    }
    let mut tag = vec![0u8; usize::try_from(len).map_err(|_| "too large".to_owned())?];
    file.read_exact_at(&mut tag, at)
        .map_err(|e| format!("cannot be read: {e}"))?;
    // Zeros after it: `lofty` looks for an APE tag's footer (32 bytes) and an ID3v1 tag (128)
    // at the end of an MPEG file, and refuses one too short to hold them.
    tag.resize(tag.len().max(256), 0);
    read_tag_bytes(tag, out)
}

/// Reads the APEv2 tag of `len` bytes at `at` in `file` (header, items, footer; the file's
/// last, or last but an ID3v1 tag) into `out`'s tag fields: handed to `lofty` at the end of an
/// MP3 file holding nothing else, where it looks for one.
pub(super) fn read_ape(file: &File, at: u64, len: u64, out: &mut Record) -> Result<(), String> {
    if super::ape_items(file).is_some_and(|n| n > super::MAX_ID3_FRAMES as u64) {
        return Err(format!(
            "more than {} items: tags not read",
            super::MAX_ID3_FRAMES
        ));
    }
    let n = usize::try_from(len).map_err(|_| "too large".to_owned())?;
    let mut tag = vec![0u8; 256 + n];
    file.read_exact_at(&mut tag[256..], at)
        .map_err(|e| format!("cannot be read: {e}"))?;
    read_tag_bytes(tag, out)
}

/// Reads the tags of `tag`, a buffer `lofty` takes for an MP3 file of nothing but tags.
fn read_tag_bytes(tag: Vec<u8>, out: &mut Record) -> Result<(), String> {
    // Relaxed: with no MPEG frame after the tag, a stricter reader refuses the "file".
    let options = ParseOptions::new()
        .parsing_mode(ParsingMode::Relaxed)
        .read_properties(false)
        .read_cover_art(true);
    let tagged = Probe::with_file_type(Cursor::new(tag), FileType::Mpeg)
        .options(options)
        .read()
        .map_err(|e| super::describe(&e))?;
    super::fill_tags(&tagged, out);
    out.has_cover = Some(tagged.tags().iter().any(|t| t.picture_count() > 0));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DSF file: 2 channels at 2.8224 MHz, 1 bit, `samples` samples per channel (in a data
    /// chunk of `held` of them), and `tag` (an ID3v2 tag, or nothing) at the end.
    fn dsf_holding(samples: u64, held: u64, tag: &[u8]) -> Vec<u8> {
        let data = vec![0x69u8; (held * 2 / 8) as usize];
        let body = 28 + 52 + 12 + data.len() as u64;
        let total = body + tag.len() as u64;
        let mut f = b"DSD ".to_vec();
        f.extend(28u64.to_le_bytes());
        f.extend(total.to_le_bytes());
        f.extend((if tag.is_empty() { 0 } else { body }).to_le_bytes());
        f.extend(b"fmt ");
        f.extend(52u64.to_le_bytes());
        for v in [1u32, 0, 2, 2, 2_822_400, 1] {
            f.extend(v.to_le_bytes());
        }
        f.extend(samples.to_le_bytes());
        f.extend(4096u32.to_le_bytes());
        f.extend(0u32.to_le_bytes());
        f.extend(b"data");
        f.extend((12 + data.len() as u64).to_le_bytes());
        f.extend(data);
        f.extend_from_slice(tag);
        f
    }

    fn dsf(samples: u64, tag: &[u8]) -> Vec<u8> {
        dsf_holding(samples, samples, tag)
    }

    fn id3(title: &str) -> Vec<u8> {
        let body = [&[3u8][..], title.as_bytes()].concat();
        super::super::tests::id3v23(&[(b"TIT2", &body)])
    }

    fn read_bytes(bytes: &[u8]) -> (Result<(), String>, Record) {
        super::super::tests::read_bytes_with(read, bytes)
    }

    #[test]
    fn properties_and_tag_are_read() {
        let (result, r) = read_bytes(&dsf(2_822_400 * 3, &id3("A DSD Title")));
        assert_eq!(result, Ok(()));
        assert_eq!(r.title.as_deref(), Some("A DSD Title"));
        assert_eq!(r.duration_ms, Some(3_000));
        assert_eq!(
            (r.sample_rate, r.channels, r.bit_depth),
            (Some(2_822_400), Some(2), Some(1))
        );
        assert_eq!(r.bitrate, Some(5_644));
        let (result, r) = read_bytes(&dsf(2_822_400, &[]));
        assert_eq!(result, Ok(()));
        assert_eq!((r.title, r.duration_ms), (None, Some(1_000)));
    }

    #[test]
    fn a_tag_of_too_many_frames_is_not_read_but_the_stream_is() {
        let frames: Vec<([u8; 4], Vec<u8>)> = (0..9000)
            .map(|i| (*b"TXXX", format!("\x03k{i}\0v").into_bytes()))
            .collect();
        let list: Vec<(&[u8; 4], &[u8])> = frames.iter().map(|(id, b)| (id, &b[..])).collect();
        let tag = super::super::tests::id3v23(&list);
        let (result, r) = read_bytes(&dsf(2_822_400, &tag));
        assert!(result.unwrap_err().contains("more than 8192 frames"));
        assert_eq!(r.duration_ms, Some(1000));
    }

    #[test]
    fn a_length_the_data_cannot_hold_is_cut_to_what_it_holds() {
        // A sample count of 13 years over 0.1 s of data (as a flipped high byte makes it).
        let (result, r) = read_bytes(&dsf_holding(1 << 50, 282_240, &id3("T")));
        assert!(result.unwrap_err().contains("its data holds 282240"));
        assert_eq!(r.duration_ms, Some(100));
        // Up to a padded block more than the header says is fine.
        let (result, r) = read_bytes(&dsf_holding(282_240 + 4096 * 8, 282_240, &[]));
        assert_eq!(result, Ok(()));
        assert_eq!(r.duration_ms, Some(111));
    }

    #[test]
    fn not_dsf_or_damaged_is_an_error_never_a_panic() {
        assert!(
            read_bytes(b"RIFF")
                .0
                .unwrap_err()
                .starts_with("not a DSF file")
        );
        let good = dsf(1000, &id3("T"));
        for cut in 0..good.len() {
            let _ = read_bytes(&good[..cut]);
        }
        for i in 0..good.len() {
            for v in [0x00, 0xFF] {
                let mut b = good.clone();
                b[i] = v;
                let _ = read_bytes(&b);
            }
        }
    }
}
