//! Queries across indexes (`Filter`, `Query::select`) against a model.
//!
//! One table with a string primary key, a multi-value index (`tags`, and
//! the same values again through a custom indexer), two non-unique single-value
//! indexes (`color`, `size`) and a unique one (`code`). Random writes go to
//! a write transaction; random filters — keys and prefixes of every index,
//! set matches of the tag index, nested all-of and any-of — are answered by
//! the write transaction (its own uncommitted writes included), then, after
//! the commit, by a read transaction; each result must equal filtering the
//! model's rows, in primary-key order, and `count` / `select_count` must
//! agree. Watches taken with `select_watch` must fire on a commit that
//! changes the result.
//!
//! `PROPTEST_CASES=N` sets the number of cases (default 256).
//! Run: `cargo test --release --test select`

use std::collections::BTreeMap;
use std::sync::Arc;

use pandodb::{Db, Error, Filter, Index, Indexer, Query, Schema, SetMatch, Table};
use proptest::collection::vec;
use proptest::prelude::*;

#[derive(Debug, Clone, PartialEq)]
struct Item {
    id: String,
    tags: Vec<String>,
    color: String,
    size: i64,
    code: String,
}

struct H {
    db: Db,
    t: Table<Item>,
    id: Index<Item, str>,
    tags: Index<Item, str>,
    tags_ci: Index<Item, str>,
    color: Index<Item, str>,
    size: Index<Item, i64>,
    code: Index<Item, str>,
}

fn open() -> H {
    let mut s = Schema::builder();
    let mut t = s.table::<Item>("item");
    let id = t.primary("id", Indexer::string(|i: &Item| i.id.as_str()));
    let tags = t.index("tags", Indexer::strings(|i: &Item| i.tags.as_slice()));
    let tags_ci = t.index(
        "tags_ci",
        Indexer::custom(|i: &Item, k| i.tags.iter().for_each(|t| k.add(t.as_str()))),
    );
    let color = t.index("color", Indexer::string(|i: &Item| i.color.as_str()));
    let size = t.index("size", Indexer::value(|i: &Item| i.size));
    let code = t.unique("code", Indexer::string(|i: &Item| i.code.as_str()));
    let t = s.add(t).unwrap();
    let db = Db::new(s.build().unwrap());
    H {
        db,
        t,
        id,
        tags,
        tags_ci,
        color,
        size,
        code,
    }
}

const TAGS: [&str; 6] = ["a", "ab", "b", "c", "d", ""];
const COLORS: [&str; 4] = ["red", "re", "blue", "green"];

#[derive(Debug, Clone)]
enum Q {
    Tag(usize),
    TagPrefix(&'static str),
    TagCi(usize),
    Color(usize),
    ColorPrefix(&'static str),
    Size(i64),
    Id(u8),
    IdPrefix(&'static str),
    Code(u8),
    Set(SetMatch, Vec<usize>),
    All(Vec<Q>),
    Any(Vec<Q>),
}

fn id_of(n: u8) -> String {
    format!("i{n:02}")
}

fn leaf() -> impl Strategy<Value = Q> {
    let modes = prop_oneof![
        Just(SetMatch::Superset),
        Just(SetMatch::Any),
        Just(SetMatch::Exact),
        Just(SetMatch::Subset),
    ];
    prop_oneof![
        4 => (0..TAGS.len()).prop_map(Q::Tag),
        1 => prop_oneof![Just("a"), Just(""), Just("b"), Just("x")].prop_map(Q::TagPrefix),
        1 => (0..TAGS.len()).prop_map(Q::TagCi),
        2 => (0..COLORS.len()).prop_map(Q::Color),
        1 => prop_oneof![Just("re"), Just("r"), Just("g"), Just("")].prop_map(Q::ColorPrefix),
        2 => (0i64..4).prop_map(Q::Size),
        1 => (0u8..40).prop_map(Q::Id),
        1 => prop_oneof![Just("i0"), Just("i1"), Just("i"), Just("i3")].prop_map(Q::IdPrefix),
        1 => (0u8..40).prop_map(Q::Code),
        3 => (modes, vec(0..TAGS.len(), 0..4)).prop_map(|(m, v)| Q::Set(m, v)),
    ]
}

fn query() -> impl Strategy<Value = Q> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Q::All),
            vec(inner, 0..4).prop_map(Q::Any),
        ]
    })
}

