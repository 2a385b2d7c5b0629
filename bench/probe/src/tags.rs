//! The first-scan floor's work per file: open it relative to its directory's fd, let lofty
//! guess the container from its first bytes, and read its tags, properties and pictures: what
//! mediadb's extractor asks of lofty (it also reads pictures, to know `has_cover`), without its
//! panic isolation and field mapping. As in mediadb, only files whose extension names a format
//! lofty reads are opened.

use std::ffi::CStr;
use std::fs::File;
use std::io::BufReader;
use std::os::fd::BorrowedFd;

use lofty::config::ParseOptions;
use lofty::file::{AudioFile, TaggedFileExt};
use lofty::probe::Probe;
use lofty::tag::Accessor;
use rustix::fs::{Mode, OFlags, Statx};

use crate::walk::PerFile;

/// Extensions (lower case) of the audio formats lofty reads, as mediadb's `kind` table has them.
const AUDIO: &[&[u8]] = &[
    b"mp3", b"flac", b"ogg", b"oga", b"opus", b"m4a", b"m4b", b"mp4", b"aac", b"wav", b"aiff",
    b"aif", b"ape", b"wv", b"mpc", b"spx",
];

/// Reads every audio file with lofty.
pub struct ReadTags;

impl PerFile for ReadTags {
    fn file(&self, dir: BorrowedFd<'_>, name: &CStr, _stat: &Statx) -> Option<u64> {
        if !is_audio(name.to_bytes()) {
            return Some(0);
        }
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY;
        let fd = rustix::fs::openat(dir, name, flags, Mode::empty()).ok()?;
        let tagged = Probe::new(BufReader::new(File::from(fd)))
            .options(ParseOptions::new().read_cover_art(true))
            .guess_file_type()
            .ok()?
            .read()
            .ok()?;
        let mut seen = u64::from(tagged.properties().duration().as_millis() > 0);
        let tag = tagged.primary_tag().or_else(|| tagged.first_tag())?;
        for text in [tag.title(), tag.artist(), tag.album(), tag.genre()]
            .into_iter()
            .flatten()
        {
            seen += text.len() as u64;
        }
        seen += u64::from(tag.track().unwrap_or(0)) + u64::from(tag.date().is_some());
        seen += tag
            .pictures()
            .iter()
            .map(|p| p.data().len() as u64)
            .sum::<u64>();
        Some(seen)
    }
}

fn is_audio(name: &[u8]) -> bool {
    let Some(dot) = name.iter().rposition(|&b| b == b'.') else {
        return false;
    };
    let ext = &name[dot + 1..];
    AUDIO.iter().any(|a| a.eq_ignore_ascii_case(ext))
}

#[cfg(test)]
mod tests {
    use super::is_audio;

    #[test]
    fn audio_extensions_are_case_insensitive() {
        assert!(is_audio(b"01 - Song.FLAC"));
        assert!(is_audio(b"a.b.mp3"));
        assert!(!is_audio(b"cover.jpg"));
        assert!(!is_audio(b"mp3"));
    }
}
