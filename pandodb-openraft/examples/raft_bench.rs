//! Load generator for a loopback cluster of `raft_node` processes
//! (feature `http`): write throughput and latency with the in-memory and
//! the durable log, and the catch-up of a new node from a snapshot.
//!
//! ```sh
//! cargo build --release -p pandodb-openraft --features http --bin raft_node --example raft_bench
//! target/release/examples/raft_bench [--secs 10] [--clients 1,32] [--objects 1000000] [--logs mem,durable] [--via leader,follower]
//! ```
//!
//! For each log kind: starts three `raft_node` processes on ephemeral
//! 127.0.0.1 ports, then for each client count runs that many concurrent
//! clients for `--secs` seconds, each sending `Put`s of a 16-byte key and
//! a 64-byte value to the leader (`--via follower`: to a follower, which
//! forwards it) and waiting for the answer (commit on a quorum and apply
//! on the leader). Prints writes/s and the p50/p99/max
//! latency the clients saw. Then (unless `--objects 0`), on a fresh
//! cluster of that log kind,
//! loads `--objects` objects (`Fill` entries of 100,000), builds a
//! snapshot on the leader (the log is purged behind it), adds a fourth
//! process as a learner and times until it has applied the leader's last
//! entry: that is, the snapshot streamed over HTTP and installed (and, with
//! the durable log, persisted). `raft_node` is looked up next to this
//! example's directory (`target/release/raft_node`) or given with
//! `--node PATH`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Opts {
    secs: u64,
    clients: Vec<usize>,
    objects: u64,
    logs: Vec<String>,
    via: Vec<String>,
    node: PathBuf,
}

fn opts() -> Opts {
    let mut o = Opts {
        secs: 10,
        clients: vec![1, 32],
        objects: 1_000_000,
        logs: vec!["mem".into(), "durable".into()],
        via: vec!["leader".into()],
        node: std::env::current_exe()
            .ok()
            .and_then(|p| Some(p.parent()?.parent()?.join("raft_node")))
            .unwrap_or_else(|| "target/release/raft_node".into()),
    };
    let mut it = std::env::args().skip(1);
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        match k.as_str() {
            "--secs" => o.secs = v.parse().expect("--secs N"),
            "--clients" => {
                o.clients = v
                    .split(',')
                    .map(|c| c.parse().expect("--clients N,M"))
                    .collect()
            }
            "--objects" => o.objects = v.parse().expect("--objects N"),
            "--logs" => o.logs = v.split(',').map(String::from).collect(),
            "--via" => o.via = v.split(',').map(String::from).collect(),
            "--node" => o.node = v.into(),
            _ => panic!("unknown option {k}"),
        }
    }
    o
}

