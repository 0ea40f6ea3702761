//! Scanning one snapshot file: every checksum, every row.

use std::io::{self, BufReader};
use std::path::Path;

use crate::persist::format::{SnapshotHeader, decode_row};
use crate::storage::snapfile::VfsReader;
use crate::storage::snapfile::{BLOCK_SIZE, SnapshotReader};

use super::{Ctx, OnRow, read_prefix};

/// One table of a scanned snapshot.
pub(super) struct TableStat {
    pub(super) name: String,
    pub(super) version: u32,
    pub(super) indexes: Vec<(String, bool)>,
    pub(super) header_rows: u64,
    pub(super) rows: u64,
    pub(super) bytes: u64,
}

/// What reading a snapshot found.
pub(super) struct SnapScan {
    pub(super) format_version: u32,
    pub(super) revision: u64,
    pub(super) fingerprint: u32,
    pub(super) tables: Vec<TableStat>,
    pub(super) size: u64,
    /// Every checksum and the trailer checked out, every row is well formed.
    pub(super) sound: bool,
}

impl Ctx<'_> {
    /// Reads a whole snapshot, checking every checksum and every row, and
    /// hands each row to `on_row(ctx, tables, table position, row)`. `None`
    /// when even the header could not be read.
    pub(super) fn scan_snapshot(
        &mut self,
        path: &Path,
        on_row: &mut OnRow<'_>,
    ) -> io::Result<Option<SnapScan>> {
        let mut file = match self.vfs.open_read(path) {
            Ok(f) => f,
            Err(e) => {
                self.io_error("opening", path, &e);
                return Ok(None);
            }
        };
        let size = file.size().unwrap_or(0);
        let format_version = match read_prefix(&mut *file, 12) {
            Ok(first) if first.len() == 12 => {
                u32::from_le_bytes(first[8..12].try_into().expect("4 bytes"))
            }
            _ => 0,
        };
        let name = path.display().to_string();
        let mut reader = match SnapshotReader::open(
            BufReader::with_capacity(BLOCK_SIZE + 64, VfsReader::new(file)),
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
}
