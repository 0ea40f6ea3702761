//! The byte formats of pandodb's own records, inside the storage layer's
//! containers (see `docs/FORMAT.md`): the snapshot header, snapshot rows and
//! write-ahead log commit records. Varints are unsigned LEB128; objects are
//! postcard bytes of the table's row type.
//!
//! Every decoder here takes untrusted bytes: lengths are checked against
//! what is left before anything is sliced or allocated, and every failure
//! is a [`Error::Corrupt`] naming the file and the offset of the record.

use crate::error::{Error, Result};

/// Appends `v` as an unsigned LEB128 varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a length-prefixed byte string.
pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A cursor over untrusted bytes.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// The next varint, or `None` if it is cut off or over 64 bits.
    pub(crate) fn varint(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = *self.bytes.get(self.pos)?;
            self.pos += 1;
            if i == 9 && b > 1 {
                return None;
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    pub(crate) fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// A length-prefixed byte string (the length checked against what is
    /// left).
    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        let end = self.pos.checked_add(n)?;
        let b = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(b)
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let b = &self.bytes[self.pos.min(self.bytes.len())..];
        self.pos = self.bytes.len();
        b
    }
}

/// One table as a snapshot header describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableHeader {
    pub(crate) name: String,
    pub(crate) version: u32,
    /// Index names and uniqueness, the primary index first.
    pub(crate) indexes: Vec<(String, bool)>,
    pub(crate) rows: u64,
}

/// The snapshot header (the container's header blob).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SnapshotHeader {
    pub(crate) revision: u64,
    /// CRC-32C of the schema part (names, versions, indexes) of `tables`.
    pub(crate) fingerprint: u32,
    pub(crate) tables: Vec<TableHeader>,
}

/// The schema fingerprint of a table list: CRC-32C of their names,
/// versions and indexes (not the row counts).
pub(crate) fn fingerprint(tables: &[TableHeader]) -> u32 {
    let mut b = Vec::new();
    for t in tables {
        put_bytes(&mut b, t.name.as_bytes());
        put_varint(&mut b, u64::from(t.version));
        put_varint(&mut b, t.indexes.len() as u64);
        for (name, unique) in &t.indexes {
            put_bytes(&mut b, name.as_bytes());
            b.push(u8::from(*unique));
        }
    }
    crc32c::crc32c(&b)
}

impl SnapshotHeader {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        put_varint(&mut b, self.revision);
        b.extend_from_slice(&self.fingerprint.to_le_bytes());
        put_varint(&mut b, self.tables.len() as u64);
        for t in &self.tables {
            put_bytes(&mut b, t.name.as_bytes());
            put_varint(&mut b, u64::from(t.version));
            put_varint(&mut b, t.rows);
            put_varint(&mut b, t.indexes.len() as u64);
            for (name, unique) in &t.indexes {
                put_bytes(&mut b, name.as_bytes());
                b.push(u8::from(*unique));
            }
        }
        b
    }

    /// Decodes a header; `file` and `offset` (of the header in the file)
    /// name the place in errors.
    pub(crate) fn decode(bytes: &[u8], file: &str, offset: u64) -> Result<SnapshotHeader> {
        let bad = |what: &str| Error::Corrupt {
            file: file.to_string(),
            offset,
            detail: format!("snapshot header: {what}"),
        };
        let mut r = Reader::new(bytes);
        let revision = r.varint().ok_or_else(|| bad("revision"))?;
        let mut fp = [0u8; 4];
        for b in &mut fp {
            *b = r.byte().ok_or_else(|| bad("fingerprint"))?;
        }
        let n = r.varint().ok_or_else(|| bad("table count"))?;
        let mut tables = Vec::new();
        for _ in 0..n {
            let name = r.bytes().ok_or_else(|| bad("table name"))?;
            let name = std::str::from_utf8(name).map_err(|_| bad("table name is not UTF-8"))?;
            let version = r
                .varint()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| bad("table version"))?;
            let rows = r.varint().ok_or_else(|| bad("row count"))?;
            let ni = r.varint().ok_or_else(|| bad("index count"))?;
            let mut indexes = Vec::new();
            for _ in 0..ni {
                let ix = r.bytes().ok_or_else(|| bad("index name"))?;
                let ix = std::str::from_utf8(ix).map_err(|_| bad("index name is not UTF-8"))?;
                let unique = match r.byte() {
                    Some(0) => false,
                    Some(1) => true,
                    _ => return Err(bad("index flag")),
                };
                indexes.push((ix.to_string(), unique));
            }
            tables.push(TableHeader {
                name: name.to_string(),
                version,
                indexes,
                rows,
            });
        }
        if !r.is_empty() {
            return Err(bad("trailing bytes"));
        }
        let header = SnapshotHeader {
            revision,
            fingerprint: u32::from_le_bytes(fp),
            tables,
        };
        if fingerprint(&header.tables) != header.fingerprint {
            return Err(bad("the fingerprint does not match the tables"));
        }
        Ok(header)
    }
}

