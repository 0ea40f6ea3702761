//! Durable mode against a simulated disk (G5, G6, G8): power loss at every
//! I/O operation of a workload with checkpoints and log truncation (and
//! again during recovery), every operation failing once or forever, a full
//! disk; plus round trips on the real file system and group commit.
//!
//! Tier 1 runs about a thousand recoveries; `PANDODB_CRASH_SEEDS=N` runs N
//! seeds of the workload (tier 2). Seeds print on failure.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::storage::fs::{CrashMode, SimFs, XorShift};
use crate::{Db, Durability, Error, Index, Indexer, Options, Query, Schema, Table};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Item {
    id: u32,
    v: u64,
    tag: String,
}

struct H {
    a: Table<Item>,
    b: Table<Item>,
    a_id: Index<Item, u32>,
}

fn schema() -> (Schema, H) {
    let mut s = Schema::builder();
    let mut a = s.table::<Item>("a");
    let a_id = a.primary("id", Indexer::value(|x: &Item| x.id));
    a.index("tag", Indexer::string(|x: &Item| x.tag.as_str()));
    a.serde();
    let a = s.add(a).unwrap();
    let mut b = s.table::<Item>("b");
    b.primary("id", Indexer::value(|x: &Item| x.id));
    b.unique("tag", Indexer::string(|x: &Item| x.tag.as_str()));
    b.serde();
    let b = s.add(b).unwrap();
    (s.build().unwrap(), H { a, b, a_id })
}

/// Table → id → (object, created, modified).
type State = BTreeMap<(u8, u32), (Item, u64, u64)>;

fn state(db: &Db, h: &H) -> State {
    let r = db.read();
    let mut s = State::new();
    for (t, table) in [(0u8, &h.a), (1, &h.b)] {
        for v in r.all_versioned(table).unwrap() {
            s.insert(
                (t, v.object.id),
                ((*v.object).clone(), v.created, v.modified),
            );
        }
    }
    s
}

const DIR: &str = "/db";

fn open(fs: &SimFs, checkpoint_bytes: u64) -> crate::Result<(Db, H)> {
    let (s, h) = schema();
    let db = Db::open(
        Path::new(DIR),
        s,
        Options::default()
            .checkpoint_bytes(checkpoint_bytes)
            .vfs(Arc::new(fs.clone())),
    )?;
    Ok((db, h))
}

/// What a workload saw: the state after each acknowledged revision, the
/// state the first failed commit would have made (it may or may not have
/// reached the disk), and whether a commit or checkpoint failed.
type Outcome = (BTreeMap<u64, State>, Option<(u64, State)>, bool);

/// Runs `commits` random commits (inserts, updates, deletes over both
/// tables, a manual checkpoint every 9).
fn workload(db: &Db, h: &H, seed: u64, commits: u32) -> Outcome {
    let mut rng = XorShift::new(seed);
    let mut acked = BTreeMap::new();
    acked.insert(db.revision(), state(db, h));
    for i in 0..commits {
        let mut w = db.write(&[&h.a, &h.b]);
        let n = 1 + rng.below(3);
        for _ in 0..n {
            let id = rng.below(12) as u32;
            let table = if rng.below(3) == 0 { &h.b } else { &h.a };
            let item = Item {
                id,
                v: u64::from(i),
                tag: format!("t{}", rng.below(40)),
            };
            if rng.below(4) == 0 {
                w.delete(table, &item).unwrap();
            } else {
                // A unique conflict on `b` leaves the transaction as it was.
                let _ = w.insert(table, item);
            }
        }
        let base = w.base_revision();
        // What this commit makes if it publishes (a transaction whose
        // writes cancel out still publishes a revision).
        let will = {
            let r = &w;
            let mut s = State::new();
            for (t, table) in [(0u8, &h.a), (1, &h.b)] {
                for v in r.all_versioned(table).unwrap() {
                    let (c, m) = (v.created, v.modified);
                    s.insert((t, v.object.id), ((*v.object).clone(), c, m));
                }
            }
            s
        };
        match w.commit() {
            Ok(c) => {
                if c.revision > base {
                    assert_eq!(c.revision, base + 1);
                    acked.insert(c.revision, will);
                }
            }
            Err(_) => return (acked, Some((base + 1, will)), true),
        }
        if i % 9 == 8 && db.checkpoint().is_err() {
            return (acked, None, true);
        }
    }
    (acked, None, false)
}

