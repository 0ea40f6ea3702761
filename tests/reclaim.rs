//! Reclamation of replaced versions, measured with a counting allocator.
//!
//! - Thousands of snapshots of random ages taken and dropped while two
//!   writers commit: every snapshot reads back exactly what it read when it
//!   was taken; once they are all gone, memory is back to what a database
//!   built afresh from the final rows takes, and dropping the database
//!   returns every byte (no leak; a double free would crash the allocator
//!   or corrupt the counts).
//! - One snapshot held across 100,000 single-object updates: memory stays
//!   under twice the database's size (a version is kept only while some
//!   snapshot can reach it; what only the intermediate versions reached is
//!   freed).
//!
//! - The same two checks on `pandodb::tree::VersionedTree` alone, the
//!   tree whose replaced nodes are reclaimed by version interval: versions
//!   of random ages, read and dropped on another thread while the writer
//!   commits, each read back exactly; memory back to a fresh tree's once
//!   they are gone, every byte back once the tree is dropped; one version
//!   held across 100,000 single-key updates keeps memory under twice the
//!   tree's size.
//!
//! The tests share one allocation counter, so they run one at a time.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pandodb::{Db, Index, Indexer, Options, Query, ReadTxn, Retention, Schema, Table};

/// The system allocator, counting the bytes in use (`cap`).
#[global_allocator]
static ALLOC: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// Serializes the tests: they read one process-wide counter.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn live() -> usize {
    // The blocks of freed nodes this thread keeps for reuse are not in use.
    pandodb::tree::release_thread_cache();
    ALLOC.allocated()
}

#[derive(Debug, Clone, PartialEq)]
struct Person {
    id: u64,
    email: String,
    age: u8,
}

struct People {
    db: Db,
    t: Table<Person>,
    by_id: Index<Person, u64>,
    by_age: Index<Person, u8>,
}

fn people() -> People {
    let mut s = Schema::builder();
    let mut t = s.table::<Person>("people");
    let by_id = t.primary("id", Indexer::value(|p: &Person| p.id));
    let _by_email = t.unique("email", Indexer::string(|p: &Person| p.email.as_str()));
    let by_age = t.index("age", Indexer::value(|p: &Person| p.age));
    let t = s.add(t).unwrap();
    People {
        // The change feed off: its retained history (the last 10,000
        // commits by default) holds objects of replaced versions on purpose.
        db: Db::with_options(
            s.build().unwrap(),
            Options::default().feed_retention(Retention::commits(0)),
        ),
        t,
        by_id,
        by_age,
    }
}

