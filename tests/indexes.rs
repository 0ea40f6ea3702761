//! G3 — indexes: typed schema errors, every built-in indexer, every query on
//! every index, unique enforcement (a failed insert leaves the transaction
//! exactly as it was), and deletes that keep every index consistent.
//!
//! The oracle: for each index, the expected entries are recomputed from the
//! table's rows by an independent model of that indexer (`model_keys`),
//! encoded with `pandodb::Encode` and sorted by `(key, primary key)` bytes.
//! Every query result is then compared against a filter over that list.
//!
//! Run: `cargo test --release --test indexes`

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::ops::Bound;
use std::sync::Arc;

use pandodb::{Db, Encode, Error, Index, Indexer, Query, Schema, Table, Uuid};

// ---------------------------------------------------------------------------
// Schema errors
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct Rec {
    id: String,
    n: i64,
}

fn schema_err<T>(r: pandodb::Result<T>) -> String {
    match r {
        Err(Error::Schema(m)) => m,
        Err(e) => panic!("expected Error::Schema, got {e:?}"),
        Ok(_) => panic!("expected Error::Schema, got Ok"),
    }
}

#[test]
fn schema_without_primary_index_is_rejected() {
    let mut s = Schema::builder();
    let mut t = s.table::<Rec>("nopk");
    let _n = t.index("n", Indexer::value(|r: &Rec| r.n));
    let m = schema_err(s.add(t));
    assert!(m.contains("nopk") && m.contains("primary"), "{m}");
    // The table was declared but never added: the schema cannot be built.
    schema_err(s.build());
}

#[test]
fn schema_with_two_primary_indexes_is_rejected() {
    let mut s = Schema::builder();
    let mut t = s.table::<Rec>("twopk");
    let _a = t.primary("id", Indexer::string(|r: &Rec| r.id.as_str()));
    let _b = t.primary("n", Indexer::value(|r: &Rec| r.n));
    let m = schema_err(s.add(t));
    assert!(m.contains("twopk") && m.contains("primary"), "{m}");
}

#[test]
fn schema_with_duplicate_index_names_is_rejected() {
    let mut s = Schema::builder();
    let mut t = s.table::<Rec>("dupix");
    let _a = t.primary("id", Indexer::string(|r: &Rec| r.id.as_str()));
    let _b = t.index("same", Indexer::value(|r: &Rec| r.n));
    let _c = t.unique("same", Indexer::value(|r: &Rec| r.n));
    let m = schema_err(s.add(t));
    assert!(m.contains("dupix") && m.contains("same"), "{m}");
    // Display says what and where.
    let shown = Error::Schema(m).to_string();
    assert!(shown.contains("dupix") && shown.contains("same"), "{shown}");
}

#[test]
fn schema_with_duplicate_table_names_is_rejected() {
    let mut s = Schema::builder();
    let mut a = s.table::<Rec>("twin");
    let _ = a.primary("id", Indexer::string(|r: &Rec| r.id.as_str()));
    s.add(a).expect("the first table is fine");
    let mut b = s.table::<Rec>("twin");
    let _ = b.primary("id", Indexer::string(|r: &Rec| r.id.as_str()));
    let m = schema_err(s.add(b));
    assert!(m.contains("twin"), "{m}");
    let m = schema_err(s.build());
    assert!(m.contains("twin"), "{m}");
}

#[test]
fn schema_with_declared_but_not_added_table_is_rejected() {
    let mut s = Schema::builder();
    let mut a = s.table::<Rec>("added");
    let _ = a.primary("id", Indexer::string(|r: &Rec| r.id.as_str()));
    s.add(a).unwrap();
    let mut b = s.table::<Rec>("forgotten");
    let _ = b.primary("id", Indexer::string(|r: &Rec| r.id.as_str()));
    drop(b);
    let m = schema_err(s.build());
    assert!(m.contains("not added"), "{m}");
}

#[test]
fn schema_with_a_table_of_another_builder_is_rejected() {
    let mut s = Schema::builder();
    let mut a = s.table::<Rec>("mine");
    let _ = a.primary("id", Indexer::string(|r: &Rec| r.id.as_str()));
    s.add(a).unwrap();
    let mut other = Schema::builder();
    let mut b = other.table::<Rec>("theirs");
    let _ = b.primary("id", Indexer::string(|r: &Rec| r.id.as_str()));
    let m = schema_err(s.add(b));
    assert!(m.contains("another schema builder"), "{m}");
    // The failed `add` fails the build too, as every failed `add` does.
    let e = s.build().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("theirs"), "{e}");
    assert_eq!(e.matches("invalid schema").count(), 1, "{e}");
}

#[test]
fn schema_with_empty_names_is_rejected() {
    // Empty table name.
    let mut s = Schema::builder();
    let mut t = s.table::<Rec>("");
    let _ = t.primary("id", Indexer::string(|r: &Rec| r.id.as_str()));
    let m = schema_err(s.add(t));
    assert!(m.contains("empty"), "{m}");
    schema_err(s.build());

    // Empty index name.
    let mut s = Schema::builder();
    let mut t = s.table::<Rec>("emptyix");
    let _ = t.primary("", Indexer::string(|r: &Rec| r.id.as_str()));
    let m = schema_err(s.add(t));
    assert!(m.contains("emptyix") && m.contains("empty"), "{m}");

    // No table at all.
    schema_err(Schema::builder().build());
}

#[test]
fn valid_schema_builds_and_lists_tables() {
    let mut s = Schema::builder();
    let mut a = s.table::<Rec>("alpha");
    let _ = a.primary("id", Indexer::string(|r: &Rec| r.id.as_str()));
    let mut b = s.table::<Rec>("beta");
    let _ = b.primary("id", Indexer::string(|r: &Rec| r.id.as_str()));
    let a = s.add(a).unwrap();
    let b = s.add(b).unwrap();
    let schema = s.build().unwrap();
    assert_eq!(schema.table_names().collect::<Vec<_>>(), ["alpha", "beta"]);
    assert_eq!((a.name(), b.name()), ("alpha", "beta"));
}

// ---------------------------------------------------------------------------
// The generic oracle
// ---------------------------------------------------------------------------

/// One expected index entry: encoded key, encoded primary key, object id.
type Entry = (Vec<u8>, Vec<u8>, String);

fn enc<K: Encode + ?Sized>(k: &K, fold: bool, prefix: bool) -> Vec<u8> {
    let mut out = Vec::new();
    match (fold, prefix) {
        (true, p) => k.encode_folded(&mut out, p),
        (false, false) => k.encode(&mut out),
        (false, true) => k.encode_prefix(&mut out),
    }
    out
}

fn names<T>(it: impl Iterator<Item = Arc<T>>, id: &dyn Fn(&T) -> String) -> Vec<String> {
    it.map(|o| id(&o)).collect()
}

fn pick(m: &[Entry], keep: impl Fn(&[u8]) -> bool) -> Vec<String> {
    m.iter()
        .filter(|e| keep(&e.0))
        .map(|e| e.2.clone())
        .collect()
}

/// Compares every query on `idx` with the sorted model `m`: all (both
/// directions), index_len, and for every probe get/first/last/iter/count/
/// lower_bound/reverse_lower_bound and range with all nine bound kinds
/// against every other probe; for every prefix, prefix and count_prefix.
#[allow(clippy::too_many_arguments)]
fn check_index<Q: Query, T: Send + Sync + 'static, K: Encode + ?Sized + Debug>(
    q: &Q,
    idx: &Index<T, K>,
    id: &dyn Fn(&T) -> String,
    mut m: Vec<Entry>,
    probes: &[&K],
    prefixes: &[&K],
    fold: bool,
) {
    m.sort();
    let what = idx.name().to_string();
    let all: Vec<String> = m.iter().map(|e| e.2.clone()).collect();
    assert_eq!(names(q.all(idx).unwrap(), id), all, "all({what})");
    let mut rev = all.clone();
    rev.reverse();
    assert_eq!(
        names(q.all(idx).unwrap().rev(), id),
        rev,
        "all({what}).rev()"
    );
    assert_eq!(q.all(idx).unwrap().len(), all.len(), "all({what}).len()");
    assert_eq!(q.index_len(idx).unwrap(), m.len(), "index_len({what})");

    for &p in probes {
        let e = enc(p, fold, false);
        let eq = pick(&m, |k| k.starts_with(&e));
        let ctx = format!("{what} probe {p:?}");
        assert_eq!(names(q.iter(idx, p).unwrap(), id), eq, "iter {ctx}");
        assert_eq!(q.count(idx, p).unwrap(), eq.len(), "count {ctx}");
        let get = q.get(idx, p).unwrap().map(|o| id(&o));
        assert_eq!(get, eq.first().cloned(), "get {ctx}");
        let first = q.first(idx, p).unwrap().map(|o| id(&o));
        assert_eq!(first, eq.first().cloned(), "first {ctx}");
        let last = q.last(idx, p).unwrap().map(|o| id(&o));
        assert_eq!(last, eq.last().cloned(), "last {ctx}");
        let ge = pick(&m, |k| k >= e.as_slice());
        assert_eq!(
            names(q.lower_bound(idx, p).unwrap(), id),
            ge,
            "lower_bound {ctx}"
        );
        let mut le = pick(&m, |k| k <= e.as_slice() || k.starts_with(&e));
        le.reverse();
        assert_eq!(
            names(q.reverse_lower_bound(idx, p).unwrap(), id),
            le,
            "reverse_lower_bound {ctx}"
        );
    }

    let in_lo = |k: &[u8], b: &Bound<Vec<u8>>| match b {
        Bound::Included(x) => k >= x.as_slice(),
        Bound::Excluded(x) => k > x.as_slice() && !k.starts_with(x),
        Bound::Unbounded => true,
    };
    let in_hi = |k: &[u8], b: &Bound<Vec<u8>>| match b {
        Bound::Included(x) => k <= x.as_slice() || k.starts_with(x),
        Bound::Excluded(x) => k < x.as_slice(),
        Bound::Unbounded => true,
    };
    fn bounds<K: Encode + ?Sized>(p: Option<&K>, fold: bool) -> Vec<(Bound<&K>, Bound<Vec<u8>>)> {
        match p {
            None => vec![(Bound::Unbounded, Bound::Unbounded)],
            Some(p) => vec![
                (Bound::Included(p), Bound::Included(enc(p, fold, false))),
                (Bound::Excluded(p), Bound::Excluded(enc(p, fold, false))),
            ],
        }
    }
    let mut ends: Vec<Option<&K>> = vec![None];
    ends.extend(probes.iter().map(|&p| Some(p)));
    for &a in &ends {
        for &b in &ends {
            for (lo, lo_m) in bounds(a, fold) {
                for (hi, hi_m) in bounds(b, fold) {
                    let want = pick(&m, |k| in_lo(k, &lo_m) && in_hi(k, &hi_m));
                    let got = names(q.range(idx, lo, hi).unwrap(), id);
                    assert_eq!(got, want, "range {what} {lo:?}..{hi:?}");
                }
            }
        }
    }

    for &p in prefixes {
        let e = enc(p, fold, true);
        let want = pick(&m, |k| k.starts_with(&e));
        let ctx = format!("{what} prefix {p:?}");
        assert_eq!(names(q.prefix(idx, p).unwrap(), id), want, "prefix {ctx}");
        assert_eq!(
            q.count_prefix(idx, p).unwrap(),
            want.len(),
            "count_prefix {ctx}"
        );
    }
}

