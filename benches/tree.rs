//! Side-by-side benchmark of `pandodb::tree::Tree` against
//! `std::collections::BTreeMap` and `imbl::OrdMap`.
//!
//! Keys are `format!("user-{i:08}")` for `i in 0..N` (13 bytes each), values
//! are `Arc<Obj>`. `N` defaults to 1,000,000 and is overridden by the
//! environment variable `TREE_BENCH_N`.
//!
//! ```text
//! cargo bench --bench tree                          # full run, N = 1M
//! TREE_BENCH_N=100000 cargo bench --bench tree -- --quick
//! cargo bench --bench tree -- get_random            # one group only
//! ```
//!
//! Before the criterion groups run, a memory table (live heap bytes per
//! key) is printed to stderr; it is measured with a counting global
//! allocator, not timed. The crate forbids `unsafe_code` for every target,
//! so the allocator comes from the `cap` dev-dependency instead of an
//! `unsafe impl GlobalAlloc` here. It wraps `System` and adds one atomic
//! add/sub per allocation and deallocation; every structure in every timing
//! below pays that, in proportion to how much it allocates.
//!
//! Every structure used for lookups and iteration is built in random key
//! order; lookups and seeks use a *different* random permutation than the
//! build, so that walking the queries does not follow allocation order.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cap::Cap;
use criterion::{Criterion, SamplingMode, Throughput};
use imbl::OrdMap;
use pandodb::tree::{Tree, VersionedTree};

#[global_allocator]
static ALLOC: Cap<std::alloc::System> = Cap::new(std::alloc::System, usize::MAX);

/// Default number of keys.
const DEFAULT_N: usize = 1_000_000;
/// Length of `format!("user-{i:08}")` for `i < 10^8`.
const KEY_LEN: usize = 13;
/// Lookups per iteration of `get_random`.
const GET_BATCH: usize = 1000;
/// Seeks per iteration of `lower_bound_100`.
const SEEK_BATCH: usize = 100;
/// Entries taken after each seek.
const SEEK_TAKE: usize = 100;
/// Versions kept alive at once in `insert_one_new_version` (they are
/// dropped, untimed, after each chunk).
const VERSION_CHUNK: usize = 256;

type Key = [u8; KEY_LEN];
type Value = Arc<Obj>;

/// A small value object; the structures store `Arc<Obj>`.
#[derive(Debug)]
struct Obj {
    id: u64,
    balance: i64,
    tag: [u8; 16],
}

impl Obj {
    fn new(i: u32) -> Self {
        Obj {
            id: u64::from(i),
            balance: -i64::from(i),
            tag: [i as u8; 16],
        }
    }

    /// Whether this is the object made by `Obj::new(i)`.
    fn is(&self, i: u32) -> bool {
        self.id == u64::from(i) && self.balance == -i64::from(i) && self.tag == [i as u8; 16]
    }
}

/// `format!("user-{i:08}")` as a fixed array, without touching the heap (the
/// memory measurement must not see key formatting). Valid for `i < 10^8`.
fn key(i: u32) -> Key {
    let mut k = *b"user-00000000";
    let mut x = i;
    for b in k[5..].iter_mut().rev() {
        *b = b'0' + (x % 10) as u8;
        x /= 10;
    }
    k
}

/// A key that is not stored but sits among stored ones: `user-{g:07}x`,
/// i.e. a sibling after `user-{g:07}0` .. `user-{g:07}9`.
fn new_key(g: u32) -> Key {
    let mut k = key(g * 10);
    k[KEY_LEN - 1] = b'x';
    k
}

/// SplitMix64: a tiny fixed-seed generator, enough for shuffling.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (multiply-shift; bias is negligible here).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// `0..n` in a random order fixed by `seed` (Fisher-Yates).
fn permutation(n: usize, seed: u64) -> Vec<u32> {
    let mut rng = SplitMix64(seed);
    let mut v: Vec<u32> = (0..n as u32).collect();
    for i in (1..v.len()).rev() {
        let j = rng.below(i + 1);
        v.swap(i, j);
    }
    v
}

