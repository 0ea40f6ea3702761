//! The `pandodb` command for operators: `inspect`, `verify` and `dump` of
//! snapshot files, log segments and database directories (feature `cli`).
//!
//! The command only reads: files are opened read-only, a torn log tail is
//! reported, never cut, and leftover temporary files are listed, never
//! removed. The byte formats it reads are described in `docs/FORMAT.md`.
//! Snapshots are streamed (one block in memory); a log segment is read
//! whole (segments are rotated at 64 MiB); `dump` of a directory holds the
//! replayed state (every row's bytes) in memory.
//!
//! The binary `pandodb` calls [`run`] with an empty [`Registry`], so it
//! shows objects as byte counts. An application that wants its objects
//! shown as JSON builds its own binary with its row types registered:
//!
//! ```
//! use pandodb::cli::{Registry, run};
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct User { name: String, age: u32 }
//!
//! let mut registry = Registry::new();
//! registry.register::<User>("user");
//! let args: Vec<String> = vec!["--help".into()];
//! let (mut out, mut err) = (Vec::new(), Vec::new());
//! assert_eq!(run(&args, &registry, &mut out, &mut err), 0);
//! assert!(String::from_utf8(out).unwrap().contains("verify"));
//! ```
//!
//! # Exit codes
//!
//! | code | meaning |
//! |---|---|
//! | [`EXIT_OK`] 0 | sound |
//! | [`EXIT_TORN`] 1 | sound except a torn tail at the end of the last log segment: opening the directory would cut it back (those bytes were never acknowledged as a commit under `Durability::Sync`) |
//! | [`EXIT_DAMAGED`] 2 | damage: a checksum, framing or consistency check failed; opening would fail with `Error::Corrupt` (or, for an older snapshot than the newest, the file is damaged but unused) |
//! | [`EXIT_USAGE`] 3 | bad command line |
//! | [`EXIT_IO`] 4 | an operating-system error while reading (or writing the output) |
//! | [`EXIT_UNSUPPORTED`] 5 | a file written by a newer format version than this build reads |
//!
//! When several apply, the first of 2, 4, 5, 1 in that order wins.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Value, json};

use crate::error::Error;
use crate::index::key::display;
use crate::persist::format::{Op, Row, SnapshotHeader, decode_record, decode_row};
use crate::storage::log::{
    RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, SEGMENT_MAGIC, check_segment, parse_segment_name,
};
use crate::storage::snapfile::{BLOCK_SIZE, SNAPSHOT_MAGIC, SnapshotReader, TEMP_SUFFIX};

/// Exit code: everything checked is sound.
pub const EXIT_OK: i32 = 0;
/// Exit code: sound but for a torn tail of the last log segment, which
/// opening the directory would cut back.
pub const EXIT_TORN: i32 = 1;
/// Exit code: damaged bytes (checksum, framing or consistency).
pub const EXIT_DAMAGED: i32 = 2;
/// Exit code: bad command line.
pub const EXIT_USAGE: i32 = 3;
/// Exit code: an I/O error while reading the files or writing the output.
pub const EXIT_IO: i32 = 4;
/// Exit code: a file of a newer format version than this build reads.
pub const EXIT_UNSUPPORTED: i32 = 5;

/// Progress is reported on the error stream every this many rows or log
/// records.
pub const PROGRESS_EVERY: u64 = 100_000;

const USAGE: &str = "\
pandodb: inspect, verify and dump pandodb snapshots, log segments and directories

usage:
  pandodb inspect FILE|DIR          format version, revision, schema fingerprint,
                                    tables (row version, indexes, rows, bytes),
                                    log segments, what the log adds to the snapshot
  pandodb verify FILE|DIR           check every checksum end to end and the
                                    revision continuity snapshot -> log
  pandodb dump FILE|DIR [--table NAME] [--json]
                                    rows (table, key, created, modified, object);
                                    for a DIR the state after replaying the log
  pandodb --help                    this text

FILE is a snapshot (snap-*.pdb or any file written by snapshot_to) or a log
segment (wal-*.log); DIR is a database directory (Db::open). Tables are named
as the snapshot and the log records name them.

options:
  --table NAME   dump only this table
  --json         dump as JSON lines, one object per row
  -q, --quiet    no progress output on stderr

Nothing is ever written to the files read: a torn log tail is reported, not cut.

exit codes: 0 sound, 1 torn tail of the last log segment only (open would cut
it back), 2 damage, 3 usage, 4 I/O error, 5 newer format version.
";

/// Stored row version and bytes → JSON text.
type Decoder = Box<dyn Fn(u32, &[u8]) -> Result<String, String> + Send + Sync>;

/// The application's row decoders, per table name: how `dump` turns a
/// stored object (postcard bytes) into JSON. Tables without a decoder are
/// dumped with their byte count only.
#[derive(Default)]
pub struct Registry {
    decoders: HashMap<String, Decoder>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.decoders.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Registry").field("tables", &names).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Decodes the rows of `table` as `T` (the table's row type, stored as
    /// postcard bytes by `TableBuilder::serde`) and shows them as `T`
    /// serializes to JSON (fields in declaration order). Replaces an
    /// earlier decoder of the same table.
    pub fn register<T>(&mut self, table: &str) -> &mut Registry
    where
        T: serde::de::DeserializeOwned + serde::Serialize,
    {
        let decode = |_version: u32, bytes: &[u8]| {
            let obj: T = postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
            serde_json::to_string(&obj).map_err(|e| e.to_string())
        };
        self.decoders.insert(table.to_string(), Box::new(decode));
        self
    }

