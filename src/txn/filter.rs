//! Conditions across the indexes of one table: [`Filter`] (index keys and
//! prefixes combined with all-of and any-of) and the set matches of a
//! multi-value index ([`SetMatch`]). What a filter means is decided here,
//! row by row ([`Expr::matches`]); how it is answered from the index trees
//! is `select.rs`'s.

use std::borrow::Borrow;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::index::KeyBuf;
use crate::index::key::Encode;
use crate::schema::Index;
use crate::table::{TableDef, TableState, Versioned};
use crate::tree::Tree;
use crate::watch::Target;

/// How the values a row has in a multi-value index are compared with a set
/// `S` of values, in [`Filter::set`]. Values are compared as the index
/// stores them (a case-insensitive index compares folded strings); repeated
/// values count once, in the row and in `S`.
///
/// | match | a row is selected when | `S` empty |
/// |---|---|---|
/// | `Superset` | it has every value of `S` (all-of) | every row |
/// | `Any` | it has at least one value of `S` (any-of) | no row |
/// | `Exact` | its values are exactly `S` | no row |
/// | `Subset` | it has at least one value, and every value it has is in `S` | no row |
///
/// A row with no value in the index is never selected by `Exact` or
/// `Subset`, though the empty set is a subset of every `S`: the index holds
/// nothing for such a row, so finding it would mean scanning the table.
/// Ask [`Query::all`](crate::Query::all) and filter if those rows matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetMatch {
    /// Rows whose values include every value of `S`.
    Superset,
    /// Rows with at least one value of `S`.
    Any,
    /// Rows whose values are exactly `S`.
    Exact,
    /// Rows with at least one value, all of them in `S`.
    Subset,
}

/// One condition of a filter, in the encoded key space of one index
/// (`pos`: the index's position in its table).
#[derive(Clone, Debug)]
pub(crate) enum Expr {
    /// Rows with this complete key (`unique`: the index's).
    Key {
        pos: usize,
        unique: bool,
        key: Vec<u8>,
    },
    /// Rows with a key starting with these bytes.
    Prefix { pos: usize, prefix: Vec<u8> },
    /// Rows matching every condition (an empty list: every row).
    All(Vec<Expr>),
    /// Rows matching at least one condition (an empty list: no row).
    Any(Vec<Expr>),
    /// A set match; `keys` sorted, without duplicates.
    Set {
        pos: usize,
        unique: bool,
        mode: SetMatch,
        keys: Vec<Vec<u8>>,
    },
}

/// The table a filter's conditions name: its schema instance, id and name.
#[derive(Clone, Debug)]
pub(crate) struct TableId {
    pub(crate) schema: u64,
    pub(crate) table: usize,
    pub(crate) name: Arc<str>,
}

/// A condition on the objects of one table, made of index keys, key
/// prefixes and set matches of that table's indexes, combined with
/// all-of ([`Filter::and`], [`Filter::all_of`], `&`) and any-of
/// ([`Filter::or`], [`Filter::any_of`], `|`). Query it with
/// [`Query::select`](crate::Query::select): the result comes in
/// primary-key order, whatever the order the conditions were written in,
/// and is answered from the indexes without scanning the table (see
/// `docs/GUIDE.md`, "Queries across indexes").
///
/// ```
/// # use pandodb::{Db, Filter, Indexer, Query, Schema};
/// struct Svc { name: String, env: String, tags: Vec<String> }
/// let mut schema = Schema::builder();
/// let mut t = schema.table::<Svc>("svc");
/// let by_name = t.primary("name", Indexer::string(|s: &Svc| s.name.as_str()));
/// let by_env = t.index("env", Indexer::string(|s: &Svc| s.env.as_str()));
/// let by_tag = t.index("tag", Indexer::strings(|s: &Svc| s.tags.as_slice()));
/// let svc = schema.add(t)?;
/// let db = Db::new(schema.build()?);
/// let mut w = db.write(&[&svc]);
/// for (name, env, tags) in [("api", "prod", &["web", "eu"][..]), ("db", "prod", &["eu"]), ("web", "dev", &["web"])] {
///     let tags = tags.iter().map(|t| t.to_string()).collect();
///     w.insert(&svc, Svc { name: name.into(), env: env.into(), tags })?;
/// }
/// w.commit()?;
/// let prod_web = Filter::key(&by_env, "prod") & Filter::key(&by_tag, "web");
/// let names: Vec<String> = db.read().select(&prod_web)?.map(|s| s.name.clone()).collect();
/// assert_eq!(names, ["api"]);
/// let eu_or_dev = Filter::key(&by_tag, "eu") | Filter::key(&by_env, "dev");
/// assert_eq!(db.read().select(&eu_or_dev)?.count(), 3);
/// # let _ = by_name;
/// # Ok::<(), pandodb::Error>(())
/// ```
pub struct Filter<T> {
    pub(crate) table: Option<TableId>,
    /// Why querying it fails (conditions on two tables, a set match that
    /// needs whole keys on a leading view).
    pub(crate) error: Option<String>,
    pub(crate) expr: Expr,
    _p: PhantomData<fn() -> T>,
}

