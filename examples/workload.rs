//! The benchmark workloads of `shared/anchors/WORKLOADS.md`, run on pandodb
//! and on a `btree_rwlock` baseline (three `BTreeMap`s in an `RwLock`) in
//! the same process, printing one JSON line per workload on stdout.
//!
//! ```sh
//! cargo run --release --example workload -- --n 1000000
//! cargo run --release --example workload -- --n 100000 --only get_id,scan_all --engine pandodb
//! ```
//!
//! The binary uses mimalloc (through the counting `cap` wrapper) for every
//! engine: with glibc malloc, writers freeing each other's old versions
//! contend on arena locks, which is an allocator effect, not the engine's.
//!
//! Flags: `--n N` (default 1,000,000), `--only a,b,...`, `--engine
//! pandodb|btree_rwlock|both` (default both), `--quiet-wait SECS` (default
//! 60: before each timed section wait until other processes use < 0.1 CPU
//! cores; 0 = don't wait), `--duration SECS` for the concurrent workloads
//! (default 3).
//!
//! pandodb-only workloads (issue 4): `watch` (prints `watch_register`,
//! `watch_notify`, `watch_notify_watchset`, and beside them
//! `watch_wake_floor`: the same wake with no pandodb code, a parked thread
//! and `unpark`), `watch_idle_commit` (commit
//! cost with 100,000 idle watches against none) and `feed_throughput`
//! (change-feed events/s to one subscriber).
//!
//! Queries across indexes (issue 21), run only when `--only` names them:
//! `tags_memory` (bytes per object of a multi-value `tags` index),
//! `tags_and_auto` (`Query::select` of a b-tag AND an a-tag, the large
//! condition written first), `tags_and_auto_small_first`,
//! `tags_and_scan_large` / `tags_and_scan_small` (one tag scanned by hand,
//! the other tested on each object), `tags_all3` (a superset match of three
//! tags) against `tags_all3_scan_small`, `tags_any10` (an any-of of ten
//! a-tags, in primary-key order) against `tags_any10_by_hand`; the
//! `btree_rwlock` engine runs the hand-written ones. Best of 3 passes.
//!
//! Persistence workloads (issue 5): `snapshot_write`, `snapshot_restore`
//! (objects/s, bytes per object, peak memory of the restore against the
//! final database), `commit_sync` (synchronous single-object commits/s with
//! 1 and 8 committing threads), `recovery_replay` (log records/s on
//! open) and `open_snapshot` (`Db::open` of a checkpoint of N objects:
//! seconds, objects/s, peak memory against the opened database). `bulk_load`
//! is `bulk_insert` through the bulk-load API (`WriteTxn::insert_all`). They use the temp directory.
//!
//! History workloads (issue 18, `workload/history.rs`): `read_at_lookup`,
//! `history_memory`, `update_history`, `feed_rebuild`, `versioned_rows`.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use pandodb::{
    Db, Filter, Index, Indexer, Options, Query, Retention, Schema, SetMatch, Table, WatchSet,
};

#[path = "workload/history.rs"]
mod history;

#[global_allocator]
static ALLOC: cap::Cap<mimalloc::MiMalloc> = cap::Cap::new(mimalloc::MiMalloc, usize::MAX);

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Person {
    id: String,
    email: String,
    #[allow(dead_code)]
    name: String,
    age: i64,
}

fn person(i: u64) -> Person {
    // Exact-size strings, as the Go harness's objects have.
    let exact = |s: String| s.into_boxed_str().into_string();
    Person {
        id: exact(format!("user-{i:08}")),
        email: exact(format!("u{i:08}@example.com")),
        name: exact(format!("name-{i}")),
        age: (i % 100) as i64,
    }
}

/// splitmix64: the fixed-seed generator of every random choice.
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

// ---------------------------------------------------------------- engines

trait Engine: Send + Sync + Sized + 'static {
    const NAME: &'static str;
    fn bulk(people: Vec<Arc<Person>>) -> Self;
    /// The same database through the engine's bulk-load API, if it has one
    /// (`bulk_load`; pandodb: `WriteTxn::insert_all`).
    fn bulk_load(people: Vec<Arc<Person>>) -> Self {
        Self::bulk(people)
    }
    fn get_ids_one_txn(&self, ids: &[String]) -> usize;
    fn get_id_fresh_txn(&self, id: &str) -> bool;
    fn range_age(&self, age: i64) -> usize;
    fn scan_all(&self) -> usize;
    fn lower_bound_page(&self, id: &str) -> usize;
    fn insert_one(&self, p: Arc<Person>);
    /// Deletes the stored objects with the primary keys of `keys` (objects
    /// with only the id set, as the go-memdb harness passes to `Delete`).
    fn delete_many(&self, keys: &[Person]);
    fn len(&self) -> usize;
}

struct Pando {
    db: Db,
    people: Table<Person>,
    by_id: Index<Person, str>,
    by_age: Index<Person, i64>,
}

fn pando_schema() -> Pando {
    let mut schema = Schema::builder();
    let mut t = schema.table::<Person>("person");
    let by_id = t.primary("id", Indexer::string(|p: &Person| p.id.as_str()));
    t.unique("email", Indexer::string(|p: &Person| p.email.as_str()));
    let by_age = t.index("age", Indexer::value(|p: &Person| p.age));
    t.serde();
    let people = schema.add(t).expect("valid table");
    Pando {
        db: Db::new(schema.build().expect("valid schema")),
        people,
        by_id,
        by_age,
    }
}

impl Engine for Pando {
    const NAME: &'static str = "pandodb";
    fn bulk(people: Vec<Arc<Person>>) -> Self {
        let e = pando_schema();
        let mut w = e.db.write(&[&e.people]);
        for p in people {
            w.insert(&e.people, p).expect("insert");
        }
        w.commit().expect("commit");
        e
    }
    fn bulk_load(people: Vec<Arc<Person>>) -> Self {
        let e = pando_schema();
        let mut w = e.db.write(&[&e.people]);
        w.insert_all(&e.people, people).expect("insert_all");
        w.commit().expect("commit");
        e
    }
    fn get_ids_one_txn(&self, ids: &[String]) -> usize {
        let r = self.db.read();
        ids.iter()
            .filter(|id| r.get_ref(&self.by_id, id.as_str()).ok().flatten().is_some())
            .count()
    }
    fn get_id_fresh_txn(&self, id: &str) -> bool {
        self.db
            .read()
            .get_ref(&self.by_id, id)
            .ok()
            .flatten()
            .is_some()
    }
    fn range_age(&self, age: i64) -> usize {
        let r = self.db.read();
        r.iter_ref(&self.by_age, &age).map_or(0, |it| {
            it.fold(0, |n, p| n + usize::from(std::hint::black_box(p.age) >= 0))
        })
    }
    fn scan_all(&self) -> usize {
        let r = self.db.read();
        r.all_ref(&self.by_id)
            .map_or(0, |it| it.map(|p| p.id.len()).sum())
    }
    fn lower_bound_page(&self, id: &str) -> usize {
        let r = self.db.read();
        r.lower_bound_ref(&self.by_id, id)
            .map_or(0, |it| it.take(100).map(|p| p.id.len()).sum())
    }
    fn insert_one(&self, p: Arc<Person>) {
        let mut w = self.db.write(&[&self.people]);
        w.insert(&self.people, p).expect("insert");
        w.commit().expect("commit");
    }
    fn delete_many(&self, keys: &[Person]) {
        let mut w = self.db.write(&[&self.people]);
        for k in keys {
            w.delete(&self.people, k).expect("delete");
        }
        w.commit().expect("commit");
    }
    fn len(&self) -> usize {
        self.db.read().len(&self.people).unwrap_or(0)
    }
}

