#!/usr/bin/env python3
"""Regenerates tests/data/vuio/: SQLite databases laid out exactly as VuIO wrote them in each of
its schema eras, and the oracle of what `mediadb migrate` must make of each.

Usage: scripts/make-vuio-fixtures.py [OUTDIR]      (default: tests/data/vuio in this repository)

Python 3 standard library only (sqlite3, json, os, sys); tested with Debian 12's python3 and
SQLite 3.40. The output is the same on every run: a fixed-seed PRNG, fixed timestamps. The DDL
below is copied verbatim from VuIO's sources (commits named beside each block) and is data, not
code of this project. The oracle (*.expected*.json*) is computed here, from the very rows this
script inserts, by the rules in tests/data/vuio/README.md, and shares nothing with mediadb's code.
tests/data/vuio/README.md describes every file.
"""

import json
import os
import sys

import sqlite3

# ────────────────────────────────────────────────────────────────────────────────────────────────
# VuIO's DDL, verbatim.
# ────────────────────────────────────────────────────────────────────────────────────────────────

# VuIO a311e14 (2025-08-27, "Windows fix 3"), src/database/mod.rs, SqliteDatabase::create_tables():
# every statement in the order it runs; the last one is bound ("schema_version", "1", now).
SQLX_V1_CREATE_TABLES = [
    r"""
            CREATE TABLE IF NOT EXISTS media_files (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                path TEXT UNIQUE NOT NULL,
                parent_path TEXT NOT NULL,
                filename TEXT NOT NULL,
                size INTEGER NOT NULL,
                modified INTEGER NOT NULL,
                mime_type TEXT NOT NULL,
                duration INTEGER,
                title TEXT,
                artist TEXT,
                album TEXT,
                genre TEXT,
                track_number INTEGER,
                year INTEGER,
                album_artist TEXT,
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL
            )
            """,
    r"""
            CREATE TABLE IF NOT EXISTS playlists (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT UNIQUE NOT NULL,
                description TEXT,
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL
            )
            """,
    r"""
            CREATE TABLE IF NOT EXISTS playlist_entries (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                playlist_id INTEGER NOT NULL,
                media_file_id INTEGER NOT NULL,
                position INTEGER NOT NULL,
                created_at INTEGER NOT NULL,
                FOREIGN KEY (playlist_id) REFERENCES playlists(id) ON DELETE CASCADE,
                FOREIGN KEY (media_file_id) REFERENCES media_files(id) ON DELETE CASCADE,
                UNIQUE(playlist_id, media_file_id),
                UNIQUE(playlist_id, position)
            )
            """,
    r"""CREATE INDEX IF NOT EXISTS idx_media_files_path ON media_files(path)""",
    r"""CREATE INDEX IF NOT EXISTS idx_media_files_parent_path ON media_files(parent_path)""",
    r"""CREATE INDEX IF NOT EXISTS idx_media_files_modified ON media_files(modified)""",
    r"""CREATE INDEX IF NOT EXISTS idx_media_files_mime_type ON media_files(mime_type)""",
    r"""CREATE INDEX IF NOT EXISTS idx_media_files_filename ON media_files(filename)""",
    r"""CREATE INDEX IF NOT EXISTS idx_media_files_artist ON media_files(artist)""",
    r"""CREATE INDEX IF NOT EXISTS idx_media_files_album ON media_files(album)""",
    r"""CREATE INDEX IF NOT EXISTS idx_media_files_genre ON media_files(genre)""",
    r"""CREATE INDEX IF NOT EXISTS idx_media_files_year ON media_files(year)""",
    r"""CREATE INDEX IF NOT EXISTS idx_media_files_album_artist ON media_files(album_artist)""",
    r"""CREATE INDEX IF NOT EXISTS idx_media_files_track_number ON media_files(track_number)""",
    r"""CREATE INDEX IF NOT EXISTS idx_playlist_entries_playlist_id ON playlist_entries(playlist_id)""",
    r"""CREATE INDEX IF NOT EXISTS idx_playlist_entries_media_file_id ON playlist_entries(media_file_id)""",
    r"""CREATE INDEX IF NOT EXISTS idx_playlist_entries_position ON playlist_entries(playlist_id, position)""",
    r"""
            CREATE TABLE IF NOT EXISTS database_metadata (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL,
                updated_at INTEGER NOT NULL
            )
            """,
    r"""INSERT OR IGNORE INTO database_metadata (key, value, updated_at) VALUES (?, ?, ?)""",
]

# VuIO e6bc0cb (= b4a6dd1^, 2025-08-29), src/database/mod.rs, migrate_to_version_2(): the last one is
# bound ("2", now).
SQLX_V2_MIGRATE = [
    r"""ALTER TABLE media_files ADD COLUMN canonical_path TEXT""",
    r"""ALTER TABLE media_files ADD COLUMN canonical_parent_path TEXT""",
    r"""CREATE INDEX IF NOT EXISTS idx_media_files_canonical_path ON media_files(canonical_path)""",
    r"""CREATE INDEX IF NOT EXISTS idx_media_files_canonical_parent_path ON media_files(canonical_parent_path)""",
    r"""UPDATE database_metadata SET value = ?, updated_at = ? WHERE key = 'schema_version'""",
]

# VuIO 77e3dee (2026-08-12, "Migration to SQLite"), crates/vuio-core/src/database/sqlite/schema.rs,
# DDL_TEMPLATE: the schema written with PRAGMA user_version = 1.
RUSQLITE_V1_DDL_TEMPLATE = r"""
CREATE TABLE IF NOT EXISTS media_files (
    id                 INTEGER PRIMARY KEY,
    path               TEXT    NOT NULL UNIQUE,
    parent_path        TEXT    NOT NULL,
    filename           TEXT    NOT NULL,
    size               INTEGER NOT NULL,
    modified_secs      INTEGER NOT NULL,
    mime_type          TEXT    NOT NULL,
    mime_family        TEXT    NOT NULL,
    duration_secs      REAL,
    title              TEXT,
    artist             TEXT,
    album              TEXT,
    genre              TEXT,
    track_number       INTEGER,
    year               INTEGER,
    album_artist       TEXT,
    subtitle_available INTEGER NOT NULL DEFAULT 0,
    created_at_secs    INTEGER NOT NULL,
    updated_at_secs    INTEGER NOT NULL,
    -- Browse ordering is "track number, then natural filename", with untagged
    -- records last. Materializing the rank keeps that an index scan instead of
    -- a sort over the whole directory.
    track_sort         INTEGER GENERATED ALWAYS AS (COALESCE(track_number, 4294967296)) STORED
) STRICT;

CREATE INDEX IF NOT EXISTS idx_media_dir_order
    ON media_files(parent_path, track_sort, filename COLLATE {NATURAL});
CREATE INDEX IF NOT EXISTS idx_media_dir_family
    ON media_files(parent_path, mime_family);
CREATE INDEX IF NOT EXISTS idx_media_album
    ON media_files(album, track_sort, filename COLLATE {NATURAL});
CREATE INDEX IF NOT EXISTS idx_media_artist       ON media_files(artist);
CREATE INDEX IF NOT EXISTS idx_media_genre        ON media_files(genre);
CREATE INDEX IF NOT EXISTS idx_media_year         ON media_files(year);
CREATE INDEX IF NOT EXISTS idx_media_album_artist ON media_files(album_artist);
CREATE INDEX IF NOT EXISTS idx_media_family       ON media_files(mime_family);

-- Directories exist only by implication from the paths of files, so unlike the
-- music indexes they cannot be recomputed by a query at browse time.
CREATE TABLE IF NOT EXISTS directories (
    path        TEXT PRIMARY KEY,
    parent_path TEXT NOT NULL,
    name        TEXT NOT NULL
) STRICT;

CREATE INDEX IF NOT EXISTS idx_directories_parent
    ON directories(parent_path, name COLLATE {NATURAL});

-- Recursive per-family record counts, maintained with the writes that change
-- them. `family = '*'` counts every descendant regardless of type; it is what
-- decides whether a directory exists at all.
CREATE TABLE IF NOT EXISTS directory_mime_counts (
    dir_path TEXT    NOT NULL REFERENCES directories(path) ON DELETE CASCADE,
    family   TEXT    NOT NULL,
    count    INTEGER NOT NULL,
    PRIMARY KEY (dir_path, family)
) STRICT;

CREATE TABLE IF NOT EXISTS playlists (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL,
    description     TEXT,
    source_path     TEXT,
    created_at_secs INTEGER NOT NULL,
    updated_at_secs INTEGER NOT NULL
) STRICT;

CREATE INDEX IF NOT EXISTS idx_playlists_source
    ON playlists(source_path) WHERE source_path IS NOT NULL;

CREATE TABLE IF NOT EXISTS playlist_entries (
    playlist_id   INTEGER NOT NULL REFERENCES playlists(id)   ON DELETE CASCADE,
    media_file_id INTEGER NOT NULL REFERENCES media_files(id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    PRIMARY KEY (playlist_id, position)
) STRICT;

CREATE INDEX IF NOT EXISTS idx_playlist_entries_file
    ON playlist_entries(media_file_id);

CREATE TABLE IF NOT EXISTS root_availability (
    path                   TEXT PRIMARY KEY,
    last_seen_secs         INTEGER NOT NULL,
    unavailable_since_secs INTEGER,
    indexed_count          INTEGER NOT NULL,
    reason                 TEXT    NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS secrets (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;
"""

