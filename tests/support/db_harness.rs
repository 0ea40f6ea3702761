//! A model of the database's public API, for `fuzz/fuzz_targets/db_ops.rs`
//! (included there with `#[path]`; no test crate uses it yet).
//!
//! The shape is `tests/model.rs`'s: two tables of the same object type,
//! each with a unique primary string index, a unique secondary index
//! (optional in `t0`; case-insensitive over a required field in `t1`), a
//! non-unique index, a multi-value index (`Vec<String>`) and a compound
//! index (also queried through `leading()`). The model is plain
//! `BTreeMap`s of rows (object, created and modified revisions), committed,
//! in the open write transaction and in every kept snapshot.
//!
//! Unlike `tests/model.rs`, the model does not use pandodb's key encoding:
//! index order is the order of the typed values (strings by their bytes,
//! case-insensitive keys by their per-character lowercase), then the
//! primary key, and queries (equality, prefix, bounds, ranges, longest
//! prefix) are computed on those values. The database's encoding must
//! agree with it.
//!
//! Writes go to the open write transaction or to a one-shot transaction
//! on one table (committed, aborted or dropped), which may run while the
//! open transaction holds the other table: its commit is then renumbered.
//! Every failing write must return the predicted typed error and leave the
//! transaction unchanged; every commit must have the predicted revision,
//! and a tracked change list must replay the transaction. After every step
//! the caller runs [`Harness::check`]: every index of the open transaction
//! and of a fresh read equals its recomputation from the model, forwards
//! and backwards, with the revisions of every row.
//!
//! [`schema_case`] builds fuzzed, possibly invalid, schemas: invalid ones
//! must fail with `Error::Schema`, valid ones must work.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use pandodb::{
    ChangeKind, Commit, Db, Encode, Error, Index, Indexer, Query, ReadTxn, Schema, Table, WriteTxn,
};

// ---------------------------------------------------------------------------
// Objects, schema, model
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub struct Obj {
    pub pk: String,
    pub uk: Option<String>,
    pub alias: String,
    pub grp: i8,
    pub tags: Vec<String>,
    pub n: u8,
}

impl Obj {
    /// An object with only its primary key set (for deletes).
    pub fn probe(pk: &str) -> Obj {
        Obj {
            pk: pk.to_string(),
            uk: None,
            alias: String::new(),
            grp: 0,
            tags: Vec::new(),
            n: 0,
        }
    }
}

pub const TABLES: [&str; 2] = ["t0", "t1"];
pub const KEEP_SNAPSHOTS: usize = 4;

#[derive(Clone)]
pub struct Handles {
    pub t: Table<Obj>,
    pub pk: Index<Obj, str>,
    pub uk: Index<Obj, str>,
    pub grp: Index<Obj, i8>,
    pub tags: Index<Obj, str>,
    pub comp: Index<Obj, (i8, u8)>,
    pub lead: Index<Obj, (i8,)>,
}

/// The indexes; `Lead` is `Comp` queried by its first component.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ix {
    Pk,
    Uk,
    Grp,
    Tags,
    Comp,
    Lead,
}

pub const IXS: [Ix; 6] = [Ix::Pk, Ix::Uk, Ix::Grp, Ix::Tags, Ix::Comp, Ix::Lead];

pub fn setup() -> (Db, [Handles; 2]) {
    let mut s = Schema::builder();
    let mut declared = Vec::new();
    for (i, name) in TABLES.iter().enumerate() {
        let mut t = s.table::<Obj>(name);
        let pk = t.primary("pk", Indexer::string(|o: &Obj| o.pk.as_str()));
        let uk = if i == 0 {
            t.unique("uk", Indexer::optional_string(|o: &Obj| o.uk.as_deref()))
        } else {
            t.unique("uk", Indexer::string_ci(|o: &Obj| o.alias.as_str()))
        };
        let grp = t.index("grp", Indexer::value(|o: &Obj| o.grp));
        let tags = t.index("tags", Indexer::strings(|o: &Obj| o.tags.as_slice()));
        let comp = t.index("comp", Indexer::value(|o: &Obj| (o.grp, o.n)));
        declared.push((t, pk, uk, grp, tags, comp));
    }
    let mut hs = Vec::new();
    for (t, pk, uk, grp, tags, comp) in declared {
        let t = s.add(t).expect("valid table");
        let lead = comp.leading();
        hs.push(Handles {
            t,
            pk,
            uk,
            grp,
            tags,
            comp,
            lead,
        });
    }
    let db = Db::new(s.build().expect("valid schema"));
    let hs: [Handles; 2] = hs.try_into().unwrap_or_else(|_| unreachable!());
    (db, hs)
}

/// Case folding as documented for case-insensitive indexes: every
/// character lowercased on its own (not `str::to_lowercase`, whose final
/// sigma depends on context).
pub fn fold(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub obj: Obj,
    pub created: u64,
    pub modified: u64,
}

pub type Rows = BTreeMap<String, Row>;
pub type Tables = [Rows; 2];

/// A model key: the typed value an index orders and matches by (`G` for
/// `Lead`, whose entries are ordered as `Comp`'s).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MKey {
    S(String),
    G(i8),
    C(i8, u8),
}

/// The keys an object has in an index (sorted, deduplicated).
pub fn model_keys(table: usize, ix: Ix, o: &Obj) -> Vec<MKey> {
    let mut keys: Vec<MKey> = match ix {
        Ix::Pk => vec![MKey::S(o.pk.clone())],
        Ix::Uk if table == 1 => vec![MKey::S(fold(&o.alias))],
        Ix::Uk => o.uk.iter().map(|u| MKey::S(u.clone())).collect(),
        Ix::Grp => vec![MKey::G(o.grp)],
        Ix::Tags => o.tags.iter().map(|t| MKey::S(t.clone())).collect(),
        Ix::Comp | Ix::Lead => vec![MKey::C(o.grp, o.n)],
    };
    keys.sort();
    keys.dedup();
    keys
}

/// The entries of an index in index order: (match key, row).
pub fn entries(table: usize, ix: Ix, rows: &Rows) -> Vec<(MKey, &Row)> {
    let mut v: Vec<(MKey, &Row)> = rows
        .values()
        .flat_map(|r| {
            model_keys(table, ix, &r.obj)
                .into_iter()
                .map(move |k| (k, r))
        })
        .collect();
    // Rows come in primary-key order and the sort is stable: ties (equal
    // keys of a non-unique index) stay in primary-key order.
    v.sort_by(|a, b| a.0.cmp(&b.0));
    if ix == Ix::Lead {
        for e in &mut v {
            if let MKey::C(g, _) = e.0 {
                e.0 = MKey::G(g);
            }
        }
    }
    v
}

