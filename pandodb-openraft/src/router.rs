//! [`Router`]: an in-process Raft network for tests and examples, able to
//! cut a node off.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::error::{
    Fatal, InstallSnapshotError, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{OptionalSend, Raft, RaftTypeConfig, Snapshot, Vote};

struct Inner<C: RaftTypeConfig> {
    nodes: BTreeMap<C::NodeId, Raft<C>>,
    cut: BTreeSet<C::NodeId>,
}

/// Delivers Raft RPCs between the nodes of one process by calling the
/// target's [`Raft`] directly. A node that is cut off (or not registered)
/// neither sends nor receives: its peers see it as unreachable. Clones
/// share the same routes.
pub struct Router<C: RaftTypeConfig> {
    inner: Arc<Mutex<Inner<C>>>,
}

impl<C: RaftTypeConfig> Clone for Router<C> {
    fn clone(&self) -> Self {
        Router {
            inner: self.inner.clone(),
        }
    }
}

impl<C: RaftTypeConfig> Default for Router<C> {
    fn default() -> Self {
        Router {
            inner: Arc::new(Mutex::new(Inner {
                nodes: BTreeMap::new(),
                cut: BTreeSet::new(),
            })),
        }
    }
}

impl<C: RaftTypeConfig> Router<C> {
    /// A router with no nodes.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner<C>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The network factory to give the `Raft` of node `id`.
    pub fn network(&self, id: C::NodeId) -> NodeNetwork<C> {
        NodeNetwork {
            router: self.clone(),
            source: id,
        }
    }

    /// Routes RPCs for node `id` to `raft` (replacing an earlier one).
    pub fn add(&self, id: C::NodeId, raft: Raft<C>) {
        self.lock().nodes.insert(id, raft);
    }

    /// Stops routing to node `id`; returns its `Raft`.
    pub fn remove(&self, id: C::NodeId) -> Option<Raft<C>> {
        self.lock().nodes.remove(&id)
    }

    /// Cuts node `id` off: no RPC reaches it or leaves it.
    pub fn cut(&self, id: C::NodeId) {
        self.lock().cut.insert(id);
    }

    /// Connects node `id` again.
    pub fn heal(&self, id: C::NodeId) {
        self.lock().cut.remove(&id);
    }

    /// The `Raft` of node `id`, if it is registered.
    pub fn raft(&self, id: C::NodeId) -> Option<Raft<C>> {
        self.lock().nodes.get(&id).cloned()
    }

    /// The target's `Raft` if an RPC from `source` can reach it.
    fn route(&self, source: C::NodeId, target: C::NodeId) -> Result<Raft<C>, Unreachable> {
        let inner = self.lock();
        let why = if inner.cut.contains(&source) {
            format!("node {source} is cut off")
        } else if inner.cut.contains(&target) {
            format!("node {target} is cut off")
        } else if let Some(r) = inner.nodes.get(&target) {
            return Ok(r.clone());
        } else {
            format!("node {target} is down")
        };
        Err(Unreachable::new(&std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            why,
        )))
    }
}

/// The [`RaftNetworkFactory`] of one node: creates its clients.
pub struct NodeNetwork<C: RaftTypeConfig> {
    router: Router<C>,
    source: C::NodeId,
}

impl<C: RaftTypeConfig> RaftNetworkFactory<C> for NodeNetwork<C> {
    type Network = RouterClient<C>;

    async fn new_client(&mut self, target: C::NodeId, _node: &C::Node) -> Self::Network {
        RouterClient {
            router: self.router.clone(),
            source: self.source.clone(),
            target,
        }
    }
}

/// The [`RaftNetwork`] client from one node to another.
pub struct RouterClient<C: RaftTypeConfig> {
    router: Router<C>,
    source: C::NodeId,
    target: C::NodeId,
}

impl<C: RaftTypeConfig> RaftNetwork<C> for RouterClient<C> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<C::NodeId>, RPCError<C::NodeId, C::Node, RaftError<C::NodeId>>>
    {
        let raft = self
            .router
            .route(self.source.clone(), self.target.clone())?;
        raft.append_entries(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target.clone(), e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<C>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<C::NodeId>,
        RPCError<C::NodeId, C::Node, RaftError<C::NodeId, InstallSnapshotError>>,
    > {
        let raft = self
            .router
            .route(self.source.clone(), self.target.clone())?;
        raft.install_snapshot(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target.clone(), e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<C::NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<C::NodeId>, RPCError<C::NodeId, C::Node, RaftError<C::NodeId>>> {
        let raft = self
            .router
            .route(self.source.clone(), self.target.clone())?;
        raft.vote(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target.clone(), e)))
    }

    /// Hands the whole snapshot to the target in one call (no chunking).
    async fn full_snapshot(
        &mut self,
        vote: Vote<C::NodeId>,
        snapshot: Snapshot<C>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<C::NodeId>, StreamingError<C, Fatal<C::NodeId>>> {
        let raft = self
            .router
            .route(self.source.clone(), self.target.clone())?;
        raft.install_full_snapshot(vote, snapshot)
            .await
            .map_err(|e| StreamingError::RemoteError(RemoteError::new(self.target.clone(), e)))
    }
}