impl<T> Clone for Filter<T> {
    fn clone(&self) -> Self {
        Filter {
            table: self.table.clone(),
            error: self.error.clone(),
            expr: self.expr.clone(),
            _p: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Filter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("table", &self.table.as_ref().map(|t| &t.name))
            .field("expr", &self.expr)
            .finish()
    }
}

impl<T> Filter<T> {
    fn leaf<K: ?Sized>(idx: &Index<T, K>, expr: Expr) -> Self {
        Filter {
            table: Some(TableId {
                schema: idx.schema,
                table: idx.table,
                name: idx.table_name.clone(),
            }),
            error: None,
            expr,
            _p: PhantomData,
        }
    }

    /// The objects whose key in `idx` equals `key` (for a view by a
    /// leading part of a compound key, [`Index::leading`], whose key starts
    /// with those parts).
    pub fn key<K: Encode + ?Sized>(idx: &Index<T, K>, key: &K) -> Self {
        let key = idx.encode(key, false);
        if idx.leading {
            return Self::leaf(
                idx,
                Expr::Prefix {
                    pos: idx.pos,
                    prefix: key,
                },
            );
        }
        let (pos, unique) = (idx.pos, idx.unique);
        Self::leaf(idx, Expr::Key { pos, unique, key })
    }

    /// The objects with a key in `idx` that starts with `prefix` (as in
    /// [`Query::prefix`](crate::Query::prefix)).
    pub fn prefix<K: Encode + ?Sized>(idx: &Index<T, K>, prefix: &K) -> Self {
        let prefix = idx.encode(prefix, true);
        Self::leaf(
            idx,
            Expr::Prefix {
                pos: idx.pos,
                prefix,
            },
        )
    }

    /// The objects whose values in the multi-value index `idx` match the
    /// set `keys` as `mode` says (see [`SetMatch`]).
    ///
    /// ```
    /// # use pandodb::{Db, Filter, Indexer, Query, Schema, SetMatch};
    /// struct Entry { id: u32, selectors: Vec<String> }
    /// let mut schema = Schema::builder();
    /// let mut t = schema.table::<Entry>("entry");
    /// let by_id = t.primary("id", Indexer::value(|e: &Entry| e.id));
    /// let by_sel = t.index("selector", Indexer::strings(|e: &Entry| e.selectors.as_slice()));
    /// let entries = schema.add(t)?;
    /// let db = Db::new(schema.build()?);
    /// let mut w = db.write(&[&entries]);
    /// for (id, sels) in [(1, &["ns:prod"][..]), (2, &["ns:prod", "sa:api"]), (3, &["ns:prod", "sa:api", "node:7"])] {
    ///     w.insert(&entries, Entry { id, selectors: sels.iter().map(|s| s.to_string()).collect() })?;
    /// }
    /// w.commit()?;
    /// let r = db.read();
    /// let ids = |m| -> pandodb::Result<Vec<u32>> {
    ///     Ok(r.select(&Filter::set(&by_sel, m, ["ns:prod", "sa:api"]))?.map(|e| e.id).collect())
    /// };
    /// assert_eq!(ids(SetMatch::Superset)?, [2, 3]);
    /// assert_eq!(ids(SetMatch::Exact)?, [2]);
    /// assert_eq!(ids(SetMatch::Subset)?, [1, 2]);
    /// assert_eq!(ids(SetMatch::Any)?, [1, 2, 3]);
    /// # let _ = by_id;
    /// # Ok::<(), pandodb::Error>(())
    /// ```
    pub fn set<K, Q>(idx: &Index<T, K>, mode: SetMatch, keys: impl IntoIterator<Item = Q>) -> Self
    where
        K: Encode + ?Sized,
        Q: Borrow<K>,
    {
        let mut keys: Vec<Vec<u8>> = keys
            .into_iter()
            .map(|k| idx.encode(k.borrow(), false))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        if idx.leading {
            // Keys of a leading view select by prefix: a superset or
            // any-of match is an all-of or any-of of those prefixes;
            // comparing whole value sets needs whole keys.
            let pos = idx.pos;
            let prefixes = keys.into_iter().map(|prefix| Expr::Prefix { pos, prefix });
            let mut f = Self::leaf(idx, Expr::All(Vec::new()));
            f.expr = match mode {
                SetMatch::Superset => Expr::All(prefixes.collect()),
                SetMatch::Any => Expr::Any(prefixes.collect()),
                SetMatch::Exact | SetMatch::Subset => {
                    f.error = Some(format!(
                        "set match {mode:?} on {}.{} compares whole keys: not on Index::leading",
                        idx.table_name, idx.name
                    ));
                    Expr::Any(Vec::new())
                }
            };
            return f;
        }
        let (pos, unique) = (idx.pos, idx.unique);
        Self::leaf(
            idx,
            Expr::Set {
                pos,
                unique,
                mode,
                keys,
            },
        )
    }