    /// Registers a decoder of `table` taking the stored row version (see
    /// `TableBuilder::version`) and the row's bytes, for tables whose older
    /// rows need another type. Log rows carry no version: they get the
    /// version of the newest snapshot's table (0 without a snapshot).
    pub fn register_with(
        &mut self,
        table: &str,
        decode: impl Fn(u32, &[u8]) -> Result<Value, String> + Send + Sync + 'static,
    ) -> &mut Registry {
        let decode =
            move |version: u32, bytes: &[u8]| decode(version, bytes).map(|v| v.to_string());
        self.decoders.insert(table.to_string(), Box::new(decode));
        self
    }

    /// Whether `table` has a decoder.
    pub fn contains(&self, table: &str) -> bool {
        self.decoders.contains_key(table)
    }

    /// Decodes a row of `table` to JSON text (`None`: no decoder
    /// registered).
    pub fn decode(
        &self,
        table: &str,
        version: u32,
        bytes: &[u8],
    ) -> Option<Result<String, String>> {
        self.decoders.get(table).map(|d| d(version, bytes))
    }
}

/// Runs the command with `args` (the arguments after the program name),
/// writing the report to `out` and diagnostics and progress to `err`.
/// Returns the exit code (see the module documentation).
pub fn run(args: &[String], registry: &Registry, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let opts = match parse_args(args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            return match out.write_all(USAGE.as_bytes()) {
                Ok(()) => EXIT_OK,
                Err(_) => EXIT_IO,
            };
        }
        Err(msg) => {
            let _ = writeln!(err, "pandodb: {msg}\n\n{USAGE}");
            return EXIT_USAGE;
        }
    };
    let mut ctx = Ctx {
        out,
        err,
        registry,
        quiet: opts.quiet,
        json: opts.json,
        table: opts.table.clone(),
        ticks: 0,
        next_progress: PROGRESS_EVERY,
        start: Instant::now(),
        worst: Worst::default(),
    };
    let r = match opts.cmd {
        Cmd::Inspect => ctx.inspect(&opts.path),
        Cmd::Verify => ctx.verify(&opts.path),
        Cmd::Dump => ctx.dump(&opts.path),
    };
    if let Err(e) = r.and_then(|()| ctx.out.flush()) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            return ctx.worst.code();
        }
        let _ = writeln!(ctx.err, "pandodb: writing the output: {e}");
        return EXIT_IO;
    }
    ctx.worst.code()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Inspect,
    Verify,
    Dump,
}

struct Opts {
    cmd: Cmd,
    path: PathBuf,
    table: Option<String>,
    json: bool,
    quiet: bool,
}

/// `Ok(None)`: print the help.
fn parse_args(args: &[String]) -> Result<Option<Opts>, String> {
    if args.is_empty() {
        return Err("no command given".into());
    }
    if args
        .iter()
        .any(|a| a == "--help" || a == "-h" || a == "help")
    {
        return Ok(None);
    }
    let cmd = match args[0].as_str() {
        "inspect" => Cmd::Inspect,
        "verify" => Cmd::Verify,
        "dump" => Cmd::Dump,
        other => return Err(format!("unknown command {other:?}")),
    };
    let mut path = None;
    let mut table = None;
    let mut json = false;
    let mut quiet = false;
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" if cmd == Cmd::Dump => json = true,
            "--table" if cmd == Cmd::Dump => {
                table = Some(it.next().ok_or("--table needs a table name")?.clone());
            }
            "-q" | "--quiet" => quiet = true,
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(format!("unknown option {s:?}"));
            }
            _ if path.is_some() => return Err(format!("unexpected argument {a:?}")),
            _ => path = Some(PathBuf::from(a)),
        }
    }
    let path = path.ok_or("no FILE or DIR given")?;
    Ok(Some(Opts {
        cmd,
        path,
        table,
        json,
        quiet,
    }))
}

/// The worst findings so far.
#[derive(Default)]
struct Worst {
    damage: bool,
    io: bool,
    unsupported: bool,
    torn: bool,
}

impl Worst {
    fn code(&self) -> i32 {
        if self.damage {
            EXIT_DAMAGED
        } else if self.io {
            EXIT_IO
        } else if self.unsupported {
            EXIT_UNSUPPORTED
        } else if self.torn {
            EXIT_TORN
        } else {
            EXIT_OK
        }
    }
}

/// What [`Ctx::scan_snapshot`] hands each row to: the context, the
/// snapshot's tables, the row's table position and the row.
type OnRow<'f> = dyn FnMut(&mut Ctx<'_>, &[TableStat], usize, &Row<'_>) -> io::Result<()> + 'f;

struct Ctx<'a> {
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    registry: &'a Registry,
    quiet: bool,
    json: bool,
    table: Option<String>,
    ticks: u64,
    next_progress: u64,
    start: Instant,
    worst: Worst,
}

/// One table of a scanned snapshot.
struct TableStat {
    name: String,
    version: u32,
    indexes: Vec<(String, bool)>,
    header_rows: u64,
    rows: u64,
    bytes: u64,
}

