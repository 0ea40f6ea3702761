//! G2 — isolation and the transaction API: go-memdb's isolation cases (no
//! dirty, non-repeatable or phantom reads, for read transactions and for
//! snapshots), read-your-own-writes, iterator stability inside a write
//! transaction, abort/drop, deferred hooks, change tracking, the per-table
//! writer locks (same table: serialized; disjoint tables: parallel; readers:
//! never blocked), and the typed errors for unlocked or foreign tables.
//!
//! Concurrency is shown by message order and by what each transaction sees,
//! never by timing assertions; every wait has a generous timeout so that a
//! deadlock fails the test instead of hanging it.
//!
//! Run: `cargo test --release --test isolation`

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use pandodb::{Db, Error, Index, Indexer, Query, ReadTxn, Schema, Table, WriteTxn};

/// Long enough to never fire on a loaded machine; only reached on deadlock.
const DEADLOCK: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq)]
struct Acc {
    id: u32,
    owner: String,
    code: String,
    bal: i64,
}

fn acc(id: u32, owner: &str, bal: i64) -> Acc {
    Acc {
        id,
        owner: owner.into(),
        code: format!("c{id}"),
        bal,
    }
}

#[derive(Clone)]
struct T {
    db: Db,
    a: Table<Acc>,
    b: Table<Acc>,
    a_id: Index<Acc, u32>,
    a_owner: Index<Acc, str>,
    a_code: Index<Acc, str>,
    b_id: Index<Acc, u32>,
}

fn setup() -> T {
    let mut s = Schema::builder();
    let mut a = s.table::<Acc>("a");
    let a_id = a.primary("id", Indexer::value(|x: &Acc| x.id));
    let a_owner = a.index("owner", Indexer::string(|x: &Acc| x.owner.as_str()));
    let a_code = a.unique("code", Indexer::string(|x: &Acc| x.code.as_str()));
    let mut b = s.table::<Acc>("b");
    let b_id = b.primary("id", Indexer::value(|x: &Acc| x.id));
    let a = s.add(a).unwrap();
    let b = s.add(b).unwrap();
    let db = Db::new(s.build().unwrap());
    T {
        db,
        a,
        b,
        a_id,
        a_owner,
        a_code,
        b_id,
    }
}

fn commit_rows(t: &T, rows: &[Acc]) -> u64 {
    let mut w = t.db.write(&[&t.a]);
    for r in rows {
        w.insert(&t.a, r.clone()).unwrap();
    }
    w.commit().unwrap().revision
}

fn ids<Q: Query>(q: &Q, t: &T) -> Vec<u32> {
    q.all(&t.a_id).unwrap().map(|x| x.id).collect()
}

// ---------------------------------------------------------------------------
// go-memdb isolation cases
// ---------------------------------------------------------------------------

#[test]
fn no_dirty_reads() {
    let t = setup();
    commit_rows(&t, &[acc(1, "ann", 10)]);
    let snap_before = t.db.read();
    let mut w = t.db.write(&[&t.a]);
    w.insert(&t.a, acc(2, "bob", 5)).unwrap();
    w.insert(&t.a, acc(1, "ann", 99)).unwrap();
    w.delete_all(&t.a_owner, "nobody").unwrap();
    // Readers started before and during the open write see none of it.
    let during = t.db.read();
    let snap_during = t.db.read();
    for (what, r) in [
        ("snapshot before", &snap_before),
        ("read during", &during),
        ("snapshot during", &snap_during),
    ] {
        assert!(
            r.get(&t.a_id, &2).unwrap().is_none(),
            "{what}: uncommitted insert visible"
        );
        assert_eq!(
            r.get(&t.a_id, &1).unwrap().unwrap().bal,
            10,
            "{what}: uncommitted update visible"
        );
        assert_eq!(r.len(&t.a).unwrap(), 1, "{what}");
        assert_eq!(r.count(&t.a_owner, "bob").unwrap(), 0, "{what}");
        assert_eq!(r.revision(), 1, "{what}");
    }
    assert_eq!(t.db.revision(), 1);
    drop(w);
    // Still nothing after the writer is dropped.
    assert!(t.db.read().get(&t.a_id, &2).unwrap().is_none());
    assert_eq!(t.db.read().get(&t.a_id, &1).unwrap().unwrap().bal, 10);
}