fn filter(h: &H, q: &Q) -> Filter<Item> {
    match q {
        Q::Tag(t) => Filter::key(&h.tags, TAGS[*t]),
        Q::TagPrefix(p) => Filter::prefix(&h.tags, *p),
        Q::TagCi(t) => Filter::key(&h.tags_ci, TAGS[*t]),
        Q::Color(c) => Filter::key(&h.color, COLORS[*c]),
        Q::ColorPrefix(p) => Filter::prefix(&h.color, *p),
        Q::Size(s) => Filter::key(&h.size, s),
        Q::Id(n) => Filter::key(&h.id, id_of(*n).as_str()),
        Q::IdPrefix(p) => Filter::prefix(&h.id, *p),
        Q::Code(n) => Filter::key(&h.code, format!("c{n}").as_str()),
        Q::Set(m, v) => Filter::set(&h.tags, *m, v.iter().map(|t| TAGS[*t])),
        Q::All(v) => Filter::all_of(v.iter().map(|q| filter(h, q))),
        Q::Any(v) => Filter::any_of(v.iter().map(|q| filter(h, q))),
    }
}

fn holds(q: &Q, i: &Item) -> bool {
    let has = |t: &str| i.tags.iter().any(|x| x == t);
    match q {
        Q::Tag(t) | Q::TagCi(t) => has(TAGS[*t]),
        Q::TagPrefix(p) => i.tags.iter().any(|x| x.starts_with(p)),
        Q::Color(c) => i.color == COLORS[*c],
        Q::ColorPrefix(p) => i.color.starts_with(p),
        Q::Size(s) => i.size == *s,
        Q::Id(n) => i.id == id_of(*n),
        Q::IdPrefix(p) => i.id.starts_with(p),
        Q::Code(n) => i.code == format!("c{n}"),
        Q::Set(m, v) => {
            let s: Vec<&str> = v.iter().map(|t| TAGS[*t]).collect();
            match m {
                SetMatch::Superset => s.iter().all(|t| has(t)),
                SetMatch::Any => s.iter().any(|t| has(t)),
                SetMatch::Exact => {
                    !s.is_empty()
                        && s.iter().all(|t| has(t))
                        && i.tags.iter().all(|t| s.contains(&t.as_str()))
                }
                SetMatch::Subset => {
                    !i.tags.is_empty() && i.tags.iter().all(|t| s.contains(&t.as_str()))
                }
            }
        }
        Q::All(v) => v.iter().all(|q| holds(q, i)),
        Q::Any(v) => v.iter().any(|q| holds(q, i)),
    }
}

/// Whether the query names no table (an all-of of nothing, at the top).
fn tableless(q: &Q) -> bool {
    match q {
        Q::All(v) | Q::Any(v) => v.iter().all(tableless),
        _ => false,
    }
}

fn check(h: &H, r: &impl Query, model: &BTreeMap<String, Item>, q: &Q) {
    let f = filter(h, q);
    let got = match r.select(&f) {
        Ok(s) => s,
        Err(Error::InvalidKey(_)) if tableless(q) => return,
        Err(e) => panic!("{q:?}: {e}"),
    };
    let (_, upper) = got.size_hint();
    let got: Vec<String> = got.map(|i| i.id.clone()).collect();
    let want: Vec<String> = model
        .values()
        .filter(|i| holds(q, i))
        .map(|i| i.id.clone())
        .collect();
    assert_eq!(got, want, "{q:?}");
    assert!(
        upper.is_none_or(|u| u >= want.len()),
        "{q:?}: bound {upper:?}"
    );
    assert_eq!(r.select(&f).unwrap().count(), want.len(), "{q:?}");
    assert_eq!(r.select_count(&f).unwrap(), want.len(), "{q:?}");
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8, Vec<usize>, usize, i64),
    Del(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..120, vec(0..TAGS.len(), 0..4), 0..COLORS.len(), 0i64..4)
            .prop_map(|(n, t, c, s)| Op::Put(n, t, c, s)),
        1 => (0u8..120).prop_map(Op::Del),
    ]
}

fn item(n: u8, tags: &[usize], c: usize, s: i64) -> Item {
    Item {
        id: id_of(n),
        tags: tags.iter().map(|t| TAGS[*t].to_string()).collect(),
        color: COLORS[c].to_string(),
        size: s,
        code: format!("c{n}"),
    }
}