/// What reading a snapshot found.
struct SnapScan {
    format_version: u32,
    revision: u64,
    fingerprint: u32,
    tables: Vec<TableStat>,
    size: u64,
    /// Every checksum and the trailer checked out, every row is well formed.
    sound: bool,
}

/// One log segment as scanned.
struct SegStat {
    name: String,
    first_rev: u64,
    prev: Option<u64>,
    records: u64,
    last_rev: Option<u64>,
    bytes: u64,
    /// Torn tail: (offset of the cut, file length).
    cut: Option<(u64, u64)>,
    damaged: bool,
}

/// What the log adds after the snapshot.
#[derive(Default)]
struct After {
    first: Option<u64>,
    last: Option<u64>,
    records: u64,
    /// Per table position: (puts, deletes).
    per_table: BTreeMap<u64, (u64, u64)>,
}

/// The replayed rows of one table: primary key → (created, modified, bytes).
type TableRows = BTreeMap<Vec<u8>, (u64, u64, Vec<u8>)>;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The key as text: a string key quoted, anything else as `0x` hex.
fn key_text(pk: &[u8]) -> String {
    let h = hex(pk);
    let d = display(pk);
    if d == h {
        format!("0x{h}")
    } else {
        format!("{d:?}")
    }
}

fn snapshot_revision_of(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("snap-")?.strip_suffix(".pdb")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn le_u64(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(d.get(at..at + 8)?.try_into().ok()?))
}

fn table_name(names: &[String], t: u64) -> String {
    usize::try_from(t)
        .ok()
        .and_then(|i| names.get(i))
        .cloned()
        .unwrap_or_else(|| format!("#{t}"))
}

enum Kind {
    Snapshot,
    Segment,
}