fn check_recovered(
    fs: &SimFs,
    acked: &BTreeMap<u64, State>,
    maybe: &Option<(u64, State)>,
    what: &str,
) -> State {
    let (db, h) = open(fs, 600).unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    let got = state(&db, &h);
    let rev = db.revision();
    let (&last, _) = acked.last_key_value().unwrap();
    let ok = match maybe {
        Some((r, s)) if rev == *r => got == *s,
        _ => rev == last && got == acked[&last],
    };
    assert!(
        ok,
        "{what}: recovered revision {rev} (acknowledged up to {last}, maybe {:?}) differs:\n{got:?}",
        maybe.as_ref().map(|m| m.0)
    );
    // Writable afterwards.
    let mut w = db.write(&[&h.a]);
    w.insert(
        &h.a,
        Item {
            id: 999,
            v: 1,
            tag: "after".into(),
        },
    )
    .unwrap();
    w.commit()
        .unwrap_or_else(|e| panic!("{what}: not writable: {e}"));
    got
}

#[test]
fn reopen_round_trip_with_checkpoints() {
    let fs = SimFs::new();
    let (db, h) = open(&fs, 600).unwrap();
    let (acked, maybe, failed) = workload(&db, &h, 7, 60);
    assert!(maybe.is_none() && !failed);
    let last = state(&db, &h);
    let rev = db.revision();
    drop(db);
    let (db, h) = open(&fs, 600).unwrap();
    assert_eq!(db.revision(), rev);
    assert_eq!(state(&db, &h), last);
    assert_eq!(acked[&rev], last);
    // The log was truncated by checkpoints: few segments remain.
    let names = crate::storage::fs::Vfs::list_dir(&fs, Path::new(DIR)).unwrap();
    let snaps = names.iter().filter(|n| n.starts_with("snap-")).count();
    assert_eq!(snaps, 1, "{names:?}");
    // The snapshot is a valid snapshot to restore from, too.
    let mut bytes = Vec::new();
    db.snapshot_to(&mut bytes).unwrap();
    let (s, h2) = schema();
    let copy = Db::restore_from(&bytes[..], s).unwrap();
    assert_eq!(state(&copy, &h2), last);
    // A point lookup after recovery.
    assert_eq!(
        db.read().get(&h.a_id, &999).unwrap().is_some(),
        last.contains_key(&(0, 999))
    );
}

fn seeds() -> Vec<u64> {
    match std::env::var("PANDODB_CRASH_SEEDS") {
        Ok(n) => (1..=n.parse::<u64>().unwrap()).collect(),
        Err(_) => vec![11],
    }
}

