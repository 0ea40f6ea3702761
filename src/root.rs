//! One immutable version of the whole database.

use crate::schema::Schema;
use crate::table::AnyState;
use crate::watch::TableWatches;
use std::sync::Arc;

/// One immutable version of the whole database: per table, one tree per
/// index, and the revision of the commit that made it.
pub(crate) struct Root {
    pub(crate) revision: u64,
    pub(crate) tables: Box<[AnyState]>,
    /// The database's watch registries, reachable from every read
    /// transaction without touching the database handle.
    pub(crate) watches: Arc<[TableWatches]>,
    /// The schema (for snapshots taken from a read transaction).
    pub(crate) schema: Schema,
}
