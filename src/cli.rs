//! The command line: the one source of `--help`, the man page and shell completions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failed; the database is unchanged since its last commit (unless the message says the
     disk failed to confirm a commit: then it may be there or not)
  2  usage or query syntax error
  3  finished, but some files could not be read (listed on stderr and in --json); for
     verify --fs: some files are missing or changed since the last scan
  4  database busy: another writer holds the lock (see --wait)
  5  database damaged, or not a mediadb database, or from a newer version";

/// Index media libraries into a crash-safe database, and ask it questions.
#[derive(Debug, Parser)]
#[command(name = "mediadb", version, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    /// Database file [env: MEDIADB_DB, when set and not empty] [default:
    /// $XDG_DATA_HOME/mediadb/library.mediadb]
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// Print nothing but data and errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Say more about what is happening (on stderr)
    #[arg(short, long, global = true)]
    pub verbose: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Walk directories and bring the database up to date with them
    ///
    /// Unchanged files (same size, mtime and inode) cost one stat and are never opened; tags
    /// are read only from new and changed files, and from files the system failed to read
    /// last time (permission denied, an I/O error), which are tried on every scan until they
    /// read. Changes are committed in batches as the scan
    /// goes, so an interrupted scan keeps what it committed. Records whose files are gone are
    /// removed at the end, unless the root is missing, unreadable or suddenly empty, or more
    /// than half of a root's records (and over 20) would go: then nothing is removed without
    /// --allow-mass-removal. Hidden files (names starting with '.') are skipped unless
    /// --hidden; NAS litter (@eaDir, #recycle, .snapshots, lost+found, ...) is skipped unless
    /// --no-default-excludes.
    Scan(ScanArgs),
    /// Find records: beets-style terms, output for people or scripts
    ///
    /// Terms: `word` (substring of title, artist, album, album_artist, genre or path, case
    /// folded), `field:value` (substring; numbers equal), `field:=value` (exact),
    /// `field::regex`, `year:1990..1999`, `duration_ms:..240000`, `path:/a/b` or `path:./a` (subtree),
    /// `error:` (field present), `has_cover:true`, `^term` (not). Terms are ANDed; a `,`
    /// argument between terms ORs groups, and so does a `,` ending a term, as in beets (`a, b`).
    /// To match a value that ends in a comma, end the term otherwise: `path:/x,/` for a
    /// directory, a regex such as `name::x[,]` for other fields. An empty result exits 0 (also
    /// with --count, which prints 0).
    Query(QueryArgs),
    /// List one directory level: subdirectories with counts, then files
    ///
    /// A relative DIR is taken from the working directory, as scan takes its roots (a DIR
    /// reached through a symlink is also looked up by its real path). When no record is under
    /// DIR, a note says so on stderr and the exit code is 0 if DIR is a directory on disk, 1 if
    /// it is not.
    Ls(LsArgs),
    /// Show record counts, sizes and the state of the database file
    ///
    /// Records by kind, media bytes, artists, albums, genres, playlists, records with errors,
    /// the file's live and dead bytes, and when each root was last scanned. Scan times come
    /// from NAME.scans, a small note every finished scan replaces beside the database (an
    /// unchanged rescan commits nothing to the database itself).
    Stats(StatsArgs),
    /// Check every byte the database file vouches for; exit 5 when damaged
    ///
    /// Reads the file with pread (never through the map): both header slots, every frame's
    /// checksum and chain, every FlatBuffer, every record against its index entry, the
    /// invariants, and the index checkpoint. Every problem is reported with its byte offset.
    /// With --fs, also stats every record's file and reports missing and changed ones (writes
    /// nothing). With -q, prints nothing when all is clean (for cron): the exit code says it.
    Verify(VerifyArgs),
    /// Copy every record that still verifies into a new database OUT
    ///
    /// OUT is written as OUT.recovering and renamed once whole: a recover that fails or is
    /// killed leaves no OUT, and the next one removes what it left.
    Recover(RecoverArgs),
    /// Rewrite the database with only its live records, to reclaim space
    ///
    /// Keeps ids and sequence. Writes a new file beside the old one, syncs it, renames it over
    /// the old one and syncs the directory, holding the writer lock throughout; readers keep
    /// their snapshot. Refuses when free space is below the live size.
    Compact(CompactArgs),
    /// Write every record as JSON Lines: a backup that `import` restores
    ///
    /// Each line has the `query --format jsonl` shape with ids, plus inode and
    /// extractor_version, so a rescan after a restore re-reads nothing.
    Export(ExportArgs),
    /// Load records from JSON Lines (as `export` writes them), in durable batches
    ///
    /// A record keeps its id from the file when that id was never used in this database and
    /// the ids before it are not too sparse; otherwise it gets a new one. A path already in
    /// the database is updated in place and keeps its id. Playlists are restored by name: one
    /// of the same name is replaced and keeps its id; a new one keeps the file's id as records
    /// do, or gets a new one; entries are matched to records by path.
    Import(ImportArgs),
    /// Bring a library over from VuIO's SQLite database (any era), rerunnably
    ///
    /// Detects the schema (VuIO's sqlx-era media.db, schema 1 or 2, or its rusqlite-era
    /// database, schema 1 to 6) and refuses others with exit 2. Every file row becomes a record
    /// (tags, MIME, duration; extra tags are kept in `tags`), merged by path: a record a scan
    /// made from a file at least as new is kept. Playlists come over with their entries in
    /// order. The source is only read, never written. Run it again and nothing changes. See
    /// docs/MIGRATE.md.
    Migrate(MigrateArgs),
    /// Create, fill, show and export playlists
    #[command(subcommand)]
    Playlist(PlaylistCommand),
    /// Print a shell completion script
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout, or write it and one page per subcommand into DIR
    #[command(hide = true)]
    Man {
        /// Write mediadb.1 and mediadb-SUBCOMMAND.1 (mediadb-playlist-add.1, ...) here
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Directories to scan
    #[arg(required = true, value_name = "ROOT")]
    pub roots: Vec<PathBuf>,

    /// Walk and tag-reading threads [default: the number of cores]
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,

    /// Records per commit; a batch also commits once its first record is about a second old,
    /// so a scan of slowly read files that is killed loses only its last seconds of reading
    #[arg(long, value_name = "N", default_value_t = mediadb::scan::DEFAULT_BATCH_SIZE as u32,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub batch_size: u32,

    /// Skip names matching GLOB, or paths: from the root of the file system for a GLOB starting
    /// with '/', else from each scanned root for a GLOB containing '/' ('lib/keep'; 'keep/' is
    /// 'keep'); repeatable
    #[arg(long, short = 'E', value_name = "GLOB")]
    pub exclude: Vec<String>,

    /// Do not skip NAS and filesystem litter (@eaDir, #recycle, .snapshots, lost+found, ...)
    #[arg(long)]
    pub no_default_excludes: bool,

    /// Include hidden files and directories (names starting with '.')
    #[arg(long, short = 'H')]
    pub hidden: bool,

    /// Follow symbolic links (loops are detected and reported)
    #[arg(long, short = 'L')]
    pub follow_symlinks: bool,

    /// Re-read the tags of every file, changed or not
    #[arg(long)]
    pub force: bool,

    /// Show what would change (+ added, ~ updated, - removed) and write nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,

    /// Print a JSON summary on stdout (and nothing else there)
    #[arg(long)]
    pub json: bool,

    /// Show a progress line on stderr
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, value_name = "WHEN")]
    pub progress: ProgressMode,

    /// Wait up to SECS for another writer to finish instead of failing with exit 4
    #[arg(long, value_name = "SECS", default_value_t = 0.0, value_parser = seconds)]
    pub wait: f64,

    /// Allow removing more than half of a root's records, or all records of an empty root
    #[arg(long)]
    pub allow_mass_removal: bool,
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// Aligned columns fitted to the terminal (the default on a terminal)
    Table,
    /// One JSON array
    Json,
    /// One JSON object per line
    Jsonl,
    /// CSV with a header row (RFC 4180): values as they are, quoted (with "" for ") when they
    /// hold a comma, quote, CR or LF; on a terminal, control characters are escaped (\n,
    /// \x1b). Paths that are not UTF-8 are lossy: ask for path_b64 in --fields for their bytes
    Csv,
    /// One path per line (the default when stdout is not a terminal): each path's exact bytes
    /// and a newline (for names holding a newline, use -0); on a terminal, control characters,
    /// backslashes and bytes that are not UTF-8 are escaped (\n, \\, \xff)
    Paths,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Query terms (none: everything)
    #[arg(value_name = "TERM", allow_hyphen_values = false)]
    pub terms: Vec<std::ffi::OsString>,

    /// Output format [default: table on a terminal, else paths]
    #[arg(long, short = 'f', value_enum)]
    pub format: Option<FormatArg>,

    /// Write raw path bytes, each followed by NUL (for xargs -0)
    #[arg(short = '0', long, conflicts_with_all = ["format", "count", "group_by"])]
    pub print0: bool,

    /// Fields to show in table, json, jsonl or csv output, comma separated: the record fields
    /// of the JSON output, and path_b64 (the path's exact bytes in base64, for every record)
    #[arg(long, value_delimiter = ',', value_name = "FIELDS")]
    pub fields: Vec<String>,

    /// Sort by FIELD, ascending (FIELD+ or FIELD) or descending (FIELD-); repeatable. With
    /// --group-by, one key: count, or the field grouped by
    #[arg(long, short = 's', value_name = "FIELD[+|-]")]
    pub sort: Vec<String>,

    /// Show at most N records
    #[arg(long, short = 'n', value_name = "N")]
    pub limit: Option<usize>,

    /// Print only the number of matching records (capped by --limit)
    #[arg(long, short = 'c', conflicts_with = "group_by")]
    pub count: bool,

    /// Print name and count rows: artist, album_artist, album, genre, year, dir or kind
    #[arg(long, short = 'g', value_name = "FIELD")]
    pub group_by: Option<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Directory to list [default: /]
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Only records of this kind: audio, video, image, playlist, other
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,

    /// Output format for the files [default: table on a terminal, else paths]. Subdirectories
    /// come first in table and paths output (as `DIR/`); json, jsonl and csv carry the files
    /// only (--json gives both)
    #[arg(long, short = 'f', value_enum)]
    pub format: Option<FormatArg>,

    /// Write raw path bytes, each followed by NUL (for xargs -0): subdirectories first (as
    /// `DIR/`), then files
    #[arg(short = '0', long, conflicts_with_all = ["format", "json"])]
    pub print0: bool,

    /// Fields to show for the files, comma separated, as query's --fields
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "FIELDS",
        conflicts_with = "json"
    )]
    pub fields: Vec<String>,

    /// Print one JSON object {dirs: [{path, count}], files: [records]}
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Also stat every record's file and report missing and changed files (exit 3 if any)
    #[arg(long)]
    pub fs: bool,

    /// Print one JSON report on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The new database to write (must not exist)
    #[arg(value_name = "OUT")]
    pub out: PathBuf,

    /// Print one JSON report on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Print one JSON report on stdout
    #[arg(long)]
    pub json: bool,

    /// Wait up to SECS for another writer instead of failing with exit 4
    #[arg(long, value_name = "SECS", default_value_t = 0.0, value_parser = seconds)]
    pub wait: f64,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to FILE instead of stdout ('-' is stdout); FILE is replaced only once the whole
    /// export is written and synced, so a failed export leaves the previous backup as it was
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// JSON Lines file, or - for stdin
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Skip bad lines (each reported) instead of stopping at the first: lines that are not
    /// UTF-8 or not a valid record or playlist, longer than 64 MiB, or a second playlist of one
    /// name
    #[arg(long)]
    pub skip_bad: bool,

    /// Records per commit
    #[arg(long, value_name = "N", default_value_t = 100_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub batch_size: u32,

    /// Wait up to SECS for another writer instead of failing with exit 4
    #[arg(long, value_name = "SECS", default_value_t = 0.0, value_parser = seconds)]
    pub wait: f64,

    /// Print a JSON summary on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// VuIO's database file (media.db, or its rusqlite-era database)
    #[arg(value_name = "SQLITE_DB")]
    pub source: PathBuf,

    /// Rows per commit
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub batch_size: u32,

    /// Draw progress on stderr
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, value_name = "WHEN")]
    pub progress: ProgressMode,

    /// Wait up to SECS for another writer instead of failing with exit 4
    #[arg(long, value_name = "SECS", default_value_t = 0.0, value_parser = seconds)]
    pub wait: f64,

    /// Print the report as one JSON object on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PlaylistCommand {
    /// Create an empty playlist
    Create {
        /// Its name (unique)
        name: String,
        /// A description
        #[arg(long, short = 'd')]
        description: Option<String>,
    },
    /// List playlists with their entry counts
    List {
        /// Print one JSON array of {id, name, description, source_path, entries, missing}
        #[arg(long)]
        json: bool,
    },
    /// Print a playlist's entries in order, in any query output format
    Show(PlaylistShowArgs),
    /// Append files (by path) or records matching a query to a playlist
    Add {
        /// The playlist
        name: String,
        /// Paths of indexed files, or directories (every indexed file under one, in path
        /// order); with --query, query terms instead
        #[arg(required = true, value_name = "PATH|TERM")]
        items: Vec<std::ffi::OsString>,
        /// Treat the arguments as query terms, and add every match in path order
        #[arg(long)]
        query: bool,
    },
    /// Remove entries by position (1-based) or by path
    Remove {
        /// The playlist
        name: String,
        /// Positions (1-based) or paths
        #[arg(required = true, value_name = "POS|PATH")]
        items: Vec<std::ffi::OsString>,
    },
    /// Delete a playlist
    Delete {
        /// The playlist
        name: String,
    },
    /// Import an .m3u, .m3u8 or .pls file (re-importing the same file replaces its entries)
    Import {
        /// The playlist file
        file: PathBuf,
        /// Name of the playlist [default: the file name without its extension]
        #[arg(long)]
        name: Option<String>,
        /// Print a JSON report on stdout
        #[arg(long)]
        json: bool,
    },
    /// Write a playlist as .m3u, .m3u8 or .pls
    Export {
        /// The playlist
        name: String,
        /// m3u, m3u8 or pls [default: from --output's extension, else m3u8]
        #[arg(long, short = 'f', value_name = "FORMAT")]
        format: Option<String>,
        /// Write paths relative to DIR (e.g. the playlist file's directory)
        #[arg(long, value_name = "DIR")]
        relative_to: Option<PathBuf>,
        /// Write to FILE instead of stdout ('-' is stdout)
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct PlaylistShowArgs {
    /// The playlist
    pub name: String,

    /// Output format [default: table on a terminal, else paths]
    #[arg(long, short = 'f', value_enum)]
    pub format: Option<FormatArg>,

    /// Write exact path bytes, each ended by NUL (for xargs -0)
    #[arg(long, short = '0')]
    pub print0: bool,

    /// Comma-separated fields to show, as for query (path_b64 included)
    #[arg(long, value_name = "FIELDS", value_delimiter = ',')]
    pub fields: Vec<String>,
}

/// When to draw progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// Only when stderr is a terminal
    Auto,
    /// Always
    Always,
    /// Never
    Never,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print one JSON object instead of a table
    #[arg(long)]
    pub json: bool,
}

/// A number of seconds to wait: 0 or more (`inf` waits as long as it takes).
fn seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v >= 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a number of seconds (0 or more)")),
    }
}
