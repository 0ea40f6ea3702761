//! The writer of one table's state: every index kept consistent with the
//! primary rows (unique keys checked before any change), the by-revision
//! tree, the key log of watched and renumbered keys, the change records,
//! and the conditional writes. Write transactions, snapshot restore and log
//! replay all write through here.

use std::any::Any;
use std::sync::Arc;

use super::{Change, TableDef, TableState, Versioned, revision_key};
use crate::error::{Error, Result};
use crate::index::{KeyBuf, KeyLog};

/// What a write transaction notes per written table.
#[derive(Default)]
pub(crate) struct TableLog {
    /// Primary keys written (to renumber them if the commit's revision is
    /// not the one expected).
    pub(crate) pks: KeyLog,
    /// Every index key changed, when the table had watches.
    pub(crate) keys: Option<KeyLog>,
}

/// The changes recorded so far and their estimated size.
#[derive(Default)]
pub(crate) struct Changes {
    pub(crate) list: Vec<Change>,
    pub(crate) bytes: usize,
}

/// A locked table's private state, with the transaction's scratch buffers,
/// key log and change list.
pub(crate) struct TableMut<'a, T> {
    pub(crate) state: &'a mut TableState<T>,
    pub(crate) scratch: &'a mut Scratch,
    pub(crate) log: &'a mut TableLog,
    pub(crate) changes: Option<&'a mut Changes>,
    pub(crate) revision: u64,
    /// The created revision to give a row (restoring stored rows), instead
    /// of keeping the replaced row's or taking `revision`.
    pub(crate) created: Option<u64>,
}

/// What loading stored rows reuses between rows.
#[derive(Default)]
pub(crate) struct LoadCtx {
    pub(crate) scratch: Scratch,
    pub(crate) log: TableLog,
}

impl LoadCtx {
    /// A state to load rows into, with a fresh key log (loading logs
    /// nothing that is kept).
    fn table_mut<'a, T>(
        &'a mut self,
        state: &'a mut TableState<T>,
        revision: u64,
        created: Option<u64>,
    ) -> TableMut<'a, T> {
        // Reused row after row: cleared, not replaced (no allocation).
        self.log.pks.clear();
        self.log.keys = None;
        TableMut {
            state,
            scratch: &mut self.scratch,
            log: &mut self.log,
            changes: None,
            revision,
            created,
        }
    }
}

/// Inserts a stored row (snapshot restore, log replay) with its revisions,
/// maintaining every index (a unique conflict is an error).
pub(crate) fn load_row<T: Send + Sync + 'static>(
    def: &TableDef<T>,
    state: &mut TableState<T>,
    ctx: &mut LoadCtx,
    obj: Arc<T>,
    created: u64,
    modified: u64,
) -> Result<Option<Versioned<T>>> {
    let m = ctx.table_mut(state, modified, Some(created));
    insert_obj(def, m, obj, Cond::Any)
}

/// Deletes a stored row by primary key (log replay); returns it.
pub(crate) fn unload_row<T: Send + Sync + 'static>(
    def: &TableDef<T>,
    state: &mut TableState<T>,
    ctx: &mut LoadCtx,
    pk: &[u8],
) -> Option<Versioned<T>> {
    delete_pk(def, ctx.table_mut(state, 0, None), pk)
}

/// The condition of a conditional write.
#[derive(Clone, Copy)]
pub(crate) enum Cond {
    /// None: write whatever is there.
    Any,
    /// Only if no object has the primary key.
    Absent,
    /// Only if the object's modified revision is this.
    Modified(u64),
}

/// Reusable key buffers (one per index) so writes do not allocate per key.
#[derive(Default)]
pub(crate) struct Scratch {
    pub(crate) new: Vec<KeyBuf>,
    pub(crate) old: Vec<KeyBuf>,
    pub(crate) key: Vec<u8>,
    pub(crate) warm: WarmKeys,
}

/// Most index entries one write walks ahead of time (see [`warm_paths`]).
const WARM_MAX: usize = 8;

