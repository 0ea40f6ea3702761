//! Unit tests of the tree's edge cases.

use super::*;
use std::ops::Bound;

fn keys<V>(t: &Tree<V>) -> Vec<Vec<u8>> {
    t.iter().map(|(k, _)| k.to_vec()).collect()
}

#[test]
fn empty_key_and_prefix_keys() {
    let mut t = Tree::new();
    assert_eq!(t.insert(b"", 0), None);
    assert_eq!(t.insert(b"a", 1), None);
    assert_eq!(t.insert(b"ab", 2), None);
    assert_eq!(t.insert(b"abc", 3), None);
    assert_eq!(t.insert(b"ab", 22), Some(2));
    t.check_invariants().unwrap();
    assert_eq!(t.len(), 4);
    assert_eq!(t.get(b""), Some(&0));
    assert_eq!(t.get(b"ab"), Some(&22));
    assert_eq!(
        keys(&t),
        vec![b"".to_vec(), b"a".to_vec(), b"ab".to_vec(), b"abc".to_vec()]
    );
    assert_eq!(t.longest_prefix(b"abx"), Some((&b"ab"[..], &22)));
    assert_eq!(t.longest_prefix(b"zzz"), Some((&b""[..], &0)));
    assert_eq!(t.count_prefix(b"a"), 3);
    assert_eq!(t.count_prefix(b""), 4);
    assert_eq!(t.remove(b"ab"), Some(22));
    t.check_invariants().unwrap();
    assert_eq!(t.remove(b""), Some(0));
    t.check_invariants().unwrap();
    assert_eq!(keys(&t), vec![b"a".to_vec(), b"abc".to_vec()]);
}

#[test]
fn zero_and_ff_bytes() {
    let mut t = Tree::new();
    for k in [
        &[0u8][..],
        &[0, 0],
        &[0xff],
        &[0xff, 0xff, 0],
        &[0, 0xff],
        &[],
    ] {
        t.insert(k, k.len());
    }
    t.check_invariants().unwrap();
    let got = keys(&t);
    let mut want: Vec<Vec<u8>> = got.clone();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(t.len(), 6);
    assert_eq!(t.first().unwrap().0, &[] as &[u8]);
    assert_eq!(t.last().unwrap().0, &[0xff, 0xff, 0]);
}

#[test]
fn long_shared_prefix_split_and_merge() {
    let base = vec![7u8; 1000];
    let mut t = Tree::new();
    let mut a = base.clone();
    a.push(1);
    let mut b = base.clone();
    b.push(2);
    let mut c = base[..500].to_vec();
    c.push(9);
    t.insert(&a, 1);
    t.insert(&b, 2);
    t.insert(&c, 3);
    t.check_invariants().unwrap();
    assert_eq!(t.count_prefix(&base[..600]), 2);
    assert_eq!(t.remove(&c), Some(3));
    t.check_invariants().unwrap();
    assert_eq!(t.remove(&a), Some(1));
    t.check_invariants().unwrap();
    assert_eq!(keys(&t), vec![b.clone()]);
}

#[test]
fn node_growth_and_shrink_all_bytes() {
    let mut t = Tree::new();
    for b in 0..=255u8 {
        t.insert(&[b'x', b], u32::from(b));
        t.check_invariants().unwrap();
    }
    let snapshot = t.clone();
    assert_eq!(t.count_prefix(b"x"), 256);
    let rev: Vec<u32> = t.iter().rev().map(|(_, v)| *v).collect();
    assert_eq!(rev, (0..=255).rev().collect::<Vec<_>>());
    for b in (0..=255u8).step_by(2) {
        assert_eq!(t.remove(&[b'x', b]), Some(u32::from(b)));
        t.check_invariants().unwrap();
    }
    for b in (1..=255u8).step_by(2) {
        assert_eq!(t.remove(&[b'x', b]), Some(u32::from(b)));
        t.check_invariants().unwrap();
    }
    assert!(t.is_empty());
    assert_eq!(snapshot.len(), 256);
    snapshot.check_invariants().unwrap();
}

