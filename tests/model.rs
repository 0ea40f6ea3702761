//! G1–G3 — model-based state-machine test of the database.
//!
//! Two tables of the same object type, each with a unique primary string
//! index, a unique secondary index (optional; case-insensitive in the second
//! table), a non-unique index, a multi-value index (`Vec<String>`) and a
//! compound index. Random op sequences — begin (with or without change
//! tracking), insert/update, delete, delete_all, delete_prefix, commit, abort
//! or drop, queries, take and drop snapshots — run against the database and
//! against a model of plain `BTreeMap`s (primary key → object), committed and
//! in-transaction. Keys come from a tiny space so that replacements, prefix
//! overlaps and unique conflicts are frequent.
//!
//! After every step:
//! - every index of every view (the open write transaction, a fresh read,
//!   every kept snapshot) equals its recomputation from the model's rows,
//!   sorted by the `Encode::to_key` bytes of (key, primary key), forwards and
//!   backwards, with the right `index_len` and `len`;
//! - a unique violation happened exactly when the model predicted one, with
//!   the right table and index, and left the transaction unchanged;
//! - every kept snapshot still reads back exactly its model and revision.
//!
//! Reads at past revisions (`Db::read_at`, a window of `READ_HISTORY`
//! revisions): a random recent revision read back equals the model's state
//! at that revision, and `Error::Compacted` comes exactly outside the
//! window (`RevisionNotReached` beyond the latest).
//!
//! Tier 1 (default): 256 cases of up to 100 steps. `PROPTEST_CASES=N`
//! overrides the number of cases and `MODEL_MAX_STEPS=N` the longest
//! sequence; tier 2 is
//! `PROPTEST_CASES=10000 MODEL_MAX_STEPS=500 cargo test --release --test model`.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use pandodb::{
    Db, Encode, Error, Index, Indexer, Options, Query, ReadTxn, Schema, Table, WriteTxn,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

// ---------------------------------------------------------------------------
// Objects, schema, model
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct Obj {
    pk: String,
    uk: Option<String>,
    alias: String,
    grp: i8,
    tags: Vec<String>,
    n: u8,
}

const TABLES: [&str; 2] = ["t0", "t1"];
const PKS: [&str; 7] = ["", "a", "ab", "abc", "b", "ba", "c"];
const UKS: [&str; 6] = ["x", "X", "xy", "y", "Y", "z"];
/// Table 1's case-insensitive unique key: 7 distinct values once folded.
const ALIASES: [&str; 9] = ["x", "X", "xy", "y", "Y", "z", "Zz", "w", "v"];
const TAGS: [&str; 4] = ["t", "tu", "u", ""];
const KEEP_SNAPSHOTS: usize = 4;
/// Revisions before the current one `Db::read_at` reads.
const READ_HISTORY: u64 = 6;

#[derive(Clone)]
struct Handles {
    t: Table<Obj>,
    pk: Index<Obj, str>,
    uk: Index<Obj, str>,
    grp: Index<Obj, i8>,
    tags: Index<Obj, str>,
    comp: Index<Obj, (i8, u8)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Ix {
    Pk,
    Uk,
    Grp,
    Tags,
    Comp,
}

const IXS: [Ix; 5] = [Ix::Pk, Ix::Uk, Ix::Grp, Ix::Tags, Ix::Comp];

fn setup() -> (Db, [Handles; 2]) {
    let mut s = Schema::builder();
    let mut declared = Vec::new();
    for (i, name) in TABLES.iter().enumerate() {
        let mut t = s.table::<Obj>(name);
        let pk = t.primary("pk", Indexer::string(|o: &Obj| o.pk.as_str()));
        let uk = if i == 0 {
            t.unique("uk", Indexer::optional_string(|o: &Obj| o.uk.as_deref()))
        } else {
            // Case-insensitive unique: "x" and "X" conflict.
            t.unique("uk", Indexer::string_ci(|o: &Obj| o.alias.as_str()))
        };
        let grp = t.index("grp", Indexer::value(|o: &Obj| o.grp));
        let tags = t.index("tags", Indexer::strings(|o: &Obj| o.tags.as_slice()));
        let comp = t.index("comp", Indexer::value(|o: &Obj| (o.grp, o.n)));
        declared.push((t, pk, uk, grp, tags, comp));
    }
    let mut hs = Vec::new();
    for (t, pk, uk, grp, tags, comp) in declared {
        let t = s.add(t).unwrap();
        hs.push(Handles {
            t,
            pk,
            uk,
            grp,
            tags,
            comp,
        });
    }
    let db = Db::with_options(
        s.build().unwrap(),
        Options::default().read_history(READ_HISTORY as usize),
    );
    let hs: [Handles; 2] = hs.try_into().unwrap_or_else(|_| unreachable!());
    (db, hs)
}

/// Table 1's unique index folds case: its keys and queries are lowercased.
fn folds(table: usize, ix: Ix) -> bool {
    table == 1 && ix == Ix::Uk
}

type Rows = BTreeMap<String, Obj>;
type Tables = [Rows; 2];

/// The model of every indexer: the encoded keys an object has in an index.
fn model_keys(table: usize, ix: Ix, o: &Obj) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = match ix {
        Ix::Pk => vec![o.pk.to_key()],
        Ix::Uk if table == 1 => vec![o.alias.to_lowercase().to_key()],
        Ix::Uk => o.uk.iter().map(|u| u.to_key()).collect(),
        Ix::Grp => vec![o.grp.to_key()],
        Ix::Tags => o.tags.iter().map(|t| t.to_key()).collect(),
        Ix::Comp => vec![(o.grp, o.n).to_key()],
    };
    keys.sort();
    keys.dedup();
    keys
}

