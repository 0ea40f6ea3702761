//! `dump`: rows of a snapshot, operations of a log segment, or the state a
//! directory opens to.

use std::io;
use std::path::Path;

use serde_json::{Value, json};

use crate::index::key::display;
use crate::persist::format::{Op, Row, decode_record};

use super::report::table_name;
use super::snapshot::TableStat;
use super::{Ctx, Kind};

impl Ctx<'_> {
    /// `pandodb dump`.
    pub(super) fn dump(&mut self, path: &Path) -> io::Result<()> {
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
                    let first = self.lone_segment_first(path);
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

/// Bytes as lowercase hex.
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
