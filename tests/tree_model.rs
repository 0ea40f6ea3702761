//! Differential property test of `pandodb::tree::Tree` against
//! `BTreeMap<Vec<u8>, u32>`: random sequences of every operation, with the
//! structural invariants checked after every step and up to eight older
//! versions kept and read back.
//!
//! Tier 1 runs 256 cases of up to 2,000 ops; `PROPTEST_CASES=N` overrides
//! the number of cases (e.g. `PROPTEST_CASES=10000 cargo test --release
//! --test tree_model`). A failure prints the minimal op sequence and is
//! saved under `tests/proptest-regressions/` for replay.

#[path = "support/tree_harness.rs"]
mod harness;

use std::ops::Bound;

use harness::{Harness, LineOp, Op, OwnedKind, TxnOp, run_line};
use pandodb::tree::Tree;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config;

/// The small alphabet most keys are made of, so that prefixes collide.
const SMALL: [u8; 5] = [0x00, 0x01, b'a', b'b', 0xFF];

/// Kept versions are compared in full every this many steps.
const FULL_CHECK_EVERY: usize = 4;

/// Longest op sequence of one case.
const MAX_OPS: usize = 2000;

/// Bases of the long keys: 34 bytes each, sharing long prefixes.
fn long_bases() -> Vec<Vec<u8>> {
    let mut ab = vec![b'a'; 17];
    ab.extend([b'b'; 17]);
    let mut a_then_1 = vec![b'a'; 30];
    a_then_1.extend([0x01; 4]);
    vec![
        vec![b'a'; 34],
        ab,
        a_then_1,
        vec![0x00; 34],
        vec![0xFF; 34],
        [b'a', 0x01].repeat(17),
    ]
}

fn small_key(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(select(SMALL.to_vec()), 0..=max)
}

/// A long key: a truncated base (up to 34 bytes) plus a small suffix.
fn long_key() -> impl Strategy<Value = Vec<u8>> {
    (select(long_bases()), 0..=34usize, small_key(6)).prop_map(|(base, n, suffix)| {
        let mut k = base[..n].to_vec();
        k.extend(suffix);
        k
    })
}

/// A key over all 256 byte values, behind an optional small prefix.
fn wide_key() -> impl Strategy<Value = Vec<u8>> {
    (small_key(2), vec(any::<u8>(), 0..=3)).prop_map(|(mut p, w)| {
        p.extend(w);
        p
    })
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        16 => small_key(6),
        3 => long_key(),
        3 => wide_key(),
    ]
}

/// Prefixes lean short so that they cover many keys.
fn prefix() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => small_key(3),
        1 => key(),
    ]
}

/// Fanouts grow (and unfanouts shrink) the nodes below a few fixed
/// prefixes, so that the same wide node is grown and shrunk repeatedly.
fn fanout_prefix() -> impl Strategy<Value = Vec<u8>> {
    select(vec![
        vec![],
        vec![b'a'],
        vec![b'a', b'a'],
        vec![0x00],
        vec![0xFF, 0xFF],
        vec![b'a', 0x01, b'b'],
        vec![b'a'; 20],
    ])
}

fn bound() -> impl Strategy<Value = Bound<Vec<u8>>> {
    prop_oneof![
        2 => key().prop_map(Bound::Included),
        2 => key().prop_map(Bound::Excluded),
        1 => Just(Bound::Unbounded),
    ]
}

/// A next (`true`) / next_back (`false`) pattern.
fn steps() -> impl Strategy<Value = Vec<bool>> {
    vec(any::<bool>(), 0..12)
}

fn owned_kind() -> impl Strategy<Value = OwnedKind> {
    prop_oneof![
        Just(OwnedKind::All),
        (bound(), bound()).prop_map(|(lo, hi)| OwnedKind::Range(lo, hi)),
        prefix().prop_map(OwnedKind::Prefix),
        Just(OwnedKind::IntoIter),
        Just(OwnedKind::Values),
    ]
}