fn bench_n() -> usize {
    let n = match std::env::var("TREE_BENCH_N") {
        Ok(s) => s
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|e| panic!("TREE_BENCH_N={s:?} is not a number: {e}")),
        Err(_) => DEFAULT_N,
    };
    assert!(
        (GET_BATCH..=100_000_000).contains(&n),
        "TREE_BENCH_N must be in {GET_BATCH}..=100000000 (keys are user-{{i:08}})"
    );
    n
}

/// Every input the benchmarks share. Built once, before criterion starts.
struct Data {
    n: usize,
    /// Keys in build order (random), with their index.
    build_idx: Vec<u32>,
    build_keys: Vec<Key>,
    /// Query keys: existing keys in another random order.
    lookups: Vec<Key>,
    /// Distinct keys that are not stored, in random order.
    new_keys: Vec<Key>,
    /// The value every `insert_one_new_version` insert stores (a clone).
    extra: Value,
    tree: Tree<Value>,
    btree: BTreeMap<Vec<u8>, Value>,
    imbl: OrdMap<Vec<u8>, Value>,
}

impl Data {
    fn new(n: usize) -> Self {
        let t0 = Instant::now();
        for i in [0, 1, 42, 99_999_999u32] {
            assert_eq!(key(i), format!("user-{i:08}").as_bytes());
        }
        let build_idx = permutation(n, 0x5EED_0001);
        let build_keys: Vec<Key> = build_idx.iter().map(|&i| key(i)).collect();
        let lookups: Vec<Key> = permutation(n, 0x5EED_0002).into_iter().map(key).collect();
        let groups = (n / 10).max(1);
        let new_keys: Vec<Key> = permutation(groups, 0x5EED_0003)
            .into_iter()
            .map(new_key)
            .collect();

        // One `Arc<Obj>` per key, shared by the three structures.
        let mut txn = Tree::new().txn();
        let mut btree = BTreeMap::new();
        let mut imbl = OrdMap::new();
        for (&i, k) in build_idx.iter().zip(&build_keys) {
            let v = Arc::new(Obj::new(i));
            txn.insert(k, v.clone());
            btree.insert(k.to_vec(), v.clone());
            imbl.insert(k.to_vec(), v);
        }
        let tree = txn.commit();

        let data = Data {
            n,
            build_idx,
            build_keys,
            lookups,
            new_keys,
            extra: Arc::new(Obj::new(u32::MAX)),
            tree,
            btree,
            imbl,
        };
        data.check();
        eprintln!(
            "setup: N={n}, three structures built and cross-checked in {:.1?}",
            t0.elapsed()
        );
        data
    }

    /// The three structures hold the same entries, in the same order.
    fn check(&self) {
        assert_eq!(self.tree.len(), self.n);
        assert_eq!(self.btree.len(), self.n);
        assert_eq!(self.imbl.len(), self.n);
        let mut a = self.tree.iter();
        let mut b = self.btree.iter();
        let mut c = self.imbl.iter();
        for _ in 0..self.n {
            let (ka, va) = a.next().expect("tree ends early");
            let (kb, vb) = b.next().expect("btreemap ends early");
            let (kc, vc) = c.next().expect("imbl ends early");
            assert!(ka == kb.as_slice() && kb == kc, "key order differs");
            assert!(Arc::ptr_eq(va, vb) && Arc::ptr_eq(vb, vc), "values differ");
        }
        assert!(a.next().is_none() && b.next().is_none() && c.next().is_none());
        for &i in self.build_idx.iter().take(1000) {
            let k = key(i);
            assert!(self.tree.get(&k).is_some_and(|v| v.is(i)));
            assert!(self.btree.get(k.as_slice()).is_some_and(|v| v.is(i)));
            assert!(self.imbl.get(k.as_slice()).is_some_and(|v| v.is(i)));
        }
        for k in self.new_keys.iter().take(1000) {
            assert!(self.tree.get(k).is_none());
        }
        assert!(self.extra.is(u32::MAX));
    }
}