#[derive(Default)]
struct Maps {
    by_id: BTreeMap<Arc<str>, Arc<Person>>,
    by_email: BTreeMap<Arc<str>, Arc<Person>>,
    by_age: BTreeMap<(i64, Arc<str>), Arc<Person>>,
}

impl Maps {
    fn insert(&mut self, p: Arc<Person>) {
        let id: Arc<str> = p.id.as_str().into();
        if let Some(old) = self.by_id.insert(id.clone(), p.clone()) {
            self.by_email.remove(old.email.as_str());
            self.by_age.remove(&(old.age, id.clone()));
        }
        self.by_email.insert(p.email.as_str().into(), p.clone());
        self.by_age.insert((p.age, id), p);
    }
    fn remove(&mut self, id: &str) {
        if let Some(old) = self.by_id.remove(id) {
            self.by_email.remove(old.email.as_str());
            let key: Arc<str> = id.into();
            self.by_age.remove(&(old.age, key));
        }
    }
}

/// The baseline: three `BTreeMap`s behind one `RwLock` (a write txn is the
/// write lock, a read txn the read lock).
struct BTreeRwLock(RwLock<Maps>);

impl Engine for BTreeRwLock {
    const NAME: &'static str = "btree_rwlock";
    fn bulk(people: Vec<Arc<Person>>) -> Self {
        let e = BTreeRwLock(RwLock::new(Maps::default()));
        {
            let mut m = e.0.write().expect("lock");
            for p in people {
                m.insert(p);
            }
        }
        e
    }
    fn get_ids_one_txn(&self, ids: &[String]) -> usize {
        let m = self.0.read().expect("lock");
        ids.iter()
            .filter(|id| m.by_id.contains_key(id.as_str()))
            .count()
    }
    fn get_id_fresh_txn(&self, id: &str) -> bool {
        self.0.read().expect("lock").by_id.contains_key(id)
    }
    fn range_age(&self, age: i64) -> usize {
        let m = self.0.read().expect("lock");
        let lo: Arc<str> = "".into();
        m.by_age
            .range((Bound::Included((age, lo)), Bound::Unbounded))
            .take_while(|((a, _), _)| *a == age)
            .fold(0, |n, (_, p)| {
                n + usize::from(std::hint::black_box(p.age) >= 0)
            })
    }
    fn scan_all(&self) -> usize {
        let m = self.0.read().expect("lock");
        m.by_id.values().map(|p| p.id.len()).sum()
    }
    fn lower_bound_page(&self, id: &str) -> usize {
        let m = self.0.read().expect("lock");
        m.by_id
            .range::<str, _>((Bound::Included(id), Bound::Unbounded))
            .take(100)
            .map(|(_, p)| p.id.len())
            .sum()
    }
    fn insert_one(&self, p: Arc<Person>) {
        self.0.write().expect("lock").insert(p);
    }
    fn delete_many(&self, keys: &[Person]) {
        let mut m = self.0.write().expect("lock");
        for k in keys {
            m.remove(&k.id);
        }
    }
    fn len(&self) -> usize {
        self.0.read().expect("lock").by_id.len()
    }
}

// ---------------------------------------------------------------- machine

/// Busy CPU seconds of the whole machine (user+nice+system+irq+softirq).
fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if f.len() < 7 {
        return 0.0;
    }
    (f[0] + f[1] + f[2] + f[5] + f[6]) / 100.0
}

/// CPU seconds used by this process.
fn self_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = after
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // Fields after the command: state(skipped: not a number) ppid ... utime is field 14.
    if f.len() < 13 {
        return 0.0;
    }
    (f[10] + f[11]) / 100.0
}

/// CPU seconds used by the calling thread.
fn thread_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

struct Cfg {
    n: u64,
    quiet_wait: f64,
    duration: f64,
    only: Option<Vec<String>>,
}

impl Cfg {
    fn enabled(&self, w: &str) -> bool {
        self.only.as_ref().is_none_or(|o| o.iter().any(|x| x == w))
    }

    fn wait_quiet(&self) {
        if self.quiet_wait <= 0.0 {
            return;
        }
        let start = Instant::now();
        let mut quiet = 0;
        while start.elapsed().as_secs_f64() < self.quiet_wait {
            let (b0, s0) = (machine_busy(), self_cpu());
            std::thread::sleep(Duration::from_millis(500));
            let other = (machine_busy() - b0) - (self_cpu() - s0);
            if other < 0.05 {
                quiet += 1;
                if quiet >= 2 {
                    return;
                }
            } else {
                quiet = 0;
            }
        }
        eprintln!(
            "machine still busy after {}s; measuring anyway",
            self.quiet_wait
        );
    }
}

/// Times `f` after waiting for a quiet machine; returns (seconds, other
/// processes' CPU cores during the section).
fn timed<R>(cfg: &Cfg, f: impl FnOnce() -> R) -> (f64, f64, R) {
    cfg.wait_quiet();
    let (b0, s0) = (machine_busy(), self_cpu());
    let t = Instant::now();
    let r = f();
    let secs = t.elapsed().as_secs_f64();
    let other = ((machine_busy() - b0) - (self_cpu() - s0)).max(0.0) / secs;
    (secs, other, r)
}

fn emit(engine: &str, workload: &str, n: u64, ns_per_op: Option<f64>, extra: &[(&str, String)]) {
    let num = |x: Option<f64>| x.map_or("null".to_string(), |v| format!("{v:.2}"));
    let mut line = format!(
        "{{\"engine\":\"{engine}\",\"workload\":\"{workload}\",\"n\":{n},\"ns_per_op\":{},\"ops_per_s\":{}",
        num(ns_per_op),
        num(ns_per_op.map(|ns| 1e9 / ns)),
    );
    for (k, v) in extra {
        line.push_str(&format!(",\"{k}\":{v}"));
    }
    line.push('}');
    println!("{line}");
}

fn f2(x: f64) -> String {
    format!("{x:.2}")
}

// ---------------------------------------------------------------- workloads

fn people(from: u64, to: u64) -> Vec<Arc<Person>> {
    (from..to).map(|i| Arc::new(person(i))).collect()
}

fn fresh<E: Engine>(n: u64) -> E {
    E::bulk(people(0, n))
}

