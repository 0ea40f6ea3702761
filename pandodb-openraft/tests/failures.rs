//! Failures, in process, with the durable log and persisted snapshots: a
//! partitioned leader (the minority refuses linearizable reads and writes,
//! the majority elects and goes on, all converge after healing), a killed
//! leader, a killed follower that catches up by snapshot.

mod common;

use std::time::Duration;

use common::TempDir;
use common::cluster::{
    MODES, Mode, Node, bytes, members, put, snapshot_and_purge, start, stop, value, wait_applied,
    wait_leader, write,
};
use pandodb_openraft::Router;

async fn cluster(tmp: &TempDir, router: &Router<common::Cfg>, modes: [Mode; 3]) -> Vec<Node> {
    let mut nodes = Vec::new();
    for (id, mode) in (1..=3).zip(modes) {
        nodes.push(start(id, router, &tmp.0.join(format!("n{id}")), mode).await);
    }
    nodes[0].raft.initialize(members(1..=3)).await.unwrap();
    nodes
}

fn assert_identical(nodes: &[Node]) {
    let b = bytes(&nodes[0]);
    for n in nodes {
        assert_eq!(
            bytes(n),
            b,
            "node {} differs from node {}",
            n.id,
            nodes[0].id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_refuses_the_majority_goes_on_and_all_converge() {
    let tmp = TempDir::new("partition");
    let router = Router::new();
    let nodes = cluster(&tmp, &router, [Mode::Memory, Mode::Batched, Mode::Sync]).await;
    let ids = [1, 2, 3];
    for i in 0..20 {
        write(&router, &ids, put(&format!("a{i}"), i)).await;
    }
    let old = wait_leader(&router, &ids, None).await;
    let old_raft = router.raft(old).unwrap();
    router.cut(old);

    // The minority side: no write commits, no linearizable read.
    let w = tokio::time::timeout(
        Duration::from_secs(2),
        old_raft.client_write(put("minority", 1)),
    )
    .await;
    assert!(
        !matches!(w, Ok(Ok(_))),
        "a write on the cut-off leader committed"
    );
    let r = tokio::time::timeout(Duration::from_secs(2), old_raft.ensure_linearizable()).await;
    assert!(
        !matches!(r, Ok(Ok(_))),
        "a linearizable read on the cut-off leader succeeded"
    );

    // The majority elects a leader and goes on.
    let majority: Vec<u64> = ids.iter().copied().filter(|&i| i != old).collect();
    let new = wait_leader(&router, &majority, None).await;
    assert_ne!(new, old);
    let mut last = 0;
    for i in 0..20 {
        last = write(&router, &majority, put(&format!("b{i}"), i))
            .await
            .0
            .index;
    }
    let new_raft = router.raft(new).unwrap();
    new_raft.ensure_linearizable().await.unwrap();

    // Healed, everyone converges on the majority's log.
    router.heal(old);
    for n in &nodes {
        wait_applied(n, last).await;
        assert_eq!(value(n, "b19"), Some(19), "node {}", n.id);
        assert_eq!(value(n, "minority"), None, "node {}", n.id);
    }
    assert_identical(&nodes);
    for n in nodes {
        stop(&router, n).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_and_rejoins() {
    let tmp = TempDir::new("kill-leader");
    let router = Router::new();
    let mut nodes = cluster(&tmp, &router, [Mode::Sync, Mode::Memory, Mode::Unlogged]).await;
    let ids = [1, 2, 3];
    for i in 0..20 {
        write(&router, &ids, put(&format!("a{i}"), i)).await;
    }
    let old = wait_leader(&router, &ids, None).await;
    let i = nodes.iter().position(|n| n.id == old).unwrap();
    let (id, root, mode) = stop(&router, nodes.remove(i)).await;
    let others: Vec<u64> = nodes.iter().map(|n| n.id).collect();
    let new = wait_leader(&router, &others, None).await;
    assert_ne!(new, old);
    for i in 0..20 {
        write(&router, &others, put(&format!("b{i}"), i)).await;
    }
    nodes.push(start(id, &router, &root, mode).await);
    let (last, _) = write(&router, &ids, put("end", 1)).await;
    for n in &nodes {
        wait_applied(n, last.index).await;
        assert_eq!(value(n, "a19"), Some(19));
        assert_eq!(value(n, "b19"), Some(19));
    }
    assert_identical(&nodes);
    for n in nodes {
        stop(&router, n).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_follower_catches_up_by_snapshot() {
    // Each durability mode for the follower that is killed.
    for mode in MODES {
        let tmp = TempDir::new("kill-follower");
        let router = Router::new();
        let mut nodes = cluster(&tmp, &router, [Mode::Memory, mode, mode]).await;
        let ids = [1, 2, 3];
        for i in 0..10 {
            write(&router, &ids, put(&format!("a{i}"), i)).await;
        }
        let leader = wait_leader(&router, &ids, None).await;
        let i = nodes.iter().position(|n| n.id != leader).unwrap();
        let (id, root, mode) = stop(&router, nodes.remove(i)).await;
        let mut last = 0;
        for i in 0..30 {
            last = write(&router, &ids, put(&format!("b{i}"), i)).await.0.index;
        }
        // The leader's log no longer holds what the follower misses.
        let l = nodes.iter().find(|n| n.id == leader).unwrap();
        let snap = snapshot_and_purge(l, last).await;
        nodes.push(start(id, &router, &root, mode).await);
        let f = nodes.last().unwrap();
        wait_applied(f, last).await;
        let m = f.raft.metrics().borrow().clone();
        assert_eq!(
            m.snapshot,
            Some(snap),
            "{mode:?}: installed the leader's snapshot"
        );
        assert_identical(&nodes);
        // The installed snapshot was persisted: it is there after a restart.
        let f = nodes.pop().unwrap();
        let (id, root, mode) = stop(&router, f).await;
        let f = start(id, &router, &root, mode).await;
        wait_applied(&f, last).await;
        assert_eq!(f.raft.metrics().borrow().snapshot, Some(snap), "{mode:?}");
        assert_eq!(value(&f, "b29"), Some(29));
        nodes.push(f);
        for n in nodes {
            stop(&router, n).await;
        }
    }
}
