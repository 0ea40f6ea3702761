//! The table layer: what a table is (its definition: indexes and codec),
//! its state in one version (`TableState`: the primary tree, the
//! by-revision tree and one tree per secondary index), the writer that
//! keeps those trees consistent (`write`), the change records of a
//! commit (`change`), and the one type-erased view of a table the rest of
//! the database keeps (`erased`).

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::index::KeyBuf;
use crate::tree::Tree;

pub(crate) mod bulk;
mod change;
mod erased;
pub(crate) mod write;

pub use change::{Change, ChangeKind};
pub(crate) use erased::{
    AnyState, AnyTable, Ledgers, Settle, TableLedgers, TableLoader, state_mut, state_ref,
};

pub(crate) type ExtractFn<T> = dyn Fn(&T, &mut KeyBuf) + Send + Sync;

/// One declared index of a table.
pub(crate) struct IndexDef<T> {
    pub(crate) name: String,
    pub(crate) unique: bool,
    pub(crate) case_insensitive: bool,
    pub(crate) extract: Arc<ExtractFn<T>>,
    /// The key type `K` of the `Index<T, K>` handles (for lookups by name).
    pub(crate) key: std::any::TypeId,
}

/// A validated table: its name and indexes (`indexes[primary]` is the
/// primary index).
pub(crate) struct TableDef<T> {
    pub(crate) id: usize,
    pub(crate) name: String,
    /// The name again, shared by every change record.
    pub(crate) shared_name: Arc<str>,
    pub(crate) primary: usize,
    pub(crate) indexes: Vec<IndexDef<T>>,
    pub(crate) codec: Option<Codec<T>>,
    pub(crate) version: u32,
    /// Settled ledgers kept for the table's next write transactions (see
    /// [`TableState::lending_clone`]): at most [`SPARE_LEDGERS`] sets. A
    /// plain `std` mutex, also under loom: a cache of empty buffers, not
    /// part of the protocols the models check.
    pub(crate) spare: std::sync::Mutex<Vec<Ledgers<T>>>,
}

