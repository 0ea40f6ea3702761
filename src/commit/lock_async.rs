//! Taking a table's writer lock as a future (`Db::write_async`): the async
//! waiters listen on the lock's `freed_async` event, which `release`
//! notifies when one of them waits. Blocking waiters (the condition
//! variable) and async ones compete for the lock on equal terms: both
//! kinds may be woken by one release, and the loser waits again.

use crate::sync::lock;

use super::TableLock;

impl TableLock {
    /// Waits (asynchronously, on any runtime) until this lock is free and
    /// takes it. Dropping the future before it completes leaves the lock
    /// as it was (a wake-up it received passes on to another async waiter).
    pub(crate) async fn acquire_async(&self) {
        loop {
            let listener = {
                let mut st = lock(&self.state);
                if !st.locked {
                    st.locked = true;
                    return;
                }
                // Listening before the state lock goes: a release after
                // this sees the count and notifies.
                let listener = self.freed_async.listen();
                st.async_waiters += 1;
                listener
            };
            let counted = Counted(self);
            listener.await;
            drop(counted);
        }
    }
}

/// One async waiter counted in `async_waiters`, uncounted when dropped
/// (woken, or the future dropped while waiting).
struct Counted<'a>(&'a TableLock);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).async_waiters -= 1;
    }
}