impl Ctx<'_> {
    /// Records an error found in the files (and reports it on stderr).
    fn finding(&mut self, e: &Error, note: &str) {
        let (label, text) = match e {
            Error::Corrupt {
                file,
                offset,
                detail,
            } => {
                self.worst.damage = true;
                ("damage", format!("{file}: offset {offset}: {detail}"))
            }
            Error::UnsupportedVersion { .. } => {
                self.worst.unsupported = true;
                ("unsupported", e.to_string())
            }
            Error::Io { .. } => {
                self.worst.io = true;
                ("I/O error", e.to_string())
            }
            other => {
                self.worst.damage = true;
                ("damage", other.to_string())
            }
        };
        let _ = writeln!(self.err, "pandodb: {label}: {text}{note}");
    }

    fn damage(&mut self, file: &Path, offset: u64, detail: impl Into<String>) {
        let e = Error::Corrupt {
            file: file.display().to_string(),
            offset,
            detail: detail.into(),
        };
        self.finding(&e, "");
    }

    fn torn(&mut self, file: &str, at: u64, len: u64) {
        self.worst.torn = true;
        let _ = writeln!(
            self.err,
            "pandodb: torn tail: {file}: offset {at}: {} bytes after the last whole record \
             (opening the directory cuts the file back to {at} bytes)",
            len - at
        );
    }

    fn io_error(&mut self, what: &str, path: &Path, e: &io::Error) {
        self.finding(&Error::io(format!("{what} {}", path.display()), e), "");
    }

    /// Counts one row or record; reports progress now and then.
    fn tick(&mut self, what: &str) {
        self.ticks += 1;
        if self.ticks >= self.next_progress {
            self.next_progress += PROGRESS_EVERY;
            if !self.quiet {
                let _ = writeln!(
                    self.err,
                    "pandodb: {} {what} read ({:.1} s)",
                    self.ticks,
                    self.start.elapsed().as_secs_f64()
                );
            }
        }
    }

    fn wanted(&self, table: &str) -> bool {
        self.table.as_deref().is_none_or(|t| t == table)
    }

    /// What kind of file `path` is, by its magic bytes.
    fn kind_of(&mut self, path: &Path) -> Option<Kind> {
        let mut magic = [0u8; 8];
        let r = File::open(path).and_then(|mut f| {
            let mut n = 0;
            while n < 8 {
                match f.read(&mut magic[n..])? {
                    0 => break,
                    k => n += k,
                }
            }
            Ok(n)
        });
        match r {
            Err(e) => {
                self.io_error("reading", path, &e);
                None
            }
            Ok(8) if &magic == SNAPSHOT_MAGIC => Some(Kind::Snapshot),
            Ok(8) if &magic == SEGMENT_MAGIC => Some(Kind::Segment),
            Ok(_) => {
                self.damage(
                    path,
                    0,
                    "neither a pandodb snapshot (magic PANDOSNP) nor a log segment (magic PANDOWAL)",
                );
                None
            }
        }
    }

    /// Reads a whole snapshot, checking every checksum and every row, and
    /// hands each row to `on_row(ctx, tables, table position, row)`. `None`
    /// when even the header could not be read.
    fn scan_snapshot(
        &mut self,
        path: &Path,
        on_row: &mut OnRow<'_>,
    ) -> io::Result<Option<SnapScan>> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                self.io_error("opening", path, &e);
                return Ok(None);
            }
        };
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut first = [0u8; 12];
        let format_version = match File::open(path).and_then(|mut f| f.read_exact(&mut first)) {
            Ok(()) => u32::from_le_bytes(first[8..12].try_into().expect("4 bytes")),
            Err(_) => 0,
        };
        let name = path.display().to_string();
        let mut reader = match SnapshotReader::open(
            BufReader::with_capacity(BLOCK_SIZE + 64, file),
            name.clone(),
        ) {
            Ok(r) => r,
            Err(e) => {
                self.finding(&e, "");
                return Ok(None);
            }
        };
        let header = match SnapshotHeader::decode(reader.header(), &name, 24) {
            Ok(h) => h,
            Err(e) => {
                self.finding(&e, "");
                return Ok(None);
            }
        };
        let mut scan = SnapScan {
            format_version,
            revision: header.revision,
            fingerprint: header.fingerprint,
            tables: header
                .tables
                .iter()
                .map(|t| TableStat {
                    name: t.name.clone(),
                    version: t.version,
                    indexes: t.indexes.clone(),
                    header_rows: t.rows,
                    rows: 0,
                    bytes: 0,
                })
                .collect(),
            size,
            sound: false,
        };
        for (i, t) in header.tables.iter().enumerate() {
            if header.tables[..i].iter().any(|u| u.name == t.name) {
                self.damage(path, 24, format!("table {:?} is listed twice", t.name));
                return Ok(Some(scan));
            }
        }
        loop {
            let offset = reader.offset();
            let rec = match reader.next_record() {
                Ok(Some(rec)) => rec,
                Ok(None) => break,
                Err(e) => {
                    self.finding(&e, "");
                    return Ok(Some(scan));
                }
            };
            let Some(row) = decode_row(rec) else {
                self.damage(path, offset, "a malformed row");
                return Ok(Some(scan));
            };
            let Some(t) = usize::try_from(row.table)
                .ok()
                .filter(|&t| t < scan.tables.len())
            else {
                self.damage(path, offset, format!("row of unknown table #{}", row.table));
                return Ok(Some(scan));
            };
            let ts = &mut scan.tables[t];
            ts.rows += 1;
            ts.bytes += rec.len() as u64 + 4;
            if ts.rows > ts.header_rows {
                let msg = format!(
                    "more rows of table {:?} than the header's {}",
                    ts.name, ts.header_rows
                );
                self.damage(path, offset, msg);
                return Ok(Some(scan));
            }
            if row.created > row.modified || row.modified > header.revision {
                let msg = format!(
                    "row revisions {}..{} outside the snapshot's revision {}",
                    row.created, row.modified, header.revision
                );
                self.damage(path, offset, msg);
                return Ok(Some(scan));
            }
            self.tick("rows");
            on_row(self, &scan.tables, t, &row)?;
        }
        let end = reader.offset();
        for t in &scan.tables {
            if t.rows != t.header_rows {
                let msg = format!(
                    "table {:?} has {} rows, the header says {}",
                    t.name, t.rows, t.header_rows
                );
                self.damage(path, end, msg);
                return Ok(Some(scan));
            }
        }
        scan.sound = true;
        Ok(Some(scan))
    }

    /// Scans log segments `(first revision, path)` in order with the
    /// recovery rules (the last one may have a torn tail) and hands every
    /// record of the intact chain to `on_record(ctx, revision, payload,
    /// file, offset of the record)`, which returns `false` to stop the
    /// delivery. Segments after a damaged one are still checked on their
    /// own, but their records are not delivered.
    #[allow(clippy::type_complexity)]
    fn scan_log(
        &mut self,
        segments: &[(u64, PathBuf)],
        on_record: &mut dyn FnMut(&mut Ctx<'_>, u64, &[u8], &Path, u64) -> io::Result<bool>,
    ) -> io::Result<(Vec<SegStat>, bool)> {
        let mut stats = Vec::new();
        let mut prev_rev = None;
        let mut delivering = true;
        let mut sound = true;
        for (i, (first, path)) in segments.iter().enumerate() {
            let is_last = i + 1 == segments.len();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string());
            let data = match std::fs::read(path) {
                Ok(d) => d,
                Err(e) => {
                    self.io_error("reading", path, &e);
                    sound = false;
                    delivering = false;
                    prev_rev = None;
                    continue;
                }
            };
            let mut st = SegStat {
                name,
                first_rev: *first,
                prev: None,
                records: 0,
                last_rev: None,
                bytes: data.len() as u64,
                cut: None,
                damaged: false,
            };
            match check_segment(path, *first, &data, is_last, prev_rev) {
                Err(e) => {
                    self.finding(&e, "");
                    st.damaged = true;
                    sound = false;
                    delivering = false;
                    prev_rev = None;
                }
                Ok(c) => {
                    st.prev = c.prev;
                    st.records = c.records.len() as u64;
                    st.last_rev = c.records.last().map(|r| r.0);
                    if c.records.is_empty() && !is_last {
                        self.damage(path, 0, "segment without records");
                        st.damaged = true;
                        sound = false;
                        delivering = false;
                    }
                    if let Some(at) = c.cut {
                        st.cut = Some((at as u64, data.len() as u64));
                        self.torn(&path.display().to_string(), at as u64, data.len() as u64);
                    }
                    if c.records.is_empty() && is_last {
                        let _ = writeln!(
                            self.err,
                            "pandodb: note: {}: a last segment without records (opening removes it)",
                            path.display()
                        );
                    }
                    for &(rev, start, end) in &c.records {
                        self.tick("log records");
                        if delivering {
                            let at = (start - RECORD_HEADER_LEN) as u64;
                            delivering = on_record(self, rev, &data[start..end], path, at)?;
                        }
                    }
                    if !st.damaged {
                        prev_rev = st.last_rev.or(prev_rev);
                    }
                }
            }
            stats.push(st);
        }
        Ok((stats, sound))
    }

    /// The files of a directory: snapshots (revision, path), segments
    /// (first revision, path), temporary leftovers.
    #[allow(clippy::type_complexity)]
    fn list_dir(
        &mut self,
        dir: &Path,
    ) -> Option<(Vec<(u64, PathBuf)>, Vec<(u64, PathBuf)>, Vec<String>)> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                self.io_error("listing", dir, &e);
                return None;
            }
        };
        let (mut snaps, mut segs, mut temps) = (Vec::new(), Vec::new(), Vec::new());
        for e in entries {
            let e = match e {
                Ok(e) => e,
                Err(e) => {
                    self.io_error("listing", dir, &e);
                    return None;
                }
            };
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(r) = snapshot_revision_of(&name) {
                snaps.push((r, e.path()));
            } else if let Some(r) = parse_segment_name(&name) {
                segs.push((r, e.path()));
            } else if name.ends_with(TEMP_SUFFIX) {
                temps.push(name);
            }
        }
        snaps.sort();
        segs.sort();
        temps.sort();
        Some((snaps, segs, temps))
    }

    /// The first revision of a lone segment file: from its name, else from
    /// its first record.
    fn lone_segment_first(path: &Path) -> u64 {
        let from_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_segment_name);
        from_name.unwrap_or_else(|| {
            let mut b = [0u8; SEGMENT_HEADER_LEN + RECORD_HEADER_LEN];
            File::open(path)
                .and_then(|mut f| f.read_exact(&mut b))
                .ok()
                .and_then(|()| le_u64(&b, SEGMENT_HEADER_LEN + 8))
                .unwrap_or(0)
        })
    }

    fn is_dir(&mut self, path: &Path) -> Option<bool> {
        match std::fs::metadata(path) {
            Ok(m) => Some(m.is_dir()),
            Err(e) => {
                self.io_error("reading", path, &e);
                None
            }
        }
    }

    // ---------------------------------------------------------------- inspect

    fn inspect(&mut self, path: &Path) -> io::Result<()> {
        match self.is_dir(path) {
            None => Ok(()),
            Some(true) => self.inspect_dir(path),
            Some(false) => match self.kind_of(path) {
                None => Ok(()),
                Some(Kind::Snapshot) => {
                    writeln!(self.out, "snapshot {}", path.display())?;
                    let scan = self.scan_snapshot(path, &mut |_, _, _, _| Ok(()))?;
                    if let Some(s) = scan {
                        self.print_snapshot(&s, "")?;
                    }
                    Ok(())
                }
                Some(Kind::Segment) => {
                    let first = Self::lone_segment_first(path);
                    let (stats, _) = self
                        .scan_log(&[(first, path.to_path_buf())], &mut |_, _, _, _, _| {
                            Ok(true)
                        })?;
                    writeln!(self.out, "log segment {}", path.display())?;
                    self.print_segments(&stats)
                }
            },
        }
    }

    fn print_snapshot(&mut self, s: &SnapScan, ind: &str) -> io::Result<()> {
        let o = &mut *self.out;
        writeln!(o, "{ind}format version: {}", s.format_version)?;
        writeln!(o, "{ind}revision: {}", s.revision)?;
        writeln!(o, "{ind}schema fingerprint: 0x{:08x}", s.fingerprint)?;
        writeln!(o, "{ind}size: {} bytes", s.size)?;
        let rows: u64 = s.tables.iter().map(|t| t.rows).sum();
        writeln!(o, "{ind}rows: {rows}")?;
        writeln!(o, "{ind}tables: {}", s.tables.len())?;
        for t in &s.tables {
            let indexes: Vec<String> = t
                .indexes
                .iter()
                .enumerate()
                .map(|(i, (n, u))| match (i, u) {
                    (0, _) => format!("{n} (primary)"),
                    (_, true) => format!("{n} (unique)"),
                    _ => n.clone(),
                })
                .collect();
            writeln!(
                o,
                "{ind}  table {:?}: row version {}, rows {}, row bytes {}, indexes: {}",
                t.name,
                t.version,
                t.rows,
                t.bytes,
                indexes.join(", ")
            )?;
            if t.rows != t.header_rows {
                writeln!(o, "{ind}    (the header says {} rows)", t.header_rows)?;
            }
        }
        if !s.sound {
            writeln!(o, "{ind}DAMAGED: the figures above stop at the damage")?;
        }
        Ok(())
    }

    fn print_segments(&mut self, stats: &[SegStat]) -> io::Result<()> {
        writeln!(self.out, "log segments: {}", stats.len())?;
        for s in stats {
            let range = match s.last_rev {
                Some(l) => format!("revisions {}..{}", s.first_rev, l),
                None => "no records".to_string(),
            };
            let prev = match s.prev {
                Some(p) => format!("follows revision {p}"),
                None => "follows no revision".to_string(),
            };
            let mut line = format!(
                "  {}: {range}, {} records, {} bytes, {prev}",
                s.name, s.records, s.bytes
            );
            if let Some((at, len)) = s.cut {
                line += &format!(", torn tail at offset {at} ({} bytes)", len - at);
            }
            if s.damaged {
                line += ", DAMAGED";
            }
            writeln!(self.out, "{line}")?;
        }
        Ok(())
    }

    /// Reads a directory the way `Db::open` would (without changing it):
    /// the newest snapshot, then the log after its revision. With
    /// `state`, keeps every row (for `dump`); with `all_snapshots`, also
    /// checks the older snapshots (for `verify`).
    fn scan_dir(
        &mut self,
        dir: &Path,
        mut state: Option<&mut Vec<TableRows>>,
        all_snapshots: bool,
    ) -> io::Result<Option<DirScan>> {
        let Some((snaps, segs, temps)) = self.list_dir(dir) else {
            return Ok(None);
        };
        let mut newest = None;
        let mut snapshot_rev = 0;
        if let Some((rev, path)) = snaps.last() {
            let mut keep = |_: &mut Ctx<'_>, tables: &[TableStat], t: usize, row: &Row<'_>| {
                if let Some(st) = state.as_deref_mut() {
                    if st.len() < tables.len() {
                        st.resize_with(tables.len(), BTreeMap::new);
                    }
                    st[t].insert(
                        row.pk.to_vec(),
                        (row.created, row.modified, row.data.to_vec()),
                    );
                }
                Ok(())
            };
            let scan = self.scan_snapshot(path, &mut keep)?;
            if let Some(s) = &scan
                && s.revision != *rev
            {
                let msg = format!(
                    "the file name says revision {rev}, the snapshot {}",
                    s.revision
                );
                self.damage(path, 0, msg);
            }
            snapshot_rev = *rev;
            newest = scan;
        }
        if all_snapshots {
            for (_, path) in snaps.iter().rev().skip(1) {
                let before = self.worst.damage;
                let s = self.scan_snapshot(path, &mut |_, _, _, _| Ok(()))?;
                if self.worst.damage && !before {
                    let _ = writeln!(
                        self.err,
                        "pandodb: note: {} is an older snapshot: opening uses the newest",
                        path.display()
                    );
                }
                if let Some(s) = s {
                    writeln!(
                        self.out,
                        "{}: older snapshot, revision {}, {} rows{}",
                        path.display(),
                        s.revision,
                        s.tables.iter().map(|t| t.rows).sum::<u64>(),
                        if s.sound { ", sound" } else { ", DAMAGED" }
                    )?;
                }
            }
        }
        let mut names: Vec<String> = newest
            .as_ref()
            .map(|s| s.tables.iter().map(|t| t.name.clone()).collect())
            .unwrap_or_default();
        let snapshot_ok = snaps.is_empty() || newest.as_ref().is_some_and(|s| s.sound);
        let mut after = After::default();
        let mut revision = snapshot_rev;
        let mut chain_ok = snapshot_ok;
        let (segments, log_sound) = self.scan_log(&segs, &mut |ctx, rev, payload, file, at| {
            if !chain_ok || rev <= snapshot_rev {
                return Ok(chain_ok);
            }
            if rev != revision + 1 {
                ctx.damage(
                    file,
                    at,
                    format!("log record {rev} follows revision {revision}: a gap"),
                );
                chain_ok = false;
                return Ok(false);
            }
            let Some((record_tables, ops)) = decode_record(payload) else {
                ctx.damage(file, at, format!("log record {rev} is malformed"));
                chain_ok = false;
                return Ok(false);
            };
            // Records name their tables; number them as the snapshot does
            // (tables it lacks after its own).
            let positions: Vec<u64> = record_tables
                .iter()
                .map(|(name, _)| {
                    let p = match names.iter().position(|n| n == name) {
                        Some(p) => p,
                        None => {
                            names.push((*name).to_string());
                            names.len() - 1
                        }
                    };
                    p as u64
                })
                .collect();
            for mut op in ops {
                match &mut op {
                    Op::Put { table, .. } | Op::Delete { table, .. } => {
                        *table = positions[*table as usize];
                    }
                }
                match op {
                    Op::Put {
                        table,
                        created,
                        pk,
                        data,
                    } => {
                        after.per_table.entry(table).or_default().0 += 1;
                        if let Some(st) = state.as_deref_mut() {
                            let t = usize::try_from(table).unwrap_or(usize::MAX);
                            if t < (1 << 20) {
                                if st.len() <= t {
                                    st.resize_with(t + 1, BTreeMap::new);
                                }
                                let created = if created == 0 { rev } else { created };
                                st[t].insert(pk.to_vec(), (created, rev, data.to_vec()));
                            }
                        }
                    }
                    Op::Delete { table, pk } => {
                        after.per_table.entry(table).or_default().1 += 1;
                        if let Some(st) = state.as_deref_mut()
                            && let Some(rows) =
                                usize::try_from(table).ok().and_then(|t| st.get_mut(t))
                        {
                            rows.remove(pk);
                        }
                    }
                }
            }
            after.first.get_or_insert(rev);
            after.last = Some(rev);
            after.records += 1;
            revision = rev;
            Ok(true)
        })?;
        if let Some(first) = segments.first()
            && let Some(p) = first.prev
            && p > snapshot_rev
            && !first.damaged
        {
            let msg = format!(
                "the log starts after revision {p} but the newest snapshot is at {snapshot_rev}: \
                 revisions {}..={p} are missing",
                snapshot_rev + 1
            );
            self.damage(&dir.join(&first.name), 12, msg);
            chain_ok = false;
        }
        Ok(Some(DirScan {
            snaps,
            temps,
            newest,
            names,
            segments,
            after,
            revision,
            sound: snapshot_ok && log_sound && chain_ok,
        }))
    }

    fn inspect_dir(&mut self, dir: &Path) -> io::Result<()> {
        writeln!(self.out, "directory {}", dir.display())?;
        let Some(d) = self.scan_dir(dir, None, false)? else {
            return Ok(());
        };
        writeln!(self.out, "snapshots: {}", d.snaps.len())?;
        for (i, (rev, path)) in d.snaps.iter().enumerate() {
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            let newest = if i + 1 == d.snaps.len() {
                " (newest: opening loads it)"
            } else {
                " (older: removed by the next checkpoint)"
            };
            writeln!(
                self.out,
                "  {}: revision {rev}, {size} bytes{newest}",
                path.file_name().unwrap_or_default().to_string_lossy()
            )?;
        }
        if !d.temps.is_empty() {
            writeln!(
                self.out,
                "leftover temporary files (opening removes them): {}",
                d.temps.join(", ")
            )?;
        }
        if let Some(s) = &d.newest {
            writeln!(self.out, "newest snapshot:")?;
            self.print_snapshot(s, "  ")?;
        }
        self.print_segments(&d.segments)?;
        let snapshot_rev = d.snaps.last().map_or(0, |s| s.0);
        let covered: Vec<&str> = d
            .segments
            .iter()
            .filter(|s| !s.damaged && s.last_rev.is_some_and(|l| l <= snapshot_rev))
            .map(|s| s.name.as_str())
            .collect();
        if !covered.is_empty() {
            writeln!(
                self.out,
                "covered by the snapshot (skipped on open, removed by the next checkpoint): {}",
                covered.join(", ")
            )?;
        }
        match (d.after.first, d.after.last) {
            (Some(a), Some(b)) => {
                writeln!(
                    self.out,
                    "log after the snapshot: revisions {a}..{b}, {} commits",
                    d.after.records
                )?;
                for (t, (puts, dels)) in &d.after.per_table {
                    writeln!(
                        self.out,
                        "  table {:?}: {puts} puts, {dels} deletes",
                        table_name(&d.names, *t)
                    )?;
                }
            }
            _ => writeln!(self.out, "log after the snapshot: nothing")?,
        }
        if d.sound {
            writeln!(self.out, "revision on open: {}", d.revision)?;
        } else {
            writeln!(
                self.out,
                "revision on open: none (opening fails: damage; readable up to revision {})",
                d.revision
            )?;
        }
        Ok(())
    }

    // ----------------------------------------------------------------- verify

    fn verify(&mut self, path: &Path) -> io::Result<()> {
        match self.is_dir(path) {
            None => {}
            Some(true) => {
                if let Some(d) = self.scan_dir(path, None, true)? {
                    if let (Some(s), Some((_, p))) = (&d.newest, d.snaps.last()) {
                        writeln!(
                            self.out,
                            "{}: snapshot, revision {}, {} rows{}",
                            p.display(),
                            s.revision,
                            s.tables.iter().map(|t| t.rows).sum::<u64>(),
                            if s.sound { ", sound" } else { ", DAMAGED" }
                        )?;
                    }
                    for s in &d.segments {
                        let state = if s.damaged {
                            "DAMAGED"
                        } else if s.cut.is_some() {
                            "torn tail"
                        } else {
                            "sound"
                        };
                        writeln!(
                            self.out,
                            "{}: log segment, {} records, {state}",
                            path.join(&s.name).display(),
                            s.records
                        )?;
                    }
                    if d.sound {
                        writeln!(self.out, "revision on open: {}", d.revision)?;
                    }
                }
            }
            Some(false) => match self.kind_of(path) {
                None => {}
                Some(Kind::Snapshot) => {
                    if let Some(s) = self.scan_snapshot(path, &mut |_, _, _, _| Ok(()))? {
                        writeln!(
                            self.out,
                            "{}: snapshot, revision {}, {} rows{}",
                            path.display(),
                            s.revision,
                            s.tables.iter().map(|t| t.rows).sum::<u64>(),
                            if s.sound { ", sound" } else { ", DAMAGED" }
                        )?;
                    }
                }
                Some(Kind::Segment) => {
                    let first = Self::lone_segment_first(path);
                    let mut bad = None;
                    let (stats, _) = self.scan_log(
                        &[(first, path.to_path_buf())],
                        &mut |_, rev, payload, _, at| {
                            if bad.is_none() && decode_record(payload).is_none() {
                                bad = Some((rev, at));
                            }
                            Ok(true)
                        },
                    )?;
                    if let Some((rev, at)) = bad {
                        self.damage(path, at, format!("log record {rev} is malformed"));
                    }
                    for s in &stats {
                        writeln!(
                            self.out,
                            "{}: log segment, {} records",
                            path.display(),
                            s.records
                        )?;
                    }
                }
            },
        }
        let verdict = match self.worst.code() {
            EXIT_OK => "sound",
            EXIT_TORN => "sound but for a torn log tail (opening cuts it back)",
            EXIT_UNSUPPORTED => "written by a newer format version",
            EXIT_IO => "could not be read completely",
            _ => "DAMAGED",
        };
        writeln!(self.out, "verify: {verdict}")
    }

    // ------------------------------------------------------------------- dump

    fn dump(&mut self, path: &Path) -> io::Result<()> {
        match self.is_dir(path) {
            None => Ok(()),
            Some(true) => {
                let mut state = Vec::new();
                let Some(d) = self.scan_dir(path, Some(&mut state), false)? else {
                    return Ok(());
                };
                if !d.sound {
                    let _ = writeln!(
                        self.err,
                        "pandodb: the rows shown are the state at revision {}, up to the damage",
                        d.revision
                    );
                }
                let versions: Vec<u32> = d
                    .newest
                    .as_ref()
                    .map(|s| s.tables.iter().map(|t| t.version).collect())
                    .unwrap_or_default();
                for (t, rows) in state.iter().enumerate() {
                    let name = table_name(&d.names, t as u64);
                    if !self.wanted(&name) {
                        continue;
                    }
                    let version = versions.get(t).copied().unwrap_or(0);
                    for (pk, (c, m, data)) in rows {
                        self.print_row(&name, version, pk, *c, *m, data)?;
                    }
                }
                Ok(())
            }
            Some(false) => match self.kind_of(path) {
                None => Ok(()),
                Some(Kind::Snapshot) => {
                    let mut print =
                        |ctx: &mut Ctx<'_>, tables: &[TableStat], t: usize, row: &Row<'_>| {
                            let ts = &tables[t];
                            if ctx.wanted(&ts.name) {
                                let (c, m) = (row.created, row.modified);
                                ctx.print_row(&ts.name, ts.version, row.pk, c, m, row.data)?;
                            }
                            Ok(())
                        };
                    self.scan_snapshot(path, &mut print)?;
                    Ok(())
                }
                Some(Kind::Segment) => {
                    let first = Self::lone_segment_first(path);
                    self.scan_log(&[(first, path.to_path_buf())], &mut |ctx, rev, p, f, at| {
                        ctx.print_ops(rev, p, f, at)?;
                        Ok(true)
                    })?;
                    Ok(())
                }
            },
        }
    }

    fn print_row(
        &mut self,
        table: &str,
        version: u32,
        pk: &[u8],
        created: u64,
        modified: u64,
        data: &[u8],
    ) -> io::Result<()> {
        let obj = self.registry.decode(table, version, data);
        if self.json {
            // Written by hand so that the object keeps its field order.
            let s = |x: &str| Value::String(x.to_string());
            let tail = match obj {
                Some(Ok(o)) => format!(",\"object\":{o}"),
                Some(Err(e)) => format!(",\"error\":{}", s(&e)),
                None => String::new(),
            };
            writeln!(
                self.out,
                "{{\"table\":{},\"key\":{},\"key_hex\":\"{}\",\"created\":{created},\
                 \"modified\":{modified},\"bytes\":{}{tail}}}",
                s(table),
                s(&display(pk)),
                hex(pk),
                data.len()
            )
        } else {
            let shown = match obj {
                Some(Ok(o)) => o,
                Some(Err(e)) => format!("<{} bytes that do not decode: {e}>", data.len()),
                None => format!("<{} bytes>", data.len()),
            };
            writeln!(
                self.out,
                "{table}\t{}\tcreated {created}\tmodified {modified}\t{shown}",
                key_text(pk)
            )
        }
    }

    /// A lone segment's record, operation by operation.
    fn print_ops(&mut self, rev: u64, payload: &[u8], file: &Path, at: u64) -> io::Result<()> {
        let Some((record_tables, ops)) = decode_record(payload) else {
            self.damage(file, at, format!("log record {rev} is malformed"));
            return Ok(());
        };
        for op in ops {
            let (table, kind, pk, created, data) = match op {
                Op::Put {
                    table,
                    created,
                    pk,
                    data,
                } => (
                    table,
                    "put",
                    pk,
                    if created == 0 { rev } else { created },
                    Some(data),
                ),
                Op::Delete { table, pk } => (table, "delete", pk, 0, None),
            };
            let name = record_tables
                .get(table as usize)
                .map_or_else(|| format!("#{table}"), |(n, _)| (*n).to_string());
            if !self.wanted(&name) {
                continue;
            }
            if self.json {
                let mut v = json!({
                    "revision": rev,
                    "op": kind,
                    "table": name,
                    "key": display(pk),
                    "key_hex": hex(pk),
                });
                if let Some(d) = data {
                    v["created"] = json!(created);
                    v["bytes"] = json!(d.len());
                }
                writeln!(self.out, "{v}")?;
            } else {
                match data {
                    Some(d) => writeln!(
                        self.out,
                        "revision {rev}\tput\t{name}\t{}\tcreated {created}\t<{} bytes>",
                        key_text(pk),
                        d.len()
                    )?,
                    None => writeln!(self.out, "revision {rev}\tdelete\t{name}\t{}", key_text(pk))?,
                }
            }
        }
        Ok(())
    }
}

/// What reading a directory found.
struct DirScan {
    snaps: Vec<(u64, PathBuf)>,
    temps: Vec<String>,
    newest: Option<SnapScan>,
    /// Table names by position, from the newest snapshot.
    names: Vec<String>,
    segments: Vec<SegStat>,
    after: After,
    /// The revision the state reached (what opening gives when sound).
    revision: u64,
    sound: bool,
}
