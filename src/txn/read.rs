//! Read transactions: one frozen version of the database.

use std::any::Any;
use std::sync::Arc;

use crate::db::Root;

/// A read transaction: a consistent snapshot of one committed version.
///
/// Taking one is lock-free (one atomic load); holding one pins that version
/// and nothing else, so writers are never blocked by it. It is `Send` and
/// `Sync`, and has no write methods. Query it through [`Query`](crate::Query).
///
/// ```
/// # use pandodb::{Db, Indexer, Query, Schema};
/// # struct Person { id: String, age: i64 }
/// # let mut schema = Schema::builder();
/// # let mut t = schema.table::<Person>("person");
/// # let by_id = t.primary("id", Indexer::string(|p: &Person| p.id.as_str()));
/// # let by_age = t.index("age", Indexer::value(|p: &Person| p.age));
/// # let people = schema.add(t)?;
/// # let db = Db::new(schema.build()?);
/// let snapshot = db.read();
/// let mut w = db.write(&[&people]);
/// w.insert(&people, Person { id: "ann".into(), age: 41 })?;
/// w.commit()?;
/// assert_eq!(snapshot.len(&people)?, 0); // frozen at revision 0
/// let r = db.read();
/// std::thread::spawn(move || assert_eq!(r.count(&by_age, &41).unwrap(), 1)).join().unwrap();
/// # let _ = by_id;
/// # Ok::<(), pandodb::Error>(())
/// ```
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
