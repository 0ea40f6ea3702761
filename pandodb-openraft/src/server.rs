//! [`raft_routes`]: the HTTP endpoints of one node (feature `http`): the
//! Raft RPCs that [`HttpNetwork`](crate::HttpNetwork) calls, and the
//! client endpoints (writes forwarded to the leader, reads in three
//! modes, cluster administration, metrics).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use openraft::error::{ClientWriteError, Fatal, ForwardToLeader, RaftError};
use openraft::raft::{AppendEntriesRequest, ClientWriteResponse, VoteRequest};
use openraft::{BasicNode, LogId, Raft, Snapshot};
use pandodb::{Db, ReadTxn};
use serde::{Deserialize, Serialize};

use crate::net::{HttpTypeConfig, SnapshotHeader, authorize, http_client};

/// The header that marks a request forwarded by another node: it is not
/// forwarded again (one hop).
pub const FORWARDED: &str = "x-pandodb-forwarded";

/// The largest JSON body the endpoints accept (append-entries batches).
const MAX_JSON: usize = 64 << 20;
/// The largest snapshot header accepted.
const MAX_SNAPSHOT_HEADER: usize = 1 << 20;
/// How many times a write or read is retried while no leader is known or
/// the known one moved (100 ms apart).
const RETRIES: usize = 50;
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How long a follower's read-index read waits to apply up to the index.
const READ_INDEX_WAIT: Duration = Duration::from_secs(10);

/// Reads the value of `key` from a read transaction, as JSON (the
/// application's part of `GET /read`).
pub type Reader =
    Arc<dyn Fn(&ReadTxn, &str) -> Result<Option<serde_json::Value>, String> + Send + Sync>;

/// How `GET /read` makes its read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadMode {
    /// On the leader, after `ensure_linearizable` (a follower forwards
    /// the read to the leader, one hop).
    #[default]
    Linearizable,
    /// On this node, after asking the leader for its read index (which
    /// confirms its leadership with a quorum) and applying up to it.
    ReadIndex,
    /// On this node's local snapshot, as it is now: may be behind.
    Stale,
}

/// The answer of `GET /read`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadResponse {
    /// The value, `null` when the key is absent.
    pub value: Option<serde_json::Value>,
    /// The revision of the snapshot it was read from.
    pub revision: u64,
    /// The node that served the read.
    pub served_by: u64,
    /// The mode asked for.
    pub mode: ReadMode,
}

/// An error answer: `{"error": .., "leader_id": .., "leader_addr": ..}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApiError {
    /// The HTTP status (not in the body).
    #[serde(skip, default = "internal")]
    pub status: u16,
    /// What went wrong.
    pub error: String,
    /// The leader, when this node knows it and is not it.
    pub leader_id: Option<u64>,
    /// The leader's address.
    pub leader_addr: Option<String>,
}

fn internal() -> u16 {
    500
}

impl ApiError {
    fn new(status: StatusCode, error: impl ToString) -> Self {
        ApiError {
            status: status.as_u16(),
            error: error.to_string(),
            leader_id: None,
            leader_addr: None,
        }
    }

    fn not_leader(f: &ForwardToLeader<u64, BasicNode>) -> Self {
        ApiError {
            status: StatusCode::MISDIRECTED_REQUEST.as_u16(),
            error: "this node is not the leader".into(),
            leader_id: f.leader_id,
            leader_addr: f.leader_node.as_ref().map(|n| n.addr.clone()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self)).into_response()
    }
}

fn from_raft<E: std::fmt::Display>(e: RaftError<u64, E>) -> ApiError {
    match e {
        RaftError::Fatal(f) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, f),
        RaftError::APIError(e) => ApiError::new(StatusCode::BAD_REQUEST, e),
    }
}

/// One node as the endpoints see it.
pub struct HttpNode<C: HttpTypeConfig> {
    /// This node's id.
    pub id: u64,
    /// Its Raft.
    pub raft: Raft<C>,
    /// Its database (reads are local).
    pub db: Db,
    /// Reads a key for `GET /read`.
    pub reader: Reader,
    client: reqwest::Client,
    token: Option<String>,
}

impl<C: HttpTypeConfig> HttpNode<C> {
    /// The endpoints' view of node `id`.
    pub fn new(id: u64, raft: Raft<C>, db: Db, reader: Reader) -> Self {
        HttpNode {
            id,
            raft,
            db,
            reader,
            client: http_client(),
            token: None,
        }
    }

    /// Requires `Authorization: Bearer <token>` on every endpoint (401
    /// otherwise), and sends it with the requests this node forwards to
    /// the leader. Give the same token to every node and to its
    /// [`HttpNetwork::with_token`](crate::HttpNetwork::with_token).
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
}

