//! The change feed (G9): batches in revision order, one per commit, no
//! gaps, no duplicates, atomic, resumable, "compacted" beyond the retained
//! window, and writers never held up by a slow subscriber.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use pandodb::{ChangeKind, Db, Error, Index, Indexer, Options, Retention, Schema, Table};

#[derive(Debug, Clone, PartialEq)]
struct Item {
    id: u32,
    v: u64,
}

struct Setup {
    db: Db,
    a: Table<Item>,
    a_id: Index<Item, u32>,
    b: Table<Item>,
}

fn setup(retention: Retention) -> Setup {
    let mut s = Schema::builder();
    let mut a = s.table::<Item>("a");
    let a_id = a.primary("id", Indexer::value(|i: &Item| i.id));
    let a = s.add(a).unwrap();
    let mut b = s.table::<Item>("b");
    b.primary("id", Indexer::value(|i: &Item| i.id));
    let b = s.add(b).unwrap();
    Setup {
        db: Db::with_options(
            s.build().unwrap(),
            Options::default().feed_retention(retention),
        ),
        a,
        a_id,
        b,
    }
}

#[test]
fn batches_carry_inserts_updates_and_deletes() {
    let s = setup(Retention::default());
    let mut sub = s.db.subscribe(&[&s.a], 1).unwrap();
    assert!(sub.try_next().unwrap().is_none());
    let mut w = s.db.write(&[&s.a, &s.b]);
    w.insert(&s.a, Item { id: 1, v: 1 }).unwrap();
    w.insert(&s.a, Item { id: 2, v: 1 }).unwrap();
    w.insert(&s.b, Item { id: 9, v: 9 }).unwrap();
    w.commit().unwrap();
    let mut w = s.db.write(&[&s.a]);
    w.insert(&s.a, Item { id: 1, v: 2 }).unwrap();
    w.delete_all(&s.a_id, &2).unwrap();
    w.commit().unwrap();
    let mut w = s.db.write(&[&s.b]);
    w.insert(&s.b, Item { id: 8, v: 8 }).unwrap();
    w.commit().unwrap();

    let b1 = sub.try_next().unwrap().unwrap();
    assert_eq!(b1.revision, 1);
    // Only the subscribed table's changes.
    let kinds: Vec<_> = b1
        .changes
        .iter()
        .map(|c| (c.table().to_string(), c.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("a".into(), ChangeKind::Insert),
            ("a".into(), ChangeKind::Insert)
        ]
    );
    let b2 = sub.try_next().unwrap().unwrap();
    assert_eq!(b2.revision, 2);
    let c = &b2.changes;
    assert_eq!(c[0].kind(), ChangeKind::Update);
    assert_eq!(c[0].before::<Item>().unwrap().unwrap().v, 1);
    assert_eq!(c[0].after::<Item>().unwrap().unwrap().v, 2);
    assert_eq!(c[1].kind(), ChangeKind::Delete);
    assert_eq!(c[1].before::<Item>().unwrap().unwrap().id, 2);
    // Revision 3 touched only `b`: skipped, and nothing more.
    assert!(sub.try_next().unwrap().is_none());
    assert_eq!(sub.revision(), 4);
    // All tables: three batches.
    let all: Vec<u64> =
        s.db.subscribe(&[], 1)
            .unwrap()
            .take(3)
            .map(|b| b.unwrap().revision)
            .collect();
    assert_eq!(all, [1, 2, 3]);
    // From a later revision.
    let mut late = s.db.subscribe(&[], 3).unwrap();
    assert_eq!(late.try_next().unwrap().unwrap().revision, 3);
}

