//! The example's scenario (`examples/raft_cluster.rs`), with assertions:
//! three nodes, leader writes, follower reads and watches, compare-and-swap,
//! a node killed and brought back through snapshot install, byte-identical
//! snapshots at the end.

#[path = "../examples/raft_cluster.rs"]
#[allow(dead_code)]
mod scenario;

use scenario::Resp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_kill_snapshot_catch_up_identical() {
    let r = scenario::run(false).await;
    assert!((1..=3).contains(&r.leader));
    assert!(matches!(r.cas.0, Resp::Written(_)), "{:?}", r.cas);
    assert!(matches!(r.cas.1, Resp::Conflict(Some(_))), "{:?}", r.cas);
    assert!(r.watch_latency < std::time::Duration::from_secs(5));
    // The restarted node installed the leader's snapshot, which fired its watch.
    let snap = r.snapshot.expect("the leader built a snapshot");
    assert_eq!(
        r.installed,
        Some(snap),
        "the restarted node installed the leader's snapshot"
    );
    assert!(r.install_fired_watch);
    // Byte-identical snapshots at one revision on all three nodes.
    assert_eq!(r.snapshots.len(), 3);
    assert!(r.snapshots.iter().all(|s| *s == r.snapshots[0]));
    assert!(r.revisions.iter().all(|&v| v == r.revisions[0] && v > 0));
    // One revision per applied entry (the log starts at index 0).
    assert!(
        r.elapsed < std::time::Duration::from_secs(30),
        "{:?}",
        r.elapsed
    );
}
