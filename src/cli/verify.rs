//! `verify`: every checksum end to end and the revision continuity from
//! the snapshot through the log.

use std::io;
use std::path::Path;

use crate::persist::format::decode_record;

use super::snapshot::SnapScan;
use super::{Ctx, EXIT_IO, EXIT_OK, EXIT_TORN, EXIT_UNSUPPORTED, Kind};

impl Ctx<'_> {
    /// `pandodb verify`.
    pub(super) fn verify(&mut self, path: &Path) -> io::Result<()> {
        match self.is_dir(path) {
            None => {}
            Some(true) => {
                if let Some(d) = self.scan_dir(path, None, true)? {
                    if let (Some(s), Some((_, p))) = (&d.newest, d.snaps.last()) {
                        self.print_verified(p, "snapshot", s)?;
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
                        self.print_verified(path, "snapshot", &s)?;
                    }
                }
                Some(Kind::Segment) => {
                    let first = self.lone_segment_first(path);
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

    /// The verdict line of a snapshot (`what`: which one).
    pub(super) fn print_verified(
        &mut self,
        path: &Path,
        what: &str,
        s: &SnapScan,
    ) -> io::Result<()> {
        writeln!(
            self.out,
            "{}: {what}, revision {}, {} rows{}",
            path.display(),
            s.revision,
            s.tables.iter().map(|t| t.rows).sum::<u64>(),
            if s.sound { ", sound" } else { ", DAMAGED" }
        )
    }
}