impl<T> TableDef<T> {
    /// The table's kept ledgers (see [`TableDef::spare`]).
    pub(crate) fn spare(&self) -> std::sync::MutexGuard<'_, Vec<Ledgers<T>>> {
        // Only `Vec::push` and `pop` run under it: a poisoned lock still
        // holds a whole vector.
        self.spare
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How many settled sets of ledgers a table keeps for reuse. One write
/// transaction of a table runs at a time, and it settles its predecessor's
/// before it copies anything, so one set is what it needs; the bound only
/// keeps the pool small whatever the order of commits and aborts (an
/// aborted transaction takes a set and gives none back).
pub(crate) const SPARE_LEDGERS: usize = 2;

/// A set of settled ledgers whose buffers hold more than this many
/// entries (it served a large transaction) is not kept.
pub(crate) const SPARE_ROOM: usize = 4096;

/// An object together with its revisions: the revision of the commit that
/// created it (etcd's `create_revision`) and of the last commit that wrote
/// it (`mod_revision`).
///
/// Inside a write transaction, objects it wrote show the revision the
/// transaction expects to commit as (`base_revision() + 1`); if another
/// writer of other tables commits first, the commit renumbers them.
///
/// ```
/// # use pandodb::{Db, Indexer, Query, Schema};
/// # struct Person { id: String, age: i64 }
/// # let mut schema = Schema::builder();
/// # let mut t = schema.table::<Person>("person");
/// # let by_id = t.primary("id", Indexer::string(|p: &Person| p.id.as_str()));
/// # let people = schema.add(t)?;
/// # let db = Db::new(schema.build()?);
/// let mut w = db.write(&[&people]);
/// w.insert(&people, Person { id: "ann".into(), age: 41 })?;
/// w.commit()?; // revision 1
/// let mut w = db.write(&[&people]);
/// w.insert(&people, Person { id: "ann".into(), age: 42 })?;
/// w.commit()?; // revision 2
/// let ann = db.read().get_versioned(&by_id, "ann")?.unwrap();
/// assert_eq!((ann.created, ann.modified, ann.object.age), (1, 2, 42));
/// # Ok::<(), pandodb::Error>(())
/// ```
#[derive(Debug)]
pub struct Versioned<T> {
    /// The object.
    pub object: Arc<T>,
    /// Revision of the commit that inserted it.
    pub created: u64,
    /// Revision of the last commit that wrote it.
    pub modified: u64,
}

impl<T> Clone for Versioned<T> {
    #[inline]
    fn clone(&self) -> Self {
        Versioned {
            object: self.object.clone(),
            created: self.created,
            modified: self.modified,
        }
    }
}

/// The key of an object in the by-revision tree: its modified revision
/// (see [`revision_prefix`]) followed by its primary key.
pub(crate) fn revision_key(buf: &mut Vec<u8>, revision: u64, pk: &[u8]) {
    buf.clear();
    revision_prefix(buf, revision);
    buf.extend_from_slice(pk);
}

/// The primary key inside a [`revision_key`] (`None` for a key too short
/// to be one).
pub(crate) fn revision_key_pk(key: &[u8]) -> Option<&[u8]> {
    key.get(1 + usize::from(*key.first()?)..)
}

/// The revision part of [`revision_key`]: the number of significant
/// nibbles (1 to 16), then those nibbles, most significant first, one per
/// byte.
///
/// Order: a revision with more significant nibbles is larger, and among
/// revisions with as many, nibble order is numeric order; the part is
/// self-delimiting, so keys sort by revision, then primary key.
///
/// Size: revisions below 2^20 take 6 bytes, not the 16 of a fixed width:
/// 10 bytes less in each leaf of the tree (one per object).
///
/// Nibbles keep the fan-out of the nodes where consecutive revisions
/// branch at 16: every commit copies the rightmost path of this tree, and
/// with whole bytes that path would hold a 256-child node.
pub(crate) fn revision_prefix(buf: &mut Vec<u8>, revision: u64) {
    let nibbles = (16 - revision.leading_zeros() / 4).max(1);
    buf.push(nibbles as u8);
    for i in (0..nibbles).rev() {
        buf.push(((revision >> (4 * i)) & 0x0f) as u8);
    }
}

/// The state of one table in one version. `rows` maps the primary key to
/// the object and its revisions; `by_revision` holds the keys of the same
/// rows (no values: a lookup in `rows` gives the row) under
/// [`revision_key`]; `indexes` holds one tree per secondary index (the slot
/// of the primary index stays empty), each entry the row as the primary
/// tree holds it (object and revisions), so every query form reads the
/// revisions where it finds the object. Unique keys map to the row;
/// non-unique keys are the encoded value followed by the encoded primary key.
pub(crate) struct TableState<T> {
    pub(crate) def: Arc<TableDef<T>>,
    pub(crate) primary: usize,
    pub(crate) rows: Tree<Versioned<T>>,
    pub(crate) by_revision: Tree<()>,
    pub(crate) indexes: Box<[Tree<Versioned<T>>]>,
}

impl<T> Clone for TableState<T> {
    fn clone(&self) -> Self {
        TableState {
            def: self.def.clone(),
            primary: self.primary,
            rows: self.rows.clone(),
            by_revision: self.by_revision.clone(),
            indexes: self.indexes.clone(),
        }
    }
}

impl<T> TableState<T> {
    /// The private copy a write transaction writes to: every tree lends
    /// (see [`Ledger`]) until [`TableState::take_ledgers`].
    /// Its ledgers are the ones the table kept from an earlier commit, when
    /// it has a set.
    pub(crate) fn lending_clone(&self) -> Self {
        let spare = self.def.spare().pop();
        let Ledgers {
            rows,
            by_revision,
            indexes,
        } = spare.unwrap_or_default();
        let mut spare_index = indexes.into_iter();
        TableState {
            def: self.def.clone(),
            primary: self.primary,
            rows: self.rows.lending_clone_with(rows),
            by_revision: self.by_revision.lending_clone_with(by_revision),
            indexes: self
                .indexes
                .iter()
                .map(|t| t.lending_clone_with(spare_index.next().flatten()))
                .collect(),
        }
    }

    /// Ends the lending of a private copy about to be published; the
    /// ledgers are settled once the base version is gone (or dropped).
    pub(crate) fn take_ledgers(&mut self) -> TableLedgers<T> {
        TableLedgers {
            def: self.def.clone(),
            set: Ledgers {
                rows: self.rows.take_ledger(),
                by_revision: self.by_revision.take_ledger(),
                indexes: self.indexes.iter_mut().map(Tree::take_ledger).collect(),
            },
        }
    }

    /// Renumbers the rows this transaction wrote from revision `from` (the
    /// one it expected) to `to` (the one it got): `pks` lists their primary
    /// keys, possibly repeated, possibly deleted since.
    pub(crate) fn renumber<'a>(&mut self, pks: impl Iterator<Item = &'a [u8]>, from: u64, to: u64) {
        let mut key = Vec::new();
        for pk in pks {
            let Some(row) = self.rows.get(pk) else {
                continue;
            };
            if row.modified != from {
                continue; // already renumbered (the key was listed twice)
            }
            let mut row = row.clone();
            revision_key(&mut key, from, pk);
            self.by_revision.remove(&key);
            row.modified = to;
            if row.created == from {
                row.created = to;
            }
            revision_key(&mut key, to, pk);
            self.by_revision.insert(&key, ());
            write::restamp_entries(self, pk, &row);
            self.rows.insert_known(pk, row, false);
        }
    }
}

/// How a table's rows are encoded in snapshots and the log.
pub(crate) struct Codec<T> {
    pub(crate) encode: fn(&T, &mut Vec<u8>) -> std::result::Result<(), String>,
    pub(crate) decode: fn(&[u8]) -> std::result::Result<T, String>,
    #[allow(clippy::type_complexity)]
    pub(crate) migrate:
        Option<Arc<dyn Fn(u32, &[u8]) -> std::result::Result<T, String> + Send + Sync>>,
}