fn txn_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        6 => (key(), any::<u32>()).prop_map(|(k, v)| TxnOp::Insert(k, v)),
        3 => key().prop_map(TxnOp::Remove),
        1 => prefix().prop_map(TxnOp::RemovePrefix),
        2 => key().prop_map(TxnOp::Get),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (key(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        12 => key().prop_map(Op::Remove),
        2 => prefix().prop_map(Op::RemovePrefix),
        8 => key().prop_map(Op::Get),
        4 => prefix().prop_map(Op::CountPrefix),
        2 => Just(Op::FirstLast),
        4 => key().prop_map(Op::LongestPrefix),
        3 => (key(), 0..8usize).prop_map(|(k, n)| Op::LowerBound(k, n)),
        3 => (key(), 0..8usize).prop_map(|(k, n)| Op::ReverseLowerBound(k, n)),
        4 => (prefix(), steps()).prop_map(|(p, s)| Op::Prefix(p, s)),
        5 => (bound(), bound(), steps()).prop_map(|(lo, hi, s)| Op::Range(lo, hi, s)),
        1 => steps().prop_map(Op::FullIter),
        2 => (owned_kind(), steps(), prefix())
            .prop_map(|(kind, steps, mutate)| Op::Owned { kind, steps, mutate }),
        2 => any::<usize>().prop_map(Op::Keep),
        1 => any::<usize>().prop_map(Op::DropKept),
        1 => any::<usize>().prop_map(Op::Checkout),
        3 => (vec(txn_op(), 0..16), prop::bool::weighted(0.8))
            .prop_map(|(ops, commit)| Op::Txn(ops, commit)),
        1 => (fanout_prefix(), any::<u8>(), 1..=256u16, any::<bool>(), any::<u32>()).prop_map(
            |(prefix, lo, n, twice, value)| Op::Fanout { prefix, lo, n, twice, value }
        ),
        1 => (fanout_prefix(), any::<u8>(), 1..=256u16, 1..=4u8, any::<bool>(), any::<bool>())
            .prop_map(|(prefix, lo, n, step, rev, whole)| Op::Unfanout {
                prefix,
                lo,
                n,
                step,
                rev,
                whole
            }),
    ]
}

/// Tier-1 config: 256 cases unless `PROPTEST_CASES` says otherwise; a
/// shrink bounded to 20,000 iterations and 3 minutes unless
/// `PROPTEST_MAX_SHRINK_ITERS` / `PROPTEST_MAX_SHRINK_TIME` (ms) say
/// otherwise.
fn config() -> Config {
    let env = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u32>().ok());
    Config {
        cases: env("PROPTEST_CASES").unwrap_or(256),
        max_shrink_iters: env("PROPTEST_MAX_SHRINK_ITERS").unwrap_or(20_000),
        max_shrink_time: env("PROPTEST_MAX_SHRINK_TIME").unwrap_or(180_000),
        ..Config::default()
    }
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut h = Harness::new(FULL_CHECK_EVERY);
    for op in ops {
        h.step(op).map_err(TestCaseError::fail)?;
    }
    h.finish().map_err(TestCaseError::fail)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn tree_matches_btreemap(ops in vec(op(), 0..=MAX_OPS)) {
        run(&ops)?;
    }
}

// ---- Deterministic regressions and edge cases ----------------------------

fn run_ok(ops: &[Op]) {
    let mut h = Harness::new(1);
    for op in ops {
        if let Err(e) = h.step(op) {
            panic!("{e}");
        }
    }
    if let Err(e) = h.finish() {
        panic!("{e}");
    }
}

/// A node grown to 256 children, kept, then shrunk one key at a time in
/// both directions through the 36 and 12 thresholds, with merges of
/// two-entry children; the kept version must still read back.
#[test]
fn fanout_grow_shrink_with_kept_versions() {
    for (rev, whole) in [(false, false), (true, false), (false, true), (true, true)] {
        run_ok(&[
            Op::Insert(b"a".to_vec(), 1),
            Op::Fanout {
                prefix: b"a".to_vec(),
                lo: 0,
                n: 256,
                twice: true,
                value: 5,
            },
            Op::Keep(0),
            Op::Unfanout {
                prefix: b"a".to_vec(),
                lo: 0,
                n: 256,
                step: 1,
                rev,
                whole,
            },
            Op::Keep(0),
            Op::Checkout(0),
            Op::RemovePrefix(b"a\x00".to_vec()),
            Op::FullIter(vec![true, false, false, true]),
        ]);
    }
}

