// Differential fuzzing of `pandodb::tree::Tree` against a `BTreeMap` model.
//
// Works on the stable toolchain with `--sanitizer none` (no nightly, no
// RUSTC_BOOTSTRAP), from the repository root:
//
//     cd fuzz && cargo fuzz run tree_vs_btreemap --sanitizer none -- -max_total_time=30
//
// (`cargo install cargo-fuzz` first.) The default AddressSanitizer build
// needs nightly (`-Zsanitizer`); run it that way (drop `--sanitizer none`)
// to check the tree's `unsafe` code too (leaves, lending duplicates). A crash is saved under `fuzz/artifacts/tree_vs_btreemap/`;
// replay it with `cargo fuzz run tree_vs_btreemap --sanitizer none
// <artifact>` and print it with `cargo fuzz fmt tree_vs_btreemap
// --sanitizer none <artifact>`.
//
// The harness (ops, model, checks) is shared with the proptest in
// `tests/tree_model.rs`: after every op the current version's invariants
// and length are checked, kept older versions (up to eight) are read back
// in full every few ops and at the end. Batches of odd length take the
// version over (`Tree::into_txn`, which lends), some with a reader clone.
// An input may instead drive a `VersionedTree` (`harness::run_line`):
// transactions committed or aborted, versions kept and dropped, reclaims;
// every kept version must read its revision's model.

#![no_main]

use std::ops::Bound;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/tree_harness.rs"]
#[allow(dead_code)]
mod harness;

use harness::{Harness, LineOp, Op, OwnedKind, TxnOp, run_line};

/// Most ops run for one input.
const MAX_OPS: usize = 600;
/// Longest key (bytes).
const MAX_KEY: usize = 40;
/// Longest next/next_back pattern.
const MAX_STEPS: usize = 16;
/// Most ops in one txn batch.
const MAX_TXN: usize = 24;

/// The small alphabet most keys are mapped onto, so that prefixes collide.
const SMALL: [u8; 5] = [0x00, 0x01, b'a', b'b', 0xFF];

/// A key: over the small alphabet (each byte picks a symbol), over all 256
/// byte values, or a long run of `a` followed by small-alphabet bytes.
#[derive(Arbitrary, Debug)]
enum FKey {
    Small(Vec<u8>),
    Wide(Vec<u8>),
    Long(u8, Vec<u8>),
}

impl FKey {
    fn bytes(&self) -> Vec<u8> {
        let small = |b: &[u8]| -> Vec<u8> { b.iter().map(|x| SMALL[usize::from(x % 5)]).collect() };
        let mut k = match self {
            FKey::Small(b) => small(&b[..b.len().min(6)]),
            FKey::Wide(b) => b.clone(),
            FKey::Long(n, b) => {
                let mut k = vec![b'a'; usize::from(n % 35)];
                k.extend(small(b));
                k
            }
        };
        k.truncate(MAX_KEY);
        k
    }
}

#[derive(Arbitrary, Debug)]
enum FBound {
    Included(FKey),
    Excluded(FKey),
    Unbounded,
}

