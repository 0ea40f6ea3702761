//! Request deduplication (`Dedup`): a command retried with the same
//! (client, sequence number) applies once and gets the first response
//! again, also across a snapshot restore and after a leader change.

mod common;

use common::cluster::{
    Mode, members, put, start, stop, tagged, value, wait_applied, wait_leader, write,
};
use common::{Cfg, Cmd, Kv, Resp, TempDir, runtime, schema_dedup, snapshot_bytes};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use pandodb::{Db, Query};
use pandodb_openraft::{PandoStateMachine, Router};

type Sm = PandoStateMachine<Cfg, common::DedupApp>;

fn entry(index: u64, cmd: Cmd) -> Entry<Cfg> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(cmd),
    }
}

fn counter(sm: &Sm, key: &str) -> Option<u64> {
    let r = sm.db().read();
    r.get(&sm.app().app().by_key, key).unwrap().map(|k| k.value)
}

#[test]
fn a_retried_request_applies_once_and_gets_the_same_response() {
    let rt = runtime();
    let (s, meta, app) = schema_dedup();
    let mut sm = Sm::new(Db::new(s), meta, app).unwrap();
    let incr = |client, seq| tagged(client, seq, Cmd::Incr("c".into()));
    let bad = |client, seq| {
        tagged(
            client,
            seq,
            Cmd::Batch(vec![
                Kv {
                    key: "x".into(),
                    value: 1,
                    tag: "t".into(),
                },
                Kv {
                    key: "!".into(),
                    value: 1,
                    tag: "t".into(),
                },
            ]),
        )
    };
    let log = vec![
        entry(0, incr(7, 1)),
        entry(1, incr(7, 1)), // a retry
        entry(2, incr(8, 1)), // another client
        entry(3, incr(7, 2)),
        entry(4, incr(7, 1)), // older than the last: already answered
        entry(5, bad(7, 3)),  // rolled back: recorded all the same
        entry(6, bad(7, 3)),
        entry(7, Cmd::Incr("c".into())), // untagged: always applied
        entry(8, Cmd::Incr("c".into())),
    ];
    let resp = rt.block_on(sm.apply(log[..5].to_vec())).unwrap();
    assert_eq!(
        resp,
        vec![
            Resp::Value(1),
            Resp::Value(1),
            Resp::Value(2),
            Resp::Value(3),
            Resp::None
        ]
    );
    assert_eq!(counter(&sm, "c"), Some(3));
    let resp = rt.block_on(sm.apply(log[5..].to_vec())).unwrap();
    assert_eq!(
        resp,
        vec![Resp::Failed, Resp::Failed, Resp::Value(4), Resp::Value(5)]
    );
    assert_eq!(counter(&sm, "c"), Some(5));
    let r = sm.db().read();
    assert!(r.get(&sm.app().app().by_key, "x").unwrap().is_none());
    let last = sm.app().table().last(&r, 7).unwrap();
    assert_eq!(last, Some((3, Resp::Failed)));

    // The table is replicated state: in the snapshot, so a replica restored
    // from it deduplicates the same way.
    let bytes = snapshot_bytes(sm.db());
    let (s, meta, app) = schema_dedup();
    let mut copy = Sm::new(Db::restore_from(&bytes[..], s).unwrap(), meta, app).unwrap();
    let resp = rt
        .block_on(copy.apply(vec![entry(9, incr(7, 2)), entry(10, incr(8, 1))]))
        .unwrap();
    assert_eq!(resp, vec![Resp::None, Resp::Value(2)]);
    assert_eq!(counter(&copy, "c"), Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_retried_after_a_leader_change_applies_once() {
    let tmp = TempDir::new("dedup");
    let router = Router::new();
    let ids = [1u64, 2, 3];
    let mut nodes = Vec::new();
    for id in ids {
        nodes.push(start(id, &router, &tmp.0.join(format!("n{id}")), Mode::Memory).await);
    }
    nodes[0].raft.initialize(members(ids)).await.unwrap();
    write(&router, &ids, put("seed", 0)).await;
    let leader = wait_leader(&router, &ids, None).await;
    let req = tagged(42, 1, Cmd::Incr("n".into()));
    let (first, resp) = write(&router, &ids, req.clone()).await;
    assert_eq!(resp, Resp::Value(1));
    // The leader goes away (the client never heard back, say) and the
    // client sends the same request to the new leader.
    let i = nodes.iter().position(|n| n.id == leader).unwrap();
    stop(&router, nodes.remove(i)).await;
    let others: Vec<u64> = nodes.iter().map(|n| n.id).collect();
    let (again, resp) = write(&router, &others, req).await;
    assert!(again.index > first.index);
    assert_eq!(resp, Resp::Value(1), "the first response, again");
    for n in &nodes {
        wait_applied(n, again.index).await;
        assert_eq!(value(n, "n"), Some(1), "node {} applied it once", n.id);
    }
    for n in nodes {
        stop(&router, n).await;
    }
}