#[test]
#[cfg_attr(miri, ignore = "too slow under Miri; see miri_node_lifecycle")]
fn deep_tree_drop_does_not_overflow() {
    // Every key a prefix of the next: one inner node per key. A recursive
    // drop of 5,000 levels would need far more than this thread's 128 KiB.
    let n = 5_000;
    let handle = std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(move || {
            let mut t = Tree::new();
            let mut key = Vec::new();
            for i in 0..n {
                key.push(b'a');
                t.insert(&key, i);
            }
            assert_eq!(t.len(), n);
            assert_eq!(t.count_prefix(&key[..10]), n - 9);
            let kept = t.clone();
            t.remove_prefix(&key[..100]);
            assert_eq!(t.len(), 99);
            drop(kept);
            drop(t);
        })
        .unwrap();
    handle.join().unwrap();
}

#[test]
fn remove_prefix_counts() {
    let mut t: Tree<u32> = (0..1000u32).map(|i| (format!("{i:04}"), i)).collect();
    assert_eq!(t.remove_prefix(b"01"), 100);
    t.check_invariants().unwrap();
    assert_eq!(t.remove_prefix(b"01"), 0);
    assert_eq!(t.remove_prefix(b"0999"), 1);
    assert_eq!(t.remove_prefix(b"0999"), 0);
    assert_eq!(t.remove_prefix(b"0998"), 1);
    assert_eq!(t.len(), 898);
    assert_eq!(t.remove_prefix(b""), 898);
    assert!(t.is_empty());
}

#[test]
fn range_and_bounds() {
    let t: Tree<u32> = (0..100u32).map(|i| (format!("k{i:02}"), i)).collect();
    let lb: Vec<u32> = t.lower_bound(b"k5").map(|(_, v)| *v).take(3).collect();
    assert_eq!(lb, [50, 51, 52]);
    let rlb: Vec<u32> = t
        .reverse_lower_bound(b"k5")
        .map(|(_, v)| *v)
        .take(3)
        .collect();
    assert_eq!(rlb, [49, 48, 47]);
    let mut it = t.prefix(b"k4");
    assert_eq!(it.len(), 10);
    assert_eq!(it.next().map(|(_, v)| *v), Some(40));
    assert_eq!(it.next_back().map(|(_, v)| *v), Some(49));
    assert_eq!(it.len(), 8);
    assert_eq!(
        it.map(|(_, v)| *v).collect::<Vec<_>>(),
        (41..49).collect::<Vec<_>>()
    );
    let r: Vec<u32> = t
        .range((Bound::Excluded(&b"k10"[..]), Bound::Included(&b"k13"[..])))
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(r, [11, 12, 13]);
    assert_eq!(t.range(&b"k9"[..]..&b"k1"[..]).count(), 0);
}

#[test]
fn owned_iter_survives_writes() {
    let mut t: Tree<u32> = (0..100u32).map(|i| (format!("k{i:02}"), i)).collect();
    let it = t.owned_iter();
    for i in 0..100u32 {
        t.remove(format!("k{i:02}").as_bytes());
    }
    t.insert(b"k005", 5);
    let got: Vec<u32> = it.map(|(_, v)| v).collect();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
}

#[test]
#[cfg_attr(miri, ignore = "too slow under Miri; see miri_node_lifecycle")]
fn big_single_txn_insert() {
    let n = 800_000u32;
    let base: Tree<u32> = Tree::new();
    let mut txn = base.txn();
    // A scattered order: multiply by an odd constant modulo a power of two.
    for i in 0..n {
        let j = i.wrapping_mul(2_654_435_761) % (1 << 20);
        txn.insert(format!("user-{j:08}").as_bytes(), j);
    }
    let t = txn.commit();
    assert!(base.is_empty());
    t.check_invariants().unwrap();
    let mut prev: Option<Vec<u8>> = None;
    for (k, v) in t.iter() {
        assert_eq!(k, format!("user-{v:08}").as_bytes());
        if let Some(p) = &prev {
            assert!(p.as_slice() < k);
        }
        prev = Some(k.to_vec());
    }
    assert_eq!(t.len(), t.iter().count());
}

#[test]
#[cfg_attr(miri, ignore = "too slow under Miri; see miri_node_lifecycle")]
fn thousand_versions_each_kept() {
    let mut versions = vec![Tree::new()];
    for i in 0..1000u32 {
        let mut next = versions.last().unwrap().clone();
        next.insert(format!("key-{:03}", (i * 7) % 1000).as_bytes(), i);
        versions.push(next);
    }
    for (n, v) in versions.iter().enumerate() {
        assert_eq!(v.len(), n);
        v.check_invariants().unwrap();
        for i in 0..n as u32 {
            assert_eq!(
                v.get(format!("key-{:03}", (i * 7) % 1000).as_bytes()),
                Some(&i)
            );
        }
    }
}

