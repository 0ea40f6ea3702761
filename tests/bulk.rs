//! `WriteTxn::insert_all`: the same database as inserting the objects one
//! by one (the last object of each primary key) (every index, revisions, the change list), whether the table
//! starts empty (bottom-up build) or not; all or nothing on a unique
//! conflict; watches and the change feed see the loaded rows.

use std::sync::Arc;

use pandodb::{ChangeKind, Db, Error, Index, Indexer, Query, ReadTxn, Schema, Table};
use proptest::prelude::*;

#[derive(Debug, Clone, PartialEq)]
struct Obj {
    id: u16,
    email: Option<String>,
    group: u8,
    tags: Vec<String>,
}

struct H {
    t: Table<Obj>,
    by_id: Index<Obj, u16>,
    by_email: Index<Obj, str>,
    by_group: Index<Obj, u8>,
    by_tag: Index<Obj, str>,
}

fn db() -> (Db, H) {
    let mut s = Schema::builder();
    let mut t = s.table::<Obj>("obj");
    let by_id = t.primary("id", Indexer::value(|o: &Obj| o.id));
    let by_email = t.unique(
        "email",
        Indexer::optional_string(|o: &Obj| o.email.as_deref()),
    );
    let by_group = t.index("group", Indexer::value(|o: &Obj| o.group));
    let by_tag = t.index("tag", Indexer::strings(|o: &Obj| o.tags.as_slice()));
    let t = s.add(t).unwrap();
    (
        Db::new(s.build().unwrap()),
        H {
            t,
            by_id,
            by_email,
            by_group,
            by_tag,
        },
    )
}

/// Every index in order, with revisions.
fn dump(r: &ReadTxn, h: &H) -> String {
    let mut out = String::new();
    for v in r.all_versioned(&h.t).unwrap() {
        out += &format!("{:?}@{}/{} ", v.object, v.created, v.modified);
    }
    for (name, ids) in [
        (
            "email",
            r.all(&h.by_email)
                .unwrap()
                .map(|o| o.id)
                .collect::<Vec<_>>(),
        ),
        ("group", r.all(&h.by_group).unwrap().map(|o| o.id).collect()),
        ("tag", r.all(&h.by_tag).unwrap().map(|o| o.id).collect()),
    ] {
        out += &format!("{name}: {ids:?} ");
    }
    out
}

fn obj() -> impl Strategy<Value = Obj> {
    (
        0u16..60,
        proptest::option::of(0u8..80),
        0u8..4,
        proptest::collection::vec(0u8..5, 0..3),
    )
        .prop_map(|(id, email, group, tags)| Obj {
            id,
            email: email.map(|e| format!("e{e}")),
            group,
            tags: tags.into_iter().map(|t| format!("t{t}")).collect(),
        })
}