fn run<E: Engine>(cfg: &Cfg) {
    let n = cfg.n;
    let name = E::NAME;
    eprintln!("== {name}, n = {n}");

    // bulk_insert + memory
    let base = ALLOC.allocated();
    let objs = people(0, n);
    let objects_bytes = ALLOC.allocated() - base - objs.capacity() * 8;
    let (secs, other, db) = timed(cfg, || E::bulk(objs));
    let live = ALLOC.allocated() - base;
    assert_eq!(db.len() as u64, n);
    if cfg.enabled("bulk_insert") {
        emit(
            name,
            "bulk_insert",
            n,
            Some(secs * 1e9 / n as f64),
            &[
                ("order", "\"ascending id\"".into()),
                ("other_cpu_cores", f2(other)),
            ],
        );
    }
    if cfg.enabled("bulk_load") {
        let base = ALLOC.allocated();
        let objs = people(0, n);
        let (secs, other, loaded) = timed(cfg, || E::bulk_load(objs));
        let live = ALLOC.allocated() - base;
        assert_eq!(loaded.len() as u64, n);
        emit(
            name,
            "bulk_load",
            n,
            Some(secs * 1e9 / n as f64),
            &[
                ("order", "\"ascending id\"".into()),
                ("bytes_per_object", format!("{:.1}", live as f64 / n as f64)),
                ("other_cpu_cores", f2(other)),
                (
                    "note",
                    "\"one transaction through the bulk-load API (pandodb: WriteTxn::insert_all; btree_rwlock has none: its inserts)\"".into(),
                ),
            ],
        );
    }
    if cfg.enabled("memory") {
        emit(
            name,
            "memory",
            n,
            None,
            &[
                ("live_bytes", live.to_string()),
                ("bytes_per_object", format!("{:.1}", live as f64 / n as f64)),
                ("object_bytes_per_object", format!("{:.1}", objects_bytes as f64 / n as f64)),
                (
                    "index_bytes_per_object",
                    format!("{:.1}", (live - objects_bytes) as f64 / n as f64),
                ),
                (
                    "note",
                    "\"requested bytes (counting GlobalAlloc) of the objects and every index, after bulk_insert\"".into(),
                ),
            ],
        );
    }

    let mut rng = Rng(42);
    let ids: Vec<String> = (0..1_000_000).map(|_| person(rng.below(n)).id).collect();

    if cfg.enabled("get_id") {
        let (secs, other, found) = timed(cfg, || db.get_ids_one_txn(&ids));
        assert_eq!(found, ids.len());
        emit(
            name,
            "get_id",
            n,
            Some(secs * 1e9 / ids.len() as f64),
            &[("other_cpu_cores", f2(other))],
        );
    }
    if cfg.enabled("get_id_txn") {
        let (secs, other, found) = timed(cfg, || {
            ids.iter().filter(|id| db.get_id_fresh_txn(id)).count()
        });
        assert_eq!(found, ids.len());
        emit(
            name,
            "get_id_txn",
            n,
            Some(secs * 1e9 / ids.len() as f64),
            &[("other_cpu_cores", f2(other))],
        );
    }
    if cfg.enabled("range_age") {
        let ages: Vec<i64> = (0..10_000).map(|_| rng.below(100) as i64).collect();
        let (secs, other, rows) =
            timed(cfg, || ages.iter().map(|&a| db.range_age(a)).sum::<usize>());
        let rows = rows.max(1);
        emit(
            name,
            "range_age",
            n,
            Some(secs * 1e9 / rows as f64),
            &[
                ("ns_per_query", f2(secs * 1e9 / ages.len() as f64)),
                ("other_cpu_cores", f2(other)),
            ],
        );
    }
    if cfg.enabled("scan_all") {
        let rounds = (5_000_000 / n).max(1);
        let (secs, other, _) = timed(cfg, || (0..rounds).map(|_| db.scan_all()).sum::<usize>());
        emit(
            name,
            "scan_all",
            n,
            Some(secs * 1e9 / (rounds * n) as f64),
            &[("other_cpu_cores", f2(other))],
        );
    }
    if cfg.enabled("lower_bound_page") {
        let starts: Vec<String> = (0..100_000).map(|_| person(rng.below(n)).id).collect();
        let (secs, other, _) = timed(cfg, || {
            starts.iter().map(|s| db.lower_bound_page(s)).sum::<usize>()
        });
        emit(
            name,
            "lower_bound_page",
            n,
            Some(secs * 1e9 / starts.len() as f64),
            &[("other_cpu_cores", f2(other))],
        );
    }
    drop(db);

    if cfg.enabled("txn_insert") {
        let db: E = fresh(n);
        let objs = people(n, n + 100_000);
        let (secs, other, _) = timed(cfg, || {
            for p in objs {
                db.insert_one(p);
            }
        });
        assert_eq!(db.len() as u64, n + 100_000);
        emit(
            name,
            "txn_insert",
            n,
            Some(secs * 1e9 / 100_000.0),
            &[("other_cpu_cores", f2(other))],
        );
    }
    if cfg.enabled("update") {
        let db: E = fresh(n);
        let objs: Vec<Arc<Person>> = (0..100_000)
            .map(|_| {
                let mut p = person(rng.below(n));
                p.age = (p.age + 1 + rng.below(98) as i64) % 100;
                Arc::new(p)
            })
            .collect();
        let (secs, other, _) = timed(cfg, || {
            for p in objs {
                db.insert_one(p);
            }
        });
        assert_eq!(db.len() as u64, n);
        emit(
            name,
            "update",
            n,
            Some(secs * 1e9 / 100_000.0),
            &[("other_cpu_cores", f2(other))],
        );
    }
    if cfg.enabled("delete") {
        let db: E = fresh(n);
        let k = 100_000.min(n);
        // distinct random ids: a random stride walk over a permutation
        let mut all: Vec<u64> = (0..n).collect();
        for i in 0..k as usize {
            let j = i + rng.below(n - i as u64) as usize;
            all.swap(i, j);
        }
        // Key objects with only the id set, built before the timer (as the
        // go-memdb harness does for `Delete`).
        let victims: Vec<Person> = all[..k as usize]
            .iter()
            .map(|&i| Person {
                id: person(i).id,
                email: String::new(),
                name: String::new(),
                age: 0,
            })
            .collect();
        let (secs, other, _) = timed(cfg, || db.delete_many(&victims));
        assert_eq!(db.len() as u64, n - k);
        emit(
            name,
            "delete",
            n,
            Some(secs * 1e9 / k as f64),
            &[("other_cpu_cores", f2(other))],
        );
    }
    if cfg.enabled("concurrent_read_0w") || cfg.enabled("concurrent_read_1w") {
        let db = Arc::new(fresh::<E>(n));
        let ids = Arc::new(ids);
        let (r0, per_cpu0, _) = concurrent(cfg, &db, &ids, false);
        emit(
            name,
            "concurrent_read_0w",
            n,
            Some(1e9 / r0),
            &[
                ("reader_ops_per_cpu_s", f2(per_cpu0)),
                ("writer_commits_per_s", "0".into()),
            ],
        );
        let (r1, per_cpu1, commits) = concurrent(cfg, &db, &ids, true);
        emit(
            name,
            "concurrent_read_1w",
            n,
            Some(1e9 / r1),
            &[
                ("reader_ops_per_cpu_s", f2(per_cpu1)),
                ("writer_commits_per_s", f2(commits)),
                ("reader_ratio_vs_0w", format!("{:.3}", per_cpu1 / per_cpu0)),
                ("reader_total_ratio_vs_0w", format!("{:.3}", r1 / r0)),
            ],
        );
    }
}

/// Two writer threads committing one new object per transaction for
/// `duration`: on two different tables, then both on the same table.
/// Returns (commits/s disjoint, commits/s same table).
fn parallel_writers(cfg: &Cfg) -> (f64, f64) {
    let mut schema = Schema::builder();
    let mut tables = Vec::new();
    for name in ["person_a", "person_b"] {
        let mut t = schema.table::<Person>(name);
        t.primary("id", Indexer::string(|p: &Person| p.id.as_str()));
        t.unique("email", Indexer::string(|p: &Person| p.email.as_str()));
        t.index("age", Indexer::value(|p: &Person| p.age));
        tables.push(schema.add(t).expect("valid table"));
    }
    let db = Db::new(schema.build().expect("valid schema"));
    let mut rates = Vec::new();
    for disjoint in [true, false] {
        cfg.wait_quiet();
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicU64::new(if disjoint { 0 } else { 1 << 40 }));
        let handles: Vec<_> = (0..2)
            .map(|w| {
                let table = tables[if disjoint { w } else { 0 }].clone();
                let (db, stop, next) = (db.clone(), stop.clone(), next.clone());
                std::thread::spawn(move || {
                    let mut commits = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let p = Arc::new(person(next.fetch_add(1, Ordering::Relaxed)));
                        let mut txn = db.write(&[&table]);
                        txn.insert(&table, p).expect("insert");
                        txn.commit().expect("commit");
                        commits += 1;
                    }
                    commits
                })
            })
            .collect();
        let t = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(cfg.duration));
        stop.store(true, Ordering::Relaxed);
        let total: u64 = handles.into_iter().map(|h| h.join().expect("writer")).sum();
        rates.push(total as f64 / t.elapsed().as_secs_f64());
    }
    (rates[0], rates[1])
}

