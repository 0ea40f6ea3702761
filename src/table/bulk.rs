//! Building a whole table state bottom-up ([`Bulk`]): snapshot restore,
//! recovery and bulk loads into an empty table.
//!
//! Rows arrive in primary-key order (a snapshot stores them so; a bulk
//! load sorts first), so the primary tree is built as they come
//! ([`TreeBuilder`]). The keys of the by-revision tree and of each
//! secondary index are collected in one byte arena per tree, with the row
//! they point to, sorted (skipped when already in order) and built
//! bottom-up at [`Bulk::finish`], the trees on separate threads. Unique
//! indexes are checked on the sorted keys: two equal neighbours are the
//! same [`Error::UniqueViolation`] an insert reports.
//!
//! A row out of primary-key order (or repeating a key) is refused with
//! [`OutOfOrder`]: the caller then finishes what it has and goes on row by
//! row through the incremental writer.

use std::sync::Arc;

use super::write::{MAX_KEY_BYTES, entry_key, extract, single_key};
use super::{TableDef, TableState, Versioned, revision_key};
use crate::error::{Error, Result};
use crate::index::KeyBuf;
use crate::tree::{Tree, TreeBuilder};

/// The keys of one tree under construction: their bytes in one arena,
/// each with the row it belongs to.
///
/// A stored key is a *sort part* (an index's value, or a revision)
/// followed by the row's primary key, or the sort part alone (unique
/// indexes). Rows are pushed in primary-key order, so a *stable* sort by
/// the sort part alone puts the keys in order; it compares the sort
/// parts' first eight bytes as one number and looks further only on ties.
#[derive(Default)]
struct Keys {
    bytes: Vec<u8>,
    entries: Vec<KeyEntry>,
}

struct KeyEntry {
    /// The sort part's first eight bytes, big-endian, zero-padded.
    head: u64,
    /// Where the key starts in the arena.
    start: usize,
    /// The key's length and its sort part's length.
    len: u32,
    sort_len: u32,
    /// The row it belongs to.
    row: u32,
}

impl Keys {
    /// Adds a key whose first `sort_len` bytes are its sort part.
    fn push(&mut self, key: &[u8], sort_len: usize, row: u32) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key);
        let mut head = [0u8; 8];
        let n = sort_len.min(8);
        head[..n].copy_from_slice(&key[..n]);
        // Keys are at most 1 GiB plus a primary key (see MAX_KEY_BYTES).
        self.entries.push(KeyEntry {
            head: u64::from_be_bytes(head),
            start,
            len: key.len() as u32,
            sort_len: sort_len as u32,
            row,
        });
    }

    fn key(&self, e: &KeyEntry) -> &[u8] {
        &self.bytes[e.start..e.start + e.len as usize]
    }

    /// Puts the entries in key order (stable by sort part; already sorted
    /// input is only checked).
    fn sort(&mut self) {
        let sorted = self
            .entries
            .windows(2)
            .all(|w| self.key(&w[0]) <= self.key(&w[1]));
        if sorted {
            return;
        }
        let bytes = &self.bytes;
        let part = |e: &KeyEntry| &bytes[e.start..e.start + e.sort_len as usize];
        self.entries.sort_by(|a, b| {
            a.head.cmp(&b.head).then_with(|| {
                if a.sort_len <= 8 && b.sort_len <= 8 {
                    // Equal zero-padded heads: the shorter is a prefix.
                    a.sort_len.cmp(&b.sort_len)
                } else {
                    part(a).cmp(part(b))
                }
            })
        });
    }
}

/// A row [`Bulk::push`] could not take: its primary key does not sort
/// after the last one. Nothing of it was taken.
pub(crate) struct OutOfOrder;

/// A table state being built bottom-up from rows in primary-key order.
pub(crate) struct Bulk<T> {
    def: Arc<TableDef<T>>,
    rows: TreeBuilder<Versioned<T>>,
    by_revision: Keys,
    /// One per index (the primary index's stays empty).
    indexes: Vec<Keys>,
    /// The objects, by row number.
    objects: Vec<Arc<T>>,
    sinks: Vec<KeyBuf>,
    buf: Vec<u8>,
}

