//! The durable log store: openraft's storage conformance suite
//! (`openraft::testing::Suite`) against `DurableLogStore` and a state
//! machine with persisted snapshots, and what the log finds again after a
//! reopen (entries, vote, committed, purge, truncate).

mod common;

use common::{Cfg, Rng, Sm, TempDir, random_log, runtime, schema};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{RaftLogReader, RaftSnapshotBuilder, StorageError, Vote};
use pandodb_openraft::DurableLogStore;

struct Builder;

impl StoreBuilder<Cfg, DurableLogStore<Cfg>, Sm, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, DurableLogStore<Cfg>, Sm), StorageError<u64>> {
        let dir = TempDir::new("suite");
        let log = DurableLogStore::open(dir.0.join("log")).expect("open the log");
        // With persisted snapshots, as a production node runs it.
        let (s, meta, app) = schema();
        let sm = Sm::open_persisted(pandodb::Db::new(s), meta, app, dir.0.join("snap"))
            .expect("open the state machine");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_durable_log() {
    if let Err(e) = Suite::test_all(Builder) {
        panic!("the openraft storage suite failed: {e}");
    }
}

#[test]
fn reopen_finds_entries_vote_committed_purge_and_truncate() {
    let dir = TempDir::new("reopen");
    let rt = runtime();
    let log = random_log(&mut Rng(7), 300);
    rt.block_on(async {
        let mut s = DurableLogStore::<Cfg>::open(&dir.0).unwrap();
        // Appended in batches of various sizes.
        for chunk in log.chunks(37) {
            append(&mut s, chunk.to_vec()).await;
        }
        s.save_vote(&Vote::new_committed(3, 2)).await.unwrap();
        s.save_committed(Some(log[250].log_id)).await.unwrap();
        s.purge(log[99].log_id).await.unwrap();
        s.truncate(log[280].log_id).await.unwrap();
        // A purge to an older id is a no-op.
        s.purge(log[10].log_id).await.unwrap();
        assert_eq!(s.len(), 180);
    });
    rt.block_on(async {
        let mut s = DurableLogStore::<Cfg>::open(&dir.0).unwrap();
        assert_eq!(
            s.read_vote().await.unwrap(),
            Some(Vote::new_committed(3, 2))
        );
        assert_eq!(s.read_committed().await.unwrap(), Some(log[250].log_id));
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(log[99].log_id));
        assert_eq!(st.last_log_id, Some(log[279].log_id));
        let got = s.try_get_log_entries(0..u64::MAX).await.unwrap();
        assert_eq!(got, log[100..280].to_vec());
        let got = s.try_get_log_entries(150..=160).await.unwrap();
        assert_eq!(got, log[150..=160].to_vec());
        // Purging everything keeps the last purged id as the last log id.
        s.purge(log[279].log_id).await.unwrap();
        assert!(s.is_empty());
    });
    rt.block_on(async {
        let mut s = DurableLogStore::<Cfg>::open(&dir.0).unwrap();
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(log[279].log_id));
        assert_eq!(st.last_log_id, Some(log[279].log_id));
        assert_eq!(s.last_purged().unwrap(), Some(log[279].log_id));
    });
}

#[test]
fn a_second_open_of_the_directory_is_refused() {
    let dir = TempDir::new("twice");
    let a = DurableLogStore::<Cfg>::open(&dir.0).unwrap();
    let b = DurableLogStore::<Cfg>::open(&dir.0);
    assert!(
        matches!(b, Err(pandodb::Error::AlreadyOpen(_))),
        "{:?}",
        b.map(|_| ())
    );
    drop(a);
    DurableLogStore::<Cfg>::open(&dir.0).unwrap();
}

/// openraft 0.9 may purge up to a received snapshot before the state
/// machine has persisted it: a log holding purges for the state machine's
/// guard waits until a snapshot on disk covers the purge.
#[test]
fn a_guarded_purge_waits_for_a_persisted_snapshot() {
    let dir = TempDir::new("guard");
    let rt = runtime();
    let log = random_log(&mut Rng(11), 40);
    rt.block_on(async {
        let mut s = DurableLogStore::<Cfg>::open(dir.0.join("log")).unwrap();
        let (sch, meta, app) = schema();
        let mut sm =
            Sm::open_persisted(pandodb::Db::new(sch), meta, app, dir.0.join("snap")).unwrap();
        let guard = sm
            .purge_guard()
            .expect("a persisted state machine has a guard");
        assert!(s.hold_purges_until_persisted(guard.clone()));
        assert!(
            !s.hold_purges_until_persisted(guard.clone()),
            "one guard only"
        );
        append(&mut s, log.clone()).await;
        // No snapshot on disk: the purge waits, and nothing is purged.
        let pending = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            s.purge(log[29].log_id),
        )
        .await;
        assert!(pending.is_err(), "the purge ran ahead of every snapshot");
        assert_eq!(s.len(), 40);
        // A snapshot of the first 30 entries is persisted: the purge goes.
        sm.apply(log[..30].to_vec()).await.unwrap();
        let snap = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert_eq!(snap.meta.last_log_id, Some(log[29].log_id));
        assert_eq!(guard.covered(), Some(log[29].log_id.index));
        s.purge(log[29].log_id).await.unwrap();
        assert_eq!(s.len(), 10);
        // Reopened, the guard knows the snapshot on disk again.
        drop(sm);
        let (sch, meta, app) = schema();
        let sm = Sm::open_persisted(pandodb::Db::new(sch), meta, app, dir.0.join("snap")).unwrap();
        assert!(sm.purge_guard().unwrap().covers(log[29].log_id.index));
    });
}

async fn append(s: &mut DurableLogStore<Cfg>, entries: Vec<openraft::Entry<Cfg>>) {
    // Waits for the `LogFlushed` callback.
    s.blocking_append(entries).await.unwrap();
}
