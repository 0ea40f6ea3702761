//! The async side of the database handle, and closing it: `write_async`
//! (the writer locks taken as a future), `watch_stream` (a query followed
//! as a `Stream`), `close`.

use std::future::Future;
use std::sync::Arc;

use crate::commit::DbInner;
use crate::error::Result;
use crate::txn::{ReadTxn, WatchStream, WriteTxn};
use crate::watch::Watch;

use super::{Db, TableRef};

impl Db {
    /// [`Db::write`] as a future: waits for the writer locks without
    /// blocking a thread (on any runtime), in the same order as `write`,
    /// so async and blocking writers of overlapping tables mix without
    /// deadlock. Dropping the future before it completes releases the
    /// locks it took. The future owns what it needs (`'static`, `Send`).
    ///
    /// A task holding a write transaction across an `.await` keeps its
    /// tables locked meanwhile: other writers of them wait (async ones
    /// without blocking their thread).
    ///
    /// ```
    /// # use pandodb::{Db, Indexer, Query, Schema};
    /// # struct Person { id: String }
    /// # let mut schema = Schema::builder();
    /// # let mut t = schema.table::<Person>("person");
    /// # let by_id = t.primary("id", Indexer::string(|p: &Person| p.id.as_str()));
    /// # let people = schema.add(t)?;
    /// # let db = Db::new(schema.build()?);
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v } }
    /// # }
    /// let written = async {
    ///     let mut w = db.write_async(&[&people]).await;
    ///     w.insert(&people, Person { id: "ann".into() })?;
    ///     w.commit()
    /// };
    /// assert_eq!(block_on(written)?.revision, 1);
    /// # let _ = by_id;
    /// # Ok::<(), pandodb::Error>(())
    /// ```
    pub fn write_async(
        &self,
        tables: &[&dyn TableRef],
    ) -> impl Future<Output = WriteTxn> + Send + 'static {
        let ids = self.lock_ids(tables);
        let mut held = Held {
            db: self.inner.clone(),
            locked: Vec::with_capacity(ids.len()),
        };
        async move {
            for id in ids {
                held.db.locks[id].acquire_async().await;
                held.locked.push(id);
            }
            let locked = std::mem::take(&mut held.locked);
            WriteTxn::begin_locked(held.db.clone(), locked)
        }
    }

    /// Follows a query as a [`Stream`](futures_core::Stream): yields the
    /// query's result at once, then again each time it may have changed
    /// (after the watch it returned fires, on a fresh read; several
    /// commits in between give one item, of the latest version).
    ///
    /// `query` runs on a [`ReadTxn`] and returns its result with a watch,
    /// as the `*_watch` queries do. A query error is yielded and ends the
    /// stream. The stream does not keep the database open: once it is
    /// closed ([`Db::close`]) or its last handle dropped, the stream yields
    /// [`Error::Closed`](crate::Error::Closed) and ends.
    ///
    /// ```
    /// # use pandodb::{Db, Indexer, Query, ReadTxn, Schema};
    /// # struct Svc { name: String }
    /// # let mut schema = Schema::builder();
    /// # let mut t = schema.table::<Svc>("svc");
    /// # let by_name = t.primary("name", Indexer::string(|s: &Svc| s.name.as_str()));
    /// # let svcs = schema.add(t)?;
    /// # let db = Db::new(schema.build()?);
    /// let web = db.watch_stream(move |r: &ReadTxn| {
    ///     let (rows, watch) = r.prefix_watch(&by_name, "web.")?;
    ///     Ok((rows.count(), watch))
    /// });
    /// // poll it with any runtime: `while let Some(n) = web.next().await { ... }`
    /// # let _ = (web, svcs);
    /// # Ok::<(), pandodb::Error>(())
    /// ```
    pub fn watch_stream<T, F>(&self, query: F) -> WatchStream<T>
    where
        T: 'static,
        F: FnMut(&ReadTxn) -> Result<(T, Watch)> + Send + 'static,
    {
        WatchStream::new(Arc::downgrade(&self.inner), Box::new(query))
    }

    /// Closes the database, whatever other handles remain: commits made
    /// before it are flushed (in durable mode synced, in every mode
    /// visible), the directory lock is released (the directory can be
    /// opened again at once, by this process or another), and every
    /// pending watch, watch-set, watch-stream and change-feed future
    /// resolves with [`Error::Closed`](crate::Error::Closed).
    ///
    /// Through the handles still held (clones, tasks), reads keep working
    /// on the last version, which stays in memory until the last handle
    /// goes; commits, [`subscribe`](Db::subscribe),
    /// [`checkpoint`](Db::checkpoint) and
    /// [`install_snapshot`](Db::install_snapshot) fail with
    /// `Error::Closed`. A commit racing with `close` is either flushed by
    /// it or refused. With [`Durability::None`](crate::Durability::None)
    /// nothing is written (take a checkpoint first to keep the state).
    /// Closing twice is a no-op.
    ///
    /// Dropping the last handle closes too (the directory lock goes with
    /// it); `close` is for when other handles may still exist, or to see
    /// the error of the final sync.
    pub fn close(self) -> Result<()> {
        self.inner.close()
    }
}

/// The writer locks a `write_async` future took; released if the future is
/// dropped before it completes.
struct Held {
    db: Arc<DbInner>,
    locked: Vec<usize>,
}

impl Drop for Held {
    fn drop(&mut self) {
        for id in std::mem::take(&mut self.locked) {
            self.db.locks[id].release();
        }
    }
}
