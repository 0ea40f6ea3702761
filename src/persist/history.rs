//! The change feed's history on disk: what a checkpoint keeps of the feed
//! so that a restart does not lose it. A checkpoint at revision *S* writes
//! `hist-<S, 20 digits>.feed` (before the snapshot `snap-<S>.pdb`): the
//! feed's retained commits up to *S*, each with its change records
//! (objects before and after, encoded by their tables' codecs). Opening
//! loads the file of the snapshot it loads, then appends the commits it
//! replays from the log, so the feed's window is what it was before the
//! restart (trimmed to the new options' retention).
//!
//! The file is a snapshot container (`storage::snapfile`: checksummed
//! blocks, written to a temporary name, synced, renamed). Its header:
//! the tag `pandodb-feed`, the format version (varint, 1), the revision
//! before the first commit (`from`), the checkpoint's revision (`upto`),
//! then the tables (count, then name and row version of each). Each record
//! is one commit: revision, milliseconds since the Unix epoch when it was
//! appended, change count, then per change: table (position in the
//! header's list), flags (bit 0: an object before, bit 1: an object after),
//! created revision, the object(s) as length-prefixed bytes. Commits are
//! consecutive from `from + 1` to `upto`. A directory without the file
//! (written by an older version, or of a database whose feed is off)
//! opens with the feed starting after the snapshot.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::feed::Entry;
use crate::schema::Schema;
use crate::storage::fs::Vfs;
use crate::storage::snapfile::{open_snapshot_file, write_snapshot_file};
use crate::table::Change;

use super::format::{Reader, put_bytes, put_varint};

const TAG: &[u8] = b"pandodb-feed";
const VERSION: u64 = 1;

/// One commit read back: revision, when appended, changes, their bytes
/// (without the per-commit overhead the feed adds).
pub(crate) type Commit = (u64, u64, Vec<Change>, usize);

/// The name of the feed history file written with the snapshot of
/// `revision`.
pub(crate) fn history_name(revision: u64) -> String {
    format!("hist-{revision:020}.feed")
}

