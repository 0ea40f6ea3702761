//! The command line: the help text and the parsed options.

use std::path::PathBuf;

/// The help text (`pandodb --help`).
pub(super) const USAGE: &str = "\
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

/// The command to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cmd {
    Inspect,
    Verify,
    Dump,
}

/// The parsed command line.
pub(super) struct Opts {
    pub(super) cmd: Cmd,
    pub(super) path: PathBuf,
    pub(super) table: Option<String>,
    pub(super) json: bool,
    pub(super) quiet: bool,
}

/// `Ok(None)`: print the help.
pub(super) fn parse_args(args: &[String]) -> Result<Option<Opts>, String> {
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