#[test]
fn no_non_repeatable_reads() {
    let t = setup();
    commit_rows(&t, &[acc(1, "ann", 10), acc(2, "bob", 20)]);
    let r = t.db.read();
    let snap = t.db.read();
    assert_eq!(r.get(&t.a_id, &1).unwrap().unwrap().bal, 10);
    // Another transaction updates row 1, deletes row 2, and commits.
    let mut w = t.db.write(&[&t.a]);
    w.insert(&t.a, acc(1, "ann", 11)).unwrap();
    w.delete(&t.a, &acc(2, "", 0)).unwrap();
    let rev = w.commit().unwrap().revision;
    assert_eq!(rev, 2);
    for (what, q) in [("read txn", &r), ("snapshot", &snap)] {
        assert_eq!(
            q.get(&t.a_id, &1).unwrap().unwrap().bal,
            10,
            "{what}: re-read of row 1 changed"
        );
        assert_eq!(
            q.get(&t.a_id, &2).unwrap().unwrap().bal,
            20,
            "{what}: re-read of row 2 vanished"
        );
        assert_eq!(q.revision(), 1, "{what}");
    }
    let now = t.db.read();
    assert_eq!(now.get(&t.a_id, &1).unwrap().unwrap().bal, 11);
    assert!(now.get(&t.a_id, &2).unwrap().is_none());
    assert_eq!(now.revision(), 2);
}

#[test]
fn no_phantom_reads() {
    let t = setup();
    commit_rows(&t, &[acc(1, "ann", 1), acc(3, "bob", 3)]);
    let r = t.db.read();
    let snap = t.db.read();
    let view = |q: &ReadTxn| {
        (
            q.iter(&t.a_owner, "ann")
                .unwrap()
                .map(|x| x.id)
                .collect::<Vec<_>>(),
            q.prefix(&t.a_owner, "a")
                .unwrap()
                .map(|x| x.id)
                .collect::<Vec<_>>(),
            q.count(&t.a_owner, "ann").unwrap(),
            q.lower_bound(&t.a_id, &2)
                .unwrap()
                .map(|x| x.id)
                .collect::<Vec<_>>(),
            q.len(&t.a).unwrap(),
            ids(q, &t),
        )
    };
    let before = view(&r);
    assert_eq!(before, (vec![1], vec![1], 1, vec![3], 2, vec![1, 3]));
    // Rows that match the same predicates appear, one disappears; committed.
    let mut w = t.db.write(&[&t.a]);
    w.insert(&t.a, acc(2, "ann", 2)).unwrap();
    w.insert(&t.a, acc(4, "anna", 4)).unwrap();
    w.delete(&t.a, &acc(3, "bob", 3)).unwrap();
    w.commit().unwrap();
    assert_eq!(view(&r), before, "read txn saw phantoms");
    assert_eq!(view(&snap), before, "snapshot saw phantoms");
    let now = view(&t.db.read());
    assert_eq!(
        now,
        (vec![1, 2], vec![1, 2, 4], 2, vec![2, 4], 3, vec![1, 2, 4])
    );
}

#[test]
fn snapshots_are_kept_forever_and_cheap() {
    let t = setup();
    let mut snaps = vec![t.db.read()];
    for i in 1..=20u32 {
        let mut w = t.db.write(&[&t.a]);
        w.insert(&t.a, acc(i, "x", i64::from(i))).unwrap();
        if i % 3 == 0 {
            w.delete(&t.a, &acc(i - 1, "", 0)).unwrap();
        }
        w.commit().unwrap();
        snaps.push(t.db.read());
    }
    // Replay the same history on a model and compare every snapshot.
    let mut model: Vec<u32> = vec![];
    for (i, s) in snaps.iter().enumerate() {
        let i = i as u32;
        if i > 0 {
            model.push(i);
            if i.is_multiple_of(3) {
                model.retain(|&x| x != i - 1);
            }
        }
        assert_eq!(s.revision(), u64::from(i));
        assert_eq!(ids(s, &t), model, "snapshot at revision {i}");
        assert_eq!(s.len(&t.a).unwrap(), model.len());
    }
}

// ---------------------------------------------------------------------------
// Inside one write transaction
// ---------------------------------------------------------------------------