#[test]
fn power_loss_at_every_operation_loses_no_acknowledged_commit() {
    let mut recoveries = 0;
    for seed in seeds() {
        // How many operations a whole run makes.
        let total = {
            let fs = SimFs::new();
            let (db, h) = open(&fs, 600).unwrap();
            workload(&db, &h, seed, 30);
            fs.op_count()
        };
        let modes = [
            CrashMode::KeepAll,
            CrashMode::DropAll,
            CrashMode::KeepPrefix(seed),
            CrashMode::Garble(seed ^ 0x55),
        ];
        for k in 0..total {
            for mode in modes {
                let what = format!("seed {seed}, crash at op {k}, {mode:?}");
                let fs = SimFs::new();
                fs.fail_at(k, true);
                let (acked, maybe) = match open(&fs, 600) {
                    Ok((db, h)) => {
                        let (a, m, _) = workload(&db, &h, seed, 30);
                        (a, m)
                    }
                    // Crashed while creating the directory: nothing acked.
                    Err(_) => {
                        let mut m = BTreeMap::new();
                        m.insert(0, State::new());
                        (m, None)
                    }
                };
                fs.crash(mode);
                let first = check_recovered(&fs.fork(), &acked, &maybe, &what);
                recoveries += 1;
                // A second power loss during recovery: recovery is
                // idempotent. (Every 7th op of the reopen, to bound time.)
                let ops_before = fs.op_count();
                let probe = fs.fork();
                drop(open(&probe, 600));
                let reopen_ops = probe.op_count() - ops_before;
                for j in (0..reopen_ops).step_by(7) {
                    let twice = fs.fork();
                    twice.fail_at(twice.op_count() + j, true);
                    drop(open(&twice, 600));
                    twice.crash(mode);
                    let (db, h) = open(&twice, 600)
                        .unwrap_or_else(|e| panic!("{what}, then at recovery op {j}: {e}"));
                    assert_eq!(state(&db, &h), first, "{what}, then at recovery op {j}");
                    recoveries += 1;
                }
            }
        }
    }
    println!("{recoveries} recoveries checked");
    assert!(recoveries > 500, "only {recoveries} recoveries");
}

#[test]
fn io_errors_stop_writes_and_keep_reads() {
    let total = {
        let fs = SimFs::new();
        let (db, h) = open(&fs, 600).unwrap();
        workload(&db, &h, 3, 20);
        fs.op_count()
    };
    for forever in [false, true] {
        for k in 0..total {
            let what = format!("op {k} fails (forever: {forever})");
            let fs = SimFs::new();
            fs.fail_at(k, forever);
            let Ok((db, h)) = open(&fs, 600) else {
                continue;
            };
            let (acked, maybe, failed) = workload(&db, &h, 3, 20);
            if failed {
                // A commit failed: later writes are refused, reads work.
                let mut w = db.write(&[&h.a]);
                w.insert(
                    &h.a,
                    Item {
                        id: 1,
                        v: 1,
                        tag: "x".into(),
                    },
                )
                .unwrap();
                let e = w.commit().unwrap_err();
                assert!(
                    matches!(e, Error::WritesStopped(_) | Error::Io { .. }),
                    "{what}: {e:?}"
                );
                let (&last, s) = acked.last_key_value().unwrap();
                assert_eq!(
                    db.revision(),
                    last,
                    "{what}: a failed commit became visible"
                );
                assert_eq!(&state(&db, &h), s, "{what}: reads");
            }
            drop(db);
            fs.clear_faults();
            check_recovered(&fs, &acked, &maybe, &what);
        }
    }
}

#[test]
fn a_full_disk_stops_writes_without_losing_acknowledged_commits() {
    for limit in (200..6000).step_by(173) {
        let what = format!("disk of {limit} bytes");
        let fs = SimFs::new();
        fs.set_space_limit(Some(limit));
        let Ok((db, h)) = open(&fs, 600) else {
            continue;
        };
        let (acked, maybe, _) = workload(&db, &h, 5, 40);
        drop(db);
        fs.set_space_limit(None);
        fs.crash(CrashMode::DropAll);
        check_recovered(&fs, &acked, &maybe, &what);
    }
}

