//! Closing a database: `Db::close`, and what dropping the last handle does.
//!
//! Closing sets the closed flag under the publish mutex, so every commit is
//! either ordered before it (and made durable and visible by the close) or
//! refused with `Error::Closed`. Then the durable side refuses writes and
//! releases the directory lock, and every pending watch, watch-set and
//! feed future resolves with `Error::Closed`. Dropping the last handle does
//! the last step (the directory lock goes with the durable side itself).

use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::sync::lock;

use super::DbInner;

impl DbInner {
    /// Whether the database was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Fails with [`Error::Closed`] once the database is closed.
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.is_closed() {
            return Err(Error::db_closed());
        }
        Ok(())
    }

    /// Closes the database (see `Db::close`); the first error of the final
    /// sync, if any. The directory lock is released either way.
    pub(crate) fn close(&self) -> Result<()> {
        {
            let _publish = lock(&self.publish);
            if self.closed.swap(true, Ordering::AcqRel) {
                return Ok(());
            }
        }
        // Every commit ordered before the flag: on disk and visible.
        let flushed = self.flush_pending().and_then(|_| match &self.durable {
            Some(d) => d.sync_if_due(true),
            None => Ok(()),
        });
        if let Some(d) = &self.durable {
            d.close();
        }
        self.wake_closed();
        flushed
    }

    /// Resolves every pending watch, watch-set and feed wait with
    /// `Error::Closed`; later registrations are closed at once.
    fn wake_closed(&self) {
        for w in self.watches.iter() {
            w.close();
        }
        self.feed.close();
    }
}

impl Drop for DbInner {
    fn drop(&mut self) {
        self.wake_closed();
    }
}