/// The stored index keys a write is about to look up, kept side by side
/// so that their paths can be walked together first (see [`warm_paths`]).
///
/// A key close to the last one looked at for the same tree of the same
/// table (of the same length, differing over at most [`WARM_NEAR`] bytes:
/// ascending ids, or `u{i}@example.com`) is left out: its path is most
/// likely still cached, and walking it again would only cost time
/// (measured with every path walked: +12 % on an ascending bulk load). "Looked at" counts the
/// keys of writes that then failed a condition, and old keys removed; the
/// buffers are kept per thread, and a write to another table starts them
/// afresh. Keys longer than [`WARM_KEY_MAX`] are never walked or copied.
#[derive(Default)]
pub(crate) struct WarmKeys {
    pub(crate) buf: Vec<u8>,
    /// (index, start, end) of each key in `buf`.
    pub(crate) spans: Vec<(usize, usize, usize)>,
    /// A by-revision key.
    pub(crate) rev: Vec<u8>,
    /// The table the last keys below belong to (its definition's address).
    pub(crate) table: usize,
    /// The last key looked at per index tree, and in the by-revision tree.
    pub(crate) last: Vec<Vec<u8>>,
    pub(crate) last_rev: Vec<u8>,
}

/// Longest key (stored form) a write walks ahead of time.
const WARM_KEY_MAX: usize = 256;

/// Keys that differ from the previous one in this many bytes or fewer
/// (from the first byte that differs to the last) count as close (see
/// [`WarmKeys`]).
const WARM_NEAR: usize = 3;

/// Whether `key` is far from `last` (see [`WarmKeys`]): of another length,
/// or differing over more than [`WARM_NEAR`] bytes. `last` becomes `key`.
fn far(last: &mut Vec<u8>, key: &[u8]) -> bool {
    if last.len() != key.len() {
        last.clear();
        last.extend_from_slice(key);
        return true;
    }
    match differing(last, key) {
        None => false,
        Some((first, end)) => {
            last[first..end].copy_from_slice(&key[first..end]);
            end - first > WARM_NEAR
        }
    }
}

/// For `a` and `b` of the same length: the range from the first byte
/// where they differ to the last (`None` when equal). Eight bytes at a
/// time; the last eight overlap the ones before when the length is not a
/// multiple of eight.
fn differing(a: &[u8], b: &[u8]) -> Option<(usize, usize)> {
    let n = a.len().min(b.len());
    if n < 8 {
        let first = (0..n).find(|&i| a[i] != b[i])?;
        let last = (0..n).rfind(|&i| a[i] != b[i])?;
        return Some((first, last + 1));
    }
    let word =
        |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap_or_default());
    let mut first = None;
    let mut end = 0;
    let mut at = 0;
    loop {
        let d = word(a, at) ^ word(b, at);
        if d != 0 {
            // Byte j of the word is bits 8j..8j+8. An overlapping last word
            // cannot move `first`: the words before it covered its start.
            first.get_or_insert(at + d.trailing_zeros() as usize / 8);
            end = at + 8 - d.leading_zeros() as usize / 8;
        }
        if at + 8 == n {
            return first.map(|f| (f, end));
        }
        at = (at + 8).min(n - 8);
    }
}

impl WarmKeys {
    /// Starts the keys of one write to the table defined at `def`.
    fn start<T>(&mut self, def: &TableDef<T>) {
        self.buf.clear();
        self.spans.clear();
        let table = std::ptr::from_ref(def).addr();
        if self.table != table {
            self.table = table;
            self.last.iter_mut().for_each(Vec::clear);
            self.last_rev.clear();
        }
    }

    /// Adds the stored form of `key` in index `i` (see [`entry_key`]),
    /// unless it is close to the last one, too long, or [`WARM_MAX`] keys
    /// are held.
    fn push(&mut self, i: usize, unique: bool, key: &[u8], pk: &[u8]) {
        let len = key.len() + if unique { 0 } else { pk.len() };
        if self.spans.len() == WARM_MAX || len > WARM_KEY_MAX {
            return;
        }
        let start = self.buf.len();
        self.buf.extend_from_slice(key);
        if !unique {
            self.buf.extend_from_slice(pk);
        }
        if self.last.len() <= i {
            self.last.resize_with(i + 1, Vec::new);
        }
        if far(&mut self.last[i], &self.buf[start..]) {
            self.spans.push((i, start, self.buf.len()));
        } else {
            self.buf.truncate(start);
        }
    }