#[test]
fn write_txn_reads_its_own_writes() {
    let t = setup();
    commit_rows(&t, &[acc(1, "ann", 1), acc(2, "bob", 2), acc(3, "bob", 3)]);
    let mut w = t.db.write(&[&t.a]);
    w.insert(&t.a, acc(4, "ann", 4)).unwrap(); // insert
    w.insert(&t.a, acc(2, "anne", 22)).unwrap(); // update that moves row 2
    w.delete(&t.a, &acc(3, "", 0)).unwrap(); // delete

    assert_eq!(w.get(&t.a_id, &4).unwrap().unwrap().bal, 4);
    assert_eq!(w.get(&t.a_id, &2).unwrap().unwrap().owner, "anne");
    assert!(w.get(&t.a_id, &3).unwrap().is_none());
    assert_eq!(w.get(&t.a_code, "c4").unwrap().unwrap().id, 4);
    assert!(w.get(&t.a_code, "c3").unwrap().is_none());
    let it = |k: &str| -> Vec<u32> { w.iter(&t.a_owner, k).unwrap().map(|x| x.id).collect() };
    assert_eq!(it("ann"), [1, 4]);
    assert_eq!(it("bob"), Vec::<u32>::new());
    assert_eq!(it("anne"), [2]);
    let pre: Vec<u32> = w.prefix(&t.a_owner, "ann").unwrap().map(|x| x.id).collect();
    assert_eq!(pre, [1, 4, 2]);
    assert_eq!(w.count(&t.a_owner, "ann").unwrap(), 2);
    assert_eq!(w.count_prefix(&t.a_owner, "an").unwrap(), 3);
    assert_eq!(w.len(&t.a).unwrap(), 3);
    assert_eq!(w.index_len(&t.a_owner).unwrap(), 3);
    assert_eq!(ids(&w, &t), [1, 2, 4]);
    let rev: Vec<u32> = w.all(&t.a_id).unwrap().rev().map(|x| x.id).collect();
    assert_eq!(rev, [4, 2, 1]);
    assert_eq!(w.first(&t.a_owner, "ann").unwrap().unwrap().id, 1);
    assert_eq!(w.last(&t.a_owner, "ann").unwrap().unwrap().id, 4);
    let ge: Vec<u32> = w.lower_bound(&t.a_id, &2).unwrap().map(|x| x.id).collect();
    assert_eq!(ge, [2, 4]);
    // delete_all / delete_prefix see the txn's own rows too.
    assert_eq!(w.delete_all(&t.a_owner, "ann").unwrap(), 2);
    assert_eq!(ids(&w, &t), [2]);
    assert_eq!(w.delete_prefix(&t.a_owner, "an").unwrap(), 1);
    assert_eq!(w.len(&t.a).unwrap(), 0);
    // The committed state is untouched meanwhile.
    assert_eq!(ids(&t.db.read(), &t), [1, 2, 3]);
    w.commit().unwrap();
    assert_eq!(t.db.read().len(&t.a).unwrap(), 0);
}

#[test]
fn iterator_from_write_txn_ignores_later_writes_in_the_same_txn() {
    let t = setup();
    let rows: Vec<Acc> = (0..200)
        .map(|i| acc(i * 2, if i % 2 == 0 { "even" } else { "odd" }, 0))
        .collect();
    commit_rows(&t, &rows);
    let mut w = t.db.write(&[&t.a]);
    w.insert(&t.a, acc(1, "even", 0)).unwrap();
    let mut all = w.all(&t.a_id).unwrap();
    let mut evens = w.iter(&t.a_owner, "even").unwrap();
    let rng = w.lower_bound(&t.a_id, &100).unwrap().rev();
    let expect_all: Vec<u32> = {
        let mut v: Vec<u32> = (0..200).map(|i| i * 2).collect();
        v.push(1);
        v.sort();
        v
    };
    let expect_evens: Vec<u32> = {
        let mut v: Vec<u32> = (0..200).filter(|i| i % 2 == 0).map(|i| i * 2).collect();
        v.insert(1, 1);
        v
    };
    // Consume a little, then write a lot, then consume the rest.
    let head: Vec<u32> = all.by_ref().take(3).map(|x| x.id).collect();
    let first_even = evens.next().unwrap().id;
    assert_eq!(all.len(), expect_all.len() - 3, "exact size");
    for i in 0..400 {
        w.insert(&t.a, acc(1000 + i, "even", 1)).unwrap();
        w.insert(&t.a, acc(i, "moved", 7)).unwrap();
    }
    assert_eq!(w.delete_prefix(&t.a_owner, "even").unwrap(), 400);
    w.delete_all(&t.a_owner, "odd").unwrap();
    let rest: Vec<u32> = all.map(|x| x.id).collect();
    let got: Vec<u32> = head.into_iter().chain(rest).collect();
    assert_eq!(got, expect_all);
    let got_evens: Vec<u32> = std::iter::once(first_even)
        .chain(evens.map(|x| x.id))
        .collect();
    assert_eq!(got_evens, expect_evens);
    let got_rng: Vec<u32> = rng.map(|x| x.id).collect();
    let want_rng: Vec<u32> = expect_all
        .iter()
        .rev()
        .copied()
        .filter(|&i| i >= 100)
        .collect();
    assert_eq!(got_rng, want_rng);
    // Yielded objects are the ones from iteration time, not later versions.
    let o = w.all(&t.a_owner).unwrap().next().unwrap();
    assert_eq!(o.owner, "moved");
}