fn run(rounds: &[(Vec<Op>, Vec<Q>)]) {
    let h = open();
    let mut model: BTreeMap<String, Item> = BTreeMap::new();
    for (ops, queries) in rounds {
        let before = h.db.read();
        let watches: Vec<_> = queries
            .iter()
            .filter(|q| !tableless(q))
            .map(|q| {
                let (rows, w) = before.select_watch(&filter(&h, q)).unwrap();
                (q, rows.map(|i| i.id.clone()).collect::<Vec<_>>(), w)
            })
            .collect();
        let mut w = h.db.write(&[&h.t]);
        for op in ops {
            match op {
                Op::Put(n, t, c, s) => {
                    let it = item(*n, t, *c, *s);
                    model.insert(it.id.clone(), it.clone());
                    w.insert(&h.t, it).unwrap();
                }
                Op::Del(n) => {
                    model.remove(&id_of(*n));
                    w.delete_all(&h.id, id_of(*n).as_str()).unwrap();
                }
            }
        }
        for q in queries {
            check(&h, &w, &model, q);
        }
        w.commit().unwrap();
        let r = h.db.read();
        for q in queries {
            check(&h, &r, &model, q);
        }
        for (q, seen, watch) in watches {
            let now: Vec<String> = model
                .values()
                .filter(|i| holds(q, i))
                .map(|i| i.id.clone())
                .collect();
            if now != seen {
                assert!(
                    watch.is_fired(),
                    "{q:?}: result changed, watch did not fire"
                );
            }
        }
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn select_matches_model(rounds in vec((vec(op(), 0..60), vec(query(), 1..6)), 1..5)) {
        run(&rounds);
    }
}

/// A table large enough for the seeks to descend and the probes to be
/// warmed many rows ahead: ids 0..1500 with pseudo-random values from
/// `seed`, written in two transactions (queries run on the second one
/// before and after its commit).
fn run_large(seed: u64, queries: &[Q]) {
    let h = open();
    let mut model: BTreeMap<String, Item> = BTreeMap::new();
    let mut x = seed | 1;
    let mut next = |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let id = |n: u64| format!("i{n:04}");
    for round in 0..2 {
        let mut w = h.db.write(&[&h.t]);
        for n in 0..1500u64 {
            if round == 1 && next(3) != 0 {
                continue;
            }
            let k = next(4) as usize;
            let tags: Vec<usize> = (0..k).map(|_| next(TAGS.len() as u64) as usize).collect();
            let mut it = item(0, &tags, next(4) as usize, next(4) as i64);
            it.id = id(n);
            it.code = format!("c{n}");
            model.insert(it.id.clone(), it.clone());
            w.insert(&h.t, it).unwrap();
        }
        for q in queries {
            check(&h, &w, &model, q);
        }
        w.commit().unwrap();
    }
    let r = h.db.read();
    for q in queries {
        check(&h, &r, &model, q);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases() / 8 + 1, ..ProptestConfig::default() })]

    #[test]
    fn select_matches_model_on_a_larger_table(seed in any::<u64>(), queries in vec(query(), 1..8)) {
        run_large(seed, &queries);
    }
}

#[test]
fn a_large_and_a_small_condition_in_either_order() {
    let h = open();
    let mut w = h.db.write(&[&h.t]);
    for n in 0..2000u32 {
        let tags = vec![
            format!("a{}", n % 100),
            format!("b{}", (n / 100) % 2),
            format!("c{}", n % 7),
        ];
        w.insert(
            &h.t,
            Item {
                id: format!("{n:05}"),
                tags,
                color: COLORS[(n % 4) as usize].into(),
                size: i64::from(n % 3),
                code: format!("c{n}"),
            },
        )
        .unwrap();
    }
    w.commit().unwrap();
    let r = h.db.read();
    let small = Filter::key(&h.tags, "a7");
    let large = Filter::key(&h.tags, "b1");
    let ab: Vec<Arc<Item>> = r
        .select(&(large.clone() & small.clone()))
        .unwrap()
        .collect();
    let ba: Vec<Arc<Item>> = r.select(&(small & large)).unwrap().collect();
    assert_eq!(ab.len(), 10);
    assert_eq!(ab, ba);
    assert!(ab.windows(2).all(|w| w[0].id < w[1].id));
    let three = Filter::set(&h.tags, SetMatch::Superset, ["a7", "b1", "c0"]);
    assert_eq!(
        r.select_count(&three).unwrap(),
        (0..2000u32)
            .filter(|n| n % 100 == 7 && (n / 100) % 2 == 1 && n % 7 == 0)
            .count()
    );
    let any: Vec<String> = (0..10).map(|i| format!("a{i}")).collect();
    let any = Filter::set(&h.tags, SetMatch::Any, any.iter().map(String::as_str));
    assert_eq!(r.select_count(&any).unwrap(), 200);
}