/// 2 readers (fresh read txn every 1,000 lookups), optionally 1 writer
/// committing one new object per transaction. Returns (reader ops/s,
/// reader ops per reader-CPU-second, writer commits/s).
fn concurrent<E: Engine>(
    cfg: &Cfg,
    db: &Arc<E>,
    ids: &Arc<Vec<String>>,
    writer: bool,
) -> (f64, f64, f64) {
    cfg.wait_quiet();
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(cfg.n * 2));
    let mut readers = Vec::new();
    for g in 0..2 {
        let (db, ids, stop) = (db.clone(), ids.clone(), stop.clone());
        readers.push(std::thread::spawn(move || {
            let c0 = thread_cpu();
            let mut pos = ids.len() / 2 * g;
            let mut ops = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let end = (pos + 1000).min(ids.len());
                let found = db.get_ids_one_txn(&ids[pos..end]);
                assert_eq!(found, end - pos);
                ops += (end - pos) as u64;
                pos = if end == ids.len() { 0 } else { end };
            }
            (ops, thread_cpu() - c0)
        }));
    }
    let w = writer.then(|| {
        let (db, stop, next) = (db.clone(), stop.clone(), next.clone());
        std::thread::spawn(move || {
            let mut commits = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let p = Arc::new(person(next.fetch_add(1, Ordering::Relaxed)));
                db.insert_one(p);
                commits += 1;
            }
            commits
        })
    });
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(cfg.duration));
    stop.store(true, Ordering::Relaxed);
    let mut ops = 0;
    let mut cpu = 0.0;
    for r in readers {
        let (o, c) = r.join().expect("reader");
        ops += o;
        cpu += c;
    }
    let commits = w.map_or(0, |w| w.join().expect("writer"));
    let secs = t.elapsed().as_secs_f64();
    (
        ops as f64 / secs,
        ops as f64 / cpu.max(1e-9),
        commits as f64 / secs,
    )
}

/// `watch_register`, `watch_notify`, `watch_notify_watchset` as the go-memdb
/// harness runs them: 10,000 watches (get + watch + add to a set) on random
/// existing ids, then one update of a watched object; latency from the start
/// of commit until the blocked waiter runs, median of 20 trials each.
fn watch_workloads(cfg: &Cfg) {
    let n = cfg.n;
    let db: Pando = fresh(n);
    let nw = 10_000.min(n as usize);
    let trials = 20;
    let mut rng = Rng(0x5eed_0005);
    let mut ids: Vec<u64> = Vec::with_capacity(nw);
    let mut seen = std::collections::HashSet::new();
    while ids.len() < nw {
        let i = rng.below(n);
        if seen.insert(i) {
            ids.push(i);
        }
    }
    let keys: Vec<String> = ids.iter().map(|&i| person(i).id).collect();
    let mut reg_ns = 0.0;
    let mut get_ns = 0.0;
    let mut reg_count = 0usize;
    let (mut wake, mut wake_set, mut commit, mut commit_set) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    cfg.wait_quiet();
    for t in 0..2 * trials {
        let use_set = t >= trials;
        let r = db.db.read();
        let mut set = WatchSet::new();
        let mut watches = Vec::with_capacity(nw);
        let start = Instant::now();
        for k in &keys {
            let (obj, w) = r.get_watch(&db.by_id, k.as_str()).expect("watch");
            assert!(obj.is_some(), "watch: get miss");
            set.add(w.clone());
            watches.push(w);
        }
        reg_ns += start.elapsed().as_nanos() as f64;
        reg_count += nw;
        // The same lookups without watches, for the registration's share.
        let start = Instant::now();
        for k in &keys {
            let obj = r.get(&db.by_id, k.as_str()).expect("get");
            assert!(obj.is_some(), "get miss");
        }
        get_ns += start.elapsed().as_nanos() as f64;
        drop(r);
        let j = rng.below(nw as u64) as usize;
        let mut upd = person(ids[j]);
        upd.age = (upd.age + 1 + t as i64) % 100;
        let (tx, rx) = std::sync::mpsc::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let w = watches[j].clone();
        let waiter = std::thread::spawn(move || {
            ready_tx.send(()).expect("ready");
            if use_set {
                let fired = set.wait_timeout(Duration::from_secs(10)).expect("open");
                assert_eq!(fired, Some(j), "watch set woke for the wrong watch");
            } else {
                assert!(
                    w.wait_timeout(Duration::from_secs(10)).expect("open"),
                    "watch timed out"
                );
            }
            tx.send(Instant::now()).expect("woke");
        });
        ready_rx.recv().expect("ready");
        std::thread::sleep(Duration::from_millis(20));
        let mut txn = db.db.write(&[&db.people]);
        txn.insert(&db.people, upd).expect("insert");
        let c0 = Instant::now();
        txn.commit().expect("commit");
        let c1 = Instant::now();
        let woke = rx.recv().expect("woke");
        waiter.join().expect("waiter");
        let (c, l) = if use_set {
            (&mut commit_set, &mut wake_set)
        } else {
            (&mut commit, &mut wake)
        };
        c.push((c1 - c0).as_nanos() as f64);
        l.push((woke - c0).as_nanos() as f64);
        for (jj, w) in watches.iter().enumerate() {
            assert!(jj == j || !w.is_fired(), "an unrelated watch fired");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let (registered, bytes) = db.db.watch_stats();
    emit(
        "pandodb",
        "watch_register",
        n,
        Some(reg_ns / reg_count as f64),
        &[
            ("op", "\"get_watch + WatchSet::add\"".into()),
            ("watches", nw.to_string()),
            ("ops", reg_count.to_string()),
            ("get_only_ns_per_op", f2(get_ns / reg_count as f64)),
            ("registered_now", registered.to_string()),
            (
                "registry_bytes_per_watch",
                f2(bytes as f64 / registered.max(1) as f64),
            ),
        ],
    );
    for (name, l, c) in [
        ("watch_notify", &mut wake, &mut commit),
        ("watch_notify_watchset", &mut wake_set, &mut commit_set),
    ] {
        let (min, med, max) = stats(l);
        emit(
            "pandodb",
            name,
            n,
            Some(med),
            &[
                ("watches", nw.to_string()),
                ("trials", trials.to_string()),
                ("wake_ns_min", f2(min)),
                ("wake_ns_median", f2(med)),
                ("wake_ns_max", f2(max)),
                ("commit_ns_median", f2(stats(c).1)),
            ],
        );
    }
    watch_wake_floor(cfg, 2 * trials);
}

/// The floor under `watch_notify` with no pandodb code in it: the same
/// protocol (a waiter thread blocked for 20 ms, the waking thread fresh
/// from a 20 ms sleep, latency from just before the wake call to the
/// waiter's first instruction after it) with `std::thread::park` /
/// `unpark`, the futex wait and wake that every blocked pandodb waiter
/// (`event_listener`) ends up in. Prints `watch_wake_floor` (engine
/// `os_thread`): the wake's median and the median of the `unpark` call
/// itself, which the waking thread pays.
fn watch_wake_floor(cfg: &Cfg, trials: usize) {
    let (mut wake, mut call) = (Vec::new(), Vec::new());
    for _ in 0..trials {
        let (tx, rx) = std::sync::mpsc::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            ready_tx.send(()).expect("ready");
            // `park` may return spuriously: wait for the flag.
            while rx.try_recv().is_err() {
                std::thread::park();
            }
            Instant::now()
        });
        ready_rx.recv().expect("ready");
        std::thread::sleep(Duration::from_millis(20));
        let t0 = Instant::now();
        tx.send(()).expect("flag");
        waiter.thread().unpark();
        let t1 = Instant::now();
        let woke = waiter.join().expect("waiter");
        wake.push((woke - t0).as_nanos() as f64);
        call.push((t1 - t0).as_nanos() as f64);
        std::thread::sleep(Duration::from_millis(5));
    }
    let (min, med, max) = stats(&mut wake);
    emit(
        "os_thread",
        "watch_wake_floor",
        cfg.n,
        Some(med),
        &[
            (
                "op",
                "\"std::thread::park / unpark, no pandodb code\"".into(),
            ),
            ("trials", trials.to_string()),
            ("wake_ns_min", f2(min)),
            ("wake_ns_median", f2(med)),
            ("wake_ns_max", f2(max)),
            ("unpark_call_ns_median", f2(stats(&mut call).1)),
        ],
    );
}