/// The next `len` entries of `list`, wrapping to the start when the rest is
/// shorter (`len <= list.len()`).
fn next_window<'a>(list: &'a [Key], cur: &mut usize, len: usize) -> &'a [Key] {
    if *cur + len > list.len() {
        *cur = 0;
    }
    let w = &list[*cur..*cur + len];
    *cur += len;
    w
}

/// Consumes one entry the way a caller would: reads the key (its last byte)
/// and the value pointer, so no structure can skip dereferencing its keys.
#[inline(always)]
fn consume(k: &[u8], v: &Value) {
    black_box(k.last());
    black_box(Arc::as_ptr(v));
}

// ---------------------------------------------------------------- memory ----

fn live_bytes() -> usize {
    // The blocks of freed nodes this thread keeps for reuse are not in use.
    pandodb::tree::release_thread_cache();
    ALLOC.allocated()
}

/// Live heap bytes per key that `build` leaves behind (by `Layout::size()`;
/// temporaries freed inside `build` cancel out). The structure is dropped
/// afterwards, and must give back what it took.
fn bytes_per_key<T>(n: usize, build: impl FnOnce() -> T) -> f64 {
    let before = live_bytes();
    let built = black_box(build());
    let after = live_bytes();
    drop(built);
    let end = live_bytes();
    assert!(
        end <= before,
        "memory measurement: {} bytes still live after drop",
        end - before
    );
    after.saturating_sub(before) as f64 / n as f64
}

/// Prints live heap bytes per key of each structure with `n` keys, built in
/// random and in ascending order. Keys are counted (the tree copies each key
/// into its leaf; BTreeMap and imbl own one `Vec<u8>` per key, allocated
/// inside the measurement), values are not: every entry holds a clone of
/// one `Arc<Obj>`, so a value costs just the pointer stored in the node.
/// Inputs (the 13-byte key arrays, the order) exist before the measurement.
fn memory_table(n: usize) {
    let t0 = Instant::now();
    let shared: Value = Arc::new(Obj::new(0));
    let random: Vec<Key> = permutation(n, 0x5EED_0001).into_iter().map(key).collect();
    let ascending: Vec<Key> = (0..n as u32).map(key).collect();
    let mut lines = Vec::new();
    for (label, keys) in [("random order", &random), ("ascending order", &ascending)] {
        let tree = bytes_per_key(n, || {
            let mut txn = Tree::new().txn();
            for k in keys {
                txn.insert(k, shared.clone());
            }
            txn.commit()
        });
        let btree = bytes_per_key(n, || {
            let mut m = BTreeMap::new();
            for k in keys {
                m.insert(k.to_vec(), shared.clone());
            }
            m
        });
        let imbl = bytes_per_key(n, || {
            let mut m = OrdMap::new();
            for k in keys {
                m.insert(k.to_vec(), shared.clone());
            }
            m
        });
        lines.push(format!(
            "memory bytes/key ({label}): tree={tree:.1} btreemap={btree:.1} imbl={imbl:.1}"
        ));
    }
    eprintln!(
        "\n== memory, N={n}: live heap bytes per key, counted by Layout::size() \
         (malloc's own per-chunk overhead not included), key bytes included \
         ({KEY_LEN} B of key data per key), values excluded (one shared Arc) \
         [measured in {:.1?}] ==",
        t0.elapsed()
    );
    for l in &lines {
        eprintln!("{l}");
    }
    eprintln!();
}

// ---------------------------------------------------------------- timing ----