#[test]
fn real_directory_round_trip_and_group_commit() {
    let dir = std::env::temp_dir().join(format!("pandodb-durable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let threads = 8;
    let per = 50;
    {
        let (s, h) = schema();
        let db = Db::open(&dir, s, Options::default()).unwrap();
        let h = Arc::new(h);
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (db, h) = (db.clone(), h.clone());
                std::thread::spawn(move || {
                    for i in 0..per {
                        let mut w = db.write(&[&h.a]);
                        w.insert(
                            &h.a,
                            Item {
                                id: t * 1000 + i,
                                v: 1,
                                tag: format!("{t}"),
                            },
                        )
                        .unwrap();
                        w.commit().unwrap();
                    }
                })
            })
            .collect();
        for x in handles {
            x.join().unwrap();
        }
        assert_eq!(db.revision(), u64::from(threads * per));
    }
    let (s, h) = schema();
    let db = Db::open(&dir, s, Options::default()).unwrap();
    assert_eq!(db.revision(), u64::from(threads * per));
    assert_eq!(db.read().len(&h.a).unwrap(), (threads * per) as usize);
    // Batched and None modes reopen too.
    drop(db);
    for mode in [
        Durability::Batched(std::time::Duration::from_millis(5)),
        Durability::None,
    ] {
        let (s, h) = schema();
        let db = Db::open(&dir, s, Options::default().durability(mode)).unwrap();
        let mut w = db.write(&[&h.b]);
        w.insert(
            &h.b,
            Item {
                id: 1,
                v: 2,
                tag: format!("{mode:?}"),
            },
        )
        .unwrap();
        w.commit().unwrap();
        if mode == Durability::None {
            db.checkpoint().unwrap();
        }
        drop(db);
        let (s, h) = schema();
        let db = Db::open(&dir, s, Options::default()).unwrap();
        assert_eq!(
            db.read()
                .get(&crate::Index::clone(&h.a_id), &0)
                .unwrap()
                .map(|x| x.tag.clone()),
            Some("0".to_string())
        );
        let r = db.read();
        let b: Vec<String> = r
            .all_versioned(&h.b)
            .unwrap()
            .map(|v| v.object.tag.clone())
            .collect();
        assert_eq!(b, [format!("{mode:?}")]);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn damaged_directories_open_to_a_committed_state_or_fail() {
    // A small directory: a snapshot and a log after it.
    let fs = SimFs::new();
    let (db, h) = open(&fs, 0).unwrap();
    let (acked, _, _) = workload(&db, &h, 9, 8);
    db.checkpoint().unwrap();
    let (more, _, _) = workload(&db, &h, 10, 6);
    drop(db);
    let mut states = acked;
    states.extend(more);
    let files: Vec<String> = crate::storage::fs::Vfs::list_dir(&fs, Path::new(DIR))
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with("snap-") || n.starts_with("wal-"))
        .collect();
    let mut outcomes = (0, 0);
    let mut check = |damaged: &SimFs, what: &str| match open(damaged, 0) {
        Ok((db, h)) => {
            let got = state(&db, &h);
            assert_eq!(
                states.get(&db.revision()),
                Some(&got),
                "{what}: opened to a state that was never committed"
            );
            outcomes.0 += 1;
        }
        Err(e) => {
            assert!(
                matches!(e, Error::Corrupt { .. } | Error::UnsupportedVersion { .. }),
                "{what}: {e:?}"
            );
            outcomes.1 += 1;
        }
    };
    for name in &files {
        let path = Path::new(DIR).join(name);
        let good = fs.contents(&path).unwrap();
        for i in 0..good.len() {
            for bit in [0, 3, 7] {
                let d = fs.fork();
                let mut b = good.clone();
                b[i] ^= 1 << bit;
                d.overwrite(&path, b);
                check(&d, &format!("{name}: bit {bit} of byte {i}"));
            }
        }
        for cut in 0..good.len() {
            let d = fs.fork();
            d.overwrite(&path, good[..cut].to_vec());
            check(&d, &format!("{name}: cut at {cut}"));
        }
        for sector in 0..good.len().div_ceil(512) {
            let d = fs.fork();
            let mut b = good.clone();
            let end = ((sector + 1) * 512).min(b.len());
            b[sector * 512..end].fill(0);
            d.overwrite(&path, b);
            check(&d, &format!("{name}: sector {sector} zeroed"));
        }
    }
    println!(
        "{} opened to a committed prefix, {} refused",
        outcomes.0, outcomes.1
    );
    assert!(outcomes.0 > 0 && outcomes.1 > 0);
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct ItemV1 {
    id: u32,
    v: u64,
    tag: String,
    extra: bool,
}

#[test]
fn the_log_replays_by_table_name_and_row_version() {
    let fs = SimFs::new();
    {
        let (db, h) = open(&fs, 0).unwrap();
        let mut w = db.write(&[&h.a, &h.b]);
        for id in 0..3 {
            let it = Item {
                id,
                v: 1,
                tag: format!("t{id}"),
            };
            w.insert(&h.a, it.clone()).unwrap();
            w.insert(&h.b, it).unwrap();
        }
        w.commit().unwrap();
    }
    // Tables declared in the other order, and `a`'s row type at version 1
    // with a migration from 0: the log (no snapshot yet) still replays.
    let mut s = Schema::builder();
    let mut b = s.table::<Item>("b");
    b.primary("id", Indexer::value(|x: &Item| x.id));
    b.serde();
    let b = s.add(b).unwrap();
    let mut a = s.table::<ItemV1>("a");
    a.primary("id", Indexer::value(|x: &ItemV1| x.id));
    a.serde().version(1).migrate(|from, bytes| {
        assert_eq!(from, 0);
        let old: Item = postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
        Ok(ItemV1 {
            id: old.id,
            v: old.v,
            tag: old.tag,
            extra: true,
        })
    });
    let a = s.add(a).unwrap();
    let db = Db::open(
        Path::new(DIR),
        s.build().unwrap(),
        Options::default().vfs(Arc::new(fs.clone())),
    )
    .unwrap();
    let r = db.read();
    assert_eq!(r.len(&b).unwrap(), 3);
    let rows: Vec<ItemV1> = r
        .all_versioned(&a)
        .unwrap()
        .map(|v| (*v.object).clone())
        .collect();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|x| x.extra));
    drop(r);
    drop(db);
    // A schema without table `a`: refused, naming it.
    let mut s = Schema::builder();
    let mut b = s.table::<Item>("b");
    b.primary("id", Indexer::value(|x: &Item| x.id));
    b.serde();
    s.add(b).unwrap();
    let e = Db::open(
        Path::new(DIR),
        s.build().unwrap(),
        Options::default().vfs(Arc::new(fs.clone())),
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::SchemaMismatch(m) if m.contains("\"a\"")),
        "{e:?}"
    );
}