/// (min, median, max) of a sample.
fn stats(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let med = if v.len().is_multiple_of(2) {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    } else {
        v[v.len() / 2]
    };
    (v[0], med, v[v.len() - 1])
}

/// Cost of a commit touching no watched key, with 100,000 idle watches
/// registered on the table against none: two databases of N objects, one
/// with the watches, single-object insert transactions alternating between
/// them in rounds (A B A B ...), medians of the rounds compared.
fn watch_idle_overhead(cfg: &Cfg) {
    let n = cfg.n;
    let plain: Pando = fresh(n);
    let watched: Pando = fresh(n);
    let nw = 100_000.min(n as usize);
    let mut set = WatchSet::new();
    {
        let r = watched.db.read();
        let mut rng = Rng(0x5eed_0006);
        for _ in 0..nw {
            let id = person(rng.below(n)).id;
            set.add(r.get_watch(&watched.by_id, id.as_str()).expect("watch").1);
        }
    }
    let (registered, bytes) = watched.db.watch_stats();
    let rounds = 10;
    let per_round = 10_000u64;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    cfg.wait_quiet();
    for round in 0..rounds {
        for (db, out) in [(&plain, &mut a), (&watched, &mut b)] {
            let base = n + round * per_round;
            let objs = people(base, base + per_round);
            let t = Instant::now();
            for p in objs {
                db.insert_one(p);
            }
            out.push(t.elapsed().as_nanos() as f64 / per_round as f64);
        }
    }
    assert_eq!(set.fired(), None, "an idle watch fired");
    let (_, none, _) = stats(&mut a);
    let (_, with, _) = stats(&mut b);
    emit(
        "pandodb",
        "watch_idle_commit",
        n,
        Some(with),
        &[
            ("ns_per_commit_no_watches", f2(none)),
            ("ns_per_commit_100k_idle_watches", f2(with)),
            ("overhead_ratio", format!("{:.3}", with / none)),
            ("watches_registered", registered.to_string()),
            (
                "registry_bytes_per_watch",
                f2(bytes as f64 / registered.max(1) as f64),
            ),
            (
                "op",
                "\"single-object insert txn + commit, medians of 10 alternating rounds\"".into(),
            ),
        ],
    );
}

/// Change-feed throughput: one subscriber thread drains the feed while a
/// writer commits 200,000 single-object insert transactions as fast as it
/// can; events delivered per second, and the writer's rate beside a run
/// without a subscriber.
fn feed_throughput(cfg: &Cfg) {
    let n = cfg.n;
    let commits = 200_000u64;
    let mut rates = Vec::new();
    for subscribe in [false, true] {
        let e = {
            let mut schema = Schema::builder();
            let mut t = schema.table::<Person>("person");
            let by_id = t.primary("id", Indexer::string(|p: &Person| p.id.as_str()));
            t.unique("email", Indexer::string(|p: &Person| p.email.as_str()));
            let by_age = t.index("age", Indexer::value(|p: &Person| p.age));
            let people = schema.add(t).expect("valid table");
            let opts =
                Options::default().feed_retention(Retention::commits(1 << 20).max_bytes(1 << 30));
            Pando {
                db: Db::with_options(schema.build().expect("valid schema"), opts),
                people,
                by_id,
                by_age,
            }
        };
        let objs = people(n, n + commits);
        cfg.wait_quiet();
        let sub = subscribe.then(|| {
            let mut s = e.db.subscribe(&[&e.people], 1).expect("subscribe");
            std::thread::spawn(move || {
                let mut events = 0u64;
                let mut last = 0;
                while events < commits {
                    let b = s
                        .next_timeout(Duration::from_secs(10))
                        .expect("no gap")
                        .expect("a batch within 10 s");
                    assert_eq!(b.revision, last + 1, "gap or duplicate");
                    last = b.revision;
                    events += b.changes.len() as u64;
                }
                (events, Instant::now())
            })
        });
        let t = Instant::now();
        for p in objs {
            e.insert_one(p);
        }
        let writer_secs = t.elapsed().as_secs_f64();
        let delivered = sub.map(|h| {
            let (events, end) = h.join().expect("subscriber");
            events as f64 / (end - t).as_secs_f64()
        });
        rates.push((commits as f64 / writer_secs, delivered));
    }
    let events = rates[1].1.unwrap_or(0.0);
    emit(
        "pandodb",
        "feed_throughput",
        n,
        Some(1e9 / events),
        &[
            ("events_per_s", f2(events)),
            ("writer_commits_per_s_with_subscriber", f2(rates[1].0)),
            ("writer_commits_per_s_without", f2(rates[0].0)),
            (
                "op",
                "\"1 writer, single-object insert txns; 1 subscriber thread\"".into(),
            ),
        ],
    );
}

/// A scratch directory for the persistence workloads (removed after).
fn scratch_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("pandodb-workload-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// The workload's schema with a durable database in `dir`.
fn open_durable(dir: &std::path::Path, opts: Options) -> Pando {
    let e = pando_schema();
    let schema = e.db.schema().clone();
    drop(e.db);
    Pando {
        db: Db::open(dir, schema, opts).expect("open"),
        people: e.people,
        by_id: e.by_id,
        by_age: e.by_age,
    }
}

/// Runs `commit(thread, i)` for i = 0, 1, ... on `threads` threads until
/// `--duration` has passed (a fixed count per thread would leave the last
/// thread committing alone at the end). Returns (commits, commits/s).
fn commit_for(cfg: &Cfg, threads: usize, commit: impl Fn(usize, u64) + Sync) -> (u64, f64) {
    cfg.wait_quiet();
    let stop = AtomicBool::new(false);
    let t = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let (stop, commit) = (&stop, &commit);
                s.spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        commit(k, i);
                        i += 1;
                    }
                    i
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs_f64(cfg.duration));
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|h| h.join().expect("committer"))
            .sum()
    });
    (total, total as f64 / t.elapsed().as_secs_f64())
}

