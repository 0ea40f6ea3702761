//! Persisted snapshots (`PandoStateMachine::open_persisted`): a snapshot
//! built or installed is on disk before openraft hears of it, comes back
//! after a restart (`get_current_snapshot`, and the database restored from
//! it when the database is behind), and damaged files are typed errors.

mod common;

use std::path::Path;

use common::{Cfg, KvApp, Rng, Sm, TempDir, random_log, runtime, schema, snapshot_bytes};
use openraft::storage::RaftStateMachine;
use openraft::{RaftSnapshotBuilder, Snapshot};
use pandodb::Db;
use pandodb_openraft::MetaTable;

/// A database and the handles of its schema instance.
#[derive(Clone)]
struct Parts(Db, MetaTable<Cfg>, KvApp);

fn fresh_db() -> Parts {
    let (s, meta, app) = schema();
    Parts(Db::new(s), meta, app)
}

fn open(p: Parts, dir: &Path) -> pandodb::Result<Sm> {
    Sm::open_persisted(p.0, p.1, p.2, dir)
}

async fn build(sm: &mut Sm) -> Snapshot<Cfg> {
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn a_built_snapshot_comes_back_after_a_restart() {
    let rt = runtime();
    let tmp = TempDir::new("snap-restart");
    let dir = tmp.0.join("snap");
    let log = random_log(&mut Rng(11), 600);
    rt.block_on(async {
        let mut sm = open(fresh_db(), &dir).unwrap();
        assert!(sm.get_current_snapshot().await.unwrap().is_none());
        sm.apply(log[..300].to_vec()).await.unwrap();
        let first = build(&mut sm).await;
        sm.apply(log[300..500].to_vec()).await.unwrap();
        let snap = build(&mut sm).await;
        assert_eq!(snap.meta.last_log_id, Some(log[499].log_id));
        // Only the newest is kept.
        assert_eq!(files(&dir).len(), 1, "{:?}", files(&dir));
        assert_ne!(first.meta, snap.meta);
        let bytes = snapshot_bytes(sm.db());
        sm.apply(log[500..].to_vec()).await.unwrap();
        drop(sm);

        // An in-memory database: restored from the snapshot.
        let mut back = open(fresh_db(), &dir).unwrap();
        assert_eq!(back.last_applied(), Some(log[499].log_id));
        assert_eq!(snapshot_bytes(back.db()), bytes);
        let cur = back.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(cur.meta, snap.meta);
        assert_eq!(cur.snapshot.get_ref(), snap.snapshot.get_ref());
        // The log replays from there to the same state as the original.
        back.apply(log[500..].to_vec()).await.unwrap();
        let (applied, _) = back.applied_state().await.unwrap();
        assert_eq!(applied, Some(log[599].log_id));
    });
}

#[test]
fn a_database_ahead_of_the_snapshot_is_kept() {
    let rt = runtime();
    let tmp = TempDir::new("snap-ahead");
    let dir = tmp.0.join("snap");
    let log = random_log(&mut Rng(12), 200);
    rt.block_on(async {
        let parts = fresh_db();
        let db = parts.0.clone();
        let mut sm = open(parts.clone(), &dir).unwrap();
        sm.apply(log[..100].to_vec()).await.unwrap();
        let snap = build(&mut sm).await;
        sm.apply(log[100..].to_vec()).await.unwrap();
        drop(sm);
        let before = snapshot_bytes(&db);
        // The same database (as one opened in Durability::Sync would be).
        let mut sm = open(parts, &dir).unwrap();
        assert_eq!(sm.last_applied(), Some(log[199].log_id));
        assert_eq!(snapshot_bytes(&db), before);
        let cur = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(cur.meta, snap.meta);
    });
}

#[test]
fn an_installed_snapshot_is_persisted() {
    let rt = runtime();
    let tmp = TempDir::new("snap-install");
    let log = random_log(&mut Rng(13), 300);
    rt.block_on(async {
        let mut a = open(fresh_db(), &tmp.0.join("a")).unwrap();
        a.apply(log.clone()).await.unwrap();
        let snap = build(&mut a).await;
        let mut b = open(fresh_db(), &tmp.0.join("b")).unwrap();
        b.install_snapshot(&snap.meta, snap.snapshot.clone())
            .await
            .unwrap();
        drop(b);
        let mut b = open(fresh_db(), &tmp.0.join("b")).unwrap();
        assert_eq!(b.last_applied(), Some(log[299].log_id));
        assert_eq!(snapshot_bytes(b.db()), snapshot_bytes(a.db()));
        let cur = b.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(cur.meta, snap.meta);
    });
}

#[test]
fn damaged_files_are_typed_errors_and_leftover_temporaries_are_removed() {
    let rt = runtime();
    let tmp = TempDir::new("snap-damage");
    let dir = tmp.0.join("snap");
    let log = random_log(&mut Rng(14), 100);
    rt.block_on(async {
        let mut sm = open(fresh_db(), &dir).unwrap();
        sm.apply(log.clone()).await.unwrap();
        build(&mut sm).await;
    });
    let name = files(&dir).pop().unwrap();
    let path = dir.join(&name);
    let good = std::fs::read(&path).unwrap();

    // A crash in the middle of a save leaves a temporary file: ignored and
    // removed.
    std::fs::write(dir.join(format!("{name}.tmp")), b"half a snapshot").unwrap();
    open(fresh_db(), &dir).unwrap();
    assert_eq!(files(&dir), vec![name.clone()]);

    let corrupt = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        match open(fresh_db(), &dir) {
            Err(pandodb::Error::Corrupt { .. }) => {}
            other => panic!("expected Error::Corrupt, got {:?}", other.map(|_| ())),
        }
    };
    // Every single-bit flip at a few positions, truncations, garbage.
    for at in [0, 9, 13, good.len() / 2, good.len() - 5, good.len() - 1] {
        let mut b = good.clone();
        b[at] ^= 0x10;
        corrupt(&b);
    }
    for len in [0, 5, 20, good.len() / 2, good.len() - 1] {
        corrupt(&good[..len]);
    }
    let mut longer = good.clone();
    longer.extend_from_slice(b"trailing");
    corrupt(&longer);
    corrupt(&[0xff; 4096]);
    // Restored, it opens again.
    std::fs::write(&path, &good).unwrap();
    open(fresh_db(), &dir).unwrap();
}
