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

mod args;
mod dump;
mod registry;
mod report;
mod scan;
mod segments;
mod snapshot;
mod verify;

#[cfg(test)]
mod tests;

use std::io::{self, Write};
use std::path::Path;
use std::time::Instant;

use crate::error::Error;
use crate::persist::format::Row;
use crate::storage::fs::{StdFs, Vfs, VfsFile};
use crate::storage::log::SEGMENT_MAGIC;
use crate::storage::snapfile::SNAPSHOT_MAGIC;

use args::{Cmd, USAGE, parse_args};
pub use registry::Registry;
use snapshot::TableStat;

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

/// Runs the command with `args` (the arguments after the program name),
/// writing the report to `out` and diagnostics and progress to `err`.
/// Returns the exit code (see the module documentation).
pub fn run(args: &[String], registry: &Registry, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    run_on(&StdFs, args, registry, out, err)
}

/// [`run`] reading the files through `vfs` (tests: the simulated disk).
pub(crate) fn run_on(
    vfs: &dyn Vfs,
    args: &[String],
    registry: &Registry,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
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
        vfs,
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

/// One run of the command: where it reads and writes, its options, and
/// what it found so far.
struct Ctx<'a> {
    vfs: &'a dyn Vfs,
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

/// What a file given on the command line is.
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

    /// The first `n` bytes of the file `path` (fewer if it is shorter).
    fn read_prefix(&self, path: &Path, n: usize) -> io::Result<Vec<u8>> {
        let mut file = self.vfs.open_read(path)?;
        read_prefix(&mut *file, n)
    }

    /// What kind of file `path` is, by its magic bytes.
    fn kind_of(&mut self, path: &Path) -> Option<Kind> {
        match self.read_prefix(path, 8) {
            Err(e) => {
                self.io_error("reading", path, &e);
                None
            }
            Ok(m) if m == SNAPSHOT_MAGIC => Some(Kind::Snapshot),
            Ok(m) if m == SEGMENT_MAGIC => Some(Kind::Segment),
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

    fn is_dir(&mut self, path: &Path) -> Option<bool> {
        match self.vfs.is_dir(path) {
            Ok(d) => Some(d),
            Err(e) => {
                self.io_error("reading", path, &e);
                None
            }
        }
    }
}

/// Reads up to `n` bytes from the start of `file` (fewer when it is
/// shorter).
fn read_prefix(file: &mut dyn VfsFile, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; n];
    let mut got = 0;
    while got < n {
        match file.read_at(got as u64, &mut buf[got..])? {
            0 => break,
            k => got += k,
        }
    }
    buf.truncate(got);
    Ok(buf)
}