/// Expected entries of an index: (encoded key, encoded primary key, object),
/// in index order.
fn entries(table: usize, ix: Ix, rows: &Rows) -> Vec<(Vec<u8>, Vec<u8>, Obj)> {
    let mut v: Vec<(Vec<u8>, Vec<u8>, Obj)> = rows
        .values()
        .flat_map(|o| {
            model_keys(table, ix, o)
                .into_iter()
                .map(move |k| (k, o.pk.to_key(), o.clone()))
        })
        .collect();
    v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    v
}

fn objs(it: impl Iterator<Item = Arc<Obj>>) -> Vec<Obj> {
    it.map(|o| (*o).clone()).collect()
}

fn all_of<Q: Query, K: ?Sized>(q: &Q, idx: &Index<Obj, K>, rev: bool) -> Vec<Obj> {
    let it = q.all(idx).unwrap();
    if rev { objs(it.rev()) } else { objs(it) }
}

/// Every index of both tables equals its recomputation from `model`.
fn check_view<Q: Query>(q: &Q, hs: &[Handles; 2], model: &Tables, what: &str) {
    for (t, h) in hs.iter().enumerate() {
        // The by-revision index holds exactly the rows, with the same
        // revisions, ordered by modified revision.
        let rows: Vec<(String, u64, u64)> = q
            .all_versioned(&h.t)
            .unwrap()
            .map(|v| (v.object.pk.clone(), v.created, v.modified))
            .collect();
        let want: Vec<String> = model[t].keys().cloned().collect();
        let mut pks: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        pks.sort();
        assert_eq!(pks, want, "{what}: all_versioned of {}", TABLES[t]);
        let by_rev: Vec<(String, u64, u64)> = q
            .modified_since(&h.t, 0)
            .unwrap()
            .map(|v| (v.object.pk.clone(), v.created, v.modified))
            .collect();
        assert!(
            by_rev.windows(2).all(|w| w[0].2 <= w[1].2),
            "{what}: modified_since order of {}",
            TABLES[t]
        );
        let mut sorted = by_rev.clone();
        sorted.sort();
        let mut rows_sorted = rows.clone();
        rows_sorted.sort();
        assert_eq!(
            sorted, rows_sorted,
            "{what}: by-revision index of {}",
            TABLES[t]
        );
        for (pk, created, modified) in &rows {
            assert!(
                1 <= *created && created <= modified,
                "{what}: revisions of {pk}: created {created}, modified {modified}"
            );
        }
        assert_eq!(
            q.len(&h.t).unwrap(),
            model[t].len(),
            "{what}: len of {}",
            TABLES[t]
        );
        for ix in IXS {
            let want: Vec<Obj> = entries(t, ix, &model[t]).into_iter().map(|e| e.2).collect();
            let (fwd, back, n) = match ix {
                Ix::Pk => (
                    all_of(q, &h.pk, false),
                    all_of(q, &h.pk, true),
                    q.index_len(&h.pk),
                ),
                Ix::Uk => (
                    all_of(q, &h.uk, false),
                    all_of(q, &h.uk, true),
                    q.index_len(&h.uk),
                ),
                Ix::Grp => (
                    all_of(q, &h.grp, false),
                    all_of(q, &h.grp, true),
                    q.index_len(&h.grp),
                ),
                Ix::Tags => (
                    all_of(q, &h.tags, false),
                    all_of(q, &h.tags, true),
                    q.index_len(&h.tags),
                ),
                Ix::Comp => (
                    all_of(q, &h.comp, false),
                    all_of(q, &h.comp, true),
                    q.index_len(&h.comp),
                ),
            };
            assert_eq!(fwd, want, "{what}: {}.{ix:?} in order", TABLES[t]);
            let mut rev = want.clone();
            rev.reverse();
            assert_eq!(back, rev, "{what}: {}.{ix:?} reversed", TABLES[t]);
            assert_eq!(
                n.unwrap(),
                want.len(),
                "{what}: index_len {}.{ix:?}",
                TABLES[t]
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Ops
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Query_ {
    GetPk(String),
    GetUk(String),
    IterTag(String),
    Grp(i8),
    PrefixPk(String),
    PrefixTag(String),
    LongestPk(String),
    Range(Bound<(i8, u8)>, Bound<(i8, u8)>),
    Leading(i8),
    LowerBound(i8, bool),
}

#[derive(Debug, Clone)]
enum Op {
    Begin { mask: u8, track: bool },
    Insert { table: usize, obj: Obj },
    Delete { table: usize, pk: String },
    DeletePrefixPk { table: usize, prefix: String },
    DeletePrefixTag { table: usize, prefix: String },
    DeletePrefixUk { table: usize, prefix: String },
    DeleteAllGrp { table: usize, grp: i8 },
    DeleteAllLeading { table: usize, grp: i8 },
    Commit,
    Abort { drop_it: bool },
    Query { table: usize, q: Query_ },
    Snapshot,
    DropSnapshot(usize),
    ReadAt(u64),
}

fn pk() -> impl Strategy<Value = String> {
    select(PKS.to_vec()).prop_map(String::from)
}

fn short_prefix() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        select(vec!["a", "ab", "b", "c", "x", "X", "t", "u", "abcd"]).prop_map(String::from),
    ]
}

fn obj() -> impl Strategy<Value = Obj> {
    (
        pk(),
        prop::option::weighted(0.7, select(UKS.to_vec()).prop_map(String::from)),
        select(ALIASES.to_vec()).prop_map(String::from),
        -2i8..=2,
        vec(select(TAGS.to_vec()).prop_map(String::from), 0..=3),
        0u8..3,
    )
        .prop_map(|(pk, uk, alias, grp, tags, n)| Obj {
            pk,
            uk,
            alias,
            grp,
            tags,
            n,
        })
}

fn comp_bound() -> impl Strategy<Value = Bound<(i8, u8)>> {
    prop_oneof![
        ((-3i8..=3), 0u8..4).prop_map(Bound::Included),
        ((-3i8..=3), 0u8..4).prop_map(Bound::Excluded),
        Just(Bound::Unbounded),
    ]
}

fn query() -> impl Strategy<Value = Query_> {
    prop_oneof![
        pk().prop_map(Query_::GetPk),
        select(ALIASES.to_vec()).prop_map(|u| Query_::GetUk(u.into())),
        select(TAGS.to_vec()).prop_map(|t| Query_::IterTag(t.into())),
        (-3i8..=3).prop_map(Query_::Grp),
        short_prefix().prop_map(Query_::PrefixPk),
        short_prefix().prop_map(Query_::PrefixTag),
        select(vec!["", "a", "abcd", "abx", "bab", "ca", "d"])
            .prop_map(|s| Query_::LongestPk(s.into())),
        (comp_bound(), comp_bound()).prop_map(|(lo, hi)| Query_::Range(lo, hi)),
        (-3i8..=3).prop_map(Query_::Leading),
        ((-3i8..=3), any::<bool>()).prop_map(|(g, r)| Query_::LowerBound(g, r)),
    ]
}

fn table() -> impl Strategy<Value = usize> {
    0usize..2
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..=3, any::<bool>()).prop_map(|(mask, track)| Op::Begin { mask, track }),
        24 => (table(), obj()).prop_map(|(table, obj)| Op::Insert { table, obj }),
        6 => (table(), pk()).prop_map(|(table, pk)| Op::Delete { table, pk }),
        2 => (table(), short_prefix()).prop_map(|(table, prefix)| Op::DeletePrefixPk { table, prefix }),
        2 => (table(), short_prefix()).prop_map(|(table, prefix)| Op::DeletePrefixTag { table, prefix }),
        1 => (table(), short_prefix()).prop_map(|(table, prefix)| Op::DeletePrefixUk { table, prefix }),
        1 => (table(), -2i8..=2).prop_map(|(table, grp)| Op::DeleteAllGrp { table, grp }),
        1 => (table(), -2i8..=2).prop_map(|(table, grp)| Op::DeleteAllLeading { table, grp }),
        5 => Just(Op::Commit),
        2 => any::<bool>().prop_map(|drop_it| Op::Abort { drop_it }),
        10 => (table(), query()).prop_map(|(table, q)| Op::Query { table, q }),
        2 => Just(Op::Snapshot),
        1 => any::<usize>().prop_map(Op::DropSnapshot),
        3 => (0..READ_HISTORY + 3).prop_map(Op::ReadAt),
    ]
}

