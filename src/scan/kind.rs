//! Classifying files by extension: [`classify`] gives a file's [`Kind`] and MIME type.
//!
//! Only the bytes after the last `.` of the final path component matter, compared
//! case-insensitively, so paths that are not UTF-8 work as long as their extension is ASCII.
//! The file is never opened.
//!
//! Policy:
//! - Media extensions are looked up first in an explicit table ([`MEDIA`]), which fixes the
//!   types `mime_guess` gets wrong or lacks (`m4a` is `audio/mp4`, not `audio/m4a`; `ape`, `wv`,
//!   `dsf` are audio; `m3u`, `m3u8`, `pls`, `xspf`, `cue`, `wpl` and `asx` are playlists; …).
//! - Any other extension falls back to `mime_guess`: a MIME type under `audio/`, `video/` or
//!   `image/` gives that kind, and anything else (`text/plain`, `application/pdf`) is
//!   [`Kind::Other`] with that MIME type.
//! - A file with no extension (`README`, `.hidden`, `name.`), an extension that is not ASCII,
//!   or one neither source knows, is [`Kind::Other`] with no MIME type.

use crate::record::Kind;

/// Longest extension looked up; longer ones are unknown.
const MAX_EXT: usize = 16;

/// Media extensions (lower case) with their kind and MIME type, checked before `mime_guess`.
pub const MEDIA: &[(&str, Kind, &str)] = &[
    // Audio.
    ("aac", Kind::Audio, "audio/aac"),
    ("ac3", Kind::Audio, "audio/ac3"),
    ("afc", Kind::Audio, "audio/aiff"),
    ("aif", Kind::Audio, "audio/aiff"),
    ("aifc", Kind::Audio, "audio/aiff"),
    ("aiff", Kind::Audio, "audio/aiff"),
    ("alac", Kind::Audio, "audio/mp4"),
    ("amr", Kind::Audio, "audio/amr"),
    ("ape", Kind::Audio, "audio/x-ape"),
    ("caf", Kind::Audio, "audio/x-caf"),
    ("dff", Kind::Audio, "audio/x-dff"),
    ("dsf", Kind::Audio, "audio/x-dsf"),
    ("dts", Kind::Audio, "audio/vnd.dts"),
    ("f4a", Kind::Audio, "audio/mp4"),
    ("flac", Kind::Audio, "audio/flac"),
    ("m4a", Kind::Audio, "audio/mp4"),
    ("m4b", Kind::Audio, "audio/mp4"),
    ("m4p", Kind::Audio, "audio/mp4"),
    ("m4r", Kind::Audio, "audio/mp4"),
    ("mid", Kind::Audio, "audio/midi"),
    ("midi", Kind::Audio, "audio/midi"),
    ("mka", Kind::Audio, "audio/x-matroska"),
    ("mp1", Kind::Audio, "audio/mpeg"),
    ("mp2", Kind::Audio, "audio/mpeg"),
    ("mp3", Kind::Audio, "audio/mpeg"),
    ("mpc", Kind::Audio, "audio/x-musepack"),
    ("oga", Kind::Audio, "audio/ogg"),
    ("ogg", Kind::Audio, "audio/ogg"),
    ("opus", Kind::Audio, "audio/ogg"),
    ("spx", Kind::Audio, "audio/ogg"),
    ("tta", Kind::Audio, "audio/x-tta"),
    ("wav", Kind::Audio, "audio/wav"),
    ("wave", Kind::Audio, "audio/wav"),
    ("weba", Kind::Audio, "audio/webm"),
    ("wma", Kind::Audio, "audio/x-ms-wma"),
    ("wv", Kind::Audio, "audio/x-wavpack"),
    // Video.
    ("3g2", Kind::Video, "video/3gpp2"),
    ("3gp", Kind::Video, "video/3gpp"),
    ("3gpp", Kind::Video, "video/3gpp"),
    ("asf", Kind::Video, "video/x-ms-asf"),
    ("avi", Kind::Video, "video/x-msvideo"),
    ("f4v", Kind::Video, "video/mp4"),
    ("flv", Kind::Video, "video/x-flv"),
    ("m2ts", Kind::Video, "video/mp2t"),
    ("m4v", Kind::Video, "video/x-m4v"),
    ("mkv", Kind::Video, "video/x-matroska"),
    ("mov", Kind::Video, "video/quicktime"),
    ("mp4", Kind::Video, "video/mp4"),
    ("mpeg", Kind::Video, "video/mpeg"),
    ("mpg", Kind::Video, "video/mpeg"),
    ("mts", Kind::Video, "video/mp2t"),
    ("ogm", Kind::Video, "video/ogg"),
    ("ogv", Kind::Video, "video/ogg"),
    ("ts", Kind::Video, "video/mp2t"),
    ("vob", Kind::Video, "video/mpeg"),
    ("webm", Kind::Video, "video/webm"),
    ("wmv", Kind::Video, "video/x-ms-wmv"),
    // Images.
    ("arw", Kind::Image, "image/x-sony-arw"),
    ("avif", Kind::Image, "image/avif"),
    ("bmp", Kind::Image, "image/bmp"),
    ("cr2", Kind::Image, "image/x-canon-cr2"),
    ("dng", Kind::Image, "image/x-adobe-dng"),
    ("gif", Kind::Image, "image/gif"),
    ("heic", Kind::Image, "image/heic"),
    ("heif", Kind::Image, "image/heif"),
    ("jpe", Kind::Image, "image/jpeg"),
    ("jpeg", Kind::Image, "image/jpeg"),
    ("jpg", Kind::Image, "image/jpeg"),
    ("jxl", Kind::Image, "image/jxl"),
    ("nef", Kind::Image, "image/x-nikon-nef"),
    ("png", Kind::Image, "image/png"),
    ("svg", Kind::Image, "image/svg+xml"),
    ("tif", Kind::Image, "image/tiff"),
    ("tiff", Kind::Image, "image/tiff"),
    ("webp", Kind::Image, "image/webp"),
    // Playlists (and cue sheets, which list the tracks of an image file).
    ("asx", Kind::Playlist, "video/x-ms-asf"),
    ("cue", Kind::Playlist, "application/x-cue"),
    ("m3u", Kind::Playlist, "audio/x-mpegurl"),
    ("m3u8", Kind::Playlist, "application/vnd.apple.mpegurl"),
    ("pls", Kind::Playlist, "audio/x-scpls"),
    ("wpl", Kind::Playlist, "application/vnd.ms-wpl"),
    ("xspf", Kind::Playlist, "application/xspf+xml"),
];