/// A snapshot row: table (position in the header), created and modified
/// revisions, primary key, object.
pub(crate) fn encode_row(
    out: &mut Vec<u8>,
    table: usize,
    created: u64,
    modified: u64,
    pk: &[u8],
    data: &[u8],
) {
    out.clear();
    put_varint(out, table as u64);
    put_varint(out, created);
    put_varint(out, modified);
    put_bytes(out, pk);
    out.extend_from_slice(data);
}

/// A decoded snapshot row, borrowing the record.
#[allow(dead_code)] // `pk` is read only by the inspection tool (`cli`)
pub(crate) struct Row<'a> {
    pub(crate) table: u64,
    pub(crate) created: u64,
    pub(crate) modified: u64,
    pub(crate) pk: &'a [u8],
    pub(crate) data: &'a [u8],
}

pub(crate) fn decode_row(rec: &[u8]) -> Option<Row<'_>> {
    let mut r = Reader::new(rec);
    Some(Row {
        table: r.varint()?,
        created: r.varint()?,
        modified: r.varint()?,
        pk: r.bytes()?,
        data: r.rest(),
    })
}

/// One operation of a commit record.
#[allow(dead_code)] // a put's `pk` is for inspection tools
pub(crate) enum Op<'a> {
    /// Insert or replace: table, created revision (0: the record's own),
    /// primary key, object.
    Put {
        table: u64,
        created: u64,
        pk: &'a [u8],
        data: &'a [u8],
    },
    /// Delete by primary key.
    Delete { table: u64, pk: &'a [u8] },
}

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;

/// Appends a put operation to a commit record.
pub(crate) fn put_op(out: &mut Vec<u8>, table: usize, created: u64, pk: &[u8], data: &[u8]) {
    out.push(OP_PUT);
    put_varint(out, table as u64);
    put_varint(out, created);
    put_bytes(out, pk);
    put_bytes(out, data);
}

/// Appends a delete operation to a commit record.
pub(crate) fn delete_op(out: &mut Vec<u8>, table: usize, pk: &[u8]) {
    out.push(OP_DELETE);
    put_varint(out, table as u64);
    put_bytes(out, pk);
}

/// Starts a commit record: the tables it names, each with the version of
/// its row type, so that replay maps them by name (not by position in a
/// schema that may have changed) and decodes objects of older versions
/// through the migration hook. Operations name a table by its position in
/// this list.
pub(crate) fn record_tables(out: &mut Vec<u8>, tables: &[(&str, u32)]) {
    put_varint(out, tables.len() as u64);
    for (name, version) in tables {
        put_bytes(out, name.as_bytes());
        put_varint(out, u64::from(*version));
    }
}

/// The tables a commit record names: name and row version.
pub(crate) type RecordTables<'a> = Vec<(&'a str, u32)>;