fn get_random(c: &mut Criterion, d: &Data) {
    let mut g = c.benchmark_group("get_random");
    g.throughput(Throughput::Elements(GET_BATCH as u64));
    g.warm_up_time(Duration::from_secs(2));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("tree", |b| {
        let mut cur = 0;
        b.iter(|| {
            for k in next_window(&d.lookups, &mut cur, GET_BATCH) {
                black_box(d.tree.get(k).map(Arc::as_ptr));
            }
        });
    });
    g.bench_function("btreemap", |b| {
        let mut cur = 0;
        b.iter(|| {
            for k in next_window(&d.lookups, &mut cur, GET_BATCH) {
                black_box(d.btree.get(k.as_slice()).map(Arc::as_ptr));
            }
        });
    });
    g.bench_function("imbl", |b| {
        let mut cur = 0;
        b.iter(|| {
            for k in next_window(&d.lookups, &mut cur, GET_BATCH) {
                black_box(d.imbl.get(k.as_slice()).map(Arc::as_ptr));
            }
        });
    });
    g.finish();
}

/// Builds the N-key structure from empty in random order, `iters` times.
/// Timed: the inserts (for BTreeMap and imbl including `to_vec()` of each
/// key, since the tree copies its key inside `insert` too). Not timed: making
/// one `Arc<Obj>` per key beforehand (they are moved in), and dropping the
/// finished structure.
fn time_builds<T>(d: &Data, iters: u64, mut build: impl FnMut(&mut Vec<Value>) -> T) -> Duration {
    let mut total = Duration::ZERO;
    let mut values: Vec<Value> = Vec::with_capacity(d.n);
    for _ in 0..iters {
        values.extend(d.build_idx.iter().map(|&i| Arc::new(Obj::new(i))));
        let start = Instant::now();
        let built = build(&mut values);
        total += start.elapsed();
        drop(black_box(built));
    }
    total
}

fn insert_one_txn_random(c: &mut Criterion, d: &Data) {
    let mut g = c.benchmark_group(format!("insert_{}_one_txn_random", short_n(d.n)));
    g.throughput(Throughput::Elements(d.n as u64));
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("tree", |b| {
        b.iter_custom(|iters| {
            time_builds(d, iters, |values| {
                let mut txn = Tree::new().txn();
                for (k, v) in d.build_keys.iter().zip(values.drain(..)) {
                    txn.insert(k, v);
                }
                txn.commit()
            })
        });
    });
    g.bench_function("btreemap", |b| {
        b.iter_custom(|iters| {
            time_builds(d, iters, |values| {
                let mut m = BTreeMap::new();
                for (k, v) in d.build_keys.iter().zip(values.drain(..)) {
                    m.insert(k.to_vec(), v);
                }
                m
            })
        });
    });
    g.bench_function("imbl", |b| {
        b.iter_custom(|iters| {
            time_builds(d, iters, |values| {
                let mut m = OrdMap::new();
                for (k, v) in d.build_keys.iter().zip(values.drain(..)) {
                    m.insert(k.to_vec(), v);
                }
                m
            })
        });
    });
    g.finish();
}

