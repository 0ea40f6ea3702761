//! The meta table: the state machine's own bookkeeping (last applied log
//! id, membership), stored in the application's database so that it is in
//! every snapshot and survives a restore.

use openraft::{LogId, RaftTypeConfig, StoredMembership};
use pandodb::{Index, Indexer, Query, SchemaBuilder, Table, Versioned};
use serde::{Deserialize, Serialize};

/// The name of the meta table in the application's schema.
pub const META_TABLE: &str = "__raft_meta";

/// The primary key of the meta table's only row.
const META_KEY: &str = "raft";

/// The state machine's record of what it has applied: the meta table's only
/// row, rewritten by every applied entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct RaftMeta<C: RaftTypeConfig> {
    /// Always `"raft"` (the primary key).
    pub key: String,
    /// The log id of the last applied entry.
    pub last_applied: Option<LogId<C::NodeId>>,
    /// The last applied membership and the log id of its entry.
    pub membership: StoredMembership<C::NodeId, C::Node>,
}

impl<C: RaftTypeConfig> Default for RaftMeta<C> {
    fn default() -> Self {
        RaftMeta {
            key: META_KEY.to_string(),
            last_applied: None,
            membership: StoredMembership::default(),
        }
    }
}

/// The handle of the meta table, returned by [`register_meta`].
pub struct MetaTable<C: RaftTypeConfig> {
    pub(crate) table: Table<RaftMeta<C>>,
    pub(crate) by_key: Index<RaftMeta<C>, str>,
}

impl<C: RaftTypeConfig> Clone for MetaTable<C> {
    fn clone(&self) -> Self {
        MetaTable {
            table: self.table.clone(),
            by_key: self.by_key.clone(),
        }
    }
}

impl<C: RaftTypeConfig> MetaTable<C> {
    /// The table handle (to name it in a write transaction or a watch).
    pub fn table(&self) -> &Table<RaftMeta<C>> {
        &self.table
    }

    /// Reads the meta row seen by `q` (a read or write transaction) and
    /// the revision that last wrote it (0 when no entry was applied yet).
    pub fn read(&self, q: &impl Query) -> pandodb::Result<(RaftMeta<C>, u64)> {
        Ok(match q.get_versioned(&self.by_key, META_KEY)? {
            Some(Versioned {
                object, modified, ..
            }) => ((*object).clone(), modified),
            None => (RaftMeta::default(), 0),
        })
    }
}

/// Registers the meta table (named [`META_TABLE`]) in the application's
/// schema. Call it once while building the schema of the database that the
/// [`PandoStateMachine`](crate::PandoStateMachine) will drive, and build the
/// same schema, in the same order, on every replica.
pub fn register_meta<C: RaftTypeConfig>(
    schema: &mut SchemaBuilder,
) -> pandodb::Result<MetaTable<C>> {
    let mut t = schema.table::<RaftMeta<C>>(META_TABLE);
    let by_key = t.primary("key", Indexer::string(|m: &RaftMeta<C>| m.key.as_str()));
    t.serde();
    let table = schema.add(t)?;
    Ok(MetaTable { table, by_key })
}
