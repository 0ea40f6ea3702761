//! Unit tests of the versioned tree, small enough for Miri (`.ci/miri`
//! runs `tree::versioned::`): Miri reports a node read after it was freed,
//! freed twice, or never freed (a leak fails the run).

use super::*;
use std::collections::BTreeMap;

type Model = BTreeMap<Vec<u8>, u32>;

fn assert_reads(view: View<'_, u32>, model: &Model) {
    view.check_invariants().unwrap();
    assert_eq!(view.len(), model.len());
    let got: Vec<(Vec<u8>, u32)> = view.iter().map(|(k, v)| (k.to_vec(), *v)).collect();
    let want: Vec<(Vec<u8>, u32)> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
    assert_eq!(got, want);
    for (k, v) in model {
        assert_eq!(view.get(k), Some(v));
    }
}

/// Keys that are prefixes of one another (terminals), share long
/// prefixes (splits, merges) and fan out (growth, shrinking).
fn key(i: u32) -> Vec<u8> {
    match i % 4 {
        0 => format!("k{}", i % 7).into_bytes(),
        1 => format!("k{}/{}", i % 7, i % 5).into_bytes(),
        2 => vec![b'x', (i * 37 % 251) as u8],
        _ => format!("long-shared-prefix-{i:03}").into_bytes(),
    }
}

/// A cheap deterministic sequence.
fn lcg(state: &mut u64) -> u32 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*state >> 33) as u32
}

#[test]
fn miri_versions_read_their_revision_while_the_writer_goes_on() {
    let mut line: VersionedTree<u32> = VersionedTree::new();
    let mut model = Model::new();
    let mut kept: Vec<(Version<u32>, Model)> = Vec::new();
    let mut seed = 7;
    let rounds = if cfg!(miri) { 30 } else { 300 };
    for round in 0..rounds {
        let mut txn = line.txn();
        let mut next = model.clone();
        for _ in 0..(lcg(&mut seed) % 5 + 1) {
            let i = lcg(&mut seed) % 60;
            match lcg(&mut seed) % 5 {
                0..=2 => {
                    txn.insert(&key(i), round);
                    next.insert(key(i), round);
                }
                3 => {
                    assert_eq!(txn.remove(&key(i)), next.remove(&key(i)));
                }
                _ => {
                    let p = &key(i)[..2];
                    let n = txn.remove_prefix(p);
                    let before = next.len();
                    next.retain(|k, _| !k.starts_with(p));
                    assert_eq!(n, before - next.len());
                }
            }
        }
        assert_reads(txn.view(), &next);
        if lcg(&mut seed).is_multiple_of(4) {
            drop(txn); // abort
        } else {
            assert_eq!(txn.commit(), line.revision());
            model = next;
        }
        assert_reads(line.view(), &model);
        if lcg(&mut seed).is_multiple_of(3) {
            kept.push((line.version(), model.clone()));
        }
        if !kept.is_empty() && lcg(&mut seed).is_multiple_of(3) {
            let at = lcg(&mut seed) as usize % kept.len();
            kept.swap_remove(at);
        }
        for (v, m) in &kept {
            assert_reads(v.view(), m);
        }
    }
    drop(kept);
    line.reclaim();
    assert_eq!(line.waiting_garbage(), 0, "nothing is held any more");
}

#[test]
fn miri_an_aborted_transaction_leaves_the_line_as_it_was() {
    let mut line: VersionedTree<u32> = (0..40).map(|i| (key(i), i)).collect();
    let model: Model = (0..40).map(|i| (key(i), i)).collect();
    let v = line.version();
    for round in 0..4 {
        let mut txn = line.txn();
        for i in 0..40 {
            if (i + round) % 3 == 0 {
                txn.remove(&key(i));
            } else {
                txn.insert(&key(i + 40 * round), i);
            }
        }
        txn.remove_prefix(b"k");
        drop(txn);
        assert_reads(line.view(), &model);
        assert_reads(v.view(), &model);
    }
    // An empty transaction commits a revision that shares the whole tree.
    assert_eq!(line.txn().commit(), 2);
    assert_reads(line.view(), &model);
}