/// `1m` for 1,000,000, `100k` for 100,000, else the number.
fn short_n(n: usize) -> String {
    match n {
        n if n % 1_000_000 == 0 => format!("{}m", n / 1_000_000),
        n if n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// Timed per iteration: clone the N-key version and insert one new key into
/// the clone, which is kept (a new version next to the unchanged base).
/// Versions are collected in chunks of `VERSION_CHUNK`; **dropping them is
/// not timed**. Each new key is a sibling among existing keys
/// (`user-{g:07}x`), so the whole root-to-leaf path gets copied.
fn time_new_versions<T>(
    d: &Data,
    iters: u64,
    cur: &mut usize,
    mut new_version: impl FnMut(&Key) -> T,
) -> Duration {
    let mut kept: Vec<T> = Vec::with_capacity(VERSION_CHUNK);
    time_chunks(
        d,
        iters,
        cur,
        &mut kept,
        |kept, keys| kept.extend(keys.iter().map(&mut new_version)),
        |kept, _| kept.clear(),
    )
}

/// A versioned tree holding the bench's keys, each with `d.extra`, in one
/// commit.
fn versioned_line(d: &Data) -> VersionedTree<Value> {
    let mut line = VersionedTree::new();
    let mut txn = line.txn();
    for k in &d.build_keys {
        txn.insert(k, d.extra.clone());
    }
    txn.commit();
    line
}

/// Runs `timed` on consecutive windows of the new keys, `iters` keys in
/// all, in windows of up to `VERSION_CHUNK`, and `untimed` after each
/// window (dropping versions, taking inserted keys out again); returns the
/// time `timed` took. `state` is what both work on.
fn time_chunks<S>(
    d: &Data,
    iters: u64,
    cur: &mut usize,
    state: &mut S,
    mut timed: impl FnMut(&mut S, &[Key]),
    mut untimed: impl FnMut(&mut S, &[Key]),
) -> Duration {
    let chunk = VERSION_CHUNK.min(d.new_keys.len());
    let mut total = Duration::ZERO;
    let mut left = iters as usize;
    while left > 0 {
        let m = left.min(chunk);
        let keys = next_window(&d.new_keys, cur, m);
        let start = Instant::now();
        timed(state, keys);
        total += start.elapsed();
        untimed(state, keys);
        left -= m;
    }
    total
}

fn insert_one_new_version(c: &mut Criterion, d: &Data) {
    let mut g = c.benchmark_group("insert_one_new_version");
    g.throughput(Throughput::Elements(1));
    g.warm_up_time(Duration::from_secs(2));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("tree", |b| {
        let mut cur = 0;
        b.iter_custom(|iters| {
            time_new_versions(d, iters, &mut cur, |k| {
                let mut v = d.tree.clone(); // O(1)
                v.insert(k, d.extra.clone());
                v
            })
        });
    });
    // The versioned tree: each new version a commit on one line, each kept
    // as a pinned `Version`. Untimed after each chunk, as the others drop
    // their versions: the versions are dropped, the chunk's keys removed
    // again (so every version is N + 1 keys, as above) and the garbage
    // freed.
    let mut line = versioned_line(d);
    g.bench_function("versioned", |b| {
        let mut cur = 0;
        let mut state = (&mut line, Vec::with_capacity(VERSION_CHUNK));
        b.iter_custom(|iters| {
            time_chunks(
                d,
                iters,
                &mut cur,
                &mut state,
                |(line, kept), keys| {
                    for k in keys {
                        let mut txn = line.txn();
                        txn.insert(k, d.extra.clone());
                        txn.commit();
                        kept.push(line.version());
                    }
                },
                |(line, kept), keys| {
                    kept.clear();
                    let mut txn = line.txn();
                    for k in keys {
                        txn.remove(k);
                    }
                    txn.commit();
                    line.reclaim();
                },
            )
        });
    });
    drop(line);
    g.bench_function("imbl", |b| {
        let mut cur = 0;
        b.iter_custom(|iters| {
            time_new_versions(d, iters, &mut cur, |k| {
                let mut v = d.imbl.clone(); // O(1)
                v.insert(k.to_vec(), d.extra.clone());
                v
            })
        });
    });
    // REFERENCE ONLY, not the same operation: cloning a BTreeMap is O(N), so
    // it cannot keep versions. This times a plain in-place insert of one new
    // key (with its `to_vec()`) into one mutable N-key map; the inserted keys
    // are removed again after each chunk, untimed, so the map stays at ~N.
    let mut map = d.btree.clone();
    g.bench_function("btreemap_inplace_ref", |b| {
        let mut cur = 0;
        b.iter_custom(|iters| {
            time_chunks(
                d,
                iters,
                &mut cur,
                &mut map,
                |map, keys| {
                    for k in keys {
                        black_box(map.insert(k.to_vec(), d.extra.clone()));
                    }
                },
                |map, keys| {
                    for k in keys {
                        map.remove(k.as_slice());
                    }
                },
            )
        });
    });
    g.finish();
    assert_eq!(map.len(), d.n);
}

/// Updating one existing key (random) as a new version that replaces the
/// previous one, the database's single-object commit: the cost of the
/// copies *and* of freeing what they replaced, timed together.
/// - `tree_into_txn`: `Tree::into_txn`, the lending transaction; its commit
///   settles at once (the replaced path freed without touching children).
/// - `tree_clone`: a plain clone and insert; the old version is dropped
///   (every child of a copied node counted up, then down).
/// - `versioned`: `VersionedTree`; the commit retires the replaced path,
///   the next transaction frees it (no version is held).
/// - `versioned_held`: the same with one `Version` of the start held
///   throughout (what it reaches stays; the rest is freed).
/// - `btreemap_inplace_ref`: one in-place insert into a `BTreeMap`
///   (REFERENCE ONLY: a single version).
fn update_one_new_version(c: &mut Criterion, d: &Data) {
    let mut g = c.benchmark_group("update_one_new_version");
    g.throughput(Throughput::Elements(1));
    g.warm_up_time(Duration::from_secs(2));
    g.measurement_time(Duration::from_secs(5));
    let mut cur = 0;
    // Each structure is built afresh: one sharing nodes with `d.tree`
    // could not lend them, nor free them when its old version goes.
    let fresh = || {
        let mut txn = Tree::new().txn();
        for k in &d.build_keys {
            txn.insert(k, d.extra.clone());
        }
        txn.commit()
    };
    let mut tree = Some(fresh());
    g.bench_function("tree_into_txn", |b| {
        b.iter(|| {
            let k = next_window(&d.lookups, &mut cur, 1);
            let Some(v) = tree.take() else { unreachable!() };
            let mut txn = v.into_txn();
            txn.insert(&k[0], d.extra.clone());
            tree = Some(txn.commit());
        });
    });
    drop(tree);
    let mut tree = fresh();
    g.bench_function("tree_clone", |b| {
        b.iter(|| {
            let k = next_window(&d.lookups, &mut cur, 1);
            let mut next = tree.clone();
            next.insert(&k[0], d.extra.clone());
            tree = next;
        });
    });
    drop(tree);
    let mut line = versioned_line(d);
    g.bench_function("versioned", |b| {
        b.iter(|| {
            let k = next_window(&d.lookups, &mut cur, 1);
            let mut txn = line.txn();
            txn.insert(&k[0], d.extra.clone());
            txn.commit();
        });
    });
    let held = line.version();
    g.bench_function("versioned_held", |b| {
        b.iter(|| {
            let k = next_window(&d.lookups, &mut cur, 1);
            let mut txn = line.txn();
            txn.insert(&k[0], d.extra.clone());
            txn.commit();
        });
    });
    drop(held);
    drop(line);
    let mut map = d.btree.clone();
    g.bench_function("btreemap_inplace_ref", |b| {
        b.iter(|| {
            let k = next_window(&d.lookups, &mut cur, 1);
            black_box(map.insert(k[0].to_vec(), d.extra.clone()));
        });
    });
    g.finish();
}

/// A group timing one full pass over `n` entries per iteration.
fn full_iteration_group<'c>(
    c: &'c mut Criterion,
    name: &str,
    n: usize,
) -> criterion::BenchmarkGroup<'c, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(n as u64));
    // Flat: at N = 1M one iteration takes tens of ms, and linear sampling
    // would force at least 1 + 2 + .. + 20 = 210 of them.
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(20);
    g.warm_up_time(Duration::from_secs(2));
    g.measurement_time(Duration::from_secs(8));
    g
}

