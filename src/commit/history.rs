//! The read history: the last published roots, for reads at a past
//! revision (`Db::read_at`). Versions share every unchanged node, so a kept
//! root costs only the nodes its successors replaced (the copied paths of
//! later commits, and the objects they replaced or deleted).
//!
//! A root enters the history *before* it is swapped in (under the publish
//! mutex, or the pending lock in `Sync` mode, so in revision order): every
//! visible revision is in the history unless the window has passed it, and
//! a reader never finds the current revision missing. The window is the
//! newest `keep + 1` roots (the current one and `keep` before it).
//!
//! Keeping a root also keeps the version a write transaction started from
//! alive, so its lending ledgers are settled by restoring counts
//! rather than freeing the base nodes (`tree::Ledger`); see
//! `docs/PERFORMANCE.md` for what that costs.

use std::collections::VecDeque;
use std::sync::Arc;

use super::DbInner;
use crate::error::{Error, Result};
use crate::root::Root;
use crate::sync::{Mutex, lock};

/// The newest published roots, oldest first, consecutive revisions.
pub(crate) struct History {
    /// How many revisions before the current one are kept.
    keep: usize,
    roots: Mutex<VecDeque<Arc<Root>>>,
}

impl History {
    /// A history keeping `keep` past revisions (0: none).
    pub(crate) fn new(keep: usize) -> History {
        History {
            keep,
            roots: Mutex::new(VecDeque::new()),
        }
    }

    /// Records `root`, about to be published (in revision order). Returns
    /// the root that left the window, for the caller to drop outside its
    /// locks.
    pub(crate) fn push(&self, root: &Arc<Root>) -> Option<Arc<Root>> {
        if self.keep == 0 {
            return None;
        }
        let mut roots = lock(&self.roots);
        if roots
            .back()
            .is_some_and(|r| r.revision + 1 != root.revision)
        {
            // Not the next revision (a snapshot installed): start over.
            roots.clear();
        }
        roots.push_back(root.clone());
        if roots.len() > self.keep + 1 {
            roots.pop_front()
        } else {
            None
        }
    }

    /// Forgets every root (a snapshot replaced the state): returns them,
    /// for the caller to drop outside its locks.
    pub(crate) fn clear(&self) -> VecDeque<Arc<Root>> {
        std::mem::take(&mut *lock(&self.roots))
    }

    /// The kept root of `revision`; else the oldest kept revision, if any.
    fn get(&self, revision: u64) -> std::result::Result<Arc<Root>, Option<u64>> {
        let roots = lock(&self.roots);
        let Some(front) = roots.front() else {
            return Err(None);
        };
        match revision.checked_sub(front.revision).map(usize::try_from) {
            Some(Ok(i)) if i < roots.len() => Ok(roots[i].clone()),
            _ => Err(Some(front.revision)),
        }
    }
}

impl DbInner {
    /// The root of `revision`: the current one, a kept one, or one already
    /// ordered whose log sync this waits for (as `load_at_least` does).
    /// [`Error::Compacted`] for a revision older than the window,
    /// [`Error::RevisionNotReached`] for one no commit has reached.
    pub(crate) fn load_at(&self, revision: u64) -> Result<Arc<Root>> {
        let current = self.load();
        if current.revision == revision {
            return Ok(current);
        }
        if current.revision < revision {
            let root = self.load_at_least(revision)?;
            if root.revision == revision {
                return Ok(root);
            }
        }
        match self.history.get(revision) {
            Ok(root) => Ok(root),
            Err(front) => Err(Error::Compacted {
                oldest: front.unwrap_or_else(|| self.load().revision),
            }),
        }
    }
}