    /// `pk`, unless it is close to the last primary key (of index
    /// `primary`).
    fn row<'k>(&mut self, primary: usize, pk: &'k [u8]) -> Option<&'k [u8]> {
        if pk.len() > WARM_KEY_MAX {
            return None;
        }
        if self.last.len() <= primary {
            self.last.resize_with(primary + 1, Vec::new);
        }
        far(&mut self.last[primary], pk).then_some(pk)
    }

    /// Makes `rev` the by-revision key of `pk` at `revision`; returns
    /// whether it is far from the last.
    fn by_revision(&mut self, revision: u64, pk: &[u8]) -> bool {
        if pk.len() > WARM_KEY_MAX {
            return false;
        }
        revision_key(&mut self.rev, revision, pk);
        far(&mut self.last_rev, &self.rev)
    }
}

/// Walks the paths a write is about to take (its row at `pk`, the index
/// entries in `keys`, the by-revision entry `rev`) one level at a time in
/// turn (see [`crate::tree::Descent`]): their cache misses overlap instead
/// of adding up, and the write that follows finds them cached.
fn warm_paths<T>(
    state: &TableState<T>,
    pk: Option<&[u8]>,
    keys: &[(usize, usize, usize)],
    buf: &[u8],
    rev: Option<&[u8]>,
) {
    let walks = usize::from(pk.is_some()) + keys.len() + usize::from(rev.is_some());
    if walks < 2 {
        // Nothing to overlap: the write's own descent is as fast.
        return;
    }
    let mut row = pk.map(|k| state.rows.descent(k));
    let mut by_rev = rev.map(|k| state.by_revision.descent(k));
    let mut entries: [Option<crate::tree::Descent<'_, Versioned<T>>>; WARM_MAX] =
        std::array::from_fn(|_| None);
    for (d, &(i, a, b)) in entries.iter_mut().zip(keys) {
        *d = state.indexes.get(i).map(|t| t.descent(&buf[a..b]));
    }
    loop {
        let mut more = false;
        if let Some(d) = &mut row {
            more |= d.step();
        }
        for d in entries.iter_mut().flatten() {
            more |= d.step();
        }
        if let Some(d) = &mut by_rev {
            more |= d.step();
        }
        if !more {
            return;
        }
    }
}

/// Walks the paths of a replaced or deleted row's entries (see
/// [`warm_paths`]): its old index keys in `scratch.old` (without those the
/// new object in `scratch.new` keeps, when `keeps`) and its by-revision
/// entry at revision `modified`.
fn warm_replaced<T>(
    def: &TableDef<T>,
    state: &TableState<T>,
    scratch: &mut Scratch,
    pk: &[u8],
    modified: u64,
    keeps: bool,
) {
    let w = &mut scratch.warm;
    w.start(def);
    for (i, ix) in def.indexes.iter().enumerate() {
        if i != def.primary {
            for k in scratch.old[i].keys() {
                if !(keeps && scratch.new[i].contains_sorted(k)) {
                    w.push(i, ix.unique, k, pk);
                }
            }
        }
    }
    let rev = w.by_revision(modified, pk);
    warm_paths(state, None, &w.spans, &w.buf, rev.then_some(&w.rev[..]));
}

pub(super) fn record<T: Send + Sync + 'static>(
    changes: Option<&mut Changes>,
    def: &TableDef<T>,
    before: Option<&Arc<T>>,
    after: Option<&Arc<T>>,
    created: u64,
) {
    if let Some(c) = changes {
        let objects = usize::from(before.is_some()) + usize::from(after.is_some());
        c.bytes += std::mem::size_of::<Change>() + objects * std::mem::size_of::<T>();
        c.list.push(Change {
            table_id: def.id,
            created,
            table: def.shared_name.clone(),
            before: before.map(|o| o.clone() as Arc<dyn Any + Send + Sync>),
            after: after.map(|o| o.clone() as Arc<dyn Any + Send + Sync>),
        });
    }
}