#[test]
#[cfg_attr(miri, ignore = "too slow under Miri; see miri_node_lifecycle")]
fn first_and_last_prefix_agree_with_prefix_iteration() {
    // Small alphabet, short keys: every kind of prefix relation occurs.
    let alphabet = [0u8, b'a', b'b', 0xFF];
    let mut t = Tree::new();
    let mut x = 7u64;
    for i in 0..3_000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 6) as usize;
        let key: Vec<u8> = (0..len)
            .map(|j| alphabet[((x >> (8 + 2 * j)) & 3) as usize])
            .collect();
        t.insert(&key, i);
    }
    let mut prefixes: Vec<Vec<u8>> = vec![Vec::new()];
    for a in alphabet {
        prefixes.push(vec![a]);
        for b in alphabet {
            prefixes.push(vec![a, b]);
            for c in alphabet {
                prefixes.push(vec![a, b, c, b'a']);
            }
        }
    }
    for p in &prefixes {
        assert_eq!(t.first_prefix(p), t.prefix(p).next(), "first_prefix({p:?})");
        assert_eq!(
            t.last_prefix(p),
            t.prefix(p).next_back(),
            "last_prefix({p:?})"
        );
    }
    assert_eq!(Tree::<u8>::new().first_prefix(b""), None);
}

/// The node lifecycle the `unsafe` code of `tree::body` (the inner-node
/// allocation) serves, at a size Miri runs in seconds (`.ci/miri`):
/// in-place writes to unique nodes, copy-on-write of shared ones, growth
/// in place (`NodeArc::grow`) and through every layout and back, kept
/// versions, and drops of unique and shared subtrees, also from another
/// thread.
#[test]
fn miri_node_lifecycle() {
    let key = |i: u32| vec![b'k', (i % 256) as u8, (i / 256) as u8];
    let mut versions: Vec<Tree<String>> = vec![Tree::new()];
    let mut t: Tree<String> = Tree::new();
    // Grow one node through Small -> Medium -> Large, keeping a version at
    // every size class boundary.
    for i in 0..300u32 {
        t.insert(&key(i), format!("v{i}"));
        if matches!(i, 3 | 15 | 16 | 47 | 48 | 299) {
            versions.push(t.clone());
        }
    }
    t.check_invariants().unwrap();
    // Overwrite in place (unique leaves) and through shared leaves.
    for i in (0..300u32).step_by(7) {
        assert_eq!(t.insert(&key(i), format!("w{i}")), Some(format!("v{i}")));
    }
    // Shrink back: Large -> Medium -> Small, with versions kept.
    for i in 0..290u32 {
        assert!(t.remove(&key(i)).is_some());
        if i % 50 == 0 {
            versions.push(t.clone());
            t.check_invariants().unwrap();
        }
    }
    assert_eq!(t.len(), 10);
    // A version dropped on another thread while this one keeps mutating.
    let shared = versions[6].clone();
    let h = std::thread::spawn(move || {
        let mut mine = shared;
        mine.insert(b"other-thread", "x".to_string());
        let n = mine.iter().count();
        drop(mine);
        n
    });
    t.remove_prefix(b"k");
    assert!(t.is_empty());
    assert_eq!(h.join().unwrap(), 301);
    for v in &versions {
        v.check_invariants().unwrap();
    }
    assert_eq!(versions[6].len(), 300);
    assert_eq!(versions[6].get(&key(5)), Some(&"v5".to_string()));
    // Owned iterators pin nodes after their tree is gone.
    let it = versions.pop().unwrap().owned_iter();
    versions.clear();
    assert_eq!(it.count(), 49); // the version taken after removing 0..=250
    // A deep chain dropped iteratively.
    let mut deep = Tree::new();
    let mut k = Vec::new();
    for i in 0..64u32 {
        k.push(b'a');
        deep.insert(&k, i);
        let mut sib = k.clone();
        sib.push(b'b');
        deep.insert(&sib, i);
    }
    let kept = deep.clone();
    drop(deep);
    assert_eq!(kept.len(), 128);
}

