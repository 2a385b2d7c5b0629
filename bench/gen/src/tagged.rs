//! Real tagged audio: copies of a few template files, each retagged with `lofty` so that every
//! file carries its own title, artist, album, album artist, genre, track and year.
//!
//! Templates are the mp3, flac, ogg and m4a files under `--templates` (the committed
//! `fixtures/library`), except those under a `broken/` directory. Each album uses one template,
//! like a real album ripped in one format. A copy is retagged in memory (the template's bytes
//! in a `Cursor`, `Tag::save_to`) and written with one `write`.

use std::fs;
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use lofty::config::{ParseOptions, WriteOptions};
use lofty::file::TaggedFileExt;
use lofty::probe::Probe;
use lofty::tag::{Accessor, ItemKey, Tag, TagExt};

use crate::names;
use crate::rng::SplitMix64;
use crate::tree::{Album, Totals, write_new};

/// Extensions of the formats used as templates.
const TEMPLATE_EXTS: &[&str] = &["mp3", "flac", "ogg", "m4a"];

/// One template file held in memory.
pub struct Template {
    /// Where it came from.
    pub path: PathBuf,
    /// Its extension, lower case (used for the copies).
    pub ext: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Its primary tag (or an empty one of the format's primary type), cover art included, so
    /// the copies keep the template's embedded pictures.
    pub tag: Tag,
}

fn lofty_err(path: &Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{}: {e}", path.display()))
}

/// Loads the templates under `dir`, sorted by path so the choice is deterministic.
pub fn load_templates(dir: &Path) -> io::Result<Vec<Template>> {
    let mut paths = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            let ft = entry.file_type()?;
            if ft.is_dir() {
                if entry.file_name() != "broken" {
                    stack.push(path);
                }
            } else if ft.is_file() {
                let ext = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_ascii_lowercase);
                if ext.is_some_and(|e| TEMPLATE_EXTS.contains(&e.as_str())) {
                    paths.push(path);
                }
            }
        }
    }
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let bytes = fs::read(&path)?;
        let tf = Probe::new(Cursor::new(&bytes))
            .options(ParseOptions::new().read_cover_art(true))
            .guess_file_type()?
            .read()
            .map_err(|e| lofty_err(&path, e))?;
        let tag = tf
            .primary_tag()
            .cloned()
            .unwrap_or_else(|| Tag::new(tf.primary_tag_type()));
        // Keep the template without its tag, so every copy's tag is written fresh (the file
        // only grows). Rewriting an MP4 `ilst` in place that shrinks by exactly 8 bytes panics
        // in lofty 0.25.5 (`pad_atom` calls `write_free_atom` with `size == 8`, which asserts
        // `size > 8`); writing into a file without an `ilst` never takes that path.
        let mut cur = Cursor::new(bytes);
        tag.tag_type()
            .remove_from(&mut cur, WriteOptions::default())
            .map_err(|e| lofty_err(&path, e))?;
        let bytes = cur.into_inner();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        out.push(Template {
            path,
            ext,
            bytes,
            tag,
        });
    }
    if out.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no mp3/flac/ogg/m4a templates under {}", dir.display()),
        ));
    }
    Ok(out)
}

/// Tags written into one copy.
#[derive(Debug, Clone)]
pub struct Tags<'a> {
    /// Track title.
    pub title: &'a str,
    /// Track artist (and album artist).
    pub artist: &'a str,
    /// Album title.
    pub album: &'a str,
    /// Genre.
    pub genre: &'a str,
    /// Track number.
    pub track: u32,
    /// Tracks on the album.
    pub track_total: u32,
    /// Release year.
    pub year: u16,
}

/// The bytes of a copy of `template` carrying `tags`.
pub fn retag(template: &Template, tags: &Tags<'_>) -> io::Result<Vec<u8>> {
    let mut tag = template.tag.clone();
    tag.set_title(tags.title.to_owned());
    tag.set_artist(tags.artist.to_owned());
    tag.set_album(tags.album.to_owned());
    tag.set_genre(tags.genre.to_owned());
    tag.set_track(tags.track);
    tag.set_track_total(tags.track_total);
    tag.set_date(lofty::tag::items::Timestamp {
        year: tags.year,
        ..Default::default()
    });
    tag.insert_text(ItemKey::AlbumArtist, tags.artist.to_owned());
    let mut cur = Cursor::new(template.bytes.clone());
    tag.save_to(&mut cur, WriteOptions::default().preferred_padding(0))
        .map_err(|e| lofty_err(&template.path, e))?;
    Ok(cur.into_inner())
}

/// Creates one album of the tagged library: `album.files` retagged copies of one template.
pub fn make_tagged(
    album: &Album,
    seed: u64,
    templates: &[Template],
    totals: &Totals,
) -> io::Result<()> {
    let mut g = SplitMix64::derive(seed, album.index);
    let template = &templates[g.below(templates.len() as u64) as usize];
    fs::create_dir(&album.dir)?;
    let mut bytes = 0;
    for t in 1..=album.files {
        let title = names::title(&mut g);
        let name = names::track_file(&mut g, t, &album.artist, &title, &template.ext);
        let data = retag(
            template,
            &Tags {
                title: &title,
                artist: &album.artist,
                album: &album.title,
                genre: album.genre,
                track: t as u32,
                track_total: album.files as u32,
                year: album.year as u16,
            },
        )?;
        write_new(&album.dir.join(name), &data)?;
        bytes += data.len() as u64;
    }
    totals.files.fetch_add(album.files, Ordering::Relaxed);
    totals.dirs.fetch_add(1, Ordering::Relaxed);
    totals.bytes.fetch_add(bytes, Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lofty::file::AudioFile;

    #[test]
    fn every_template_retags_and_reads_back() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/library");
        let templates = load_templates(&dir).unwrap();
        assert!(templates.len() >= 4, "{} templates", templates.len());
        assert!(
            templates
                .iter()
                .all(|t| !t.path.to_string_lossy().contains("broken"))
        );
        for (i, t) in templates.iter().enumerate() {
            let title = format!("Title número {i}");
            let bytes = retag(
                t,
                &Tags {
                    title: &title,
                    artist: "Some Artist",
                    album: "Some Album",
                    genre: "Jazz",
                    track: 7,
                    track_total: 12,
                    year: 1987,
                },
            )
            .unwrap();
            let tf = Probe::new(Cursor::new(&bytes))
                .guess_file_type()
                .unwrap()
                .read()
                .unwrap();
            let tag = tf.primary_tag().expect("tag");
            assert_eq!(
                tag.title().as_deref(),
                Some(title.as_str()),
                "{}",
                t.path.display()
            );
            assert_eq!(tag.artist().as_deref(), Some("Some Artist"));
            assert_eq!(tag.album().as_deref(), Some("Some Album"));
            assert_eq!(tag.track(), Some(7));
            assert_eq!(tag.date().map(|d| d.year), Some(1987));
            assert!(tf.properties().duration().as_millis() > 0 || t.ext == "flac");
            // Titles of every length from 0 to 80 bytes: no size difference may trip lofty.
            for n in 0..80 {
                let title = "x".repeat(n);
                retag(
                    t,
                    &Tags {
                        title: &title,
                        artist: "A",
                        album: "B",
                        genre: "C",
                        track: 1,
                        track_total: 1,
                        year: 2000,
                    },
                )
                .unwrap();
            }
        }
    }
}