/// `snapshot_write`, `snapshot_restore`, `commit_sync`, `recovery_replay`
/// (issue 5).
fn persistence_workloads(cfg: &Cfg) {
    let n = cfg.n;
    if cfg.enabled("snapshot_write") || cfg.enabled("snapshot_restore") {
        let dir = scratch_dir("snap");
        let file = dir.join("snapshot.pdb");
        let db: Pando = fresh(n);
        let (secs, other, info) = timed(cfg, || {
            let f = std::fs::File::create(&file).expect("create");
            let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
            let info = db.db.snapshot_to(&mut w).expect("snapshot");
            std::io::Write::flush(&mut w).expect("flush");
            info
        });
        assert_eq!(info.rows, n);
        emit(
            "pandodb",
            "snapshot_write",
            n,
            Some(secs * 1e9 / n as f64),
            &[
                ("objects_per_s", f2(n as f64 / secs)),
                ("bytes_per_object", f2(info.bytes as f64 / n as f64)),
                ("file_bytes", info.bytes.to_string()),
                ("other_cpu_cores", f2(other)),
                (
                    "note",
                    "\"BufWriter to a file in the temp dir, not synced\"".into(),
                ),
            ],
        );
        let schema = db.db.schema().clone();
        let people = db.people.clone();
        drop(db);
        // Peak extra memory during the restore: the allocator's live bytes,
        // sampled every 200 µs by a helper thread.
        let base = ALLOC.allocated();
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut peak = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    peak = peak.max(ALLOC.allocated());
                    std::thread::sleep(Duration::from_micros(200));
                }
                peak
            })
        };
        let (secs, other, restored) = timed(cfg, || {
            let f = std::fs::File::open(&file).expect("open");
            Db::restore_from(std::io::BufReader::with_capacity(1 << 20, f), schema)
                .expect("restore")
        });
        stop.store(true, Ordering::Relaxed);
        let peak = sampler.join().expect("sampler").max(ALLOC.allocated());
        let final_bytes = ALLOC.allocated().saturating_sub(base);
        let peak_extra = peak.saturating_sub(base);
        assert_eq!(restored.read().len(&people).unwrap_or(0) as u64, n);
        emit(
            "pandodb",
            "snapshot_restore",
            n,
            Some(secs * 1e9 / n as f64),
            &[
                ("objects_per_s", f2(n as f64 / secs)),
                ("final_db_bytes", final_bytes.to_string()),
                ("peak_bytes_during_restore", peak_extra.to_string()),
                (
                    "peak_vs_final",
                    format!("{:.3}", peak_extra as f64 / final_bytes.max(1) as f64),
                ),
                ("other_cpu_cores", f2(other)),
                ("note", "\"includes rebuilding every index\"".into()),
            ],
        );
        // Floors with no pandodb code: decoding the same rows (postcard, as
        // pandodb's codec) into objects, and btree_rwlock rebuilt from them
        // (its three maps collected from sorted entries: std builds a
        // BTreeMap bottom-up from sorted input).
        let encoded: Vec<Vec<u8>> = (0..n)
            .map(|i| postcard::to_allocvec(&person(i)).expect("encode"))
            .collect();
        let (secs, other, objs) = timed(cfg, || {
            encoded
                .iter()
                .map(|b| Arc::new(postcard::from_bytes::<Person>(b).expect("decode")))
                .collect::<Vec<_>>()
        });
        emit(
            "floor",
            "snapshot_decode",
            n,
            Some(secs * 1e9 / n as f64),
            &[
                ("objects_per_s", f2(n as f64 / secs)),
                ("other_cpu_cores", f2(other)),
                (
                    "note",
                    "\"postcard decode + Arc::new per row, no index\"".into(),
                ),
            ],
        );
        drop(objs);
        let (secs, other, maps) = timed(cfg, || {
            let objs: Vec<Arc<Person>> = encoded
                .iter()
                .map(|b| Arc::new(postcard::from_bytes::<Person>(b).expect("decode")))
                .collect();
            let by_id: BTreeMap<Arc<str>, Arc<Person>> = objs
                .iter()
                .map(|p| (Arc::<str>::from(p.id.as_str()), p.clone()))
                .collect();
            let by_email: BTreeMap<Arc<str>, Arc<Person>> = objs
                .iter()
                .map(|p| (Arc::<str>::from(p.email.as_str()), p.clone()))
                .collect();
            let by_age: BTreeMap<(i64, Arc<str>), Arc<Person>> = objs
                .iter()
                .map(|p| ((p.age, Arc::<str>::from(p.id.as_str())), p.clone()))
                .collect();
            Maps {
                by_id,
                by_email,
                by_age,
            }
        });
        assert_eq!(maps.by_id.len() as u64, n);
        emit(
            "btree_rwlock",
            "snapshot_restore",
            n,
            Some(secs * 1e9 / n as f64),
            &[
                ("objects_per_s", f2(n as f64 / secs)),
                ("other_cpu_cores", f2(other)),
                (
                    "note",
                    "\"postcard decode, then the three maps collected (std sorts and builds bottom-up); one thread\"".into(),
                ),
            ],
        );
        drop((maps, encoded));
        drop(restored);
        let _ = std::fs::remove_dir_all(&dir);
    }
    if cfg.enabled("commit_sync") {
        let mut rates = Vec::new();
        for threads in [1u64, 8] {
            let dir = scratch_dir("sync");
            let e = Arc::new(open_durable(&dir, Options::default().checkpoint_bytes(0)));
            let (total, rate) = commit_for(cfg, threads as usize, |k, i| {
                e.insert_one(Arc::new(person(10_000_000 + k as u64 * 1_000_000 + i)));
            });
            assert_eq!(e.db.revision(), total);
            rates.push(rate);
            drop(e);
            let _ = std::fs::remove_dir_all(&dir);
        }
        // 8 threads, each on its own table.
        let disjoint = {
            let dir = scratch_dir("sync8");
            let mut schema = Schema::builder();
            let mut tables = Vec::new();
            for k in 0..8 {
                let mut t = schema.table::<Person>(&format!("person_{k}"));
                t.primary("id", Indexer::string(|p: &Person| p.id.as_str()));
                t.unique("email", Indexer::string(|p: &Person| p.email.as_str()));
                t.index("age", Indexer::value(|p: &Person| p.age));
                t.serde();
                tables.push(schema.add(t).expect("valid table"));
            }
            let db = Db::open(
                &dir,
                schema.build().expect("valid schema"),
                Options::default().checkpoint_bytes(0),
            )
            .expect("open");
            let (_, rate) = commit_for(cfg, tables.len(), |k, i| {
                let table = &tables[k];
                let mut w = db.write(&[table]);
                w.insert(table, person(10_000_000 + k as u64 * 1_000_000 + i))
                    .expect("insert");
                w.commit().expect("commit");
            });
            drop(db);
            let _ = std::fs::remove_dir_all(&dir);
            rate
        };
        emit(
            "pandodb",
            "commit_sync",
            0,
            Some(1e9 / rates[0]),
            &[
                ("commits_per_s_1_thread", f2(rates[0])),
                ("commits_per_s_8_threads", f2(rates[1])),
                ("ratio_8_vs_1", format!("{:.2}", rates[1] / rates[0])),
                ("commits_per_s_8_threads_8_tables", f2(disjoint)),
                ("ratio_8_tables_vs_1", format!("{:.2}", disjoint / rates[0])),
                (
                    "note",
                    "\"single-object insert txns, Durability::Sync (one fdatasync per group), for --duration each; 1 and 8 threads on one table, then 8 threads on 8 tables\""
                        .into(),
                ),
            ],
        );
    }
    if cfg.enabled("recovery_replay") {
        let dir = scratch_dir("replay");
        let records = 200_000u64;
        {
            let e = open_durable(
                &dir,
                Options::default()
                    .checkpoint_bytes(0)
                    .durability(pandodb::Durability::Batched(Duration::from_millis(50))),
            );
            for i in 0..records {
                e.insert_one(Arc::new(person(i)));
            }
        }
        let (secs, other, e) = timed(cfg, || open_durable(&dir, Options::default()));
        assert_eq!(e.db.revision(), records);
        emit(
            "pandodb",
            "recovery_replay",
            records,
            Some(secs * 1e9 / records as f64),
            &[
                ("records_per_s", f2(records as f64 / secs)),
                ("other_cpu_cores", f2(other)),
                (
                    "note",
                    "\"Db::open of a log of 200,000 single-object commits, no snapshot\"".into(),
                ),
            ],
        );
        drop(e);
        let _ = std::fs::remove_dir_all(&dir);
    }
    if cfg.enabled("open_snapshot") {
        // Db::open of a directory whose checkpoint holds all N objects and
        // whose log is empty: the time to rehydrate a control plane.
        let dir = scratch_dir("open");
        {
            // Not logged (one commit of N objects is over the log's record
            // limit): the checkpoint writes the snapshot.
            let e = open_durable(
                &dir,
                Options::default().durability(pandodb::Durability::None),
            );
            let mut w = e.db.write(&[&e.people]);
            w.insert_all(&e.people, people(0, n)).expect("load");
            w.commit().expect("commit");
            e.db.checkpoint().expect("checkpoint");
        }
        let base = ALLOC.allocated();
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut peak = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    peak = peak.max(ALLOC.allocated());
                    std::thread::sleep(Duration::from_micros(200));
                }
                peak
            })
        };
        let (secs, other, e) = timed(cfg, || open_durable(&dir, Options::default()));
        stop.store(true, Ordering::Relaxed);
        let peak = sampler.join().expect("sampler").max(ALLOC.allocated());
        let final_bytes = ALLOC.allocated().saturating_sub(base);
        assert_eq!(e.len() as u64, n);
        emit(
            "pandodb",
            "open_snapshot",
            n,
            Some(secs * 1e9 / n as f64),
            &[
                ("seconds", format!("{secs:.3}")),
                ("objects_per_s", f2(n as f64 / secs)),
                ("final_db_bytes", final_bytes.to_string()),
                (
                    "peak_vs_final",
                    format!(
                        "{:.3}",
                        peak.saturating_sub(base) as f64 / final_bytes.max(1) as f64
                    ),
                ),
                ("other_cpu_cores", f2(other)),
                (
                    "note",
                    "\"Db::open of a directory whose checkpoint holds every object, empty log\""
                        .into(),
                ),
            ],
        );
        drop(e);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

