//! Read transactions: one frozen version of the database.

use std::any::Any;
use std::sync::Arc;

use crate::db::Root;

/// A read transaction: a consistent snapshot of one committed version.
///
/// Taking one is lock-free (one atomic load); holding one pins that version
/// and nothing else, so writers are never blocked by it. It is `Send` and
/// `Sync`, and has no write methods. Query it through [`Query`](crate::Query).
#[derive(Clone)]
pub struct ReadTxn {
    root: Arc<Root>,
    schema: u64,
}

impl ReadTxn {
    pub(crate) fn new(root: Arc<Root>, schema: u64) -> Self {
        ReadTxn { root, schema }
    }

    /// The revision of the commit this snapshot shows (0: the empty
    /// database).
    pub fn revision(&self) -> u64 {
        self.root.revision
    }
}

impl super::sealed::Source for ReadTxn {
    #[inline]
    fn state(&self, schema: u64, id: usize) -> Option<&(dyn Any + Send + Sync)> {
        if schema != self.schema {
            return None;
        }
        self.root.tables.get(id).map(|s| &**s)
    }
}

impl super::Query for ReadTxn {}

impl std::fmt::Debug for ReadTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTxn")
            .field("revision", &self.root.revision)
            .finish()
    }
}