/// A query argument; each index takes the part of its type.
#[derive(Debug, Clone)]
pub struct Arg {
    pub s: String,
    pub g: i8,
    pub n: u8,
}

/// The model key of a query argument on an index.
fn model_arg(table: usize, ix: Ix, a: &Arg) -> MKey {
    match ix {
        Ix::Uk if table == 1 => MKey::S(fold(&a.s)),
        Ix::Pk | Ix::Uk | Ix::Tags => MKey::S(a.s.clone()),
        Ix::Grp | Ix::Lead => MKey::G(a.g),
        Ix::Comp => MKey::C(a.g, a.n),
    }
}

/// Whether an entry's key matches a prefix query: strings by their leading
/// bytes, everything else by equality.
fn prefix_match(k: &MKey, p: &MKey) -> bool {
    match (k, p) {
        (MKey::S(k), MKey::S(p)) => k.starts_with(p.as_str()),
        _ => k == p,
    }
}

fn in_bounds(k: &MKey, lo: &Bound<MKey>, hi: &Bound<MKey>) -> bool {
    (match lo {
        Bound::Included(b) => k >= b,
        Bound::Excluded(b) => k > b,
        Bound::Unbounded => true,
    }) && (match hi {
        Bound::Included(b) => k <= b,
        Bound::Excluded(b) => k < b,
        Bound::Unbounded => true,
    })
}

// ---------------------------------------------------------------------------
// Ops
// ---------------------------------------------------------------------------

/// A revision for a conditional write, relative to the row's current one
/// (the latest committed revision when there is no row).
#[derive(Debug, Clone, Copy)]
pub enum RevSel {
    Current,
    Plus(u8),
    Minus(u8),
    Raw(u64),
}

