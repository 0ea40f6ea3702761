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

use super::write::{
    Cond, TableMut, entry_key, extract_checked, insert_obj, record, single_key_ref,
};
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
    /// The rows (objects and revisions), by row number: what every
    /// secondary entry holds.
    objects: Vec<Versioned<T>>,
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

    /// A builder expecting about `rows` rows: its buffers are allocated
    /// once (growing them by doubling copies every key several times).
    pub(crate) fn with_capacity(def: Arc<TableDef<T>>, rows: usize) -> Self {
        let mut b = Bulk::new(def);
        b.objects.reserve(rows);
        for (i, k) in b.indexes.iter_mut().enumerate() {
            if i != b.def.primary {
                k.entries.reserve(rows);
                k.bytes.reserve(rows * 16);
            }
        }
        b.by_revision.entries.reserve(rows);
        b.by_revision.bytes.reserve(rows * 16);
        b
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
        extract_checked(def, &mut self.sinks, &obj)?;
        // The primary key, borrowed from its sink (no copy per row).
        let pk = single_key_ref(def, &self.sinks[def.primary])?;
        let Ok(row) = u32::try_from(self.objects.len()) else {
            // More rows than one bulk build numbers: the rest go row by row.
            return Ok(Err(OutOfOrder));
        };
        let versioned = Versioned {
            object: obj,
            created,
            modified,
        };
        if self.rows.push(pk, versioned.clone()).is_err() {
            return Ok(Err(OutOfOrder));
        }
        for (i, ix) in def.indexes.iter().enumerate() {
            if i == def.primary {
                continue;
            }
            for k in self.sinks[i].keys() {
                let stored = entry_key(ix.unique, k, pk, &mut self.buf);
                self.indexes[i].push(stored, k.len(), row);
            }
        }
        revision_key(&mut self.buf, modified, pk);
        let sort_len = self.buf.len() - pk.len();
        self.by_revision.push(&self.buf, sort_len, row);
        self.objects.push(versioned);
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
        let mut trees: Vec<Tree<Versioned<T>>> = def.indexes.iter().map(|_| Tree::new()).collect();
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
    objects: &[Versioned<T>],
) -> Result<Tree<Versioned<T>>> {
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

/// Inserts, as [`insert_obj`] with [`Cond::Any`] would one after the
/// other, the last object of `objs` for each primary key (an earlier one
/// with the same key is skipped), all or nothing: after an error the
/// state, the key log and the change list are as they were. A state with
/// no rows is built bottom-up (the objects sorted by primary key first);
/// otherwise, or when an indexer gives a different primary key on a second
/// call, the objects go in one by one. Returns the number of objects
/// given.
pub(crate) fn insert_many<T: Send + Sync + 'static>(
    def: &Arc<TableDef<T>>,
    m: TableMut<'_, T>,
    objs: Vec<Arc<T>>,
) -> Result<usize> {
    let n = objs.len();
    if m.state.rows.is_empty() && n > 1 {
        let TableMut {
            state,
            scratch,
            log,
            mut changes,
            revision,
            created,
        } = m;
        if let Some(built) = build_sorted(def, &objs, revision)? {
            for (pk, row) in built.rows.iter() {
                log.pks.push(def.primary, pk);
                if let Some(keys) = &mut log.keys {
                    keys.push(def.primary, pk);
                }
                record(
                    changes.as_deref_mut(),
                    def,
                    None,
                    Some(&row.object),
                    revision,
                );
            }
            if let Some(keys) = &mut log.keys {
                for (i, t) in built.indexes.iter().enumerate() {
                    for (k, _) in t.iter() {
                        keys.push(i, k);
                    }
                }
            }
            *state = built;
            return Ok(n);
        }
        return insert_each(
            def,
            TableMut {
                state,
                scratch,
                log,
                changes,
                revision,
                created,
            },
            objs,
        );
    }
    insert_each(def, m, objs)
}

/// The state of `objs` built bottom-up, or `None` when their primary keys
/// changed between two calls of the indexer.
fn build_sorted<T: Send + Sync + 'static>(
    def: &Arc<TableDef<T>>,
    objs: &[Arc<T>],
    revision: u64,
) -> Result<Option<TableState<T>>> {
    // Primary keys in one arena: (start, length, position in `objs`).
    let mut bytes = Vec::new();
    let mut order: Vec<(usize, u32, u32)> = Vec::with_capacity(objs.len());
    let mut sinks = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        let pk = super::write::primary_key(def, &mut sinks, o)?;
        let Ok(i) = u32::try_from(i) else {
            return Ok(None); // over 4 billion objects: one by one
        };
        order.push((bytes.len(), pk.len() as u32, i));
        bytes.extend_from_slice(&pk);
    }
    let key = |e: &(usize, u32, u32)| &bytes[e.0..e.0 + e.1 as usize];
    if !order.windows(2).all(|w| key(&w[0]) < key(&w[1])) {
        // Stable: objects with one primary key stay in input order, and
        // the last of them is the one kept.
        order.sort_by(|a, b| key(a).cmp(key(b)));
    }
    let mut bulk = Bulk::with_capacity(def.clone(), order.len());
    for (j, e) in order.iter().enumerate() {
        if order.get(j + 1).is_some_and(|next| key(next) == key(e)) {
            continue; // replaced by a later object
        }
        if bulk
            .push(objs[e.2 as usize].clone(), revision, revision)?
            .is_err()
        {
            return Ok(None);
        }
    }
    bulk.finish().map(Some)
}

/// [`insert_many`] one object at a time, undone on an error.
fn insert_each<T: Send + Sync + 'static>(
    def: &Arc<TableDef<T>>,
    m: TableMut<'_, T>,
    mut objs: Vec<Arc<T>>,
) -> Result<usize> {
    let n = objs.len();
    // Only the last object of each primary key counts.
    let mut sinks = Vec::new();
    let mut last = std::collections::HashMap::new();
    for (i, o) in objs.iter().enumerate() {
        last.insert(super::write::primary_key(def, &mut sinks, o)?, i);
    }
    if last.len() < n {
        let mut keep = vec![false; n];
        for &i in last.values() {
            keep[i] = true;
        }
        let mut k = keep.iter();
        objs.retain(|_| k.next().copied().unwrap_or(false));
    }
    let TableMut {
        state,
        scratch,
        log,
        mut changes,
        revision,
        created,
    } = m;
    // O(1): the trees are persistent. (Keys logged for rows that are then
    // undone are harmless: renumbering skips missing rows, and a watch
    // fires at worst once too often.)
    let saved = state.clone();
    let recorded = changes.as_ref().map(|c| (c.list.len(), c.bytes));
    for obj in objs {
        let m = TableMut {
            state: &mut *state,
            scratch: &mut *scratch,
            log: &mut *log,
            changes: changes.as_deref_mut(),
            revision,
            created,
        };
        if let Err(e) = insert_obj(def, m, obj, Cond::Any) {
            *state = saved;
            if let (Some(c), Some((len, bytes))) = (changes.as_deref_mut(), recorded) {
                c.list.truncate(len);
                c.bytes = bytes;
            }
            return Err(e);
        }
    }
    Ok(n)
}