# VuIO 3df3558 (2026-08-14), crates/vuio-core/src/database/sqlite/schema.rs: DDL_TEMPLATE, FTS_DDL,
# FTS_REBUILD and the MIGRATION_V* constants (SCHEMA_VERSION = 6). ddl() = DDL_TEMPLATE with
# {NATURAL} -> natural_order, followed by FTS_DDL; migration_v4() = FTS_DDL + FTS_REBUILD.
DDL_TEMPLATE = r"""
CREATE TABLE IF NOT EXISTS media_files (
    id                 INTEGER PRIMARY KEY,
    path               TEXT    NOT NULL UNIQUE,
    parent_path        TEXT    NOT NULL,
    filename           TEXT    NOT NULL,
    size               INTEGER NOT NULL,
    modified_secs      INTEGER NOT NULL,
    mime_type          TEXT    NOT NULL,
    mime_family        TEXT    NOT NULL,
    duration_secs      REAL,
    title              TEXT,
    artist             TEXT,
    album              TEXT,
    genre              TEXT,
    track_number       INTEGER,
    year               INTEGER,
    album_artist       TEXT,
    disc_number        INTEGER,
    disc_total         INTEGER,
    track_total        INTEGER,
    composer           TEXT,
    comment            TEXT,
    bpm                INTEGER,
    compilation        INTEGER,
    sort_title         TEXT,
    sort_artist        TEXT,
    sort_album         TEXT,
    release_date       TEXT,
    musicbrainz_track_id  TEXT,
    musicbrainz_album_id  TEXT,
    musicbrainz_artist_id TEXT,
    codec              TEXT,
    sample_rate        INTEGER,
    channels           INTEGER,
    bits_per_sample    INTEGER,
    bit_rate           INTEGER,
    -- Which tag reader wrote this record. A file whose bytes have not changed
    -- is still re-read when this trails the current reader, which is how a
    -- better extractor reaches records that were already indexed.
    tags_version       INTEGER NOT NULL DEFAULT 0,
    subtitle_available INTEGER NOT NULL DEFAULT 0,
    created_at_secs    INTEGER NOT NULL,
    updated_at_secs    INTEGER NOT NULL,
    -- Browse ordering is "disc, track number, then natural filename", with
    -- untagged records last. Materializing the rank keeps that an index scan
    -- instead of a sort over the whole directory.
    --
    -- `track_sort` is STORED and predates `disc_sort`; SQLite cannot alter a
    -- generated column, and ALTER TABLE only accepts VIRTUAL ones, so the disc
    -- rank is a separate VIRTUAL column that the same indexes cover. Declared
    -- here exactly as the migration adds it, so old and new files agree.
    track_sort         INTEGER GENERATED ALWAYS AS (COALESCE(track_number, 4294967296)) STORED,
    disc_sort          INTEGER GENERATED ALWAYS AS (COALESCE(disc_number, 1)) VIRTUAL
) STRICT;

CREATE INDEX IF NOT EXISTS idx_media_dir_order
    ON media_files(parent_path, disc_sort, track_sort, filename COLLATE {NATURAL});
CREATE INDEX IF NOT EXISTS idx_media_dir_family
    ON media_files(parent_path, mime_family);
CREATE INDEX IF NOT EXISTS idx_media_album
    ON media_files(album, disc_sort, track_sort, filename COLLATE {NATURAL});
CREATE INDEX IF NOT EXISTS idx_media_artist       ON media_files(artist);
CREATE INDEX IF NOT EXISTS idx_media_genre        ON media_files(genre);
CREATE INDEX IF NOT EXISTS idx_media_year         ON media_files(year);
CREATE INDEX IF NOT EXISTS idx_media_album_artist ON media_files(album_artist);
CREATE INDEX IF NOT EXISTS idx_media_family       ON media_files(mime_family);

-- Directories exist only by implication from the paths of files, so unlike the
-- music indexes they cannot be recomputed by a query at browse time.
CREATE TABLE IF NOT EXISTS directories (
    path        TEXT PRIMARY KEY,
    parent_path TEXT NOT NULL,
    name        TEXT NOT NULL
) STRICT;

CREATE INDEX IF NOT EXISTS idx_directories_parent
    ON directories(parent_path, name COLLATE {NATURAL});

-- Recursive per-family record counts, maintained with the writes that change
-- them. `family = '*'` counts every descendant regardless of type; it is what
-- decides whether a directory exists at all.
CREATE TABLE IF NOT EXISTS directory_mime_counts (
    dir_path TEXT    NOT NULL REFERENCES directories(path) ON DELETE CASCADE,
    family   TEXT    NOT NULL,
    count    INTEGER NOT NULL,
    PRIMARY KEY (dir_path, family)
) STRICT;

CREATE TABLE IF NOT EXISTS playlists (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL,
    description     TEXT,
    source_path     TEXT,
    created_at_secs INTEGER NOT NULL,
    updated_at_secs INTEGER NOT NULL
) STRICT;

CREATE INDEX IF NOT EXISTS idx_playlists_source
    ON playlists(source_path) WHERE source_path IS NOT NULL;

CREATE TABLE IF NOT EXISTS playlist_entries (
    playlist_id   INTEGER NOT NULL REFERENCES playlists(id)   ON DELETE CASCADE,
    media_file_id INTEGER NOT NULL REFERENCES media_files(id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    PRIMARY KEY (playlist_id, position)
) STRICT;

CREATE INDEX IF NOT EXISTS idx_playlist_entries_file
    ON playlist_entries(media_file_id);

CREATE TABLE IF NOT EXISTS root_availability (
    path                   TEXT PRIMARY KEY,
    last_seen_secs         INTEGER NOT NULL,
    unavailable_since_secs INTEGER,
    indexed_count          INTEGER NOT NULL,
    reason                 TEXT    NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS secrets (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

-- A station the server broadcasts: which folders feed it, in what order, and
-- whether it should be on the air.
--
-- `enabled` is desired state rather than a record of what happened. It is what
-- makes a restart resume the stations an operator left running, and why only an
-- explicit stop takes one off the air. `seed` fixes a shuffled station's order
-- so that resuming continues the same sequence instead of drawing a new one,
-- and `cursor_path` is where in that sequence to pick up.
CREATE TABLE IF NOT EXISTS radio_stations (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL,
    genre           TEXT    NOT NULL,
    folders         TEXT    NOT NULL,
    mode            TEXT    NOT NULL,
    enabled         INTEGER NOT NULL,
    seed            INTEGER NOT NULL,
    cursor_path     TEXT,
    created_at_secs INTEGER NOT NULL,
    updated_at_secs INTEGER NOT NULL
) STRICT;

-- Every tag the reader found that has no column of its own, kept verbatim so
-- that using a new one later is a query rather than another migration. The
-- composite key is what makes multi-valued tags — two artists, three genres —
-- representable at all.
CREATE TABLE IF NOT EXISTS media_tags (
    media_file_id INTEGER NOT NULL REFERENCES media_files(id) ON DELETE CASCADE,
    key           TEXT    NOT NULL,
    value         TEXT    NOT NULL,
    PRIMARY KEY (media_file_id, key, value)
) STRICT;


-- What a public metadata service said about a file: title, synopsis, rating and
-- a pointer into the artwork cache.
--
-- Deliberately not `media_tags`. That table is cleared and rewritten in full
-- every time a record is re-scanned, because it holds what the file itself
-- claims and the file is the authority on that. This holds what somebody else
-- said, which no amount of re-reading the file can reproduce, so it has to
-- survive a scan. It still goes when the file does, via the cascade.
CREATE TABLE IF NOT EXISTS mediainfo (
    media_file_id     INTEGER PRIMARY KEY REFERENCES media_files(id) ON DELETE CASCADE,
    provider          TEXT    NOT NULL,
    remote_id         TEXT    NOT NULL,
    kind              TEXT    NOT NULL,
    title             TEXT,
    original_title    TEXT,
    overview          TEXT,
    release_date      TEXT,
    year              INTEGER,
    rating            REAL,
    genres            TEXT,
    season            INTEGER,
    episode           INTEGER,
    artwork_key       TEXT,
    payload           TEXT    NOT NULL,
    confidence        INTEGER NOT NULL,
    fetched_at        INTEGER NOT NULL,
    mediainfo_version INTEGER NOT NULL
) STRICT;

-- The dashboard lists the least certain matches first, which is a sort over the
-- whole table.
CREATE INDEX IF NOT EXISTS idx_mediainfo_confidence ON mediainfo(confidence);
"""