#[test]
fn filters_of_two_tables_or_none_are_refused() {
    let h = open();
    let other = open();
    let r = h.db.read();
    let mixed = Filter::key(&h.tags, "a") & Filter::key(&other.tags, "a");
    assert!(matches!(r.select(&mixed), Err(Error::InvalidKey(_))));
    let none: Filter<Item> = Filter::all_of([]);
    assert!(matches!(r.select(&none), Err(Error::InvalidKey(_))));
    let foreign = Filter::key(&other.tags, "a");
    assert!(matches!(r.select(&foreign), Err(Error::ForeignHandle(_))));
}

#[test]
fn a_select_watch_ignores_rows_the_filter_cannot_select() {
    let h = open();
    let mut w = h.db.write(&[&h.t]);
    w.insert(&h.t, item(1, &[0, 2], 0, 1)).unwrap();
    w.insert(&h.t, item(2, &[3], 1, 2)).unwrap();
    w.commit().unwrap();
    let f = Filter::key(&h.tags, "a") & Filter::key(&h.color, "red");
    let (rows, watch) = h.db.read().select_watch(&f).unwrap();
    assert_eq!(rows.count(), 1);
    let mut w = h.db.write(&[&h.t]);
    w.insert(&h.t, item(2, &[3], 1, 3)).unwrap(); // neither tag a nor red
    w.commit().unwrap();
    assert!(!watch.is_fired());
    let mut w = h.db.write(&[&h.t]);
    w.insert(&h.t, item(3, &[0], 0, 0)).unwrap(); // a new match
    w.commit().unwrap();
    assert!(watch.is_fired());
}

// ---------------------------------------------------------------------------
// compound_multi without waste
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Doc {
    id: u32,
    tags: Vec<String>,
    sizes: Vec<u8>,
}

#[test]
fn str_pairs_encode_as_string_pairs() {
    use pandodb::Encode;
    for (a, b) in [("", ""), ("a", "b"), ("a\0b", "c"), ("x", "")] {
        let owned = (a.to_string(), b.to_string());
        assert_eq!((a, b).to_key(), owned.to_key(), "{a:?} {b:?}");
        let (mut p1, mut p2) = (Vec::new(), Vec::new());
        (a, b).encode_prefix(&mut p1);
        owned.encode_prefix(&mut p2);
        assert_eq!(p1, p2);
    }
}

#[test]
fn pairs_index_stores_each_unordered_pair_once() {
    let mut s = Schema::builder();
    let mut t = s.table::<Doc>("doc");
    let id = t.primary("id", Indexer::value(|d: &Doc| d.id));
    let pairs = t.index("pair", Indexer::pairs(|d: &Doc| d.tags.as_slice()));
    let product = t.index(
        "product",
        Indexer::compound_multi_ref(|d: &Doc| d.tags.as_slice(), |d: &Doc| d.sizes.as_slice()),
    );
    let owned = t.index(
        "owned",
        Indexer::compound_multi(|d: &Doc| d.tags.clone(), |d: &Doc| d.sizes.clone()),
    );
    let docs = s.add(t).unwrap();
    let db = Db::new(s.build().unwrap());
    let mut w = db.write(&[&docs]);
    let tags = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    w.insert(
        &docs,
        Doc {
            id: 1,
            tags: tags(&["c", "a", "b", "a"]),
            sizes: vec![2, 1],
        },
    )
    .unwrap();
    w.insert(
        &docs,
        Doc {
            id: 2,
            tags: tags(&["a"]),
            sizes: vec![],
        },
    )
    .unwrap();
    w.insert(
        &docs,
        Doc {
            id: 3,
            tags: tags(&["b", "a"]),
            sizes: vec![5],
        },
    )
    .unwrap();
    // 3 distinct tags: 3 pairs (not 9), one tag: none, two: one.
    assert_eq!(w.index_len(&pairs).unwrap(), 4);
    let ids = |k: (&str, &str)| -> Vec<u32> {
        w.iter(&pairs.borrowed(), &k)
            .unwrap()
            .map(|d| d.id)
            .collect()
    };
    let b = pairs.borrowed();
    assert_eq!(ids(("a", "b")), [1, 3]);
    assert_eq!(ids(("a", "c")), [1]);
    assert_eq!(ids(("b", "c")), [1]);
    assert!(ids(("b", "a")).is_empty() && ids(("a", "a")).is_empty());
    // Borrowed and owned query keys find the same entries.
    assert_eq!(
        w.count(&pairs, &("a".to_string(), "b".to_string()))
            .unwrap(),
        w.count(&b, &("a", "b")).unwrap()
    );
    // The borrowing cartesian product stores what the owned one stores.
    let all =
        |i: &Index<Doc, (String, u8)>| -> Vec<u32> { w.all(i).unwrap().map(|d| d.id).collect() };
    assert_eq!(all(&product), all(&owned));
    assert_eq!(w.index_len(&product).unwrap(), w.index_len(&owned).unwrap());
    let _ = id;
}