// ---------------------------------------------------------------------------
// The machine
// ---------------------------------------------------------------------------

struct Open {
    w: WriteTxn,
    mask: u8,
    track: bool,
    /// The committed model when it began (the base of its change list).
    base: Tables,
    rows: Tables,
}

struct Machine {
    db: Db,
    hs: [Handles; 2],
    committed: Tables,
    open: Option<Open>,
    snaps: Vec<(ReadTxn, Tables, u64)>,
    last_revision: u64,
    /// The committed model at each recent revision.
    history: BTreeMap<u64, Tables>,
}

fn locks(mask: u8, table: usize) -> bool {
    mask & (1 << table) != 0
}

fn fold(table: usize, ix: Ix, s: &str) -> String {
    if folds(table, ix) {
        s.to_lowercase()
    } else {
        s.to_string()
    }
}

/// What a delete-by-predicate should do: the victims (primary keys) and
/// how many index entries matched (equal to the victims unless an object
/// has several matching keys of a multi-value index).
fn victims(rows: &Rows, matches: impl Fn(&Obj) -> usize) -> (Vec<String>, usize) {
    let mut v = Vec::new();
    let mut entries = 0;
    for o in rows.values() {
        let m = matches(o);
        if m > 0 {
            v.push(o.pk.clone());
            entries += m;
        }
    }
    (v, entries)
}

