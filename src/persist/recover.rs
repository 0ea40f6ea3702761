//! The recovery walk of a durable directory, shared by `Durable::open` and
//! the `pandodb` command's directory scan (which must read a directory the
//! way opening does, without changing it): which snapshot files, log
//! segments and leftover temporary files the directory holds (listed
//! through a [`Vfs`]), which snapshot opening loads, the order the log
//! segments replay in, and the rules (with their error texts) that tie the
//! snapshot and the log into one history.
//!
//! What this module does not do: read a snapshot (`super::snapshot`),
//! validate or cut back a log segment (`storage::log`), or apply a record
//! to a state (each caller keeps its own).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::storage::fs::Vfs;
use crate::storage::log;
use crate::storage::snapfile::TEMP_SUFFIX;

use super::durable::{parse_snapshot_name, snapshot_name};
use super::format::{Op, RecordTables, decode_record};

/// The recovery-relevant files of a directory, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DirFiles {
    /// The revisions of the snapshot files (`snap-<revision>.pdb`),
    /// ascending.
    pub(crate) snapshots: Vec<u64>,
    /// The first revisions of the log segments (`wal-<revision>.log`), in
    /// the order they replay (ascending).
    pub(crate) segments: Vec<u64>,
    /// Leftover temporary files of interrupted snapshots (`*.tmp`, removed
    /// by opening), by name, sorted.
    pub(crate) temps: Vec<String>,
}

impl DirFiles {
    /// Lists `dir` through `vfs`.
    pub(crate) fn list(vfs: &dyn Vfs, dir: &Path) -> Result<DirFiles> {
        let names = vfs
            .list_dir(dir)
            .map_err(|e| Error::io(format!("listing {}", dir.display()), &e))?;
        Ok(DirFiles::of_names(&names))
    }

    /// Sorts a directory listing (file names); other names are ignored.
    pub(crate) fn of_names(names: &[String]) -> DirFiles {
        let mut snapshots: Vec<u64> = names
            .iter()
            .filter_map(|n| parse_snapshot_name(n))
            .collect();
        snapshots.sort_unstable();
        let mut temps: Vec<String> = names
            .iter()
            .filter(|n| n.ends_with(TEMP_SUFFIX))
            .cloned()
            .collect();
        temps.sort_unstable();
        DirFiles {
            snapshots,
            segments: log::segments_of(names),
            temps,
        }
    }

    /// The revision of the snapshot opening loads: the newest by name.
    /// Opening never falls back to an older one: if the newest is damaged,
    /// opening fails.
    pub(crate) fn newest_snapshot(&self) -> Option<u64> {
        self.snapshots.last().copied()
    }
}

/// The path of the snapshot file of `revision` in `dir`.
pub(crate) fn snapshot_path(dir: &Path, revision: u64) -> PathBuf {
    dir.join(snapshot_name(revision))
}

/// The path of the log segment starting at `first_rev` in `dir`.
#[cfg_attr(not(feature = "cli"), allow(dead_code))] // the `pandodb` command's
pub(crate) fn segment_path(dir: &Path, first_rev: u64) -> PathBuf {
    dir.join(log::segment_name(first_rev))
}

/// Checks that the snapshot read from `path`, named for revision `named`,
/// holds that revision (`found`).
pub(crate) fn check_snapshot_revision(path: &Path, named: u64, found: u64) -> Result<()> {
    if found == named {
        return Ok(());
    }
    Err(Error::Corrupt {
        file: path.display().to_string(),
        offset: 0,
        detail: format!("the file name says revision {named}, the snapshot {found}"),
    })
}

/// A log record that extends the state: its tables and operations.
pub(crate) type NextRecord<'p> = (RecordTables<'p>, Vec<Op<'p>>);

/// The replay rule for the log record `rev` (bytes `payload`) when the
/// state is at `revision`, after the newest snapshot at `snapshot_rev`:
/// `None` for a record the snapshot covers (skipped), the decoded record
/// when it is the next revision. A gap or a malformed record is
/// [`Error::Corrupt`] at `file` and `offset` (where the caller knows it).
pub(crate) fn next_record<'p>(
    file: &Path,
    offset: u64,
    rev: u64,
    payload: &'p [u8],
    revision: u64,
    snapshot_rev: u64,
) -> Result<Option<NextRecord<'p>>> {
    if rev <= snapshot_rev {
        return Ok(None);
    }
    let corrupt = |detail: String| Error::Corrupt {
        file: file.display().to_string(),
        offset,
        detail,
    };
    if rev != revision + 1 {
        return Err(corrupt(format!(
            "log record {rev} follows revision {revision}: a gap"
        )));
    }
    decode_record(payload)
        .map(Some)
        .ok_or_else(|| corrupt(format!("log record {rev} is malformed")))
}

/// Whether the log, whose first segment says it follows revision
/// `first_prev`, starts after the newest snapshot (at `snapshot_rev`):
/// then the records in between went with segments that only a newer
/// snapshot covers, and the history is incomplete. Returns the detail of
/// that damage.
pub(crate) fn log_start_gap(first_prev: Option<u64>, snapshot_rev: u64) -> Option<String> {
    let prev = first_prev.filter(|&p| p != log::NO_REV && p > snapshot_rev)?;
    Some(format!(
        "the log starts after revision {prev} but the newest snapshot is at {snapshot_rev}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_a_listing() {
        let names: Vec<String> = [
            "wal-00000000000000000009.log",
            "snap-00000000000000000007.pdb",
            "LOCK",
            "snap-00000000000000000003.pdb",
            "snap-00000000000000000012.pdb.tmp",
            "wal-00000000000000000001.log",
            "snap-7.pdb",
            "wal-0000000000000000000x.log",
        ]
        .map(String::from)
        .to_vec();
        let f = DirFiles::of_names(&names);
        assert_eq!(f.snapshots, [3, 7]);
        assert_eq!(f.newest_snapshot(), Some(7));
        assert_eq!(f.segments, [1, 9]);
        assert_eq!(f.temps, ["snap-00000000000000000012.pdb.tmp"]);
        assert_eq!(DirFiles::of_names(&[]).newest_snapshot(), None);
    }

    #[test]
    fn replay_rules() {
        let p = Path::new("/d");
        assert!(next_record(p, 0, 5, b"", 5, 5).unwrap().is_none());
        let e = next_record(p, 9, 8, b"", 6, 5).err().unwrap().to_string();
        assert!(e.contains("log record 8 follows revision 6: a gap"), "{e}");
        let e = next_record(p, 0, 7, b"\xff", 6, 5)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("log record 7 is malformed"), "{e}");
        assert_eq!(log_start_gap(None, 0), None);
        assert_eq!(log_start_gap(Some(4), 4), None);
        assert_eq!(log_start_gap(Some(log::NO_REV), 0), None);
        assert!(log_start_gap(Some(5), 4).is_some());
        assert!(check_snapshot_revision(p, 3, 3).is_ok());
        assert!(check_snapshot_revision(p, 3, 4).is_err());
    }
}