FTS_DDL = r"""
CREATE VIRTUAL TABLE IF NOT EXISTS media_fts USING fts5(
    filename, title, artist, album, album_artist, genre, composer, comment,
    content='media_files',
    content_rowid='id',
    tokenize='unicode61 remove_diacritics 2'
);

-- Triggers rather than call-site updates: `media_files` is written from the
-- scanner's bulk paths, the watcher's incremental ones, subtree removal and
-- native cleanup. A trigger covers all of them by construction, and cannot be
-- forgotten by the next write path someone adds.
CREATE TRIGGER IF NOT EXISTS media_fts_insert AFTER INSERT ON media_files BEGIN
    INSERT INTO media_fts(rowid, filename, title, artist, album, album_artist,
                          genre, composer, comment)
    VALUES (new.id, new.filename, new.title, new.artist, new.album,
            new.album_artist, new.genre, new.composer, new.comment);
END;

-- External-content tables are updated by inserting a matching 'delete' row that
-- cancels the old one, then inserting the new one. The old *values* have to be
-- given exactly, which is why the delete half spells out `old.`.
CREATE TRIGGER IF NOT EXISTS media_fts_delete AFTER DELETE ON media_files BEGIN
    INSERT INTO media_fts(media_fts, rowid, filename, title, artist, album,
                          album_artist, genre, composer, comment)
    VALUES ('delete', old.id, old.filename, old.title, old.artist, old.album,
            old.album_artist, old.genre, old.composer, old.comment);
END;

CREATE TRIGGER IF NOT EXISTS media_fts_update AFTER UPDATE ON media_files BEGIN
    INSERT INTO media_fts(media_fts, rowid, filename, title, artist, album,
                          album_artist, genre, composer, comment)
    VALUES ('delete', old.id, old.filename, old.title, old.artist, old.album,
            old.album_artist, old.genre, old.composer, old.comment);
    INSERT INTO media_fts(rowid, filename, title, artist, album, album_artist,
                          genre, composer, comment)
    VALUES (new.id, new.filename, new.title, new.artist, new.album,
            new.album_artist, new.genre, new.composer, new.comment);
END;

CREATE VIRTUAL TABLE IF NOT EXISTS mediainfo_fts USING fts5(
    title, original_title, overview,
    content='mediainfo',
    content_rowid='media_file_id',
    tokenize='unicode61 remove_diacritics 2'
);

CREATE TRIGGER IF NOT EXISTS mediainfo_fts_insert AFTER INSERT ON mediainfo BEGIN
    INSERT INTO mediainfo_fts(rowid, title, original_title, overview)
    VALUES (new.media_file_id, new.title, new.original_title, new.overview);
END;

CREATE TRIGGER IF NOT EXISTS mediainfo_fts_delete AFTER DELETE ON mediainfo BEGIN
    INSERT INTO mediainfo_fts(mediainfo_fts, rowid, title, original_title, overview)
    VALUES ('delete', old.media_file_id, old.title, old.original_title, old.overview);
END;

CREATE TRIGGER IF NOT EXISTS mediainfo_fts_update AFTER UPDATE ON mediainfo BEGIN
    INSERT INTO mediainfo_fts(mediainfo_fts, rowid, title, original_title, overview)
    VALUES ('delete', old.media_file_id, old.title, old.original_title, old.overview);
    INSERT INTO mediainfo_fts(rowid, title, original_title, overview)
    VALUES (new.media_file_id, new.title, new.original_title, new.overview);
END;
"""

FTS_REBUILD = r"""
INSERT INTO media_fts(media_fts) VALUES('rebuild');
INSERT INTO mediainfo_fts(mediainfo_fts) VALUES('rebuild');
"""

MIGRATION_V2 = r"""
ALTER TABLE media_files ADD COLUMN disc_number           INTEGER;
ALTER TABLE media_files ADD COLUMN disc_total            INTEGER;
ALTER TABLE media_files ADD COLUMN track_total           INTEGER;
ALTER TABLE media_files ADD COLUMN composer              TEXT;
ALTER TABLE media_files ADD COLUMN comment               TEXT;
ALTER TABLE media_files ADD COLUMN bpm                   INTEGER;
ALTER TABLE media_files ADD COLUMN compilation           INTEGER;
ALTER TABLE media_files ADD COLUMN sort_title            TEXT;
ALTER TABLE media_files ADD COLUMN sort_artist           TEXT;
ALTER TABLE media_files ADD COLUMN sort_album            TEXT;
ALTER TABLE media_files ADD COLUMN release_date          TEXT;
ALTER TABLE media_files ADD COLUMN musicbrainz_track_id  TEXT;
ALTER TABLE media_files ADD COLUMN musicbrainz_album_id  TEXT;
ALTER TABLE media_files ADD COLUMN musicbrainz_artist_id TEXT;
ALTER TABLE media_files ADD COLUMN codec                 TEXT;
ALTER TABLE media_files ADD COLUMN sample_rate           INTEGER;
ALTER TABLE media_files ADD COLUMN channels              INTEGER;
ALTER TABLE media_files ADD COLUMN bits_per_sample       INTEGER;
ALTER TABLE media_files ADD COLUMN bit_rate              INTEGER;
ALTER TABLE media_files ADD COLUMN tags_version          INTEGER NOT NULL DEFAULT 0;
ALTER TABLE media_files ADD COLUMN disc_sort INTEGER
    GENERATED ALWAYS AS (COALESCE(disc_number, 1)) VIRTUAL;

-- The ordering indexes now lead with the disc rank, and `CREATE INDEX IF NOT
-- EXISTS` will not redefine one that already exists.
DROP INDEX IF EXISTS idx_media_dir_order;
DROP INDEX IF EXISTS idx_media_album;
"""

MIGRATION_V3 = r"""
CREATE TABLE IF NOT EXISTS mediainfo (
    media_file_id     INTEGER PRIMARY KEY REFERENCES media_files(id) ON DELETE CASCADE,
    provider          TEXT    NOT NULL,
    remote_id         TEXT    NOT NULL,
    kind              TEXT    NOT NULL,
    title             TEXT,
    original_title    TEXT,
    overview          TEXT,
    release_date      TEXT,
    year              INTEGER,
    rating            REAL,
    genres            TEXT,
    season            INTEGER,
    episode           INTEGER,
    artwork_key       TEXT,
    payload           TEXT    NOT NULL,
    confidence        INTEGER NOT NULL,
    fetched_at        INTEGER NOT NULL,
    mediainfo_version INTEGER NOT NULL
) STRICT;
"""

MIGRATION_V5 = r"""
DROP INDEX IF EXISTS idx_media_tags_version;
DROP INDEX IF EXISTS idx_media_tags_key;
"""

MIGRATION_V6 = r"""
CREATE TABLE IF NOT EXISTS radio_stations (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL,
    genre           TEXT    NOT NULL,
    folders         TEXT    NOT NULL,
    mode            TEXT    NOT NULL,
    enabled         INTEGER NOT NULL,
    seed            INTEGER NOT NULL,
    cursor_path     TEXT,
    created_at_secs INTEGER NOT NULL,
    updated_at_secs INTEGER NOT NULL
) STRICT;

DELETE FROM secrets WHERE key = 'radio_broadcast_state';
"""

NATURAL = "natural_order"


def rusqlite_v6_ddl():
    """3df3558's ddl(): the template with the collation name substituted, then the FTS DDL."""
    return DDL_TEMPLATE.replace("{NATURAL}", NATURAL) + FTS_DDL


def rusqlite_v6_migrations():
    """3df3558's migrations(): (version it produces, SQL), in order."""
    return [
        (2, MIGRATION_V2),
        (3, MIGRATION_V3),
        (4, FTS_DDL + FTS_REBUILD),  # migration_v4()
        (5, MIGRATION_V5),
        (6, MIGRATION_V6),
    ]


# ────────────────────────────────────────────────────────────────────────────────────────────────
# Helpers.
# ────────────────────────────────────────────────────────────────────────────────────────────────


