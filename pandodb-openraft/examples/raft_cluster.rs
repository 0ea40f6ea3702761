//! Three pandodb replicas under openraft in one process: a service
//! registry replicated by Raft.
//!
//! ```sh
//! cargo run --release -p pandodb-openraft --example raft_cluster
//! ```
//!
//! Elects a leader, writes through it, reads from the followers' local
//! snapshots, waits on a follower's watch for the leader's write, does a
//! compare-and-swap, kills a node, writes on, snapshots and purges the
//! leader's log, brings the node back (it catches up by installing the
//! snapshot) and shows that the three databases are byte-identical. The
//! integration test `tests/raft_cluster.rs` runs this same scenario.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::{BasicNode, Config, LogId, Raft, SnapshotPolicy};
use pandodb::{Db, Error, Index, Indexer, Query, Schema, Table, WriteTxn};
use pandodb_openraft::{Applied, Apply, MemLogStore, PandoStateMachine, Router, register_meta};
use serde::{Deserialize, Serialize};

/// A registered service instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Unique name (primary key).
    pub name: String,
    /// Where it listens.
    pub addr: String,
    /// Availability zone (secondary index).
    pub zone: String,
    /// Health as last reported.
    pub healthy: bool,
}

/// The registry's commands (the Raft log's application data).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cmd {
    /// Register or replace a service.
    Register(Service),
    /// Remove a service.
    Deregister(String),
    /// Set a service's health if it was not written since revision `seen`.
    SetHealth {
        /// The service.
        name: String,
        /// New health.
        healthy: bool,
        /// The modified revision the writer read.
        seen: u64,
    },
}

/// The registry's responses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resp {
    /// Blank and membership entries.
    #[default]
    None,
    /// Written as this revision.
    Written(u64),
    /// Compare-and-swap failed: the service's current revision.
    Conflict(Option<u64>),
    /// The command failed; nothing was written.
    Failed(String),
}

openraft::declare_raft_types!(
    /// The registry's Raft types.
    pub Registry:
        D = Cmd,
        R = Resp,
        SnapshotData = std::io::Cursor<Vec<u8>>,
);

/// One replica's table handles (handles belong to one schema instance).
#[derive(Clone)]
pub struct Tables {
    /// The services.
    pub services: Table<Service>,
    /// By name (primary).
    pub by_name: Index<Service, str>,
    /// By zone.
    pub by_zone: Index<Service, str>,
}

impl Apply<Registry> for Tables {
    fn apply(&self, w: &mut WriteTxn, cmd: &Cmd) -> Applied<Resp> {
        let next = w.base_revision() + 1;
        let res = match cmd {
            Cmd::Register(s) => w
                .insert(&self.services, s.clone())
                .map(|_| Resp::Written(next)),
            Cmd::Deregister(name) => w
                .delete_all(&self.by_name, name.as_str())
                .map(|_| Resp::Written(next)),
            Cmd::SetHealth {
                name,
                healthy,
                seen,
            } => match w.get(&self.by_name, name.as_str()) {
                Ok(Some(cur)) => {
                    let new = Service {
                        healthy: *healthy,
                        ..(*cur).clone()
                    };
                    match w.update_if(&self.services, new, *seen) {
                        Ok(_) => Ok(Resp::Written(next)),
                        Err(Error::Conflict { current, .. }) => Ok(Resp::Conflict(current)),
                        Err(e) => Err(e),
                    }
                }
                Ok(None) => Ok(Resp::Conflict(None)),
                Err(e) => Err(e),
            },
        };
        match res {
            Ok(r) => Applied::Commit(r),
            Err(e) => Applied::Rollback(Resp::Failed(e.to_string())),
        }
    }

    fn empty_response(&self) -> Resp {
        Resp::None
    }
}

