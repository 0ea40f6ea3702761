//! Multi-process cluster tests (feature `http`): `raft_node` processes on
//! ephemeral 127.0.0.1 ports, driven over HTTP.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// One `raft_node` process.
struct Proc {
    id: u64,
    addr: String,
    dir: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Proc {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.with_extension("log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_raft_node"))
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start raft_node");
        self.child = Some(child);
    }

    /// SIGKILL (no shutdown of any kind).
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Cluster {
    procs: Vec<Proc>,
    http: reqwest::Client,
    _tmp: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    /// Removes the nodes' directories, unless the test failed: then their
    /// logs (`nN.log`) and data are kept for a look.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept the nodes' directories and logs in {:?}", self.0);
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Cluster {
    /// Starts `n` nodes (ids 1..=n) with `extra` options each.
    async fn start(name: &str, n: u64, extra: &[&str]) -> Cluster {
        Self::start_with_token(name, n, extra, None).await
    }

    /// Starts `n` nodes that require `token` (when given); the test's
    /// client sends it.
    async fn start_with_token(name: &str, n: u64, extra: &[&str], token: Option<&str>) -> Cluster {
        let tmp = std::env::temp_dir().join(format!("pandodb-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).expect("tmp dir");
        let addrs: Vec<String> = (0..n)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let peers: Vec<String> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}={a}", i + 1))
            .collect();
        let mut procs = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            let id = i as u64 + 1;
            let dir = tmp.join(format!("n{id}"));
            let mut args: Vec<String> = [
                "--id",
                &id.to_string(),
                "--addr",
                addr,
                "--dir",
                dir.to_str().expect("utf-8 path"),
                "--peers",
                &peers.join(","),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend(extra.iter().map(|s| s.to_string()));
            let mut p = Proc {
                id,
                addr: addr.clone(),
                dir,
                args,
                env: token
                    .map(|t| vec![("PANDODB_RAFT_TOKEN".to_string(), t.to_string())])
                    .unwrap_or_default(),
                child: None,
            };
            p.start();
            procs.push(p);
        }
        let c = Cluster {
            procs,
            http: {
                let mut headers = reqwest::header::HeaderMap::new();
                if let Some(t) = token {
                    let v = format!("Bearer {t}").parse().expect("header value");
                    headers.insert(reqwest::header::AUTHORIZATION, v);
                }
                reqwest::Client::builder()
                    .timeout(Duration::from_secs(20))
                    .default_headers(headers)
                    .build()
                    .expect("client")
            },
            _tmp: TempDir(tmp),
        };
        for p in &c.procs {
            c.wait_up(p.id).await;
        }
        c
    }

    fn url(&self, id: u64, path: &str) -> String {
        format!("http://{}{path}", self.procs[id as usize - 1].addr)
    }

    async fn wait_up(&self, id: u64) {
        let t = Instant::now();
        while self.metrics(id).await.is_none() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "node {id} did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn metrics(&self, id: u64) -> Option<Value> {
        let r = self.http.get(self.url(id, "/metrics")).send().await.ok()?;
        r.json().await.ok()
    }

    /// Waits until node `id` sees a leader; returns it.
    async fn leader(&self, id: u64) -> u64 {
        let t = Instant::now();
        loop {
            if let Some(m) = self.metrics(id).await
                && let Some(l) = m["current_leader"].as_u64()
            {
                return l;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "no leader");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn post(&self, id: u64, path: &str, body: &Value) -> (u16, Value) {
        match self.http.post(self.url(id, path)).json(body).send().await {
            Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
            Err(e) => (0, json!({ "error": e.to_string() })),
        }
    }

    async fn put(&self, id: u64, key: &str, value: &str) -> (u16, Value) {
        let cmd = json!({ "Put": { "key": key, "value": value } });
        self.post(id, "/write", &cmd).await
    }

    async fn read(&self, id: u64, key: &str, mode: &str) -> (u16, Value) {
        let url = self.url(id, &format!("/read?key={key}&mode={mode}"));
        match self.http.get(url).send().await {
            Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
            Err(e) => (0, json!({ "error": e.to_string() })),
        }
    }

    async fn init(&self) -> u64 {
        let r = self
            .http
            .post(self.url(1, "/init-peers"))
            .send()
            .await
            .expect("init");
        assert!(r.status().is_success(), "init: {:?}", r.text().await);
        self.leader(1).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_write_anywhere_read_three_ways() {
    let t = Instant::now();
    let c = Cluster::start("three", 3, &[]).await;
    let leader = c.init().await;
    let follower = (1..=3).find(|&i| i != leader).expect("a follower");

    // A write sent to a follower is forwarded to the leader.
    let (status, resp) = c.put(follower, "greeting", "hello").await;
    assert_eq!(status, 200, "{resp}");
    assert!(resp["log_id"]["index"].as_u64().is_some(), "{resp}");
    for i in 1..=3 {
        let (s, _) = c.put(i, &format!("from-{i}"), &i.to_string()).await;
        assert_eq!(s, 200);
    }

    // Linearizable and read-index reads see every acknowledged write, on
    // every node, right away.
    for i in 1..=3 {
        for mode in ["linearizable", "read_index"] {
            for (k, v) in [("greeting", "hello"), ("from-3", "3")] {
                let (s, r) = c.read(i, k, mode).await;
                assert_eq!(s, 200, "{r}");
                assert_eq!(r["value"], v, "node {i} {mode}: {r}");
            }
            let (_, r) = c.read(i, "greeting", mode).await;
            let by = r["served_by"].as_u64().expect("served_by");
            if mode == "linearizable" {
                assert_eq!(by, leader);
            } else {
                assert_eq!(by, i);
            }
        }
    }
    // A stale read is served locally and sees the write eventually.
    for i in 1..=3 {
        let t = Instant::now();
        loop {
            let (s, r) = c.read(i, "from-1", "stale").await;
            assert_eq!(s, 200);
            assert_eq!(r["served_by"], i);
            if r["value"] == "1" {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "{r}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (_, r) = c.read(follower, "absent", "read_index").await;
    assert_eq!(r["value"], Value::Null);

    // Malformed and hostile requests get a 4xx answer, and the node lives.
    let bad = [
        ("/write", "{\"Put\":"),
        ("/write", "{\"Nope\":1}"),
        ("/raft/append", "[1,2]"),
        ("/raft/vote", "null"),
        ("/init", "{\"x\":1}"),
        ("/change-membership", "\"all\""),
    ];
    for (path, body) in bad {
        let r = c
            .http
            .post(c.url(follower, path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("answer");
        assert!(
            r.status().is_client_error(),
            "{path} {body}: {}",
            r.status()
        );
    }
    for body in [
        &b"\x00\x00\x00\x05{\"a\""[..],
        b"\xff\xff\xff\xffxx",
        b"\x00",
    ] {
        let r = c
            .http
            .post(c.url(follower, "/raft/snapshot"))
            .body(body.to_vec())
            .send()
            .await
            .expect("answer");
        assert!(r.status().is_client_error(), "snapshot: {}", r.status());
    }
    let (s, _) = c.read(follower, "greeting", "sideways").await;
    assert_eq!(s, 400);
    let (s, r) = c.put(follower, "after", "garbage").await;
    assert_eq!(s, 200, "{r}");

    drop(c);
    eprintln!("three processes: {:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_node_catches_up_from_a_streamed_snapshot() {
    // Four processes; the cluster is three of them, logs purged right
    // behind each snapshot, so the fourth can only catch up by snapshot.
    let c = Cluster::start("snap", 4, &["--keep-logs", "0"]).await;
    let members: serde_json::Map<String, Value> = c.procs[..3]
        .iter()
        .map(|p| (p.id.to_string(), json!({ "addr": p.addr })))
        .collect();
    let (s, r) = c.post(1, "/init", &Value::Object(members)).await;
    assert_eq!(s, 200, "{r}");
    let leader = c.leader(1).await;
    // 3 MiB-ish of data: the snapshot spans several 1 MiB chunks.
    for start in (0..60_000).step_by(20_000) {
        let cmd = json!({ "Fill": { "prefix": "k", "start": start, "count": 20_000 } });
        let (s, r) = c.post(leader, "/write", &cmd).await;
        assert_eq!(s, 200, "{r}");
    }
    let (s, _) = c.post(leader, "/snapshot", &Value::Null).await;
    assert_eq!(s, 200);
    let t = Instant::now();
    while c.metrics(leader).await.expect("metrics")["purged"].is_null() {
        assert!(t.elapsed() < Duration::from_secs(20), "no purge");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let addr = c.procs[3].addr.clone();
    let (s, r) = c
        .post(leader, "/add-learner", &json!({ "id": 4, "addr": addr }))
        .await;
    assert_eq!(s, 200, "{r}");
    let t = Instant::now();
    loop {
        let (s, r) = c.read(4, "k0000059999", "stale").await;
        assert_eq!(s, 200);
        // The metrics follow the install a moment later.
        let m = c.metrics(4).await.expect("metrics");
        if r["value"] == "value-59999" && !m["snapshot"].is_null() {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "{r} {m}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The learner becomes a voter and serves read-index reads.
    let (s, r) = c.post(4, "/change-membership", &json!([1, 2, 3, 4])).await;
    assert_eq!(s, 421, "a follower does not change membership: {r}");
    assert_eq!(r["leader_id"], leader);
    let (s, r) = c
        .post(leader, "/change-membership", &json!([1, 2, 3, 4]))
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = c.put(4, "late", "yes").await;
    assert_eq!(s, 200, "{r}");
    let (_, r) = c.read(4, "late", "read_index").await;
    assert_eq!(r["value"], "yes");
}

/// xorshift64*: the test's only randomness, seeded from the clock (or
/// `PANDODB_CRASH_SEED`) and printed, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Posts `cmd` to `url` (5 s timeout): the answer's JSON, or `Null` when
/// the request failed or was refused (the write's outcome is then unknown).
async fn send(http: &reqwest::Client, url: &str, cmd: &Value) -> Value {
    match http
        .post(url)
        .timeout(Duration::from_secs(5))
        .json(cmd)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// SIGKILLs a node at random moments while clients write (to every node:
/// followers forward), restarts it on the same durable log, and checks
/// that every write a client saw acknowledged is on every node once they
/// caught up, and that increments retried with request ids (until
/// acknowledged) applied exactly once. One kill in five kills all three
/// nodes at once.
/// `PANDODB_CRASH_KILLS` (default 20) sets the number of kills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_write_loses_no_acknowledged_write() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let kills = env_u64("PANDODB_CRASH_KILLS", 20);
    let seed = env_u64(
        "PANDODB_CRASH_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    ) | 1;
    eprintln!("crash test: {kills} kills, PANDODB_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let t0 = Instant::now();
    // PANDODB_CRASH_LOG=mem shows that the test catches a log that
    // forgets: it fails with the in-memory log.
    let log = std::env::var("PANDODB_CRASH_LOG").unwrap_or_else(|_| "durable".into());
    // Snapshots every 500 entries and a short log behind them: restarts
    // go through persisted snapshots, log replay and snapshot transfers.
    let args = [
        "--log",
        &log,
        "--snapshot-every",
        "500",
        "--keep-logs",
        "100",
    ];
    let mut c = Cluster::start("crash", 3, &args).await;
    c.init().await;

    let c_http = c.http.clone();
    let urls: Arc<Vec<String>> = Arc::new((1..=3).map(|i| c.url(i, "/write")).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    // Writers 0 and 2 put fresh keys and remember the acknowledged ones;
    // writers 1 and 3 increment a counter of their own with request ids,
    // retrying a write whose outcome they did not learn (to any node) until
    // it is acknowledged: each increment must apply exactly once.
    let mut writers = Vec::new();
    let mut counters = Vec::new();
    for w in 0..4u64 {
        let (http, urls, stop, next) = (c_http.clone(), urls.clone(), stop.clone(), next.clone());
        if w % 2 == 1 {
            let client = seed.rotate_left(w as u32 * 16) ^ w;
            counters.push(tokio::spawn(async move {
                let key = format!("ctr{w}");
                let (mut seq, mut failed, mut k, mut bad) = (1u64, 0u64, w, Vec::new());
                let mut pending = false;
                while pending || !stop.load(Ordering::Relaxed) {
                    let cmd =
                        json!({ "Incr": { "key": key, "req": { "client": client, "seq": seq } } });
                    k += 1;
                    let v = send(&http, &urls[(k % 3) as usize], &cmd).await;
                    if v["data"]["error"].is_null() && !v["data"]["value"].is_null() {
                        if v["data"]["value"].as_str().and_then(|s| s.parse().ok()) != Some(seq) {
                            bad.push(format!("{key} seq {seq} answered {}", v["data"]));
                        }
                        seq += 1;
                        pending = false;
                    } else {
                        failed += 1;
                        pending = true;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                (key, seq - 1, failed, bad)
            }));
            continue;
        }
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut failed = 0u64;
            let mut k = w;
            while !stop.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let cmd = json!({ "Put": { "key": format!("w{i}"), "value": format!("v{i}") } });
                k += 1;
                let v = send(&http, &urls[(k % 3) as usize], &cmd).await;
                let ok = v["data"]["error"].is_null() && v["data"]["revision"].as_u64() > Some(0);
                if ok {
                    acked.push(i);
                } else {
                    failed += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            (acked, failed)
        }));
    }

    // One kill in five takes the whole cluster down at once: then the
    // acknowledged writes can only come back from the nodes' disks.
    let (mut leader_kills, mut cluster_kills) = (0, 0);
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(100 + rng.below(400))).await;
        let victims: Vec<u64> = if rng.below(5) == 0 {
            cluster_kills += 1;
            vec![1, 2, 3]
        } else {
            vec![1 + rng.below(3)]
        };
        for &v in &victims {
            if c.metrics(v).await.is_some_and(|m| m["state"] == "Leader") {
                leader_kills += 1;
            }
            c.procs[v as usize - 1].kill();
        }
        tokio::time::sleep(Duration::from_millis(rng.below(300))).await;
        for &v in &victims {
            c.procs[v as usize - 1].start();
        }
        for &v in &victims {
            c.wait_up(v).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    let mut failed = 0;
    for w in writers {
        let (a, f) = w.await.expect("writer");
        acked.extend(a);
        failed += f;
    }
    let mut incrs = Vec::new();
    for w in counters {
        let (key, n, f, bad) = w.await.expect("counter writer");
        assert!(
            bad.is_empty(),
            "an increment applied twice or lost: {bad:?}"
        );
        failed += f;
        incrs.push((key, n));
    }
    assert!(
        acked.len() > 100,
        "only {} writes acknowledged",
        acked.len()
    );

    // Every node catches up to the leader's last applied entry...
    let leader = c.leader(1).await;
    let (s, r) = c.put(leader, "final", "x").await;
    assert_eq!(s, 200, "{r}");
    let target = r["log_id"]["index"].as_u64().expect("index");
    for i in 1..=3 {
        let t = Instant::now();
        loop {
            let m = c.metrics(i).await.expect("metrics");
            if m["last_applied"]["index"].as_u64() >= Some(target) {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "node {i} behind: {m}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Snapshots were built, persisted and served along the way.
    let mut snapshots = Vec::new();
    for i in 1..=3 {
        let m = c.metrics(i).await.expect("metrics");
        snapshots.push(m["snapshot"]["index"].as_u64());
        let dir = c.procs[i as usize - 1].dir.join("snapshots");
        let files = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        if target > 1000 {
            assert!(files > 0, "node {i}: no persisted snapshot in {dir:?}");
        }
    }
    // ... and holds every acknowledged write.
    for i in 1..=3 {
        for &k in &acked {
            let (s, r) = c.read(i, &format!("w{k}"), "stale").await;
            assert_eq!(s, 200, "{r}");
            assert_eq!(
                r["value"],
                format!("v{k}"),
                "node {i} lost acknowledged write w{k}"
            );
        }
        for (key, n) in &incrs {
            let (s, r) = c.read(i, key, "stale").await;
            assert_eq!(s, 200, "{r}");
            assert_eq!(
                r["value"],
                n.to_string(),
                "node {i}: {key} after {n} increments"
            );
        }
    }
    eprintln!(
        "crash test: {kills} kills ({cluster_kills} of all 3 nodes at once, {leader_kills} \
         leaders killed), {} puts acknowledged, increments {incrs:?} each applied once, \
         {failed} attempts failed or unknown, all present on 3 nodes; last entry {target}, \
         snapshots at {snapshots:?}; {:?}",
        acked.len(),
        t0.elapsed()
    );
    for p in &mut c.procs {
        p.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_keeps_strangers_out() {
    let c = Cluster::start_with_token("token", 3, &[], Some("s3cret")).await;
    let leader = c.init().await;
    let follower = (1..=3).find(|&i| i != leader).expect("a follower");
    // The nodes talk to each other (elections, forwarding) with the token.
    let (s, r) = c.put(follower, "k", "v").await;
    assert_eq!(s, 200, "{r}");
    for mode in ["linearizable", "read_index"] {
        let (s, r) = c.read(follower, "k", mode).await;
        assert_eq!((s, &r["value"]), (200, &json!("v")), "{mode}: {r}");
    }
    // Without it, or with a wrong one, every endpoint answers 401.
    let stranger = reqwest::Client::new();
    for (path, token) in [
        ("/raft/vote", None),
        ("/raft/append", Some("s3creT")),
        ("/raft/snapshot", Some("")),
        ("/write", None),
        ("/init-peers", Some("s3cret0")),
    ] {
        let mut req = stranger.post(c.url(follower, path)).body("{}");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("answer");
        assert_eq!(r.status().as_u16(), 401, "{path}");
    }
    let r = stranger
        .get(c.url(leader, "/read?key=k&mode=stale"))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 401);
}