class Rng:
    """splitmix64: deterministic on every Python version, unlike `random`'s derived methods."""

    def __init__(self, seed):
        self.state = seed & 0xFFFFFFFFFFFFFFFF

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        return z ^ (z >> 31)

    def below(self, n):
        return self.next() % n

    def between(self, lo, hi):
        return lo + self.below(hi - lo + 1)

    def chance(self, percent):
        return self.below(100) < percent

    def pick(self, seq):
        return seq[self.below(len(seq))]

    def uuid(self):
        h = "%016x%016x" % (self.next(), self.next())
        h = h[:12] + "4" + h[13:16] + "89ab"[int(h[16], 16) % 4] + h[17:]
        return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:32])

    def shuffled(self, seq):
        out = list(seq)
        for i in range(len(out) - 1, 0, -1):
            j = self.below(i + 1)
            out[i], out[j] = out[j], out[i]
        return out


def natural_cmp(a, b):
    """Stand-in for VuIO's natural_cmp (any consistent natural-ish order will do for SQLite)."""

    def key(s):
        parts, num, text = [], "", ""
        for ch in s:
            if ch.isdigit() and ch.isascii():
                if text:
                    parts.append((1, text.lower(), 0))
                    text = ""
                num += ch
            else:
                if num:
                    parts.append((0, "", int(num)))
                    num = ""
                text += ch
        if num:
            parts.append((0, "", int(num)))
        if text:
            parts.append((1, text.lower(), 0))
        return (parts, s)

    ka, kb = key(a), key(b)
    return (ka > kb) - (ka < kb)


def connect(path):
    for stale in (path, path + "-wal", path + "-shm", path + "-journal"):
        if os.path.exists(stale):
            os.remove(stale)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.create_collation(NATURAL, natural_cmp)
    return conn


def finish(conn):
    """VuIO runs its files in WAL mode; fold the log back and leave a plain rollback-journal file
    so that the fixture is one self-contained file (no -wal, no -shm)."""
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    mode = conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
    assert mode == "delete", mode
    conn.close()


def parent_of(path):
    """Rust's Path::parent() for a Unix path, as VuIO's parent_directory() uses it: None at the
    root and for a single relative component."""
    if path == "/" or "/" not in path.rstrip("/"):
        return None
    head = path.rstrip("/")
    head = head[: head.rindex("/")].rstrip("/")
    if head == "":
        return "/" if path.startswith("/") else None
    return head


# ────────────────────────────────────────────────────────────────────────────────────────────────
# The library: one list of files, described once, written out per era.
# ────────────────────────────────────────────────────────────────────────────────────────────────

AUDIO_EXT = {"mp3": "audio/mpeg", "flac": "audio/flac", "m4a": "audio/mp4", "ogg": "audio/ogg"}
CODEC = {"mp3": "mp3", "flac": "flac", "m4a": "aac", "ogg": "vorbis"}

# (album artist, album, year, genre, format, composer)
ALBUMS = [
    ("Björk", "Homogenic", 1997, "Electronic", "flac", "Björk Guðmundsdóttir"),
    ("Björk", "Vespertine", 2001, "Electronic", "mp3", None),
    ("Mötley Crüe", "Dr. Feelgood", 1989, "Hard Rock", "mp3", None),
    ("坂本龍一", "async", 2017, "Ambient", "flac", "坂本龍一"),
    ("Sigur Rós", "Ágætis byrjun", 1999, "Post-Rock", "ogg", None),
    ("Crosby, Stills & Nash", "Crosby, Stills & Nash", 1969, "Folk Rock", "m4a", None),
    ("The Quiet Ones", "Small Hours", 2012, "Jazz", "flac", "Ada Quiet"),
    ("The Quiet Ones", "Late Set", 2015, "Jazz", "m4a", "Ada Quiet"),
    ("Los Años Dorados", "Canciones del Ñandú", 1978, "Latin", "mp3", None),
    ("🎸 Band", "Emoji Power 🔥", 2021, "Pop", "m4a", None),
    ("Ünter Grund", "Tiefgarage", 2005, "Techno", "ogg", None),
    ("Various Artists", "Summer Hits 2020", 2020, "Pop", "mp3", None),
    ("Amélie Trio", "Café Sessions", 2010, "Jazz", "flac", "Amélie Roux"),
    ("Kraftwerk Tribute", "Die Mensch·Maschine", 1978, "Electronic", "mp3", None),
    ("Orquesta Típica", "Tango Nocturno", 1955, "Tango", "flac", None),
    ("Nordic Lights", "Fjällvinden", 2019, "Folk", "ogg", None),
]

WORDS = [
    "Hunter", "Jóga", "Unravel", "Bachelorette", "Pagan Poetry", "Cocoon", "Aurora",
    "Kickstart My Heart", "Same Ol' Situation", "andata", "disintegration", "solari",
    "Svefn-g-englar", "Starálfur", "Suite: Judy Blue Eyes", "Marrakesh Express", "Blue Hour",
    "After Midnight", "Smoke Rings", "Ballad, for Two", "La Última Noche", "Corazón",
    "日本語の歌", "Über den Wolken", "Naïve Melody", "Déjà Vu", "Straße", "Fire 🔥",
    "Night Drive", "Bassline", "Interlude", "Reprise", "Ölfarben", "Café au lait", "Milonga",
    "Nordlys", "Vinterdröm", "Ending", "Señorita", "Zürich", "Tokyo 東京", "Moonlight",
]

GUESTS = ["Alice Example", "Bob Beispiel", "Carla Ü", "MC Ñ", "張偉"]