impl Machine {
    fn new() -> Self {
        let (db, hs) = setup();
        Machine {
            db,
            hs,
            committed: Default::default(),
            open: None,
            snaps: Vec::new(),
            last_revision: 0,
            history: BTreeMap::new(),
        }
    }

    /// Runs a write against the open transaction, or a one-shot one that
    /// locks just `table` (committed when the write succeeds, else
    /// aborted). `f` gets the transaction and the model rows it may change,
    /// plus whether the table is locked.
    fn write(
        &mut self,
        table: usize,
        f: impl FnOnce(&mut WriteTxn, &[Handles; 2], &mut Tables, bool) -> bool,
    ) {
        let hs = self.hs.clone();
        match &mut self.open {
            Some(o) => {
                let locked = locks(o.mask, table);
                f(&mut o.w, &hs, &mut o.rows, locked);
            }
            None => {
                let mut w = self.db.write(&[&hs[table].t]);
                let mut rows = self.committed.clone();
                let before = w.base_revision();
                let ok = f(&mut w, &hs, &mut rows, true);
                check_view(&w, &hs, &rows, "one-shot txn");
                if ok {
                    let changed = rows != self.committed;
                    let rev = w.commit().unwrap().revision;
                    if changed {
                        assert_eq!(
                            rev,
                            before + 1,
                            "a commit with changes is the next revision"
                        );
                    }
                    self.committed = rows;
                } else {
                    w.abort();
                }
            }
        }
    }

    fn insert(&mut self, table: usize, obj: Obj) {
        self.write(table, |w, hs, rows, locked| {
            let got = w.insert(&hs[table].t, obj.clone());
            if !locked {
                assert_eq!(
                    got.unwrap_err(),
                    Error::TableNotLocked(TABLES[table].into())
                );
                return false;
            }
            let r = &mut rows[table];
            let uk_keys = model_keys(table, Ix::Uk, &obj);
            let conflict = r.values().any(|o| {
                o.pk != obj.pk
                    && model_keys(table, Ix::Uk, o)
                        .iter()
                        .any(|k| uk_keys.contains(k))
            });
            if conflict {
                match got {
                    Err(Error::UniqueViolation {
                        table: t, index, ..
                    }) => {
                        assert_eq!((t.as_str(), index.as_str()), (TABLES[table], "uk"));
                    }
                    other => panic!("insert {obj:?}: expected a unique violation, got {other:?}"),
                }
                // The transaction is left as it was: checked against the
                // unchanged model after this step.
                return false;
            }
            let old = got.unwrap_or_else(|e| panic!("insert {obj:?}: unexpected {e:?}"));
            assert_eq!(
                old.map(|o| (*o).clone()),
                r.get(&obj.pk).cloned(),
                "replaced object"
            );
            r.insert(obj.pk.clone(), obj);
            true
        });
    }

    fn delete(&mut self, table: usize, pk: String) {
        self.write(table, |w, hs, rows, locked| {
            let probe = Obj {
                pk: pk.clone(),
                uk: None,
                alias: String::new(),
                grp: 0,
                tags: vec![],
                n: 0,
            };
            let got = w.delete(&hs[table].t, &probe);
            if !locked {
                assert_eq!(
                    got.unwrap_err(),
                    Error::TableNotLocked(TABLES[table].into())
                );
                return false;
            }
            let old = got.unwrap().map(|o| (*o).clone());
            assert_eq!(old, rows[table].remove(&pk), "deleted object");
            true
        });
    }

