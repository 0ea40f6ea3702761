//! Revisions on every row: each `*_versioned` query form (`VersionedQuery`)
//! yields exactly the rows of its plain form, in the same order, each with
//! the revisions `get_versioned` reports — through the primary index, a
//! unique, a non-unique and a multi-value secondary index, in read and
//! write transactions and at a past revision.

use std::ops::Bound;

use pandodb::{Db, Index, Indexer, Options, Query, Schema, Table, Versioned, VersionedQuery};

#[derive(Debug, Clone, PartialEq)]
struct Obj {
    id: u32,
    email: String,
    grp: u8,
    tags: Vec<String>,
}

struct H {
    db: Db,
    t: Table<Obj>,
    id: Index<Obj, u32>,
    email: Index<Obj, str>,
    grp: Index<Obj, u8>,
    tags: Index<Obj, str>,
}

fn setup() -> H {
    let mut s = Schema::builder();
    let mut t = s.table::<Obj>("obj");
    let id = t.primary("id", Indexer::value(|o: &Obj| o.id));
    let email = t.unique("email", Indexer::string(|o: &Obj| o.email.as_str()));
    let grp = t.index("grp", Indexer::value(|o: &Obj| o.grp));
    let tags = t.index("tags", Indexer::strings(|o: &Obj| o.tags.as_slice()));
    let t = s.add(t).unwrap();
    let db = Db::with_options(s.build().unwrap(), Options::default().read_history(10));
    H {
        db,
        t,
        id,
        email,
        grp,
        tags,
    }
}

fn obj(i: u32, round: u32) -> Obj {
    Obj {
        id: i,
        email: format!("u{}@x", (i * 7 + round) % 50),
        grp: ((i + round) % 4) as u8,
        tags: vec![format!("t{}", i % 3), format!("s{}", (i + round) % 2)],
    }
}

fn fill(h: &H) {
    for round in 0..6u32 {
        let mut w = h.db.write(&[&h.t]);
        for i in (0..40u32).filter(|i| (i + round) % 3 != 0) {
            let _ = w.insert(&h.t, obj(i, round)); // unique conflicts are skipped
        }
        for i in (0..40u32).filter(|i| (i * 5 + round) % 11 == 0) {
            if let Some(o) = w.get(&h.id, &i).unwrap() {
                w.delete(&h.t, &o).unwrap();
            }
        }
        w.commit().unwrap();
    }
}

fn same<Q: Query>(q: &Q, h: &H, plain: Vec<std::sync::Arc<Obj>>, versioned: Vec<Versioned<Obj>>) {
    assert_eq!(plain.len(), versioned.len());
    for (p, v) in plain.iter().zip(&versioned) {
        assert_eq!(**p, *v.object);
        let g = q.get_versioned(&h.id, &p.id).unwrap().unwrap();
        assert_eq!((g.created, g.modified), (v.created, v.modified));
        assert!(v.created <= v.modified);
    }
}

fn check<Q: Query>(q: &Q, h: &H) {
    let lo = Bound::Included(&1u8);
    let hi = Bound::Excluded(&3u8);
    same(
        q,
        h,
        q.all(&h.id).unwrap().collect(),
        q.index_versioned(&h.id).unwrap().collect(),
    );
    same(
        q,
        h,
        q.all(&h.grp).unwrap().rev().collect(),
        q.index_versioned(&h.grp).unwrap().rev().collect(),
    );
    same(
        q,
        h,
        q.all(&h.tags).unwrap().collect(),
        q.index_versioned(&h.tags).unwrap().collect(),
    );
    same(
        q,
        h,
        q.all(&h.email).unwrap().collect(),
        q.index_versioned(&h.email).unwrap().collect(),
    );
    for g in 0..4u8 {
        same(
            q,
            h,
            q.iter(&h.grp, &g).unwrap().collect(),
            q.iter_versioned(&h.grp, &g).unwrap().collect(),
        );
        let first = q.first(&h.grp, &g).unwrap();
        let first_v = q.first_versioned(&h.grp, &g).unwrap();
        assert_eq!(first.as_deref(), first_v.as_ref().map(|v| &*v.object));
        let last = q.last(&h.grp, &g).unwrap();
        let last_v = q.last_versioned(&h.grp, &g).unwrap();
        assert_eq!(last.as_deref(), last_v.as_ref().map(|v| &*v.object));
    }
    same(
        q,
        h,
        q.range(&h.grp, lo, hi).unwrap().collect(),
        q.range_versioned(&h.grp, lo, hi).unwrap().collect(),
    );
    same(
        q,
        h,
        q.range(&h.id, Bound::Excluded(&5), Bound::Included(&30))
            .unwrap()
            .collect(),
        q.range_versioned(&h.id, Bound::Excluded(&5), Bound::Included(&30))
            .unwrap()
            .collect(),
    );
    same(
        q,
        h,
        q.prefix(&h.tags, "t").unwrap().collect(),
        q.prefix_versioned(&h.tags, "t").unwrap().collect(),
    );
    same(
        q,
        h,
        q.prefix(&h.email, "u1").unwrap().collect(),
        q.prefix_versioned(&h.email, "u1").unwrap().collect(),
    );
    same(
        q,
        h,
        q.lower_bound(&h.email, "u3").unwrap().collect(),
        q.lower_bound_versioned(&h.email, "u3").unwrap().collect(),
    );
    same(
        q,
        h,
        q.reverse_lower_bound(&h.id, &20).unwrap().collect(),
        q.reverse_lower_bound_versioned(&h.id, &20)
            .unwrap()
            .collect(),
    );
    same(
        q,
        h,
        q.iter(&h.id, &7).unwrap().collect(),
        q.iter_versioned(&h.id, &7).unwrap().collect(),
    );
    let it = q.index_versioned(&h.tags).unwrap();
    assert_eq!(it.len(), q.index_len(&h.tags).unwrap());
}

