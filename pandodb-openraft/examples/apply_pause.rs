//! How long does applying entries pause while a snapshot of a large
//! database is built? Loads N objects (1,000,000 by default) through the
//! state machine, then applies single-entry batches in a loop: first alone
//! (baseline), then while a snapshot is built from the O(1) view, and
//! prints the apply latencies of both phases.
//!
//! ```sh
//! cargo run --release -p pandodb-openraft --example apply_pause -- 1000000
//! ```

use std::time::{Duration, Instant};

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use pandodb::{Db, Indexer, Query, Schema, Table, WriteTxn};
use pandodb_openraft::{Applied, Apply, PandoStateMachine, register_meta};
use serde::{Deserialize, Serialize};

/// A row.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Obj {
    id: u64,
    name: String,
    group: u32,
}

/// Commands: fill a range of ids, or write one object.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Cmd {
    Fill { from: u64, count: u64 },
    Put(u64),
}

openraft::declare_raft_types!(
    Cfg: D = Cmd, R = u64, SnapshotData = std::io::Cursor<Vec<u8>>
);

struct App {
    objs: Table<Obj>,
}

fn obj(id: u64) -> Obj {
    Obj {
        id,
        name: format!("object-{id:08}"),
        group: (id % 1000) as u32,
    }
}

impl Apply<Cfg> for App {
    fn apply(&self, w: &mut WriteTxn, cmd: &Cmd) -> Applied<u64> {
        let (from, count) = match cmd {
            Cmd::Fill { from, count } => (*from, *count),
            Cmd::Put(id) => (*id, 1),
        };
        for id in from..from + count {
            if w.insert(&self.objs, obj(id)).is_err() {
                return Applied::Rollback(0);
            }
        }
        Applied::Commit(count)
    }

    fn empty_response(&self) -> u64 {
        0
    }
}

fn entry(index: u64, cmd: Cmd) -> Entry<Cfg> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(cmd),
    }
}

fn stats(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let q = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
    println!(
        "{name:<22} {:>7} applies  p50 {:>8.1?}  p99 {:>8.1?}  p99.9 {:>8.1?}  max {:>8.1?}",
        v.len(),
        q(0.5),
        q(0.99),
        q(0.999),
        v[v.len() - 1]
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let mut s = Schema::builder();
    let meta = register_meta::<Cfg>(&mut s).expect("meta");
    let mut t = s.table::<Obj>("obj");
    let by_id = t.primary("id", Indexer::value(|o: &Obj| o.id));
    t.index("group", Indexer::value(|o: &Obj| o.group));
    t.serde();
    let objs = s.add(t).expect("table");
    let db = Db::new(s.build().expect("schema"));
    let mut sm = PandoStateMachine::new(db.clone(), meta, App { objs: objs.clone() }).expect("sm");

    let t0 = Instant::now();
    let mut index = 0;
    let chunk = 10_000;
    let mut from = 0;
    while from < n {
        let count = chunk.min(n - from);
        sm.apply(vec![entry(index, Cmd::Fill { from, count })])
            .await
            .expect("fill");
        index += 1;
        from += count;
    }
    println!(
        "loaded {} objects in {:.2?} (revision {})",
        db.read().len(&objs).expect("len"),
        t0.elapsed(),
        db.revision()
    );

    // Baseline: single-entry applies for as long as a snapshot will take
    // (measured first), so both phases see the same amount of work.
    let probe = Instant::now();
    let mut b = sm.get_snapshot_builder().await;
    let snap = b.build_snapshot().await.expect("snapshot");
    let snap_time = probe.elapsed();
    println!(
        "a snapshot alone: {} bytes in {snap_time:.2?}",
        snap.snapshot.get_ref().len()
    );
    drop(snap);

    let mut id = n;
    let mut apply_for =
        async |sm: &mut PandoStateMachine<Cfg, App>, until: &dyn Fn() -> bool| -> Vec<Duration> {
            let mut lat = Vec::new();
            while !until() {
                let t = Instant::now();
                sm.apply(vec![entry(index, Cmd::Put(id % n))])
                    .await
                    .expect("apply");
                lat.push(t.elapsed());
                index += 1;
                id += 7919;
                tokio::task::yield_now().await;
            }
            lat
        };
    let start = Instant::now();
    let base = apply_for(&mut sm, &|| start.elapsed() >= snap_time).await;

    // During a snapshot: the builder's O(1) view is taken on the apply path
    // (timed), the build runs in another task, applies go on.
    let t = Instant::now();
    let mut builder = sm.get_snapshot_builder().await;
    let take_view = t.elapsed();
    let view_rev = builder.revision();
    let building = tokio::spawn(async move {
        let t = Instant::now();
        let s = builder.build_snapshot().await.expect("snapshot");
        (s.snapshot.get_ref().len(), t.elapsed())
    });
    let during = apply_for(&mut sm, &|| building.is_finished()).await;
    let (bytes, took) = building.await.expect("task");
    println!(
        "snapshot of revision {view_rev}: {bytes} bytes in {took:.2?}; taking the view paused apply {take_view:.1?}"
    );
    // Serving the current snapshot to a follower copies its bytes on
    // openraft's state-machine task (the snapshot data is a Cursor<Vec<u8>>).
    let t = Instant::now();
    let cur = sm.get_current_snapshot().await.expect("current");
    println!(
        "serving the current snapshot ({} bytes) took {:.2?} on the apply task",
        cur.map_or(0, |s| s.snapshot.get_ref().len()),
        t.elapsed()
    );
    stats("baseline", base);
    stats("during snapshot", during);
    let _ = by_id;
}
