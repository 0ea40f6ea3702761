//! One node of a pandodb key/value store replicated by openraft, as a
//! process serving HTTP on 127.0.0.1 (feature `http`).
//!
//! ```sh
//! cargo run --release -p pandodb-openraft --features http --bin raft_node -- \
//!     --id 1 --addr 127.0.0.1:7001 --dir /tmp/n1 \
//!     --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003
//! ```
//!
//! Options: `--log mem` (the default: an in-memory Raft log, lost with
//! the process) or `--log durable` (a [`DurableLogStore`] in `DIR/log`,
//! every appended batch fsynced), `--snapshot-every N` (build a snapshot
//! every N entries, default 5000; 0: never), `--keep-logs N` (entries kept
//! behind a snapshot, default 1000). The database itself is in memory;
//! with `--log durable` snapshots are persisted in `DIR/snapshots`
//! ([`PandoStateMachine::open_persisted`]), and a restarted node installs
//! the newest one and re-applies its log after it. `POST /init-peers`
//! initializes the cluster with `--peers`.
//! Commands (`POST /write`): `{"Put":{"key":"k","value":"v"}}`,
//! `{"Delete":{"key":"k"}}`, `{"Incr":{"key":"k"}}` (answers the new
//! count), each with an optional request id
//! `"req":{"client":C,"seq":S}` that makes a retry apply once, and
//! `{"Fill":{"prefix":"p","start":0,"count":1000}}` (writes `count`
//! generated objects in one entry: for load tests).
//! Reads: `GET /read?key=k&mode=linearizable|read_index|stale`.
//! With `PANDODB_RAFT_TOKEN` set (the same on every node), every endpoint
//! requires `Authorization: Bearer <token>`.
//! See docs/RAFT.md.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use openraft::{BasicNode, Config, Raft, SnapshotPolicy};
use pandodb::{Db, Indexer, Query, Schema, WriteTxn};
use pandodb_openraft::{
    Applied, Dedup, DurableLogStore, HttpNetwork, HttpNode, Idempotent, MemLogStore,
    PandoStateMachine, Reader, RequestId, raft_routes, register_dedup, register_meta,
    require_token,
};
use serde::{Deserialize, Serialize};

/// One key/value pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Kv {
    key: String,
    value: String,
}

/// The store's commands. `req` (optional) is a request id: a command
/// retried with the same id is applied once (the node deduplicates with
/// [`Dedup`]), so a client may resend a write whose outcome it does not
/// know.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Cmd {
    /// Insert or replace a pair.
    Put {
        key: String,
        value: String,
        #[serde(default)]
        req: Option<RequestId>,
    },
    /// Remove a key.
    Delete {
        key: String,
        #[serde(default)]
        req: Option<RequestId>,
    },
    /// Add one to the number stored at `key` (absent: 0); answers the new
    /// value.
    Incr {
        key: String,
        #[serde(default)]
        req: Option<RequestId>,
    },
    /// Insert `count` pairs `{prefix}{i:010}` = `value-{i}` for `i` from
    /// `start`: bulk data for load tests, in one entry.
    Fill {
        prefix: String,
        start: u64,
        count: u64,
    },
}

impl Idempotent for Cmd {
    fn request_id(&self) -> Option<RequestId> {
        match self {
            Cmd::Put { req, .. } | Cmd::Delete { req, .. } | Cmd::Incr { req, .. } => *req,
            Cmd::Fill { .. } => None,
        }
    }
}

/// The answer to a command: the revision it was written as (0 when it
/// failed and wrote nothing, or for a duplicate of an older request), and
/// the new value of an `Incr`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Resp {
    revision: u64,
    error: Option<String>,
    value: Option<String>,
}

openraft::declare_raft_types!(
    /// The store's Raft types.
    Kvs:
        D = Cmd,
        R = Resp,
        SnapshotData = std::io::Cursor<Vec<u8>>,
);

struct Args {
    id: u64,
    addr: String,
    dir: PathBuf,
    peers: BTreeMap<u64, BasicNode>,
    log: String,
    snapshot_every: u64,
    keep_logs: u64,
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "raft_node: {msg}\nusage: raft_node --id N --addr 127.0.0.1:PORT --dir DIR \
         [--peers 1=ADDR,2=ADDR,..] [--log mem|durable] [--snapshot-every N] [--keep-logs N]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        id: 0,
        addr: String::new(),
        dir: PathBuf::new(),
        peers: BTreeMap::new(),
        log: "mem".into(),
        snapshot_every: 5000,
        keep_logs: 1000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let Some(v) = it.next() else {
            usage(&format!("{flag} needs a value"))
        };
        let num = |v: &str| -> u64 {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{flag}: not a number: {v}")))
        };
        match flag.as_str() {
            "--id" => a.id = num(&v),
            "--addr" => a.addr = v,
            "--dir" => a.dir = v.into(),
            "--log" => a.log = v,
            "--snapshot-every" => a.snapshot_every = num(&v),
            "--keep-logs" => a.keep_logs = num(&v),
            "--peers" => {
                for p in v.split(',').filter(|p| !p.is_empty()) {
                    let Some((id, addr)) = p.split_once('=') else {
                        usage(&format!("--peers: expected id=addr, got {p}"))
                    };
                    a.peers.insert(
                        num(id),
                        BasicNode {
                            addr: addr.to_string(),
                        },
                    );
                }
            }
            _ => usage(&format!("unknown option {flag}")),
        }
    }
    if a.id == 0 || a.addr.is_empty() || a.dir.as_os_str().is_empty() {
        usage("--id, --addr and --dir are required");
    }
    a.peers.entry(a.id).or_insert(BasicNode {
        addr: a.addr.clone(),
    });
    a
}