#[derive(Debug, Clone)]
pub enum Write {
    Insert(Obj),
    InsertIfAbsent(Obj),
    UpdateIf(Obj, RevSel),
    Delete(String),
    DeleteIf(String, RevSel),
    DeleteAll(Ix, Arg),
    DeletePrefix(Ix, Arg),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Finish {
    Commit,
    Abort,
    Drop,
}

/// Where a write goes: the open transaction (a one-shot one when none is
/// open), or a one-shot transaction on the table (the open one when it
/// holds the table: a second writer of it would wait forever).
#[derive(Debug, Clone, Copy)]
pub enum Target {
    Open,
    OneShot { finish: Finish, track: bool },
}

#[derive(Debug, Clone)]
pub enum QKind {
    Get,
    First,
    Last,
    Iter,
    All,
    Prefix,
    LowerBound,
    ReverseLowerBound,
    Range(Bound<Arg>, Bound<Arg>),
    Count,
    CountPrefix,
    IndexLen,
    LongestPrefix,
    GetVersioned,
    GetRef,
    IterRef,
    AllRef,
    LowerBoundRef,
    ModifiedSince(u64),
    Len,
}

/// Which transaction a query reads: the open write transaction, a fresh
/// read, or a kept snapshot (each falls back to a fresh read).
#[derive(Debug, Clone, Copy)]
pub enum View {
    Open,
    Fresh,
    Snap(usize),
}

#[derive(Debug, Clone)]
pub enum Op {
    Begin {
        mask: u8,
        track: bool,
        twice: bool,
    },
    Write {
        table: usize,
        w: Write,
        target: Target,
    },
    Commit,
    Abort,
    Drop,
    Query {
        view: View,
        table: usize,
        ix: Ix,
        kind: QKind,
        arg: Arg,
        /// next (false) / next_back (true) pattern for iterators.
        steps: Vec<bool>,
    },
    Snapshot,
    CheckSnap(usize),
    DropSnap(usize),
    /// Handles of another database's schema: refused with
    /// `Error::ForeignHandle`.
    Foreign {
        table: usize,
    },
}

// ---------------------------------------------------------------------------
// The machine
// ---------------------------------------------------------------------------

struct Open {
    w: WriteTxn,
    mask: u8,
    track: bool,
    wrote: bool,
    base_rev: u64,
    base: Tables,
    rows: Tables,
}

pub struct Harness {
    db: Db,
    hs: [Handles; 2],
    foreign: (Db, [Handles; 2]),
    committed: Tables,
    /// The latest committed revision.
    rev: u64,
    open: Option<Open>,
    snaps: Vec<(ReadTxn, Tables, u64)>,
}

fn locks(mask: u8, table: usize) -> bool {
    mask & (1 << table) != 0
}

fn same(got: Option<&Obj>, want: Option<&Obj>, what: &str) {
    assert_eq!(got, want, "{what}");
}

/// Applies one write to `w` and to the model `rows` (of `table`), checking
/// the result. Returns whether the transaction now counts as written (a
/// successful insert, or a delete that removed something). `pending` is the
/// revision its writes show (`base_revision() + 1`), `latest` the latest
/// committed revision.
#[allow(clippy::too_many_arguments)]
fn apply(
    w: &mut WriteTxn,
    h: &Handles,
    table: usize,
    rows: &mut Rows,
    locked: bool,
    pending: u64,
    latest: u64,
    op: &Write,
) -> bool {
    let name = TABLES[table];
    let ctx = format!("{name}: {op:?}");
    if !locked {
        let got = match op {
            Write::Insert(o) => w.insert(&h.t, o.clone()).map(|_| ()),
            Write::InsertIfAbsent(o) => w.insert_if_absent(&h.t, o.clone()),
            Write::UpdateIf(o, _) => w.update_if(&h.t, o.clone(), pending).map(|_| ()),
            Write::Delete(pk) => w.delete(&h.t, &Obj::probe(pk)).map(|_| ()),
            Write::DeleteIf(pk, _) => w.delete_if(&h.t, &Obj::probe(pk), pending).map(|_| ()),
            Write::DeleteAll(ix, a) => delete_by(w, h, *ix, a, false).map(|_| ()),
            Write::DeletePrefix(ix, a) => delete_by(w, h, *ix, a, true).map(|_| ()),
        };
        assert_eq!(got, Err(Error::TableNotLocked(name.into())), "{ctx}");
        return false;
    }
    let resolve = |sel: RevSel, cur: Option<u64>| -> u64 {
        let c = cur.unwrap_or(latest);
        match sel {
            RevSel::Current => c,
            RevSel::Plus(d) => c + u64::from(d),
            RevSel::Minus(d) => c.saturating_sub(u64::from(d)),
            RevSel::Raw(r) => r,
        }
    };
    match op {
        Write::Insert(o) | Write::InsertIfAbsent(o) | Write::UpdateIf(o, _) => {
            let cur = rows.get(&o.pk).map(|r| r.modified);
            // The condition is checked first, then the unique indexes.
            let cond: Result<(), Error> = match op {
                Write::InsertIfAbsent(_) if cur.is_some() => Err(Error::Conflict {
                    table: name.into(),
                    key: String::new(),
                    expected: None,
                    current: cur,
                }),
                Write::UpdateIf(_, sel) => {
                    let e = resolve(*sel, cur);
                    if cur == Some(e) {
                        Ok(())
                    } else {
                        Err(Error::Conflict {
                            table: name.into(),
                            key: String::new(),
                            expected: Some(e),
                            current: cur,
                        })
                    }
                }
                _ => Ok(()),
            };
            let expected_rev = match op {
                Write::UpdateIf(_, sel) => resolve(*sel, cur),
                _ => 0,
            };
            let got: Result<Option<Arc<Obj>>, Error> = match op {
                Write::Insert(_) => w.insert(&h.t, o.clone()),
                Write::InsertIfAbsent(_) => w.insert_if_absent(&h.t, o.clone()).map(|()| None),
                _ => w.update_if(&h.t, o.clone(), expected_rev).map(Some),
            };
            if let Err(want) = cond {
                match (&got, &want) {
                    (
                        Err(Error::Conflict {
                            table: t,
                            expected: e,
                            current: c,
                            ..
                        }),
                        Error::Conflict {
                            expected: we,
                            current: wc,
                            ..
                        },
                    ) => {
                        assert_eq!((t.as_str(), e, c), (name, we, wc), "{ctx}: conflict");
                    }
                    _ => panic!("{ctx}: expected {want:?}, got {got:?}"),
                }
                return false;
            }
            let uk = model_keys(table, Ix::Uk, o);
            let conflict = rows.values().any(|r| {
                r.obj.pk != o.pk
                    && model_keys(table, Ix::Uk, &r.obj)
                        .iter()
                        .any(|k| uk.contains(k))
            });
            if conflict {
                match &got {
                    Err(Error::UniqueViolation {
                        table: t, index, ..
                    }) => {
                        assert_eq!((t.as_str(), index.as_str()), (name, "uk"), "{ctx}");
                    }
                    other => panic!("{ctx}: expected a unique violation, got {other:?}"),
                }
                return false;
            }
            let old = got.unwrap_or_else(|e| panic!("{ctx}: unexpected {e:?}"));
            let prev = rows.get(&o.pk);
            match op {
                Write::InsertIfAbsent(_) => assert!(prev.is_none()),
                _ => same(old.as_deref(), prev.map(|r| &r.obj), &format!("{ctx}: old")),
            }
            let created = prev.map_or(pending, |r| r.created);
            rows.insert(
                o.pk.clone(),
                Row {
                    obj: o.clone(),
                    created,
                    modified: pending,
                },
            );
            true
        }
        Write::Delete(pk) => {
            let got = w.delete(&h.t, &Obj::probe(pk));
            let old = got.unwrap_or_else(|e| panic!("{ctx}: unexpected {e:?}"));
            let prev = rows.remove(pk);
            same(
                old.as_deref(),
                prev.as_ref().map(|r| &r.obj),
                &format!("{ctx}: deleted"),
            );
            prev.is_some()
        }
        Write::DeleteIf(pk, sel) => {
            let cur = rows.get(pk).map(|r| r.modified);
            let e = resolve(*sel, cur);
            let got = w.delete_if(&h.t, &Obj::probe(pk), e);
            if cur != Some(e) {
                match &got {
                    Err(Error::Conflict {
                        table: t,
                        expected,
                        current,
                        ..
                    }) => assert_eq!(
                        (t.as_str(), *expected, *current),
                        (name, Some(e), cur),
                        "{ctx}: conflict"
                    ),
                    other => panic!("{ctx}: expected a conflict, got {other:?}"),
                }
                return false;
            }
            let old = got.unwrap_or_else(|e| panic!("{ctx}: unexpected {e:?}"));
            let prev = rows.remove(pk).expect("row");
            assert_eq!(*old, prev.obj, "{ctx}: deleted");
            true
        }
        Write::DeleteAll(ix, a) | Write::DeletePrefix(ix, a) => {
            let prefix = matches!(op, Write::DeletePrefix(..));
            let n = delete_by(w, h, *ix, a, prefix)
                .unwrap_or_else(|e| panic!("{ctx}: unexpected {e:?}"));
            let q = model_arg(table, *ix, a);
            let victims: Vec<String> = rows
                .values()
                .filter(|r| {
                    let keys = model_keys(table, *ix, &r.obj);
                    keys.iter().any(|k| {
                        let k = match (ix, k) {
                            (Ix::Lead, MKey::C(g, _)) => MKey::G(*g),
                            _ => k.clone(),
                        };
                        if prefix { prefix_match(&k, &q) } else { k == q }
                    })
                })
                .map(|r| r.obj.pk.clone())
                .collect();
            // The count is of objects, even where one object matches under
            // several keys of a multi-value index.
            assert_eq!(n, victims.len(), "{ctx}: count");
            for pk in &victims {
                rows.remove(pk);
            }
            !victims.is_empty()
        }
    }
}

fn delete_by(
    w: &mut WriteTxn,
    h: &Handles,
    ix: Ix,
    a: &Arg,
    prefix: bool,
) -> pandodb::Result<usize> {
    let s = a.s.as_str();
    match (ix, prefix) {
        (Ix::Pk, false) => w.delete_all(&h.pk, s),
        (Ix::Pk, true) => w.delete_prefix(&h.pk, s),
        (Ix::Uk, false) => w.delete_all(&h.uk, s),
        (Ix::Uk, true) => w.delete_prefix(&h.uk, s),
        (Ix::Tags, false) => w.delete_all(&h.tags, s),
        (Ix::Tags, true) => w.delete_prefix(&h.tags, s),
        (Ix::Grp, false) => w.delete_all(&h.grp, &a.g),
        (Ix::Grp, true) => w.delete_prefix(&h.grp, &a.g),
        (Ix::Comp, false) => w.delete_all(&h.comp, &(a.g, a.n)),
        (Ix::Comp, true) => w.delete_prefix(&h.comp, &(a.g, a.n)),
        (Ix::Lead, false) => w.delete_all(&h.lead, &(a.g,)),
        (Ix::Lead, true) => w.delete_prefix(&h.lead, &(a.g,)),
    }
}

/// Pulls an iterator from both ends as `steps` says (false: front), then
/// drains the rest from the front; returns the items in front-to-back
/// order, so a correct iterator gives the same list whatever the steps.
fn drain<X, I: DoubleEndedIterator<Item = X>>(mut it: I, steps: &[bool]) -> Vec<X> {
    let (mut front, mut back) = (Vec::new(), Vec::new());
    for &b in steps {
        let x = if b { it.next_back() } else { it.next() };
        match x {
            Some(x) if b => back.push(x),
            Some(x) => front.push(x),
            None => {
                assert!(
                    it.next().is_none() && it.next_back().is_none(),
                    "an exhausted iterator yielded again"
                );
                break;
            }
        }
    }
    front.extend(it.by_ref());
    assert!(
        it.next_back().is_none(),
        "an exhausted iterator yielded again"
    );
    back.reverse();
    front.extend(back);
    front
}

/// What a query returned.
#[derive(Debug)]
enum Got {
    One(Option<Obj>),
    Many(Vec<Obj>),
    Count(usize),
    Versions(Vec<(Obj, u64, u64)>),
}

fn arcs(v: Vec<Arc<Obj>>) -> Vec<Obj> {
    v.into_iter().map(|o| (*o).clone()).collect()
}

/// Runs a query of one index; `key`, `lo`, `hi` are the argument in the
/// index's key type.
fn typed<Q: Query, K: Encode + ?Sized>(
    q: &Q,
    idx: &Index<Obj, K>,
    key: &K,
    lo: Bound<&K>,
    hi: Bound<&K>,
    kind: &QKind,
    steps: &[bool],
) -> pandodb::Result<Got> {
    let one = |o: Option<Arc<Obj>>| Got::One(o.map(|o| (*o).clone()));
    Ok(match kind {
        QKind::Get => one(q.get(idx, key)?),
        QKind::First => one(q.first(idx, key)?),
        QKind::Last => one(q.last(idx, key)?),
        QKind::Iter => Got::Many(arcs(drain(q.iter(idx, key)?, steps))),
        QKind::All => Got::Many(arcs(drain(q.all(idx)?, steps))),
        QKind::Prefix => Got::Many(arcs(drain(q.prefix(idx, key)?, steps))),
        QKind::LowerBound => Got::Many(arcs(drain(q.lower_bound(idx, key)?, steps))),
        QKind::ReverseLowerBound => Got::Many(arcs(drain(q.reverse_lower_bound(idx, key)?, steps))),
        QKind::Range(..) => Got::Many(arcs(drain(q.range(idx, lo, hi)?, steps))),
        QKind::Count => Got::Count(q.count(idx, key)?),
        QKind::CountPrefix => Got::Count(q.count_prefix(idx, key)?),
        QKind::IndexLen => Got::Count(q.index_len(idx)?),
        QKind::GetVersioned => Got::Versions(
            q.get_versioned(idx, key)?
                .map(|v| ((*v.object).clone(), v.created, v.modified))
                .into_iter()
                .collect(),
        ),
        QKind::GetRef => Got::One(q.get_ref(idx, key)?.cloned()),
        QKind::IterRef => Got::Many(
            drain(q.iter_ref(idx, key)?, steps)
                .into_iter()
                .cloned()
                .collect(),
        ),
        QKind::AllRef => Got::Many(drain(q.all_ref(idx)?, steps).into_iter().cloned().collect()),
        QKind::LowerBoundRef => Got::Many(
            drain(q.lower_bound_ref(idx, key)?, steps)
                .into_iter()
                .cloned()
                .collect(),
        ),
        // Table-level queries and the longest prefix are run by the caller.
        QKind::ModifiedSince(_) | QKind::Len | QKind::LongestPrefix => unreachable!(),
    })
}

fn versions(rows: &Rows, since: u64) -> Vec<(Obj, u64, u64)> {
    let mut v: Vec<&Row> = rows.values().filter(|r| r.modified > since).collect();
    v.sort_by(|a, b| (a.modified, &a.obj.pk).cmp(&(b.modified, &b.obj.pk)));
    v.into_iter()
        .map(|r| (r.obj.clone(), r.created, r.modified))
        .collect()
}

/// One query on one table, compared with the model.
#[allow(clippy::too_many_arguments)]
fn run_query<Q: Query>(
    q: &Q,
    h: &Handles,
    table: usize,
    rows: &Rows,
    ix: Ix,
    kind: &QKind,
    arg: &Arg,
    steps: &[bool],
) {
    let ctx = format!("{}.{ix:?}: {kind:?} {arg:?} steps {steps:?}", TABLES[table]);
    match kind {
        QKind::ModifiedSince(r) => {
            let got: Vec<(Obj, u64, u64)> = q
                .modified_since(&h.t, *r)
                .unwrap()
                .map(|v| ((*v.object).clone(), v.created, v.modified))
                .collect();
            assert_eq!(got, versions(rows, *r), "{ctx}");
            return;
        }
        QKind::Len => {
            assert_eq!(q.len(&h.t).unwrap(), rows.len(), "{ctx}");
            return;
        }
        _ => {}
    }
    let e = entries(table, ix, rows);
    let qk = model_arg(table, ix, arg);
    if let QKind::LongestPrefix = kind {
        let idx = match ix {
            Ix::Pk => &h.pk,
            Ix::Uk => &h.uk,
            Ix::Tags => &h.tags,
            _ => return,
        };
        let got = q.longest_prefix(idx, &arg.s).unwrap().map(|o| (*o).clone());
        let mut want = None;
        for end in (0..=arg.s.len()).filter(|&i| arg.s.is_char_boundary(i)) {
            let part = model_arg(
                table,
                ix,
                &Arg {
                    s: arg.s[..end].to_string(),
                    ..arg.clone()
                },
            );
            if let Some((_, r)) = e.iter().find(|(k, _)| *k == part) {
                want = Some(r.obj.clone());
            }
        }
        assert_eq!(got, want, "{ctx}");
        return;
    }
    let bound = |b: &Bound<Arg>| match b {
        Bound::Included(a) => Bound::Included(model_arg(table, ix, a)),
        Bound::Excluded(a) => Bound::Excluded(model_arg(table, ix, a)),
        Bound::Unbounded => Bound::Unbounded,
    };
    let pick = |f: &dyn Fn(&MKey) -> bool| -> Vec<Obj> {
        e.iter()
            .filter(|(k, _)| f(k))
            .map(|(_, r)| r.obj.clone())
            .collect()
    };
    let want = match kind {
        QKind::Get | QKind::First | QKind::GetRef => {
            Got::One(pick(&|k| *k == qk).into_iter().next())
        }
        QKind::Last => Got::One(pick(&|k| *k == qk).pop()),
        QKind::Iter | QKind::IterRef => Got::Many(pick(&|k| *k == qk)),
        QKind::All | QKind::AllRef => Got::Many(pick(&|_| true)),
        QKind::Prefix => Got::Many(pick(&|k| prefix_match(k, &qk))),
        QKind::LowerBound | QKind::LowerBoundRef => Got::Many(pick(&|k| *k >= qk)),
        QKind::ReverseLowerBound => {
            let mut v = pick(&|k| *k <= qk);
            v.reverse();
            Got::Many(v)
        }
        QKind::Range(lo, hi) => {
            let (lo, hi) = (bound(lo), bound(hi));
            Got::Many(pick(&|k| in_bounds(k, &lo, &hi)))
        }
        QKind::Count => Got::Count(pick(&|k| *k == qk).len()),
        QKind::CountPrefix => Got::Count(pick(&|k| prefix_match(k, &qk)).len()),
        QKind::IndexLen => Got::Count(e.len()),
        QKind::GetVersioned => Got::Versions(
            e.iter()
                .find(|(k, _)| *k == qk)
                .map(|(_, r)| (r.obj.clone(), r.created, r.modified))
                .into_iter()
                .collect(),
        ),
        QKind::ModifiedSince(_) | QKind::Len | QKind::LongestPrefix => unreachable!(),
    };
    let tb = |b: &Bound<Arg>| b.clone();
    let (lo, hi) = match kind {
        QKind::Range(lo, hi) => (tb(lo), tb(hi)),
        _ => (Bound::Unbounded, Bound::Unbounded),
    };
    let s = |b: &Bound<Arg>| b.as_ref().map(|a| a.s.clone());
    let g = |b: &Bound<Arg>| b.as_ref().map(|a| a.g);
    let c = |b: &Bound<Arg>| b.as_ref().map(|a| (a.g, a.n));
    let l = |b: &Bound<Arg>| b.as_ref().map(|a| (a.g,));
    let got = match ix {
        Ix::Pk | Ix::Uk | Ix::Tags => {
            let idx = match ix {
                Ix::Pk => &h.pk,
                Ix::Uk => &h.uk,
                _ => &h.tags,
            };
            let (lo, hi) = (s(&lo), s(&hi));
            typed(
                q,
                idx,
                arg.s.as_str(),
                lo.as_ref().map(String::as_str),
                hi.as_ref().map(String::as_str),
                kind,
                steps,
            )
        }
        Ix::Grp => {
            let (lo, hi) = (g(&lo), g(&hi));
            typed(q, &h.grp, &arg.g, lo.as_ref(), hi.as_ref(), kind, steps)
        }
        Ix::Comp => {
            let (lo, hi) = (c(&lo), c(&hi));
            typed(
                q,
                &h.comp,
                &(arg.g, arg.n),
                lo.as_ref(),
                hi.as_ref(),
                kind,
                steps,
            )
        }
        Ix::Lead => {
            let (lo, hi) = (l(&lo), l(&hi));
            typed(q, &h.lead, &(arg.g,), lo.as_ref(), hi.as_ref(), kind, steps)
        }
    }
    .unwrap_or_else(|err| panic!("{ctx}: unexpected {err:?}"));
    match (&got, &want) {
        (Got::One(a), Got::One(b)) => assert_eq!(a, b, "{ctx}"),
        (Got::Many(a), Got::Many(b)) => {
            if a != b {
                let pks = |v: &[Obj]| v.iter().map(|o| o.pk.clone()).collect::<Vec<_>>();
                panic!("{ctx}: got {:?}, want {:?}", pks(a), pks(b));
            }
        }
        (Got::Count(a), Got::Count(b)) => assert_eq!(a, b, "{ctx}"),
        (Got::Versions(a), Got::Versions(b)) => assert_eq!(a, b, "{ctx}"),
        _ => unreachable!(),
    }
}

/// An index read whole: forwards, backwards, and its `index_len`.
fn whole_index<Q: Query, K: Encode + ?Sized>(
    q: &Q,
    ix: &Index<Obj, K>,
) -> (Vec<Arc<Obj>>, Vec<Arc<Obj>>, usize) {
    (
        q.all(ix).unwrap().collect(),
        q.all(ix).unwrap().rev().collect(),
        q.index_len(ix).unwrap(),
    )
}

/// Every index of both tables equals its recomputation from `model`,
/// forwards and backwards, and every row has its revisions.
pub fn check_view<Q: Query>(q: &Q, hs: &[Handles; 2], model: &Tables, what: &str) {
    for (t, h) in hs.iter().enumerate() {
        let rows: Vec<(Obj, u64, u64)> = q
            .all_versioned(&h.t)
            .unwrap()
            .map(|v| ((*v.object).clone(), v.created, v.modified))
            .collect();
        let want: Vec<(Obj, u64, u64)> = model[t]
            .values()
            .map(|r| (r.obj.clone(), r.created, r.modified))
            .collect();
        assert_eq!(rows, want, "{what}: rows of {}", TABLES[t]);
        let by_rev: Vec<(String, u64)> = q
            .modified_since(&h.t, 0)
            .unwrap()
            .map(|v| (v.object.pk.clone(), v.modified))
            .collect();
        let want_rev: Vec<(String, u64)> = versions(&model[t], 0)
            .into_iter()
            .map(|v| (v.0.pk, v.2))
            .collect();
        assert_eq!(
            by_rev, want_rev,
            "{what}: by-revision order of {}",
            TABLES[t]
        );
        assert_eq!(q.len(&h.t).unwrap(), model[t].len(), "{what}: len");
        for ix in IXS {
            if ix == Ix::Lead {
                continue; // the same tree as Comp
            }
            let e = entries(t, ix, &model[t]);
            let (fwd, back, n) = match ix {
                Ix::Pk => whole_index(q, &h.pk),
                Ix::Uk => whole_index(q, &h.uk),
                Ix::Grp => whole_index(q, &h.grp),
                Ix::Tags => whole_index(q, &h.tags),
                Ix::Comp | Ix::Lead => whole_index(q, &h.comp),
            };
            let ok = fwd.len() == e.len()
                && back.len() == e.len()
                && n == e.len()
                && fwd.iter().zip(&e).all(|(a, (_, r))| **a == r.obj)
                && back
                    .iter()
                    .zip(e.iter().rev())
                    .all(|(a, (_, r))| **a == r.obj);
            if !ok {
                let pks = |v: &[Arc<Obj>]| v.iter().map(|o| o.pk.clone()).collect::<Vec<_>>();
                let want: Vec<&str> = e.iter().map(|(_, r)| r.obj.pk.as_str()).collect();
                panic!(
                    "{what}: {}.{ix:?}: forwards {:?}, backwards {:?}, index_len {n}; want {want:?}",
                    TABLES[t],
                    pks(&fwd),
                    pks(&back)
                );
            }
        }
    }
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    pub fn new() -> Self {
        let (db, hs) = setup();
        Harness {
            db,
            hs,
            foreign: setup(),
            committed: Default::default(),
            rev: 0,
            open: None,
            snaps: Vec::new(),
        }
    }

    /// Checks a commit against the model and makes it the committed state:
    /// `rows` are the transaction's tables, `mask` the tables it locked.
    #[allow(clippy::too_many_arguments)]
    fn settle_commit(
        &mut self,
        c: Commit,
        base_rev: u64,
        base: &Tables,
        mut rows: Tables,
        wrote: bool,
        track: bool,
        mask: u8,
    ) {
        let want = if wrote { self.rev + 1 } else { base_rev };
        assert_eq!(c.revision, want, "commit revision (wrote: {wrote})");
        if track {
            let mut replay = base.clone();
            for ch in &c.changes {
                let t = TABLES
                    .iter()
                    .position(|n| *n == ch.table())
                    .expect("known table");
                assert!(locks(mask, t), "change {ch:?} in an unlocked table");
                let before = ch.before::<Obj>().unwrap();
                let after = ch.after::<Obj>().unwrap();
                let kind = match (&before, &after) {
                    (None, Some(_)) => ChangeKind::Insert,
                    (Some(_), Some(_)) => ChangeKind::Update,
                    (Some(_), None) => ChangeKind::Delete,
                    (None, None) => panic!("change {ch:?} has no object"),
                };
                assert_eq!(ch.kind(), kind, "change {ch:?}: kind");
                let pk = before.as_ref().or(after.as_ref()).unwrap().pk.clone();
                if let (Some(b), Some(a)) = (&before, &after) {
                    assert_eq!(b.pk, a.pk, "change {ch:?}: primary key");
                }
                assert_eq!(
                    replay[t].get(&pk).map(|r| &r.obj),
                    before.as_deref(),
                    "change {ch:?}: before"
                );
                match after {
                    Some(a) => {
                        replay[t].insert(
                            pk,
                            Row {
                                obj: (*a).clone(),
                                created: 0,
                                modified: 0,
                            },
                        );
                    }
                    None => {
                        replay[t].remove(&pk);
                    }
                }
            }
            for t in 0..2 {
                let objs = |r: &Rows| r.values().map(|r| r.obj.clone()).collect::<Vec<_>>();
                assert_eq!(
                    objs(&replay[t]),
                    objs(&rows[t]),
                    "replayed changes of {}",
                    TABLES[t]
                );
            }
        } else {
            assert!(c.changes.is_empty(), "changes without tracking");
        }
        if !wrote {
            return;
        }
        // The writes showed `base_rev + 1`; a commit of other tables in
        // between renumbers them.
        let pending = base_rev + 1;
        for (t, rows) in rows.iter_mut().enumerate() {
            if !locks(mask, t) {
                continue;
            }
            for r in rows.values_mut() {
                if r.modified == pending {
                    r.modified = c.revision;
                }
                if r.created == pending {
                    r.created = c.revision;
                }
            }
            self.committed[t] = std::mem::take(rows);
        }
        self.rev = c.revision;
    }

    fn write(&mut self, table: usize, op: &Write, target: Target) {
        let via_open = match (&self.open, target) {
            (None, _) => false,
            (Some(_), Target::Open) => true,
            (Some(o), Target::OneShot { .. }) => locks(o.mask, table),
        };
        if via_open {
            let o = self.open.as_mut().unwrap();
            let locked = locks(o.mask, table);
            let pending = o.base_rev + 1;
            let wrote = apply(
                &mut o.w,
                &self.hs[table],
                table,
                &mut o.rows[table],
                locked,
                pending,
                self.rev,
                op,
            );
            o.wrote |= wrote;
            return;
        }
        let (finish, track) = match target {
            Target::OneShot { finish, track } => (finish, track),
            Target::Open => (Finish::Commit, false),
        };
        let hs = self.hs.clone();
        let mut w = self.db.write(&[&hs[table].t]);
        if track {
            w.track_changes();
        }
        assert_eq!(w.base_revision(), self.rev, "one-shot base revision");
        let base = self.committed.clone();
        let mut rows = self.committed.clone();
        let wrote = apply(
            &mut w,
            &hs[table],
            table,
            &mut rows[table],
            true,
            self.rev + 1,
            self.rev,
            op,
        );
        check_view(&w, &hs, &rows, "one-shot write txn");
        match finish {
            Finish::Commit => {
                let c = w
                    .commit()
                    .unwrap_or_else(|e| panic!("one-shot commit: {e:?}"));
                let base_rev = self.rev;
                self.settle_commit(c, base_rev, &base, rows, wrote, track, 1 << table);
            }
            Finish::Abort => w.abort(),
            Finish::Drop => drop(w),
        }
    }

    fn begin(&mut self, mask: u8, track: bool, twice: bool) {
        if self.open.is_some() {
            return;
        }
        let hs = &self.hs;
        let mut tables: Vec<&dyn pandodb::TableRef> = (0..2)
            .filter(|&t| locks(mask, t))
            .map(|t| &hs[t].t as &dyn pandodb::TableRef)
            .collect();
        if twice {
            tables.extend(tables.clone());
        }
        let mut w = self.db.write(&tables);
        if track {
            w.track_changes();
        }
        assert_eq!(w.base_revision(), self.rev, "base revision");
        self.open = Some(Open {
            w,
            mask,
            track,
            wrote: false,
            base_rev: self.rev,
            base: self.committed.clone(),
            rows: self.committed.clone(),
        });
    }

    pub fn commit(&mut self) {
        let Some(o) = self.open.take() else { return };
        let c = o.w.commit().unwrap_or_else(|e| panic!("commit: {e:?}"));
        self.settle_commit(c, o.base_rev, &o.base, o.rows, o.wrote, o.track, o.mask);
    }

    fn foreign(&mut self, table: usize) {
        let fh = &self.foreign.1[table];
        let name = TABLES[table].to_string();
        let unknown = Err(Error::ForeignHandle(name.clone()));
        let r = self.db.read();
        assert_eq!(r.get(&fh.pk, "a").map(|_| ()), unknown, "foreign get");
        assert_eq!(r.len(&fh.t), unknown.clone().map(|()| 0), "foreign len");
        assert_eq!(r.count(&fh.grp, &0).map(|_| ()), unknown, "foreign count");
        if let Some(o) = &mut self.open {
            assert_eq!(
                o.w.insert(&fh.t, Obj::probe("f")).map(|_| ()),
                unknown,
                "foreign insert"
            );
            assert_eq!(
                o.w.delete_prefix(&fh.pk, "").map(|_| ()),
                unknown,
                "foreign delete_prefix"
            );
            assert_eq!(o.w.all(&fh.uk).map(|_| ()), unknown, "foreign all");
        }
        // Handles of another schema are ignored: this locks nothing (and
        // so never waits for the open transaction).
        let mut w = self.db.write(&[&fh.t]);
        assert_eq!(
            w.insert(&fh.t, Obj::probe("f")).map(|_| ()),
            unknown,
            "foreign insert"
        );
        assert_eq!(
            w.insert(&self.hs[table].t, Obj::probe("f")).map(|_| ()),
            Err(Error::TableNotLocked(name)),
            "insert into a table not named"
        );
        let c = w.commit().unwrap();
        assert_eq!(c.revision, self.rev);
    }

    fn view_query(
        &self,
        view: View,
        table: usize,
        ix: Ix,
        kind: &QKind,
        arg: &Arg,
        steps: &[bool],
    ) {
        let h = &self.hs[table];
        match (view, &self.open) {
            (View::Open, Some(o)) => {
                run_query(&o.w, h, table, &o.rows[table], ix, kind, arg, steps)
            }
            (View::Snap(i), _) if !self.snaps.is_empty() => {
                let (s, model, _) = &self.snaps[i % self.snaps.len()];
                run_query(s, h, table, &model[table], ix, kind, arg, steps)
            }
            _ => run_query(
                &self.db.read(),
                h,
                table,
                &self.committed[table],
                ix,
                kind,
                arg,
                steps,
            ),
        }
    }

    pub fn step(&mut self, op: &Op) {
        match op {
            Op::Begin { mask, track, twice } => self.begin(*mask, *track, *twice),
            Op::Write { table, w, target } => self.write(*table, w, *target),
            Op::Commit => self.commit(),
            Op::Abort => {
                if let Some(o) = self.open.take() {
                    o.w.abort();
                }
            }
            Op::Drop => drop(self.open.take()),
            Op::Query {
                view,
                table,
                ix,
                kind,
                arg,
                steps,
            } => self.view_query(*view, *table, *ix, kind, arg, steps),
            Op::Snapshot => {
                if self.snaps.len() == KEEP_SNAPSHOTS {
                    self.snaps.remove(0);
                }
                let s = self.db.read();
                assert_eq!(s.revision(), self.rev, "snapshot revision");
                self.snaps.push((s, self.committed.clone(), self.rev));
            }
            Op::CheckSnap(i) => self.check_snap(*i),
            Op::DropSnap(i) => {
                if !self.snaps.is_empty() {
                    let i = i % self.snaps.len();
                    self.snaps.remove(i);
                }
            }
            Op::Foreign { table } => self.foreign(*table),
        }
    }

    /// The primary key of some row of `table` (picked by `seed`) in the
    /// state a write to it would see.
    pub fn some_pk(&self, table: usize, seed: usize) -> Option<String> {
        let rows = match &self.open {
            Some(o) => &o.rows[table],
            None => &self.committed[table],
        };
        rows.keys().nth(seed % rows.len().max(1)).cloned()
    }

    fn check_snap(&self, i: usize) {
        if self.snaps.is_empty() {
            return;
        }
        let (s, model, rev) = &self.snaps[i % self.snaps.len()];
        assert_eq!(s.revision(), *rev, "snapshot revision");
        check_view(s, &self.hs, model, &format!("snapshot at revision {rev}"));
    }

    /// The open transaction and a fresh read equal the model.
    pub fn check(&self) {
        if let Some(o) = &self.open {
            check_view(&o.w, &self.hs, &o.rows, "open write txn");
        }
        let r = self.db.read();
        assert_eq!(r.revision(), self.rev, "fresh read revision");
        assert_eq!(self.db.revision(), self.rev, "db revision");
        check_view(&r, &self.hs, &self.committed, "fresh read");
    }

    /// Commits the open transaction, then checks everything, every kept
    /// snapshot included.
    pub fn finish(&mut self) {
        self.commit();
        self.check();
        for i in 0..self.snaps.len() {
            self.check_snap(i);
        }
    }
}

// ---------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Role {
    Primary,
    Unique,
    Index,
}

