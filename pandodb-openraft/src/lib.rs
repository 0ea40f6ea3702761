//! pandodb as the replicated state machine of [openraft](https://docs.rs/openraft/0.9)
//! (0.9, storage v2).
//!
//! Raft agrees on a log; every replica applies the committed entries to its
//! own [`pandodb::Db`] through a [`PandoStateMachine`]; reads are served
//! from each replica's local lock-free snapshots (`db.read()`); a lagging or
//! new replica is brought up to date by installing a pandodb snapshot.
//!
//! - **Apply.** Each committed entry is applied as exactly one pandodb write
//!   transaction (one commit, so one revision): the application's
//!   [`Apply::apply`] runs for a normal entry, and the adapter writes the
//!   entry's log id (and, for a membership entry, the membership) into a
//!   meta table registered in the application's schema with
//!   [`register_meta`]. Revision *n* of a replica is therefore the state
//!   after the *n*-th applied entry, on every replica, however openraft
//!   batches the entries; and the last applied log id and the membership
//!   live in the database itself, so they are part of every snapshot.
//!   Re-applying an index at or below the last applied one is a no-op.
//! - **Snapshots.** [`RaftStateMachine::get_snapshot_builder`] takes an
//!   O(1) frozen read view; the builder streams pandodb's snapshot format
//!   from it on a blocking thread while apply goes on. Installing a snapshot
//!   replaces the whole database atomically ([`pandodb::Db::install_snapshot`]),
//!   and the last snapshot built or installed is served to followers.
//! - **Determinism.** Replicas that apply the same log produce byte-identical
//!   snapshots, provided the application's apply function is deterministic:
//!   see `docs/RAFT.md` for the rules.
//!
//! [`DurableLogStore`] is a durable [`RaftLogStorage`] (a pandodb database
//! directory in `Durability::Sync`: one fdatasync per appended batch).
//! [`MemLogStore`] (an in-memory [`RaftLogStorage`]) and [`Router`] (an
//! in-process network that can cut nodes off) are for tests and examples.
//! With the feature `http`, [`HttpNetwork`] is a network over HTTP and
//! [`raft_routes`] serves a node's Raft and client endpoints; the
//! `raft_node` binary runs one node as a process (see `docs/RAFT.md`).
//!
//! ```
//! use pandodb::{Db, Indexer, Schema, WriteTxn};
//! use pandodb_openraft::{Applied, PandoStateMachine, register_meta};
//!
//! #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
//! struct Put { key: String, value: String }
//!
//! openraft::declare_raft_types!(
//!     Config: D = Put, R = bool, SnapshotData = std::io::Cursor<Vec<u8>>
//! );
//!
//! let mut schema = Schema::builder();
//! let meta = register_meta::<Config>(&mut schema)?;
//! let mut t = schema.table::<Put>("kv");
//! t.primary("key", Indexer::string(|p: &Put| p.key.as_str()));
//! t.serde();
//! let kv = schema.add(t)?;
//! let db = Db::new(schema.build()?);
//!
//! let apply = move |w: &mut WriteTxn, cmd: &Put| match w.insert(&kv, cmd.clone()) {
//!     Ok(_) => Applied::Commit(true),
//!     Err(_) => Applied::Rollback(false),
//! };
//! let sm = PandoStateMachine::<Config, _>::new(db.clone(), meta, apply)?;
//! // Hand `sm` to `openraft::Raft::new(..)` together with a log store.
//! # drop(sm);
//! # Ok::<(), pandodb::Error>(())
//! ```
//!
//! [`RaftStateMachine::get_snapshot_builder`]: openraft::storage::RaftStateMachine::get_snapshot_builder
//! [`RaftLogStorage`]: openraft::storage::RaftLogStorage

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod dedup;
mod durable_log;
mod log_store;
mod meta;
#[cfg(feature = "http")]
pub mod net;
mod purge_guard;
mod router;
#[cfg(feature = "http")]
mod server;
mod snapshot_dir;
mod state_machine;

pub use dedup::{ClientRow, DEDUP_TABLE, Dedup, DedupTable, Idempotent, RequestId, register_dedup};
pub use durable_log::{DurableLogStore, PURGE_PATIENCE};
pub use log_store::MemLogStore;
pub use meta::{META_TABLE, MetaTable, RaftMeta, register_meta};
#[cfg(feature = "http")]
pub use net::{HttpNetwork, HttpPeer, HttpTypeConfig};
pub use purge_guard::PurgeGuard;
pub use router::{NodeNetwork, Router, RouterClient};
#[cfg(feature = "http")]
pub use server::{
    AddLearner, ApiError, FORWARDED, HttpNode, ReadMode, ReadResponse, Reader, raft_routes,
    require_token,
};
pub use state_machine::{Applied, Apply, PandoSnapshotBuilder, PandoStateMachine};