#[test]
fn abort_and_drop_discard_everything_and_release_locks() {
    let t = setup();
    commit_rows(&t, &[acc(1, "ann", 1)]);
    let rev = t.db.revision();
    let before = ids(&t.db.read(), &t);

    let mut w = t.db.write(&[&t.a, &t.b]);
    w.insert(&t.a, acc(2, "bob", 2)).unwrap();
    w.delete(&t.a, &acc(1, "", 0)).unwrap();
    w.insert(&t.b, acc(9, "x", 9)).unwrap();
    w.abort();
    assert_eq!(ids(&t.db.read(), &t), before);
    assert_eq!(t.db.read().len(&t.b).unwrap(), 0);
    assert_eq!(t.db.revision(), rev);

    {
        let mut w = t.db.write(&[&t.a]);
        w.insert(&t.a, acc(3, "cat", 3)).unwrap();
        // dropped here
    }
    assert_eq!(ids(&t.db.read(), &t), before);
    assert_eq!(t.db.revision(), rev);

    // A writer that panics mid-transaction: the unwind drops it.
    let t2 = t.clone();
    let res = thread::spawn(move || {
        let mut w = t2.db.write(&[&t2.a]);
        w.insert(&t2.a, acc(4, "dog", 4)).unwrap();
        panic!("writer dies holding the lock");
    })
    .join();
    assert!(res.is_err());
    assert_eq!(ids(&t.db.read(), &t), before);

    // All locks are free again: a new writer of both tables gets them.
    let (tx, rx) = mpsc::channel();
    let t3 = t.clone();
    thread::spawn(move || {
        let mut w = t3.db.write_all();
        w.insert(&t3.a, acc(5, "eel", 5)).unwrap();
        tx.send(w.commit().unwrap().revision).unwrap();
    });
    assert_eq!(
        rx.recv_timeout(DEADLOCK).expect("locks were not released"),
        rev + 1
    );
    assert_eq!(ids(&t.db.read(), &t), [1, 5]);
}

// ---------------------------------------------------------------------------
// Deferred hooks and change tracking
// ---------------------------------------------------------------------------

#[test]
fn defer_hooks_run_only_after_commit_and_see_the_committed_state() {
    let t = setup();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();

    // Abort and drop: hooks never run.
    let mut w = t.db.write(&[&t.a]);
    w.insert(&t.a, acc(1, "ann", 1)).unwrap();
    let l = log.clone();
    w.defer(move || l.lock().unwrap().push("aborted hook".into()));
    w.abort();
    {
        let mut w = t.db.write(&[&t.a]);
        w.insert(&t.a, acc(1, "ann", 1)).unwrap();
        let l = log.clone();
        w.defer(move || l.lock().unwrap().push("dropped hook".into()));
    }
    assert!(log.lock().unwrap().is_empty(), "{:?}", log.lock().unwrap());

    // Commit: hooks run after it, in order, and see the new version; the
    // table lock is already released (a hook can write the same table).
    let mut w = t.db.write(&[&t.a]);
    w.insert(&t.a, acc(1, "ann", 1)).unwrap();
    for n in 0..3 {
        let (l, db, a_id, a) = (log.clone(), t.db.clone(), t.a_id.clone(), t.a.clone());
        w.defer(move || {
            let r = db.read();
            let seen = r.get(&a_id, &1).unwrap().map(|x| x.bal);
            l.lock()
                .unwrap()
                .push(format!("hook {n}: rev {} bal {seen:?}", r.revision()));
            if n == 2 {
                let mut w2 = db.write(&[&a]);
                w2.insert(&a, acc(2, "from hook", 2)).unwrap();
                w2.commit().unwrap();
            }
        });
    }
    assert!(log.lock().unwrap().is_empty(), "a hook ran before commit");
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || tx.send(w.commit().unwrap().revision).unwrap());
    let rev = rx
        .recv_timeout(DEADLOCK)
        .expect("commit with hooks deadlocked");
    handle.join().unwrap();
    assert_eq!(rev, 1);
    assert_eq!(
        *log.lock().unwrap(),
        [
            "hook 0: rev 1 bal Some(1)",
            "hook 1: rev 1 bal Some(1)",
            "hook 2: rev 1 bal Some(1)"
        ]
    );
    assert_eq!(t.db.revision(), 2, "the hook's own commit");
    assert_eq!(ids(&t.db.read(), &t), [1, 2]);
}