    /// The objects matching every filter of `filters` (all-of; nested in
    /// another filter, an empty list matches every object). A filter made
    /// of no condition at all names no table: querying it fails with
    /// [`Error::InvalidKey`].
    pub fn all_of(filters: impl IntoIterator<Item = Filter<T>>) -> Self {
        Self::combine(filters, true)
    }

    /// The objects matching at least one filter of `filters` (any-of; an
    /// empty list matches no object).
    pub fn any_of(filters: impl IntoIterator<Item = Filter<T>>) -> Self {
        Self::combine(filters, false)
    }

    /// The objects matching both `self` and `other`.
    #[must_use]
    pub fn and(self, other: Filter<T>) -> Self {
        Self::all_of([self, other])
    }

    /// The objects matching `self`, `other` or both.
    #[must_use]
    pub fn or(self, other: Filter<T>) -> Self {
        Self::any_of([self, other])
    }

    fn combine(filters: impl IntoIterator<Item = Filter<T>>, all: bool) -> Self {
        let mut table: Option<TableId> = None;
        let mut error = None;
        let mut exprs = Vec::new();
        for f in filters {
            error = error.or(f.error);
            if let Some(t) = f.table {
                match &table {
                    Some(have) if have.schema != t.schema || have.table != t.table => {
                        let both =
                            format!("a filter names two tables: {} and {}", have.name, t.name);
                        error = error.or(Some(both));
                    }
                    Some(_) => {}
                    None => table = Some(t),
                }
            }
            // Flatten nested combinations of the same kind.
            match (f.expr, all) {
                (Expr::All(inner), true) | (Expr::Any(inner), false) => exprs.extend(inner),
                (e, _) => exprs.push(e),
            }
        }
        Filter {
            table,
            error,
            expr: if all {
                Expr::All(exprs)
            } else {
                Expr::Any(exprs)
            },
            _p: PhantomData,
        }
    }

    /// The table the filter names, checked against the one queried.
    pub(crate) fn table_id(&self) -> Result<&TableId> {
        if let Some(e) = &self.error {
            return Err(Error::InvalidKey(e.clone()));
        }
        self.table
            .as_ref()
            .ok_or_else(|| Error::InvalidKey("a filter with no condition names no table".into()))
    }
}

impl<T> std::ops::BitAnd for Filter<T> {
    type Output = Filter<T>;
    fn bitand(self, rhs: Filter<T>) -> Filter<T> {
        self.and(rhs)
    }
}

impl<T> std::ops::BitOr for Filter<T> {
    type Output = Filter<T>;
    fn bitor(self, rhs: Filter<T>) -> Filter<T> {
        self.or(rhs)
    }
}

/// Tests a row against conditions: a key by a point lookup of its entry
/// (`value ++ primary key`) in the index tree, which leaves the object
/// untouched; what needs all of the row's values in an index (a prefix of
/// a secondary index, an exact or subset match) from the keys extracted
/// from the object, on demand, once per index per row.
pub(crate) struct Probe<T> {
    def: Arc<TableDef<T>>,
    primary: usize,
    /// The secondary index trees of the version queried.
    trees: Box<[Tree<Versioned<T>>]>,
    entry: Vec<u8>,
    bufs: Vec<KeyBuf>,
    /// The row each buffer was filled for (`row` when current).
    filled: Vec<u64>,
    row: u64,
}

impl<T> Probe<T> {
    pub(crate) fn new(st: &TableState<T>) -> Self {
        let n = st.def.indexes.len();
        Probe {
            def: st.def.clone(),
            primary: st.primary,
            trees: st.indexes.clone(),
            entry: Vec::new(),
            bufs: (0..n).map(|_| KeyBuf::default()).collect(),
            filled: vec![0; n],
            row: 0,
        }
    }

    /// Whether the row `(pk, obj)` has `key` in index `pos`.
    fn has_key(&mut self, pos: usize, unique: bool, key: &[u8], pk: &[u8], obj: &Arc<T>) -> bool {
        if pos == self.primary {
            return pk == key;
        }
        let Some(tree) = self.trees.get(pos) else {
            return false;
        };
        if unique {
            // Every tree of a table holds the same `Arc` of a row.
            return tree.get(key).is_some_and(|o| Arc::ptr_eq(&o.object, obj));
        }
        self.entry.clear();
        self.entry.extend_from_slice(key);
        self.entry.extend_from_slice(pk);
        tree.contains_key(&self.entry)
    }

