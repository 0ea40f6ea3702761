//! Reads at a past revision.

use super::Db;
use crate::error::Result;
use crate::txn::ReadTxn;

impl Db {
    /// A read transaction at exactly `revision`: it behaves as
    /// [`read`](Db::read) did when that revision was the latest — every
    /// query form, and watches (a watch taken there fires for the first
    /// later commit that changes what it covers; see [`ReadTxn`]).
    ///
    /// Works for the current revision and the
    /// [`Options::read_history`](crate::Options) revisions before it
    /// (default none): every published version shares its unchanged nodes
    /// with the next, so a kept revision's memory is only what later
    /// commits replaced (its CPU cost is on the write path: see
    /// [`Options::read_history`](crate::Options)). An older revision fails with
    /// [`Error::Compacted`](crate::Error) naming the oldest one kept; one
    /// no commit has reached with
    /// [`Error::RevisionNotReached`](crate::Error) (a commit already made
    /// but still syncing in [`Durability::Sync`](crate::Durability) is
    /// waited for, as [`read_at_least`](Db::read_at_least) does).
    ///
    /// A durable database rebuilds the window on [`Db::open`] from the log
    /// records it replays: after a restart it reaches back to the newest
    /// snapshot's revision at most (revisions a checkpoint covers are not
    /// replayed). Installing a snapshot starts the window over.
    ///
    /// ```
    /// # use pandodb::{Db, Error, Indexer, Options, Query, Schema};
    /// # struct Person { id: String, age: i64 }
    /// # let mut schema = Schema::builder();
    /// # let mut t = schema.table::<Person>("person");
    /// # let by_id = t.primary("id", Indexer::string(|p: &Person| p.id.as_str()));
    /// # let people = schema.add(t)?;
    /// let db = Db::with_options(schema.build()?, Options::default().read_history(2));
    /// for age in 40..44 {
    ///     let mut w = db.write(&[&people]);
    ///     w.insert(&people, Person { id: "ann".into(), age })?;
    ///     w.commit()?; // revisions 1 to 4
    /// }
    /// assert_eq!(db.read_at(3)?.get(&by_id, "ann")?.unwrap().age, 42);
    /// assert_eq!(db.read_at(2)?.revision(), 2);
    /// assert_eq!(db.read_at(1).unwrap_err(), Error::Compacted { oldest: 2 });
    /// assert!(matches!(db.read_at(5), Err(Error::RevisionNotReached { .. })));
    /// # Ok::<(), pandodb::Error>(())
    /// ```
    pub fn read_at(&self, revision: u64) -> Result<ReadTxn> {
        Ok(ReadTxn::new(
            self.inner.load_at(revision)?,
            self.inner.schema.id,
        ))
    }
}