/// The kind and MIME type of the file at `path` (exact bytes), from its extension alone.
///
/// See the module documentation for the policy.
///
/// ```
/// use mediadb::Kind;
/// use mediadb::scan::kind::classify;
///
/// assert_eq!(classify(b"/m/A/B/01 Song.FLAC"), (Kind::Audio, Some("audio/flac")));
/// assert_eq!(classify(b"/m/list.m3u8").0, Kind::Playlist);
/// assert_eq!(classify(b"/m/README"), (Kind::Other, None));
/// ```
pub fn classify(path: &[u8]) -> (Kind, Option<&'static str>) {
    let Some(ext) = extension(path) else {
        return (Kind::Other, None);
    };
    let mut buf = [0u8; MAX_EXT];
    let lower = &mut buf[..ext.len()];
    lower.copy_from_slice(ext);
    lower.make_ascii_lowercase();
    // `extension` only returns ASCII, so this cannot fail.
    let Ok(ext) = std::str::from_utf8(lower) else {
        return (Kind::Other, None);
    };
    if let Some(&(_, kind, mime)) = MEDIA.iter().find(|(e, _, _)| *e == ext) {
        return (kind, Some(mime));
    }
    match mime_guess::from_ext(ext).first_raw() {
        Some(mime) => (kind_of_mime(mime), Some(mime)),
        None => (Kind::Other, None),
    }
}

/// The kind a MIME type implies: its top-level type, with playlists recognised.
fn kind_of_mime(mime: &str) -> Kind {
    const PLAYLISTS: &[&str] = &[
        "audio/x-mpegurl",
        "audio/mpegurl",
        "application/vnd.apple.mpegurl",
        "audio/x-scpls",
        "audio/scpls",
        "application/xspf+xml",
    ];
    if PLAYLISTS.contains(&mime) {
        return Kind::Playlist;
    }
    match mime.split('/').next() {
        Some("audio") => Kind::Audio,
        Some("video") => Kind::Video,
        Some("image") => Kind::Image,
        _ => Kind::Other,
    }
}

