//! Membership changes with the durable log: a learner added and caught up,
//! promoted to voter, a voter removed; the membership is in the replicated
//! meta row and survives a restart.

mod common;

use std::collections::BTreeSet;

use common::TempDir;
use common::cluster::{
    Mode, bytes, members, put, start, stop, value, voters, wait_applied, wait_leader, write,
};
use openraft::BasicNode;
use pandodb_openraft::Router;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_a_learner_promote_it_remove_a_node() {
    let tmp = TempDir::new("membership");
    let router = Router::new();
    let root = |id: u64| tmp.0.join(format!("n{id}"));
    let n1 = start(1, &router, &root(1), Mode::Memory).await;
    n1.raft.initialize(members([1])).await.unwrap();
    wait_leader(&router, &[1], None).await;
    for i in 0..10 {
        write(&router, &[1], put(&format!("a{i}"), i)).await;
    }
    let n2 = start(2, &router, &root(2), Mode::Batched).await;
    let n3 = start(3, &router, &root(3), Mode::Sync).await;

    // Learners: they receive the log but do not vote.
    for id in [2, 3] {
        n1.raft
            .add_learner(id, BasicNode::new(format!("node-{id}")), true)
            .await
            .unwrap();
    }
    let (l, _) = write(&router, &[1], put("learners", 1)).await;
    wait_applied(&n2, l.index).await;
    wait_applied(&n3, l.index).await;
    assert_eq!(value(&n3, "a9"), Some(9));
    assert_eq!(voters(&n1), BTreeSet::from([1]));

    // Promote both.
    n1.raft
        .change_membership(BTreeSet::from([1, 2, 3]), false)
        .await
        .unwrap();
    let (p, _) = write(&router, &[1, 2, 3], put("promoted", 1)).await;
    for n in [&n1, &n2, &n3] {
        wait_applied(n, p.index).await;
        assert_eq!(voters(n), BTreeSet::from([1, 2, 3]), "node {}", n.id);
    }

    // Remove node 3: it leaves the membership and gets nothing more.
    n1.raft
        .change_membership(BTreeSet::from([1, 2]), false)
        .await
        .unwrap();
    let (r, _) = write(&router, &[1, 2], put("removed", 1)).await;
    for n in [&n1, &n2] {
        wait_applied(n, r.index).await;
        assert_eq!(voters(n), BTreeSet::from([1, 2]));
    }
    assert!(
        n1.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&3)
            .is_none()
    );
    assert_eq!(value(&n3, "removed"), None);
    assert_eq!(bytes(&n1), bytes(&n2));
    stop(&router, n3).await;

    // The two-node cluster restarts with its membership.
    let (a, b) = (stop(&router, n1).await, stop(&router, n2).await);
    let n1 = start(a.0, &router, &a.1, a.2).await;
    let n2 = start(b.0, &router, &b.1, b.2).await;
    let (e, _) = write(&router, &[1, 2], put("end", 1)).await;
    for n in [&n1, &n2] {
        wait_applied(n, e.index).await;
        assert_eq!(voters(n), BTreeSet::from([1, 2]));
    }
    assert_eq!(bytes(&n1), bytes(&n2));
    stop(&router, n1).await;
    stop(&router, n2).await;
}