#[test]
fn track_changes_reports_before_and_after() {
    let t = setup();
    commit_rows(&t, &[acc(1, "ann", 1), acc(2, "bob", 2), acc(3, "cat", 3)]);
    let mut w = t.db.write(&[&t.a, &t.b]);
    w.track_changes();
    w.insert(&t.a, acc(4, "dan", 4)).unwrap(); // insert
    w.insert(&t.a, acc(1, "ann", 100)).unwrap(); // update
    w.delete(&t.a, &acc(2, "", 0)).unwrap(); // delete
    assert!(w.delete(&t.a, &acc(77, "", 0)).unwrap().is_none()); // no-op: no change
    let mut dup = acc(5, "eve", 5);
    dup.code = "c3".into();
    assert!(matches!(
        w.insert(&t.a, dup),
        Err(Error::UniqueViolation { .. })
    )); // failed: no change
    w.insert(&t.b, acc(7, "bee", 7)).unwrap(); // another table
    assert_eq!(w.delete_all(&t.a_owner, "cat").unwrap(), 1);
    let c = w.commit().unwrap();
    assert_eq!(c.revision, 2);
    type Row = (String, Option<Acc>, Option<Acc>);
    let got: Vec<Row> = c
        .changes
        .iter()
        .map(|ch| {
            (
                ch.table().to_string(),
                ch.before::<Acc>().unwrap().map(|x| (*x).clone()),
                ch.after::<Acc>().unwrap().map(|x| (*x).clone()),
            )
        })
        .collect();
    let want: Vec<Row> = vec![
        ("a".into(), None, Some(acc(4, "dan", 4))),
        ("a".into(), Some(acc(1, "ann", 1)), Some(acc(1, "ann", 100))),
        ("a".into(), Some(acc(2, "bob", 2)), None),
        ("b".into(), None, Some(acc(7, "bee", 7))),
        ("a".into(), Some(acc(3, "cat", 3)), None),
    ];
    assert_eq!(got, want);
    // Wrong type: None rather than a panic.
    assert!(matches!(
        c.changes[0].after::<String>(),
        Err(Error::TypeMismatch { .. })
    ));
    assert_eq!(format!("{:?}", c.changes[1]), "Change(a update)");

    // Without track_changes, no list.
    let mut w = t.db.write(&[&t.a]);
    w.insert(&t.a, acc(9, "z", 9)).unwrap();
    let c = w.commit().unwrap();
    assert!(c.changes.is_empty());
    assert_eq!(c.revision, 3);
}

// ---------------------------------------------------------------------------
// Writer locks
// ---------------------------------------------------------------------------