/// Requires `Authorization: Bearer <token>` on every route of `router`
/// (401 otherwise): for routes an application adds beside
/// [`raft_routes`] (which protects its own with [`HttpNode::with_token`]).
pub fn require_token(router: axum::Router, token: &str) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(
        Arc::<str>::from(token),
        check_token,
    ))
}

/// Answers 401 unless the request carries the node's bearer token
/// (compared in constant time).
async fn check_token(State(token): State<Arc<str>>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let same = given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        next.run(req).await
    } else {
        ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong bearer token").into_response()
    }
}

type Node<C> = State<Arc<HttpNode<C>>>;

/// The node's endpoints (bodies and answers are JSON):
///
/// | endpoint | does |
/// |---|---|
/// | `POST /raft/append`, `/raft/vote` | Raft RPCs ([`HttpNetwork`](crate::HttpNetwork)) |
/// | `POST /raft/snapshot` | a streamed snapshot (see [`crate::net`]'s format) |
/// | `POST /write` | a command (`C::D`); forwarded to the leader (one hop) when this node is not it; answers openraft's `ClientWriteResponse` |
/// | `GET /read?key=K&mode=linearizable\|read_index\|stale` | a [`ReadResponse`] |
/// | `GET /read-index` | the leader's read log id, after confirming its leadership |
/// | `POST /init` | `{"1": {"addr": "127.0.0.1:7001"}, ..}`: initializes the cluster |
/// | `POST /add-learner` | `{"id": 4, "addr": ".."}`: adds a learner; answers once it is within openraft's `replication_lag_threshold` entries of the leader (watch its `/metrics` for the rest) |
/// | `POST /change-membership` | `[1, 2, 3]`: the new voters |
/// | `POST /snapshot` | builds a snapshot now |
/// | `GET /metrics` | openraft's `RaftMetrics` |
///
/// A malformed body or query gets a 4xx answer; errors are an
/// [`ApiError`]. For `/write`: 200 is committed and applied; 421 (only for
/// a forwarded request, or when retries ran out) is "not the leader" and
/// nothing was written (openraft answers `ForwardToLeader` only for an
/// entry it never proposed or truncated); any other error, 504 (the
/// forwarded request's answer was lost) and 503 included, leaves the
/// outcome unknown: a client retrying it must make its command idempotent.
/// Without [`HttpNode::with_token`] there is no authentication: serve it
/// on a trusted network (the node binary binds where it is told, 127.0.0.1
/// in the tests). The token authenticates, it does not encrypt (plain
/// HTTP).
pub fn raft_routes<C: HttpTypeConfig>(node: HttpNode<C>) -> axum::Router
where
    C::D: Clone,
{
    let router = axum::Router::new()
        .route("/raft/append", post(append::<C>))
        .route("/raft/vote", post(vote::<C>))
        .route("/raft/snapshot", post(snapshot::<C>))
        .route("/write", post(write::<C>))
        .route("/read", get(read::<C>))
        .route("/read-index", get(read_index::<C>))
        .route("/init", post(init::<C>))
        .route("/add-learner", post(add_learner::<C>))
        .route("/change-membership", post(change_membership::<C>))
        .route("/snapshot", post(trigger_snapshot::<C>))
        .route("/metrics", get(metrics::<C>));
    let token = node.token.clone();
    let router = router
        .layer(DefaultBodyLimit::max(MAX_JSON))
        .with_state(Arc::new(node));
    match token {
        Some(t) => require_token(router, &t),
        None => router,
    }
}

async fn append<C: HttpTypeConfig>(
    State(n): Node<C>,
    Json(rpc): Json<AppendEntriesRequest<C>>,
) -> impl IntoResponse {
    Json(n.raft.append_entries(rpc).await)
}

async fn vote<C: HttpTypeConfig>(
    State(n): Node<C>,
    Json(rpc): Json<VoteRequest<u64>>,
) -> impl IntoResponse {
    Json(n.raft.vote(rpc).await)
}

/// Receives a streamed snapshot: parses the header, then writes every
/// chunk into the snapshot data as it arrives; installs it at the end.
async fn snapshot<C: HttpTypeConfig>(State(n): Node<C>, body: Body) -> Result<Response, ApiError> {
    let bad = |e: &dyn std::fmt::Display| ApiError::new(StatusCode::BAD_REQUEST, e);
    let mut stream = body.into_data_stream();
    let mut head = Vec::new();
    let mut header: Option<(SnapshotHeader<C>, Box<C::SnapshotData>)> = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| bad(&e))?;
        if let Some((_, data)) = header.as_mut() {
            data.write_all(&chunk).map_err(|e| bad(&e))?;
            continue;
        }
        head.extend_from_slice(&chunk);
        if head.len() < 4 {
            continue;
        }
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if len > MAX_SNAPSHOT_HEADER {
            return Err(bad(&format!("snapshot header of {len} bytes")));
        }
        if head.len() < 4 + len {
            continue;
        }
        let h: SnapshotHeader<C> =
            serde_json::from_slice(&head[4..4 + len]).map_err(|e| bad(&e))?;
        let mut data = n.raft.begin_receiving_snapshot().await.map_err(from_raft)?;
        data.write_all(&head[4 + len..]).map_err(|e| bad(&e))?;
        head = Vec::new();
        header = Some((h, data));
    }
    let Some((h, mut data)) = header else {
        return Err(bad(&"truncated snapshot header"));
    };
    data.set_position(0);
    let res: Result<_, Fatal<u64>> = n
        .raft
        .install_full_snapshot(
            h.vote,
            Snapshot {
                meta: h.meta,
                snapshot: data,
            },
        )
        .await;
    Ok(Json(res).into_response())
}