#[test]
fn miri_a_version_outlives_its_line() {
    let mut line: VersionedTree<u32> = (0..30).map(|i| (key(i), i)).collect();
    let model: Model = (0..30).map(|i| (key(i), i)).collect();
    let v = line.version();
    let mut txn = line.txn();
    txn.remove_prefix(b"");
    txn.insert(b"only", 1);
    txn.commit();
    let w = line.version();
    drop(line);
    assert_reads(v.view(), &model);
    let v2 = v.clone();
    drop(v);
    assert_reads(v2.view(), &model);
    assert_eq!(w.view().get(b"only"), Some(&1));
    drop(w);
    drop(v2); // the last holder frees everything
}

#[test]
fn miri_versions_are_read_and_dropped_on_other_threads() {
    let mut line: VersionedTree<u32> = (0..20).map(|i| (key(i), i)).collect();
    let rounds = if cfg!(miri) { 6 } else { 200 };
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel::<(Version<u32>, Model)>();
        s.spawn(move || {
            for (v, m) in rx {
                assert_reads(v.view(), &m);
            }
        });
        let mut model: Model = (0..20).map(|i| (key(i), i)).collect();
        for round in 0..rounds {
            let mut txn = line.txn();
            txn.insert(&key(round % 25), round);
            model.insert(key(round % 25), round);
            txn.remove(&key((round * 7) % 25));
            model.remove(&key((round * 7) % 25));
            txn.commit();
            tx.send((line.version(), model.clone())).unwrap();
        }
    });
    line.reclaim();
    assert_eq!(line.waiting_garbage(), 0);
}

#[test]
fn garbage_waits_only_for_the_versions_that_reach_it() {
    let mut line: VersionedTree<u32> = (0..200)
        .map(|i| (format!("{i:05}").into_bytes(), i))
        .collect();
    let held = line.version();
    for round in 0..50 {
        let mut txn = line.txn();
        txn.insert(b"00007", round);
        txn.commit();
    }
    line.reclaim();
    // Revision 1's path to "00007" and its leaf are held; the 49 paths
    // made and replaced since are not.
    let waiting = line.waiting_garbage();
    assert!(waiting > 0 && waiting < 12, "{waiting} pieces wait");
    assert_eq!(held.view().get(b"00007"), Some(&7));
    drop(held);
    line.reclaim();
    assert_eq!(line.waiting_garbage(), 0);
}

#[path = "life.rs"]
mod life;

#[test]
fn miri_owned_iterators_outlive_their_version_and_the_writer() {
    let mut line: VersionedTree<u32> = (0..40).map(|i| (key(i), i)).collect();
    let model: Model = (0..40).map(|i| (key(i), i)).collect();
    let all = line.version().owned_iter();
    let v = line.version();
    let prefix = v.owned_prefix(b"k");
    let range = v.owned_range(&b"k3"[..]..&b"x"[..]);
    drop(v);
    for round in 0..6 {
        let mut txn = line.txn();
        txn.remove_prefix(b"");
        for i in 0..10 {
            txn.insert(&key(i + 100 * round), round);
        }
        txn.commit();
        line.reclaim();
    }
    // Read from both ends, on another thread for one of them.
    let want: Vec<(Vec<u8>, u32)> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
    let mut all = all;
    assert_eq!(all.len(), want.len());
    let mut got_front = Vec::new();
    let mut got_back = Vec::new();
    for step in 0.. {
        let next = if step % 3 == 0 {
            all.next_back()
        } else {
            all.next()
        };
        let Some((k, v)) = next else { break };
        if step % 3 == 0 {
            got_back.push((k.to_vec(), v));
        } else {
            got_front.push((k.to_vec(), v));
        }
    }
    got_back.reverse();
    got_front.extend(got_back);
    assert_eq!(got_front, want);
    let want_prefix: Vec<(Vec<u8>, u32)> = want
        .iter()
        .filter(|(k, _)| k.starts_with(b"k"))
        .cloned()
        .collect();
    let got: Vec<(Vec<u8>, u32)> =
        std::thread::spawn(move || prefix.map(|(k, v)| (k.to_vec(), v)).collect())
            .join()
            .unwrap();
    assert_eq!(got, want_prefix);
    let want_range: Vec<(Vec<u8>, u32)> = want
        .iter()
        .filter(|(k, _)| k[..] >= b"k3"[..] && k[..] < b"x"[..])
        .cloned()
        .collect();
    assert_eq!(
        range.map(|(k, v)| (k.to_vec(), v)).collect::<Vec<_>>(),
        want_range
    );
    drop(all);
    line.reclaim();
    assert_eq!(line.waiting_garbage(), 0, "the iterators' pins are gone");
}
