//! Restarts with the durable log and persisted snapshots: one node in each
//! durability mode of its database (1,000 writes, snapshot, purge,
//! restart, identical state); three nodes (the leader restarted in the
//! middle of a stream of writes, then the whole cluster restarted): every
//! acknowledged write survives and the replicas are byte-identical.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TempDir;
use common::cluster::{
    MODES, Mode, bytes, members, put, snapshot_and_purge, start, stop, tagged, value, wait_applied,
    wait_leader, write,
};
use pandodb_openraft::Router;
use tokio::task::JoinSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_1000_writes_snapshot_purge_restart_in_every_durability_mode() {
    for mode in MODES {
        let tmp = TempDir::new("one-node");
        let router = Router::new();
        let n = start(1, &router, &tmp.0, mode).await;
        n.raft.initialize(members([1])).await.unwrap();
        wait_leader(&router, &[1], None).await;

        // 1,000 writes, proposed concurrently (openraft batches them).
        let t0 = Instant::now();
        let mut set = JoinSet::new();
        for i in 0..1000u64 {
            let r = n.raft.clone();
            set.spawn(async move { r.client_write(put(&format!("k{i}"), i)).await });
        }
        let mut last = 0;
        while let Some(r) = set.join_next().await {
            last = last.max(r.unwrap().unwrap().log_id.index);
        }
        let took = t0.elapsed();
        wait_applied(&n, last).await;
        let snap = snapshot_and_purge(&n, last).await;
        // A few more, in the log only.
        for i in 0..10 {
            last = n
                .raft
                .client_write(put(&format!("after-{i}"), i))
                .await
                .unwrap()
                .log_id
                .index;
        }
        wait_applied(&n, last).await;
        let before = bytes(&n);

        let (id, root, mode) = stop(&router, n).await;
        let n = start(id, &router, &root, mode).await;
        // The committed entries are applied again at startup, on top of the
        // persisted snapshot (the log before it is purged).
        wait_applied(&n, last).await;
        assert_eq!(bytes(&n), before, "{mode:?}: the state after the restart");
        let m = n.raft.metrics().borrow().clone();
        assert_eq!(m.snapshot, Some(snap), "{mode:?}: get_current_snapshot");
        assert_eq!(m.purged, Some(snap), "{mode:?}");
        assert_eq!(value(&n, "k999"), Some(999));
        // And it goes on.
        wait_leader(&router, &[1], None).await;
        n.raft.client_write(put("later", 1)).await.unwrap();
        eprintln!(
            "one node, {mode:?}: 1,000 concurrent client writes committed and applied in {:.1} ms",
            took.as_secs_f64() * 1e3
        );
        stop(&router, n).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_leader_restarted_mid_write_then_whole_cluster_restarted() {
    let tmp = TempDir::new("three");
    let router = Router::new();
    let modes = [Mode::Memory, Mode::Batched, Mode::Sync];
    let ids = [1u64, 2, 3];
    let mut nodes = BTreeMap::new();
    for (&id, &mode) in ids.iter().zip(&modes) {
        let root = tmp.0.join(format!("n{id}"));
        nodes.insert(id, start(id, &router, &root, mode).await);
    }
    nodes[&1].raft.initialize(members(ids)).await.unwrap();
    let leader = wait_leader(&router, &ids, None).await;

    // A client writes 300 keys, one after another, each with a request id,
    // retrying through whichever node leads; it records what was
    // acknowledged.
    let acked = Arc::new(Mutex::new(Vec::<(String, u64, u64)>::new()));
    let writer = {
        let (router, acked) = (router.clone(), acked.clone());
        tokio::spawn(async move {
            for i in 0..300u64 {
                let key = format!("w{i}");
                let (id, _) = write(&router, &ids, tagged(1, i + 1, put(&key, i * 7))).await;
                acked.lock().unwrap().push((key, i * 7, id.index));
            }
        })
    };
    let acked_len = || acked.lock().unwrap().len();
    while acked_len() < 100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Kill the leader in the middle of the writes.
    let old = nodes.remove(&leader).unwrap();
    let (id, root, mode) = stop(&router, old).await;
    let others: Vec<u64> = ids.iter().copied().filter(|&i| i != leader).collect();
    let new_leader = wait_leader(&router, &others, None).await;
    assert_ne!(new_leader, leader);
    // The writes go on through the new leader before the old one returns.
    let at = acked_len();
    while acked_len() < at + 30 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    nodes.insert(id, start(id, &router, &root, mode).await);
    writer.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), 300);

    // Snapshot and purge on every node, then restart the whole cluster.
    let last = acked.last().unwrap().2;
    for n in nodes.values() {
        wait_applied(n, last).await;
        snapshot_and_purge(n, last).await;
    }
    let mut stopped = Vec::new();
    for (_, n) in std::mem::take(&mut nodes) {
        stopped.push(stop(&router, n).await);
    }
    for (id, root, mode) in stopped {
        nodes.insert(id, start(id, &router, &root, mode).await);
    }
    // A write through the new leader commits everything before it.
    let (marker, _) = write(&router, &ids, put("marker", 1)).await;
    for n in nodes.values() {
        wait_applied(n, marker.index).await;
        for (key, v, _) in &acked {
            assert_eq!(value(n, key), Some(*v), "node {}: acknowledged {key}", n.id);
        }
    }
    let b = bytes(&nodes[&1]);
    for n in nodes.values() {
        assert_eq!(bytes(n), b, "node {} differs from node 1", n.id);
    }
    for (_, n) in nodes {
        stop(&router, n).await;
    }
}
