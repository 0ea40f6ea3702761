//! # pandodb
//!
//! An embedded, in-memory, MVCC database engine built on persistent
//! adaptive radix trees. Every committed version shares structure with the
//! last; readers hold a root and are never blocked.
//!
//! - [`Schema`] declares tables of typed objects with a primary index and
//!   any number of secondary indexes built from typed closures ([`Indexer`]).
//! - [`Db::read`] gives a lock-free [`ReadTxn`]: one consistent version.
//! - [`Db::write`] gives a [`WriteTxn`] that locks the tables it names;
//!   [`WriteTxn::commit`] publishes all of its writes at once.
//! - Both implement [`Query`]: get, first/last, iterate, prefix, ranges,
//!   lower bounds, counts — on any index.
//! - [`tree::Tree`] is the persistent adaptive radix tree underneath, usable
//!   on its own.
//!
//! See `examples/quickstart.rs` and `docs/ARCHITECTURE.md`.

#![warn(missing_docs)]

mod db;
mod error;
pub mod index;
mod schema;
mod sync;
pub mod tree;
mod txn;

pub use db::{Db, TableRef};
pub use error::{Error, Result};
pub use index::key::{Encode, Uuid, UuidPrefix};
pub use index::{Indexer, KeySink, StringMap};
pub use schema::{Index, Schema, SchemaBuilder, Table, TableBuilder};
pub use txn::{Change, Commit, Query, ReadTxn, RefIter, RowIter, WriteTxn};