/// `Values::read_ahead` yields what plain `values()` yields, in every mix of
/// front and back steps, with exact lengths, while the tree it came from
/// changes; it keeps raw addresses of leaves, so it runs under Miri
/// (`.ci/miri`).
#[test]
fn miri_read_ahead_matches_values() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static HINTS: AtomicUsize = AtomicUsize::new(0);
    let n = if cfg!(miri) { 40 } else { 300 };
    let t: Tree<String> = (0..n)
        .map(|i| (format!("k{i:04}"), format!("v{i}")))
        .collect();
    let patterns = [
        0u64,
        u64::MAX,
        0xAAAA_AAAA_AAAA_AAAA,
        0x0F0F_0F0F_0F0F_0F0F,
        0x8000_0000_0000_0001,
    ];
    for pattern in patterns {
        for (lo, hi) in [(0usize, n), (3, 4), (5, 17), (n / 2, n)] {
            let (klo, khi) = (format!("k{lo:04}"), format!("k{hi:04}"));
            let range = || t.owned_range(klo.as_bytes()..khi.as_bytes());
            let mut a = range().values();
            // Far-apart and close addresses in runs, so the read-ahead
            // switches on and off.
            let mut b = range().values().read_ahead(
                |v| {
                    let n = HINTS.fetch_add(1, Ordering::Relaxed);
                    let far = (n / 4 + v.len()).is_multiple_of(2);
                    std::ptr::without_provenance(n.wrapping_mul(if far { 4096 } else { 8 }))
                },
                64,
            );
            // A version changing underneath: neither iterator may notice.
            let mut t2 = t.clone();
            t2.remove_prefix(b"k");
            t2.insert(b"k0005", "new".to_string());
            let mut bit = 0;
            loop {
                assert_eq!(
                    a.len(),
                    b.len(),
                    "len, range {lo}..{hi}, pattern {pattern:x}"
                );
                let (x, y) = if (pattern >> (bit % 64)) & 1 == 0 {
                    (a.next(), b.next())
                } else {
                    (a.next_back(), b.next_back())
                };
                bit += 1;
                assert_eq!(x, y, "step {bit}, range {lo}..{hi}, pattern {pattern:x}");
                if x.is_none() {
                    break;
                }
            }
            drop(t2);
        }
    }
    assert!(
        HINTS.load(Ordering::Relaxed) > 0,
        "the hint was never called"
    );
}

use crate::storage::fs::XorShift as Rng;

/// Keys that share prefixes at several depths, so writes split, merge,
/// grow and shrink nodes of every layout.
fn lending_key(r: &mut Rng, spread: u64) -> Vec<u8> {
    let n = r.below(spread);
    match r.below(4) {
        0 => format!("k{n}").into_bytes(),
        1 => format!("k{n}/x").into_bytes(),
        2 => vec![b'b', (n % 256) as u8],
        _ => vec![b'b', (n % 256) as u8, (n / 7 % 256) as u8],
    }
}

/// The pairs of a tree, in order.
type Pairs = Vec<(Vec<u8>, u64)>;

fn contents(t: &Tree<u64>) -> Pairs {
    t.iter().map(|(k, v)| (k.to_vec(), *v)).collect()
}

