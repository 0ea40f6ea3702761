//! Stress tests whose values track their own life (a global set of live
//! ids): a value dropped while a held version or the current one still
//! reaches it, a value dropped twice, or one never dropped, shows without
//! reading freed memory. At the end of each run every node and leaf holds
//! exactly one count.

use super::super::*;
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The tests below share the set of live values: one at a time.
static ONE_AT_A_TIME: StdMutex<()> = StdMutex::new(());

static NEXT: AtomicU64 = AtomicU64::new(1);
static LIVE: StdMutex<Option<HashSet<u64>>> = StdMutex::new(None);
static SEEN_LARGE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static SEEN_MEDIUM: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static DOUBLE: AtomicU64 = AtomicU64::new(0);

fn live_insert(id: u64) {
    LIVE.lock()
        .unwrap()
        .get_or_insert_with(HashSet::new)
        .insert(id);
}
fn is_live(id: u64) -> bool {
    LIVE.lock()
        .unwrap()
        .get_or_insert_with(HashSet::new)
        .contains(&id)
}

#[derive(Debug)]
struct T(u64);
impl T {
    fn new() -> T {
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        live_insert(id);
        T(id)
    }
}
impl Clone for T {
    fn clone(&self) -> T {
        T::new()
    }
}
impl Drop for T {
    fn drop(&mut self) {
        if !LIVE
            .lock()
            .unwrap()
            .get_or_insert_with(HashSet::new)
            .remove(&self.0)
        {
            DOUBLE.fetch_add(1, Ordering::Relaxed);
        }
    }
}

type Model = BTreeMap<Vec<u8>, u64>;

fn lcg(s: &mut u64) -> u32 {
    *s = s
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*s >> 33) as u32
}

fn key(s: &mut u64) -> Vec<u8> {
    let i = lcg(s);
    match i % 10 {
        0 => b"abcdefgh"[..(i as usize / 10 % 8) + 1].to_vec(),
        1..=4 => vec![b'f', (i / 10 % 256) as u8],
        5 => vec![b'f', (i / 10 % 256) as u8, b'z'],
        6 => format!("long-shared-prefix-{:03}", i / 10 % 40).into_bytes(),
        7 => format!("k{}/{}", i / 10 % 7, i / 70 % 5).into_bytes(),
        _ => vec![b'g', (i / 10 % 60) as u8, (i / 600 % 3) as u8],
    }
}

fn check_alive(m: &Model, what: &str) {
    for (k, id) in m {
        assert!(
            is_live(*id),
            "{what}: value {id} of key {k:?} was dropped while reachable"
        );
    }
}

fn check_reads(v: View<'_, T>, m: &Model) {
    v.check_invariants().unwrap();
    let got: Vec<(Vec<u8>, u64)> = v.iter().map(|(k, t)| (k.to_vec(), t.0)).collect();
    let want: Vec<(Vec<u8>, u64)> = m.iter().map(|(k, id)| (k.clone(), *id)).collect();
    assert_eq!(got, want);
}

/// Every node and leaf of `root` has exactly one count (no garbage waits,
/// no version is held): anything else is a count leaked or short.
fn check_counts(root: Option<&Inner<Stamped<T>>>) {
    let Some(r) = root else { return };
    let mut stack = vec![r];
    while let Some(n) = stack.pop() {
        if let Some(t) = &n.terminal {
            assert_eq!(t.count(), 1, "terminal {:?}", t.key());
        }
        for s in n.slots().iter().flatten() {
            match s.get() {
                EntryRef::Leaf(l) => assert_eq!(l.count(), 1, "leaf {:?}", l.key()),
                EntryRef::Inner(c) => {
                    assert_eq!(c.count_refs(), 1, "inner node count");
                    stack.push(c);
                }
            }
        }
    }
}

/// Up to `max_ops` random writes through `txn`, mirrored in `next`:
/// inserts of fresh values, removals, removals of a short prefix and, now
/// and then, of everything.
fn random_writes(txn: &mut VersionTxn<'_, T>, next: &mut Model, seed: &mut u64, max_ops: u32) {
    for _ in 0..(lcg(seed) % max_ops + 1) {
        let k = key(seed);
        match lcg(seed) % 20 {
            0..=11 => {
                let t = T::new();
                next.insert(k.clone(), t.0);
                txn.insert(&k, t);
            }
            12..=16 => {
                let r = txn.remove(&k).map(|t| t.0);
                // the value returned is a clone: its id differs
                assert_eq!(r.is_some(), next.remove(&k).is_some());
            }
            17..=18 => {
                let p = &k[..k.len().min(lcg(seed) as usize % 3)];
                let n = txn.remove_prefix(p);
                let before = next.len();
                next.retain(|kk, _| !kk.starts_with(p));
                assert_eq!(n, before - next.len());
            }
            _ if lcg(seed).is_multiple_of(8) => {
                txn.remove_prefix(b"");
                next.clear();
            }
            _ => {}
        }
    }
}