#[test]
fn leading_views_select_by_prefix() {
    #[derive(Debug)]
    struct Row {
        id: u32,
        team: String,
        age: i64,
        tags: Vec<(String, i64)>,
    }
    let mut s = Schema::builder();
    let mut t = s.table::<Row>("row");
    let _id = t.primary("id", Indexer::value(|r: &Row| r.id));
    let team_age = t.index(
        "team_age",
        Indexer::value(|r: &Row| (r.team.clone(), r.age)),
    );
    let uniq = t.unique("uniq", Indexer::value(|r: &Row| (r.team.clone(), r.id)));
    let tag_n = t.index("tag_n", Indexer::multi(|r: &Row| r.tags.clone()));
    let rows = s.add(t).unwrap();
    let db = Db::new(s.build().unwrap());
    let mut w = db.write(&[&rows]);
    for id in 0..60u32 {
        let team = ["eu", "us", "ap"][(id % 3) as usize].to_string();
        let tags = vec![
            (format!("t{}", id % 4), i64::from(id % 5)),
            ("all".into(), 0),
        ];
        w.insert(
            &rows,
            Row {
                id,
                team,
                age: i64::from(id % 7),
                tags,
            },
        )
        .unwrap();
    }
    let ids = |f: &Filter<Row>| -> Vec<u32> { w.select(f).unwrap().map(|r| r.id).collect() };
    let want = |p: &dyn Fn(u32) -> bool| -> Vec<u32> { (0..60).filter(|&i| p(i)).collect() };
    let eu = ("eu".to_string(),);
    assert_eq!(
        ids(&Filter::key(&team_age.leading(), &eu)),
        want(&|i| i % 3 == 0)
    );
    assert_eq!(
        ids(&Filter::key(&uniq.leading(), &eu)),
        want(&|i| i % 3 == 0)
    );
    let f =
        Filter::key(&team_age.leading(), &eu) & Filter::key(&uniq.leading(), &("eu".to_string(),));
    assert_eq!(ids(&f), want(&|i| i % 3 == 0));
    let f = Filter::key(&team_age, &("us".to_string(), 2))
        & Filter::key(&uniq.leading(), &("us".to_string(),));
    assert_eq!(ids(&f), want(&|i| i % 3 == 1 && i % 7 == 2));
    let t1 = ("t1".to_string(),);
    let t2 = ("t2".to_string(),);
    let any = Filter::set(&tag_n.leading(), SetMatch::Any, [&t1, &t2]);
    assert_eq!(ids(&any), want(&|i| i % 4 == 1 || i % 4 == 2));
    let all = Filter::set(
        &tag_n.leading(),
        SetMatch::Superset,
        [&t1, &("all".to_string(),)],
    );
    assert_eq!(ids(&all), want(&|i| i % 4 == 1));
    let exact = Filter::set(&tag_n.leading(), SetMatch::Exact, [&t1]);
    assert!(matches!(w.select(&exact), Err(Error::InvalidKey(_))));
    // Whole keys of the multi-value compound index compare whole sets.
    let exact = Filter::set(
        &tag_n,
        SetMatch::Exact,
        [("t1".to_string(), 1), ("all".to_string(), 0)],
    );
    assert_eq!(ids(&exact), want(&|i| i % 4 == 1 && i % 5 == 1));
}