/// Runs `rounds` lending transactions over a tree, against a `BTreeMap`
/// model. Each round copies the current version with `lending_clone`,
/// writes, sometimes keeps a reader clone of the base or of the private
/// copy (which must not change) and an owned iterator, then aborts or
/// commits. A commit settles with the base in hand: the fast path when no
/// reader kept the base, the slow one otherwise. Under Miri, a count left
/// too high is a leak and one too low a use after free.
fn lending_rounds(seed: u64, rounds: usize, ops: usize, spread: u64) -> [usize; 2] {
    let mut settled = [0, 0];
    use std::collections::BTreeMap;
    let mut r = Rng::new(seed);
    let mut model: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    let mut current: Tree<u64> = Tree::new();
    let mut kept: Vec<(Tree<u64>, Pairs)> = Vec::new();
    // A settled ledger, reused by the next round (as the database reuses
    // them: `Ledger::renew`) or not.
    let mut spare: Option<Box<super::Ledger<u64>>> = None;
    for round in 0..rounds {
        let mut private = current.lending_clone_with(spare.take().filter(|_| r.below(2) == 0));
        let mut next = model.clone();
        let reader = (r.below(3) == 0).then(|| current.clone());
        let base_before = contents(&current);
        let mut mid: Option<(Tree<u64>, Pairs)> = None;
        let mut iter: Option<(IntoIter<u64>, Pairs)> = None;
        for op in 0..ops {
            let k = lending_key(&mut r, spread);
            match r.below(10) {
                0..=4 => {
                    let v = r.next_u64();
                    assert_eq!(private.insert(&k, v), next.insert(k, v));
                }
                5..=7 => assert_eq!(private.remove(&k), next.remove(&k)),
                8 => {
                    let p = &k[..k.len().min(2)];
                    let n = private.remove_prefix(p);
                    let before = next.len();
                    next.retain(|key, _| !key.starts_with(p));
                    assert_eq!(n, before - next.len());
                }
                _ => {
                    if mid.is_none() && r.below(2) == 0 {
                        mid = Some((private.clone(), contents(&private)));
                    } else if iter.is_none() {
                        iter = Some((private.owned_iter(), contents(&private)));
                    }
                }
            }
            if op % 8 == 0 {
                private.check_invariants().unwrap();
            }
        }
        assert_eq!(
            contents(&current),
            base_before,
            "round {round}: base changed"
        );
        assert_eq!(
            contents(&private),
            next.iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect::<Vec<_>>()
        );
        private.check_invariants().unwrap();
        if r.below(4) == 0 {
            drop(private); // abort: the ledger restores the counts
        } else {
            let ledger = private.take_ledger();
            let mut base = std::mem::replace(&mut current, private);
            if let Some(mut l) = ledger {
                settled[usize::from(l.settle_keep(Some(base.root_mut())))] += 1;
                spare = Some(l);
            }
            drop(base);
            model = next;
        }
        if let Some(rd) = reader {
            assert_eq!(contents(&rd), base_before, "round {round}: reader changed");
            if r.below(2) == 0 {
                kept.push((rd.clone(), base_before.clone()));
            }
        }
        if let Some((t, want)) = mid {
            assert_eq!(
                contents(&t),
                want,
                "round {round}: mid-transaction clone changed"
            );
            kept.push((t, want));
        }
        if let Some((it, want)) = iter {
            let got: Pairs = it.map(|(k, v)| (k.to_vec(), v)).collect();
            assert_eq!(got, want, "round {round}: owned iterator changed");
        }
        current.check_invariants().unwrap();
        assert_eq!(
            contents(&current),
            model
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect::<Vec<_>>()
        );
        if kept.len() > 3 {
            let i = r.below(kept.len() as u64) as usize;
            let (t, want) = kept.swap_remove(i);
            assert_eq!(contents(&t), want);
        }
    }
    for (t, want) in kept {
        assert_eq!(contents(&t), want);
    }
    settled
}

/// Runs `lending_rounds` over seeds `1..=seeds` and returns how many
/// settlements took the slow and the fast path.
fn lending_seeds(seeds: u64, rounds: usize, ops: usize, spread: u64) -> [usize; 2] {
    (1..=seeds).fold([0, 0], |acc, seed| {
        let s = lending_rounds(seed, rounds, ops, spread);
        [acc[0] + s[0], acc[1] + s[1]]
    })
}

#[test]
#[cfg_attr(miri, ignore = "too slow under Miri; see miri_lending_transactions")]
fn lending_transactions_match_a_model() {
    let settled = lending_seeds(40, 30, 120, 400);
    // Both settlements ran, many times.
    assert!(settled[0] > 100 && settled[1] > 100, "{settled:?}");
}

/// A reused ledger lends again: [`Ledger::renew`] gives it a fresh
/// generation, so the nodes its previous transaction made (of the old
/// generation) are lent by the next one, not copied with their children
/// counted. (With the old generation they would count as the next
/// transaction's own, `may_lend` would refuse them, and every later copy
/// would be a plain one.)
#[test]
fn miri_a_reused_ledger_lends_the_nodes_of_its_last_transaction() {
    let key = |i: u64| (i * 7919 % 4096).to_be_bytes();
    let base: Tree<u64> = (0..300u64).map(|i| (key(i), i)).collect();
    let mut first = base.lending_clone();
    first.insert(&key(5), 1);
    let mut ledger = first.take_ledger().expect("a lending tree");
    let mut base = base;
    assert!(ledger.settle_keep(Some(base.root_mut())), "the fast path");
    drop(base);
    let mut second = first.lending_clone_with(Some(ledger));
    second.insert(&key(6), 2); // the same path below the root
    let ledger = second.take_ledger().expect("a lending tree");
    assert!(
        ledger.lent_len() >= 2,
        "the second transaction lent {} nodes: the first one's nodes were copied plainly",
        ledger.lent_len()
    );
    assert_eq!(first.get(&key(6)), Some(&6));
    assert_eq!(second.get(&key(6)), Some(&2));
    assert!(ledger.settle(first.root_mut()));
    second.check_invariants().unwrap();
}

