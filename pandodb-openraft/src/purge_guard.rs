//! [`PurgeGuard`]: how far persisted snapshots cover the log, so that a
//! durable log never purges entries no snapshot on disk holds.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How far the snapshots persisted by a
/// [`PandoStateMachine::open_persisted`](crate::PandoStateMachine::open_persisted)
/// state machine cover the log: the index of the last entry of the newest
/// snapshot on disk.
///
/// openraft 0.9 issues the purge of the log up to a snapshot received from
/// the leader right after handing it to the state machine, without waiting
/// for the install, which is where the snapshot is written to disk. A crash
/// between the two would leave a log purged past every snapshot on disk,
/// and the node could not restart. Given to
/// [`DurableLogStore::hold_purges_until_persisted`](crate::DurableLogStore::hold_purges_until_persisted),
/// the guard makes each purge wait until a persisted snapshot covers it.
///
/// Clones share the same state.
#[derive(Clone, Debug, Default)]
pub struct PurgeGuard {
    covered: Arc<Mutex<Option<u64>>>,
}

/// How often a held purge looks again.
const POLL: Duration = Duration::from_millis(5);

impl PurgeGuard {
    /// The index of the last entry the newest persisted snapshot holds
    /// (`None`: no snapshot is persisted yet).
    pub fn covered(&self) -> Option<u64> {
        *self.covered.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a persisted snapshot holds every entry up to `index`.
    pub fn covers(&self, index: u64) -> bool {
        self.covered().is_some_and(|c| c >= index)
    }

    /// Records that a snapshot holding every entry up to `index` is on disk.
    pub(crate) fn persisted(&self, index: u64) {
        let mut c = self.covered.lock().unwrap_or_else(|p| p.into_inner());
        if c.is_none_or(|c| c < index) {
            *c = Some(index);
        }
    }

    /// Waits (asynchronously) until a persisted snapshot covers `index`;
    /// `false` when none does after `patience`.
    pub(crate) async fn wait_for(&self, index: u64, patience: Duration) -> bool {
        let start = Instant::now();
        loop {
            if self.covers(index) {
                return true;
            }
            if start.elapsed() >= patience {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_only_grows() {
        let g = PurgeGuard::default();
        assert!(!g.covers(0));
        g.persisted(10);
        g.persisted(4);
        assert_eq!(g.covered(), Some(10));
        assert!(g.covers(10) && !g.covers(11));
        assert!(g.clone().covers(7));
    }
}