// ---------------------------------------------------------------------------
// Integers and bools: one table per type
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct Num<K> {
    id: u32,
    v: K,
}

fn check_values<K>(vals: &[K], extra_probes: &[K])
where
    K: Encode + Ord + Clone + Debug + Send + Sync + 'static,
{
    let mut s = Schema::builder();
    let mut t = s.table::<Num<K>>("num");
    let by_id = t.primary("id", Indexer::value(|n: &Num<K>| n.id));
    let by_v = t.index("v", Indexer::value(|n: &Num<K>| n.v.clone()));
    let t = s.add(t).unwrap();
    let db = Db::new(s.build().unwrap());
    let mut w = db.write(&[&t]);
    for (i, v) in vals.iter().enumerate() {
        w.insert(
            &t,
            Num {
                id: i as u32,
                v: v.clone(),
            },
        )
        .unwrap();
    }
    w.commit().unwrap();
    let r = db.read();
    assert_eq!(r.len(&t).unwrap(), vals.len());

    // Value order, independent of the encoding: sort by (value, id).
    let mut by_value: Vec<(K, u32)> = vals.iter().cloned().zip(0u32..).collect();
    by_value.sort();
    let got: Vec<(K, u32)> = r.all(&by_v).unwrap().map(|n| (n.v.clone(), n.id)).collect();
    assert_eq!(got, by_value, "all() in value order");

    // Every probe: lower_bound / reverse_lower_bound / range by value.
    let mut probes: Vec<K> = vals.to_vec();
    probes.extend_from_slice(extra_probes);
    for p in &probes {
        let ge: Vec<(K, u32)> = by_value.iter().filter(|x| x.0 >= *p).cloned().collect();
        let got: Vec<(K, u32)> = r
            .lower_bound(&by_v, p)
            .unwrap()
            .map(|n| (n.v.clone(), n.id))
            .collect();
        assert_eq!(got, ge, "lower_bound({p:?})");
        let le: Vec<(K, u32)> = by_value
            .iter()
            .rev()
            .filter(|x| x.0 <= *p)
            .cloned()
            .collect();
        let got: Vec<(K, u32)> = r
            .reverse_lower_bound(&by_v, p)
            .unwrap()
            .map(|n| (n.v.clone(), n.id))
            .collect();
        assert_eq!(got, le, "reverse_lower_bound({p:?})");
        let lt: Vec<(K, u32)> = by_value.iter().filter(|x| x.0 < *p).cloned().collect();
        let got: Vec<(K, u32)> = r
            .range(&by_v, Bound::Unbounded, Bound::Excluded(p))
            .unwrap()
            .map(|n| (n.v.clone(), n.id))
            .collect();
        assert_eq!(got, lt, "range(..{p:?})");
    }

    // The full oracle over encoded keys.
    let id = |n: &Num<K>| n.id.to_string();
    let m: Vec<Entry> = vals
        .iter()
        .zip(0u32..)
        .map(|(v, i)| (v.to_key(), i.to_key(), i.to_string()))
        .collect();
    let refs: Vec<&K> = probes.iter().collect();
    check_index(&r, &by_v, &id, m, &refs, &refs, false);
    let pm: Vec<Entry> = (0..vals.len() as u32)
        .map(|i| (i.to_key(), i.to_key(), i.to_string()))
        .collect();
    check_index(&r, &by_id, &id, pm, &[&0, &1, &99], &[], false);
}

#[test]
fn value_indexer_signed_integers_order_negatives_first() {
    check_values(&[0i8, -1, i8::MIN, 5, i8::MAX, -1, 1, -100], &[-2, 2, -128]);
    check_values(&[0i16, -1, i16::MIN, 300, i16::MAX, -300, -1], &[-2, 299]);
    check_values(
        &[0i32, -1, i32::MIN, 70_000, i32::MAX, -70_000, 70_000],
        &[-69_999, 3],
    );
    check_values(
        &[0i64, -1, i64::MIN, 1 << 40, i64::MAX, -(1 << 40), -1],
        &[-2, 1 << 39],
    );
    check_values(
        &[0i128, -1, i128::MIN, 1 << 100, i128::MAX, -(1 << 100), 7],
        &[-2, 6],
    );
}

#[test]
fn value_indexer_unsigned_integers_and_bool() {
    check_values(&[0u8, 255, 1, 128, 127, 1], &[2, 200]);
    check_values(&[0u16, 65535, 256, 255, 1], &[257, 2]);
    check_values(&[0u32, u32::MAX, 1 << 24, 255, 1 << 24], &[1 << 23]);
    check_values(&[0u64, u64::MAX, 1 << 56, 255, 3], &[4, 1 << 55]);
    check_values(&[0u128, u128::MAX, 1 << 120, 255], &[256]);
    check_values(&[true, false, true, false, false], &[]);
}

#[test]
fn negative_primary_keys_are_ordered() {
    #[derive(Debug)]
    struct Temp {
        at: i64,
    }
    let mut s = Schema::builder();
    let mut t = s.table::<Temp>("temp");
    let by_at = t.primary("at", Indexer::value(|x: &Temp| x.at));
    let t = s.add(t).unwrap();
    let db = Db::new(s.build().unwrap());
    let mut w = db.write(&[&t]);
    for at in [3, -7, 0, i64::MIN, -1, i64::MAX, 12] {
        w.insert(&t, Temp { at }).unwrap();
    }
    w.commit().unwrap();
    let r = db.read();
    let order: Vec<i64> = r.all(&by_at).unwrap().map(|x| x.at).collect();
    assert_eq!(order, [i64::MIN, -7, -1, 0, 3, 12, i64::MAX]);
    let ge: Vec<i64> = r.lower_bound(&by_at, &-2).unwrap().map(|x| x.at).collect();
    assert_eq!(ge, [-1, 0, 3, 12, i64::MAX]);
    let le: Vec<i64> = r
        .reverse_lower_bound(&by_at, &-2)
        .unwrap()
        .map(|x| x.at)
        .collect();
    assert_eq!(le, [-7, i64::MIN]);
    let mid: Vec<i64> = r
        .range(&by_at, Bound::Excluded(&-7), Bound::Included(&3))
        .unwrap()
        .map(|x| x.at)
        .collect();
    assert_eq!(mid, [-1, 0, 3]);
    // Inverted and empty ranges are empty, not a panic.
    assert_eq!(
        r.range(&by_at, Bound::Included(&5), Bound::Included(&-5))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        r.range(&by_at, Bound::Excluded(&0), Bound::Excluded(&0))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        r.range(&by_at, Bound::Excluded(&i64::MAX), Bound::Unbounded)
            .unwrap()
            .count(),
        0
    );
}

// ---------------------------------------------------------------------------
// The "item" table: one index per built-in indexer
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Default)]
struct Item {
    id: String,
    name: String,
    email: Option<String>,
    score: Option<i32>,
    tags: Vec<String>,
    aliases: Vec<String>,
    labels: BTreeMap<String, String>,
    meta: HashMap<String, String>,
    region: String,
    zone: i16,
    rack: u8,
    colors: Vec<String>,
    sizes: Vec<u8>,
    uuid: Uuid,
    nick: Option<String>,
    path: String,
    blob: Vec<u8>,
    ports: Vec<u16>,
}

struct Ix {
    t: Table<Item>,
    id: Index<Item, str>,
    name: Index<Item, str>,
    email: Index<Item, str>,
    score: Index<Item, i32>,
    tags: Index<Item, str>,
    aliases: Index<Item, str>,
    label_keys: Index<Item, str>,
    labels: Index<Item, (String, String)>,
    meta_keys: Index<Item, str>,
    meta: Index<Item, (String, String)>,
    rz: Index<Item, (String, i16)>,
    rzr: Index<Item, (String, i16, u8)>,
    cs: Index<Item, (String, u8)>,
    uuid: Index<Item, Uuid>,
    has_nick: Index<Item, bool>,
    high: Index<Item, bool>,
    path: Index<Item, str>,
    words: Index<Item, str>,
    blob: Index<Item, [u8]>,
    ports: Index<Item, u16>,
}