/// The indexer of a declared index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum IxKind {
    /// `pk`: one key.
    String,
    /// `alias`, case-insensitive: one key.
    StringCi,
    /// `uk`: no key or one.
    OptString,
    /// `tags`: one key per distinct tag.
    Strings,
    /// `grp`: one key.
    Grp,
    /// `(grp, n)`: one key.
    Comp,
}

#[derive(Debug, Clone)]
pub struct IxCase {
    pub role: Role,
    pub name: String,
    pub kind: IxKind,
}

#[derive(Debug, Clone)]
pub struct TableCase {
    pub name: String,
    pub indexes: Vec<IxCase>,
    /// Declared by another schema builder.
    pub foreign: bool,
}

#[derive(Debug, Clone)]
pub struct SchemaCase {
    pub tables: Vec<TableCase>,
    /// Positions into `tables`, in the order `add` is called (repeats and
    /// out-of-range positions skipped): tables left out are declared but
    /// never added.
    pub order: Vec<usize>,
    pub objs: Vec<Obj>,
}

enum AnyIx {
    S(Index<Obj, str>),
    G(Index<Obj, i8>),
    C(Index<Obj, (i8, u8)>),
}

fn declare(t: &mut pandodb::TableBuilder<Obj>, c: &IxCase) -> AnyIx {
    macro_rules! decl {
        ($ix:expr) => {
            match c.role {
                Role::Primary => t.primary(&c.name, $ix),
                Role::Unique => t.unique(&c.name, $ix),
                Role::Index => t.index(&c.name, $ix),
            }
        };
    }
    match c.kind {
        IxKind::String => AnyIx::S(decl!(Indexer::string(|o: &Obj| o.pk.as_str()))),
        IxKind::StringCi => AnyIx::S(decl!(Indexer::string_ci(|o: &Obj| o.alias.as_str()))),
        IxKind::OptString => AnyIx::S(decl!(Indexer::optional_string(|o: &Obj| o.uk.as_deref()))),
        IxKind::Strings => AnyIx::S(decl!(Indexer::strings(|o: &Obj| o.tags.as_slice()))),
        IxKind::Grp => AnyIx::G(decl!(Indexer::value(|o: &Obj| o.grp))),
        IxKind::Comp => AnyIx::C(decl!(Indexer::value(|o: &Obj| (o.grp, o.n)))),
    }
}