#[test]
fn miri_lending_transactions() {
    let settled = lending_seeds(3, 8, 40, 60);
    assert!(settled[0] > 0 && settled[1] > 0, "{settled:?}");
}

/// Ranged iterators (front cursor placed by `Cursor::seek_key`)
/// agree with `Tree::rank` and a `BTreeMap` model for probes around every
/// key, on Small, Medium and Large nodes (grown and shrunk), with
/// terminals, compressed prefixes and leaf/inner children.
#[test]
#[cfg_attr(miri, ignore = "too slow under Miri")]
fn seek_key_agrees_with_rank_on_every_layout() {
    use std::collections::BTreeMap;
    let fanouts = [1usize, 2, 3, 12, 13, 16, 17, 36, 37, 48, 49, 200, 256];
    for &n in &fanouts {
        for variant in 0..4u8 {
            let mut m: BTreeMap<Vec<u8>, u32> = BTreeMap::new();
            let base = b"pfx".to_vec();
            if variant & 1 == 1 {
                m.insert(base.clone(), 0); // terminal at the fanout node
            }
            m.insert(b"pf".to_vec(), 1); // splits the path above
            m.insert(b"zz".to_vec(), 2);
            for i in 0..n {
                // Spread bytes over 0..=255 (n distinct values).
                let b = ((i * 255) / n.max(2).saturating_sub(1).max(1)).min(255) as u8;
                let b = if n == 256 { i as u8 } else { b };
                let mut k = base.clone();
                k.push(b);
                if i % 3 == 0 {
                    m.insert(k.clone(), 3); // leaf child
                } else {
                    // Inner child with a compressed prefix and a terminal.
                    let mut k1 = k.clone();
                    k1.extend_from_slice(b"qq");
                    let mut k2 = k1.clone();
                    k2.push(7);
                    let mut k3 = k1.clone();
                    k3.push(9);
                    m.insert(k1, 4);
                    m.insert(k2, 5);
                    m.insert(k3, 6);
                    if i % 3 == 2 {
                        m.insert(k, 7); // terminal of the inner child
                    }
                }
            }
            let mut t: Tree<u32> = Tree::new();
            for (k, v) in &m {
                t.insert(k, *v);
            }
            if variant & 2 == 2 {
                // Shrink: remove every fourth child subtree.
                let ks: Vec<Vec<u8>> = m.keys().cloned().collect();
                for (j, k) in ks.iter().enumerate() {
                    if j % 4 == 1 && k.len() > 3 && k.starts_with(&base) {
                        let p = k[..4].to_vec();
                        t.remove_prefix(&p);
                        m.retain(|x, _| !x.starts_with(&p));
                    }
                }
            }
            t.check_invariants().unwrap();
            let mut probes: Vec<Vec<u8>> = vec![vec![], vec![0], vec![0xff], b"p".to_vec()];
            for k in m.keys() {
                probes.push(k.clone());
                for l in 0..k.len() {
                    probes.push(k[..l].to_vec());
                }
                let mut a = k.clone();
                a.push(0);
                probes.push(a);
                let mut a = k.clone();
                a.push(0xff);
                probes.push(a);
                if let Some(&last) = k.last() {
                    let mut a = k.clone();
                    *a.last_mut().unwrap() = last.wrapping_add(1);
                    probes.push(a);
                    let mut a = k.clone();
                    *a.last_mut().unwrap() = last.wrapping_sub(1);
                    probes.push(a);
                    let mut a = k[..k.len() - 1].to_vec();
                    a.push(last.wrapping_add(1));
                    a.push(0);
                    probes.push(a);
                }
            }
            probes.sort();
            probes.dedup();
            for p in &probes {
                for after in [false, true] {
                    let lo = if after {
                        Bound::Excluded(&p[..])
                    } else {
                        Bound::Included(&p[..])
                    };
                    let want: Vec<&Vec<u8>> = m
                        .range::<[u8], _>((lo, Bound::Unbounded))
                        .map(|(k, _)| k)
                        .collect();
                    assert_eq!(t.rank(p, after), m.len() - want.len(), "rank {p:?} {after}");
                    let it = t.range((lo, Bound::Unbounded));
                    assert_eq!(it.len(), want.len(), "len n={n} v={variant} {p:?} {after}");
                    let got: Vec<&[u8]> = it.map(|(k, _)| k).collect();
                    assert_eq!(got.len(), want.len());
                    assert!(
                        got.iter().zip(&want).all(|(a, b)| *a == &b[..]),
                        "n={n} v={variant} {p:?} {after}"
                    );
                    // Owned form, alternating ends.
                    let mut it = t.owned_range((lo, Bound::Unbounded));
                    let mut front = 0;
                    let mut back = want.len();
                    let mut step = 0;
                    while front < back {
                        if step % 3 == 2 {
                            back -= 1;
                            assert_eq!(&*it.next_back().unwrap().0, &want[back][..]);
                        } else {
                            assert_eq!(&*it.next().unwrap().0, &want[front][..]);
                            front += 1;
                        }
                        step += 1;
                        assert_eq!(it.len(), back - front);
                    }
                    assert!(it.next().is_none() && it.next_back().is_none());
                    // Values.
                    let vals: Vec<u32> = t.owned_range((lo, Bound::Unbounded)).values().collect();
                    let wv: Vec<u32> = m
                        .range::<[u8], _>((lo, Bound::Unbounded))
                        .map(|(_, v)| *v)
                        .collect();
                    assert_eq!(vals, wv);
                }
                let want: Vec<&Vec<u8>> = m.keys().filter(|k| k.starts_with(p)).collect();
                let got: Vec<&[u8]> = t.prefix(p).map(|(k, _)| k).collect();
                assert_eq!(got.len(), want.len(), "prefix {p:?}");
                assert!(got.iter().zip(&want).all(|(a, b)| *a == &b[..]));
            }
        }
    }
}