/// The revision in a feed history file name.
pub(crate) fn parse_history_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("hist-")?.strip_suffix(".feed")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Writes the feed history of a checkpoint at `upto`: the commits
/// `entries` (consecutive, the first one `from + 1`, the last one `upto`).
pub(crate) fn write_history(
    vfs: &dyn Vfs,
    dir: &Path,
    upto: u64,
    from: u64,
    entries: &[Arc<Entry>],
    schema: &Schema,
) -> Result<()> {
    let tables = &schema.tables;
    let mut header = TAG.to_vec();
    put_varint(&mut header, VERSION);
    put_varint(&mut header, from);
    put_varint(&mut header, upto);
    put_varint(&mut header, tables.len() as u64);
    for t in tables.iter() {
        put_bytes(&mut header, t.name().as_bytes());
        put_varint(&mut header, u64::from(t.codec_info().0));
    }
    let name = history_name(upto);
    write_snapshot_file(vfs, dir, &name, &header, |w| {
        let (mut rec, mut pk, mut data) = (Vec::new(), Vec::new(), Vec::new());
        for e in entries {
            rec.clear();
            put_varint(&mut rec, e.revision);
            put_varint(&mut rec, e.at_ms);
            put_varint(&mut rec, e.changes.len() as u64);
            for c in &e.changes {
                let def = &tables[c.table_id];
                put_varint(&mut rec, c.table_id as u64);
                let flags = u8::from(c.before.is_some()) | (u8::from(c.after.is_some()) << 1);
                rec.push(flags);
                put_varint(&mut rec, c.created);
                for obj in [&c.before, &c.after].into_iter().flatten() {
                    data.clear();
                    def.encode_object(&**obj, &mut pk, &mut data)?;
                    put_bytes(&mut rec, &data);
                }
            }
            w.write_record(&rec)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// Reads the feed history written with the snapshot of `upto`, if the
/// directory has one: `from` (the revision before its first commit) and
/// the commits. Damage is [`Error::Corrupt`]; a table the schema no longer
/// has loses its changes (the commits stay, so revisions stay consecutive).
pub(crate) fn read_history(
    vfs: &dyn Vfs,
    dir: &Path,
    upto: u64,
    schema: &Schema,
) -> Result<Option<(u64, Vec<Commit>)>> {
    let path = dir.join(history_name(upto));
    if !vfs
        .exists(&path)
        .map_err(|e| Error::io(format!("looking for {}", path.display()), &e))?
    {
        return Ok(None);
    }
    let file = path.display().to_string();
    let mut r = open_snapshot_file(vfs, &path)?;
    let corrupt = |offset: u64, detail: &str| Error::Corrupt {
        file: file.clone(),
        offset,
        detail: detail.to_string(),
    };
    let header = r.header().to_vec();
    let mut h = Reader::new(
        header
            .strip_prefix(TAG)
            .ok_or_else(|| corrupt(0, "not a feed history file"))?,
    );
    let version = h.varint().ok_or_else(|| corrupt(0, "malformed header"))?;
    if version != VERSION {
        return Err(Error::UnsupportedVersion {
            file: file.clone(),
            found: u32::try_from(version).unwrap_or(u32::MAX),
            supported: VERSION as u32,
        });
    }
    let (Some(from), Some(found_upto), Some(n)) = (h.varint(), h.varint(), h.varint()) else {
        return Err(corrupt(0, "malformed header"));
    };
    if found_upto != upto || from > upto {
        return Err(corrupt(
            0,
            "the header's revisions do not match the file name",
        ));
    }
    // Each listed table: its position in this schema (if any) and version.
    let mut map = Vec::new();
    for _ in 0..n {
        let (Some(name), Some(version)) = (h.bytes(), h.varint()) else {
            return Err(corrupt(0, "malformed header"));
        };
        let id = schema
            .tables
            .iter()
            .position(|t| t.name().as_bytes() == name);
        map.push((id, u32::try_from(version).unwrap_or(u32::MAX)));
    }
    let mut commits = Vec::new();
    let mut expect = from + 1;
    loop {
        let offset = r.offset();
        let Some(rec) = r.next_record()? else { break };
        let commit = decode_commit(rec, &map, schema).map_err(|e| match e {
            Error::Codec(m) => corrupt(offset, &m),
            other => other,
        })?;
        let Some(commit) = commit else {
            return Err(corrupt(offset, "malformed commit record"));
        };
        if commit.0 != expect {
            return Err(corrupt(offset, "commits are not consecutive"));
        }
        expect += 1;
        commits.push(commit);
    }
    if !commits.is_empty() && expect != upto + 1 {
        return Err(corrupt(r.offset(), "the commits end before the snapshot"));
    }
    Ok(Some((from, commits)))
}

/// One commit record (`None`: malformed).
fn decode_commit(
    rec: &[u8],
    map: &[(Option<usize>, u32)],
    schema: &Schema,
) -> Result<Option<Commit>> {
    let mut r = Reader::new(rec);
    let (Some(revision), Some(at_ms), Some(n)) = (r.varint(), r.varint(), r.varint()) else {
        return Ok(None);
    };
    let mut changes = Vec::new();
    let mut bytes = 0;
    for _ in 0..n {
        let (Some(table), Some(flags), Some(created)) = (r.varint(), r.byte(), r.varint()) else {
            return Ok(None);
        };
        let Some(&(id, version)) = usize::try_from(table).ok().and_then(|t| map.get(t)) else {
            return Ok(None);
        };
        if flags & !3 != 0 || flags == 0 {
            return Ok(None);
        }
        let mut objs = [None, None];
        for (i, obj) in objs.iter_mut().enumerate() {
            if flags & (1 << i) == 0 {
                continue;
            }
            let Some(data) = r.bytes() else {
                return Ok(None);
            };
            if let Some(id) = id {
                *obj = Some(schema.tables[id].decode_object(version, data)?);
            }
        }
        if let Some(id) = id {
            let [before, after] = objs;
            let (c, b) = schema.tables[id].change(created, before, after);
            changes.push(c);
            bytes += b;
        }
    }
    if !r.is_empty() {
        return Ok(None);
    }
    Ok(Some((revision, at_ms, changes, bytes)))
}