impl FBound {
    fn get(&self) -> Bound<Vec<u8>> {
        match self {
            FBound::Included(k) => Bound::Included(k.bytes()),
            FBound::Excluded(k) => Bound::Excluded(k.bytes()),
            FBound::Unbounded => Bound::Unbounded,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum FOwned {
    All,
    Range(FBound, FBound),
    Prefix(FKey),
    IntoIter,
    Values,
}

#[derive(Arbitrary, Debug)]
enum FTxnOp {
    Insert(FKey, u32),
    Remove(FKey),
    RemovePrefix(FKey),
    Get(FKey),
}

#[derive(Arbitrary, Debug)]
enum FOp {
    Insert(FKey, u32),
    Remove(FKey),
    RemovePrefix(FKey),
    Get(FKey),
    CountPrefix(FKey),
    FirstLast,
    LongestPrefix(FKey),
    LowerBound(FKey, u8),
    ReverseLowerBound(FKey, u8),
    Prefix(FKey, Vec<bool>),
    Range(FBound, FBound, Vec<bool>),
    FullIter(Vec<bool>),
    Owned(FOwned, Vec<bool>, FKey),
    Keep(u8),
    DropKept(u8),
    Checkout(u8),
    Txn(Vec<FTxnOp>, bool),
    Fanout(FKey, u8, u8, bool, u32),
    Unfanout(FKey, u8, u8, u8, bool, bool),
}

#[derive(Arbitrary, Debug)]
enum FLineOp {
    Txn(Vec<FTxnOp>, bool),
    Keep,
    Drop(u8),
    Reclaim,
    OwnedIter(Option<FKey>),
    ReadIter(u8, Vec<bool>),
}

/// One input: a `Tree` run or a `VersionedTree` run.
#[derive(Arbitrary, Debug)]
enum Input {
    Tree(Vec<FOp>),
    Line(Vec<FLineOp>),
}

fn txn_ops(ops: &[FTxnOp]) -> Vec<TxnOp> {
    ops.iter()
        .take(MAX_TXN)
        .map(|o| match o {
            FTxnOp::Insert(k, v) => TxnOp::Insert(k.bytes(), *v),
            FTxnOp::Remove(k) => TxnOp::Remove(k.bytes()),
            FTxnOp::RemovePrefix(k) => TxnOp::RemovePrefix(k.bytes()),
            FTxnOp::Get(k) => TxnOp::Get(k.bytes()),
        })
        .collect()
}

fn steps(s: &[bool]) -> Vec<bool> {
    s[..s.len().min(MAX_STEPS)].to_vec()
}

fn short(k: &FKey) -> Vec<u8> {
    let mut k = k.bytes();
    k.truncate(MAX_KEY - 1);
    k
}

impl FOp {
    fn get(&self) -> Op {
        match self {
            FOp::Insert(k, v) => Op::Insert(k.bytes(), *v),
            FOp::Remove(k) => Op::Remove(k.bytes()),
            FOp::RemovePrefix(k) => Op::RemovePrefix(k.bytes()),
            FOp::Get(k) => Op::Get(k.bytes()),
            FOp::CountPrefix(k) => Op::CountPrefix(k.bytes()),
            FOp::FirstLast => Op::FirstLast,
            FOp::LongestPrefix(k) => Op::LongestPrefix(k.bytes()),
            FOp::LowerBound(k, n) => Op::LowerBound(k.bytes(), usize::from(n % 16)),
            FOp::ReverseLowerBound(k, n) => Op::ReverseLowerBound(k.bytes(), usize::from(n % 16)),
            FOp::Prefix(k, s) => Op::Prefix(k.bytes(), steps(s)),
            FOp::Range(lo, hi, s) => Op::Range(lo.get(), hi.get(), steps(s)),
            FOp::FullIter(s) => Op::FullIter(steps(s)),
            FOp::Owned(kind, s, mutate) => Op::Owned {
                kind: match kind {
                    FOwned::All => OwnedKind::All,
                    FOwned::Range(lo, hi) => OwnedKind::Range(lo.get(), hi.get()),
                    FOwned::Prefix(p) => OwnedKind::Prefix(p.bytes()),
                    FOwned::IntoIter => OwnedKind::IntoIter,
                    FOwned::Values => OwnedKind::Values,
                },
                steps: steps(s),
                mutate: mutate.bytes(),
            },
            FOp::Keep(i) => Op::Keep(usize::from(*i)),
            FOp::DropKept(i) => Op::DropKept(usize::from(*i)),
            FOp::Checkout(i) => Op::Checkout(usize::from(*i)),
            FOp::Txn(ops, commit) => Op::Txn(txn_ops(ops), *commit),
            FOp::Fanout(p, lo, n, twice, value) => Op::Fanout {
                prefix: short(p),
                lo: *lo,
                n: u16::from(*n) + 1,
                twice: *twice,
                value: *value,
            },
            FOp::Unfanout(p, lo, n, step, rev, whole) => Op::Unfanout {
                prefix: short(p),
                lo: *lo,
                n: u16::from(*n) + 1,
                step: step % 4 + 1,
                rev: *rev,
                whole: *whole,
            },
        }
    }
}

fuzz_target!(|input: Input| {
    match input {
        Input::Tree(ops) => {
            let mut h = Harness::new(8);
            for op in ops.iter().take(MAX_OPS) {
                if let Err(e) = h.step(&op.get()) {
                    panic!("{e}");
                }
            }
            if let Err(e) = h.finish() {
                panic!("{e}");
            }
        }
        Input::Line(ops) => {
            let ops: Vec<LineOp> = ops
                .iter()
                .take(MAX_OPS / 4)
                .map(|o| match o {
                    FLineOp::Txn(w, commit) => LineOp::Txn(txn_ops(w), *commit),
                    FLineOp::Keep => LineOp::Keep,
                    FLineOp::Drop(i) => LineOp::Drop(usize::from(*i)),
                    FLineOp::Reclaim => LineOp::Reclaim,
                    FLineOp::OwnedIter(p) => LineOp::OwnedIter(p.as_ref().map(FKey::bytes)),
                    FLineOp::ReadIter(i, s) => LineOp::ReadIter(usize::from(*i), steps(s)),
                })
                .collect();
            if let Err(e) = run_line(&ops, 4) {
                panic!("{e}");
            }
        }
    }
});