fn iter_full(c: &mut Criterion, d: &Data) {
    let mut g = full_iteration_group(c, "iter_full", d.n);
    g.bench_function("tree", |b| {
        b.iter(|| {
            for (k, v) in d.tree.iter() {
                consume(k, v);
            }
        });
    });
    g.bench_function("btreemap", |b| {
        b.iter(|| {
            for (k, v) in d.btree.iter() {
                consume(k, v);
            }
        });
    });
    g.bench_function("imbl", |b| {
        b.iter(|| {
            for (k, v) in d.imbl.iter() {
                consume(k, v);
            }
        });
    });
    g.finish();
}

/// `iter_full` on a tree and a `BTreeMap` built in *ascending* key order:
/// the same entries, laid out in memory in key order. Set beside `iter_full`
/// it separates the cost of node transitions in a randomly built tree from
/// the cost of the iterator itself.
fn iter_full_ascending_build(c: &mut Criterion, d: &Data) {
    let mut txn = Tree::new().txn();
    let mut btree = BTreeMap::new();
    for i in 0..d.n as u32 {
        let v = Arc::new(Obj::new(i));
        txn.insert(&key(i), v.clone());
        btree.insert(key(i).to_vec(), v);
    }
    let tree = txn.commit();
    let mut g = full_iteration_group(c, "iter_full_ascending_build", d.n);
    g.bench_function("tree", |b| {
        b.iter(|| {
            for (k, v) in tree.iter() {
                consume(k, v);
            }
        });
    });
    g.bench_function("btreemap", |b| {
        b.iter(|| {
            for (k, v) in btree.iter() {
                consume(k, v);
            }
        });
    });
    g.finish();
}