/// Fails with [`Error::Conflict`] unless `current` satisfies `cond`.
pub(crate) fn check<T>(
    def: &TableDef<T>,
    pk: &[u8],
    current: Option<&Versioned<T>>,
    cond: Cond,
) -> Result<()> {
    let ok = match cond {
        Cond::Any => true,
        Cond::Absent => current.is_none(),
        Cond::Modified(rev) => current.is_some_and(|c| c.modified == rev),
    };
    if ok {
        return Ok(());
    }
    Err(Error::Conflict {
        table: def.name.clone(),
        key: crate::index::key::display(pk),
        expected: match cond {
            Cond::Modified(rev) => Some(rev),
            _ => None,
        },
        current: current.map(|c| c.modified),
    })
}

/// Fills one sink per index with the keys of `obj` (sorted, deduplicated).
pub(super) fn extract<T>(def: &TableDef<T>, sinks: &mut Vec<KeyBuf>, obj: &T) {
    sinks.resize_with(def.indexes.len(), KeyBuf::default);
    for (ix, sink) in def.indexes.iter().zip(sinks.iter_mut()) {
        sink.clear(ix.case_insensitive);
        (ix.extract)(obj, sink);
        sink.dedup();
    }
}

pub(crate) fn primary_key<T>(
    def: &TableDef<T>,
    sinks: &mut Vec<KeyBuf>,
    obj: &T,
) -> Result<Vec<u8>> {
    sinks.resize_with(def.indexes.len(), KeyBuf::default);
    let ix = &def.indexes[def.primary];
    let sink = &mut sinks[def.primary];
    sink.clear(ix.case_insensitive);
    (ix.extract)(obj, sink);
    single_key(def, sink)
}

/// [`extract`], then refuses a key over [`MAX_KEY_BYTES`] with
/// [`Error::InvalidKey`].
pub(super) fn extract_checked<T>(
    def: &TableDef<T>,
    sinks: &mut Vec<KeyBuf>,
    obj: &T,
) -> Result<()> {
    extract(def, sinks, obj);
    for (ix, sink) in def.indexes.iter().zip(sinks.iter()) {
        if let Some(k) = sink.keys().find(|k| k.len() > MAX_KEY_BYTES) {
            return Err(Error::InvalidKey(format!(
                "table {}, index {}: a key of {} bytes is over the limit of {MAX_KEY_BYTES}",
                def.name,
                ix.name,
                k.len()
            )));
        }
    }
    Ok(())
}

pub(super) fn single_key<T>(def: &TableDef<T>, sink: &KeyBuf) -> Result<Vec<u8>> {
    single_key_ref(def, sink).map(<[u8]>::to_vec)
}

/// The one key of the primary index's sink, borrowed.
pub(super) fn single_key_ref<'s, T>(def: &TableDef<T>, sink: &'s KeyBuf) -> Result<&'s [u8]> {
    let mut keys = sink.keys();
    match (keys.next(), keys.next()) {
        (Some(k), None) => Ok(k),
        (first, _) => Err(Error::MissingKey {
            table: def.name.clone(),
            index: def.indexes[def.primary].name.clone(),
            detail: match first {
                None => "the primary index yielded no key".into(),
                Some(_) => "the primary index yielded more than one key".into(),
            },
        }),
    }
}

/// The stored key of `key` in a non-unique index: value, then primary key.
/// Rewrites the secondary index entries of a renumbered row (`row`, under
/// primary key `pk`) with its new revisions.
pub(crate) fn restamp_entries<T>(state: &mut TableState<T>, pk: &[u8], row: &Versioned<T>) {
    let def = state.def.clone();
    let mut sinks = Vec::new();
    extract(&def, &mut sinks, &row.object);
    let mut buf = Vec::new();
    for (i, ix) in def.indexes.iter().enumerate() {
        if i == def.primary {
            continue;
        }
        for k in sinks[i].keys() {
            let stored = entry_key(ix.unique, k, pk, &mut buf);
            state.indexes[i].insert(stored, row.clone());
        }
    }
}

pub(super) fn entry_key<'b>(
    unique: bool,
    key: &'b [u8],
    pk: &[u8],
    buf: &'b mut Vec<u8>,
) -> &'b [u8] {
    if unique {
        key
    } else {
        buf.clear();
        buf.extend_from_slice(key);
        buf.extend_from_slice(pk);
        buf
    }
}

/// The longest index key an object may produce (1 GiB). A stored entry is
/// at most a key plus a primary key (or at most 17 bytes of revision plus a
/// primary key), which keeps it under the tree's 4 GiB key limit.
const MAX_KEY_BYTES: usize = 1 << 30;