impl<T: Send + Sync + 'static> Bulk<T> {
    pub(crate) fn new(def: Arc<TableDef<T>>) -> Self {
        Bulk {
            indexes: def.indexes.iter().map(|_| Keys::default()).collect(),
            def,
            rows: TreeBuilder::new(),
            by_revision: Keys::default(),
            objects: Vec::new(),
            sinks: Vec::new(),
            buf: Vec::new(),
        }
    }

    /// Rows taken so far.
    pub(crate) fn len(&self) -> usize {
        self.objects.len()
    }

    /// Takes a row, which must sort after every row taken before
    /// (`Ok(Err(OutOfOrder))` otherwise, nothing taken). An object whose
    /// index keys are invalid is an error, as for an insert.
    pub(crate) fn push(
        &mut self,
        obj: Arc<T>,
        created: u64,
        modified: u64,
    ) -> Result<std::result::Result<(), OutOfOrder>> {
        let def = &*self.def;
        extract(def, &mut self.sinks, &obj);
        for (ix, sink) in def.indexes.iter().zip(&self.sinks) {
            if let Some(k) = sink.keys().find(|k| k.len() > MAX_KEY_BYTES) {
                return Err(Error::InvalidKey(format!(
                    "table {}, index {}: a key of {} bytes is over the limit of {MAX_KEY_BYTES}",
                    def.name,
                    ix.name,
                    k.len()
                )));
            }
        }
        let pk = single_key(def, &self.sinks[def.primary])?;
        let Ok(row) = u32::try_from(self.objects.len()) else {
            // More rows than one bulk build numbers: the rest go row by row.
            return Ok(Err(OutOfOrder));
        };
        let versioned = Versioned {
            object: obj.clone(),
            created,
            modified,
        };
        if self.rows.push(&pk, versioned).is_err() {
            return Ok(Err(OutOfOrder));
        }
        for (i, ix) in def.indexes.iter().enumerate() {
            if i == def.primary {
                continue;
            }
            for k in self.sinks[i].keys() {
                let stored = entry_key(ix.unique, k, &pk, &mut self.buf);
                self.indexes[i].push(stored, k.len(), row);
            }
        }
        revision_key(&mut self.buf, modified, &pk);
        let sort_len = self.buf.len() - pk.len();
        self.by_revision.push(&self.buf, sort_len, row);
        self.objects.push(obj);
        Ok(Ok(()))
    }

    /// The finished state: every tree built, unique indexes checked.
    pub(crate) fn finish(self) -> Result<TableState<T>> {
        let Bulk {
            def,
            rows,
            mut by_revision,
            mut indexes,
            objects,
            ..
        } = self;
        let rows = rows.finish();
        let primary = def.primary;
        // The secondary trees are independent: built side by side.
        let (by_revision, built) = std::thread::scope(|s| {
            let objects = &objects;
            let def = &*def;
            let handles: Vec<_> = indexes
                .iter_mut()
                .enumerate()
                .filter(|(i, k)| *i != primary && !k.entries.is_empty())
                .map(|(i, keys)| s.spawn(move || (i, build_index(def, i, keys, objects))))
                .collect();
            by_revision.sort();
            let by_rev =
                Tree::from_sorted(by_revision.entries.iter().map(|e| (by_revision.key(e), ())));
            let built: Vec<_> = handles
                .into_iter()
                .map(|h| match h.join() {
                    Ok(r) => r,
                    Err(p) => std::panic::resume_unwind(p),
                })
                .collect();
            (by_rev, built)
        });
        let by_revision = by_revision.map_err(|e| {
            Error::SchemaMismatch(format!(
                "table {:?}: two rows with one primary key ({e})",
                def.name
            ))
        })?;
        let mut trees: Vec<Tree<Arc<T>>> = def.indexes.iter().map(|_| Tree::new()).collect();
        for (i, t) in built {
            trees[i] = t?;
        }
        Ok(TableState {
            primary,
            def,
            rows,
            by_revision,
            indexes: trees.into(),
        })
    }
}

/// Sorts the keys of index `i` and builds its tree; equal neighbours in a
/// unique index are a violation.
fn build_index<T>(
    def: &TableDef<T>,
    i: usize,
    keys: &mut Keys,
    objects: &[Arc<T>],
) -> Result<Tree<Arc<T>>> {
    keys.sort();
    let ix = &def.indexes[i];
    if let Some(w) = keys
        .entries
        .windows(2)
        .find(|w| keys.key(&w[0]) == keys.key(&w[1]))
    {
        let key = crate::index::key::display(keys.key(&w[0]));
        return Err(if ix.unique {
            Error::UniqueViolation {
                table: def.name.clone(),
                index: ix.name.clone(),
                key,
            }
        } else {
            // A non-unique key ends with the primary key: equal only for
            // two rows with one primary key, which `push` refuses.
            Error::SchemaMismatch(format!(
                "table {:?}, index {:?}: key {key} stored twice",
                def.name, ix.name
            ))
        });
    }
    Tree::from_sorted(
        keys.entries
            .iter()
            .map(|e| (keys.key(e), objects[e.row as usize].clone())),
    )
    .map_err(|e| Error::SchemaMismatch(format!("table {:?}, index {:?}: {e}", def.name, ix.name)))
}