/// The extension of the final component of `path`: the bytes after its last `.`, if that dot
/// is not the component's first byte, the extension is non-empty, ASCII alphanumeric (plus `+`,
/// `-`, `_`) and at most [`MAX_EXT`] bytes.
fn extension(path: &[u8]) -> Option<&[u8]> {
    let name = match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[i + 1..],
        None => path,
    };
    let dot = name.iter().rposition(|&b| b == b'.')?;
    if dot == 0 {
        return None;
    }
    let ext = &name[dot + 1..];
    let plausible = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'_');
    if ext.is_empty() || ext.len() > MAX_EXT || !ext.iter().all(plausible) {
        return None;
    }
    Some(ext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_table_wins_over_mime_guess() {
        let cases: &[(&[u8], Kind, &str)] = &[
            (b"a.mp3", Kind::Audio, "audio/mpeg"),
            (b"a.opus", Kind::Audio, "audio/ogg"),
            (b"a.m4a", Kind::Audio, "audio/mp4"),
            (b"a.m4b", Kind::Audio, "audio/mp4"),
            (b"a.flac", Kind::Audio, "audio/flac"),
            (b"a.ape", Kind::Audio, "audio/x-ape"),
            (b"a.wv", Kind::Audio, "audio/x-wavpack"),
            (b"a.mka", Kind::Audio, "audio/x-matroska"),
            (b"a.dsf", Kind::Audio, "audio/x-dsf"),
            (b"a.aiff", Kind::Audio, "audio/aiff"),
            (b"a.mkv", Kind::Video, "video/x-matroska"),
            (b"a.webm", Kind::Video, "video/webm"),
            (b"a.ts", Kind::Video, "video/mp2t"),
            (b"a.heic", Kind::Image, "image/heic"),
            (b"a.avif", Kind::Image, "image/avif"),
            (b"a.m3u", Kind::Playlist, "audio/x-mpegurl"),
            (b"a.m3u8", Kind::Playlist, "application/vnd.apple.mpegurl"),
            (b"a.pls", Kind::Playlist, "audio/x-scpls"),
            (b"a.xspf", Kind::Playlist, "application/xspf+xml"),
            (b"a.cue", Kind::Playlist, "application/x-cue"),
        ];
        for &(path, kind, mime) in cases {
            let name = String::from_utf8_lossy(path);
            assert_eq!(classify(path), (kind, Some(mime)), "{name}");
        }
    }

    #[test]
    fn extension_is_case_insensitive() {
        assert_eq!(classify(b"/x/Song.MP3"), (Kind::Audio, Some("audio/mpeg")));
        assert_eq!(classify(b"/x/Song.FlAc"), (Kind::Audio, Some("audio/flac")));
        assert_eq!(
            classify(b"/x/IMG_0001.JPG"),
            (Kind::Image, Some("image/jpeg"))
        );
        assert_eq!(classify(b"/x/movie.MKV").0, Kind::Video);
    }

    #[test]
    fn unknown_or_missing_extension_is_other_without_mime() {
        for path in [
            &b"/x/README"[..],
            b"/x/.hidden",
            b"/x/trailing.",
            b"/x.d/noext",
            b"/x/a.zzzunknownzzz",
            b"/x/a.thisextensioniswaytoolong",
            b"/x/a.m\xc3\xa4",
            b"",
            b"/",
            b".",
        ] {
            let name = String::from_utf8_lossy(path);
            assert_eq!(classify(path), (Kind::Other, None), "{name}");
        }
    }

    #[test]
    fn other_known_types_keep_their_mime() {
        assert_eq!(classify(b"/x/notes.txt"), (Kind::Other, Some("text/plain")));
        assert_eq!(
            classify(b"/x/a.pdf"),
            (Kind::Other, Some("application/pdf"))
        );
    }

    #[test]
    fn mime_guess_fallback_gives_kind_from_top_level_type() {
        // Not in the table: mime_guess knows them.
        assert_eq!(classify(b"/x/a.mp4v").0, Kind::Video);
        assert_eq!(classify(b"/x/a.ico").0, Kind::Image);
        assert_eq!(classify(b"/x/a.au").0, Kind::Audio);
        assert_eq!(kind_of_mime("audio/x-mpegurl"), Kind::Playlist);
        assert_eq!(kind_of_mime("application/json"), Kind::Other);
    }

    #[test]
    fn non_utf8_names_only_the_extension_matters() {
        assert_eq!(
            classify(b"/m/\xff\xfe/caf\xe9 \x80.ogg"),
            (Kind::Audio, Some("audio/ogg"))
        );
        assert_eq!(classify(b"\xff.png"), (Kind::Image, Some("image/png")));
        assert_eq!(classify(b"/m/a.\xff"), (Kind::Other, None));
    }

    #[test]
    fn only_the_final_component_counts() {
        assert_eq!(classify(b"/music.flac/readme"), (Kind::Other, None));
        assert_eq!(classify(b"/a.b/c.d/song.opus").0, Kind::Audio);
        assert_eq!(classify(b"song.tar.mp3").0, Kind::Audio);
    }

    #[test]
    fn table_is_lower_case_unique_and_within_limits() {
        for (i, (ext, _, mime)) in MEDIA.iter().enumerate() {
            assert_eq!(*ext, ext.to_ascii_lowercase());
            assert!(ext.len() <= MAX_EXT && !ext.is_empty());
            assert!(mime.contains('/'));
            assert!(
                MEDIA[..i].iter().all(|(e, _, _)| e != ext),
                "duplicate {ext}"
            );
        }
    }
}