pub(crate) fn insert_obj<T: Send + Sync + 'static>(
    def: &TableDef<T>,
    m: TableMut<'_, T>,
    obj: Arc<T>,
    cond: Cond,
) -> Result<Option<Versioned<T>>> {
    let TableMut {
        state,
        scratch,
        log,
        changes,
        revision,
        created,
    } = m;
    extract_checked(def, &mut scratch.new, &obj)?;
    let pk = single_key(def, &scratch.new[def.primary])?;
    // A row close to the last one (ascending ids: a bulk load) has its
    // path cached, and so, most often, do its index entries: no walk.
    let w = &mut scratch.warm;
    w.start(def);
    if let Some(row) = w.row(def.primary, &pk) {
        for (i, ix) in def.indexes.iter().enumerate() {
            if i != def.primary {
                for k in scratch.new[i].keys() {
                    w.push(i, ix.unique, k, &pk);
                }
            }
        }
        warm_paths(state, Some(row), &w.spans, &w.buf, None);
    }
    let old = state.rows.get(&pk).cloned();
    check(def, &pk, old.as_ref(), cond)?;
    // Check every unique index before changing anything.
    for (i, ix) in def.indexes.iter().enumerate() {
        if !ix.unique || i == def.primary {
            continue;
        }
        for k in scratch.new[i].keys() {
            if let Some(holder) = state.indexes[i].get(k)
                && !old
                    .as_ref()
                    .is_some_and(|o| Arc::ptr_eq(&o.object, &holder.object))
            {
                return Err(Error::UniqueViolation {
                    table: def.name.clone(),
                    index: ix.name.clone(),
                    key: crate::index::key::display(k),
                });
            }
        }
    }
    if let Some(old) = &old {
        extract(def, &mut scratch.old, &old.object);
        warm_replaced(def, state, scratch, &pk, old.modified, true);
        for (i, ix) in def.indexes.iter().enumerate() {
            if i == def.primary {
                continue;
            }
            for k in scratch.old[i].keys() {
                // A key the new object keeps is overwritten below (one
                // descent instead of a removal and a re-insertion). The
                // sinks are sorted by `extract`.
                if scratch.new[i].contains_sorted(k) {
                    continue;
                }
                let stored = entry_key(ix.unique, k, &pk, &mut scratch.key);
                state.indexes[i].remove(stored);
                if let Some(keys) = &mut log.keys {
                    keys.push(i, stored);
                }
            }
        }
        revision_key(&mut scratch.key, old.modified, &pk);
        state.by_revision.remove(&scratch.key);
    }
    let created = created.unwrap_or(old.as_ref().map_or(revision, |o| o.created));
    let row = Versioned {
        object: obj,
        created,
        modified: revision,
    };
    for (i, ix) in def.indexes.iter().enumerate() {
        if i == def.primary {
            continue;
        }
        for k in scratch.new[i].keys() {
            // A plain insert (it looks the key up first): the key is new, or
            // one the old object had too (its value is replaced), or a stale
            // entry left by a user indexer that is not a pure function.
            let stored = entry_key(ix.unique, k, &pk, &mut scratch.key);
            state.indexes[i].insert(stored, row.clone());
            if let Some(keys) = &mut log.keys {
                keys.push(i, stored);
            }
        }
    }
    record(
        changes,
        def,
        old.as_ref().map(|o| &o.object),
        Some(&row.object),
        created,
    );
    revision_key(&mut scratch.key, revision, &pk);
    state.by_revision.insert_known(&scratch.key, (), true);
    // `old` was looked up under these very `pk` bytes: the key is new
    // exactly when there was no old object.
    let grows = old.is_none();
    state.rows.insert_known(&pk, row, grows);
    log.pks.push(def.primary, &pk);
    if let Some(keys) = &mut log.keys {
        keys.push(def.primary, &pk);
    }
    Ok(old)
}

