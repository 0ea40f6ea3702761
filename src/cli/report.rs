//! `inspect`: what a snapshot, a log segment or a directory holds.

use std::io;
use std::path::Path;

use super::segments::SegStat;
use super::snapshot::SnapScan;
use super::{Ctx, Kind};

/// The name of table position `t` (`#t` when unknown).
pub(super) fn table_name(names: &[String], t: u64) -> String {
    usize::try_from(t)
        .ok()
        .and_then(|i| names.get(i))
        .cloned()
        .unwrap_or_else(|| format!("#{t}"))
}

impl Ctx<'_> {
    /// `pandodb inspect`.
    pub(super) fn inspect(&mut self, path: &Path) -> io::Result<()> {
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
                    let first = self.lone_segment_first(path);
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

    pub(super) fn print_snapshot(&mut self, s: &SnapScan, ind: &str) -> io::Result<()> {
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

    fn inspect_dir(&mut self, dir: &Path) -> io::Result<()> {
        writeln!(self.out, "directory {}", dir.display())?;
        let Some(d) = self.scan_dir(dir, None, false)? else {
            return Ok(());
        };
        writeln!(self.out, "snapshots: {}", d.snaps.len())?;
        for (i, (rev, path)) in d.snaps.iter().enumerate() {
            let size = (self.vfs.open_read(path))
                .and_then(|mut f| f.size())
                .unwrap_or(0);
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
}