// ---------------------------------------------------------------- tags (issue 21)

/// An object of the `tags_*` workloads: three tags, `a{i % 1000}`,
/// `b{(i / 1000) % 10}` and `c{i % 7}` (every a-tag on 1,000 objects, every
/// b-tag on 100,000, an a-tag and a b-tag together on about 100).
#[derive(Debug, Clone)]
struct Tagged {
    id: u64,
    tags: Vec<String>,
}

fn tagged(i: u64) -> Tagged {
    let exact = |s: String| s.into_boxed_str().into_string();
    let tags = vec![
        exact(format!("a{}", i % 1000)),
        exact(format!("b{}", (i / 1000) % 10)),
        exact(format!("c{}", i % 7)),
    ];
    Tagged {
        id: i,
        tags: tags.into_boxed_slice().into_vec(),
    }
}

/// Reads a result object (as a caller would) and counts it.
fn touch(t: &Tagged) -> usize {
    usize::from(std::hint::black_box(t.id) != u64::MAX)
}

fn has_tag(t: &Tagged, tag: &str) -> bool {
    t.tags.iter().any(|x| x == tag)
}

/// The random queries of the `tags_*` workloads: an a-tag, a b-tag, a
/// c-tag and ten a-tags each.
struct TagQueries {
    a: Vec<String>,
    b: Vec<String>,
    c: Vec<String>,
    any: Vec<Vec<String>>,
}

fn tag_queries(q: usize) -> TagQueries {
    let mut rng = Rng(0x5eed_0021);
    let mut pick = |p: &str, m: u64| -> Vec<String> {
        (0..q).map(|_| format!("{p}{}", rng.below(m))).collect()
    };
    let (a, b, c) = (pick("a", 1000), pick("b", 10), pick("c", 7));
    let any = (0..q)
        .map(|i| {
            (0..10)
                .map(|j| format!("a{}", (i * 37 + j * 101) % 1000))
                .collect()
        })
        .collect();
    TagQueries { a, b, c, any }
}

/// Runs `f` on each query index (the best of 3 passes when `repeat`),
/// emits ns per query; returns the checksum of the results.
fn per_query(cfg: &Cfg, engine: &str, name: &str, q: usize, f: impl Fn(usize) -> usize) -> usize {
    if !cfg.enabled(name) {
        return 0;
    }
    let mut best = f64::MAX;
    let mut best_cpu = f64::MAX;
    let mut sum = 0;
    let mut other = 0.0;
    for _ in 0..3 {
        let c0 = thread_cpu();
        let (secs, o, s) = timed(cfg, || (0..q).map(&f).sum::<usize>());
        best_cpu = best_cpu.min(thread_cpu() - c0);
        if secs < best {
            (best, other) = (secs, o);
        }
        sum = s;
    }
    emit(
        engine,
        name,
        cfg.n,
        Some(best * 1e9 / q as f64),
        &[
            // On-CPU time of the querying thread (excludes time it waited
            // for a core on a busy machine).
            ("cpu_ns_per_op", f2(best_cpu * 1e9 / q as f64)),
            ("queries", q.to_string()),
            ("rows", sum.to_string()),
            ("other_cpu_cores", f2(other)),
        ],
    );
    sum
}

/// The queries across indexes of issue 21 on pandodb: `Query::select`
/// against scanning one tag by hand and filtering, and the bytes per object
/// of the tags index.
fn tags_pando(cfg: &Cfg) {
    let n = cfg.n;
    let build = |with_tags: bool| {
        let mut schema = Schema::builder();
        let mut t = schema.table::<Tagged>("tagged");
        t.primary("id", Indexer::value(|t: &Tagged| t.id));
        let tags =
            with_tags.then(|| t.index("tags", Indexer::strings(|t: &Tagged| t.tags.as_slice())));
        let table = schema.add(t).expect("valid table");
        let db = Db::new(schema.build().expect("valid schema"));
        let base = ALLOC.allocated();
        let objs: Vec<Arc<Tagged>> = (0..n).map(|i| Arc::new(tagged(i))).collect();
        let objects = ALLOC.allocated() - base;
        let mut w = db.write(&[&table]);
        for o in objs {
            w.insert(&table, o).expect("insert");
        }
        w.commit().expect("commit");
        (db, tags, ALLOC.allocated() - base - objects)
    };
    let without = build(false).2;
    let (db, tags, with) = build(true);
    let tags = tags.expect("tags index");
    if cfg.enabled("tags_memory") {
        emit(
            "pandodb",
            "tags_memory",
            n,
            None,
            &[
                (
                    "tags_index_bytes_per_object",
                    format!("{:.1}", (with - without) as f64 / n as f64),
                ),
                (
                    "tags_index_bytes_per_entry",
                    format!("{:.1}", (with - without) as f64 / (3 * n) as f64),
                ),
                (
                    "table_bytes_per_object_without_objects",
                    format!("{:.1}", with as f64 / n as f64),
                ),
            ],
        );
    }
    let qs = tag_queries(1000);
    let r = db.read();
    let sel = |f: &Filter<Tagged>| -> usize {
        r.select(f).map_or(0, |it| it.fold(0, |n, t| n + touch(&t)))
    };
    let auto = per_query(cfg, "pandodb", "tags_and_auto", 1000, |i| {
        sel(&(Filter::key(&tags, qs.b[i].as_str()) & Filter::key(&tags, qs.a[i].as_str())))
    });
    let small_first = per_query(cfg, "pandodb", "tags_and_auto_small_first", 1000, |i| {
        sel(&(Filter::key(&tags, qs.a[i].as_str()) & Filter::key(&tags, qs.b[i].as_str())))
    });
    let scan_small = per_query(cfg, "pandodb", "tags_and_scan_small", 1000, |i| {
        r.iter_ref(&tags, qs.a[i].as_str())
            .map_or(0, |it| it.filter(|t| has_tag(t, &qs.b[i])).count())
    });
    per_query(cfg, "pandodb", "tags_and_scan_large", 20, |i| {
        r.iter_ref(&tags, qs.b[i].as_str())
            .map_or(0, |it| it.filter(|t| has_tag(t, &qs.a[i])).count())
    });
    // The same rows whatever the plan (a workload left out counts 0).
    let same = |a: usize, b: usize| a == 0 || b == 0 || a == b;
    assert!(same(auto, small_first) && same(auto, scan_small));
    per_query(cfg, "pandodb", "tags_all3", 1000, |i| {
        let set = [qs.a[i].as_str(), qs.b[i].as_str(), qs.c[i].as_str()];
        sel(&Filter::set(&tags, SetMatch::Superset, set))
    });
    per_query(cfg, "pandodb", "tags_all3_scan_small", 1000, |i| {
        r.iter_ref(&tags, qs.a[i].as_str()).map_or(0, |it| {
            it.filter(|t| has_tag(t, &qs.b[i]) && has_tag(t, &qs.c[i]))
                .count()
        })
    });
    per_query(cfg, "pandodb", "tags_any10", 100, |i| {
        sel(&Filter::set(
            &tags,
            SetMatch::Any,
            qs.any[i].iter().map(String::as_str),
        ))
    });
    per_query(cfg, "pandodb", "tags_any10_by_hand", 100, |i| {
        let mut rows: Vec<&Tagged> = Vec::with_capacity(10_000);
        for t in &qs.any[i] {
            if let Ok(it) = r.iter_ref(&tags, t.as_str()) {
                rows.extend(it);
            }
        }
        rows.sort_unstable_by_key(|t| t.id);
        rows.dedup_by_key(|t| t.id);
        rows.iter().fold(0, |n, t| n + touch(t))
    });
}