pub(crate) fn delete_pk<T: Send + Sync + 'static>(
    def: &TableDef<T>,
    m: TableMut<'_, T>,
    pk: &[u8],
) -> Option<Versioned<T>> {
    let TableMut {
        state,
        scratch,
        log,
        changes,
        ..
    } = m;
    let old = state.rows.get(pk)?.clone();
    // User indexers run before anything changes: one that panics leaves the
    // transaction as it was.
    extract(def, &mut scratch.old, &old.object);
    warm_replaced(def, state, scratch, pk, old.modified, false);
    for (i, ix) in def.indexes.iter().enumerate() {
        if i == def.primary {
            continue;
        }
        for k in scratch.old[i].keys() {
            let stored = entry_key(ix.unique, k, pk, &mut scratch.key);
            state.indexes[i].remove(stored);
            if let Some(keys) = &mut log.keys {
                keys.push(i, stored);
            }
        }
    }
    revision_key(&mut scratch.key, old.modified, pk);
    state.by_revision.remove(&scratch.key);
    state.rows.remove(pk);
    if let Some(keys) = &mut log.keys {
        keys.push(def.primary, pk);
    }
    record(changes, def, Some(&old.object), None, 0);
    Some(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differing_matches_bytewise() {
        let mut r = crate::storage::fs::XorShift::new(7);
        for _ in 0..20_000 {
            let n = (r.next_u64() % 40) as usize;
            let a: Vec<u8> = (0..n).map(|_| (r.next_u64() % 3) as u8).collect();
            let mut b = a.clone();
            for _ in 0..r.next_u64() % 3 {
                if !b.is_empty() {
                    let i = (r.next_u64() as usize) % b.len();
                    b[i] ^= 1 << (r.next_u64() % 8);
                }
            }
            let diff: Vec<usize> = (0..n).filter(|&i| a[i] != b[i]).collect();
            let naive = match (diff.first(), diff.last()) {
                (Some(&f), Some(&l)) => Some((f, l + 1)),
                _ => None,
            };
            assert_eq!(differing(&a, &b), naive, "{a:?} {b:?}");
            assert_eq!(differing(&b, &a), naive, "{a:?} {b:?}");
            let mut last = a.clone();
            far(&mut last, &b);
            assert_eq!(last, b);
        }
    }

    #[test]
    fn near_keys_differ_in_a_few_bytes() {
        let mut last = Vec::new();
        assert!(far(&mut last, b"user-00000001"));
        assert!(!far(&mut last, b"user-00000002"));
        assert!(far(&mut last, b"user-00731245"));
        let mut last = b"u00000009@example.com".to_vec();
        assert!(!far(&mut last, b"u00000010@example.com"));
        assert!(far(&mut last, b"u73520931@example.com"));
        assert_eq!(last, b"u73520931@example.com");
        // At the bound: a span of WARM_NEAR (3) bytes is close, 4 is far.
        let mut last = b"id-000099".to_vec();
        assert!(!far(&mut last, b"id-000100"));
        let mut last = b"id-000999".to_vec();
        assert!(far(&mut last, b"id-001000"));
        // Another length is far.
        assert!(far(&mut last, b"id-01000"));
    }

    #[test]
    fn warm_keys_are_the_stored_keys() {
        let mut w = WarmKeys::default();
        let pk = b"pk\0\0";
        let mut stored = Vec::new();
        // A unique key is stored as it is, a non-unique one with the
        // primary key after it; close keys and overlong ones are left out.
        w.push(1, true, b"alpha", pk);
        w.push(2, false, b"beta", pk);
        w.push(2, false, b"betb", pk);
        w.push(3, true, &[7; WARM_KEY_MAX + 1], pk);
        let got: Vec<(usize, &[u8])> = w.spans.iter().map(|&(i, a, b)| (i, &w.buf[a..b])).collect();
        let beta = entry_key(false, b"beta", pk, &mut stored).to_vec();
        assert_eq!(got, [(1, &b"alpha"[..]), (2, &beta[..])]);
        // At most WARM_MAX keys.
        for i in 0..2 * WARM_MAX {
            w.push(
                4 + i,
                true,
                format!("key-{i:04}-{}", i * 7919).as_bytes(),
                pk,
            );
        }
        assert_eq!(w.spans.len(), WARM_MAX);
        // The by-revision key is the one the removal uses.
        assert!(w.by_revision(42, pk));
        revision_key(&mut stored, 42, pk);
        assert_eq!(w.rev, stored);
        assert!(!w.by_revision(43, pk), "the next revision is close");
    }
}