fn key_count(kind: IxKind, o: &Obj) -> usize {
    match kind {
        IxKind::OptString => usize::from(o.uk.is_some()),
        IxKind::Strings => {
            let mut t = o.tags.clone();
            t.sort();
            t.dedup();
            t.len()
        }
        _ => 1,
    }
}

/// Builds a fuzzed schema: every `add` and the `build` must fail with
/// `Error::Schema` exactly when the rules say so (a table with an empty
/// name, not exactly one primary index, an empty or repeated index name, a
/// repeated table name, added out of declaration order or declared by
/// another builder; a build with a table declared but not added, or none).
/// A valid schema then takes the objects: an insert fails with
/// `Error::MissingKey` exactly when the primary indexer does not give one
/// key, else succeeds or meets a unique index; every index reads back.
pub fn schema_case(case: &SchemaCase) {
    let mut b = Schema::builder();
    let mut other = Schema::builder();
    let mut declared = Vec::new();
    for tc in &case.tables {
        let builder = if tc.foreign { &mut other } else { &mut b };
        let mut t = builder.table::<Obj>(&tc.name);
        let ixs: Vec<AnyIx> = tc.indexes.iter().map(|c| declare(&mut t, c)).collect();
        declared.push(Some((t, ixs)));
    }
    let own: Vec<usize> = (0..case.tables.len())
        .filter(|&i| !case.tables[i].foreign)
        .collect();
    let mut added: Vec<(usize, Table<Obj>, Vec<AnyIx>)> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    let mut failed = false;
    for &i in &case.order {
        let Some(slot) = declared.get_mut(i) else {
            continue;
        };
        let Some((t, ixs)) = slot.take() else {
            continue;
        };
        let tc = &case.tables[i];
        let primaries = tc
            .indexes
            .iter()
            .filter(|c| c.role == Role::Primary)
            .count();
        let bad_ix =
            tc.indexes.iter().enumerate().any(|(j, c)| {
                c.name.is_empty() || tc.indexes[..j].iter().any(|o| o.name == c.name)
            });
        // Tables of this builder are numbered in declaration order.
        let id = own.iter().position(|&x| x == i);
        let valid = !tc.foreign
            && !tc.name.is_empty()
            && primaries == 1
            && !bad_ix
            && !names.contains(&tc.name.as_str())
            && id == Some(added.len());
        match b.add(t) {
            Ok(t) => {
                assert!(valid, "add accepted an invalid table {tc:?}");
                names.push(&tc.name);
                added.push((i, t, ixs));
            }
            Err(Error::Schema(_)) => {
                assert!(!valid, "add refused a valid table {tc:?}");
                failed = true;
            }
            Err(e) => panic!("add {tc:?}: not a schema error: {e:?}"),
        }
    }
    // `build` fails after any failed `add` (another builder's table
    // included), when a table of this builder was declared but not added,
    // or when none was.
    let valid = !failed && !own.is_empty() && added.len() == own.len();
    let schema = match b.build() {
        Ok(s) => {
            assert!(valid, "build accepted an invalid schema {case:?}");
            s
        }
        Err(Error::Schema(_)) => {
            assert!(!valid, "build refused a valid schema {case:?}");
            return;
        }
        Err(e) => panic!("build: not a schema error: {e:?}"),
    };
    let names: Vec<&str> = schema.table_names().collect();
    let want: Vec<&str> = added
        .iter()
        .map(|(i, ..)| case.tables[*i].name.as_str())
        .collect();
    assert_eq!(names, want, "table names");
    let db = Db::new(schema);
    let mut w = db.write_all();
    for (i, t, _) in &added {
        let tc = &case.tables[*i];
        let primary = tc
            .indexes
            .iter()
            .find(|c| c.role == Role::Primary)
            .expect("one primary")
            .kind;
        for o in &case.objs {
            match w.insert(t, o.clone()) {
                Ok(_) => assert_eq!(key_count(primary, o), 1, "inserted without one primary key"),
                Err(Error::MissingKey { .. }) => {
                    assert_ne!(key_count(primary, o), 1, "missing key with one primary key")
                }
                Err(Error::UniqueViolation { .. }) => {}
                Err(e) => panic!("insert {o:?} into {tc:?}: {e:?}"),
            }
        }
    }
    w.commit().expect("commit");
    let r = db.read();
    for (_, t, ixs) in &added {
        let rows = r.len(t).unwrap();
        for ix in ixs {
            let (n, len, primary) = match ix {
                AnyIx::S(x) => (r.all(x).unwrap().count(), r.index_len(x).unwrap(), x.name()),
                AnyIx::G(x) => (r.all(x).unwrap().count(), r.index_len(x).unwrap(), x.name()),
                AnyIx::C(x) => (r.all(x).unwrap().count(), r.index_len(x).unwrap(), x.name()),
            };
            assert_eq!(n, len, "index_len of {primary}");
        }
        let _ = rows;
    }
}