fn person(id: u64, v: u64) -> Person {
    Person {
        id,
        email: format!("u{id}-{v}@example.com"),
        age: (v % 97) as u8,
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Everything a snapshot reads: every row by primary key, and the
/// secondary index's order, folded into one number.
fn digest(p: &People, r: &ReadTxn) -> (usize, u64) {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |x: u64| {
        h ^= x;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    };
    let mut n = 0;
    for o in r.all(&p.by_id).unwrap() {
        mix(o.id);
        mix(u64::from(o.age));
        mix(o.email.len() as u64);
        n += 1;
    }
    for o in r.all(&p.by_age).unwrap() {
        mix(o.id.rotate_left(17));
    }
    (n, h)
}

/// Settles what the last commit left for the next writer (see
/// ARCHITECTURE.md, "Lending"): a write transaction that writes nothing.
fn settle(p: &People) {
    p.db.write(&[&p.t]).commit().unwrap();
}

#[test]
fn snapshots_of_random_ages_read_their_version_and_memory_comes_back() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const N: u64 = 5_000;
    const COMMITS_PER_WRITER: u64 = 6_000;
    let baseline = live();
    let p = Arc::new(people());
    let empty = live() - baseline;
    let mut w = p.db.write(&[&p.t]);
    for id in 0..N {
        w.insert(&p.t, person(id, 0)).unwrap();
    }
    w.commit().unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2u64)
        .map(|k| {
            let p = p.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0xfeed + k);
                for c in 0..COMMITS_PER_WRITER {
                    let mut w = p.db.write(&[&p.t]);
                    for _ in 0..1 + rng.below(3) {
                        // Ids 0..2N: inserts, updates and deletes all happen.
                        let id = rng.below(2 * N);
                        if rng.below(4) == 0 {
                            w.delete(&p.t, &person(id, 0)).ok();
                        } else {
                            w.insert(&p.t, person(id, c * 2 + k + 1)).unwrap();
                        }
                    }
                    w.commit().unwrap();
                }
            })
        })
        .collect();

    // Snapshots taken at random moments, each kept for a random number of
    // later snapshots (0 to 64), checked again when dropped.
    let mut rng = Rng(7);
    let mut kept: VecDeque<(ReadTxn, (usize, u64), u64)> = VecDeque::new();
    let (mut taken, mut checked) = (0u64, 0u64);
    let finished = |ws: &[std::thread::JoinHandle<()>]| ws.iter().all(|w| w.is_finished());
    while !finished(&writers) || taken < 2_000 {
        let r = p.db.read();
        let d = digest(&p, &r);
        let until = taken + rng.below(65);
        kept.push_back((r, d, until));
        taken += 1;
        // Drop, in random order, the snapshots whose time has come.
        let mut i = 0;
        while i < kept.len() {
            if kept[i].2 <= taken && rng.below(2) == 0 {
                let (r, d, _) = kept.remove(i).unwrap();
                assert_eq!(digest(&p, &r), d, "snapshot at {} changed", r.revision());
                checked += 1;
            } else {
                i += 1;
            }
        }
    }
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    for (r, d, _) in kept.drain(..) {
        assert_eq!(digest(&p, &r), d, "snapshot at {} changed", r.revision());
        checked += 1;
    }
    assert!(checked >= 2_000, "only {checked} snapshots checked");
    // Commits whose deletes all missed wrote nothing and took no revision.
    assert!(p.db.revision() > COMMITS_PER_WRITER);
    settle(&p);
    let after = live() - baseline;

    // The same rows in a database built afresh.
    let rows: Vec<Person> =
        p.db.read()
            .all(&p.by_id)
            .unwrap()
            .map(|o| (*o).clone())
            .collect();
    let fresh_base = live();
    let q = people();
    let mut w = q.db.write(&[&q.t]);
    for o in &rows {
        w.insert(&q.t, o.clone()).unwrap();
    }
    w.commit().unwrap();
    settle(&q);
    let fresh = live() - fresh_base;
    assert_eq!(digest(&q, &q.db.read()), digest(&p, &p.db.read()));
    drop(q);
    drop(rows);
    // Node capacities depend on the order keys came in (a node that grew
    // and shrank keeps spare slots), so the sizes agree only roughly.
    assert!(
        (after as f64) < 1.3 * fresh as f64 && (after as f64) > 0.7 * fresh as f64,
        "after the churn the database takes {after} B; built afresh, {fresh} B"
    );
    eprintln!("after the churn: {after} B; the same rows built afresh: {fresh} B");
    // Exactly: once every row is deleted, nothing of any version is left
    // but the empty database.
    let mut w = p.db.write(&[&p.t]);
    let all: Vec<Arc<Person>> = w.all(&p.by_id).unwrap().collect();
    for o in all {
        w.delete(&p.t, &o).unwrap();
    }
    w.commit().unwrap();
    settle(&p);
    assert_eq!(p.db.read().len(&p.t).unwrap(), 0);
    let emptied = live() - baseline;
    assert!(
        emptied < empty + (16 << 10),
        "{emptied} B in use with every row deleted; an empty database takes {empty} B"
    );

    let p = Arc::try_unwrap(p).unwrap_or_else(|_| panic!("a writer still holds the database"));
    drop(p);
    let left = live().saturating_sub(baseline);
    // Only what the test harness itself allocated meanwhile may remain.
    assert!(left < 64 << 10, "{left} B left after dropping the database");
}

#[test]
fn one_snapshot_across_100k_updates_keeps_memory_under_twice_the_database() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const N: u64 = 200_000;
    const UPDATES: u64 = 100_000;
    let baseline = live();
    let p = people();
    let mut w = p.db.write(&[&p.t]);
    for id in 0..N {
        w.insert(&p.t, person(id, 0)).unwrap();
    }
    w.commit().unwrap();
    settle(&p);
    let size = live() - baseline;

    let snap = p.db.read();
    let mut rng = Rng(11);
    let mut peak = 0;
    for u in 0..UPDATES {
        let id = rng.below(N);
        let mut w = p.db.write(&[&p.t]);
        w.insert(&p.t, person(id, u + 1)).unwrap();
        w.commit().unwrap();
        if u % 1_000 == 0 {
            peak = peak.max(live() - baseline);
        }
    }
    peak = peak.max(live() - baseline);
    assert!(
        peak < 2 * size,
        "peak {peak} B with one snapshot held; the database is {size} B"
    );
    // The snapshot still reads its version.
    let mut rng = Rng(3);
    for _ in 0..2_000 {
        let id = rng.below(N);
        assert_eq!(
            snap.get(&p.by_id, &id).unwrap().as_deref(),
            Some(&person(id, 0))
        );
    }
    assert_eq!(snap.len(&p.t).unwrap(), N as usize);
    eprintln!(
        "database {size} B ({} B per object); peak with one snapshot across {UPDATES} updates {peak} B ({:.2}×)",
        size / N as usize,
        peak as f64 / size as f64
    );
}

// ---- The versioned tree alone ----------------------------------------------

fn tree_key(i: u64) -> Vec<u8> {
    format!("key-{i:08}").into_bytes()
}