#[test]
fn installing_a_snapshot_in_durable_mode_survives_a_restart() {
    // A snapshot from elsewhere, ahead of this database.
    let (s, h) = schema();
    let other = Db::new(s);
    for i in 0..20 {
        let mut w = other.write(&[&h.a]);
        w.insert(
            &h.a,
            Item {
                id: i,
                v: 7,
                tag: "x".into(),
            },
        )
        .unwrap();
        w.commit().unwrap();
    }
    let mut bytes = Vec::new();
    other.snapshot_to(&mut bytes).unwrap();
    let want = state(&other, &h);

    let fs = SimFs::new();
    let (db, h) = open(&fs, 0).unwrap();
    workload(&db, &h, 4, 5);
    assert!(db.revision() < 20);
    assert_eq!(db.install_snapshot(&bytes[..]).unwrap(), 20);
    assert_eq!(state(&db, &h), want);
    // Commits go on after it, and a restart sees all of it.
    let mut w = db.write(&[&h.b]);
    w.insert(
        &h.b,
        Item {
            id: 1,
            v: 1,
            tag: "after".into(),
        },
    )
    .unwrap();
    assert_eq!(w.commit().unwrap().revision, 21);
    let after = state(&db, &h);
    drop(db);
    fs.crash(CrashMode::DropAll);
    let (db, h) = open(&fs, 0).unwrap();
    assert_eq!(db.revision(), 21);
    assert_eq!(state(&db, &h), after);
}