/// A slot's word is exactly the handle it holds: an inner node's `ThinArc`
/// pointer, or a leaf's header address plus the tag; the views `get` and
/// `get_mut` lend are those handles, and moving them in and out keeps the
/// counts balanced (Miri reports any leak or double free).
#[test]
fn miri_slot_words_are_the_handles() {
    use node::{Inner, Leaf};
    use slot::{Entry, EntryMut, EntryRef, Slot};
    let inner: Inner<u32> = Inner::new(b"ab", 2, 0);
    let kept = inner.clone();
    let mut slot = Slot::from(inner);
    assert_eq!(slot.word(), kept.addr());
    assert!(!slot.is_leaf());
    match slot.get() {
        EntryRef::Inner(n) => assert!(n.ptr_eq(&kept) && &*n.prefix == b"ab"),
        EntryRef::Leaf(_) => panic!("an inner node read as a leaf"),
    }
    let copy = slot.clone();
    assert_eq!(copy.word(), slot.word());
    match slot.get_mut() {
        EntryMut::Inner(n) => *n = Inner::new(b"c", 1, 0),
        EntryMut::Leaf(_) => panic!("an inner node read as a leaf"),
    }
    assert_ne!(slot.word(), kept.addr());
    match copy.into_entry() {
        Entry::Inner(n) => assert!(n.ptr_eq(&kept)),
        Entry::Leaf(_) => panic!("an inner node moved out as a leaf"),
    }
    drop(slot);

    let leaf = Leaf::new(b"key", 7u32);
    let kept = leaf.clone();
    let slot = Slot::from(leaf);
    assert!(slot.is_leaf());
    assert_eq!(slot.word(), kept.addr() as usize + 1);
    match slot.get() {
        EntryRef::Leaf(l) => assert_eq!((l.key(), *l.value()), (&b"key"[..], 7)),
        EntryRef::Inner(_) => panic!("a leaf read as an inner node"),
    }
    assert_eq!(Some(slot.clone()).map(|s| s.count()), Some(1));
    match slot.into_entry() {
        Entry::Leaf(l) => assert_eq!(l.addr(), kept.addr()),
        Entry::Inner(_) => panic!("a leaf moved out as an inner node"),
    }
}