/// A fresh database with the registry's schema (and the Raft meta table).
pub fn open_replica() -> (Db, PandoStateMachine<Registry, Tables>) {
    let mut s = Schema::builder();
    let meta = register_meta::<Registry>(&mut s).expect("meta table");
    let mut t = s.table::<Service>("service");
    let by_name = t.primary("name", Indexer::string(|s: &Service| s.name.as_str()));
    let by_zone = t.index("zone", Indexer::string(|s: &Service| s.zone.as_str()));
    t.serde();
    let services = s.add(t).expect("service table");
    let db = Db::new(s.build().expect("schema"));
    let tables = Tables {
        services,
        by_name,
        by_zone,
    };
    let sm = PandoStateMachine::new(db.clone(), meta, tables).expect("state machine");
    (db, sm)
}

/// One node of the cluster.
pub struct Node {
    /// Its id.
    pub id: u64,
    /// Its Raft.
    pub raft: Raft<Registry>,
    /// Its database (reads are local).
    pub db: Db,
    /// Its table handles.
    pub tables: Tables,
    /// Its log (kept across a restart, as a disk would keep it).
    pub log: MemLogStore<Registry>,
}

/// What the scenario observed.
#[derive(Debug)]
pub struct Report {
    /// The first leader.
    pub leader: u64,
    /// Time from the leader's write to the follower's watch firing.
    pub watch_latency: Duration,
    /// The compare-and-swap outcomes: first (fresh), then (stale).
    pub cas: (Resp, Resp),
    /// The snapshot the leader built before the node came back.
    pub snapshot: Option<LogId<u64>>,
    /// The log id of the snapshot the restarted node installed.
    pub installed: Option<LogId<u64>>,
    /// The restarted node's watch fired on the snapshot install.
    pub install_fired_watch: bool,
    /// The final snapshot of every node (byte-identical).
    pub snapshots: Vec<Vec<u8>>,
    /// The final revision on every node.
    pub revisions: Vec<u64>,
    /// Wall time of the whole scenario.
    pub elapsed: Duration,
}

fn config() -> Arc<Config> {
    let c = Config {
        cluster_name: "registry".into(),
        // Generous timeouts: no spurious elections on a loaded machine.
        heartbeat_interval: 100,
        election_timeout_min: 1000,
        election_timeout_max: 2000,
        // Snapshots only when asked, and purge everything they cover.
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        ..Config::default()
    };
    Arc::new(c.validate().expect("valid config"))
}

async fn start_node(id: u64, router: &Router<Registry>, log: MemLogStore<Registry>) -> Node {
    let (db, sm) = open_replica();
    let tables = sm.app().clone();
    let raft = Raft::new(id, config(), router.network(id), log.clone(), sm)
        .await
        .expect("raft");
    router.add(id, raft.clone());
    Node {
        id,
        raft,
        db,
        tables,
        log,
    }
}

const T: Option<Duration> = Some(Duration::from_secs(10));

async fn write(leader: &Node, cmd: Cmd) -> (LogId<u64>, Resp) {
    let r = leader.raft.client_write(cmd).await.expect("client write");
    (r.log_id, r.data)
}

async fn wait_applied(n: &Node, index: u64) {
    n.raft
        .wait(T)
        .applied_index_at_least(Some(index), format!("node {} applies {index}", n.id))
        .await
        .expect("applied");
}

