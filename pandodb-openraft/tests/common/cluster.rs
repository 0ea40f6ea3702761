//! In-process clusters of nodes with a durable log, persisted snapshots and
//! a database in one of the durability modes, on the in-process `Router`.
//! A node is stopped with `Raft::shutdown` and started again from the same
//! directories (an in-process restart: what was not written to a file is
//! lost, what the page cache holds is not).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::{BasicNode, Config, LogId, Raft, ServerState, SnapshotPolicy};
use pandodb::{Db, Durability, Options, Query};
use pandodb_openraft::{DurableLogStore, PandoStateMachine, RequestId, Router};

use super::{Cfg, Cmd, DedupApp, Kv, Resp, schema_dedup, snapshot_bytes};

/// How a node's database keeps its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `Db::new`: memory only; rebuilt from the persisted snapshot and the log.
    Memory,
    /// `Db::open` in `Durability::None`: nothing logged.
    Unlogged,
    /// `Db::open` in `Durability::Batched(5 ms)`.
    Batched,
    /// `Db::open` in `Durability::Sync`: an fdatasync per applied entry.
    Sync,
}

pub const MODES: [Mode; 4] = [Mode::Memory, Mode::Unlogged, Mode::Batched, Mode::Sync];

/// A database in `mode` under `root` (`root/db` when on disk).
pub fn open_db(root: &Path, mode: Mode, schema: pandodb::Schema) -> Db {
    let durability = match mode {
        Mode::Memory => return Db::new(schema),
        Mode::Unlogged => Durability::None,
        Mode::Batched => Durability::Batched(Duration::from_millis(5)),
        Mode::Sync => Durability::Sync,
    };
    let opts = Options::default().durability(durability);
    retry_open(|| Db::open(root.join("db"), schema.clone(), opts.clone()))
}

/// Retries while the directory is still held by the stopped node's last
/// handles.
fn retry_open<T>(mut f: impl FnMut() -> pandodb::Result<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match f() {
            Err(pandodb::Error::AlreadyOpen(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            r => return r.expect("open"),
        }
    }
}

pub fn config() -> Arc<Config> {
    let c = Config {
        cluster_name: "test".into(),
        heartbeat_interval: 100,
        election_timeout_min: 700,
        election_timeout_max: 1400,
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        ..Config::default()
    };
    Arc::new(c.validate().expect("valid config"))
}

pub type ClusterSm = PandoStateMachine<Cfg, DedupApp>;

pub struct Node {
    pub id: u64,
    pub raft: Raft<Cfg>,
    pub db: Db,
    pub app: DedupApp,
    pub mode: Mode,
    pub root: PathBuf,
}

/// Starts node `id` from the directories under `root` (created if
/// missing): `log/` (the durable log), `snap/` (persisted snapshots),
/// `db/` (the database, unless in memory).
pub async fn start(id: u64, router: &Router<Cfg>, root: &Path, mode: Mode) -> Node {
    let log = retry_open(|| DurableLogStore::<Cfg>::open(root.join("log")));
    let (s, meta, app) = schema_dedup();
    let db = open_db(root, mode, s);
    let sm = ClusterSm::open_persisted(db.clone(), meta, app.clone(), root.join("snap"))
        .expect("state machine");
    let raft = Raft::new(id, config(), router.network(id), log, sm)
        .await
        .expect("raft");
    router.add(id, raft.clone());
    Node {
        id,
        raft,
        db,
        app,
        mode,
        root: root.to_path_buf(),
    }
}

/// Stops a node (its directories stay); returns what is needed to start it
/// again.
pub async fn stop(router: &Router<Cfg>, node: Node) -> (u64, PathBuf, Mode) {
    router.remove(node.id);
    node.raft.shutdown().await.expect("shutdown");
    (node.id, node.root, node.mode)
}

pub fn members(ids: impl IntoIterator<Item = u64>) -> BTreeMap<u64, BasicNode> {
    ids.into_iter()
        .map(|i| (i, BasicNode::new(format!("node-{i}"))))
        .collect()
}

pub const T: Option<Duration> = Some(Duration::from_secs(20));

/// Waits until one of `nodes` is the leader (and not `not`); returns its id.
pub async fn wait_leader(router: &Router<Cfg>, ids: &[u64], not: Option<u64>) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for &id in ids {
            if Some(id) == not {
                continue;
            }
            if let Some(r) = router.raft(id) {
                let m = r.metrics().borrow().clone();
                if m.state == ServerState::Leader && m.current_leader == Some(id) {
                    return id;
                }
            }
        }
        assert!(Instant::now() < deadline, "no leader among {ids:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes `cmd` through whichever node of `ids` is the leader, retrying
/// (the same command, so the same request id) until it is committed.
pub async fn write(router: &Router<Cfg>, ids: &[u64], cmd: Cmd) -> (LogId<u64>, Resp) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leader = wait_leader(router, ids, None).await;
        if let Some(r) = router.raft(leader) {
            let w = tokio::time::timeout(Duration::from_secs(3), r.client_write(cmd.clone()));
            if let Ok(Ok(resp)) = w.await {
                return (resp.log_id, resp.data);
            }
        }
        assert!(Instant::now() < deadline, "write {cmd:?} never committed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn wait_applied(node: &Node, index: u64) {
    node.raft
        .wait(T)
        .applied_index_at_least(Some(index), format!("node {} applies {index}", node.id))
        .await
        .expect("applied");
}

pub fn put(key: &str, value: u64) -> Cmd {
    Cmd::Put(Kv {
        key: key.into(),
        value,
        tag: "t".into(),
    })
}

pub fn tagged(client: u64, seq: u64, cmd: Cmd) -> Cmd {
    Cmd::Tagged {
        id: RequestId { client, seq },
        cmd: Box::new(cmd),
    }
}

/// The value of `key` in `node`'s database.
pub fn value(node: &Node, key: &str) -> Option<u64> {
    let r = node.db.read();
    r.get(&node.app.app().by_key, key)
        .expect("get")
        .map(|kv| kv.value)
}

/// The database's snapshot bytes.
pub fn bytes(node: &Node) -> Vec<u8> {
    snapshot_bytes(&node.db)
}

/// Triggers a snapshot on `node` and waits for it to cover `index`, then
/// purges the log up to it and waits for the purge.
pub async fn snapshot_and_purge(node: &Node, index: u64) -> LogId<u64> {
    node.raft.trigger().snapshot().await.expect("trigger");
    let m = node
        .raft
        .wait(T)
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= index),
            format!("node {} snapshot at {index}", node.id),
        )
        .await
        .expect("snapshot");
    let snap = m.snapshot.expect("snapshot");
    node.raft
        .trigger()
        .purge_log(snap.index)
        .await
        .expect("purge");
    node.raft
        .wait(T)
        .metrics(
            |m| m.purged.is_some_and(|p| p.index >= snap.index),
            format!("node {} purged to {}", node.id, snap.index),
        )
        .await
        .expect("purged");
    snap
}

/// The voters of the membership `node` last applied.
pub fn voters(node: &Node) -> BTreeSet<u64> {
    node.raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect()
}