/// Ranges whose start is past their end, or empty with excluded ends, are
/// empty (the model would panic on them, the tree must not).
#[test]
fn inverted_and_degenerate_ranges_are_empty() {
    let t: Tree<u32> = [(&b"a"[..], 1), (b"b", 2), (b"c", 3)].into_iter().collect();
    assert_eq!(t.range(&b"c"[..]..&b"a"[..]).len(), 0);
    assert_eq!(t.range(&b"c"[..]..&b"a"[..]).next(), None);
    assert_eq!(
        t.range((Bound::Excluded(&b"b"[..]), Bound::Excluded(&b"b"[..])))
            .count(),
        0
    );
    assert_eq!(
        t.range((Bound::Excluded(&b"b"[..]), Bound::Included(&b"b"[..])))
            .next_back(),
        None
    );
    assert_eq!(
        t.range(&b"b"[..]..=&b"b"[..]).collect::<Vec<_>>(),
        [(&b"b"[..], &2)]
    );
}

/// An owned prefix iterator keeps yielding its version while the very
/// prefix it walks is removed and re-inserted.
#[test]
fn owned_prefix_survives_removal_of_its_prefix() {
    let mut ops: Vec<Op> = (0u8..40)
        .map(|i| Op::Insert(vec![b'a', i % 5, i], u32::from(i)))
        .collect();
    ops.push(Op::Owned {
        kind: OwnedKind::Prefix(b"a".to_vec()),
        steps: vec![false, true, false, true, true],
        mutate: b"a".to_vec(),
    });
    ops.push(Op::Txn(
        vec![
            TxnOp::Insert(b"a\x01".to_vec(), 9),
            TxnOp::RemovePrefix(b"a".to_vec()),
            TxnOp::Get(b"a\x01".to_vec()),
        ],
        true,
    ));
    run_ok(&ops);
}

// ---- Bottom-up construction ------------------------------------------------

/// A bottom-up tree and an incremental one of the same keys: same shape,
/// same entries both ways, same prefix counts, invariants hold; and both
/// stay equal under further writes.
fn compare_bottom_up(
    keys: &[Vec<u8>],
    prefixes: &[Vec<u8>],
    later: &[(Vec<u8>, bool)],
) -> Result<(), TestCaseError> {
    use std::collections::BTreeMap;
    let mut model: BTreeMap<Vec<u8>, u32> = BTreeMap::new();
    let mut inc: Tree<u32> = Tree::new();
    // Inserted in the given (random) order, repeats replacing.
    for (i, k) in keys.iter().enumerate() {
        model.insert(k.clone(), i as u32);
        inc.insert(k, i as u32);
    }
    let mut bu = Tree::from_sorted(model.iter().map(|(k, v)| (k.as_slice(), *v)))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    for step in 0..=later.len() {
        bu.check_invariants().map_err(TestCaseError::fail)?;
        prop_assert_eq!(bu.shape(), inc.shape());
        prop_assert_eq!(bu.len(), model.len());
        prop_assert!(bu.iter().eq(inc.iter()));
        prop_assert!(bu.iter().rev().eq(inc.iter().rev()));
        prop_assert!(
            bu.iter()
                .map(|(k, v)| (k.to_vec(), *v))
                .eq(model.iter().map(|(k, v)| (k.clone(), *v)))
        );
        for p in prefixes {
            prop_assert_eq!(bu.count_prefix(p), inc.count_prefix(p));
        }
        let Some((k, insert)) = later.get(step) else {
            break;
        };
        if *insert {
            model.insert(k.clone(), 7);
            prop_assert_eq!(bu.insert(k, 7), inc.insert(k, 7));
        } else {
            model.remove(k);
            prop_assert_eq!(bu.remove(k), inc.remove(k));
        }
    }
    Ok(())
}