fn svc(name: &str, zone: &str, port: u16) -> Service {
    Service {
        name: name.into(),
        addr: format!("10.0.0.{}:{port}", port % 250),
        zone: zone.into(),
        healthy: true,
    }
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Runs the scenario; prints each step when `verbose`. Panics if anything
/// is not as it should be.
pub async fn run(verbose: bool) -> Report {
    let started = Instant::now();
    let say = |s: String| {
        if verbose {
            println!("[{:>6.3}s] {s}", started.elapsed().as_secs_f64());
        }
    };
    let router = Router::<Registry>::new();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(start_node(id, &router, MemLogStore::new()).await);
    }
    say("3 nodes started: each an openraft Raft over its own pandodb Db".into());

    // 1. Elect a leader.
    let members: BTreeMap<u64, BasicNode> = (1..=3)
        .map(|i| (i, BasicNode::new(format!("node-{i}"))))
        .collect();
    nodes[0].raft.initialize(members).await.expect("initialize");
    let m = nodes[0]
        .raft
        .wait(T)
        .metrics(|m| m.current_leader.is_some(), "a leader")
        .await
        .expect("leader elected");
    let leader = m.current_leader.expect("leader");
    let li = (leader - 1) as usize;
    let fi = [0usize, 1, 2]
        .into_iter()
        .find(|&i| i != li)
        .expect("follower");
    let other = 3 - li - fi;
    say(format!(
        "node {leader} is the leader (term {})",
        m.current_term
    ));

    // 2. Write through the leader.
    let mut last = 0;
    for (name, zone, port) in [
        ("auth", "eu", 8001),
        ("search", "eu", 8002),
        ("mail", "us", 8003),
    ] {
        let (id, resp) = write(&nodes[li], Cmd::Register(svc(name, zone, port))).await;
        say(format!(
            "leader: register {name:<7} in {zone} -> {resp:?} at log index {}",
            id.index
        ));
        last = id.index;
    }

    // 3. Read from a follower's local snapshot.
    wait_applied(&nodes[fi], last).await;
    {
        let f = &nodes[fi];
        let r = f.db.read();
        let auth = r
            .get(&f.tables.by_name, "auth")
            .expect("get")
            .expect("auth");
        let eu = r.count(&f.tables.by_zone, "eu").expect("count");
        say(format!(
            "follower {}: local read at revision {}: auth at {}, {eu} services in eu",
            f.id,
            r.revision(),
            auth.addr
        ));
        assert_eq!(eu, 2);
    }

    // 4. A watch on a follower fires when the leader's write is applied there.
    let (before, watch) = {
        let f = &nodes[fi];
        f.db.read()
            .get_watch(&f.tables.by_name, "billing")
            .expect("watch")
    };
    assert!(before.is_none());
    say(format!(
        "follower {}: watching \"billing\" (absent)",
        nodes[fi].id
    ));
    let waiter = tokio::spawn(async move {
        watch
            .fired()
            .await
            .expect("the follower database stays open");
        Instant::now()
    });
    let written = Instant::now();
    write(&nodes[li], Cmd::Register(svc("billing", "us", 8004))).await;
    let fired_at = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the watch fired")
        .expect("task");
    let watch_latency = fired_at.saturating_duration_since(written);
    {
        let f = &nodes[fi];
        let got = f.db.read().get(&f.tables.by_name, "billing").expect("get");
        assert!(got.is_some(), "a read after the watch fired sees the write");
        say(format!(
            "follower {}: watch fired {watch_latency:.1?} after the leader's write; billing at {}",
            f.id,
            got.expect("billing").addr
        ));
    }

    // 5. Compare-and-swap: a fresh revision wins, a stale one conflicts.
    let seen = {
        let f = &nodes[fi];
        f.db.read()
            .get_versioned(&f.tables.by_name, "auth")
            .expect("get")
            .expect("auth")
            .modified
    };
    let cas = |healthy| Cmd::SetHealth {
        name: "auth".into(),
        healthy,
        seen,
    };
    let (_, first) = write(&nodes[li], cas(false)).await;
    let (_, second) = write(&nodes[li], cas(true)).await;
    say(format!(
        "CAS on auth (seen at revision {seen}): first -> {first:?}, second (stale) -> {second:?}"
    ));
    assert!(matches!(first, Resp::Written(_)));
    assert!(matches!(second, Resp::Conflict(Some(_))));

    // 6. Kill a follower; the log it had stays (a disk would keep it).
    let dead = nodes.remove(other);
    let dead_id = dead.id;
    let dead_log = dead.log.clone();
    router.remove(dead_id);
    dead.raft.shutdown().await.expect("shutdown");
    say(format!(
        "node {dead_id} killed (its in-memory database is gone; its log of {} entries stays)",
        dead_log.len()
    ));
    drop(dead);
    let (li, fi) = (
        nodes.iter().position(|n| n.id == leader).expect("leader"),
        nodes.iter().position(|n| n.id != leader).expect("follower"),
    );

    // 7. Write on with two of three nodes.
    for i in 0..20 {
        let zone = if i % 2 == 0 { "eu" } else { "us" };
        write(
            &nodes[li],
            Cmd::Register(svc(&format!("late-{i}"), zone, 9000 + i)),
        )
        .await;
    }
    let (id, _) = write(&nodes[li], Cmd::Deregister("mail".into())).await;
    last = id.index;
    say(format!(
        "leader: 21 more writes while node {dead_id} is down (log index {last})"
    ));

    // 8. Snapshot and purge the leader's log.
    nodes[li]
        .raft
        .trigger()
        .snapshot()
        .await
        .expect("trigger snapshot");
    let m = nodes[li]
        .raft
        .wait(T)
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= last),
            "snapshot built",
        )
        .await
        .expect("snapshot");
    let snapshot = m.snapshot;
    nodes[li]
        .raft
        .trigger()
        .purge_log(last)
        .await
        .expect("purge");
    nodes[li]
        .raft
        .wait(T)
        .metrics(|m| m.purged.is_some_and(|p| p.index >= last), "log purged")
        .await
        .expect("purged");
    say(format!(
        "leader: snapshot at log index {}, log purged up to it ({} entries left)",
        snapshot.expect("snapshot").index,
        nodes[li].log.len()
    ));

    // 9. Bring the node back with its old log and an empty database: it
    // replays what its log holds, then installs the leader's snapshot.
    let back = start_node(dead_id, &router, dead_log).await;
    let (absent, watch) = back
        .db
        .read()
        .get_watch(&back.tables.by_name, "late-7")
        .expect("watch");
    assert!(absent.is_none());
    say(format!(
        "node {dead_id} restarted with its old log; watching \"late-7\" on it"
    ));
    wait_applied(&back, last).await;
    let install_fired_watch = watch
        .wait_timeout(Duration::from_secs(10))
        .expect("the database is open");
    let installed = back.raft.metrics().borrow().snapshot;
    {
        let r = back.db.read();
        assert!(
            r.get(&back.tables.by_name, "late-7")
                .expect("get")
                .is_some()
        );
        assert!(r.get(&back.tables.by_name, "mail").expect("get").is_none());
        say(format!(
            "node {dead_id}: caught up through snapshot install (snapshot {:?}), watch fired: \
             {install_fired_watch}, {} services, revision {}",
            installed.map(|l| l.index),
            r.len(&back.tables.services).expect("len"),
            r.revision()
        ));
    }
    nodes.push(back);
    nodes.sort_by_key(|n| n.id);

    // 10. One more write, then every replica's snapshot is byte-identical.
    let (id, _) = write(
        &nodes[nodes.iter().position(|n| n.id == leader).expect("leader")],
        Cmd::Register(svc("final", "eu", 9999)),
    )
    .await;
    let mut snapshots = Vec::new();
    let mut revisions = Vec::new();
    for n in &nodes {
        wait_applied(n, id.index).await;
        let mut bytes = Vec::new();
        let info = n.db.snapshot_to(&mut bytes).expect("snapshot");
        say(format!(
            "node {}: revision {}, snapshot {} bytes, {} rows, fnv {:016x}",
            n.id,
            info.revision,
            info.bytes,
            info.rows,
            fnv(&bytes)
        ));
        revisions.push(info.revision);
        snapshots.push(bytes);
    }
    let identical = snapshots.windows(2).all(|w| w[0] == w[1]);
    say(format!("all three snapshots byte-identical: {identical}"));
    assert!(identical, "the replicas' snapshots differ");

    for n in &nodes {
        n.raft.shutdown().await.expect("shutdown");
    }
    let _ = fi;
    Report {
        leader,
        watch_latency,
        cas: (first, second),
        snapshot,
        installed,
        install_fired_watch,
        snapshots,
        revisions,
        elapsed: started.elapsed(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let report = run(true).await;
    println!("done in {:.2?}", report.elapsed);
}