#[test]
fn every_query_form_has_a_versioned_variant() {
    let h = setup();
    fill(&h);
    let r = h.db.read();
    check(&r, &h);
    // Revisions differ between rows (several commits wrote them).
    let mods: std::collections::BTreeSet<u64> = r
        .index_versioned(&h.id)
        .unwrap()
        .map(|v| v.modified)
        .collect();
    assert!(mods.len() > 2, "{mods:?}");
    // A write transaction: its own rows carry the revision it expects.
    let mut w = h.db.write(&[&h.t]);
    let new = Obj {
        email: "new@x".into(),
        ..obj(99, 0)
    };
    w.insert(&h.t, new).unwrap();
    check(&w, &h);
    let mine = w.iter_versioned(&h.id, &99).unwrap().next().unwrap();
    assert_eq!(mine.modified, w.base_revision() + 1);
    w.commit().unwrap();
    // A past revision.
    let past = h.db.read_at(h.db.revision() - 3).unwrap();
    check(&past, &h);
}

#[test]
fn renumbered_rows_carry_their_revision_in_every_index() {
    let mut s = Schema::builder();
    let mut a = s.table::<Obj>("a");
    let a_id = a.primary("id", Indexer::value(|o: &Obj| o.id));
    let a_grp = a.index("grp", Indexer::value(|o: &Obj| o.grp));
    let a_email = a.unique("email", Indexer::string(|o: &Obj| o.email.as_str()));
    let a = s.add(a).unwrap();
    let mut b = s.table::<Obj>("b");
    b.primary("id", Indexer::value(|o: &Obj| o.id));
    let b = s.add(b).unwrap();
    let db = Db::new(s.build().unwrap());
    // Both start from revision 0 and expect revision 1; `b` commits first,
    // so `a`'s rows are renumbered to revision 2.
    let mut wa = db.write(&[&a]);
    let mut wb = db.write(&[&b]);
    for i in 0..20 {
        wa.insert(&a, obj(i, 0)).unwrap();
    }
    wb.insert(&b, obj(1, 0)).unwrap();
    assert_eq!(wb.commit().unwrap().revision, 1);
    assert_eq!(wa.commit().unwrap().revision, 2);
    let r = db.read();
    for v in r.index_versioned(&a_grp).unwrap() {
        assert_eq!((v.created, v.modified), (2, 2));
    }
    for v in r.index_versioned(&a_email).unwrap() {
        assert_eq!((v.created, v.modified), (2, 2));
    }
    let g = r
        .get_versioned(&a_email, obj(3, 0).email.as_str())
        .unwrap()
        .unwrap();
    assert_eq!((g.object.id, g.modified), (3, 2));
    assert_eq!(r.get_versioned(&a_id, &3).unwrap().unwrap().modified, 2);
}

#[test]
fn a_watch_taken_at_a_past_revision_fires_for_the_next_relevant_commit() {
    let h = setup();
    let write = |i: u32, grp: u8| {
        let mut w = h.db.write(&[&h.t]);
        let o = Obj {
            id: i,
            email: format!("{i}@w"),
            grp,
            tags: vec![],
        };
        w.insert(&h.t, o).unwrap();
        w.commit().unwrap().revision
    };
    // A watch on the table, so commits log the keys they change (without
    // one, a later watch cannot tell which keys a past commit changed and
    // fires at once, as it may: early, never late).
    let (_, _keys_logged) = h.db.read().get_watch(&h.id, &999).unwrap();
    write(1, 0); // revision 1
    write(2, 1); // revision 2: group 1
    write(3, 0); // revision 3
    // At revision 1, group 1 was empty; revision 2 changed it.
    let past = h.db.read_at(1).unwrap();
    assert_eq!(past.iter(&h.grp, &1).unwrap().len(), 0);
    let (rows, watch) = past.iter_watch(&h.grp, &1).unwrap();
    assert_eq!(rows.len(), 0);
    assert!(watch.is_fired());
    // At revision 2, group 1 is unchanged since: the watch waits for
    // the next commit that changes it.
    let (_, watch) = h.db.read_at(2).unwrap().iter_watch(&h.grp, &1).unwrap();
    assert!(!watch.is_fired());
    write(4, 0);
    assert!(!watch.is_fired());
    write(5, 1);
    assert!(watch.is_fired());
}