/// Loads `before` one by one (committed), then `objs` with `insert_all` in
/// one database and one by one in another; both must agree, on success
/// and on failure alike.
fn compare(before: &[Obj], objs: &[Obj]) -> Result<(), TestCaseError> {
    let (a, ha) = db();
    let (b, hb) = db();
    for (d, h) in [(&a, &ha), (&b, &hb)] {
        let mut w = d.write(&[&h.t]);
        for o in before {
            if w.insert(&h.t, o.clone()).is_err() {
                // Keep `before` valid: skip what conflicts.
            }
        }
        w.commit().unwrap();
    }
    let mut wa = a.write(&[&ha.t]);
    wa.track_changes();
    let bulk = wa.insert_all(&ha.t, objs.iter().cloned());
    let mut wb = b.write(&[&hb.t]);
    wb.track_changes();
    let mut one_by_one = Ok(objs.len());
    // Of several objects with one id, only the last counts.
    let last: Vec<&Obj> = objs
        .iter()
        .enumerate()
        .filter(|(i, o)| !objs[i + 1..].iter().any(|p| p.id == o.id))
        .map(|(_, o)| o)
        .collect();
    for o in last {
        if let Err(e) = wb.insert(&hb.t, o.clone()) {
            one_by_one = Err(e);
            break;
        }
    }
    match (&bulk, &one_by_one) {
        (Ok(n), Ok(m)) => prop_assert_eq!(n, m),
        (
            Err(Error::UniqueViolation { index: x, .. }),
            Err(Error::UniqueViolation { index: y, .. }),
        ) => {
            prop_assert_eq!(x, y);
            // All or nothing: the transaction is as it was.
            prop_assert_eq!(dump(&a.read(), &ha), {
                let w = wa;
                let c = w.commit().unwrap();
                prop_assert!(c.changes.is_empty());
                dump(&a.read(), &ha)
            });
            return Ok(());
        }
        _ => prop_assert!(
            false,
            "insert_all {:?} but one by one {:?}",
            bulk,
            one_by_one
        ),
    }
    let ca = wa.commit().unwrap();
    let cb = wb.commit().unwrap();
    prop_assert_eq!(dump(&a.read(), &ha), dump(&b.read(), &hb));
    // The same rows changed, each once with its final object (one by one
    // records every replaced intermediate too: compare the net effect).
    let net = |c: &[pandodb::Change]| {
        let mut m = std::collections::BTreeMap::new();
        for ch in c {
            let after: Option<Arc<Obj>> = ch.after().unwrap();
            let before: Option<Arc<Obj>> = ch.before().unwrap();
            let id = after.as_ref().or(before.as_ref()).unwrap().id;
            let first_before = m
                .get(&id)
                .map(|(b, _): &(Option<Obj>, Option<Obj>)| b.clone());
            let b = first_before.unwrap_or(before.map(|o| (*o).clone()));
            m.insert(id, (b, after.map(|o| (*o).clone())));
        }
        m
    };
    prop_assert_eq!(net(&ca.changes), net(&cb.changes));
    Ok(())
}

proptest! {
    #[test]
    fn insert_all_equals_inserting_one_by_one(
        before in proptest::collection::vec(obj(), 0..20),
        objs in proptest::collection::vec(obj(), 0..120),
        empty in any::<bool>(),
    ) {
        let before = if empty { Vec::new() } else { before };
        compare(&before, &objs)?;
    }
}

#[test]
fn a_unique_conflict_leaves_the_transaction_as_it_was() {
    let (d, h) = db();
    let o = |id: u16, e: &str| Obj {
        id,
        email: Some(e.into()),
        group: 0,
        tags: vec![],
    };
    for start_empty in [true, false] {
        let mut w = d.write(&[&h.t]);
        if !start_empty {
            w.insert(&h.t, o(1000, "x")).unwrap();
        }
        let e = w
            .insert_all(&h.t, [o(3, "a"), o(1, "b"), o(2, "a")])
            .unwrap_err();
        assert!(
            matches!(&e, Error::UniqueViolation { index, .. } if index == "email"),
            "{e:?}"
        );
        assert_eq!(w.len(&h.t).unwrap(), usize::from(!start_empty));
        // The same key replaced within the load is no conflict.
        assert_eq!(
            w.insert_all(&h.t, [o(1, "a"), o(1, "b"), o(2, "a")])
                .unwrap(),
            3
        );
        assert_eq!(w.get(&h.by_email, "a").unwrap().unwrap().id, 2);
        assert!(w.get(&h.by_email, "b").unwrap().is_some());
    }
}

#[test]
fn watches_and_the_feed_see_a_bulk_load() {
    let (d, h) = db();
    let (none, watch) = d.read().get_watch(&h.by_tag, "t1").unwrap();
    assert!(none.is_none());
    let mut sub = d.subscribe(&[&h.t], 1).unwrap();
    let mut w = d.write(&[&h.t]);
    let objs = (0..500u16).rev().map(|id| Obj {
        id,
        email: None,
        group: (id % 3) as u8,
        tags: vec![format!("t{}", id % 7)],
    });
    assert_eq!(w.insert_all(&h.t, objs).unwrap(), 500);
    let rev = w.commit().unwrap().revision;
    assert!(watch.is_fired());
    let batch = sub.try_next().unwrap().expect("a batch");
    assert_eq!(batch.revision, rev);
    assert_eq!(batch.changes.len(), 500);
    assert!(batch.changes.iter().all(|c| c.kind() == ChangeKind::Insert));
    let r = d.read();
    assert_eq!(r.count(&h.by_group, &0).unwrap(), 167);
    assert_eq!(r.first(&h.by_id, &0).unwrap().unwrap().id, 0);
}