/// An order-independent digest of a version's pairs.
fn pair_digest<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a u64)>) -> (usize, u64) {
    let mut n = 0;
    let mut sum = 0u64;
    for (k, v) in pairs {
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ v.wrapping_mul(0x100_0000_01b3);
        for &b in k {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        sum = sum.wrapping_add(h);
        n += 1;
    }
    (n, sum)
}

#[test]
fn versioned_tree_versions_of_random_ages_read_their_version_and_memory_returns() {
    use pandodb::tree::{Version, VersionedTree};
    use std::collections::BTreeMap;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const N: u64 = 20_000;
    const ROUNDS: u64 = 30_000;
    let baseline = live();
    let mut model: BTreeMap<Vec<u8>, u64> = (0..N).map(|i| (tree_key(i), i)).collect();
    let mut line: VersionedTree<u64> = model.iter().map(|(k, v)| (k, *v)).collect();
    let (tx, rx) = std::sync::mpsc::channel::<(Version<u64>, (usize, u64))>();
    let reader = std::thread::spawn(move || {
        let mut held: VecDeque<(Version<u64>, (usize, u64))> = VecDeque::new();
        let mut rng = Rng(5);
        let mut checked = 0;
        let check = |(v, want): (Version<u64>, (usize, u64))| {
            assert_eq!(
                pair_digest(v.view().iter()),
                want,
                "version {} reads another version",
                v.revision()
            );
        };
        for got in rx {
            held.push_back(got);
            // Random ages: some go at once, some stay for long.
            while held.len() > 48 || (!held.is_empty() && rng.below(3) == 0) {
                let at = rng.below(held.len() as u64) as usize;
                if let Some(h) = held.swap_remove_back(at) {
                    check(h);
                    checked += 1;
                }
            }
        }
        for h in held {
            check(h);
            checked += 1;
        }
        checked
    });
    let mut rng = Rng(17);
    for round in 0..ROUNDS {
        let mut txn = line.txn();
        for _ in 0..=rng.below(3) {
            let k = tree_key(rng.below(2 * N));
            if rng.below(4) == 0 {
                assert_eq!(txn.remove(&k), model.remove(&k));
            } else {
                assert_eq!(txn.insert(&k, round), model.insert(k, round));
            }
        }
        if rng.below(10) == 0 {
            drop(txn); // aborted: the model goes back too
            model = line.view().iter().map(|(k, v)| (k.to_vec(), *v)).collect();
        } else {
            txn.commit();
        }
        if round % 10 == 0 {
            let want = pair_digest(model.iter().map(|(k, v)| (&k[..], v)));
            tx.send((line.version(), want)).unwrap();
        }
    }
    drop(tx);
    let checked = reader.join().unwrap();
    assert_eq!(checked, ROUNDS as usize / 10);
    line.reclaim();
    assert_eq!(line.waiting_garbage(), 0);
    assert_eq!(line.pinned_revisions(), 0);
    drop(model);
    let after = live() - baseline;

    let fresh_base = live();
    let fresh: VersionedTree<u64> = line.view().iter().map(|(k, v)| (k, *v)).collect();
    let fresh_bytes = live() - fresh_base;
    assert!(
        (after as f64) < 1.3 * fresh_bytes as f64 && (after as f64) > 0.7 * fresh_bytes as f64,
        "after the churn the tree takes {after} B; built afresh, {fresh_bytes} B"
    );
    eprintln!("after the churn: {after} B; the same keys built afresh: {fresh_bytes} B");
    drop((fresh, line));
    let left = live().saturating_sub(baseline);
    assert!(left < 64 << 10, "{left} B left after dropping the trees");
}

#[test]
fn versioned_tree_one_version_across_100k_updates_keeps_memory_under_twice_the_tree() {
    use pandodb::tree::VersionedTree;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // As in the database's test above: 200,000 keys.
    const N: u64 = 200_000;
    const UPDATES: u64 = 100_000;
    let baseline = live();
    let mut line: VersionedTree<u64> = (0..N).map(|i| (tree_key(i), i)).collect();
    let size = live() - baseline;
    let held = line.version();
    let mut rng = Rng(23);
    let mut peak = 0;
    for u in 0..UPDATES {
        let mut txn = line.txn();
        txn.insert(&tree_key(rng.below(N)), N + u);
        txn.commit();
        if u % 1_000 == 0 {
            peak = peak.max(live() - baseline);
        }
    }
    peak = peak.max(live() - baseline);
    assert!(
        peak < 2 * size,
        "peak {peak} B with one version held; the tree is {size} B"
    );
    for i in (0..N).step_by(97) {
        assert_eq!(held.view().get(&tree_key(i)), Some(&i));
    }

    eprintln!(
        "tree {size} B; peak with one version held across {UPDATES} updates {peak} B ({:.2}x)",
        peak as f64 / size as f64
    );
    drop(held);
    line.reclaim();
    assert_eq!(line.waiting_garbage(), 0);
}