fn item_db() -> (Db, Ix) {
    let mut s = Schema::builder();
    let mut t = s.table::<Item>("item");
    let id = t.primary("id", Indexer::string(|i: &Item| i.id.as_str()));
    let name = t.index("name", Indexer::string_ci(|i: &Item| i.name.as_str()));
    let email = t.unique(
        "email",
        Indexer::optional_string(|i: &Item| i.email.as_deref()),
    );
    let score = t.index("score", Indexer::optional(|i: &Item| i.score));
    let tags = t.index("tags", Indexer::strings(|i: &Item| i.tags.as_slice()));
    let aliases = t.unique("aliases", Indexer::strings(|i: &Item| i.aliases.as_slice()));
    let label_keys = t.index("label_keys", Indexer::map_keys(|i: &Item| &i.labels));
    let labels = t.index("labels", Indexer::map_entries(|i: &Item| &i.labels));
    let meta_keys = t.index("meta_keys", Indexer::map_keys(|i: &Item| &i.meta));
    let meta = t.index("meta", Indexer::map_entries(|i: &Item| &i.meta));
    let rz = t.index("rz", Indexer::value(|i: &Item| (i.region.clone(), i.zone)));
    let rzr = t.index(
        "rzr",
        Indexer::value(|i: &Item| (i.region.clone(), i.zone, i.rack)),
    );
    let cs = t.index(
        "cs",
        Indexer::compound_multi(|i: &Item| i.colors.clone(), |i: &Item| i.sizes.clone()),
    );
    let uuid = t.unique("uuid", Indexer::value(|i: &Item| i.uuid));
    let has_nick = t.index("has_nick", Indexer::field_set(|i: &Item| i.nick.as_deref()));
    let high = t.index(
        "high",
        Indexer::conditional(|i: &Item| i.score.unwrap_or(0) > 50),
    );
    let path = t.index("path", Indexer::string(|i: &Item| i.path.as_str()));
    let words = t.index(
        "words",
        Indexer::<Item, str>::custom(|i: &Item, keys| {
            for w in i.path.split('/').filter(|w| !w.is_empty()) {
                keys.add(w);
            }
        }),
    );
    let blob = t.index("blob", Indexer::bytes(|i: &Item| i.blob.as_slice()));
    let ports = t.index("ports", Indexer::multi(|i: &Item| i.ports.clone()));
    let t = s.add(t).unwrap();
    let db = Db::new(s.build().unwrap());
    let ix = Ix {
        t,
        id,
        name,
        email,
        score,
        tags,
        aliases,
        label_keys,
        labels,
        meta_keys,
        meta,
        rz,
        rzr,
        cs,
        uuid,
        has_nick,
        high,
        path,
        words,
        blob,
        ports,
    };
    (db, ix)
}

fn dedup(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v.dedup();
    v
}

/// The independent model of every indexer of the item table.
fn model_keys(i: &Item, index: &str) -> Vec<Vec<u8>> {
    dedup(match index {
        "id" => vec![i.id.to_key()],
        "name" => vec![i.name.to_lowercase().to_key()],
        "email" => i.email.iter().map(|e| e.to_key()).collect(),
        "score" => i.score.iter().map(|s| s.to_key()).collect(),
        "tags" => i.tags.iter().map(|s| s.to_key()).collect(),
        "aliases" => i.aliases.iter().map(|s| s.to_key()).collect(),
        "label_keys" => i.labels.keys().map(|s| s.to_key()).collect(),
        "labels" => i.labels.iter().map(|(k, v)| (k, v).to_key()).collect(),
        "meta_keys" => i.meta.keys().map(|s| s.to_key()).collect(),
        "meta" => i.meta.iter().map(|(k, v)| (k, v).to_key()).collect(),
        "rz" => vec![(&i.region, i.zone).to_key()],
        "rzr" => vec![(&i.region, i.zone, i.rack).to_key()],
        "cs" => i
            .colors
            .iter()
            .flat_map(|c| i.sizes.iter().map(move |s| (c, *s).to_key()))
            .collect(),
        "uuid" => vec![i.uuid.to_key()],
        "has_nick" => vec![i.nick.is_some().to_key()],
        "high" => vec![(i.score.unwrap_or(0) > 50).to_key()],
        "path" => vec![i.path.to_key()],
        "words" => i
            .path
            .split('/')
            .filter(|w| !w.is_empty())
            .map(|w| w.to_key())
            .collect(),
        "blob" => vec![i.blob.to_key()],
        "ports" => i.ports.iter().map(|p| p.to_key()).collect(),
        other => panic!("no model for index {other}"),
    })
}

fn model(items: &[Item], index: &str) -> Vec<Entry> {
    items
        .iter()
        .flat_map(|i| {
            model_keys(i, index)
                .into_iter()
                .map(|k| (k, i.id.to_key(), i.id.clone()))
        })
        .collect()
}

fn iid(i: &Item) -> String {
    i.id.clone()
}

fn s(x: &str) -> String {
    x.to_string()
}

fn uuid(hex: &str) -> Uuid {
    Uuid::parse(hex).unwrap()
}

fn item(id: &str) -> Item {
    Item {
        id: id.into(),
        name: id.to_uppercase(),
        region: "eu".into(),
        path: format!("/{id}"),
        ..Item::default()
    }
}

fn sample_items() -> Vec<Item> {
    let map = |kv: &[(&str, &str)]| {
        kv.iter()
            .map(|(k, v)| (s(k), s(v)))
            .collect::<BTreeMap<_, _>>()
    };
    let hmap = |kv: &[(&str, &str)]| {
        kv.iter()
            .map(|(k, v)| (s(k), s(v)))
            .collect::<HashMap<_, _>>()
    };
    let v = |xs: &[&str]| xs.iter().map(|x| s(x)).collect::<Vec<_>>();
    vec![
        Item {
            id: "a".into(),
            name: "Alice".into(),
            email: Some("alice@x".into()),
            score: Some(90),
            tags: v(&["ab", "abc", "x"]),
            aliases: v(&["al", "ally"]),
            labels: map(&[("env", "prod"), ("team", "core")]),
            meta: hmap(&[("os", "linux"), ("arch", "x86")]),
            region: "eu".into(),
            zone: -3,
            rack: 1,
            colors: v(&["red", "blue"]),
            sizes: vec![1, 2],
            uuid: uuid("3fa85f64-5717-4562-b3fc-2c963f66afa6"),
            nick: Some("al".into()),
            path: "/api".into(),
            blob: vec![0, 1, 0],
            ports: vec![80, 443],
        },
        Item {
            id: "ab".into(),
            name: "ALICE".into(),
            email: None,
            score: Some(-5),
            tags: v(&["x", "x", "ab"]),
            aliases: v(&["bo", "bo"]),
            labels: map(&[("env", "dev")]),
            meta: hmap(&[("os", "mac")]),
            region: "eu".into(),
            zone: 4,
            rack: 2,
            colors: v(&["red"]),
            sizes: vec![2, 2, 3],
            uuid: uuid("3fa95f64-5717-4562-b3fc-2c963f66afa6"),
            nick: None,
            path: "/api/v1".into(),
            blob: vec![0],
            ports: vec![80],
        },
        Item {
            id: "abc".into(),
            name: "bob".into(),
            email: Some("bob@x".into()),
            score: None,
            tags: vec![],
            aliases: vec![],
            labels: BTreeMap::new(),
            meta: HashMap::new(),
            region: "us".into(),
            zone: -3,
            rack: 0,
            colors: vec![],
            sizes: vec![9],
            uuid: uuid("3fb05f64571745620000000000000000"),
            nick: Some(String::new()),
            path: "/api/v1/users".into(),
            blob: vec![],
            ports: vec![],
        },
        Item {
            id: "b".into(),
            name: "Bob".into(),
            email: Some("b@x".into()),
            score: Some(51),
            tags: v(&["abc"]),
            aliases: v(&["b"]),
            labels: map(&[("env", "prod")]),
            meta: hmap(&[("arch", "arm"), ("os", "linux")]),
            region: "eu".into(),
            zone: -3,
            rack: 1,
            colors: v(&["blue", "green"]),
            sizes: vec![1],
            uuid: uuid("ffffffffffffffffffffffffffffffff"),
            nick: None,
            path: "/static".into(),
            blob: vec![0, 1],
            ports: vec![443, 8080],
        },
        Item {
            id: "".into(),
            name: "".into(),
            email: Some("".into()),
            score: Some(50),
            tags: v(&[""]),
            aliases: v(&[""]),
            labels: map(&[("", "")]),
            meta: HashMap::new(),
            region: "".into(),
            zone: i16::MIN,
            rack: 255,
            colors: v(&[""]),
            sizes: vec![0],
            uuid: uuid("00000000000000000000000000000000"),
            nick: None,
            path: "/".into(),
            blob: vec![],
            ports: vec![0],
        },
        Item {
            id: "z\0z".into(),
            name: "Zed\0".into(),
            email: Some("z\0@x".into()),
            score: Some(i32::MIN),
            tags: v(&["a\0b", "a"]),
            aliases: v(&["z\0"]),
            labels: map(&[("env", "prod\0"), ("env\0", "prod")]),
            meta: hmap(&[("os", "")]),
            region: "eu\0".into(),
            zone: 4,
            rack: 9,
            colors: v(&["red"]),
            sizes: vec![],
            uuid: uuid("3fa80000000000000000000000000000"),
            nick: Some("zz".into()),
            path: "/api/v10".into(),
            blob: vec![0xFF, 0],
            ports: vec![65535],
        },
    ]
}

