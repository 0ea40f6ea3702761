//! Snapshots of a whole database: writing one from a frozen root, reading
//! one back into fresh table states (every index rebuilt), and matching the
//! stored schema against the one given.

use std::collections::HashMap;
use std::io::{Read, Write};

use crate::error::{Error, Result};
use crate::root::Root;
use crate::schema::Schema;
use crate::storage::snapfile::{SnapshotReader, SnapshotWriter};
use crate::table::{AnyState, TableLoader};

use super::format::{SnapshotHeader, TableHeader, decode_row, encode_row, fingerprint};

/// What a snapshot holds, as written or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotInfo {
    /// The revision the snapshot shows.
    pub revision: u64,
    /// Rows (objects) in it.
    pub rows: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// A writer that counts bytes.
struct Counting<W> {
    w: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.w.write(b)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

/// The header describing `root`'s tables.
pub(crate) fn header_of(root: &Root, schema: &Schema) -> Result<SnapshotHeader> {
    let mut tables = Vec::new();
    for (def, state) in schema.tables.iter().zip(root.tables.iter()) {
        let (version, has_codec) = def.codec_info();
        if !has_codec {
            return Err(Error::Schema(format!(
                "table {:?} has no codec: call TableBuilder::serde to store it",
                def.name()
            )));
        }
        tables.push(TableHeader {
            name: def.name().to_string(),
            version,
            indexes: def.index_names(),
            rows: def.row_count(&**state) as u64,
        });
    }
    Ok(SnapshotHeader {
        revision: root.revision,
        fingerprint: fingerprint(&tables),
        tables,
    })
}

/// Writes the snapshot of `root` to `w` (streamed: one block buffered).
pub(crate) fn write_root(root: &Root, schema: &Schema, w: impl Write) -> Result<SnapshotInfo> {
    let header = header_of(root, schema)?;
    let mut out = SnapshotWriter::new(Counting { w, n: 0 }, &header.encode())?;
    write_rows(root, schema, &mut out)?;
    let rows = out.records();
    let counting = out.finish()?;
    Ok(SnapshotInfo {
        revision: root.revision,
        rows,
        bytes: counting.n,
    })
}

/// Writes every row of `root` as a record of `out`.
pub(crate) fn write_rows<W: Write>(
    root: &Root,
    schema: &Schema,
    out: &mut SnapshotWriter<W>,
) -> Result<()> {
    let mut rec = Vec::new();
    for (i, (def, state)) in schema.tables.iter().zip(root.tables.iter()).enumerate() {
        def.for_each_row(&**state, &mut |created, modified, pk, data| {
            encode_row(&mut rec, i, created, modified, pk, data);
            out.write_record(&rec)
        })?;
    }
    Ok(())
}

/// Reads a snapshot into one fresh state per table of `schema` (tables the
/// snapshot lacks start empty). Returns the snapshot's revision and the
/// states, once every checksum and the trailer checked out.
pub(crate) fn read_states(
    r: impl Read,
    file: &str,
    schema: &Schema,
) -> Result<(SnapshotInfo, Vec<AnyState>)> {
    read_from(SnapshotReader::open(r, file)?, schema)
}

/// [`read_states`] from an opened reader.
pub(crate) fn read_from<R: Read>(
    mut reader: SnapshotReader<R>,
    schema: &Schema,
) -> Result<(SnapshotInfo, Vec<AnyState>)> {
    let header = SnapshotHeader::decode(reader.header(), reader.file(), 0)?;
    load(&mut reader, &header, schema)
}

fn load<R: Read>(
    reader: &mut SnapshotReader<R>,
    header: &SnapshotHeader,
    schema: &Schema,
) -> Result<(SnapshotInfo, Vec<AnyState>)> {
    let file = reader.file().to_string();
    let by_name: HashMap<&str, usize> = schema
        .tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name(), i))
        .collect();
    // Snapshot table position → schema table id.
    let mut map = Vec::new();
    for t in &header.tables {
        let Some(&id) = by_name.get(t.name.as_str()) else {
            return Err(Error::SchemaMismatch(format!(
                "{file}: table {:?} of the snapshot is not in the schema",
                t.name
            )));
        };
        let (version, has_codec) = schema.tables[id].codec_info();
        if !has_codec {
            return Err(Error::Schema(format!(
                "table {:?} has no codec: call TableBuilder::serde to load it",
                t.name
            )));
        }
        if t.version > version {
            return Err(Error::SchemaMismatch(format!(
                "{file}: table {:?} was written with row version {}, newer than this schema's {version}",
                t.name, t.version
            )));
        }
        if map.contains(&id) {
            return Err(Error::Corrupt {
                file: file.clone(),
                offset: 0,
                detail: format!("table {:?} is listed twice", t.name),
            });
        }
        map.push(id);
    }
    let mut loaders: Vec<Option<Box<dyn TableLoader>>> =
        schema.tables.iter().map(|_| None).collect();
    for &id in &map {
        loaders[id] = Some(schema.tables[id].clone().loader(None));
    }
    let mut counts = vec![0u64; header.tables.len()];
    loop {
        let offset = reader.offset();
        let Some(rec) = reader.next_record()? else {
            break;
        };
        let corrupt = |detail: String| Error::Corrupt {
            file: file.clone(),
            offset,
            detail,
        };
        let row = decode_row(rec).ok_or_else(|| corrupt("a malformed row".into()))?;
        let t = usize::try_from(row.table)
            .ok()
            .filter(|&t| t < map.len())
            .ok_or_else(|| corrupt(format!("row of unknown table #{}", row.table)))?;
        counts[t] += 1;
        if counts[t] > header.tables[t].rows {
            return Err(corrupt(format!(
                "more rows of table {:?} than the header's {}",
                header.tables[t].name, header.tables[t].rows
            )));
        }
        if row.created > row.modified || row.modified > header.revision {
            return Err(corrupt(format!(
                "row revisions {}..{} outside the snapshot's revision {}",
                row.created, row.modified, header.revision
            )));
        }
        let loader = loaders[map[t]]
            .as_mut()
            .ok_or_else(|| corrupt("row of an unmapped table".into()))?;
        loader
            .put(
                header.tables[t].version,
                row.created,
                row.modified,
                row.data,
            )
            .map_err(|e| match e {
                Error::Codec(m) => corrupt(format!("row does not decode: {m}")),
                other => other,
            })?;
    }
    for (t, h) in header.tables.iter().enumerate() {
        if counts[t] != h.rows {
            return Err(Error::Corrupt {
                file: file.clone(),
                offset: reader.offset(),
                detail: format!(
                    "table {:?} has {} rows, the header says {}",
                    h.name, counts[t], h.rows
                ),
            });
        }
    }
    let mut rows = 0;
    let mut states = Vec::new();
    for (id, l) in loaders.into_iter().enumerate() {
        let state = match l {
            Some(l) => l.finish()?,
            None => schema.tables[id].clone().empty_state(),
        };
        let n = schema.tables[id].row_count(&*state) as u64;
        if let Some(t) = map.iter().position(|&m| m == id)
            && n != header.tables[t].rows
        {
            return Err(Error::SchemaMismatch(format!(
                "{file}: table {:?}: {} stored rows became {n} under this schema's primary key",
                header.tables[t].name, header.tables[t].rows
            )));
        }
        rows += n;
        states.push(state);
    }
    Ok((
        SnapshotInfo {
            revision: header.revision,
            rows,
            bytes: reader.offset(),
        },
        states,
    ))
}