#[test]
fn concurrent_committers_lose_nothing_acknowledged_at_a_crash() {
    // 4 threads commit their own keys (group commit); power fails at an
    // I/O operation; every acknowledged key must be there after recovery,
    // and the state must be a prefix: all of each committed transaction.
    let total = {
        let fs = SimFs::new();
        let (db, h) = open(&fs, 4000).unwrap();
        run_threads(&db, &h);
        fs.op_count()
    };
    for k in (0..total).step_by(3) {
        for mode in [CrashMode::DropAll, CrashMode::KeepPrefix(k)] {
            let fs = SimFs::new();
            fs.fail_at(k, true);
            let acked = match open(&fs, 4000) {
                Ok((db, h)) => run_threads(&db, &h),
                Err(_) => Vec::new(),
            };
            fs.crash(mode);
            let (db, h) = open(&fs, 4000).unwrap_or_else(|e| panic!("op {k} {mode:?}: {e}"));
            let r = db.read();
            for id in &acked {
                let row = r.get(&h.a_id, id).unwrap();
                assert!(row.is_some(), "op {k} {mode:?}: acknowledged {id} lost");
            }
            // Each transaction wrote its key to both tables: never one alone.
            assert_eq!(
                r.len(&h.a).unwrap(),
                r.len(&h.b).unwrap(),
                "op {k} {mode:?}: a partial transaction"
            );
            assert_eq!(
                r.len(&h.a).unwrap() as u64,
                db.revision(),
                "op {k} {mode:?}"
            );
        }
    }
}

/// 4 threads, 25 commits each of one key into both tables; returns the
/// acknowledged keys.
fn run_threads(db: &Db, h: &H) -> Vec<u32> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4u32)
            .map(|t| {
                s.spawn(move || {
                    let mut acked = Vec::new();
                    for i in 0..25 {
                        let id = t * 1000 + i;
                        let it = Item {
                            id,
                            v: 1,
                            tag: format!("{id}"),
                        };
                        let mut w = db.write(&[&h.a, &h.b]);
                        w.insert(&h.a, it.clone()).unwrap();
                        w.insert(&h.b, it).unwrap();
                        if w.commit().is_err() {
                            break;
                        }
                        acked.push(id);
                    }
                    acked
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

/// An event's level and fields.
type Captured = (tracing::Level, BTreeMap<String, String>);

/// A `tracing` subscriber keeping each event's level and fields.
#[derive(Clone, Default)]
struct Events(Arc<std::sync::Mutex<Vec<Captured>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
}

impl tracing::Subscriber for Events {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let level = *event.metadata().level();
        self.0.lock().unwrap().push((level, fields));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn a_fail_stop_is_one_error_event() {
    let events = Events::default();
    tracing::subscriber::with_default(events.clone(), || {
        let fs = SimFs::new();
        let (db, h) = open(&fs, 0).unwrap();
        // Every I/O operation from now on fails.
        fs.fail_at(fs.op_count(), true);
        let item = |id| Item {
            id,
            v: 0,
            tag: String::new(),
        };
        let mut w = db.write(&[&h.a]);
        w.insert(&h.a, item(1)).unwrap();
        let first = w.commit().unwrap_err();
        let mut w = db.write(&[&h.a]);
        w.insert(&h.a, item(2)).unwrap();
        assert!(matches!(w.commit(), Err(Error::WritesStopped(_))));
        let errors: Vec<_> = events
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(level, _)| *level == tracing::Level::ERROR)
            .cloned()
            .collect();
        assert_eq!(errors.len(), 1, "one event, at the first error only");
        let fields = &errors[0].1;
        assert_eq!(fields["message"], "pandodb: writes stopped");
        assert_eq!(fields["error"], first.to_string());
        assert_eq!(fields["dir"], DIR);
    });
}