    /// Starts probing another row: keys extracted so far are stale.
    pub(crate) fn next_row(&mut self) {
        self.row += 1;
    }

    /// The keys `obj` has in index `pos`: sorted and without duplicates
    /// when there are more than [`LINEAR`] (looked up by binary
    /// search), else as extracted (looked up one by one: no sort, no
    /// allocation per row).
    fn keys(&mut self, pos: usize, obj: &T) -> &KeyBuf {
        let buf = &mut self.bufs[pos];
        if self.filled[pos] != self.row {
            let ix = &self.def.indexes[pos];
            buf.clear(ix.case_insensitive);
            (ix.extract)(obj, buf);
            if buf.len() > LINEAR {
                buf.dedup();
            }
            self.filled[pos] = self.row;
        }
        buf
    }
}

/// Up to this many keys of a row in one index are searched one by one.
const LINEAR: usize = 16;

/// Whether `keys` (as [`Probe::keys`] leaves them) holds `key`.
fn holds(keys: &KeyBuf, key: &[u8]) -> bool {
    if keys.len() > LINEAR {
        keys.contains_sorted(key)
    } else {
        keys.keys().any(|k| k == key)
    }
}

impl Expr {
    /// The watch targets `(index, target)` covering every row this
    /// condition can select before or after a write: the keys and prefixes
    /// it names (a write logs every key of the rows it changes, kept ones
    /// included, so a row entering, leaving or changing within the result
    /// logs one of them); the whole primary index when it names none.
    pub(crate) fn watch_targets(&self, primary: usize, out: &mut Vec<(usize, Target)>) {
        let key_target = |unique: bool, key: &[u8]| {
            if unique {
                Target::Exact(key.to_vec())
            } else {
                Target::Prefix(key.to_vec())
            }
        };
        match self {
            Expr::Key { pos, unique, key } => out.push((*pos, key_target(*unique, key))),
            Expr::Prefix { pos, prefix } => out.push((*pos, Target::Prefix(prefix.clone()))),
            Expr::All(v) if v.is_empty() => out.push((primary, Target::Prefix(Vec::new()))),
            Expr::All(v) | Expr::Any(v) => v.iter().for_each(|e| e.watch_targets(primary, out)),
            Expr::Set {
                mode: SetMatch::Superset,
                keys,
                ..
            } if keys.is_empty() => out.push((primary, Target::Prefix(Vec::new()))),
            Expr::Set {
                pos, unique, keys, ..
            } => {
                for k in keys {
                    out.push((*pos, key_target(*unique, k)));
                }
            }
        }
    }

    /// Whether the row `(pk, obj)` of the version `probe` reads matches.
    /// Values extracted from the object are its index entries (indexers
    /// are pure functions of the object). Call [`Probe::next_row`] before
    /// the first test of each row.
    pub(crate) fn test<T>(&self, pk: &[u8], obj: &Arc<T>, probe: &mut Probe<T>) -> bool {
        match self {
            Expr::Key { pos, unique, key } => probe.has_key(*pos, *unique, key, pk, obj),
            Expr::Prefix { pos, prefix } => {
                probe.keys(*pos, obj).keys().any(|k| k.starts_with(prefix))
            }
            Expr::All(v) => v.iter().all(|e| e.test(pk, obj, probe)),
            Expr::Any(v) => v.iter().any(|e| e.test(pk, obj, probe)),
            Expr::Set {
                pos,
                unique,
                mode: mode @ (SetMatch::Superset | SetMatch::Any),
                keys,
            } => {
                let mut has = |k: &Vec<u8>| probe.has_key(*pos, *unique, k, pk, obj);
                if *mode == SetMatch::Superset {
                    keys.iter().all(&mut has)
                } else {
                    keys.iter().any(&mut has)
                }
            }
            Expr::Set {
                pos, mode, keys, ..
            } => {
                let have = probe.keys(*pos, obj);
                let has = |k: &[u8]| holds(have, k);
                let in_set = |k: &[u8]| keys.binary_search_by(|s| s.as_slice().cmp(k)).is_ok();
                match mode {
                    SetMatch::Superset => keys.iter().all(|k| has(k)),
                    SetMatch::Any => keys.iter().any(|k| has(k)),
                    // Every value of S in the row, every value of the row in
                    // S (duplicates in the row count once).
                    SetMatch::Exact => {
                        !keys.is_empty() && keys.iter().all(|k| has(k)) && have.keys().all(in_set)
                    }
                    SetMatch::Subset => !have.is_empty() && have.keys().all(in_set),
                }
            }
        }
    }
}