fn load(db: &Db, ix: &Ix, items: &[Item]) {
    let mut w = db.write(&[&ix.t]);
    for i in items {
        w.insert(&ix.t, i.clone()).unwrap();
    }
    w.commit().unwrap();
}

/// Every index of the item table equals its recomputation from `items`
/// (all, both directions, index_len), and len matches.
fn check_consistent<Q: Query>(q: &Q, ix: &Ix, items: &[Item]) {
    let f = &iid;
    assert_eq!(q.len(&ix.t).unwrap(), items.len(), "len");
    check_index(q, &ix.id, f, model(items, "id"), &[], &[], false);
    check_index(q, &ix.name, f, model(items, "name"), &[], &[], true);
    check_index(q, &ix.email, f, model(items, "email"), &[], &[], false);
    check_index(q, &ix.score, f, model(items, "score"), &[], &[], false);
    check_index(q, &ix.tags, f, model(items, "tags"), &[], &[], false);
    check_index(q, &ix.aliases, f, model(items, "aliases"), &[], &[], false);
    check_index(
        q,
        &ix.label_keys,
        f,
        model(items, "label_keys"),
        &[],
        &[],
        false,
    );
    check_index(q, &ix.labels, f, model(items, "labels"), &[], &[], false);
    check_index(
        q,
        &ix.meta_keys,
        f,
        model(items, "meta_keys"),
        &[],
        &[],
        false,
    );
    check_index(q, &ix.meta, f, model(items, "meta"), &[], &[], false);
    check_index(q, &ix.rz, f, model(items, "rz"), &[], &[], false);
    check_index(q, &ix.rzr, f, model(items, "rzr"), &[], &[], false);
    check_index(q, &ix.cs, f, model(items, "cs"), &[], &[], false);
    check_index(q, &ix.uuid, f, model(items, "uuid"), &[], &[], false);
    check_index(
        q,
        &ix.has_nick,
        f,
        model(items, "has_nick"),
        &[],
        &[],
        false,
    );
    check_index(q, &ix.high, f, model(items, "high"), &[], &[], false);
    check_index(q, &ix.path, f, model(items, "path"), &[], &[], false);
    check_index(q, &ix.words, f, model(items, "words"), &[], &[], false);
    check_index(q, &ix.blob, f, model(items, "blob"), &[], &[], false);
    check_index(q, &ix.ports, f, model(items, "ports"), &[], &[], false);
}

/// Everything observable about the table: every index in full (objects,
/// both directions), every index_len, len.
fn dump<Q: Query>(q: &Q, ix: &Ix) -> Vec<(String, usize, Vec<Item>, Vec<Item>)> {
    fn one<Q: Query, K: ?Sized>(
        q: &Q,
        idx: &Index<Item, K>,
    ) -> (String, usize, Vec<Item>, Vec<Item>) {
        (
            idx.name().to_string(),
            q.index_len(idx).unwrap(),
            q.all(idx).unwrap().map(|i| (*i).clone()).collect(),
            q.all(idx).unwrap().rev().map(|i| (*i).clone()).collect(),
        )
    }
    vec![
        ("len".to_string(), q.len(&ix.t).unwrap(), vec![], vec![]),
        one(q, &ix.id),
        one(q, &ix.name),
        one(q, &ix.email),
        one(q, &ix.score),
        one(q, &ix.tags),
        one(q, &ix.aliases),
        one(q, &ix.label_keys),
        one(q, &ix.labels),
        one(q, &ix.meta_keys),
        one(q, &ix.meta),
        one(q, &ix.rz),
        one(q, &ix.rzr),
        one(q, &ix.cs),
        one(q, &ix.uuid),
        one(q, &ix.has_nick),
        one(q, &ix.high),
        one(q, &ix.path),
        one(q, &ix.words),
        one(q, &ix.blob),
        one(q, &ix.ports),
    ]
}

#[test]
fn every_index_is_consistent_after_loading() {
    let (db, ix) = item_db();
    let items = sample_items();
    load(&db, &ix, &items);
    let r = db.read();
    check_consistent(&r, &ix, &items);
    // The same inside a write transaction.
    let w = db.write(&[&ix.t]);
    check_consistent(&w, &ix, &items);
}

#[test]
fn string_index_queries() {
    let (db, ix) = item_db();
    let items = sample_items();
    load(&db, &ix, &items);
    let r = db.read();

    // Row iterators are double-ended and exact-size: any mix of next and
    // next_back yields every object once, in order from both ends.
    let all: Vec<String> = r.all(&ix.tags).unwrap().map(|i| i.id.clone()).collect();
    for pattern in 0u32..64 {
        let mut it = r.all(&ix.tags).unwrap();
        let (mut front, mut back) = (Vec::new(), Vec::new());
        let mut step = 0;
        loop {
            assert_eq!(it.len(), all.len() - front.len() - back.len());
            let from_front = pattern >> (step % 6) & 1 == 1;
            step += 1;
            let next = if from_front {
                it.next()
            } else {
                it.next_back()
            };
            match next {
                Some(x) if from_front => front.push(x.id.clone()),
                Some(x) => back.push(x.id.clone()),
                None => break,
            }
        }
        assert!(it.next().is_none() && it.next_back().is_none(), "fused");
        back.reverse();
        front.extend(back);
        assert_eq!(front, all, "pattern {pattern:06b}");
    }

    // Primary string index.
    let id_probes: &[&str] = &["", "a", "ab", "abc", "abd", "b", "z", "z\0z", "zz", "\0"];
    check_index(
        &r,
        &ix.id,
        &iid,
        model(&items, "id"),
        id_probes,
        id_probes,
        false,
    );
    let by_prefix: Vec<String> = r
        .prefix(&ix.id, "ab")
        .unwrap()
        .map(|i| i.id.clone())
        .collect();
    assert_eq!(
        by_prefix,
        ["ab", "abc"],
        "prefix \"ab\" matches \"ab\" and \"abc\""
    );
    assert_eq!(r.count_prefix(&ix.id, "a").unwrap(), 3);
    assert_eq!(r.count_prefix(&ix.id, "").unwrap(), items.len());
    assert_eq!(r.get(&ix.id, "abc").unwrap().unwrap().name, "bob");
    assert!(r.get(&ix.id, "abcd").unwrap().is_none());

    // Non-unique string index and the custom (words) index.
    let path_probes: &[&str] = &["/", "/api", "/api/v1", "/api/v10", "/api/v2", "/b", ""];
    check_index(
        &r,
        &ix.path,
        &iid,
        model(&items, "path"),
        path_probes,
        path_probes,
        false,
    );
    let word_probes: &[&str] = &["api", "v1", "v10", "users", "static", "nope", "v"];
    check_index(
        &r,
        &ix.words,
        &iid,
        model(&items, "words"),
        word_probes,
        word_probes,
        false,
    );
    let api: Vec<String> = r
        .iter(&ix.words, "api")
        .unwrap()
        .map(|i| i.id.clone())
        .collect();
    assert_eq!(api, ["a", "ab", "abc", "z\0z"]);
    assert_eq!(r.count_prefix(&ix.words, "v1").unwrap(), 3, "v1, v1, v10");

    // Byte strings.
    let blob_probes: &[&[u8]] = &[&[], &[0], &[0, 1], &[0, 1, 0], &[0xFF], &[1]];
    check_index(
        &r,
        &ix.blob,
        &iid,
        model(&items, "blob"),
        blob_probes,
        blob_probes,
        false,
    );
}

#[test]
fn longest_prefix_on_string_indexes() {
    let (db, ix) = item_db();
    let items = sample_items();
    load(&db, &ix, &items);
    let r = db.read();
    let lp =
        |idx: &Index<Item, str>, k: &str| r.longest_prefix(idx, k).unwrap().map(|i| i.path.clone());
    // Non-unique "path" index.
    assert_eq!(
        lp(&ix.path, "/api/v1/users/42").as_deref(),
        Some("/api/v1/users")
    );
    assert_eq!(lp(&ix.path, "/api/v1/user").as_deref(), Some("/api/v1"));
    assert_eq!(lp(&ix.path, "/api/v10").as_deref(), Some("/api/v10"));
    assert_eq!(lp(&ix.path, "/api/v2").as_deref(), Some("/api"));
    assert_eq!(lp(&ix.path, "/apix").as_deref(), Some("/api"));
    assert_eq!(lp(&ix.path, "/x").as_deref(), Some("/"));
    assert_eq!(lp(&ix.path, "x"), None);
    assert_eq!(lp(&ix.path, ""), None);
    // Unique primary index: "" is a key, so everything has a prefix.
    let lpid = |k: &str| r.longest_prefix(&ix.id, k).unwrap().map(|i| i.id.clone());
    assert_eq!(lpid("abcdef").as_deref(), Some("abc"));
    assert_eq!(lpid("abx").as_deref(), Some("ab"));
    assert_eq!(lpid("ax").as_deref(), Some("a"));
    assert_eq!(lpid("q").as_deref(), Some(""));
    assert_eq!(lpid("z\0zz").as_deref(), Some("z\0z"));
    assert_eq!(lpid("z\0").as_deref(), Some(""));
}