#[test]
fn writer_blocks_writer_on_the_same_table() {
    let t = setup();
    let events: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let mut w1 = t.db.write(&[&t.a]);
    w1.insert(&t.a, acc(1, "first", 1)).unwrap();

    let (started_tx, started_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let (t2, ev2) = (t.clone(), events.clone());
    let h = thread::spawn(move || {
        started_tx.send(()).unwrap();
        // Also names B, which nobody holds: it still waits for A.
        let mut w2 = t2.db.write(&[&t2.b, &t2.a]);
        ev2.lock().unwrap().push("second acquired");
        // It started after the first committed: it sees its write.
        let seen = w2.get(&t2.a_id, &1).unwrap().map(|x| x.owner.clone());
        let base = w2.base_revision();
        w2.insert(&t2.a, acc(1, "second", 2)).unwrap();
        let rev = w2.commit().unwrap().revision;
        done_tx.send((seen, base, rev)).unwrap();
    });
    started_rx.recv_timeout(DEADLOCK).unwrap();
    // Whatever the scheduling, the second writer cannot get past the lock
    // while the first is open.
    thread::sleep(Duration::from_millis(100));
    assert!(
        done_rx.try_recv().is_err(),
        "second writer ran while the first held the table"
    );
    assert!(
        events.lock().unwrap().is_empty(),
        "second writer acquired a held table"
    );
    events.lock().unwrap().push("first commits");
    let rev1 = w1.commit().unwrap().revision;
    let (seen, base, rev2) = done_rx
        .recv_timeout(DEADLOCK)
        .expect("second writer never ran");
    h.join().unwrap();
    assert_eq!(
        *events.lock().unwrap(),
        ["first commits", "second acquired"]
    );
    assert_eq!(seen.as_deref(), Some("first"));
    assert_eq!((rev1, base, rev2), (1, 1, 2));
    assert_eq!(
        t.db.read().get(&t.a_id, &1).unwrap().unwrap().owner,
        "second"
    );
}

#[test]
fn writers_on_disjoint_tables_run_in_parallel() {
    let t = setup();
    let mut w1 = t.db.write(&[&t.a]);
    w1.insert(&t.a, acc(1, "a-side", 1)).unwrap();

    let (tx, rx) = mpsc::channel();
    let t2 = t.clone();
    let h = thread::spawn(move || {
        let mut w2 = t2.db.write(&[&t2.b]);
        w2.insert(&t2.b, acc(2, "b-side", 2)).unwrap();
        tx.send(w2.commit().unwrap().revision).unwrap();
    });
    // Thread 2 begins and commits while w1 is still open.
    let rev_b = rx
        .recv_timeout(DEADLOCK)
        .expect("writer of B was blocked by the writer of A");
    h.join().unwrap();
    assert_eq!(rev_b, 1);
    // w1 does not see B's commit (it started before) ...
    assert_eq!(w1.len(&t.b).unwrap(), 0);
    assert_eq!(w1.base_revision(), 0);
    // ... but committing A keeps it: the new root merges both.
    let rev_a = w1.commit().unwrap().revision;
    assert_eq!(rev_a, 2);
    let r = t.db.read();
    assert_eq!(r.get(&t.a_id, &1).unwrap().unwrap().owner, "a-side");
    assert_eq!(r.get(&t.b_id, &2).unwrap().unwrap().owner, "b-side");
}

#[test]
fn readers_never_block() {
    let t = setup();
    commit_rows(&t, &[acc(1, "ann", 1)]);
    let mut w = t.db.write_all();
    w.insert(&t.a, acc(2, "bob", 2)).unwrap();
    w.insert(&t.b, acc(3, "cat", 3)).unwrap();
    // Same thread.
    assert_eq!(ids(&t.db.read(), &t), [1]);
    // Other threads, new read transactions and snapshots.
    let (tx, rx) = mpsc::channel();
    for _ in 0..2 {
        let (t2, tx) = (t.clone(), tx.clone());
        thread::spawn(move || {
            let r = t2.db.read();
            let s = t2.db.read();
            tx.send((ids(&r, &t2), s.len(&t2.b).unwrap(), r.revision()))
                .unwrap();
        });
    }
    for _ in 0..2 {
        assert_eq!(
            rx.recv_timeout(DEADLOCK).expect("a reader blocked"),
            (vec![1], 0, 1)
        );
    }
    w.commit().unwrap();
    assert_eq!(ids(&t.db.read(), &t), [1, 2]);
}

// ---------------------------------------------------------------------------
// Typed errors and Send
// ---------------------------------------------------------------------------

#[test]
fn writing_a_table_not_named_is_table_not_locked() {
    let t = setup();
    let mut wb = t.db.write(&[&t.b]);
    wb.insert(&t.b, acc(1, "in b", 1)).unwrap();
    wb.commit().unwrap();
    let mut w = t.db.write(&[&t.a]);
    let x = acc(1, "x", 1);
    assert_eq!(
        w.insert(&t.b, x.clone()).unwrap_err(),
        Error::TableNotLocked("b".into())
    );
    assert_eq!(
        w.delete(&t.b, &x).unwrap_err(),
        Error::TableNotLocked("b".into())
    );
    assert_eq!(
        w.delete_all(&t.b_id, &1).unwrap_err(),
        Error::TableNotLocked("b".into())
    );
    assert!(matches!(
        w.delete_prefix(&t.b_id, &1),
        Err(Error::TableNotLocked(_))
    ));
    let e = w.insert(&t.b, x.clone()).unwrap_err();
    assert!(e.to_string().contains("\"b\""), "{e}");
    // Reading it is fine; writing the named table is fine.
    assert_eq!(w.len(&t.b).unwrap(), 1);
    w.insert(&t.a, x).unwrap();
    // A transaction naming nothing can write nothing.
    let mut none = t.db.write(&[]);
    assert!(matches!(
        none.insert(&t.b, acc(1, "", 0)),
        Err(Error::TableNotLocked(_))
    ));
    drop(none);
    w.commit().unwrap();
    assert_eq!(t.db.read().get(&t.b_id, &1).unwrap().unwrap().owner, "in b");
    assert_eq!(t.db.read().len(&t.a).unwrap(), 1);
}

#[test]
fn delete_all_on_unlocked_table_is_an_error_even_when_nothing_matches() {
    let t = setup();
    let mut w = t.db.write(&[&t.a]);
    assert_eq!(
        w.delete_all(&t.b_id, &1),
        Err(Error::TableNotLocked("b".into()))
    );
    assert_eq!(
        w.delete_prefix(&t.b_id, &1),
        Err(Error::TableNotLocked("b".into()))
    );
}

#[test]
fn handles_of_another_schema_are_unknown_tables() {
    let t = setup();
    let other = setup(); // same shape, different schema
    let mut w = t.db.write(&[&t.a, &other.a]);
    let x = acc(1, "x", 1);
    assert_eq!(
        w.insert(&other.a, x.clone()).unwrap_err(),
        Error::ForeignHandle("a".into())
    );
    assert!(matches!(
        w.delete(&other.a, &x),
        Err(Error::ForeignHandle(_))
    ));
    assert!(matches!(
        w.get(&other.a_id, &1),
        Err(Error::ForeignHandle(_))
    ));
    assert!(matches!(w.len(&other.a), Err(Error::ForeignHandle(_))));
    let r = t.db.read();
    assert!(matches!(
        r.get(&other.a_id, &1),
        Err(Error::ForeignHandle(_))
    ));
    assert!(matches!(r.all(&other.a_id), Err(Error::ForeignHandle(_))));
    assert!(matches!(
        r.count(&other.a_owner, "x"),
        Err(Error::ForeignHandle(_))
    ));
    assert!(matches!(r.len(&other.b), Err(Error::ForeignHandle(_))));
    let e = r.len(&other.a).unwrap_err();
    assert!(e.to_string().contains("\"a\""), "{e}");
    // The foreign handle did not lock anything in either database.
    let (tx, rx) = mpsc::channel();
    let o = other.clone();
    thread::spawn(move || {
        let mut w2 = o.db.write(&[&o.a]);
        w2.insert(&o.a, acc(1, "other", 1)).unwrap();
        tx.send(w2.commit().unwrap().revision).unwrap();
    });
    assert_eq!(rx.recv_timeout(DEADLOCK).unwrap(), 1);
    w.insert(&t.a, x).unwrap();
    w.commit().unwrap();
}

#[test]
fn read_txn_is_send_and_sync_and_queryable_on_another_thread() {
    fn assert_send_sync<X: Send + Sync>() {}
    fn assert_send<X: Send>() {}
    assert_send_sync::<ReadTxn>();
    assert_send_sync::<Db>();
    assert_send::<WriteTxn>();

    let t = setup();
    commit_rows(&t, &[acc(1, "ann", 1), acc(2, "bob", 2)]);
    let r = t.db.read();
    let mut w = t.db.write(&[&t.a]);
    w.insert(&t.a, acc(3, "cat", 3)).unwrap();
    w.commit().unwrap();
    let t2 = t.clone();
    let got = thread::spawn(move || {
        (
            ids(&r, &t2),
            r.count(&t2.a_owner, "ann").unwrap(),
            r.revision(),
        )
    })
    .join()
    .unwrap();
    assert_eq!(got, (vec![1, 2], 1, 1));

    // A write transaction can also move threads and commit there.
    let mut w = t.db.write(&[&t.a]);
    w.insert(&t.a, acc(4, "dog", 4)).unwrap();
    let rev = thread::spawn(move || w.commit().unwrap().revision)
        .join()
        .unwrap();
    assert_eq!(rev, 3);
    assert_eq!(ids(&t.db.read(), &t), [1, 2, 3, 4]);
}

#[test]
fn revisions_are_monotonic_and_empty_commits_publish_nothing() {
    let t = setup();
    assert_eq!(t.db.revision(), 0);
    assert_eq!(t.db.read().revision(), 0);
    let w = t.db.write(&[&t.a]);
    assert_eq!(w.commit().unwrap().revision, 0, "nothing written");
    let mut last = 0;
    for i in 0..10 {
        let mut w = t.db.write(&[&t.a]);
        assert_eq!(w.base_revision(), last);
        w.insert(&t.a, acc(i, "x", 0)).unwrap();
        let rev = w.commit().unwrap().revision;
        assert_eq!(rev, last + 1);
        assert_eq!(t.db.revision(), rev);
        last = rev;
    }
}

#[test]
fn failed_insert_alone_publishes_nothing() {
    let t = setup();
    commit_rows(&t, &[acc(1, "ann", 1)]);
    let mut w = t.db.write(&[&t.a]);
    let mut dup = acc(2, "bob", 2);
    dup.code = "c1".into();
    assert!(matches!(
        w.insert(&t.a, dup),
        Err(Error::UniqueViolation { .. })
    ));
    let c = w.commit().unwrap();
    assert_eq!(c.revision, 1, "a failed insert published a new revision");
    assert_eq!(t.db.revision(), 1);
}

#[test]
fn deleting_nothing_publishes_nothing() {
    let t = setup();
    commit_rows(&t, &[acc(1, "ann", 1)]);
    let mut w = t.db.write(&[&t.a]);
    assert!(w.delete(&t.a, &acc(42, "", 0)).unwrap().is_none());
    assert_eq!(w.delete_all(&t.a_owner, "nobody").unwrap(), 0);
    let c = w.commit().unwrap();
    assert_eq!(c.revision, 1, "deleting nothing published a new revision");
}

#[test]
fn two_databases_of_one_schema_are_independent() {
    let t = setup();
    let db2 = Db::new(t.db.schema().clone());
    // Holding table A of one database does not lock A of the other.
    let mut w1 = t.db.write(&[&t.a]);
    w1.insert(&t.a, acc(1, "one", 1)).unwrap();
    let (tx, rx) = mpsc::channel();
    let (d2, a) = (db2.clone(), t.a.clone());
    thread::spawn(move || {
        let mut w2 = d2.write(&[&a]);
        w2.insert(&a, acc(2, "two", 2)).unwrap();
        tx.send(w2.commit().unwrap().revision).unwrap();
    });
    assert_eq!(
        rx.recv_timeout(DEADLOCK).expect("blocked by the other db"),
        1
    );
    w1.commit().unwrap();
    assert_eq!(ids(&t.db.read(), &t), [1]);
    assert_eq!(ids(&db2.read(), &t), [2]);
}

/// An indexer that panics (here: when armed) runs before the write changes
/// anything, so a caught panic leaves the transaction exactly as it was.
#[test]
fn a_panicking_indexer_leaves_the_transaction_unchanged() {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::atomic::{AtomicBool, Ordering};
    static ARMED: AtomicBool = AtomicBool::new(false);
    struct R {
        id: u32,
        tag: String,
    }
    let mut s = Schema::builder();
    let mut t = s.table::<R>("r");
    let by_id = t.primary("id", Indexer::value(|r: &R| r.id));
    let by_tag = t.index(
        "tag",
        Indexer::custom(|r: &R, keys| {
            assert!(!ARMED.load(Ordering::SeqCst), "indexer armed to panic");
            keys.add(r.tag.as_str());
        }),
    );
    let t = s.add(t).unwrap();
    let db = Db::new(s.build().unwrap());
    let mut w = db.write(&[&t]);
    for (id, tag) in [(1, "a"), (2, "b")] {
        w.insert(
            &t,
            R {
                id,
                tag: tag.into(),
            },
        )
        .unwrap();
    }
    w.commit().unwrap();

    let mut w = db.write(&[&t]);
    ARMED.store(true, Ordering::SeqCst);
    let deleted = catch_unwind(AssertUnwindSafe(|| {
        w.delete(
            &t,
            &R {
                id: 1,
                tag: "a".into(),
            },
        )
    }));
    let inserted = catch_unwind(AssertUnwindSafe(|| {
        w.insert(
            &t,
            R {
                id: 3,
                tag: "c".into(),
            },
        )
    }));
    ARMED.store(false, Ordering::SeqCst);
    assert!(deleted.is_err() && inserted.is_err());
    assert_eq!(w.len(&t).unwrap(), 2);
    assert!(w.get(&by_id, &1).unwrap().is_some());
    assert!(w.get(&by_id, &3).unwrap().is_none());
    assert_eq!(w.count(&by_tag, "a").unwrap(), 1);
    assert_eq!(w.count(&by_tag, "c").unwrap(), 0);
    assert_eq!(w.index_len(&by_tag).unwrap(), 2);
    assert_eq!(w.commit().unwrap().revision, 1, "nothing was written");
}
