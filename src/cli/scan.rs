//! The directory scan: a durable directory read the way `Db::open` reads
//! it, with the same recovery walk (`persist::recover`: which files there
//! are, which snapshot opening loads, the segments' order, the rules that
//! tie the snapshot and the log together), through the [`Vfs`] and
//! without changing anything.
//!
//! [`Vfs`]: crate::storage::fs::Vfs

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::persist::format::{Op, Row};
use crate::persist::recover::{self, DirFiles};

use super::Ctx;
use super::segments::SegStat;
use super::snapshot::{SnapScan, TableStat};

/// What the log adds after the snapshot.
#[derive(Default)]
pub(super) struct After {
    pub(super) first: Option<u64>,
    pub(super) last: Option<u64>,
    pub(super) records: u64,
    /// Per table position: (puts, deletes).
    pub(super) per_table: BTreeMap<u64, (u64, u64)>,
}

/// The replayed rows of one table: primary key → (created, modified, bytes).
pub(super) type TableRows = BTreeMap<Vec<u8>, (u64, u64, Vec<u8>)>;

/// What reading a directory found.
pub(super) struct DirScan {
    /// The snapshot files (revision, path), oldest first: opening loads the
    /// last one.
    pub(super) snaps: Vec<(u64, PathBuf)>,
    /// Leftover temporary files (names), which opening removes.
    pub(super) temps: Vec<String>,
    /// The newest snapshot as read.
    pub(super) newest: Option<SnapScan>,
    /// Table names by position, from the newest snapshot.
    pub(super) names: Vec<String>,
    pub(super) segments: Vec<SegStat>,
    pub(super) after: After,
    /// The revision the state reached (what opening gives when sound).
    pub(super) revision: u64,
    pub(super) sound: bool,
}

impl Ctx<'_> {
    /// Reads a directory the way `Db::open` would (without changing it):
    /// the newest snapshot, then the log after its revision. With
    /// `state`, keeps every row (for `dump`); with `all_snapshots`, also
    /// checks the older snapshots (for `verify`).
    pub(super) fn scan_dir(
        &mut self,
        dir: &Path,
        mut state: Option<&mut Vec<TableRows>>,
        all_snapshots: bool,
    ) -> io::Result<Option<DirScan>> {
        let files = match DirFiles::list(self.vfs, dir) {
            Ok(f) => f,
            Err(e) => {
                self.finding(&e, "");
                return Ok(None);
            }
        };
        let snaps: Vec<(u64, PathBuf)> = (files.snapshots.iter())
            .map(|&rev| (rev, recover::snapshot_path(dir, rev)))
            .collect();
        let segs: Vec<(u64, PathBuf)> = (files.segments.iter())
            .map(|&first| (first, recover::segment_path(dir, first)))
            .collect();
        let mut newest = None;
        let mut snapshot_rev = 0;
        if let Some(rev) = files.newest_snapshot() {
            let path = recover::snapshot_path(dir, rev);
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
            let scan = self.scan_snapshot(&path, &mut keep)?;
            if let Some(s) = &scan
                && let Err(e) = recover::check_snapshot_revision(&path, rev, s.revision)
            {
                self.finding(&e, "");
            }
            snapshot_rev = rev;
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
                    self.print_verified(path, "older snapshot", &s)?;
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
            if !chain_ok {
                return Ok(false);
            }
            let (record_tables, ops) =
                match recover::next_record(file, at, rev, payload, revision, snapshot_rev) {
                    Ok(Some(next)) => next,
                    Ok(None) => return Ok(true),
                    Err(e) => {
                        ctx.finding(&e, "");
                        chain_ok = false;
                        return Ok(false);
                    }
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
            && !first.damaged
            && let Some(gap) = recover::log_start_gap(first.prev, snapshot_rev)
        {
            let p = first.prev.unwrap_or_default();
            let missing = snapshot_rev + 1;
            let msg = format!("{gap}: revisions {missing}..={p} are missing");
            self.damage(&dir.join(&first.name), 12, msg);
            chain_ok = false;
        }
        Ok(Some(DirScan {
            snaps,
            temps: files.temps,
            newest,
            names,
            segments,
            after,
            revision,
            sound: snapshot_ok && log_sound && chain_ok,
        }))
    }
}
