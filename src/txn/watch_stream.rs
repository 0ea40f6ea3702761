//! `WatchStream`: a query followed as a `Stream` (`Db::watch_stream`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::commit::DbInner;
use crate::error::{Error, Result};
use crate::watch::Watch;

use super::ReadTxn;

type Query<T> = Box<dyn FnMut(&ReadTxn) -> Result<(T, Watch)> + Send>;
type Fired = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// A query's result, yielded at once and again each time it may have
/// changed: a [`Stream`] of `Result<T>`, made by
/// [`Db::watch_stream`](crate::Db::watch_stream). It holds the database
/// weakly: once the database is closed or dropped it yields
/// [`Error::Closed`] and ends; a query error ends it too.
pub struct WatchStream<T> {
    db: Weak<DbInner>,
    query: Query<T>,
    /// The watch of the last result, firing.
    fired: Option<Fired>,
    done: bool,
}

impl<T> WatchStream<T> {
    pub(crate) fn new(db: Weak<DbInner>, query: Query<T>) -> WatchStream<T> {
        WatchStream {
            db,
            query,
            fired: None,
            done: false,
        }
    }

    fn fail(&mut self, e: Error) -> Poll<Option<Result<T>>> {
        self.done = true;
        self.fired = None;
        Poll::Ready(Some(Err(e)))
    }
}

impl<T> Stream for WatchStream<T> {
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(f) = &mut this.fired {
            match f.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return this.fail(e),
                Poll::Ready(Ok(())) => this.fired = None,
            }
        }
        let read = match this.db.upgrade() {
            Some(db) if !db.is_closed() => ReadTxn::new(db.load(), db.schema.id),
            _ => return this.fail(Error::db_closed()),
        };
        match (this.query)(&read) {
            Ok((value, watch)) => {
                this.fired = Some(Box::pin(watch.fired()));
                Poll::Ready(Some(Ok(value)))
            }
            Err(e) => this.fail(e),
        }
    }
}

impl<T> std::fmt::Debug for WatchStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream")
            .field("done", &self.done)
            .finish()
    }
}