#[test]
fn descents_end_on_every_key_shape() {
    // A descent must end (after at most one step per key byte, plus the
    // root) for keys that are stored, absent, a prefix of a stored key (a
    // terminal), or longer than any path; for a stored key it must end in
    // the node whose child (or terminal) is the key's leaf, through
    // compressed prefixes too.
    let empty: Tree<u8> = Tree::new();
    assert!(!empty.descent(b"abc").step());
    let mut t = Tree::new();
    let n: u32 = if cfg!(miri) { 200 } else { 2000 };
    let stored: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("k{}", i * 7919 % 100_003).into_bytes())
        // Long shared stretches: nodes with compressed prefixes.
        .chain((0..500u32).map(|i| format!("user-0000{:04}-tail", i * 37 % 1000).into_bytes()))
        .chain([b"".to_vec(), b"k".to_vec(), b"k1".to_vec()])
        .collect();
    for (i, k) in stored.iter().enumerate() {
        t.insert(k, i);
    }
    let probes = stored.iter().cloned().chain([
        b"x".to_vec(),
        b"k1\xff".to_vec(),
        vec![b'k'; 300],
        Vec::new(),
    ]);
    let mut deepest = 0;
    for key in probes {
        let mut d = t.descent(&key);
        let mut steps = 0;
        // The node the final step read: for a stored key, the parent of
        // its leaf, as a lookup finds it.
        let parent = loop {
            let reading = d.node;
            if !d.step() {
                break reading;
            }
            steps += 1;
            assert!(steps <= key.len() + 1, "descent of {key:?} does not end");
        };
        assert!(!d.step(), "a finished descent stays finished");
        deepest = deepest.max(steps);
        if let Some(leaf) = t.get_leaf(&key) {
            let parent = parent.expect("a stored key has a parent node");
            let pos = d.depth + parent.prefix.len();
            let found = match key.get(pos) {
                Some(&b) => match parent.child(b) {
                    Some(EntryRef::Leaf(l)) => Some(l.addr()),
                    _ => None,
                },
                None => parent.terminal.as_ref().map(Leaf::addr),
            };
            assert_eq!(
                found,
                Some(leaf.addr()),
                "descent of {key:?} ends beside its leaf"
            );
        }
    }
    assert!(deepest >= 2, "the probes go below the root");
}

#[test]
fn common_len_matches_bytewise() {
    let mut r = Rng::new(0x5eed);
    for _ in 0..if cfg!(miri) { 200 } else { 20_000 } {
        let n = (r.next_u64() % 40) as usize;
        let a: Vec<u8> = (0..n).map(|_| (r.next_u64() % 3) as u8).collect();
        let mut b = a.clone();
        b.truncate((r.next_u64() % 41) as usize);
        if !b.is_empty() && r.next_u64().is_multiple_of(2) {
            let i = (r.next_u64() as usize) % b.len();
            b[i] ^= 1 << (r.next_u64() % 8);
        }
        let naive = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        assert_eq!(common_len(&a, &b), naive, "{a:?} {b:?}");
        assert_eq!(common_len(&b, &a), naive, "{a:?} {b:?}");
    }
}

/// Trees built bottom-up (nodes of every layout, terminals, prefixes) are
/// read, written in place and by lending transactions, kept as versions and
/// dropped; a refused key leaves the builder whole. Sized for Miri, which
/// checks the allocations and reports any leak.
#[test]
fn miri_bottom_up_builds() {
    use std::collections::BTreeMap;
    let mut m: BTreeMap<Vec<u8>, u32> = BTreeMap::new();
    for i in 0..60u32 {
        m.insert(vec![b'a', i as u8], i); // 60 children: Large
    }
    for i in 0..20u32 {
        m.insert(vec![b'b', i as u8, b'x', b'y'], i); // Medium, prefixes
    }
    m.insert(b"b".to_vec(), 1000); // a terminal
    m.insert(b"".to_vec(), 1001); // the root's terminal
    for i in 0..5u32 {
        m.insert(vec![b'c'; 3 + i as usize], i); // a chain of terminals
    }
    let mut b = TreeBuilder::new();
    for (k, v) in &m {
        b.push(k, *v).unwrap();
    }
    assert!(b.push(b"a", 0).is_err());
    let built = b.finish();
    built.check_invariants().unwrap();
    assert!(built.iter().map(|(k, v)| (k.to_vec(), *v)).eq(m.clone()));
    let kept = built.clone();
    let mut t = built;
    for (i, k) in m.keys().enumerate().step_by(3) {
        t.insert(k, i as u32 + 5000);
    }
    t.remove(b"b");
    t.check_invariants().unwrap();
    let mut txn = t.into_txn();
    txn.insert(b"a\x01", 7);
    txn.remove(b"c\x63\x63");
    let t = txn.commit();
    t.check_invariants().unwrap();
    assert!(kept.iter().map(|(k, v)| (k.to_vec(), *v)).eq(m));
    drop(kept);
    drop(t);
}