/// The leader to forward to, from a `ForwardToLeader`: none when this
/// request was itself forwarded (one hop) or no leader is known yet.
fn leader_of(f: &ForwardToLeader<u64, BasicNode>) -> Option<String> {
    f.leader_node.as_ref().map(|n| n.addr.clone())
}

async fn write<C: HttpTypeConfig>(
    State(n): Node<C>,
    headers: HeaderMap,
    Json(cmd): Json<C::D>,
) -> Result<Json<ClientWriteResponse<C>>, ApiError>
where
    C::D: Clone,
{
    let forwarded = headers.contains_key(FORWARDED);
    let mut last = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no leader");
    for _ in 0..RETRIES {
        match n.raft.client_write(cmd.clone()).await {
            Ok(r) => return Ok(Json(r)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                if forwarded {
                    return Err(ApiError::not_leader(&f));
                }
                last = ApiError::not_leader(&f);
                if let Some(addr) = leader_of(&f) {
                    match forward::<C::D, ClientWriteResponse<C>, C>(
                        &n,
                        &addr,
                        "/write",
                        Some(&cmd),
                    )
                    .await
                    {
                        Forwarded::Done(r) => return r.map(Json),
                        Forwarded::Retry(e) => last = e,
                    }
                }
            }
            Err(e) => return Err(from_raft(e)),
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    Err(last)
}

enum Forwarded<T> {
    /// The leader answered (or the request may have reached it): final.
    Done(Result<T, ApiError>),
    /// The request surely did not take effect: try again.
    Retry(ApiError),
}

/// Sends the request to the leader at `addr` (a POST of `body`, or a GET
/// of `path` when there is none), marked as forwarded. A failure to connect or a
/// "not the leader" answer may be retried; anything else is final (a
/// write whose answer was lost may have been applied).
async fn forward<B: Serialize, T: serde::de::DeserializeOwned, C: HttpTypeConfig>(
    n: &HttpNode<C>,
    addr: &str,
    path: &str,
    body: Option<&B>,
) -> Forwarded<T> {
    let url = format!("http://{addr}{path}");
    let req = match body {
        Some(b) => n.client.post(url).json(b),
        None => n.client.get(url),
    };
    let req = authorize(req, n.token.as_deref());
    let resp = match req.header(FORWARDED, n.id.to_string()).send().await {
        Ok(r) => r,
        Err(e) if e.is_connect() => {
            return Forwarded::Retry(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e));
        }
        Err(e) => {
            let msg = format!("forwarded to the leader at {addr}, outcome unknown: {e}");
            return Forwarded::Done(Err(ApiError::new(StatusCode::GATEWAY_TIMEOUT, msg)));
        }
    };
    let status = resp.status();
    if status.is_success() {
        return Forwarded::Done(resp.json().await.map_err(|e| {
            ApiError::new(StatusCode::BAD_GATEWAY, format!("the leader's answer: {e}"))
        }));
    }
    let mut err: ApiError = resp.json().await.unwrap_or_else(|e| {
        ApiError::new(StatusCode::BAD_GATEWAY, format!("the leader's answer: {e}"))
    });
    err.status = status.as_u16();
    if status == StatusCode::MISDIRECTED_REQUEST {
        Forwarded::Retry(err)
    } else {
        Forwarded::Done(Err(err))
    }
}

#[derive(Deserialize)]
struct ReadQuery {
    key: String,
    #[serde(default)]
    mode: ReadMode,
}

async fn read<C: HttpTypeConfig>(
    State(n): Node<C>,
    headers: HeaderMap,
    Query(q): Query<ReadQuery>,
) -> Result<Json<ReadResponse>, ApiError> {
    let forwarded = headers.contains_key(FORWARDED);
    let mut last = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no leader");
    for _ in 0..RETRIES {
        let f = match q.mode {
            ReadMode::Stale => return local_read(&n, &q),
            ReadMode::Linearizable => match n.raft.ensure_linearizable().await {
                Ok(_) => return local_read(&n, &q),
                Err(e) => match e.forward_to_leader().cloned() {
                    Some(f) => f,
                    None => return Err(from_raft(e)),
                },
            },
            ReadMode::ReadIndex => match read_index_of(&n, forwarded).await {
                Ok(Some(index)) => {
                    n.raft
                        .wait(Some(READ_INDEX_WAIT))
                        .applied_index_at_least(Some(index), "read_index")
                        .await
                        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e))?;
                    return local_read(&n, &q);
                }
                Ok(None) => return local_read(&n, &q),
                Err(e) if e.status == StatusCode::MISDIRECTED_REQUEST.as_u16() => {
                    last = e;
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
                Err(e) => return Err(e),
            },
        };
        if forwarded {
            return Err(ApiError::not_leader(&f));
        }
        last = ApiError::not_leader(&f);
        if let Some(addr) = leader_of(&f) {
            let path = format!("/read?key={}&mode=linearizable", urlencode(&q.key));
            match forward::<(), ReadResponse, C>(&n, &addr, &path, None).await {
                Forwarded::Done(r) => return r.map(Json),
                Forwarded::Retry(e) => last = e,
            }
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    Err(last)
}

/// The read index: the leader's own (after confirming its leadership), or
/// asked of the leader by a follower.
async fn read_index_of<C: HttpTypeConfig>(
    n: &HttpNode<C>,
    forwarded: bool,
) -> Result<Option<u64>, ApiError> {
    match n.raft.get_read_log_id().await {
        Ok((read, _)) => Ok(read.map(|l| l.index)),
        Err(e) => match e.forward_to_leader().cloned() {
            Some(f) if !forwarded => match leader_of(&f) {
                Some(addr) => {
                    match forward::<(), Option<LogId<u64>>, C>(n, &addr, "/read-index", None).await
                    {
                        Forwarded::Done(r) => r.map(|l| l.map(|l| l.index)),
                        Forwarded::Retry(e) => Err(e),
                    }
                }
                None => Err(ApiError::not_leader(&f)),
            },
            Some(f) => Err(ApiError::not_leader(&f)),
            None => Err(from_raft(e)),
        },
    }
}

fn local_read<C: HttpTypeConfig>(
    n: &HttpNode<C>,
    q: &ReadQuery,
) -> Result<Json<ReadResponse>, ApiError> {
    let view = n.db.read();
    let value = (n.reader)(&view, &q.key).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    Ok(Json(ReadResponse {
        value,
        revision: view.revision(),
        served_by: n.id,
        mode: q.mode,
    }))
}

fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn read_index<C: HttpTypeConfig>(
    State(n): Node<C>,
) -> Result<Json<Option<LogId<u64>>>, ApiError> {
    match n.raft.get_read_log_id().await {
        Ok((read, _)) => Ok(Json(read)),
        Err(e) => Err(match e.forward_to_leader() {
            Some(f) => ApiError::not_leader(f),
            None => from_raft(e),
        }),
    }
}

async fn init<C: HttpTypeConfig>(
    State(n): Node<C>,
    Json(members): Json<BTreeMap<u64, BasicNode>>,
) -> Result<Json<()>, ApiError> {
    n.raft.initialize(members).await.map_err(from_raft)?;
    Ok(Json(()))
}

/// The body of `POST /add-learner`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AddLearner {
    /// The learner's id.
    pub id: u64,
    /// Its address (`host:port`).
    pub addr: String,
}

async fn add_learner<C: HttpTypeConfig>(
    State(n): Node<C>,
    Json(l): Json<AddLearner>,
) -> Result<Json<ClientWriteResponse<C>>, ApiError> {
    let node = BasicNode { addr: l.addr };
    let r = n.raft.add_learner(l.id, node, true).await;
    r.map(Json).map_err(|e| match e.forward_to_leader() {
        Some(f) => ApiError::not_leader(f),
        None => from_raft(e),
    })
}

async fn change_membership<C: HttpTypeConfig>(
    State(n): Node<C>,
    Json(voters): Json<BTreeSet<u64>>,
) -> Result<Json<ClientWriteResponse<C>>, ApiError> {
    let r = n.raft.change_membership(voters, false).await;
    r.map(Json).map_err(|e| match e.forward_to_leader() {
        Some(f) => ApiError::not_leader(f),
        None => from_raft(e),
    })
}

async fn trigger_snapshot<C: HttpTypeConfig>(State(n): Node<C>) -> Result<Json<()>, ApiError> {
    n.raft
        .trigger()
        .snapshot()
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e))?;
    Ok(Json(()))
}

async fn metrics<C: HttpTypeConfig>(State(n): Node<C>) -> impl IntoResponse {
    let m = n.raft.metrics().borrow().clone();
    Json(m)
}
