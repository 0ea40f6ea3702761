//! Loom model of watch registration racing a commit (G9): no lost
//! wake-up.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --test loom_watch`
//!
//! A reader takes a snapshot and registers a watch on a key while a writer
//! commits that key. In every interleaving where the snapshot predates the
//! commit, the watch must have fired once both are done. A deliberately
//! broken registration (which ignores commits since the reader's revision)
//! must be caught.
#![cfg(loom)]

use loom::thread;
use pandodb::{Db, Index, Indexer, Schema, Table};

struct Row {
    id: u32,
}

fn setup(broken: bool) -> (Db, Table<Row>, Index<Row, u32>) {
    let mut schema = Schema::builder();
    let mut a = schema.table::<Row>("a");
    let pk = a.primary("id", Indexer::value(|r: &Row| r.id));
    let a = schema.add(a).unwrap();
    let schema = schema.build().unwrap();
    let db = if broken {
        Db::new_broken_watch_for_loom(schema)
    } else {
        Db::new(schema)
    };
    (db, a, pk)
}

fn scenario(broken: bool, key: u32) {
    let (db, a, pk) = setup(broken);
    let writer = {
        let (db, a) = (db.clone(), a.clone());
        thread::spawn(move || {
            let mut w = db.write(&[&a]);
            w.insert(&a, Row { id: 1 }).unwrap();
            w.commit().unwrap().revision
        })
    };
    let r = db.read();
    let (_, watch) = r.get_watch(&pk, &key).unwrap();
    let seen = r.revision();
    let committed = writer.join().unwrap();
    if seen < committed && key == 1 {
        assert!(
            watch.is_fired(),
            "lost wake-up: watch taken at {seen}, commit {committed}"
        );
    }
}

#[test]
fn registration_racing_a_commit_never_misses_it() {
    loom::model(|| scenario(false, 1));
}

#[test]
fn registration_on_another_key_is_safe() {
    loom::model(|| scenario(false, 2));
}

#[test]
#[should_panic]
fn broken_registration_is_caught() {
    loom::model(|| scenario(true, 1));
}