fn main() {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| usage(&format!("tokio runtime: {e}")));
    if let Err(e) = rt.block_on(run(args)) {
        eprintln!("raft_node: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(&args.dir)?;
    let mut s = Schema::builder();
    let meta = register_meta::<Kvs>(&mut s)?;
    let dedup = register_dedup::<Kvs>(&mut s)?;
    let mut t = s.table::<Kv>("kv");
    let by_key = t.primary("key", Indexer::string(|kv: &Kv| kv.key.as_str()));
    t.serde();
    let kv_table = s.add(t)?;
    let db = Db::new(s.build()?);
    let reader_key = by_key.clone();
    let apply = move |w: &mut WriteTxn, cmd: &Cmd| {
        let revision = w.base_revision() + 1;
        let put = |w: &mut WriteTxn, key: &str, value: String| {
            let kv = Kv {
                key: key.to_string(),
                value,
            };
            w.insert(&kv_table, kv).map(|_| ())
        };
        let res = match cmd {
            Cmd::Put { key, value, .. } => put(w, key, value.clone()).map(|()| None),
            Cmd::Delete { key, .. } => w.delete_all(&by_key, key.as_str()).map(|_| None),
            Cmd::Incr { key, .. } => w.get(&by_key, key.as_str()).and_then(|cur| {
                let n = cur.and_then(|kv| kv.value.parse::<u64>().ok()).unwrap_or(0) + 1;
                put(w, key, n.to_string()).map(|()| Some(n.to_string()))
            }),
            Cmd::Fill {
                prefix,
                start,
                count,
            } => (*start..start.saturating_add(*count))
                .try_for_each(|i| put(w, &format!("{prefix}{i:010}"), format!("value-{i}")))
                .map(|()| None),
        };
        match res {
            Ok(value) => Applied::Commit(Resp {
                revision,
                error: None,
                value,
            }),
            Err(e) => Applied::Rollback(Resp {
                revision: 0,
                error: Some(e.to_string()),
                value: None,
            }),
        }
    };
    let apply = Dedup::new(dedup, apply);
    // With the durable log, snapshots are persisted in DIR/snapshots: a
    // restarted node installs the newest one and replays the log after it.
    let sm = if args.log == "durable" {
        PandoStateMachine::<Kvs, _>::open_persisted(
            db.clone(),
            meta,
            apply,
            args.dir.join("snapshots"),
        )?
    } else {
        PandoStateMachine::<Kvs, _>::new(db.clone(), meta, apply)?
    };
    let config = Config {
        cluster_name: "pandodb-kv".into(),
        heartbeat_interval: 100,
        election_timeout_min: 1000,
        election_timeout_max: 2000,
        snapshot_policy: match args.snapshot_every {
            0 => SnapshotPolicy::Never,
            n => SnapshotPolicy::LogsSinceLast(n),
        },
        max_in_snapshot_log_to_keep: args.keep_logs,
        purge_batch_size: 1,
        ..Config::default()
    };
    let config = Arc::new(config.validate()?);
    let reader: Reader = Arc::new(move |r, key| {
        let got = r.get(&reader_key, key).map_err(|e| e.to_string())?;
        Ok(got.map(|kv| serde_json::Value::String(kv.value.clone())))
    });
    let network = match std::env::var("PANDODB_RAFT_TOKEN") {
        Ok(t) if !t.is_empty() => HttpNetwork::new().with_token(t),
        _ => HttpNetwork::new(),
    };
    let raft = match args.log.as_str() {
        "mem" => Raft::new(args.id, config, network.clone(), MemLogStore::new(), sm).await?,
        "durable" => {
            let log = DurableLogStore::open(args.dir.join("log"))?;
            // openraft 0.9 may purge up to a received snapshot before the
            // state machine has written it to disk: hold purges until a
            // persisted snapshot covers them (the crash test found a node
            // that could not restart without this).
            if let Some(guard) = sm.purge_guard() {
                log.hold_purges_until_persisted(guard);
            }
            Raft::new(args.id, config, network.clone(), log, sm).await?
        }
        other => usage(&format!("--log {other}: expected mem or durable")),
    };
    // PANDODB_RAFT_TOKEN (an environment variable, not an argument, so that
    // it does not show in `ps`): every endpoint requires it as a bearer
    // token, and the node sends it to its peers.
    let token = std::env::var("PANDODB_RAFT_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let mut node = HttpNode::new(args.id, raft.clone(), db, reader);
    if let Some(t) = &token {
        node = node.with_token(t.clone());
    }
    let peers = args.peers.clone();
    let init = axum::Router::new().route(
        "/init-peers",
        axum::routing::post(move || {
            let raft = raft.clone();
            let peers = peers.clone();
            async move {
                match raft.initialize(peers).await {
                    Ok(()) => (axum::http::StatusCode::OK, "initialized".to_string()),
                    Err(e) => (axum::http::StatusCode::BAD_REQUEST, e.to_string()),
                }
            }
        }),
    );
    let init = match &token {
        Some(t) => require_token(init, t),
        None => init,
    };
    let app = raft_routes(node).merge(init);
    let listener = tokio::net::TcpListener::bind(&args.addr).await?;
    eprintln!(
        "raft_node {} listening on {}",
        args.id,
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