    /// Deletes through an index; `run` performs it, `matches` is the model.
    fn delete_where(
        &mut self,
        table: usize,
        run: impl FnOnce(&mut WriteTxn, &Handles) -> pandodb::Result<usize>,
        matches: impl Fn(&Obj) -> usize,
        what: String,
    ) {
        self.write(table, |w, hs, rows, locked| {
            let got = run(w, &hs[table]);
            let (gone, entries) = victims(&rows[table], &matches);
            if !locked {
                match got {
                    Err(Error::TableNotLocked(t)) => assert_eq!(t, TABLES[table]),
                    other => panic!("{what} on an unlocked table: {other:?}"),
                }
                return false;
            }
            let n = got.unwrap_or_else(|e| panic!("{what}: {e:?}"));
            // The count is of objects, even where one object matches under
            // several keys of a multi-value index.
            let _ = entries;
            assert_eq!(n, gone.len(), "{what}: count");
            for pk in gone {
                rows[table].remove(&pk);
            }
            true
        });
    }

    fn begin(&mut self, mask: u8, track: bool) {
        if self.open.is_some() {
            return;
        }
        let hs = &self.hs;
        let tables: Vec<&dyn pandodb::TableRef> = (0..2)
            .filter(|&t| locks(mask, t))
            .map(|t| &hs[t].t as &dyn pandodb::TableRef)
            .collect();
        let mut w = self.db.write(&tables);
        if track {
            w.track_changes();
        }
        assert_eq!(w.base_revision(), self.db.revision());
        self.open = Some(Open {
            w,
            mask,
            track,
            base: self.committed.clone(),
            rows: self.committed.clone(),
        });
    }

    fn commit(&mut self) {
        let Some(o) = self.open.take() else { return };
        let base_rev = o.w.base_revision();
        let c = o.w.commit().unwrap();
        if o.rows != o.base {
            assert_eq!(
                c.revision,
                base_rev + 1,
                "a commit with changes is the next revision"
            );
        } else {
            // base_rev + 1 only when successful writes cancelled out; failed
            // writes and deletes of nothing publish nothing.
            assert!(c.revision == base_rev || c.revision == base_rev + 1);
        }
        if o.track {
            // Replaying the change list over the base gives the new state,
            // and every `before` is what the object was at that point.
            let mut replay = o.base.clone();
            for ch in &c.changes {
                let t = TABLES
                    .iter()
                    .position(|n| *n == ch.table())
                    .expect("known table");
                let before = ch.before::<Obj>().unwrap().map(|x| (*x).clone());
                let after = ch.after::<Obj>().unwrap().map(|x| (*x).clone());
                let pk = before
                    .as_ref()
                    .or(after.as_ref())
                    .expect("before or after")
                    .pk
                    .clone();
                assert_eq!(replay[t].get(&pk), before.as_ref(), "change {ch:?}: before");
                match after {
                    Some(a) => replay[t].insert(pk, a),
                    None => replay[t].remove(&pk),
                };
            }
            assert_eq!(replay, o.rows, "replayed changes");
        } else {
            assert!(c.changes.is_empty());
        }
        self.committed = o.rows;
    }

    fn query(&self, table: usize, q: &Query_) {
        let rows = match &self.open {
            Some(o) => &o.rows[table],
            None => &self.committed[table],
        };
        match &self.open {
            Some(o) => run_query(&o.w, &self.hs[table], table, rows, q),
            None => run_query(&self.db.read(), &self.hs[table], table, rows, q),
        }
    }