/// The `btree_rwlock` tags index: (tag, id) → object.
type ByTag = BTreeMap<(Arc<str>, u64), Arc<Tagged>>;

/// Calls `f` with every object of `tag`, in id order.
fn scan<'m>(m: &'m ByTag, tag: &str, f: &mut dyn FnMut(&'m Tagged)) {
    let lo: Arc<str> = tag.into();
    for ((t, _), o) in m.range((Bound::Included((lo, 0)), Bound::Unbounded)) {
        if &**t != tag {
            break;
        }
        f(o);
    }
}

/// The same queries written by hand on `BTreeMap`s behind an `RwLock`.
fn tags_btree(cfg: &Cfg) {
    let n = cfg.n;
    let base = ALLOC.allocated();
    let objs: Vec<Arc<Tagged>> = (0..n).map(|i| Arc::new(tagged(i))).collect();
    let mut by_id = BTreeMap::new();
    for o in &objs {
        by_id.insert(o.id, o.clone());
    }
    let before_tags = ALLOC.allocated();
    let mut by_tag: ByTag = BTreeMap::new();
    for o in &objs {
        for t in &o.tags {
            by_tag.insert((t.as_str().into(), o.id), o.clone());
        }
    }
    let tag_bytes = ALLOC.allocated() - before_tags;
    let _ = base;
    drop(objs);
    if cfg.enabled("tags_memory") {
        emit(
            "btree_rwlock",
            "tags_memory",
            n,
            None,
            &[(
                "tags_index_bytes_per_object",
                format!("{:.1}", tag_bytes as f64 / n as f64),
            )],
        );
    }
    let db = RwLock::new((by_id, by_tag));
    let qs = tag_queries(1000);
    let filtered = |tag: &str, others: &[&str]| -> usize {
        let m = db.read().expect("lock");
        let mut n = 0;
        scan(&m.1, tag, &mut |o| {
            n += usize::from(others.iter().all(|x| has_tag(o, x)));
        });
        n
    };
    per_query(cfg, "btree_rwlock", "tags_and_scan_small", 1000, |i| {
        filtered(&qs.a[i], &[&qs.b[i]])
    });
    per_query(cfg, "btree_rwlock", "tags_and_scan_large", 20, |i| {
        filtered(&qs.b[i], &[&qs.a[i]])
    });
    per_query(cfg, "btree_rwlock", "tags_all3_scan_small", 1000, |i| {
        filtered(&qs.a[i], &[&qs.b[i], &qs.c[i]])
    });
    per_query(cfg, "btree_rwlock", "tags_any10_by_hand", 100, |i| {
        let m = db.read().expect("lock");
        let mut rows: Vec<&Tagged> = Vec::with_capacity(10_000);
        for t in &qs.any[i] {
            scan(&m.1, t, &mut |o| rows.push(o));
        }
        // Borrowed from the guard, sorted by id like the pandodb query.
        rows.sort_unstable_by_key(|t| t.id);
        rows.dedup_by_key(|t| t.id);
        rows.iter().fold(0, |n, t| n + touch(t))
    });
}

/// Whether `--only` names `tags_*` workloads and nothing else.
fn only_tags(cfg: &Cfg) -> bool {
    cfg.only
        .as_ref()
        .is_some_and(|o| o.iter().all(|w| w.starts_with("tags_")))
}

/// Whether `--only` names any `tags_*` workload.
fn any_tags(cfg: &Cfg) -> bool {
    cfg.only
        .as_ref()
        .is_some_and(|o| o.iter().any(|w| w.starts_with("tags_")))
}

/// Prints the flags (after `err`, if any) and exits: 0 for `--help`, 2
/// for a bad command line.
fn usage(err: Option<&str>) -> ! {
    if let Some(e) = err {
        eprintln!("workload: {e}");
    }
    eprintln!(
        "usage: workload [--n N] [--only a,b,...] [--engine pandodb|btree_rwlock|both] \
         [--quiet-wait SECS] [--duration SECS]\n(see the top of examples/workload.rs)"
    );
    std::process::exit(if err.is_some() { 2 } else { 0 });
}

fn main() {
    let mut cfg = Cfg {
        n: 1_000_000,
        quiet_wait: 60.0,
        duration: 3.0,
        only: None,
    };
    let mut engine = "both".to_string();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        if matches!(flag, "-h" | "--help") {
            usage(None);
        }
        if !matches!(
            flag,
            "--n" | "--quiet-wait" | "--duration" | "--only" | "--engine"
        ) {
            usage(Some(&format!("unknown flag {flag}")));
        }
        let Some(val) = args.get(i + 1).cloned() else {
            usage(Some(&format!("{flag} needs a value")));
        };
        let bad = |what: &str| -> ! { usage(Some(&format!("{flag} takes {what}, not {val:?}"))) };
        match flag {
            "--n" => cfg.n = val.parse().unwrap_or_else(|_| bad("a number")),
            "--quiet-wait" => cfg.quiet_wait = val.parse().unwrap_or_else(|_| bad("seconds")),
            "--duration" => cfg.duration = val.parse().unwrap_or_else(|_| bad("seconds")),
            "--only" => cfg.only = Some(val.split(',').map(str::to_string).collect()),
            "--engine" if matches!(val.as_str(), "pandodb" | "btree_rwlock" | "both") => {
                engine = val
            }
            "--engine" => bad("pandodb, btree_rwlock or both"),
            other => usage(Some(&format!("unknown flag {other}"))),
        }
        i += 2;
    }
    if any_tags(&cfg) {
        if engine == "pandodb" || engine == "both" {
            tags_pando(&cfg);
        }
        if engine == "btree_rwlock" || engine == "both" {
            tags_btree(&cfg);
        }
        if only_tags(&cfg) {
            return;
        }
    }
    if engine == "pandodb" || engine == "both" {
        run::<Pando>(&cfg);
        if cfg.enabled("watch") {
            watch_workloads(&cfg);
        }
        if cfg.enabled("watch_idle_commit") {
            watch_idle_overhead(&cfg);
        }
        if cfg.enabled("feed_throughput") {
            feed_throughput(&cfg);
        }
        persistence_workloads(&cfg);
        history::history_workloads(&cfg);
        if cfg.enabled("parallel_writers") {
            let (disjoint, same) = parallel_writers(&cfg);
            emit(
                "pandodb",
                "parallel_writers",
                cfg.n,
                Some(1e9 / disjoint),
                &[
                    ("commits_per_s_disjoint_tables", f2(disjoint)),
                    ("commits_per_s_same_table", f2(same)),
                    ("disjoint_vs_same", format!("{:.2}", disjoint / same)),
                    (
                        "note",
                        "\"2 writer threads, one new object per commit\"".into(),
                    ),
                ],
            );
        }
    }
    if engine == "btree_rwlock" || engine == "both" {
        run::<BTreeRwLock>(&cfg);
    }
}