/// One iteration: `SEEK_BATCH` seeks to random existing keys, each followed
/// by taking (and consuming) the next `SEEK_TAKE` entries. Throughput counts
/// seeks.
fn lower_bound_100(c: &mut Criterion, d: &Data) {
    let mut g = c.benchmark_group("lower_bound_100");
    g.throughput(Throughput::Elements(SEEK_BATCH as u64));
    g.warm_up_time(Duration::from_secs(2));
    g.measurement_time(Duration::from_secs(5));
    // A different window of the same query list than `get_random` starts at.
    let start = d.n / 2;
    g.bench_function("tree", |b| {
        let mut cur = start;
        b.iter(|| {
            for k in next_window(&d.lookups, &mut cur, SEEK_BATCH) {
                for (k, v) in d.tree.lower_bound(k).take(SEEK_TAKE) {
                    consume(k, v);
                }
            }
        });
    });
    // The owning iterator (what the database's `RowIter` is made of): it
    // holds its version, so it outlives the borrow it was made from.
    g.bench_function("tree_owned", |b| {
        let mut cur = start;
        b.iter(|| {
            for k in next_window(&d.lookups, &mut cur, SEEK_BATCH) {
                let from: (Bound<&[u8]>, Bound<&[u8]>) = (Bound::Included(k), Bound::Unbounded);
                for (k, v) in d.tree.owned_range(from).take(SEEK_TAKE) {
                    consume(&k, &v);
                }
            }
        });
    });
    g.bench_function("btreemap", |b| {
        let mut cur = start;
        b.iter(|| {
            for k in next_window(&d.lookups, &mut cur, SEEK_BATCH) {
                let from: (Bound<&[u8]>, Bound<&[u8]>) = (Bound::Included(k), Bound::Unbounded);
                for (k, v) in d.btree.range::<[u8], _>(from).take(SEEK_TAKE) {
                    consume(k, v);
                }
            }
        });
    });
    g.bench_function("imbl", |b| {
        let mut cur = start;
        b.iter(|| {
            for k in next_window(&d.lookups, &mut cur, SEEK_BATCH) {
                let from: (Bound<&[u8]>, Bound<&[u8]>) = (Bound::Included(k), Bound::Unbounded);
                for (k, v) in d.imbl.range::<_, [u8]>(from).take(SEEK_TAKE) {
                    consume(k, v);
                }
            }
        });
    });
    g.finish();
}

fn main() {
    let listing = std::env::args().any(|a| a == "--list");
    let n = bench_n();
    if !listing {
        memory_table(n);
    }
    let data = Data::new(n);
    let mut c = Criterion::default().configure_from_args();
    // Each group is one `BenchmarkGroup` with one function per structure.
    let groups: [fn(&mut Criterion, &Data); 7] = [
        get_random,
        insert_one_txn_random,
        insert_one_new_version,
        update_one_new_version,
        iter_full,
        iter_full_ascending_build,
        lower_bound_100,
    ];
    for bench in groups {
        bench(&mut c, &data);
    }
    c.final_summary();
}
