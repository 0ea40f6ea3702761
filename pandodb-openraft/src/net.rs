//! [`HttpNetwork`]: openraft's network over HTTP (feature `http`), the
//! client side of the Raft endpoints that [`raft_routes`](crate::raft_routes)
//! serves.
//!
//! Append-entries and vote travel as JSON. A snapshot travels as one
//! streaming request body: a 4-byte big-endian length, the JSON of the
//! vote and the snapshot's metadata, then the snapshot's bytes in
//! [`SNAPSHOT_CHUNK`]-sized chunks (slices of the one buffer the state
//! machine handed over, not copies). The receiver writes each chunk into
//! the snapshot data as it arrives.

use std::future::Future;
use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Unreachable,
};
use openraft::impls::OneshotResponder;
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Entry, OptionalSend, RaftTypeConfig, Snapshot, TokioRuntime, Vote};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The size of the chunks a snapshot is streamed in.
pub const SNAPSHOT_CHUNK: usize = 1 << 20;

/// The longest a snapshot transfer may take before it is abandoned.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(600);

/// The type configs the HTTP transport and endpoints work with: `u64` node
/// ids, [`BasicNode`] (its `addr` is the node's `host:port`), openraft's
/// [`Entry`], in-memory snapshot data (as [`PandoStateMachine`] uses),
/// Tokio and openraft's oneshot responder. Implemented for every such
/// config.
///
/// [`PandoStateMachine`]: crate::PandoStateMachine
pub trait HttpTypeConfig:
    RaftTypeConfig<
        NodeId = u64,
        Node = BasicNode,
        Entry = Entry<Self>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = TokioRuntime,
        Responder = OneshotResponder<Self>,
    >
{
}

impl<C> HttpTypeConfig for C where
    C: RaftTypeConfig<
            NodeId = u64,
            Node = BasicNode,
            Entry = Entry<C>,
            SnapshotData = Cursor<Vec<u8>>,
            AsyncRuntime = TokioRuntime,
            Responder = OneshotResponder<C>,
        >
{
}

/// The header of a streamed snapshot: what `install_full_snapshot` needs
/// besides the data.
#[derive(Serialize, serde::Deserialize)]
#[serde(bound = "")]
pub(crate) struct SnapshotHeader<C: RaftTypeConfig> {
    pub(crate) vote: Vote<C::NodeId>,
    pub(crate) meta: openraft::SnapshotMeta<C::NodeId, C::Node>,
}

/// The [`RaftNetworkFactory`] over HTTP: one shared connection pool for
/// every peer. Clones share the pool.
#[derive(Clone, Debug)]
pub struct HttpNetwork {
    client: reqwest::Client,
    token: Option<Arc<str>>,
}

impl Default for HttpNetwork {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpNetwork {
    /// A network with its own connection pool.
    pub fn new() -> Self {
        HttpNetwork {
            client: http_client(),
            token: None,
        }
    }

    /// Sends `token` as `Authorization: Bearer <token>` with every RPC, for
    /// peers whose endpoints require it ([`HttpNode::with_token`]).
    ///
    /// [`HttpNode::with_token`]: crate::HttpNode::with_token
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into().into());
        self
    }
}

/// Adds the bearer token, if any, to a request.
pub(crate) fn authorize(
    req: reqwest::RequestBuilder,
    token: Option<&str>,
) -> reqwest::RequestBuilder {
    match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    }
}

/// The plain-HTTP client the transport and the forwarding endpoints use.
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .build()
        .unwrap_or_default()
}

impl<C: HttpTypeConfig> RaftNetworkFactory<C> for HttpNetwork {
    type Network = HttpPeer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> HttpPeer {
        HttpPeer {
            client: self.client.clone(),
            token: self.token.clone(),
            target,
            base: format!("http://{}", node.addr),
        }
    }
}