/// Keys under `w` spread over all 256 byte values, so that nodes of every
/// layout (and the switches between them) appear.
fn with_fanout(mut keys: Vec<Vec<u8>>, wide: &[u16]) -> Vec<Vec<u8>> {
    for w in wide {
        let [a, b] = w.to_be_bytes();
        keys.push(vec![b'w', a % 64, b]);
    }
    keys
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn bottom_up_equals_incremental(
        keys in vec(key(), 0..300),
        wide in vec(any::<u16>(), 0..400),
        prefixes in vec(prefix(), 0..16),
        later in vec((key(), any::<bool>()), 0..40),
    ) {
        compare_bottom_up(&with_fanout(keys, &wide), &prefixes, &later)?;
    }

    #[test]
    fn bottom_up_refuses_unsorted_and_repeated_keys(
        keys in vec(key(), 2..60),
        at in any::<proptest::sample::Index>(),
    ) {
        let mut sorted: Vec<Vec<u8>> = keys;
        sorted.sort();
        sorted.dedup();
        prop_assume!(sorted.len() >= 2);
        let i = 1 + at.index(sorted.len() - 1);
        // A repeat of the key before position i.
        let mut repeated = sorted.clone();
        repeated.insert(i, sorted[i - 1].clone());
        let e = Tree::from_sorted(repeated.iter().map(|k| (k.as_slice(), 0u8))).err();
        prop_assert_eq!(e, Some(pandodb::tree::NotSorted { position: i, duplicate: true }));
        // Two neighbours swapped.
        let mut swapped = sorted.clone();
        swapped.swap(i - 1, i);
        let e = Tree::from_sorted(swapped.iter().map(|k| (k.as_slice(), 0u8))).err();
        prop_assert_eq!(e, Some(pandodb::tree::NotSorted { position: i, duplicate: false }));
        // The builder is unchanged by the refused key and goes on.
        let mut b = pandodb::tree::TreeBuilder::new();
        for k in &sorted[..i] {
            b.push(k, 0u8).unwrap();
        }
        prop_assert!(b.push(&sorted[i - 1], 1).is_err());
        for k in &sorted[i..] {
            b.push(k, 0u8).unwrap();
        }
        let t = b.finish();
        t.check_invariants().map_err(TestCaseError::fail)?;
        prop_assert!(t.iter().map(|(k, _)| k.to_vec()).eq(sorted.iter().cloned()));
    }
}

#[test]
fn bottom_up_edge_cases() {
    let none: [(&[u8], u8); 0] = [];
    for keys in [
        vec![],
        vec![vec![]],
        vec![vec![], vec![0]],
        vec![vec![0], vec![0, 0], vec![0, 0, 0]],
        vec![b"user-1".to_vec()],
        (0..=255u8).map(|b| vec![b]).collect(),
        (0..=255u8).map(|b| vec![b'x', b, b]).collect(),
        (0..48u8).map(|b| vec![b]).collect(),
        (0..49u8).map(|b| vec![b]).collect(),
        (0..16u8).map(|b| vec![b]).collect(),
        (0..17u8).map(|b| vec![b]).collect(),
        (0..2000u32)
            .map(|i| format!("user-{i:08}").into_bytes())
            .collect::<Vec<_>>(),
        (0..300usize).map(|n| vec![b'a'; n]).collect(),
    ] {
        compare_bottom_up(&keys, &[vec![], vec![b'x'], vec![0]], &[])
            .unwrap_or_else(|e| panic!("{e} for {} keys", keys.len()));
    }
    assert!(Tree::from_sorted(none).unwrap().is_empty());
}

// ---- VersionedTree: a line of versions with pins --------------------------

fn line_op() -> impl Strategy<Value = LineOp> {
    prop_oneof![
        6 => (vec(txn_op(), 0..24), prop::bool::weighted(0.8))
            .prop_map(|(ops, commit)| LineOp::Txn(ops, commit)),
        2 => Just(LineOp::Keep),
        2 => any::<usize>().prop_map(LineOp::Drop),
        1 => Just(LineOp::Reclaim),
        1 => prop::option::of(prefix()).prop_map(LineOp::OwnedIter),
        1 => (any::<usize>(), steps()).prop_map(|(i, s)| LineOp::ReadIter(i, s)),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Every kept version reads exactly the model of its revision while
    /// later transactions commit, abort and reclaim; nothing waits once
    /// no version is held.
    #[test]
    fn versioned_tree_matches_btreemap_versions(ops in vec(line_op(), 0..=MAX_OPS / 8)) {
        run_line(&ops, FULL_CHECK_EVERY).map_err(TestCaseError::fail)?;
    }
}