#[test]
fn string_ci_matches_any_case() {
    let (db, ix) = item_db();
    let items = sample_items();
    load(&db, &ix, &items);
    let r = db.read();
    let ids =
        |k: &str| -> Vec<String> { r.iter(&ix.name, k).unwrap().map(|i| i.id.clone()).collect() };
    assert_eq!(ids("alice"), ["a", "ab"]);
    assert_eq!(ids("ALICE"), ["a", "ab"]);
    assert_eq!(ids("aLiCe"), ["a", "ab"]);
    assert_eq!(ids("BOB"), ["abc", "b"]);
    assert_eq!(r.get(&ix.name, "bOb").unwrap().unwrap().id, "abc");
    assert_eq!(r.count(&ix.name, "Alice").unwrap(), 2);
    assert_eq!(r.count_prefix(&ix.name, "AL").unwrap(), 2);
    assert_eq!(r.count_prefix(&ix.name, "b").unwrap(), 2);
    assert_eq!(
        r.longest_prefix(&ix.name, "BOBBY").unwrap().unwrap().id,
        "abc"
    );
    let probes: &[&str] = &["ALICE", "alice", "Bob", "ZED\0", "", "c", "A"];
    check_index(
        &r,
        &ix.name,
        &iid,
        model(&items, "name"),
        probes,
        probes,
        true,
    );
}

#[test]
fn string_ci_prefix_with_final_sigma() {
    let (db, ix) = item_db();
    let mut w = db.write(&[&ix.t]);
    let mut it = item("greek");
    it.name = "ΟΔΟΣΑ".into();
    w.insert(&ix.t, it).unwrap();
    // Every stored name starting (case-insensitively) with "ΟΔΟΣ" ...
    assert_eq!(w.count_prefix(&ix.name, "οδοσ").unwrap(), 1);
    // ... must be found whatever the case of the query.
    assert_eq!(w.count_prefix(&ix.name, "ΟΔΟΣ").unwrap(), 1);
}

#[test]
fn optional_indexers_skip_missing_fields() {
    let (db, ix) = item_db();
    let items = sample_items();
    load(&db, &ix, &items);
    let r = db.read();
    // email: optional_string (and unique). "ab" has none.
    assert_eq!(r.index_len(&ix.email).unwrap(), items.len() - 1);
    assert!(r.all(&ix.email).unwrap().all(|i| i.id != "ab"));
    assert_eq!(r.get(&ix.email, "bob@x").unwrap().unwrap().id, "abc");
    assert_eq!(r.get(&ix.email, "").unwrap().unwrap().id, "");
    // score: optional value. "abc" has none.
    assert_eq!(r.index_len(&ix.score).unwrap(), items.len() - 1);
    assert_eq!(r.count(&ix.score, &90).unwrap(), 1);
    let scores: Vec<Option<i32>> = r.all(&ix.score).unwrap().map(|i| i.score).collect();
    assert_eq!(
        scores,
        [Some(i32::MIN), Some(-5), Some(50), Some(51), Some(90)]
    );
    let email_probes: &[&str] = &["", "alice@x", "b@x", "bob@x", "c@x", "z\0@x", "z"];
    check_index(
        &r,
        &ix.email,
        &iid,
        model(&items, "email"),
        email_probes,
        email_probes,
        false,
    );
    let score_probes: &[&i32] = &[&i32::MIN, &-6, &-5, &0, &50, &51, &90, &91, &i32::MAX];
    check_index(
        &r,
        &ix.score,
        &iid,
        model(&items, "score"),
        score_probes,
        &[],
        false,
    );
    // Setting the field later adds the object; clearing it removes it.
    let mut w = db.write(&[&ix.t]);
    let mut abc = (*w.get(&ix.id, "abc").unwrap().unwrap()).clone();
    abc.score = Some(7);
    abc.email = None;
    w.insert(&ix.t, abc).unwrap();
    assert_eq!(w.index_len(&ix.score).unwrap(), items.len());
    assert_eq!(w.index_len(&ix.email).unwrap(), items.len() - 2);
    assert!(w.get(&ix.email, "bob@x").unwrap().is_none());
    assert_eq!(w.get(&ix.score, &7).unwrap().unwrap().id, "abc");
}

#[test]
fn multi_value_strings_index_each_value_once() {
    let (db, ix) = item_db();
    let items = sample_items();
    load(&db, &ix, &items);
    let r = db.read();
    let tagged =
        |t: &str| -> Vec<String> { r.iter(&ix.tags, t).unwrap().map(|i| i.id.clone()).collect() };
    assert_eq!(tagged("ab"), ["a", "ab"]);
    assert_eq!(
        tagged("x"),
        ["a", "ab"],
        "\"ab\" lists x twice but is indexed once"
    );
    assert_eq!(tagged("abc"), ["a", "b"]);
    assert_eq!(r.count(&ix.tags, "x").unwrap(), 2);
    // Entries: a: 3, ab: 2 (x deduplicated), b: 1, "": 1, z\0z: 2.
    assert_eq!(r.index_len(&ix.tags).unwrap(), 9);
    let probes: &[&str] = &["", "a", "a\0b", "ab", "abc", "x", "y"];
    check_index(
        &r,
        &ix.tags,
        &iid,
        model(&items, "tags"),
        probes,
        probes,
        false,
    );
    let ports: &[&u16] = &[&0, &80, &443, &444, &8080, &65535];
    check_index(
        &r,
        &ix.ports,
        &iid,
        model(&items, "ports"),
        ports,
        &[],
        false,
    );
    assert_eq!(r.count(&ix.ports, &80).unwrap(), 2);
    // The multi-value unique index.
    let al: &[&str] = &["", "al", "ally", "b", "bo", "z\0", "zz", "a"];
    check_index(
        &r,
        &ix.aliases,
        &iid,
        model(&items, "aliases"),
        al,
        al,
        false,
    );
    assert_eq!(r.get(&ix.aliases, "ally").unwrap().unwrap().id, "a");
    assert_eq!(r.get(&ix.aliases, "bo").unwrap().unwrap().id, "ab");
    assert_eq!(r.count_prefix(&ix.aliases, "al").unwrap(), 2);
    // Updating drops the old values.
    let mut w = db.write(&[&ix.t]);
    let mut a = (*w.get(&ix.id, "a").unwrap().unwrap()).clone();
    a.tags = vec!["y".into(), "y".into()];
    w.insert(&ix.t, a).unwrap();
    assert_eq!(w.count(&ix.tags, "x").unwrap(), 1);
    assert_eq!(w.count(&ix.tags, "y").unwrap(), 1);
    assert_eq!(w.index_len(&ix.tags).unwrap(), 7);
}

#[test]
fn map_keys_and_map_entries_for_btreemap_and_hashmap() {
    let (db, ix) = item_db();
    let items = sample_items();
    load(&db, &ix, &items);
    let r = db.read();
    let ids = |it: pandodb::RowIter<Item>| -> Vec<String> { it.map(|i| i.id.clone()).collect() };
    // BTreeMap.
    assert_eq!(
        ids(r.iter(&ix.label_keys, "env").unwrap()),
        ["a", "ab", "b", "z\0z"]
    );
    assert_eq!(
        ids(r.iter(&ix.labels, &(s("env"), s("prod"))).unwrap()),
        ["a", "b"]
    );
    assert_eq!(
        ids(r.iter(&ix.labels.leading(), &(s("env"),)).unwrap()),
        ["ab", "a", "b", "z\0z"]
    );
    assert_eq!(
        ids(r.prefix(&ix.labels, &(s("env"), s("pro"))).unwrap()),
        ["a", "b", "z\0z"]
    );
    let lk: &[&str] = &["", "env", "env\0", "team", "x"];
    check_index(
        &r,
        &ix.label_keys,
        &iid,
        model(&items, "label_keys"),
        lk,
        lk,
        false,
    );
    let le = [
        (s("env"), s("prod")),
        (s("env"), s("dev")),
        (s("env\0"), s("prod")),
        (s(""), s("")),
    ];
    let le: Vec<&(String, String)> = le.iter().collect();
    check_index(
        &r,
        &ix.labels,
        &iid,
        model(&items, "labels"),
        &le,
        &le,
        false,
    );
    // HashMap.
    assert_eq!(
        ids(r.iter(&ix.meta_keys, "os").unwrap()),
        ["a", "ab", "b", "z\0z"]
    );
    assert_eq!(ids(r.iter(&ix.meta_keys, "arch").unwrap()), ["a", "b"]);
    assert_eq!(
        ids(r.iter(&ix.meta, &(s("os"), s("linux"))).unwrap()),
        ["a", "b"]
    );
    assert_eq!(r.count(&ix.meta.leading(), &(s("arch"),)).unwrap(), 2);
    let mk: &[&str] = &["arch", "os", "x"];
    check_index(
        &r,
        &ix.meta_keys,
        &iid,
        model(&items, "meta_keys"),
        mk,
        mk,
        false,
    );
    let me = [
        (s("os"), s("linux")),
        (s("os"), s("")),
        (s("arch"), s("arm")),
    ];
    let me: Vec<&(String, String)> = me.iter().collect();
    check_index(&r, &ix.meta, &iid, model(&items, "meta"), &me, &me, false);
    let lead = [(s("os"),), (s("arch"),), (s("zz"),)];
    let lead: Vec<&(String,)> = lead.iter().collect();
    check_index(
        &r,
        &ix.meta.leading(),
        &iid,
        model(&items, "meta"),
        &lead,
        &lead,
        false,
    );
}

