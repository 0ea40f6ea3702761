//! Loom models of the commit / publish protocol (G1, G4).
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --test loom_publish`
//!
//! Two writers on disjoint tables commit while a reader takes a snapshot.
//! Every interleaving must publish both commits (no lost update), give them
//! revisions 1 and 2, and show the reader a snapshot whose contents match its
//! revision (never a half-published commit). A deliberately broken variant
//! that publishes without the publish lock must be caught.
#![cfg(loom)]

use loom::thread;
use pandodb::{Db, Indexer, Query, Schema, Table};

struct Row {
    id: u32,
}

fn setup(broken: bool) -> (Db, Table<Row>, Table<Row>) {
    let mut schema = Schema::builder();
    let mut a = schema.table::<Row>("a");
    a.primary("id", Indexer::value(|r: &Row| r.id));
    let mut b = schema.table::<Row>("b");
    b.primary("id", Indexer::value(|r: &Row| r.id));
    let a = schema.add(a).unwrap();
    let b = schema.add(b).unwrap();
    let schema = schema.build().unwrap();
    let db = if broken {
        Db::new_broken_for_loom(schema)
    } else {
        Db::new(schema)
    };
    (db, a, b)
}

fn writer(db: &Db, t: &Table<Row>, id: u32) -> thread::JoinHandle<u64> {
    let (db, t) = (db.clone(), t.clone());
    thread::spawn(move || {
        let mut w = db.write(&[&t]);
        w.insert(&t, Row { id }).unwrap();
        w.commit().unwrap().revision
    })
}

fn scenario(broken: bool, same_table: bool) {
    let (db, a, b) = setup(broken);
    let second = if same_table { &a } else { &b };
    let w1 = writer(&db, &a, 1);
    let w2 = writer(&db, second, 2);

    // A concurrent reader: what it sees must be a whole number of commits.
    let r = db.read();
    let visible = r.len(&a).unwrap() + r.len(&b).unwrap();
    assert_eq!(
        visible as u64,
        r.revision(),
        "snapshot contents disagree with its revision"
    );

    let mut revs = [w1.join().unwrap(), w2.join().unwrap()];
    revs.sort_unstable();
    assert_eq!(revs, [1, 2], "each commit gets its own revision");
    let r = db.read();
    assert_eq!(r.revision(), 2);
    assert_eq!(
        r.len(&a).unwrap() + r.len(&b).unwrap(),
        2,
        "a commit was lost"
    );
}

#[test]
fn disjoint_writers_both_published() {
    loom::model(|| scenario(false, false));
}

#[test]
fn same_table_writers_serialize() {
    loom::model(|| scenario(false, true));
}

#[test]
#[should_panic]
fn broken_publish_without_lock_is_caught() {
    loom::model(|| scenario(true, false));
}