    fn step(&mut self, op: &Op) {
        match op.clone() {
            Op::Begin { mask, track } => self.begin(mask, track),
            Op::Insert { table, obj } => self.insert(table, obj),
            Op::Delete { table, pk } => self.delete(table, pk),
            Op::DeletePrefixPk { table, prefix } => {
                let p = prefix.clone();
                self.delete_where(
                    table,
                    move |w, h| w.delete_prefix(&h.pk, p.as_str()),
                    |o| usize::from(o.pk.starts_with(&prefix)),
                    format!("delete_prefix(pk, {prefix:?})"),
                )
            }
            Op::DeletePrefixTag { table, prefix } => {
                let p = prefix.clone();
                self.delete_where(
                    table,
                    move |w, h| w.delete_prefix(&h.tags, p.as_str()),
                    |o| {
                        model_keys(table, Ix::Tags, o)
                            .iter()
                            .filter(|k| k.starts_with(&enc_prefix(&prefix)))
                            .count()
                    },
                    format!("delete_prefix(tags, {prefix:?})"),
                )
            }
            Op::DeletePrefixUk { table, prefix } => {
                let p = prefix.clone();
                let folded = fold(table, Ix::Uk, &prefix);
                self.delete_where(
                    table,
                    move |w, h| w.delete_prefix(&h.uk, p.as_str()),
                    |o| {
                        let key = if table == 1 {
                            Some(&o.alias)
                        } else {
                            o.uk.as_ref()
                        };
                        usize::from(
                            key.is_some_and(|u| fold(table, Ix::Uk, u).starts_with(&folded)),
                        )
                    },
                    format!("delete_prefix(uk, {prefix:?})"),
                )
            }
            Op::DeleteAllGrp { table, grp } => self.delete_where(
                table,
                move |w, h| w.delete_all(&h.grp, &grp),
                |o| usize::from(o.grp == grp),
                format!("delete_all(grp, {grp})"),
            ),
            Op::DeleteAllLeading { table, grp } => self.delete_where(
                table,
                move |w, h| w.delete_all(&h.comp.leading(), &(grp,)),
                |o| usize::from(o.grp == grp),
                format!("delete_all(comp.leading(), ({grp},))"),
            ),
            Op::Commit => self.commit(),
            Op::Abort { drop_it } => {
                if let Some(o) = self.open.take() {
                    if drop_it {
                        drop(o.w);
                    } else {
                        o.w.abort();
                    }
                }
            }
            Op::Query { table, q } => self.query(table, &q),
            Op::Snapshot => {
                if self.snaps.len() == KEEP_SNAPSHOTS {
                    self.snaps.remove(0);
                }
                let s = self.db.read();
                let rev = s.revision();
                self.snaps.push((s, self.committed.clone(), rev));
            }
            Op::DropSnapshot(i) => {
                if !self.snaps.is_empty() {
                    let i = i % self.snaps.len();
                    self.snaps.remove(i);
                }
            }
            Op::ReadAt(back) => self.read_at(back),
        }
    }

    /// Reads `back` revisions before the latest: the model's state then,
    /// or `Compacted` exactly outside the window.
    fn read_at(&self, back: u64) {
        let latest = self.last_revision;
        let rev = latest.saturating_sub(back);
        let oldest = latest.saturating_sub(READ_HISTORY);
        match self.db.read_at(rev) {
            Ok(r) => {
                assert!(rev >= oldest, "read_at({rev}) outside the window");
                assert_eq!(r.revision(), rev);
                let model = self.history.get(&rev).expect("every revision seen");
                check_view(&r, &self.hs, model, &format!("read_at({rev})"));
            }
            Err(Error::Compacted { oldest: o }) => {
                assert!(rev < oldest, "read_at({rev}) refused inside the window");
                assert_eq!(o, oldest);
            }
            Err(e) => panic!("read_at({rev}): {e}"),
        }
        assert!(matches!(
            self.db.read_at(latest + 1),
            Err(Error::RevisionNotReached { .. })
        ));
    }

    fn check(&mut self) {
        if let Some(o) = &self.open {
            check_view(&o.w, &self.hs, &o.rows, "open write txn");
        }
        let r = self.db.read();
        check_view(&r, &self.hs, &self.committed, "fresh read");
        assert!(
            r.revision() >= self.last_revision,
            "revision went backwards"
        );
        assert!(
            r.revision() <= self.last_revision + 1,
            "a revision nobody saw"
        );
        self.last_revision = r.revision();
        self.history.insert(r.revision(), self.committed.clone());
        let keep_from = r.revision().saturating_sub(READ_HISTORY);
        self.history.retain(|&rev, _| rev >= keep_from);
        for (i, (s, model, rev)) in self.snaps.iter().enumerate() {
            assert_eq!(s.revision(), *rev, "snapshot {i} revision");
            check_view(
                s,
                &self.hs,
                model,
                &format!("snapshot {i} (revision {rev})"),
            );
        }
    }
}

fn enc_prefix<K: Encode + ?Sized>(k: &K) -> Vec<u8> {
    let mut out = Vec::new();
    k.encode_prefix(&mut out);
    out
}

fn enc_folded<K: Encode + ?Sized>(k: &K, folded: bool, prefix: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if folded {
        k.encode_folded(&mut out, prefix);
    } else if prefix {
        k.encode_prefix(&mut out);
    } else {
        k.encode(&mut out);
    }
    out
}

fn select_entries(e: &[(Vec<u8>, Vec<u8>, Obj)], keep: impl Fn(&[u8]) -> bool) -> Vec<Obj> {
    e.iter()
        .filter(|x| keep(&x.0))
        .map(|x| x.2.clone())
        .collect()
}

