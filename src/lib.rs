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
//!   lower bounds, counts — on any index — and [`Query::select`]:
//!   intersections, unions and set matches across the indexes of a table
//!   ([`Filter`]), planned from the conditions' counts.
//! - [`tree::Tree`] is the persistent adaptive radix tree underneath, usable
//!   on its own.
//!
//! See `examples/quickstart.rs` and `docs/ARCHITECTURE.md`.

#![warn(missing_docs)]

#[cfg(feature = "cli")]
pub mod cli;
mod commit;
mod db;
mod error;
mod feed;
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod fuzzing;
mod index;
mod persist;
mod root;
mod schema;
mod stats;
pub(crate) mod storage;
mod sync;
mod table;
pub mod tree;
mod txn;
mod watch;

pub use db::{Db, Options, TableRef};
pub use error::{Error, Result};
pub use feed::{Batch, Retention, Subscription, SubscriptionStream};
pub use index::key::{Encode, Uuid, UuidPrefix};
pub use index::{Indexer, KeySink, StringMap};
pub use persist::{Durability, SnapshotInfo};
pub use schema::{Index, Schema, SchemaBuilder, Table, TableBuilder};
pub use stats::{Histogram, Stats};
pub use table::{Change, ChangeKind, Versioned};
pub use txn::{
    Commit, Filter, Query, ReadTxn, RefIter, RowIter, Selection, SetMatch, VersionedIter,
    VersionedQuery, VersionedRows, WatchStream, WriteTxn,
};
pub use watch::{Watch, WatchSet};

/// `#[derive(Table)]` (feature `derive`): declares a table and its indexes
/// from a struct's attributes and generates a struct of its typed handles.
/// The derive macro shares the name of the [`Table`] handle type (macros
/// have their own namespace), so `use pandodb::Table;` imports both. See
/// the `pandodb-derive` crate for the attributes.
#[cfg(feature = "derive")]
pub use pandodb_derive::Table;