struct Cluster {
    children: Vec<Child>,
    addrs: Vec<String>,
    dir: PathBuf,
    http: reqwest::Client,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Cluster {
    /// Starts `n` processes; the first three are the cluster's peers.
    async fn start(o: &Opts, name: &str, n: usize, extra: &[&str]) -> Cluster {
        let dir = std::env::temp_dir().join(format!("raft-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let addrs: Vec<String> = (0..n)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let peers: Vec<String> = (0..3).map(|i| format!("{}={}", i + 1, addrs[i])).collect();
        let mut children = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            let d = dir.join(format!("n{}", i + 1));
            let mut cmd = Command::new(&o.node);
            cmd.args(["--id", &(i + 1).to_string(), "--addr", addr])
                .arg("--dir")
                .arg(&d)
                .args(["--peers", &peers.join(",")])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            children.push(cmd.spawn().unwrap_or_else(|e| panic!("{:?}: {e}", o.node)));
        }
        let c = Cluster {
            children,
            addrs,
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(600))
                .build()
                .expect("client"),
        };
        for i in 0..n {
            while c.metrics(i).await.is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        c
    }

    fn url(&self, i: usize, path: &str) -> String {
        format!("http://{}{path}", self.addrs[i])
    }

    async fn metrics(&self, i: usize) -> Option<Value> {
        let r = self.http.get(self.url(i, "/metrics")).send().await.ok()?;
        r.json().await.ok()
    }

    async fn post(&self, i: usize, path: &str, body: &Value) -> Value {
        let r = self
            .http
            .post(self.url(i, path))
            .json(body)
            .send()
            .await
            .expect("request");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    /// Initializes the first three as the cluster; returns the leader's index.
    async fn init(&self) -> usize {
        let r = self
            .http
            .post(self.url(0, "/init-peers"))
            .send()
            .await
            .expect("init");
        assert!(r.status().is_success());
        loop {
            if let Some(l) = self
                .metrics(0)
                .await
                .and_then(|m| m["current_leader"].as_u64())
            {
                return l as usize - 1;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn throughput(o: &Opts, log: &str, via: &str, clients: usize) {
    let c = Cluster::start(o, &format!("w{log}{clients}"), 3, &["--log", log]).await;
    let leader = c.init().await;
    let stop = Arc::new(AtomicBool::new(false));
    let target = match via {
        "leader" => leader,
        _ => (leader + 1) % 3,
    };
    let url = c.url(target, "/write");
    let mut tasks = Vec::new();
    for w in 0..clients {
        let (http, url, stop) = (c.http.clone(), url.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let cmd = json!({ "Put": {
                    "key": format!("c{w:04}-{i:010}"),
                    "value": format!("{:064}", i),
                }});
                let t = Instant::now();
                let r = http.post(&url).json(&cmd).send().await.expect("write");
                assert!(r.status().is_success(), "write: {}", r.status());
                let _ = r.bytes().await;
                lat.push(t.elapsed());
                i += 1;
            }
            lat
        }));
    }
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(o.secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("client"));
    }
    let secs = t.elapsed().as_secs_f64();
    lat.sort();
    println!(
        "| {log} | {via} | {clients} | {:.0} | {:.2} | {:.2} | {:.2} |",
        lat.len() as f64 / secs,
        pct(&lat, 0.50).as_secs_f64() * 1e3,
        pct(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

async fn catch_up(o: &Opts, log: &str) {
    let extra = ["--log", log, "--snapshot-every", "0", "--keep-logs", "0"];
    let c = Cluster::start(o, &format!("c{log}"), 4, &extra).await;
    let leader = c.init().await;
    let t = Instant::now();
    let step = 100_000;
    for start in (0..o.objects).step_by(step as usize) {
        let count = step.min(o.objects - start);
        let cmd = json!({ "Fill": { "prefix": "obj-", "start": start, "count": count } });
        c.post(leader, "/write", &cmd).await;
    }
    let load = t.elapsed();
    let t = Instant::now();
    c.post(leader, "/snapshot", &Value::Null).await;
    let last = loop {
        let m = c.metrics(leader).await.expect("metrics");
        if !m["purged"].is_null() && m["snapshot"] == m["last_applied"] {
            break m["last_applied"]["index"].as_u64().expect("index");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let build = t.elapsed();
    let size: u64 = std::fs::read_dir(c.dir.join(format!("n{}/snapshots", leader + 1)))
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    let t = Instant::now();
    let addr = c.addrs[3].clone();
    c.post(leader, "/add-learner", &json!({ "id": 4, "addr": addr }))
        .await;
    loop {
        let m = c.metrics(3).await.expect("metrics");
        if m["last_applied"]["index"].as_u64() >= Some(last) && !m["snapshot"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let caught = t.elapsed();
    let probe = format!("/read?key=obj-{:010}&mode=stale", o.objects - 1);
    let r: Value = c
        .http
        .get(c.url(3, &probe))
        .send()
        .await
        .expect("read")
        .json()
        .await
        .expect("json");
    assert_eq!(r["value"], format!("value-{}", o.objects - 1));
    let size = if size > 0 {
        format!("{:.1} MB", size as f64 / 1e6)
    } else {
        "-".into()
    };
    println!(
        "| {log} | {} | {:.2} | {:.2} | {size} | {:.2} | {:.0} |",
        o.objects,
        load.as_secs_f64(),
        build.as_secs_f64(),
        caught.as_secs_f64(),
        o.objects as f64 / caught.as_secs_f64(),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let o = opts();
    println!("| log | sent to | clients | writes/s | p50 ms | p99 ms | max ms |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for log in &o.logs {
        for via in &o.via {
            for &clients in &o.clients {
                throughput(&o, log, via, clients).await;
            }
        }
    }
    if o.objects == 0 {
        return;
    }
    println!();
    println!(
        "| log | objects | load s | snapshot build s | snapshot file | catch-up s | objects/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for log in &o.logs {
        catch_up(&o, log).await;
    }
}