fn run(seed0: u64, rounds: u32) {
    let mut seed = seed0;
    let mut line: VersionedTree<T> = VersionedTree::new();
    let mut model = Model::new();
    let mut kept: Vec<(Version<T>, Model)> = Vec::new();
    for round in 0..rounds {
        let mut txn = line.txn();
        let mut next = model.clone();
        random_writes(&mut txn, &mut next, &mut seed, 12);
        check_reads(txn.view(), &next);
        if lcg(&mut seed).is_multiple_of(5) {
            drop(txn);
        } else {
            txn.commit();
            model = next;
        }
        if lcg(&mut seed).is_multiple_of(3) {
            kept.push((line.version(), model.clone()));
        }
        while !kept.is_empty() && lcg(&mut seed).is_multiple_of(3) {
            let at = lcg(&mut seed) as usize % kept.len();
            kept.swap_remove(at);
        }
        if lcg(&mut seed).is_multiple_of(4) {
            line.reclaim();
        }
        check_alive(&model, "current");
        for (v, m) in &kept {
            check_alive(m, &format!("version {}", v.revision()));
        }
        check_reads(line.view(), &model);
        for l in line.current.shape() {
            if l.contains("large") {
                SEEN_LARGE.store(true, Ordering::Relaxed);
            }
            if l.contains("medium") {
                SEEN_MEDIUM.store(true, Ordering::Relaxed);
            }
        }
        for (v, m) in &kept {
            check_reads(v.view(), m);
        }
        assert_eq!(
            DOUBLE.load(Ordering::Relaxed),
            0,
            "a value was dropped twice (round {round})"
        );
    }
    drop(kept);
    line.reclaim();
    line.reclaim();
    assert_eq!(line.waiting_garbage(), 0);
    check_counts(line.current.root.as_ref());
    let ids: Vec<u64> = model.values().copied().collect();
    drop(line);
    for id in ids {
        assert!(!is_live(id), "value {id} leaked");
    }
    let n = LIVE.lock().unwrap().get_or_insert_with(HashSet::new).len();
    assert_eq!(n, 0, "{n} values leaked (seed {seed0})");
}

#[test]
fn values_live_exactly_as_long_as_a_version_reaches_them() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (seeds, rounds) = if cfg!(miri) { (2, 40) } else { (150, 500) };
    for s in 0..seeds {
        run(s * 7919 + 1, rounds);
    }
    if cfg!(miri) {
        return;
    }
    assert_eq!(DOUBLE.load(Ordering::Relaxed), 0);
    assert!(SEEN_MEDIUM.load(Ordering::Relaxed), "no medium node");
    assert!(SEEN_LARGE.load(Ordering::Relaxed), "no large node");
}

/// A line whose transactions each retire more than `RECLAIM_BATCH` pieces
/// still catches up: a batch is at least twice what the last commit
/// retired.
#[test]
fn large_transactions_do_not_pile_up_garbage() {
    let mut line: VersionedTree<u64> = (0..5000u64)
        .map(|i| (format!("{i:06}").into_bytes(), i))
        .collect();
    let mut waits = Vec::new();
    for round in 0..30u64 {
        let mut txn = line.txn();
        for i in 0..3000u64 {
            txn.insert(
                format!("{:06}", (i * 7 + round * 13) % 5000).as_bytes(),
                round,
            );
        }
        txn.commit();
        waits.push(line.waiting_garbage());
    }
    assert_eq!(line.pinned_revisions(), 0);
    eprintln!("waiting garbage after each commit: {waits:?}");
    assert!(
        waits[29] < 2 * waits[0],
        "garbage keeps growing with no version held: {} after 1 commit, {} after 30",
        waits[0],
        waits[29]
    );
}

/// Versions sent to reader threads, read and dropped there at random
/// times while the writer commits, aborts and reclaims.
#[test]
fn versions_read_and_dropped_on_two_threads_while_the_writer_reclaims() {
    use std::sync::mpsc;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let rounds = if cfg!(miri) { 40 } else { 3000 };
    let mut seed = 12345u64;
    let mut line: VersionedTree<T> = VersionedTree::new();
    let mut model = Model::new();
    std::thread::scope(|s| {
        let mut txs = Vec::new();
        for r in 0..2u64 {
            let (tx, rx) = mpsc::channel::<(Version<T>, Model)>();
            txs.push(tx);
            s.spawn(move || {
                let mut held: Vec<(Version<T>, Model)> = Vec::new();
                let mut st = 99 + r;
                for (v, m) in rx {
                    held.push((v, m));
                    while held.len() > 6 || (!held.is_empty() && lcg(&mut st).is_multiple_of(2)) {
                        let at = lcg(&mut st) as usize % held.len();
                        let (v, m) = held.swap_remove(at);
                        for (k, t) in v.view().iter() {
                            assert!(is_live(t.0), "reader: value of {k:?} dropped while pinned");
                            assert_eq!(m.get(k), Some(&t.0));
                        }
                        assert_eq!(v.view().len(), m.len());
                        drop(v);
                    }
                }
            });
        }
        for round in 0..rounds {
            let mut txn = line.txn();
            let mut next = model.clone();
            random_writes(&mut txn, &mut next, &mut seed, 8);
            if lcg(&mut seed).is_multiple_of(6) {
                drop(txn);
            } else {
                txn.commit();
                model = next;
            }
            if round % 2 == 0 {
                let i = (round / 2) as usize % txs.len();
                txs[i].send((line.version(), model.clone())).unwrap();
            }
            if lcg(&mut seed).is_multiple_of(5) {
                line.reclaim();
            }
        }
        drop(txs);
    });
    line.reclaim();
    assert_eq!(line.waiting_garbage(), 0);
    assert_eq!(DOUBLE.load(Ordering::Relaxed), 0);
}