/// Decodes a commit record into its table list and operations (all or
/// nothing; every operation's table is in the list).
pub(crate) fn decode_record(rec: &[u8]) -> Option<(RecordTables<'_>, Vec<Op<'_>>)> {
    let mut r = Reader::new(rec);
    let n = r.varint()?;
    let mut tables = Vec::new();
    for _ in 0..n {
        let name = std::str::from_utf8(r.bytes()?).ok()?;
        let version = u32::try_from(r.varint()?).ok()?;
        tables.push((name, version));
    }
    let ops = decode_ops(r.rest())?;
    let known = |t: u64| usize::try_from(t).is_ok_and(|t| t < tables.len());
    if ops.iter().all(|op| match op {
        Op::Put { table, .. } | Op::Delete { table, .. } => known(*table),
    }) {
        Some((tables, ops))
    } else {
        None
    }
}

/// Decodes the operations of a commit record (after its table list).
fn decode_ops(rec: &[u8]) -> Option<Vec<Op<'_>>> {
    let mut r = Reader::new(rec);
    let mut ops = Vec::new();
    while !r.is_empty() {
        ops.push(match r.byte()? {
            OP_PUT => Op::Put {
                table: r.varint()?,
                created: r.varint()?,
                pk: r.bytes()?,
                data: r.bytes()?,
            },
            OP_DELETE => Op::Delete {
                table: r.varint()?,
                pk: r.bytes()?,
            },
            _ => return None,
        });
    }
    Some(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_reject_overlong() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut r = Reader::new(&b);
            assert_eq!(r.varint(), Some(v));
            assert!(r.is_empty());
        }
        assert_eq!(Reader::new(&[0xff; 11]).varint(), None);
        assert_eq!(Reader::new(&[0x80]).varint(), None);
        // A length beyond the buffer is refused, not allocated.
        let mut b = Vec::new();
        put_varint(&mut b, u64::MAX);
        assert_eq!(Reader::new(&b).bytes(), None);
    }

    #[test]
    fn header_round_trip_and_damage() {
        let mut tables = vec![TableHeader {
            name: "user".into(),
            version: 3,
            indexes: vec![("id".into(), true), ("age".into(), false)],
            rows: 42,
        }];
        let h = SnapshotHeader {
            revision: 7,
            fingerprint: fingerprint(&tables),
            tables: tables.clone(),
        };
        let b = h.encode();
        assert_eq!(SnapshotHeader::decode(&b, "f", 0).unwrap(), h);
        for cut in 0..b.len() {
            assert!(SnapshotHeader::decode(&b[..cut], "f", 0).is_err());
        }
        for i in 0..b.len() {
            for bit in 0..8 {
                let mut d = b.clone();
                d[i] ^= 1 << bit;
                if let Ok(x) = SnapshotHeader::decode(&d, "f", 0) {
                    // Only a change the fingerprint cannot see (a row count)
                    // may decode.
                    assert_eq!(x.fingerprint, h.fingerprint);
                    assert_eq!(fingerprint(&x.tables), h.fingerprint);
                }
            }
        }
        tables[0].rows = 1;
        assert_eq!(
            fingerprint(&tables),
            h.fingerprint,
            "row counts are not schema"
        );
    }

    #[test]
    fn ops_round_trip() {
        let mut b = Vec::new();
        put_op(&mut b, 1, 0, b"pk", b"data");
        delete_op(&mut b, 2, b"k2");
        let ops = decode_ops(&b).unwrap();
        assert!(matches!(
            ops[0],
            Op::Put {
                table: 1,
                created: 0,
                pk: b"pk",
                data: b"data"
            }
        ));
        assert!(matches!(
            ops[1],
            Op::Delete {
                table: 2,
                pk: b"k2"
            }
        ));
        for cut in 1..b.len() {
            if let Some(ops) = decode_ops(&b[..cut]) {
                assert!(ops.len() == 1 && cut == 1 + 1 + 1 + 3 + 5);
            }
        }
    }
}