pub(crate) fn encode_postcard<T: serde::Serialize>(
    obj: &T,
    out: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    let buf = std::mem::take(out);
    *out = postcard::to_extend(obj, buf).map_err(|e| e.to_string())?;
    Ok(())
}

pub(crate) fn decode_postcard<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> std::result::Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| e.to_string())
}

impl<T> TableDef<T> {
    fn codec(&self) -> Result<&Codec<T>> {
        self.codec.as_ref().ok_or_else(|| {
            Error::Schema(format!(
                "table {:?} has no codec: call TableBuilder::serde to store it",
                self.name
            ))
        })
    }

    fn codec_error(&self, e: &str) -> Error {
        Error::Codec(format!("table {:?}: {e}", self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::{revision_key, revision_prefix};
    use proptest::prelude::*;

    /// Any width, with small revisions (the common case) well represented.
    fn revision() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..300, any::<u64>(), (0u32..64).prop_map(|s| 1u64 << s)]
    }

    proptest! {
        #[test]
        fn revision_keys_sort_by_revision_then_key(
            a in revision(), b in revision(),
            pa in proptest::collection::vec(any::<u8>(), 0..6),
            pb in proptest::collection::vec(any::<u8>(), 0..6),
        ) {
            let (mut ka, mut kb) = (Vec::new(), Vec::new());
            revision_key(&mut ka, a, &pa);
            revision_key(&mut kb, b, &pb);
            prop_assert_eq!(ka.cmp(&kb), (a, &pa).cmp(&(b, &pb)));
            // The revision part is a prefix of the key, the lower bound
            // `modified_since` starts from.
            let mut p = Vec::new();
            revision_prefix(&mut p, a);
            prop_assert!(ka.starts_with(&p));
            prop_assert_eq!(super::revision_key_pk(&ka), Some(&pa[..]));
        }
    }

    /// A table keeps the ledgers its commits settle, at most
    /// `SPARE_LEDGERS` sets, none from a transaction that outgrew
    /// `SPARE_ROOM`; versions kept by readers across commits on reused
    /// ledgers (slow settlements: each base is still read) read their own
    /// rows. (That a reused ledger lends again is
    /// `tree::tests::miri_a_reused_ledger_lends_the_nodes_of_its_last_transaction`.)
    #[test]
    fn settled_ledgers_are_kept_for_the_next_transactions() {
        use crate::{Db, Indexer, Query, Schema};
        let mut schema = Schema::builder();
        let mut t = schema.table::<(u64, u64)>("pairs");
        let by_id = t.primary("id", Indexer::value(|p: &(u64, u64)| p.0));
        t.index("v", Indexer::value(|p: &(u64, u64)| p.1));
        let pairs = schema.add(t).expect("table");
        let db = Db::new(schema.build().expect("schema"));
        let spare = || pairs.def.spare().len();
        // 300 rows: trees of two levels of inner nodes, so that a
        // transaction reaches nodes its predecessor made.
        let mut model: Vec<u64> = (0..300).collect();
        let mut w = db.write(&[&pairs]);
        for (k, v) in model.iter().enumerate() {
            w.insert(&pairs, (k as u64, *v)).expect("insert");
        }
        w.commit().expect("commit");
        let mut readers = Vec::new();
        for i in 0..50u64 {
            let k = (i * 37 % 300) as usize;
            model[k] = 1000 + i;
            let mut w = db.write(&[&pairs]);
            w.insert(&pairs, (k as u64, model[k])).expect("insert");
            w.commit().expect("commit");
            readers.push((model.clone(), db.read()));
            assert!(spare() <= super::SPARE_LEDGERS);
        }
        // The last commit's set waits in the commit queue; the next write
        // transaction settles it, and the table keeps it (a write
        // transaction copies a table's state at its first write only).
        assert_eq!(spare(), 0, "each commit took the set its predecessor left");
        drop(db.write(&[&pairs]));
        assert_eq!(spare(), 1);
        for (m, r) in &readers {
            let rows: Vec<u64> = r.all(&by_id).expect("all").map(|p| p.1).collect();
            assert_eq!(&rows, m, "a kept version changed");
        }
        drop(readers);
        // A large transaction's ledgers are not kept.
        while spare() > 0 {
            drop(pairs.def.spare().pop());
        }
        for round in 0..2 {
            // The second round replaces 20,000 rows: every replaced leaf
            // waits in the ledgers until settlement.
            let mut w = db.write(&[&pairs]);
            for i in 0..20_000u64 {
                w.insert(&pairs, (i, i + round)).expect("insert");
            }
            w.commit().expect("commit");
        }
        drop(db.write(&[&pairs])); // settles it
        assert_eq!(spare(), 0, "a set that grew past SPARE_ROOM was kept");
    }

    #[test]
    fn revision_prefix_sizes() {
        let len = |r| {
            let mut p = Vec::new();
            revision_prefix(&mut p, r);
            p.len()
        };
        assert_eq!(len(0), 2);
        assert_eq!(len(15), 2);
        assert_eq!(len(16), 3);
        assert_eq!(len((1 << 20) - 1), 6);
        assert_eq!(len(u64::MAX), 17);
    }
}