class Library:
    def __init__(self, seed):
        rng = Rng(seed)
        self.rng = rng
        files = []

        def base(path, mime, size, mtime):
            return {
                "path": path, "mime": mime, "size": size, "mtime": mtime,
                "title": None, "artist": None, "album": None, "album_artist": None,
                "genre": None, "year": None, "track": None, "duration_us": None,
                "disc": None, "disc_total": None, "track_total": None, "composer": None,
                "comment": None, "bpm": None, "compilation": None, "sort_title": None,
                "sort_artist": None, "sort_album": None, "release_date": None,
                "mb_track": None, "mb_album": None, "mb_artist": None, "codec": None,
                "sample_rate": None, "channels": None, "bits": None, "bit_rate": None,
                "tags_version": 0, "subtitle": 0,
                "created": 1700000000 + rng.below(5000000),
                "extra": [],   # media_tags rows (VuIO 6): (key, value), in rowid order
                "only_v6": False,
            }

        def audio_duration_us():
            us = rng.between(95_000_000, 480_000_000)
            if 495 <= us % 1000 <= 505:  # keep well away from a rounding tie at .5 ms
                us += 20
            return us

        def bit_rate_for(ext):
            if ext == "flac":
                br = rng.between(700_000, 1_400_000)
            elif ext == "mp3":
                br = rng.pick([320_000, 256_000, 192_000, rng.between(150_000, 300_000)])
            elif ext == "m4a":
                br = rng.pick([256_000, 128_000, rng.between(120_000, 260_000)])
            else:
                br = rng.between(96_000, 320_000)
            if br % 1000 == 500:
                br += 1
            return br

        word = 0
        for album_index, (aa, album, year, genre, ext, composer) in enumerate(ALBUMS):
            n_tracks = rng.between(6, 11)
            discs = 2 if album_index in (0, 6, 11) else 1
            mb_album = rng.uuid()
            mb_artist = rng.uuid()
            album_dir = "/srv/music/%s/%s" % (aa, album.replace("/", "-"))
            compilation = 1 if aa == "Various Artists" else (0 if rng.chance(60) else None)
            for disc in range(1, discs + 1):
                for t in range(1, n_tracks + 1):
                    title = WORDS[word % len(WORDS)]
                    word += 1
                    if discs > 1:
                        name = "%d-%02d %s.%s" % (disc, t, title, ext)
                    else:
                        name = "%02d %s.%s" % (t, title, ext)
                    f = base(album_dir + "/" + name, AUDIO_EXT[ext],
                             rng.between(2_000_000, 60_000_000),
                             1500000000 + rng.below(200_000_000))
                    artist = aa
                    if aa == "Various Artists":
                        artist = rng.pick(GUESTS + ["DJ Sommer", "The Beach Boys Tribute"])
                    elif rng.chance(8):
                        artist = "%s feat. %s" % (aa, rng.pick(GUESTS))
                    f.update(
                        title=title, artist=artist, album=album, album_artist=aa,
                        genre=genre, year=year, track=t, duration_us=audio_duration_us(),
                        disc=disc if (discs > 1 or rng.chance(50)) else None,
                        disc_total=discs if (discs > 1 or rng.chance(30)) else None,
                        track_total=n_tracks if rng.chance(70) else None,
                        composer=composer,
                        comment=rng.pick([None, None, None, "Remastered", "Live at the Roxy",
                                          "Recorded in Reykjavík"]),
                        bpm=rng.between(60, 180) if rng.chance(30) else None,
                        compilation=compilation,
                        sort_title=("Last, The" if title.startswith("The ") else None),
                        sort_artist=(aa[4:] + ", The" if aa.startswith("The ") else None),
                        sort_album=(album[4:] + ", The" if album.startswith("The ") else None),
                        release_date=("%d-%02d-%02d" % (year, rng.between(1, 12), rng.between(1, 28))
                                      if rng.chance(50) else (str(year) if rng.chance(50) else None)),
                        mb_track=rng.uuid() if rng.chance(75) else None,
                        mb_album=mb_album if rng.chance(85) else None,
                        mb_artist=mb_artist if rng.chance(60) else None,
                        codec=CODEC[ext],
                        sample_rate=(rng.pick([44100, 48000, 96000]) if ext == "flac"
                                     else rng.pick([44100, 48000])),
                        channels=1 if rng.chance(5) else 2,
                        bits=rng.pick([16, 24]) if ext == "flac" else None,
                        bit_rate=bit_rate_for(ext),
                        tags_version=3,
                    )
                    files.append(f)
            if album_index % 3 == 0:
                cover = base(album_dir + "/cover.jpg", "image/jpeg", rng.between(40_000, 900_000),
                             1500000000 + rng.below(200_000_000))
                files.append(cover)

        # Untagged and oddly tagged music.
        u = "/srv/music/Unsorted"
        f = base(u + "/track01.mp3", "audio/mpeg", 4_404_019, 1600000001)
        f.update(duration_us=None, codec="mp3", sample_rate=44100, channels=2, bit_rate=128_000,
                 tags_version=3)
        files.append(f)  # every tag NULL, no duration
        f = base(u + "/Empty Tags.ogg", "audio/ogg", 3_100_000, 1600000002)
        f.update(title="", artist="", album="", album_artist="", genre="", composer="",
                 comment="", sort_title="", mb_track="", duration_us=audio_duration_us(),
                 codec="vorbis", sample_rate=44100, channels=2, bit_rate=160_000, tags_version=3)
        files.append(f)  # every text tag the empty string
        f = base(u + "/Blank Title.mp3", "audio/mpeg", 5_000_000, 1600000003)
        f.update(title="   ", artist="Somebody", genre="Rock", duration_us=audio_duration_us(),
                 codec="mp3", sample_rate=44100, channels=2, bit_rate=192_000, tags_version=3)
        files.append(f)  # a whitespace-only title
        f = base(u + "/Demo, take 2 (rough mix).m4a", "audio/mp4", 7_777_777, 1600000004)
        f.update(title="Demo, take 2", artist="Nobody Yet", album="Demos", track=None, year=None,
                 duration_us=audio_duration_us(), codec="aac", sample_rate=48000, channels=2,
                 bit_rate=256_000, compilation=0, tags_version=3)
        files.append(f)  # a name with spaces and a comma; no track, no year
        f = base(u + "/no year no genre.flac", "audio/flac", 30_000_000, 1600000005)
        f.update(title="No Year", artist="Anon", album="Loose Ends", genre=None, year=None,
                 track=7, duration_us=audio_duration_us(), codec="flac", sample_rate=44100,
                 channels=2, bits=16, bit_rate=900_123, tags_version=3)
        files.append(f)

        # Videos.
        films = [
            ("Films", "Le Fabuleux Destin d'Amélie Poulain (2001).mkv", 2001),
            ("Films", "Das Leben der Anderen (2006).mkv", 2006),
            ("Films", "千と千尋の神隠し (2001).mp4", 2001),
            ("Films", "Night of the Living Dead (1968).mp4", 1968),
            ("Films", "Metropolis (1927).mkv", 1927),
            ("Films", "Ladri di biciclette (1948).mkv", 1948),
            ("Films", "Cidade de Deus (2002).mp4", 2002),
            ("Home Videos", "Birthday 2019.mp4", None),
            ("Home Videos", "Beach, day 1.mp4", None),
            ("Home Videos", "Skiing in Zürich 🎿.mp4", None),
            ("Home Videos", "first steps.mkv", None),
        ]
        for sub, name, year in films:
            for part in ([1, 2] if "Metropolis" in name else [None]):
                n = name if part is None else name.replace(".mkv", " - Part %d.mkv" % part)
                ext = n.rsplit(".", 1)[1]
                f = base("/srv/video/%s/%s" % (sub, n),
                         "video/x-matroska" if ext == "mkv" else "video/mp4",
                         rng.between(200_000_000, 4_000_000_000), 1450000000 + rng.below(250_000_000))
                us = rng.between(600_000_000, 9_000_000_000)
                if 495 <= us % 1000 <= 505:
                    us += 20
                f.update(title=(n.rsplit(" (", 1)[0] if year else None), year=year,
                         duration_us=us if rng.chance(90) else None,
                         subtitle=1 if sub == "Films" and rng.chance(50) else 0)
                files.append(f)

        # Photos.
        for i in range(1, 17):
            d = "/srv/photos/%d/%s" % (2015 + i % 9, rng.pick(["Urlaub", "Été", "家族", "Misc"]))
            f = base("%s/IMG_%04d.jpg" % (d, 1000 + i * 7), "image/jpeg",
                     rng.between(800_000, 9_000_000), 1420000000 + rng.below(300_000_000))
            files.append(f)

        # VuIO 6 only: the playlist files it indexed, and a name that was not UTF-8.
        f = base("/srv/music/lists/mix.m3u", "audio/x-mpegurl", 1_234, 1690000000)
        f["only_v6"] = True
        files.append(f)
        f = base("/srv/music/lists/Chill Out.pls", "audio/x-scpls", 517, 1690000100)
        f["only_v6"] = True
        files.append(f)
        f = base("/srv/music/Unsorted/Caf\ufffd del Mar \ufffd.mp3", "audio/mpeg", 6_006_006,
                 1600000006)
        f.update(title="Café del Mar", artist="Unknown Latin-1 Artist",
                 duration_us=audio_duration_us(), codec="mp3", sample_rate=44100, channels=2,
                 bit_rate=192_000, tags_version=3)
        f["only_v6"] = True
        f["lossy"] = True
        files.append(f)

        # Ordered by path, so that the hand-picked specials below do not move when the
        # generator changes elsewhere.
        files.sort(key=lambda f: f["path"].encode("utf-8"))
        for f in files:
            f["updated"] = f["created"] + rng.below(1000000)
        self.files = files
        self.add_media_tags()

        paths = [f["path"] for f in files]
        assert len(set(paths)) == len(paths)
        assert len(set(p.lower() for p in paths)) == len(paths), "v2 would collide"

    def audio(self):
        return [f for f in self.files if f["mime"].startswith("audio/") and f["tags_version"]
                and f["album"]]

    def add_media_tags(self):
        """VuIO 6's media_tags: the tags its reader found that have no column."""
        rng = self.rng
        a = self.audio()
        # Multi-valued artists.
        a[3]["extra"].append(("Artists", "Alice Example; Bob Beispiel"))
        a[3]["artist"] = "Alice Example feat. Bob Beispiel"
        a[8]["extra"] += [("ARTISTS", "Carla Ü"), ("ARTISTS", "Dee; 日本のアーティスト")]
        # MusicBrainz ids: fill an empty column; a second opinion on a set one stays a tag.
        a[10]["mb_track"] = None
        a[10]["extra"].append(("MUSICBRAINZ_TRACKID", rng.uuid()))
        if a[11]["mb_track"] is None:
            a[11]["mb_track"] = rng.uuid()
        a[11]["extra"].append(("MUSICBRAINZ_TRACKID", rng.uuid()))
        a[12]["mb_album"] = None
        a[12]["extra"].append(("MusicBrainz Album Id", rng.uuid()))
        # Totals.
        a[15]["track_total"] = None
        a[15]["extra"].append(("TRACKTOTAL", "14"))
        a[19]["track_total"] = None
        a[19]["extra"].append(("TOTALTRACKS", "11"))
        a[16]["disc_total"] = None
        a[16]["extra"].append(("TOTALDISCS", "2"))
        a[17]["disc_total"] = 1
        a[17]["extra"].append(("DISCTOTAL", "3"))
        # The long tail.
        for i, f in enumerate(a):
            if i % 9 == 2:
                f["extra"].append(("Label", rng.pick(["Deterministic Records", "Ein Label GmbH",
                                                      "レーベル"])))
            if i % 11 == 4:
                f["extra"].append(("Isrc", "US%s%02d%05d" % (rng.pick(["ABC", "XYZ", "QQQ"]),
                                                            rng.below(100), rng.below(100000))))
            if i % 5 == 1:
                f["extra"].append(("ReplayGainTrackGain", "%+.2f dB" % (-(rng.below(1200)) / 100)))
            if i % 13 == 6:
                f["extra"].append(("Mood", "Calm"))
                f["extra"].append(("Mood", "Dreamy"))