/// One query on one table, compared with the model.
fn run_query<Q: Query>(q: &Q, h: &Handles, table: usize, rows: &Rows, query: &Query_) {
    let ctx = format!("{}: {query:?}", TABLES[table]);
    match query {
        Query_::GetPk(k) => {
            assert_eq!(
                q.get(&h.pk, k.as_str()).unwrap().map(|o| (*o).clone()),
                rows.get(k).cloned(),
                "{ctx}"
            );
        }
        Query_::GetUk(u) => {
            let e = entries(table, Ix::Uk, rows);
            let key = enc_folded(u.as_str(), folds(table, Ix::Uk), false);
            let want = select_entries(&e, |k| k == key.as_slice());
            assert!(want.len() <= 1, "{ctx}: unique index holds {want:?}");
            assert_eq!(
                q.get(&h.uk, u.as_str()).unwrap().map(|o| (*o).clone()),
                want.first().cloned(),
                "{ctx}"
            );
            assert_eq!(q.count(&h.uk, u.as_str()).unwrap(), want.len(), "{ctx}");
        }
        Query_::IterTag(t) => {
            let e = entries(table, Ix::Tags, rows);
            let key = t.to_key();
            let want = select_entries(&e, |k| k == key.as_slice());
            assert_eq!(objs(q.iter(&h.tags, t.as_str()).unwrap()), want, "{ctx}");
            assert_eq!(q.count(&h.tags, t.as_str()).unwrap(), want.len(), "{ctx}");
        }
        Query_::Grp(g) => {
            let want: Vec<Obj> = rows.values().filter(|o| o.grp == *g).cloned().collect();
            assert_eq!(objs(q.iter(&h.grp, g).unwrap()), want, "{ctx}");
            assert_eq!(q.count(&h.grp, g).unwrap(), want.len(), "{ctx}");
            assert_eq!(
                q.first(&h.grp, g).unwrap().map(|o| (*o).clone()),
                want.first().cloned(),
                "{ctx}"
            );
            assert_eq!(
                q.last(&h.grp, g).unwrap().map(|o| (*o).clone()),
                want.last().cloned(),
                "{ctx}"
            );
        }
        Query_::PrefixPk(p) => {
            let want: Vec<Obj> = rows
                .values()
                .filter(|o| o.pk.starts_with(p.as_str()))
                .cloned()
                .collect();
            assert_eq!(objs(q.prefix(&h.pk, p.as_str()).unwrap()), want, "{ctx}");
            assert_eq!(
                q.count_prefix(&h.pk, p.as_str()).unwrap(),
                want.len(),
                "{ctx}"
            );
        }
        Query_::PrefixTag(p) => {
            let e = entries(table, Ix::Tags, rows);
            let pre = enc_prefix(p.as_str());
            let want = select_entries(&e, |k| k.starts_with(&pre));
            assert_eq!(objs(q.prefix(&h.tags, p.as_str()).unwrap()), want, "{ctx}");
            assert_eq!(
                q.count_prefix(&h.tags, p.as_str()).unwrap(),
                want.len(),
                "{ctx}"
            );
        }
        Query_::LongestPk(k) => {
            let want = rows
                .values()
                .filter(|o| k.starts_with(o.pk.as_str()))
                .max_by_key(|o| o.pk.len())
                .cloned();
            assert_eq!(
                q.longest_prefix(&h.pk, k).unwrap().map(|o| (*o).clone()),
                want,
                "{ctx}"
            );
        }
        Query_::Range(lo, hi) => {
            let e = entries(table, Ix::Comp, rows);
            let in_lo = |v: (i8, u8)| match lo {
                Bound::Included(b) => v >= *b,
                Bound::Excluded(b) => v > *b,
                Bound::Unbounded => true,
            };
            let in_hi = |v: (i8, u8)| match hi {
                Bound::Included(b) => v <= *b,
                Bound::Excluded(b) => v < *b,
                Bound::Unbounded => true,
            };
            let want: Vec<Obj> = e
                .iter()
                .map(|x| x.2.clone())
                .filter(|o| in_lo((o.grp, o.n)) && in_hi((o.grp, o.n)))
                .collect();
            let got = objs(q.range(&h.comp, lo.as_ref(), hi.as_ref()).unwrap());
            assert_eq!(got, want, "{ctx}");
        }
        Query_::Leading(g) => {
            let e = entries(table, Ix::Comp, rows);
            let want: Vec<Obj> = e
                .iter()
                .map(|x| x.2.clone())
                .filter(|o| o.grp == *g)
                .collect();
            let lead = h.comp.leading();
            assert_eq!(objs(q.iter(&lead, &(*g,)).unwrap()), want, "{ctx}");
            assert_eq!(q.count(&lead, &(*g,)).unwrap(), want.len(), "{ctx}");
            assert_eq!(
                q.last(&lead, &(*g,)).unwrap().map(|o| (*o).clone()),
                want.last().cloned(),
                "{ctx}"
            );
        }
        Query_::LowerBound(g, rev) => {
            let e = entries(table, Ix::Grp, rows);
            let all: Vec<Obj> = e.iter().map(|x| x.2.clone()).collect();
            if *rev {
                let want: Vec<Obj> = all.into_iter().rev().filter(|o| o.grp <= *g).collect();
                assert_eq!(
                    objs(q.reverse_lower_bound(&h.grp, g).unwrap()),
                    want,
                    "{ctx}"
                );
            } else {
                let want: Vec<Obj> = all.into_iter().filter(|o| o.grp >= *g).collect();
                assert_eq!(objs(q.lower_bound(&h.grp, g).unwrap()), want, "{ctx}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The property
// ---------------------------------------------------------------------------

fn max_steps() -> usize {
    std::env::var("MODEL_MAX_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(100)
}

fn config() -> ProptestConfig {
    // `ProptestConfig::default()` reads PROPTEST_CASES; tier 1 is 256.
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 256;
    }
    c
}

fn run(ops: &[Op]) {
    let mut m = Machine::new();
    m.check();
    for op in ops {
        m.step(op);
        m.check();
    }
    // Finish the open transaction, then everything must still hold.
    m.commit();
    m.check();
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn database_matches_model(ops in vec(op(), 1..=max_steps())) {
        run(&ops);
    }
}

/// A fixed sequence that exercises each op kind at least once, so the
/// harness itself is known to reach every branch.
#[test]
fn every_op_kind_once() {
    let o = |pk: &str, uk: Option<&str>, grp: i8, tags: &[&str], n: u8| Obj {
        pk: pk.into(),
        uk: uk.map(String::from),
        alias: uk.unwrap_or(pk).into(),
        grp,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        n,
    };
    let ops = vec![
        Op::Insert {
            table: 0,
            obj: o("a", Some("x"), 1, &["t", "tu"], 0),
        },
        Op::Insert {
            table: 1,
            obj: o("a", Some("X"), 1, &["t"], 0),
        },
        Op::Snapshot,
        Op::ReadAt(1),
        Op::ReadAt(READ_HISTORY + 2),
        Op::Begin {
            mask: 3,
            track: true,
        },
        Op::Insert {
            table: 0,
            obj: o("b", Some("x"), 0, &[], 0),
        }, // unique violation
        Op::Insert {
            table: 1,
            obj: o("b", Some("x"), 0, &[], 0),
        }, // case-insensitive violation
        Op::Insert {
            table: 1,
            obj: o("a", Some("x"), 2, &["u"], 1),
        }, // update keeps its key
        Op::Insert {
            table: 0,
            obj: o("ab", Some("y"), -1, &["u", "u"], 2),
        },
        Op::Query {
            table: 0,
            q: Query_::PrefixPk("a".into()),
        },
        Op::Query {
            table: 0,
            q: Query_::PrefixTag("t".into()),
        },
        Op::Query {
            table: 1,
            q: Query_::GetUk("X".into()),
        },
        Op::Query {
            table: 0,
            q: Query_::Range(Bound::Excluded((-1, 2)), Bound::Included((1, 0))),
        },
        Op::Query {
            table: 0,
            q: Query_::LongestPk("abc".into()),
        },
        Op::Query {
            table: 0,
            q: Query_::Leading(1),
        },
        Op::Query {
            table: 0,
            q: Query_::LowerBound(0, true),
        },
        Op::Snapshot,
        Op::DeletePrefixTag {
            table: 0,
            prefix: "t".into(),
        },
        Op::Delete {
            table: 1,
            pk: "a".into(),
        },
        Op::Commit,
        Op::Begin {
            mask: 1,
            track: false,
        },
        Op::Insert {
            table: 1,
            obj: o("c", None, 0, &[], 0),
        }, // not locked
        Op::DeleteAllGrp { table: 1, grp: 0 }, // not locked
        Op::Insert {
            table: 0,
            obj: o("c", None, 2, &["t"], 1),
        },
        Op::DeletePrefixPk {
            table: 0,
            prefix: "a".into(),
        },
        Op::DeletePrefixUk {
            table: 0,
            prefix: "x".into(),
        },
        Op::DeleteAllLeading { table: 0, grp: 2 },
        Op::Abort { drop_it: false },
        Op::Begin {
            mask: 2,
            track: true,
        },
        Op::Insert {
            table: 1,
            obj: o("c", None, 0, &[], 0),
        },
        Op::Abort { drop_it: true },
        Op::DropSnapshot(0),
        Op::Query {
            table: 1,
            q: Query_::Grp(1),
        },
        Op::Query {
            table: 0,
            q: Query_::GetPk("ab".into()),
        },
        Op::Query {
            table: 0,
            q: Query_::IterTag("u".into()),
        },
        Op::Commit,
    ];
    run(&ops);
}