#[test]
fn compound_indexes_by_full_key_and_leading_components() {
    let (db, ix) = item_db();
    let items = sample_items();
    load(&db, &ix, &items);
    let r = db.read();
    let ids = |it: pandodb::RowIter<Item>| -> Vec<String> { it.map(|i| i.id.clone()).collect() };
    assert_eq!(ids(r.iter(&ix.rz, &(s("eu"), -3)).unwrap()), ["a", "b"]);
    assert_eq!(
        ids(r.iter(&ix.rz.leading(), &(s("eu"),)).unwrap()),
        ["a", "b", "ab"]
    );
    assert_eq!(
        r.count(&ix.rz.leading(), &(s("eu"),)).unwrap(),
        3,
        "\"eu\\0\" is not \"eu\""
    );
    assert_eq!(
        r.count_prefix(&ix.rz.leading(), &(s("eu"),)).unwrap(),
        4,
        "prefix \"eu\" matches \"eu\\0\""
    );
    assert_eq!(
        ids(r.iter(&ix.rzr.leading2(), &(s("eu"), 4)).unwrap()),
        ["ab"]
    );
    assert_eq!(ids(r.iter(&ix.rzr, &(s("eu"), -3, 1)).unwrap()), ["a", "b"]);
    assert_eq!(
        ids(r.iter(&ix.rzr.leading(), &(s("us"),)).unwrap()),
        ["abc"]
    );
    assert_eq!(
        r.first(&ix.rz.leading(), &(s("eu"),)).unwrap().unwrap().id,
        "a"
    );
    assert_eq!(
        r.last(&ix.rz.leading(), &(s("eu"),)).unwrap().unwrap().id,
        "ab"
    );
    // Negative second components sort first.
    let ge: Vec<String> = ids(r.lower_bound(&ix.rz, &(s("eu"), -4)).unwrap());
    assert_eq!(ge, ["a", "b", "ab", "z\0z", "abc"]);

    let rz = [
        (s("eu"), -3),
        (s("eu"), 4),
        (s("eu"), 0),
        (s(""), i16::MIN),
        (s("us"), -3),
        (s("eu\0"), 4),
    ];
    let rz: Vec<&(String, i16)> = rz.iter().collect();
    check_index(&r, &ix.rz, &iid, model(&items, "rz"), &rz, &rz, false);
    let l1 = [(s("eu"),), (s(""),), (s("e"),), (s("us"),), (s("eu\0"),)];
    let l1: Vec<&(String,)> = l1.iter().collect();
    check_index(
        &r,
        &ix.rz.leading(),
        &iid,
        model(&items, "rz"),
        &l1,
        &l1,
        false,
    );
    check_index(
        &r,
        &ix.rzr.leading(),
        &iid,
        model(&items, "rzr"),
        &l1,
        &l1,
        false,
    );
    let l2 = [(s("eu"), -3), (s("eu"), 4), (s("us"), -3), (s("eu"), 5)];
    let l2: Vec<&(String, i16)> = l2.iter().collect();
    check_index(
        &r,
        &ix.rzr.leading2(),
        &iid,
        model(&items, "rzr"),
        &l2,
        &l2,
        false,
    );
    let full = [
        (s("eu"), -3, 1u8),
        (s("eu"), -3, 0),
        (s("eu"), 4, 2),
        (s(""), i16::MIN, 255),
    ];
    let full: Vec<&(String, i16, u8)> = full.iter().collect();
    check_index(&r, &ix.rzr, &iid, model(&items, "rzr"), &full, &full, false);
}

#[test]
fn compound_multi_indexes_the_cartesian_product() {
    let (db, ix) = item_db();
    let items = sample_items();
    load(&db, &ix, &items);
    let r = db.read();
    let ids = |it: pandodb::RowIter<Item>| -> Vec<String> { it.map(|i| i.id.clone()).collect() };
    // a: {red, blue} x {1, 2} = 4 entries; ab: {red} x {2, 3} = 2; abc: {} x {9} = 0;
    // b: {blue, green} x {1} = 2; "": {""} x {0} = 1; z\0z: {red} x {} = 0.
    assert_eq!(r.index_len(&ix.cs).unwrap(), 9);
    assert_eq!(ids(r.iter(&ix.cs, &(s("red"), 2)).unwrap()), ["a", "ab"]);
    assert_eq!(ids(r.iter(&ix.cs, &(s("blue"), 1)).unwrap()), ["a", "b"]);
    assert_eq!(
        ids(r.iter(&ix.cs, &(s("green"), 2)).unwrap()),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(r.iter(&ix.cs.leading(), &(s("red"),)).unwrap()),
        ["a", "a", "ab", "ab"]
    );
    let p = [
        (s("red"), 1u8),
        (s("red"), 2),
        (s("red"), 3),
        (s("blue"), 1),
        (s(""), 0),
        (s("green"), 1),
    ];
    let p: Vec<&(String, u8)> = p.iter().collect();
    check_index(&r, &ix.cs, &iid, model(&items, "cs"), &p, &p, false);
    let l = [
        (s("red"),),
        (s("blue"),),
        (s("green"),),
        (s(""),),
        (s("re"),),
    ];
    let l: Vec<&(String,)> = l.iter().collect();
    check_index(
        &r,
        &ix.cs.leading(),
        &iid,
        model(&items, "cs"),
        &l,
        &l,
        false,
    );
}

#[test]
fn conditional_and_field_set_indexes() {
    let (db, ix) = item_db();
    let items = sample_items();
    load(&db, &ix, &items);
    let r = db.read();
    let ids = |it: pandodb::RowIter<Item>| -> Vec<String> { it.map(|i| i.id.clone()).collect() };
    // Every object has exactly one key in each.
    assert_eq!(r.index_len(&ix.high).unwrap(), items.len());
    assert_eq!(r.index_len(&ix.has_nick).unwrap(), items.len());
    assert_eq!(ids(r.iter(&ix.high, &true).unwrap()), ["a", "b"]);
    assert_eq!(r.count(&ix.high, &false).unwrap(), 4);
    assert_eq!(
        ids(r.iter(&ix.has_nick, &true).unwrap()),
        ["a", "abc", "z\0z"],
        "Some(\"\") is set"
    );
    assert_eq!(ids(r.iter(&ix.has_nick, &false).unwrap()), ["", "ab", "b"]);
    let b: &[&bool] = &[&false, &true];
    check_index(&r, &ix.high, &iid, model(&items, "high"), b, b, false);
    check_index(
        &r,
        &ix.has_nick,
        &iid,
        model(&items, "has_nick"),
        b,
        b,
        false,
    );
}

#[test]
fn uuid_index_and_hex_prefix_queries() {
    let (db, ix) = item_db();
    let items = sample_items();
    load(&db, &ix, &items);
    let r = db.read();
    let hex = |i: &Item| i.uuid.to_string().replace('-', "");
    let by_prefix = |p: &str| -> Vec<String> {
        r.uuid_prefix(&ix.uuid, p)
            .unwrap()
            .map(|i| i.id.clone())
            .collect()
    };
    let model_prefix = |p: &str| -> Vec<String> {
        let p = p.replace('-', "").to_lowercase();
        let mut v: Vec<&Item> = items.iter().filter(|i| hex(i).starts_with(&p)).collect();
        v.sort_by_key(|i| i.uuid);
        v.iter().map(|i| i.id.clone()).collect()
    };
    for p in [
        "",
        "3",
        "3f",
        "3fa",
        "3fa8",
        "3fa85",
        "3FA9",
        "3fb",
        "3fb0",
        "f",
        "ff",
        "fff",
        "0",
        "00",
        "1",
        "4",
        "3fa85f64-57",
        "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "3fa85f64-5717-4562-b3fc-2c963f66afa7",
        "ffffffffffffffffffffffffffffffff",
        "fffffffffffffffffffffffffffffff",
    ] {
        assert_eq!(by_prefix(p), model_prefix(p), "uuid_prefix({p:?})");
    }
    assert_eq!(
        by_prefix("3fa"),
        ["z\0z", "a", "ab"],
        "odd length: 3fa8.. and 3fa9.."
    );
    assert_eq!(by_prefix("3fa8"), ["z\0z", "a"], "even length");
    assert_eq!(by_prefix("f"), ["b"], "odd length at the top nibble");
    assert!(matches!(
        r.uuid_prefix(&ix.uuid, "xyz"),
        Err(Error::InvalidKey(_))
    ));
    assert!(matches!(
        r.uuid_prefix(&ix.uuid, &"0".repeat(33)),
        Err(Error::InvalidKey(_))
    ));
    let u = uuid("3fa85f64-5717-4562-b3fc-2c963f66afa6");
    assert_eq!(r.get(&ix.uuid, &u).unwrap().unwrap().id, "a");
    assert_eq!(u.to_string(), "3fa85f64-5717-4562-b3fc-2c963f66afa6");
    let probes: Vec<Uuid> = items
        .iter()
        .map(|i| i.uuid)
        .chain([uuid(&"1".repeat(32))])
        .collect();
    let probes: Vec<&Uuid> = probes.iter().collect();
    check_index(
        &r,
        &ix.uuid,
        &iid,
        model(&items, "uuid"),
        &probes,
        &probes,
        false,
    );
}

// ---------------------------------------------------------------------------
// Unique enforcement
// ---------------------------------------------------------------------------