#[test]
fn history_beyond_retention_is_compacted_and_writers_never_wait() {
    let s = setup(Retention::commits(10));
    let mut slow = s.db.subscribe(&[&s.a], 1).unwrap();
    // Nobody reads: writers go on.
    for i in 0..1000 {
        let mut w = s.db.write(&[&s.a]);
        w.insert(&s.a, Item { id: i, v: 0 }).unwrap();
        w.commit().unwrap();
    }
    assert_eq!(
        slow.try_next().unwrap_err(),
        Error::Compacted { oldest: 991 }
    );
    assert!(slow.next().is_none(), "the iterator ends after an error");
    let mut slow = s.db.subscribe(&[&s.a], 991).unwrap();
    drop(s.db.write(&[&s.a])); // nothing written
    for i in 0..20 {
        let mut w = s.db.write(&[&s.a]);
        w.insert(&s.a, Item { id: i, v: 1 }).unwrap();
        w.commit().unwrap();
    }
    assert!(matches!(
        slow.next(),
        Some(Err(Error::Compacted { oldest: 1011 }))
    ));
    assert!(slow.next().is_none());
    assert_eq!(
        s.db.subscribe(&[&s.a], 1010).unwrap_err(),
        Error::Compacted { oldest: 1011 }
    );
    let mut sub = s.db.subscribe(&[&s.a], 1011).unwrap();
    let revs: Vec<u64> = std::iter::from_fn(|| sub.try_next().unwrap())
        .map(|b| b.revision)
        .collect();
    assert_eq!(revs, (1011..=1020).collect::<Vec<_>>());
    // A byte limit: a commit larger than the whole budget is not kept; small
    // ones are, newest first.
    let s = setup(Retention::bytes(1));
    for i in 0..5 {
        let mut w = s.db.write(&[&s.a]);
        w.insert(&s.a, Item { id: i, v: 0 }).unwrap();
        w.commit().unwrap();
    }
    assert_eq!(
        s.db.subscribe(&[], 5).unwrap_err(),
        Error::Compacted { oldest: 6 }
    );
    let s = setup(Retention::bytes(4096));
    for i in 0..100 {
        let mut w = s.db.write(&[&s.a]);
        w.insert(&s.a, Item { id: i, v: 0 }).unwrap();
        w.commit().unwrap();
    }
    let oldest = match s.db.subscribe(&[], 1) {
        Err(Error::Compacted { oldest }) => oldest,
        other => panic!("expected compaction, got {other:?}"),
    };
    assert!(oldest > 1 && oldest < 100, "{oldest}");
    let mut sub = s.db.subscribe(&[], oldest).unwrap();
    let n = std::iter::from_fn(|| sub.try_next().unwrap()).count() as u64;
    assert_eq!(n, 101 - oldest);
    // Feed off.
    let s = setup(Retention::commits(0));
    let mut w = s.db.write(&[&s.a]);
    w.insert(&s.a, Item { id: 1, v: 0 }).unwrap();
    w.commit().unwrap();
    assert_eq!(
        s.db.subscribe(&[], 1).unwrap_err(),
        Error::Compacted { oldest: 2 }
    );
}

/// What each commit did, as the writer saw it: revision → per table
/// (id, new value or deleted).
type Log = BTreeMap<u64, Vec<Did>>;

/// One change: table, id, new value (`None`: deleted).
type Did = (String, u32, Option<u64>);

#[test]
fn validators_under_a_fast_writer() {
    let s = Arc::new(setup(Retention::commits(1_000_000)));
    let writes = 20_000u64;
    let writer = {
        let s = s.clone();
        thread::spawn(move || {
            let mut log = Log::new();
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            for i in 0..writes {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let (table, other) = if x.is_multiple_of(3) {
                    (&s.b, "b")
                } else {
                    (&s.a, "a")
                };
                let mut w = s.db.write(&[&s.a, &s.b]);
                let mut did = Vec::new();
                // One to three changes per commit, sometimes on both tables.
                for k in 0..=(x % 3) {
                    let id = ((x >> (8 * k)) % 50) as u32;
                    if (x >> 40).is_multiple_of(5) {
                        if w.delete(table, &Item { id, v: 0 }).unwrap().is_some() {
                            did.push((other.to_string(), id, None));
                        }
                    } else {
                        w.insert(table, Item { id, v: i }).unwrap();
                        did.push((other.to_string(), id, Some(i)));
                    }
                }
                if x.is_multiple_of(7) {
                    w.insert(&s.a, Item { id: 99, v: i }).unwrap();
                    did.push(("a".to_string(), 99, Some(i)));
                }
                let rev = w.commit().unwrap().revision;
                if !did.is_empty() {
                    assert!(log.insert(rev, did).is_none());
                }
            }
            log
        })
    };
    // Subscriber on `a`, reading while the writer runs; it drops its
    // subscription half-way and resumes from where it stopped.
    let mut got: Vec<(u64, Vec<Did>)> = Vec::new();
    let mut sub = s.db.subscribe(&[&s.a], 1).unwrap();
    let mut resumed = false;
    loop {
        let batch = match sub.next_timeout(Duration::from_millis(200)).unwrap() {
            Some(b) => b,
            None if writer.is_finished() => match sub.try_next().unwrap() {
                Some(b) => b,
                None => break,
            },
            None => continue,
        };
        let changes = batch
            .changes
            .iter()
            .map(|c| {
                let obj = c
                    .after::<Item>()
                    .unwrap()
                    .or(c.before::<Item>().unwrap())
                    .unwrap();
                (
                    c.table().to_string(),
                    obj.id,
                    c.after::<Item>().unwrap().map(|a| a.v),
                )
            })
            .collect();
        got.push((batch.revision, changes));
        if !resumed && got.len() == 1000 {
            let from = sub.revision();
            drop(sub);
            sub = s.db.subscribe(&[&s.a], from).unwrap();
            resumed = true;
        }
    }
    let log = writer.join().unwrap();
    // Ordered and unique.
    assert!(
        got.windows(2).all(|w| w[0].0 < w[1].0),
        "out of order or duplicated"
    );
    // Atomic and gap-free: exactly the commits that changed `a`, each with
    // exactly its changes to `a`, in order.
    let want: Vec<(u64, Vec<Did>)> = log
        .into_iter()
        .map(|(rev, did)| {
            (
                rev,
                did.into_iter().filter(|d| d.0 == "a").collect::<Vec<_>>(),
            )
        })
        .filter(|(_, d)| !d.is_empty())
        .collect();
    assert_eq!(got.len(), want.len(), "batches missing or extra");
    assert_eq!(got, want);
    assert!(resumed);
}
