//! How fast a follower catches up from a snapshot: a leader's state machine
//! holding N objects builds its snapshot (`RaftSnapshotBuilder`), and a
//! fresh follower's state machine installs it (`RaftStateMachine::
//! install_snapshot`, i.e. `Db::install_snapshot`, which builds every table
//! bottom-up). Prints the install rate in objects/s as one JSON line. The
//! bytes move in memory: this measures the state machine's part of a
//! catch-up, not a network.
//!
//! ```sh
//! cargo run --release -p pandodb-openraft --example catchup -- 1000000
//! ```

use std::io::Cursor;
use std::time::Instant;

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use pandodb::{Db, Indexer, Schema, Table, WriteTxn};
use pandodb_openraft::{Applied, Apply, PandoStateMachine, register_meta};
use serde::{Deserialize, Serialize};

/// A registered service instance.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Service {
    name: String,
    addr: String,
    zone: String,
}

/// The one command (unused here: the data is loaded directly).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Put(Service);

openraft::declare_raft_types!(
    Cfg:
        D = Put,
        R = (),
);

#[derive(Clone)]
struct App {
    services: Table<Service>,
}

impl Apply<Cfg> for App {
    fn apply(&self, w: &mut WriteTxn, cmd: &Put) -> Applied<()> {
        match w.insert(&self.services, cmd.0.clone()) {
            Ok(_) => Applied::Commit(()),
            Err(_) => Applied::Rollback(()),
        }
    }
    fn empty_response(&self) {}
}

fn machine() -> PandoStateMachine<Cfg, App> {
    let mut s = Schema::builder();
    let meta = register_meta::<Cfg>(&mut s).expect("meta");
    let mut t = s.table::<Service>("service");
    t.primary("name", Indexer::string(|x: &Service| x.name.as_str()));
    t.unique("addr", Indexer::string(|x: &Service| x.addr.as_str()));
    t.index("zone", Indexer::string(|x: &Service| x.zone.as_str()));
    t.serde();
    let services = s.add(t).expect("table");
    let db = Db::new(s.build().expect("schema"));
    PandoStateMachine::new(db, meta, App { services }).expect("state machine")
}

fn service(i: u64) -> Service {
    Service {
        name: format!("svc-{i:08}"),
        addr: format!("10.{}.{}.{}:8080", i >> 16, (i >> 8) & 255, i & 255),
        zone: format!("zone-{}", i % 16),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut leader = machine();
    {
        let db = leader.db().clone();
        let services = leader.app().services.clone();
        let mut w = db.write(&[&services]);
        w.insert_all(&services, (0..n).map(service)).expect("load");
        w.commit().expect("commit");
    }
    let mut builder = leader.get_snapshot_builder().await;
    let snap = builder.build_snapshot().await.expect("build");
    let bytes = snap.snapshot.get_ref().len();
    let mut follower = machine();
    let received = follower.begin_receiving_snapshot().await.expect("receive");
    let mut received = received;
    *received.get_mut() = snap.snapshot.into_inner();
    let start = Instant::now();
    follower
        .install_snapshot(&snap.meta, received)
        .await
        .expect("install");
    let secs = start.elapsed().as_secs_f64();
    let installed = follower.db().read().revision();
    println!(
        "{{\"workload\":\"raft_catchup_install\",\"n\":{n},\"seconds\":{secs:.3},\"objects_per_s\":{:.0},\"snapshot_bytes\":{bytes},\"revision\":{installed}}}",
        n as f64 / secs
    );
}