fn expect_violation(r: pandodb::Result<Option<Arc<Item>>>, index: &str) -> Error {
    match r {
        Err(e @ Error::UniqueViolation { .. }) => {
            let Error::UniqueViolation {
                table, index: got, ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(table, "item");
            assert_eq!(got, index);
            e
        }
        other => panic!("expected a unique violation on {index}, got {other:?}"),
    }
}

#[test]
fn unique_violation_leaves_the_transaction_exactly_as_it_was() {
    let (db, ix) = item_db();
    let items = sample_items();
    load(&db, &ix, &items);
    let mut w = db.write(&[&ix.t]);
    // Some uncommitted writes first, so "as it was" includes them.
    let mut fresh = item("fresh");
    fresh.email = Some("fresh@x".into());
    fresh.aliases = vec!["fr".into()];
    fresh.uuid = uuid(&"5".repeat(32));
    w.insert(&ix.t, fresh.clone()).unwrap();
    let before = dump(&w, &ix);
    let mut expected = items.clone();
    expected.push(fresh.clone());
    check_consistent(&w, &ix, &expected);

    // New object, email held by "a".
    let mut x = item("new1");
    x.email = Some("alice@x".into());
    x.uuid = uuid(&"6".repeat(32));
    let e = expect_violation(w.insert(&ix.t, x), "email");
    let shown = e.to_string();
    assert!(shown.contains("item") && shown.contains("email"), "{shown}");
    assert_eq!(dump(&w, &ix), before);

    // New object, uuid held by the uncommitted "fresh".
    let mut x = item("new2");
    x.uuid = fresh.uuid;
    expect_violation(w.insert(&ix.t, x), "uuid");
    assert_eq!(dump(&w, &ix), before);

    // Multi-value unique: one of several aliases is held by another object.
    let mut x = item("new3");
    x.uuid = uuid(&"7".repeat(32));
    x.aliases = vec!["zz-free".into(), "ally".into()];
    expect_violation(w.insert(&ix.t, x), "aliases");
    assert_eq!(dump(&w, &ix), before);

    // Update of an existing object that steals another's key: the old
    // version must stay fully indexed.
    let mut b = (*w.get(&ix.id, "b").unwrap().unwrap()).clone();
    b.email = Some("bob@x".into());
    b.tags = vec!["changed".into()];
    expect_violation(w.insert(&ix.t, b), "email");
    assert_eq!(dump(&w, &ix), before);
    check_consistent(&w, &ix, &expected);

    // Committing after failures publishes exactly the successful writes.
    w.commit().unwrap();
    check_consistent(&db.read(), &ix, &expected);
}

#[test]
fn updates_may_keep_their_own_unique_keys() {
    let (db, ix) = item_db();
    let mut items = sample_items();
    load(&db, &ix, &items);
    let mut w = db.write(&[&ix.t]);
    // Same primary key, same email/uuid/aliases, other fields changed.
    let mut a = items[0].clone();
    a.name = "Alicia".into();
    a.tags = vec!["new".into()];
    let old = w.insert(&ix.t, a.clone()).unwrap().expect("replaces");
    assert_eq!(*old, items[0]);
    items[0] = a.clone();
    check_consistent(&w, &ix, &items);
    // Reorder / repeat its own multi-value unique keys.
    a.aliases = vec!["ally".into(), "al".into(), "al".into()];
    w.insert(&ix.t, a.clone()).unwrap();
    items[0] = a.clone();
    // Give up one alias, take a free one.
    a.aliases = vec!["ally".into(), "new-alias".into()];
    w.insert(&ix.t, a.clone()).unwrap();
    items[0] = a.clone();
    check_consistent(&w, &ix, &items);
    // The freed alias is now free for someone else.
    let mut x = item("x");
    x.aliases = vec!["al".into(), "al".into()];
    x.uuid = uuid(&"9".repeat(32));
    w.insert(&ix.t, x.clone()).unwrap();
    items.push(x);
    // A key is swapped between two objects through a delete.
    let mut b = items[3].clone();
    assert_eq!(b.id, "b");
    w.delete(&ix.t, &items[0]).unwrap();
    b.email = Some("alice@x".into());
    w.insert(&ix.t, b.clone()).unwrap();
    items.remove(0);
    items[2] = b;
    check_consistent(&w, &ix, &items);
    w.commit().unwrap();
    check_consistent(&db.read(), &ix, &items);
}

#[test]
fn case_insensitive_unique_index_conflicts_across_case() {
    #[derive(Debug)]
    struct User {
        id: u32,
        login: String,
    }
    let mut s = Schema::builder();
    let mut t = s.table::<User>("user");
    let _id = t.primary("id", Indexer::value(|u: &User| u.id));
    let login = t.unique("login", Indexer::string_ci(|u: &User| u.login.as_str()));
    let t = s.add(t).unwrap();
    let db = Db::new(s.build().unwrap());
    let mut w = db.write(&[&t]);
    w.insert(
        &t,
        User {
            id: 1,
            login: "Ann".into(),
        },
    )
    .unwrap();
    let e = w
        .insert(
            &t,
            User {
                id: 2,
                login: "aNN".into(),
            },
        )
        .unwrap_err();
    assert!(
        matches!(&e, Error::UniqueViolation { table, index, .. } if table == "user" && index == "login")
    );
    w.insert(
        &t,
        User {
            id: 1,
            login: "ANN".into(),
        },
    )
    .unwrap();
    assert_eq!(w.get(&login, "ann").unwrap().unwrap().login, "ANN");
    assert_eq!(w.len(&t).unwrap(), 1);
}

#[test]
fn primary_indexer_without_exactly_one_key_is_missing_key() {
    #[derive(Debug)]
    struct Opt {
        id: Option<String>,
        tags: Vec<String>,
    }
    let mut s = Schema::builder();
    let mut t = s.table::<Opt>("opt");
    let _id = t.primary(
        "maybe_id",
        Indexer::optional_string(|o: &Opt| o.id.as_deref()),
    );
    let t = s.add(t).unwrap();
    let mut s2 = Schema::builder();
    let mut t2 = s2.table::<Opt>("multi");
    let _id2 = t2.primary("tags", Indexer::strings(|o: &Opt| o.tags.as_slice()));
    let t2 = s2.add(t2).unwrap();
    let db = Db::new(s.build().unwrap());
    let db2 = Db::new(s2.build().unwrap());

    let mut w = db.write(&[&t]);
    w.insert(
        &t,
        Opt {
            id: Some("ok".into()),
            tags: vec![],
        },
    )
    .unwrap();
    let none = Opt {
        id: None,
        tags: vec![],
    };
    for e in [
        w.insert(
            &t,
            Opt {
                id: None,
                tags: vec![],
            },
        )
        .unwrap_err(),
        w.delete(&t, &none).unwrap_err(),
    ] {
        match &e {
            Error::MissingKey { table, index, .. } => {
                assert_eq!((table.as_str(), index.as_str()), ("opt", "maybe_id"));
            }
            other => panic!("expected MissingKey, got {other:?}"),
        }
        let shown = e.to_string();
        assert!(
            shown.contains("opt") && shown.contains("maybe_id"),
            "{shown}"
        );
    }
    assert_eq!(w.len(&t).unwrap(), 1);

    let mut w2 = db2.write(&[&t2]);
    let two = Opt {
        id: None,
        tags: vec!["a".into(), "b".into()],
    };
    assert!(matches!(w2.insert(&t2, two), Err(Error::MissingKey { .. })));
    let zero = Opt {
        id: None,
        tags: vec![],
    };
    assert!(matches!(
        w2.insert(&t2, zero),
        Err(Error::MissingKey { .. })
    ));
    // The same value twice is one key.
    w2.insert(
        &t2,
        Opt {
            id: None,
            tags: vec!["a".into(), "a".into()],
        },
    )
    .unwrap();
    assert_eq!(w2.len(&t2).unwrap(), 1);
}

#[test]
fn error_display_names_what_and_where() {
    let (db, ix) = item_db();
    // Another schema's table.
    let mut s = Schema::builder();
    let mut other = s.table::<Item>("elsewhere");
    let _ = other.primary("id", Indexer::string(|i: &Item| i.id.as_str()));
    let other = s.add(other).unwrap();
    let _ = s.build().unwrap();
    let mut w = db.write(&[]);
    let e = w.insert(&ix.t, item("a")).unwrap_err();
    assert_eq!(e, Error::TableNotLocked("item".into()));
    assert!(e.to_string().contains("item"), "{e}");
    let e = w.insert(&other, item("a")).unwrap_err();
    assert_eq!(e, Error::ForeignHandle("elsewhere".into()));
    assert!(e.to_string().contains("elsewhere"), "{e}");
    let e = Error::InvalidKey("bad uuid".into());
    assert!(e.to_string().contains("bad uuid"));
    let e = Error::UniqueViolation {
        table: "t1".into(),
        index: "i1".into(),
        key: "k".into(),
    };
    assert!(e.to_string().contains("t1.i1"), "{e}");
}

// ---------------------------------------------------------------------------
// Deletes
// ---------------------------------------------------------------------------

#[test]
fn deletes_return_counts_and_keep_every_index_consistent() {
    let (db, ix) = item_db();
    let mut items = sample_items();
    load(&db, &ix, &items);
    let mut w = db.write(&[&ix.t]);

    // delete by object (only the primary key matters).
    let gone = w.delete(&ix.t, &item("abc")).unwrap().expect("existed");
    assert_eq!(gone.name, "bob");
    items.retain(|i| i.id != "abc");
    check_consistent(&w, &ix, &items);
    assert!(
        w.delete(&ix.t, &item("abc")).unwrap().is_none(),
        "already gone"
    );
    assert!(w.delete(&ix.t, &item("never")).unwrap().is_none());

    // delete_all on a non-unique index.
    assert_eq!(w.delete_all(&ix.high, &true).unwrap(), 2);
    items.retain(|i| i.score.unwrap_or(0) <= 50);
    check_consistent(&w, &ix, &items);
    assert_eq!(w.delete_all(&ix.high, &true).unwrap(), 0);

    // delete_all on a multi-value index (each object has the key once).
    assert_eq!(w.delete_all(&ix.tags, "x").unwrap(), 1);
    items.retain(|i| !i.tags.iter().any(|t| t == "x"));
    check_consistent(&w, &ix, &items);

    // delete_prefix on the primary index.
    let mut more = Vec::new();
    for id in ["k1", "k2", "k10", "l"] {
        let mut it = item(id);
        it.uuid = Uuid([
            id.len() as u8,
            id.as_bytes()[id.len() - 1],
            1,
            2,
            3,
            4,
            5,
            6,
            7,
            8,
            9,
            10,
            11,
            12,
            13,
            14,
        ]);
        more.push(it);
    }
    for it in &more {
        w.insert(&ix.t, it.clone()).unwrap();
    }
    items.extend(more);
    check_consistent(&w, &ix, &items);
    assert_eq!(w.delete_prefix(&ix.id, "k1").unwrap(), 2);
    items.retain(|i| !i.id.starts_with("k1"));
    check_consistent(&w, &ix, &items);

    // delete_prefix on a compound leading component, and on a unique index.
    assert_eq!(w.delete_prefix(&ix.rz.leading(), &(s("eu"),)).unwrap(), 3);
    items.retain(|i| !i.region.starts_with("eu"));
    check_consistent(&w, &ix, &items);
    assert_eq!(w.delete_all(&ix.email, "").unwrap(), 1);
    items.retain(|i| i.email.as_deref() != Some(""));
    check_consistent(&w, &ix, &items);
    assert_eq!(w.delete_prefix(&ix.id, "").unwrap(), items.len());
    items.clear();
    check_consistent(&w, &ix, &items);
    for (name, n, _, _) in dump(&w, &ix) {
        assert_eq!(n, 0, "{name} is empty");
    }

    // Nothing of this is visible before commit; all of it after.
    check_consistent(&db.read(), &ix, &sample_items());
    w.commit().unwrap();
    check_consistent(&db.read(), &ix, &[]);
}

#[test]
fn delete_counts_objects_on_multi_value_indexes() {
    let (db, ix) = item_db();
    let items = sample_items();
    load(&db, &ix, &items);
    let mut w = db.write(&[&ix.t]);
    // Object "a" has tags "ab" and "abc": both match the prefix "ab"; "ab"
    // has "ab", "b" has "abc". Three objects are deleted.
    let n = w.delete_prefix(&ix.tags, "ab").unwrap();
    assert_eq!(w.len(&ix.t).unwrap(), items.len() - 3);
    assert_eq!(n, 3, "delete_prefix returned {n} for 3 deleted objects");
    // Ends this transaction (and its table lock) before the next one.
    drop(w);
    // compound_multi: "a" has (red,1) and (red,2); "ab" has (red,2), (red,3).
    let mut w = db.write(&[&ix.t]);
    let n = w.delete_all(&ix.cs.leading(), &(s("red"),)).unwrap();
    assert_eq!(n, 2, "delete_all returned {n} for 2 deleted objects");
}

#[test]
fn unique_compound_index_get_by_leading_component() {
    #[derive(Debug)]
    struct Slot {
        id: u32,
        host: String,
        port: u16,
    }
    let mut s = Schema::builder();
    let mut t = s.table::<Slot>("slot");
    let _id = t.primary("id", Indexer::value(|x: &Slot| x.id));
    let hp = t.unique(
        "host_port",
        Indexer::value(|x: &Slot| (x.host.clone(), x.port)),
    );
    let t = s.add(t).unwrap();
    let db = Db::new(s.build().unwrap());
    let mut w = db.write(&[&t]);
    w.insert(
        &t,
        Slot {
            id: 1,
            host: "h".into(),
            port: 80,
        },
    )
    .unwrap();
    w.insert(
        &t,
        Slot {
            id: 2,
            host: "h".into(),
            port: 443,
        },
    )
    .unwrap();
    let lead = hp.leading();
    let key = ("h".to_string(),);
    assert_eq!(w.count(&lead, &key).unwrap(), 2);
    assert_eq!(w.iter(&lead, &key).unwrap().count(), 2);
    assert_eq!(w.last(&lead, &key).unwrap().map(|x| x.id), Some(2));
    assert_eq!(w.get(&lead, &key).unwrap().map(|x| x.id), Some(1), "get");
    assert_eq!(
        w.first(&lead, &key).unwrap().map(|x| x.id),
        Some(1),
        "first"
    );
}

#[test]
fn unique_violation_reports_the_key_as_inserted() {
    let (db, ix) = item_db();
    load(&db, &ix, &sample_items());
    let mut w = db.write(&[&ix.t]);
    let mut x = item("new");
    x.email = Some("alice@x".into());
    let e = w.insert(&ix.t, x).unwrap_err();
    assert!(
        matches!(&e, Error::UniqueViolation { key, .. } if key == "alice@x"),
        "{e:?}"
    );
}

#[test]
fn schema_tables_must_come_from_this_builder_in_declaration_order() {
    // A table declared by another builder.
    let mut s1 = Schema::builder();
    let mut s2 = Schema::builder();
    let mut foreign = s2.table::<Rec>("foreign");
    let _ = foreign.primary("id", Indexer::string(|r: &Rec| r.id.as_str()));
    let m = schema_err(s1.add(foreign));
    assert!(m.contains("foreign") && m.contains("another"), "{m}");

    // Out of declaration order.
    let mut s = Schema::builder();
    let mut first = s.table::<Rec>("first");
    let _ = first.primary("id", Indexer::string(|r: &Rec| r.id.as_str()));
    let mut second = s.table::<Rec>("second");
    let _ = second.primary("id", Indexer::string(|r: &Rec| r.id.as_str()));
    let m = schema_err(s.add(second));
    assert!(m.contains("second") && m.contains("order"), "{m}");
    s.add(first).unwrap();
    schema_err(s.build());
}

// ---------------------------------------------------------------------------
// Borrowed (`*_ref`) queries equal the owned ones, from both ends
// ---------------------------------------------------------------------------

/// Drains `it` taking from the front or the back as `pattern`'s bits say,
/// checking the exact length before every step.
fn drain_mixed<T: Clone>(
    mut it: impl DoubleEndedIterator<Item = T> + ExactSizeIterator,
    pattern: u64,
) -> Vec<T> {
    let (mut front, mut back) = (Vec::new(), Vec::new());
    let mut bit = 0;
    loop {
        let left = it.len();
        let next = if (pattern >> (bit % 64)) & 1 == 0 {
            it.next().map(|x| front.push(x))
        } else {
            it.next_back().map(|x| back.push(x))
        };
        bit += 1;
        if next.is_none() {
            assert_eq!(left, 0, "len() said {left} but the iterator ended");
            break;
        }
        assert_eq!(it.len(), left - 1, "len() after a step");
    }
    back.reverse();
    front.extend(back);
    front
}

#[test]
fn borrowed_queries_match_owned_ones_from_both_ends() {
    let mut s = Schema::builder();
    let mut t = s.table::<Rec>("refs");
    let by_id = t.primary("id", Indexer::string(|r: &Rec| r.id.as_str()));
    let by_n = t.index("n", Indexer::value(|r: &Rec| r.n));
    let table = s.add(t).unwrap();
    let db = Db::new(s.build().unwrap());
    let ids = |v: Vec<Rec>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let mut pad = Vec::new();
    for rows in [0usize, 1, 2, 7, 8, 9, 17, 40] {
        let mut w = db.write(&[&table]);
        w.delete_all(&by_id, "").ok();
        for i in 0..rows {
            let rec = Rec {
                id: format!("r{i:03}"),
                n: (i % 3) as i64,
            };
            w.insert(&table, rec).unwrap();
            // Spread the objects out in memory (every other row), so the
            // read-ahead of scattered objects runs as well as the plain path.
            if i % 2 == 0 {
                pad.push(vec![0u8; 4096]);
            }
        }
        w.commit().unwrap();
        let r = db.read();
        let all_ids: Vec<String> = (0..rows).map(|i| format!("r{i:03}")).collect();
        for pattern in [
            0u64,
            u64::MAX,
            0xAAAA_AAAA_AAAA_AAAA,
            0x0F0F_0F0F_0F0F_0F0F,
            0x1,
            0x8000_0000_0000_0000,
            0x5bd1_e995_ab12_cd34,
        ] {
            let owned = ids(drain_mixed(
                r.all(&by_id).unwrap().map(|o| (*o).clone()),
                pattern,
            ));
            let refs = ids(drain_mixed(r.all_ref(&by_id).unwrap().cloned(), pattern));
            assert_eq!(refs, owned, "all_ref, {rows} rows, pattern {pattern:x}");
            assert_eq!(owned, all_ids, "all, {rows} rows, pattern {pattern:x}");
            for n in 0..3 {
                let owned = ids(drain_mixed(
                    r.iter(&by_n, &n).unwrap().map(|o| (*o).clone()),
                    pattern,
                ));
                let refs = ids(drain_mixed(
                    r.iter_ref(&by_n, &n).unwrap().cloned(),
                    pattern,
                ));
                assert_eq!(
                    refs, owned,
                    "iter_ref n={n}, {rows} rows, pattern {pattern:x}"
                );
                let want: Vec<String> = (0..rows)
                    .filter(|i| (i % 3) as i64 == n)
                    .map(|i| format!("r{i:03}"))
                    .collect();
                assert_eq!(owned, want, "iter n={n}, {rows} rows, pattern {pattern:x}");
            }
            for lo in ["", "r005", "r0395", "s"] {
                let owned = ids(drain_mixed(
                    r.lower_bound(&by_id, lo).unwrap().map(|o| (*o).clone()),
                    pattern,
                ));
                let refs = ids(drain_mixed(
                    r.lower_bound_ref(&by_id, lo).unwrap().cloned(),
                    pattern,
                ));
                assert_eq!(
                    refs, owned,
                    "lower_bound_ref {lo:?}, {rows} rows, pattern {pattern:x}"
                );
                let want: Vec<String> = all_ids
                    .iter()
                    .filter(|id| id.as_str() >= lo)
                    .cloned()
                    .collect();
                assert_eq!(
                    owned, want,
                    "lower_bound {lo:?}, {rows} rows, pattern {pattern:x}"
                );
            }
        }
        // Front-only iteration returns everything in order.
        let all: Vec<String> = r.all_ref(&by_id).unwrap().map(|x| x.id.clone()).collect();
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(all, sorted);
        assert_eq!(all.len(), rows);
    }
}
