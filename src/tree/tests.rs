//! Unit tests of the tree's edge cases.

use super::*;

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

/// The node lifecycle the one `unsafe` block (`Inner::get_mut`) serves, at
/// a size Miri runs in seconds (`cargo +nightly miri test --lib tree::`):
/// in-place writes to unique nodes, copy-on-write of shared ones, growth
/// through every layout and back, kept versions, and drops of unique and
/// shared subtrees, also from another thread.
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