/// The [`RaftNetwork`] client from this node to one peer.
#[derive(Clone, Debug)]
pub struct HttpPeer {
    client: reqwest::Client,
    token: Option<Arc<str>>,
    target: u64,
    base: String,
}

/// Why a request did not get an answer: unreachable (no connection) or a
/// network failure after the request was sent (or a garbled answer).
fn transport_err(e: reqwest::Error) -> Result<NetworkError, Unreachable> {
    if e.is_connect() {
        Err(Unreachable::new(&e))
    } else {
        Ok(NetworkError::new(&e))
    }
}

impl HttpPeer {
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        ttl: Duration,
    ) -> Result<Resp, RPCError<u64, BasicNode, RaftError<u64, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let to_rpc = |e: reqwest::Error| match transport_err(e) {
            Ok(n) => RPCError::Network(n),
            Err(u) => RPCError::Unreachable(u),
        };
        let post = self.client.post(format!("{}{path}", self.base));
        let resp = authorize(post, self.token.as_deref())
            .timeout(ttl)
            .json(req)
            .send()
            .await
            .map_err(to_rpc)?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            let e = std::io::Error::other(format!("{path}: HTTP {status}: {body}"));
            return Err(RPCError::Network(NetworkError::new(&e)));
        }
        let res: Result<Resp, RaftError<u64, E>> = resp.json().await.map_err(to_rpc)?;
        res.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl<C: HttpTypeConfig> RaftNetwork<C> for HttpPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call("/raft/append", &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call("/raft/vote", &rpc, option.hard_ttl()).await
    }

    /// Not used: [`full_snapshot`](Self::full_snapshot) streams snapshots.
    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<C>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        let e = std::io::Error::other("chunked install_snapshot is not used: see full_snapshot");
        Err(RPCError::Network(NetworkError::new(&e)))
    }

    /// Streams the snapshot as one request body in [`SNAPSHOT_CHUNK`]
    /// chunks; gives up when replication is closed (`cancel`).
    async fn full_snapshot(
        &mut self,
        vote: Vote<u64>,
        snapshot: Snapshot<C>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<u64>, StreamingError<C, Fatal<u64>>> {
        let to_streaming = |e: reqwest::Error| match transport_err(e) {
            Ok(n) => StreamingError::Network(n),
            Err(u) => StreamingError::Unreachable(u),
        };
        let header = serde_json::to_vec(&SnapshotHeader::<C> {
            vote,
            meta: snapshot.meta,
        })
        .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        let mut first = (header.len() as u32).to_be_bytes().to_vec();
        first.extend_from_slice(&header);
        let data = Bytes::from(snapshot.snapshot.into_inner());
        let chunks = (0..data.len().div_ceil(SNAPSHOT_CHUNK)).map(move |i| {
            let end = ((i + 1) * SNAPSHOT_CHUNK).min(data.len());
            Ok::<Bytes, std::io::Error>(data.slice(i * SNAPSHOT_CHUNK..end))
        });
        let stream =
            futures_util::stream::iter(std::iter::once(Ok(Bytes::from(first))).chain(chunks));
        let send = async {
            let req = self.client.post(format!("{}/raft/snapshot", self.base));
            let resp = authorize(req, self.token.as_deref())
                .timeout(SNAPSHOT_TIMEOUT)
                .body(reqwest::Body::wrap_stream(stream))
                .send()
                .await
                .map_err(to_streaming)?;
            let status = resp.status();
            if !status.is_success() {
                let body = resp.text().await.unwrap_or_default();
                let e = std::io::Error::other(format!("/raft/snapshot: HTTP {status}: {body}"));
                return Err(StreamingError::Network(NetworkError::new(&e)));
            }
            let res: Result<SnapshotResponse<u64>, Fatal<u64>> =
                resp.json().await.map_err(to_streaming)?;
            res.map_err(|e| StreamingError::RemoteError(RemoteError::new(self.target, e)))
        };
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            res = send => res,
        }
    }
}