def make_era_rows(lib, era):
    """The media_files rows of one fixture, as dicts of column -> value, in insertion order (ids
    are assigned in that order)."""
    rng = Rng({"v1": 1, "v2": 2, "v6": 6, "v6-upgraded": 66}[era])
    rows = []
    for f in lib.files:
        if f["only_v6"] and era in ("v1", "v2"):
            continue
        r = {"_file": f}
        if era in ("v1", "v2"):
            parent = parent_of(f["path"])
            filename = f["path"].rsplit("/", 1)[1]
            r.update(
                path=f["path"], parent_path=parent, filename=filename, size=f["size"],
                modified=f["mtime"], mime_type=f["mime"],
                duration=(None if f["duration_us"] is None
                          else (f["duration_us"] // 1_000_000) * 1000),
                title=f["title"], artist=f["artist"], album=f["album"], genre=f["genre"],
                track_number=f["track"], year=f["year"], album_artist=f["album_artist"],
                created_at=f["created"], updated_at=f["updated"],
            )
            if era == "v2":
                # VuIO's schema-2 bug: path and parent_path lower-cased, filename as on disk.
                r["path"] = r["path"].lower()
                r["parent_path"] = r["parent_path"].lower()
                r["canonical_path"] = r["path"]
                r["canonical_parent_path"] = r["parent_path"]
        else:
            filename = "unknown" if f.get("lossy") else f["path"].rsplit("/", 1)[1]
            r.update(
                path=f["path"], parent_path=parent_of(f["path"]), filename=filename,
                size=f["size"], modified_secs=f["mtime"], mime_type=f["mime"],
                mime_family=f["mime"].split("/", 1)[0],
                duration_secs=(None if f["duration_us"] is None else f["duration_us"] / 1e6),
                title=f["title"], artist=f["artist"], album=f["album"], genre=f["genre"],
                track_number=f["track"], year=f["year"], album_artist=f["album_artist"],
                disc_number=f["disc"], disc_total=f["disc_total"], track_total=f["track_total"],
                composer=f["composer"], comment=f["comment"], bpm=f["bpm"],
                compilation=f["compilation"], sort_title=f["sort_title"],
                sort_artist=f["sort_artist"], sort_album=f["sort_album"],
                release_date=f["release_date"], musicbrainz_track_id=f["mb_track"],
                musicbrainz_album_id=f["mb_album"], musicbrainz_artist_id=f["mb_artist"],
                codec=f["codec"], sample_rate=f["sample_rate"], channels=f["channels"],
                bits_per_sample=f["bits"], bit_rate=f["bit_rate"],
                tags_version=f["tags_version"], subtitle_available=f["subtitle"],
                created_at_secs=f["created"], updated_at_secs=f["updated"],
            )
            r["_extra"] = list(f["extra"])
        rows.append(r)
    if era in ("v6", "v6-upgraded"):
        # Radio streams, as VuIO 6 materialised them from playlists (title = URL or station name,
        # album = the playlist file they came from).
        for url, name, src in [
            ("http://radio.example/stream.mp3", None, "/srv/music/lists/mix.m3u"),
            ("https://ice.radio.example/jazz-128.aac", "Jazz FM", "/srv/music/radio/stations.m3u"),
        ]:
            rows.append({
                "_file": None, "_extra": [], "path": url, "parent_path": parent_of(url),
                "filename": name or url.rsplit("/", 1)[1], "size": 0,
                "modified_secs": 1720000000, "mime_type": "audio/radio", "mime_family": "audio",
                "duration_secs": None, "title": name or url, "artist": None, "album": src,
                "genre": None, "track_number": None, "year": None, "album_artist": None,
                "disc_number": None, "disc_total": None, "track_total": None, "composer": None,
                "comment": None, "bpm": None, "compilation": None, "sort_title": None,
                "sort_artist": None, "sort_album": None, "release_date": None,
                "musicbrainz_track_id": None, "musicbrainz_album_id": None,
                "musicbrainz_artist_id": None, "codec": None, "sample_rate": None,
                "channels": None, "bits_per_sample": None, "bit_rate": None, "tags_version": 0,
                "subtitle_available": 0, "created_at_secs": 1720000000,
                "updated_at_secs": 1720000000,
            })
    # Ids in scan order, not path order.
    rows = rng.shuffled(rows)
    for i, r in enumerate(rows, 1):
        r["id"] = i
    return rows


def by_path(rows, path):
    for r in rows:
        if (r["_file"] and r["_file"]["path"] == path) or r["path"] == path:
            return r
    raise KeyError(path)


def make_playlists(lib, rows, era):
    """[(name, description, source_path, [(position, media_file_id)])] in insertion order."""
    tagged = set(id(f) for f in lib.audio())
    audio = [r for r in rows if r["_file"] is not None and id(r["_file"]) in tagged]
    audio.sort(key=lambda r: r["_file"]["path"])
    video = sorted((r for r in rows if r["mime_type"].startswith("video/")),
                   key=lambda r: r["_file"]["path"])
    image = sorted((r for r in rows if r["mime_type"].startswith("image/")),
                   key=lambda r: r["_file"]["path"])
    ids = lambda rs: [r["id"] for r in rs]  # noqa: E731

    if era in ("v1", "v2"):
        fav = ids(audio[0:60:7])
        fav_pos = [0, 1, 5, 9, 10, 11, 20, 21, 22]
        entries_fav = list(zip(fav_pos, fav))
        if era == "v1":
            # Points at no row: possible only with foreign keys off (see README).
            entries_fav.append((15, 999999))
        workout = ids(audio[61:120:9]) + ids(video[:1])
        return [
            ("Favourites", "Best of the best", None, entries_fav),
            ("Workout", None, None, list(zip([2, 3, 4, 8, 9, 30, 31, 40], workout))),
            ("Café del Mar", "Chill, after ten", None,
             list(zip([0, 4, 7], ids(audio[120:150:11])))),
            ("Empty", "Nothing here yet", None, []),
        ]

    stream_http = by_path(rows, "http://radio.example/stream.mp3")["id"]
    stream_https = by_path(rows, "https://ice.radio.example/jazz-128.aac")["id"]
    lossy = by_path(rows, "/srv/music/Unsorted/Caf\ufffd del Mar \ufffd.mp3")["id"]
    road = ids(audio[0:50:6])
    road_entries = list(zip([0, 1, 2, 5, 6, 9, 10, 14, 15], road))
    # The same file again, and the lossily named one.
    road_entries += [(20, road[1]), (21, lossy), (25, road[0])]
    mix = ids(audio[50:90:8])
    mix_entries = [(0, mix[0]), (1, stream_http), (2, mix[1]), (4, mix[2]), (7, mix[3]),
                   (8, mix[1])]
    late = ids(audio[100:160:10])
    late_entries = list(zip([3, 4, 9, 12, 13, 40], late)) + [(41, stream_https)]
    summer = ids(image[:3]) + ids(video[2:4])
    return [
        ("Road Trip", "Songs for the A1", None, road_entries),
        ("mix", "Imported from mix.m3u", "/srv/music/lists/mix.m3u", mix_entries),
        ("Late Night", None, None, late_entries),
        ("Empty", "Nothing here yet", None, []),
        ("Été 2023", "Photos and clips", None, list(zip([0, 1, 2, 6, 7], summer))),
    ]


# ────────────────────────────────────────────────────────────────────────────────────────────────
# Writing the databases.
# ────────────────────────────────────────────────────────────────────────────────────────────────

SQLX_INSERT_V1 = """
            INSERT INTO media_files 
            (path, parent_path, filename, size, modified, mime_type, duration, title, artist, album, genre, track_number, year, album_artist, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """  # noqa: W291 (a311e14 store_media_file, verbatim)
SQLX_INSERT_V2 = """
            INSERT INTO media_files 
            (path, parent_path, canonical_path, canonical_parent_path, filename, size, modified, mime_type, duration, title, artist, album, genre, track_number, year, album_artist, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """  # noqa: W291 (e6bc0cb store_media_file, verbatim)
SQLX_INSERT_PLAYLIST = """
            INSERT INTO playlists (name, description, created_at, updated_at)
            VALUES (?, ?, ?, ?)
            """
SQLX_INSERT_ENTRY = (
    "INSERT INTO playlist_entries (playlist_id, media_file_id, position, created_at) "
    "VALUES (?, ?, ?, ?)"
)

# The sqlx era's `now` for schema_version rows and playlist times: fixed, for reproducibility.
SQLX_V1_CREATED = 1756300000  # 2025-08-27
SQLX_V2_MIGRATED = 1756460000  # 2025-08-29


def sqlx_columns(era):
    cols = ["path", "parent_path"]
    if era == "v2":
        cols += ["canonical_path", "canonical_parent_path"]
    return cols + ["filename", "size", "modified", "mime_type", "duration", "title", "artist",
                   "album", "genre", "track_number", "year", "album_artist", "created_at",
                   "updated_at"]


def write_sqlx(path, era, rows, playlists):
    conn = connect(path)
    # a311e14's initialize(): these pragmas, then create_tables().
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA temp_store = MEMORY")
    # VuIO asked for foreign_keys = ON (on one pooled connection); this writer leaves them off so
    # that the one dangling playlist entry of v1 can exist.
    conn.execute("PRAGMA foreign_keys = OFF")
    for stmt in SQLX_V1_CREATE_TABLES[:-1]:
        conn.execute(stmt)
    conn.execute(SQLX_V1_CREATE_TABLES[-1], ("schema_version", "1", SQLX_V1_CREATED))

    if era == "v2":
        # The file a v1 user had, brought to schema 2 by migrate_to_version_2(): the canonical
        # columns are appended after updated_at.
        for stmt in SQLX_V2_MIGRATE[:-1]:
            conn.execute(stmt)
        conn.execute(SQLX_V2_MIGRATE[-1], ("2", SQLX_V2_MIGRATED))

    conn.execute("BEGIN")
    insert = SQLX_INSERT_V2 if era == "v2" else SQLX_INSERT_V1
    cols = sqlx_columns(era)
    for r in sorted(rows, key=lambda r: r["id"]):
        cur = conn.execute(insert, [r[c] for c in cols])
        assert cur.lastrowid == r["id"]
    for n, (name, desc, _src, entries) in enumerate(playlists, 1):
        t = 1740000000 + n * 86400
        cur = conn.execute(SQLX_INSERT_PLAYLIST, (name, desc, t, t + 3600))
        for pos, mid in entries:
            conn.execute(SQLX_INSERT_ENTRY, (cur.lastrowid, mid, pos, t + pos))
    conn.execute("COMMIT")
    finish(conn)


RUSQLITE_V1_COLUMNS = [
    "id", "path", "parent_path", "filename", "size", "modified_secs", "mime_type", "mime_family",
    "duration_secs", "title", "artist", "album", "genre", "track_number", "year", "album_artist",
    "subtitle_available", "created_at_secs", "updated_at_secs",
]
RUSQLITE_V2_COLUMNS = [
    "disc_number", "disc_total", "track_total", "composer", "comment", "bpm", "compilation",
    "sort_title", "sort_artist", "sort_album", "release_date", "musicbrainz_track_id",
    "musicbrainz_album_id", "musicbrainz_artist_id", "codec", "sample_rate", "channels",
    "bits_per_sample", "bit_rate", "tags_version",
]


def rusqlite_open(path):
    conn = connect(path)
    # 3df3558's apply_pragmas().
    conn.executescript(
        "PRAGMA journal_mode = WAL;\n"
        "PRAGMA synchronous = NORMAL;\n"
        "PRAGMA foreign_keys = ON;\n"
        "PRAGMA busy_timeout = 5000;\n"
        "PRAGMA temp_store = MEMORY;\n"
        "PRAGMA cache_size = -65536;"
    )
    return conn


def insert_row(conn, r, cols):
    conn.execute(
        "INSERT INTO media_files (%s) VALUES (%s)" % (", ".join(cols), ", ".join("?" * len(cols))),
        [r[c] for c in cols],
    )


def insert_tags(conn, r):
    for key, value in r["_extra"]:
        conn.execute(
            "INSERT OR IGNORE INTO media_tags (media_file_id, key, value) VALUES (?, ?, ?)",
            (r["id"], key, value),
        )


def insert_rusqlite_playlists(conn, playlists):
    for n, (name, desc, src, entries) in enumerate(playlists, 1):
        t = 1755000000 + n * 86400
        cur = conn.execute(
            "INSERT INTO playlists (name, description, source_path, created_at_secs, "
            "updated_at_secs) VALUES (?, ?, ?, ?, ?)", (name, desc, src, t, t + 60))
        for pos, mid in entries:
            conn.execute(
                "INSERT INTO playlist_entries (playlist_id, media_file_id, position) "
                "VALUES (?, ?, ?)", (cur.lastrowid, mid, pos))


def rebuild_directories(conn):
    """3df3558's directory::rebuild(): every ancestor of every record, with per-family counts
    (family '*' counts everything)."""
    counts = {}
    for path, family in conn.execute("SELECT path, mime_family FROM media_files"):
        d = parent_of(path)
        while d is not None:
            for fam in ("*", family):
                counts[(d, fam)] = counts.get((d, fam), 0) + 1
            d = parent_of(d)
    conn.execute("DELETE FROM directory_mime_counts")
    conn.execute("DELETE FROM directories")
    for d in sorted({d for d, _ in counts}):
        conn.execute(
            "INSERT INTO directories (path, parent_path, name) VALUES (?, ?, ?)",
            (d, parent_of(d) or "", d.rsplit("/", 1)[-1]))
    for (d, fam), c in sorted(counts.items()):
        conn.execute(
            "INSERT INTO directory_mime_counts (dir_path, family, count) VALUES (?, ?, ?)",
            (d, fam, c))


def write_rusqlite_fresh(path, rows, playlists):
    """A file VuIO 3df3558 created: ddl(), user_version 6, then a scan."""
    conn = rusqlite_open(path)
    conn.executescript(rusqlite_v6_ddl())
    conn.executescript("PRAGMA user_version = 6")
    conn.execute("BEGIN")
    cols = RUSQLITE_V1_COLUMNS + RUSQLITE_V2_COLUMNS
    for r in sorted(rows, key=lambda r: r["id"]):
        insert_row(conn, r, cols)
        insert_tags(conn, r)
    rebuild_directories(conn)
    insert_rusqlite_playlists(conn, playlists)
    conn.execute("COMMIT")
    finish(conn)


def write_rusqlite_upgraded(path, rows, playlists):
    """A file VuIO 77e3dee created at user_version 1 and scanned, then opened by 3df3558:
    migrations 2..6 (each in one transaction with its user_version bump), the idempotent ddl()
    that initialize_schema() runs afterwards (it is what creates media_tags and re-creates the
    two ordering indexes MIGRATION_V2 drops), then a rescan that re-read most files (tags_version
    3, the new columns filled) but not all (tags_version 0, the new columns NULL)."""
    conn = rusqlite_open(path)
    conn.executescript(RUSQLITE_V1_DDL_TEMPLATE.replace("{NATURAL}", NATURAL))
    conn.executescript("PRAGMA user_version = 1")

    streams = [r for r in rows if r["mime_type"] == "audio/radio"]
    files = [r for r in rows if r["mime_type"] != "audio/radio"]
    conn.execute("BEGIN")
    for r in sorted(files, key=lambda r: r["id"]):
        insert_row(conn, r, RUSQLITE_V1_COLUMNS)
    rebuild_directories(conn)
    # Playlists that hold a stream can only come after the rescan that adds the stream rows.
    stream_ids = set(r["id"] for r in streams)
    later = [p for p in playlists if any(mid in stream_ids for _pos, mid in p[3])]
    insert_rusqlite_playlists(conn, [p for p in playlists if p not in later])
    conn.execute("COMMIT")

    for produces, sql in rusqlite_v6_migrations():
        conn.executescript("BEGIN;\n%s\nPRAGMA user_version = %d;\nCOMMIT;"
                           % (sql.replace("{NATURAL}", NATURAL), produces))
    conn.executescript(rusqlite_v6_ddl())

    # The rescan. Every 7th file by id (none with extra tags) was not re-read: it keeps
    # tags_version 0 and NULL in every column MIGRATION_V2 added.
    conn.execute("BEGIN")
    sets = ", ".join("%s = ?" % c for c in RUSQLITE_V2_COLUMNS)
    for r in sorted(files, key=lambda r: r["id"]):
        if r["id"] % 7 == 0 and not r["_extra"]:
            for c in RUSQLITE_V2_COLUMNS:
                r[c] = 0 if c == "tags_version" else None
            r["_extra"] = []
            continue
        conn.execute("UPDATE media_files SET %s WHERE id = ?" % sets,
                     [r[c] for c in RUSQLITE_V2_COLUMNS] + [r["id"]])
        insert_tags(conn, r)
    for r in sorted(streams, key=lambda r: r["id"]):
        insert_row(conn, r, RUSQLITE_V1_COLUMNS + RUSQLITE_V2_COLUMNS)
    rebuild_directories(conn)
    insert_rusqlite_playlists(conn, later)
    conn.execute("COMMIT")
    finish(conn)


# ────────────────────────────────────────────────────────────────────────────────────────────────
# The oracle.
# ────────────────────────────────────────────────────────────────────────────────────────────────

PLAYLIST_MIMES = {"audio/x-mpegurl", "audio/mpegurl", "application/vnd.apple.mpegurl",
                  "audio/x-scpls"}
TAG_COLUMNS = ["composer", "comment", "bpm", "sort_title", "sort_artist", "sort_album",
               "release_date", "musicbrainz_artist_id", "codec"]


def text(v):
    if v is None:
        return None
    if isinstance(v, str) and v.strip() == "":
        return None
    return v


def norm_key(k):
    return k.lower().replace(" ", "").replace("_", "")


def is_stream(r):
    return (r["path"].startswith("http://") or r["path"].startswith("https://")
            or r["mime_type"] == "audio/radio")


def kind_of(mime):
    if mime in PLAYLIST_MIMES:
        return "playlist"
    for k in ("audio", "video", "image"):
        if mime.startswith(k + "/"):
            return k
    return "other"


def real_path(era, r):
    if era == "v2":
        joined = r["parent_path"] + "/" + r["filename"]
        if joined.lower() == r["path"].lower():
            return joined
    return r["path"]


def expected_record(era, r):
    v6 = era.startswith("v6")
    g = lambda c: r.get(c)  # noqa: E731  (a column a schema lacks reads as NULL)
    rec = {
        "path": real_path(era, r),
        "size": r["size"],
        "mtime_ns": (r["modified_secs"] if v6 else r["modified"]) * 1_000_000_000,
        "kind": kind_of(r["mime_type"]),
        "mime": r["mime_type"],
        "title": text(g("title")),
        "artists": [g("artist")] if text(g("artist")) else [],
        "album": text(g("album")),
        "album_artist": text(g("album_artist")),
        "genres": [g("genre")] if text(g("genre")) else [],
        "year": g("year"),
        "track": g("track_number"),
        "track_total": g("track_total"),
        "disc": g("disc_number"),
        "disc_total": g("disc_total"),
        "compilation": None if g("compilation") is None else g("compilation") != 0,
        "duration_ms": None,
        "bitrate": None if g("bit_rate") is None else round(g("bit_rate") / 1000),
        "sample_rate": g("sample_rate"),
        "channels": g("channels"),
        "bit_depth": g("bits_per_sample"),
        "musicbrainz_track_id": text(g("musicbrainz_track_id")),
        "musicbrainz_album_id": text(g("musicbrainz_album_id")),
        "tags": [],
    }
    if v6:
        if g("duration_secs") is not None:
            rec["duration_ms"] = round(g("duration_secs") * 1000)
    elif g("duration") is not None:
        rec["duration_ms"] = g("duration")
    if not v6:
        return rec

    tags = []
    for c in TAG_COLUMNS:
        v = g(c)
        if v is not None and str(v).strip() != "":
            tags.append([c, str(v)])
    artists = None
    fills = {"musicbrainztrackid": "musicbrainz_track_id",
             "musicbrainzalbumid": "musicbrainz_album_id",
             "tracktotal": "track_total", "totaltracks": "track_total",
             "disctotal": "disc_total", "totaldiscs": "disc_total"}
    for key, value in r["_extra"]:
        nk = norm_key(key)
        if nk == "artists":
            artists = (artists or []) + value.split("; ")
        elif nk in fills and rec[fills[nk]] is None:
            field = fills[nk]
            rec[field] = int(value) if field.endswith("_total") else value
        else:
            tags.append([key, value])
    if artists is not None:
        rec["artists"] = artists
    rec["tags"] = sorted(tags)
    return rec


def oracle(era, rows, playlists):
    by_id = {r["id"]: r for r in rows}
    records = [expected_record(era, r) for r in rows if not is_stream(r)]
    records.sort(key=lambda rec: rec["path"].encode("utf-8"))
    paths = [rec["path"] for rec in records]
    assert len(set(paths)) == len(paths)

    skipped = {}
    streams = sum(1 for r in rows if is_stream(r))
    if streams:
        skipped["stream"] = streams
    lists, n_entries, missing = [], 0, 0
    for name, desc, src, entries in playlists:
        out = []
        for _pos, mid in sorted(entries):
            r = by_id.get(mid)
            if r is None:
                missing += 1
            elif is_stream(r):
                out.append({"path": r["path"], "dangling": True})
            else:
                out.append({"path": real_path(era, r), "dangling": False})
        n_entries += len(out)
        lists.append({"name": name, "description": desc, "source_path": src, "entries": out})
    lists.sort(key=lambda p: p["name"].encode("utf-8"))
    if missing:
        skipped["missing_entry_target"] = missing
    report = {
        "era": "rusqlite" if era.startswith("v6") else "sqlx",
        "schema_version": {"v1": 1, "v2": 2}.get(era, 6),
        "rows_read": len(rows),
        "records_written": len(records),
        "skipped": skipped,
        "playlists": len(playlists),
        "playlist_entries": n_entries,
    }
    return records, lists, report


# ────────────────────────────────────────────────────────────────────────────────────────────────
# Checks and main.
# ────────────────────────────────────────────────────────────────────────────────────────────────


def check(path, era, rows):
    """Opens the file as a reader would and compares it with the rows the oracle was made from."""
    conn = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    conn.create_collation(NATURAL, natural_cmp)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok", path
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete", path
    if era is None:
        conn.close()
        return
    cur = conn.execute("SELECT * FROM media_files")
    cols = [d[0] for d in cur.description]
    got = {row[cols.index("id")]: dict(zip(cols, row)) for row in cur}
    assert len(got) == len(rows), (path, len(got), len(rows))
    for r in rows:
        g = got[r["id"]]
        for c, v in r.items():
            if not c.startswith("_"):
                assert g[c] == v, (path, r["id"], c, g[c], v)
    if era.startswith("v6"):
        tags = {}
        for mid, k, v in conn.execute(
                "SELECT media_file_id, key, value FROM media_tags ORDER BY rowid"):
            tags.setdefault(mid, []).append((k, v))
        for r in rows:
            assert tags.get(r["id"], []) == r["_extra"], (path, r["id"])
    conn.close()


def write_json(path, value):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(value, f, ensure_ascii=False, indent=2)
        f.write("\n")


def main(argv):
    if len(argv) > 2:
        print("usage: make-vuio-fixtures.py [OUTDIR]", file=sys.stderr)
        return 2
    here = os.path.dirname(os.path.abspath(__file__))
    out = argv[1] if len(argv) == 2 else os.path.join(here, "..", "tests", "data", "vuio")
    out = os.path.normpath(out)
    os.makedirs(out, exist_ok=True)

    lib = Library(seed=0x5EED_0F_BEEF)
    for era in ("v1", "v2", "v6", "v6-upgraded"):
        rows = make_era_rows(lib, era)
        playlists = make_playlists(lib, rows, era)
        db = os.path.join(out, era + ".db")
        if era in ("v1", "v2"):
            write_sqlx(db, era, rows, playlists)
        elif era == "v6":
            write_rusqlite_fresh(db, rows, playlists)
        else:
            write_rusqlite_upgraded(db, rows, playlists)
        check(db, era, rows)
        records, lists, report = oracle(era, rows, playlists)
        with open(os.path.join(out, era + ".expected.jsonl"), "w", encoding="utf-8",
                  newline="\n") as f:
            for rec in records:
                f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
        write_json(os.path.join(out, era + ".expected-playlists.json"), lists)
        write_json(os.path.join(out, era + ".expected-report.json"), report)

    # A file from a VuIO newer than any mediadb knows: v6 with user_version 7.
    with open(os.path.join(out, "v6.db"), "rb") as f:
        data = f.read()
    future = os.path.join(out, "future.db")
    with open(future, "wb") as f:
        f.write(data)
    conn = sqlite3.connect(future, isolation_level=None)
    conn.create_collation(NATURAL, natural_cmp)
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    check(future, None, None)

    # Some other program's SQLite file.
    conn = connect(os.path.join(out, "unknown.db"))
    conn.execute("CREATE TABLE foo(x)")
    conn.executemany("INSERT INTO foo(x) VALUES (?)", [(1,), ("two",), (None,)])
    conn.close()
    check(os.path.join(out, "unknown.db"), None, None)

    total = 0
    for name in sorted(os.listdir(out)):
        size = os.path.getsize(os.path.join(out, name))
        total += size
        print("%9d  %s" % (size, name))
    print("%9d  total" % total)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
