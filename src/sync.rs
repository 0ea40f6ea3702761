//! The few synchronization primitives of the commit protocol, switched
//! between `std` (+ `arc-swap`) and `loom` (`--cfg loom`) so that the
//! protocol can be model-checked (`tests/loom_publish.rs`).

#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use std::sync::PoisonError;

use std::sync::Arc;

/// Deliberately broken variants of the protocols, for the loom models to
/// catch (`tests/loom_publish.rs`, `tests/loom_watch.rs`). Outside
/// `--cfg loom` it is empty and every switch reads `false`.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct Broken {
    /// Publish without the publish lock (a lost update).
    #[cfg(loom)]
    pub(crate) publish: bool,
    /// Register a watch without checking the commits since the reader's
    /// revision (a missed wake-up).
    #[cfg(loom)]
    pub(crate) watch: bool,
}

impl Broken {
    /// Whether commits publish without the publish lock.
    #[inline(always)]
    pub(crate) fn publish(self) -> bool {
        #[cfg(loom)]
        return self.publish;
        #[cfg(not(loom))]
        false
    }

    /// Whether watch registration skips its check.
    #[inline(always)]
    pub(crate) fn watch(self) -> bool {
        #[cfg(loom)]
        return self.watch;
        #[cfg(not(loom))]
        false
    }
}

/// Locks a mutex whose data every critical section leaves consistent, so a
/// panic elsewhere while it was held does not invalidate it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The published root: readers load it without locking, the committer
/// replaces it with one store.
#[cfg(not(loom))]
pub(crate) struct RootCell<T>(arc_swap::ArcSwap<T>);

#[cfg(not(loom))]
impl<T> RootCell<T> {
    pub(crate) fn new(value: T) -> Self {
        RootCell(arc_swap::ArcSwap::from_pointee(value))
    }
    #[inline]
    pub(crate) fn load(&self) -> Arc<T> {
        self.0.load_full()
    }
    /// Publishes `value` and hands back the previous root, so the caller
    /// can drop it outside any lock.
    #[inline]
    pub(crate) fn swap(&self, value: Arc<T>) -> Arc<T> {
        self.0.swap(value)
    }
}

/// Under loom: a modelled lock stands in for the atomic pointer (loom cannot
/// see inside `arc-swap`); loads and stores stay single, indivisible steps.
#[cfg(loom)]
pub(crate) struct RootCell<T>(loom::sync::RwLock<Arc<T>>);

#[cfg(loom)]
impl<T> RootCell<T> {
    pub(crate) fn new(value: T) -> Self {
        RootCell(loom::sync::RwLock::new(Arc::new(value)))
    }
    pub(crate) fn load(&self) -> Arc<T> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
    pub(crate) fn swap(&self, value: Arc<T>) -> Arc<T> {
        std::mem::replace(
            &mut *self.0.write().unwrap_or_else(PoisonError::into_inner),
            value,
        )
    }
}
