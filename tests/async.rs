//! The async API (issue "At home in an async Rust service"): writer locks
//! taken as futures (`Db::write_async`) mixing with blocking writers, the
//! `Stream`s (watch streams, watch sets, change-feed subscriptions),
//! futures ending with `Error::Closed` when what they wait on goes, `Send`
//! futures over `&[&dyn TableRef]`, and `Db::close`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use pandodb::{
    Db, Durability, Error, Index, Indexer, Options, Query, ReadTxn, Retention, Schema, Table,
    TableRef, WatchSet,
};
use tokio::time::timeout;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Row {
    id: String,
    n: u64,
}

fn row(id: &str, n: u64) -> Row {
    Row { id: id.into(), n }
}

struct Setup {
    db: Db,
    t: [Table<Row>; 3],
    by_id: [Index<Row, str>; 3],
}

fn schema() -> (Schema, [Table<Row>; 3], [Index<Row, str>; 3]) {
    let mut s = Schema::builder();
    let mut tables = Vec::new();
    let mut indexes = Vec::new();
    for name in ["a", "b", "c"] {
        let mut t = s.table::<Row>(name);
        indexes.push(t.primary("id", Indexer::string(|r: &Row| r.id.as_str())));
        t.serde();
        tables.push(s.add(t).unwrap());
    }
    let t: [Table<Row>; 3] = tables.try_into().ok().unwrap();
    let i: [Index<Row, str>; 3] = indexes.try_into().ok().unwrap();
    (s.build().unwrap(), t, i)
}

fn setup_with(options: Options) -> Setup {
    let (s, t, by_id) = schema();
    Setup {
        db: Db::with_options(s, options),
        t,
        by_id,
    }
}

fn setup() -> Setup {
    setup_with(Options::default())
}

fn closed<T>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::Closed(_)))
}

const WAIT: Duration = Duration::from_secs(10);

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn write_async_waits_for_a_writer_holding_its_lock_across_an_await() {
    let s = Arc::new(setup());
    current_thread().block_on(async {
        let (locked_tx, locked_rx) = tokio::sync::oneshot::channel();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let first = {
            let s = s.clone();
            tokio::spawn(async move {
                let mut w = s.db.write_async(&[&s.t[0]]).await;
                w.insert(&s.t[0], row("x", 1)).unwrap();
                locked_tx.send(()).unwrap();
                // Held across awaits while the other task asks for it.
                go_rx.await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                w.commit().unwrap().revision
            })
        };
        locked_rx.await.unwrap();
        let second = {
            let s = s.clone();
            tokio::spawn(async move {
                let mut w = s.db.write_async(&[&s.t[0]]).await;
                let base = w.base_revision();
                let seen = w.get(&s.by_id[0], "x").unwrap().map(|r| r.n);
                w.insert(&s.t[0], row("x", 2)).unwrap();
                (base, seen, w.commit().unwrap().revision)
            })
        };
        tokio::task::yield_now().await;
        go_tx.send(()).unwrap();
        let first = timeout(WAIT, first).await.unwrap().unwrap();
        let second = timeout(WAIT, second).await.unwrap().unwrap();
        assert_eq!(first, 1);
        assert_eq!(
            second,
            (1, Some(1), 2),
            "the second writer came after the first"
        );
    });
    assert_eq!(s.db.read().get(&s.by_id[0], "x").unwrap().unwrap().n, 2);
}

#[test]
fn a_dropped_write_async_future_releases_the_locks_it_took() {
    let s = setup();
    current_thread().block_on(async {
        let held = s.db.write_async(&[&s.t[1]]).await;
        // Takes a, then waits for b: dropped while waiting.
        let waiting = s.db.write_async(&[&s.t[0], &s.t[1]]);
        assert!(timeout(Duration::from_millis(20), waiting).await.is_err());
        drop(held);
        let w = timeout(WAIT, s.db.write_async(&[&s.t[0]])).await;
        assert!(w.is_ok(), "table a was left locked");
    });
}

#[test]
fn blocking_and_async_writers_of_overlapping_tables_mix() {
    let s = Arc::new(setup());
    const N: u64 = 200;
    let sets: [[usize; 2]; 3] = [[0, 1], [1, 2], [2, 0]];
    // One transaction: every named table's counter + 1.
    fn bump(s: &Setup, w: &mut pandodb::WriteTxn, tables: [usize; 2]) {
        for i in tables {
            let n = w.get(&s.by_id[i], "k").unwrap().map_or(0, |r| r.n);
            w.insert(&s.t[i], row("k", n + 1)).unwrap();
        }
    }
    let threads: Vec<_> = sets
        .iter()
        .map(|&set| {
            let s = s.clone();
            std::thread::spawn(move || {
                for _ in 0..N {
                    let mut w = s.db.write(&[&s.t[set[0]], &s.t[set[1]]]);
                    bump(&s, &mut w, set);
                    w.commit().unwrap();
                }
            })
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = sets
            .iter()
            .map(|&set| {
                let s = s.clone();
                tokio::spawn(async move {
                    for _ in 0..N {
                        let tables: [&dyn TableRef; 2] = [&s.t[set[1]], &s.t[set[0]]];
                        let mut w = s.db.write_async(&tables).await;
                        bump(&s, &mut w, set);
                        tokio::task::yield_now().await; // held across an await
                        w.commit().unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            timeout(Duration::from_secs(60), t).await.unwrap().unwrap();
        }
    });
    for t in threads {
        t.join().unwrap();
    }
    let r = s.db.read();
    for i in 0..3 {
        // Each table is in two of the three sets, written by a thread and
        // a task each.
        assert_eq!(r.get(&s.by_id[i], "k").unwrap().unwrap().n, 4 * N);
    }
}

#[test]
fn a_future_holding_table_refs_across_an_await_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let s = setup();
    let fut = async {
        let tables: &[&dyn TableRef] = &[&s.t[0], &s.t[1]];
        let mut w = s.db.write_async(tables).await;
        tokio::task::yield_now().await;
        w.insert(&s.t[0], row("x", tables.len() as u64)).unwrap();
        w.commit().unwrap()
    };
    assert_send(&fut);
    assert_eq!(current_thread().block_on(fut).revision, 1);
}

#[test]
fn a_dropped_watch_set_ends_its_pending_future() {
    let s = setup();
    let mut set = WatchSet::new();
    set.add(s.db.read().get_watch(&s.by_id[0], "x").unwrap().1);
    let fut = set.wait_async();
    drop(set);
    let got = current_thread().block_on(async { timeout(Duration::from_secs(2), fut).await });
    match got {
        Ok(Err(Error::Closed(what))) => assert!(what.contains("watch set"), "{what}"),
        other => panic!("a dropped set's future must end with Error::Closed: {other:?}"),
    }
}

#[test]
fn watch_stream_yields_the_query_result_each_time_it_may_have_changed() {
    let s = setup();
    let by_id = s.by_id[0].clone();
    let mut web = s.db.watch_stream(move |r: &ReadTxn| {
        let (rows, watch) = r.prefix_watch(&by_id, "web.")?;
        Ok((rows.map(|r| r.id.clone()).collect::<Vec<_>>(), watch))
    });
    let put = |id: &str| {
        let mut w = s.db.write(&[&s.t[0]]);
        w.insert(&s.t[0], row(id, 0)).unwrap();
        w.commit().unwrap();
    };
    current_thread().block_on(async {
        assert_eq!(web.next().await.unwrap().unwrap(), Vec::<String>::new());
        put("db.1"); // not covered by the query
        assert!(
            timeout(Duration::from_millis(20), web.next())
                .await
                .is_err()
        );
        put("web.1");
        let got = timeout(WAIT, web.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(got, ["web.1"]);
        put("web.2");
        put("web.3");
        let got = timeout(WAIT, web.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(got, ["web.1", "web.2", "web.3"], "the latest version");
    });
}

#[test]
fn a_watch_set_is_a_stream_of_every_watch_that_fires() {
    let s = setup();
    let r = s.db.read();
    let mut set = WatchSet::new();
    for key in ["a", "b", "c"] {
        set.add(r.get_watch(&s.by_id[0], key).unwrap().1);
    }
    let put = |id: &str| {
        let mut w = s.db.write(&[&s.t[0]]);
        w.insert(&s.t[0], row(id, 0)).unwrap();
        w.commit().unwrap();
    };
    current_thread().block_on(async {
        put("c");
        assert_eq!(set.next().await.unwrap(), Ok(2));
        assert!(
            timeout(Duration::from_millis(20), set.next())
                .await
                .is_err()
        );
        put("a");
        put("b");
        assert_eq!(timeout(WAIT, set.next()).await.unwrap().unwrap(), Ok(0));
        assert_eq!(timeout(WAIT, set.next()).await.unwrap().unwrap(), Ok(1));
        assert_eq!(set.next().await, None, "every watch fired");
    });
}

#[test]
fn a_subscription_is_a_stream_of_batches() {
    let s = Arc::new(setup());
    let mut feed = s.db.subscribe(&[&s.t[0]], 1).unwrap().into_stream();
    current_thread().block_on(async {
        let writer = {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..3 {
                    std::thread::sleep(Duration::from_millis(5));
                    let mut w = s.db.write(&[&s.t[0]]);
                    w.insert(&s.t[0], row("x", i)).unwrap();
                    w.commit().unwrap();
                }
            })
        };
        for rev in 1..=3 {
            let b = timeout(WAIT, feed.next()).await.unwrap().unwrap().unwrap();
            assert_eq!(b.revision, rev);
        }
        writer.join().unwrap();
    });

    // A subscriber behind the retained log: Error::Compacted, then the end.
    let s = setup_with(Options::default().feed_retention(Retention::commits(1)));
    let mut feed = s.db.subscribe(&[], 1).unwrap().into_stream();
    for i in 0..3 {
        let mut w = s.db.write(&[&s.t[0]]);
        w.insert(&s.t[0], row("x", i)).unwrap();
        w.commit().unwrap();
    }
    current_thread().block_on(async {
        assert!(matches!(
            feed.next().await,
            Some(Err(Error::Compacted { .. }))
        ));
        assert!(feed.next().await.is_none());
    });
}

#[test]
fn dropping_the_last_handle_or_closing_ends_every_pending_future() {
    for close in [false, true] {
        let s = setup();
        let by_id = s.by_id[0].clone();
        let (_, watch) = s.db.read().get_watch(&s.by_id[0], "x").unwrap();
        let mut set = WatchSet::new();
        set.add(s.db.read().get_watch(&s.by_id[1], "y").unwrap().1);
        let set_wait = set.wait_async();
        let mut feed = s.db.subscribe(&[], 1).unwrap().into_stream();
        let mut stream = s.db.watch_stream(move |r: &ReadTxn| {
            r.get_watch(&by_id, "x").map(|(v, w)| (v.is_some(), w))
        });
        let clone = s.db.clone();
        current_thread().block_on(async {
            assert_eq!(stream.next().await.unwrap(), Ok(false));
            let waits = async {
                let w = watch.fired().await;
                assert!(closed(&w), "watch: {w:?}");
                let w = set_wait.await;
                assert!(closed(&w), "set: {w:?}");
                let w = set.next().await.unwrap();
                assert!(closed(&w), "set stream: {w:?}");
                let w = feed.next().await.unwrap();
                assert!(closed(&w), "feed: {w:?}");
                assert!(feed.next().await.is_none());
                let w = stream.next().await.unwrap();
                assert!(closed(&w), "watch stream: {w:?}");
                assert!(stream.next().await.is_none());
            };
            if close {
                let closer = async {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    s.db.clone().close().unwrap();
                    // A clone still held refuses writes.
                    let mut w = clone.write(&[&s.t[0]]);
                    w.insert(&s.t[0], row("x", 1)).unwrap();
                    assert!(matches!(w.commit(), Err(Error::Closed(_))));
                    assert!(matches!(clone.subscribe(&[], 1), Err(Error::Closed(_))));
                };
                let (_, r) = tokio::join!(closer, timeout(WAIT, waits));
                r.expect("every future ended");
            } else {
                drop(s);
                drop(clone);
                timeout(WAIT, waits).await.expect("every future ended");
            }
        });
    }
}

#[test]
fn close_releases_the_directory_lock_while_clones_live() {
    let dir = std::env::temp_dir().join(format!("pandodb-async-close-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for durability in [
        Durability::Sync,
        Durability::Batched(Duration::from_secs(3600)),
    ] {
        let _ = std::fs::remove_dir_all(&dir);
        let options = || Options::default().durability(durability);
        let (sch, t, _) = schema();
        let db = Db::open(&dir, sch, options()).unwrap();
        let mut w = db.write(&[&t[0]]);
        w.insert(&t[0], row("kept", 7)).unwrap();
        w.commit().unwrap();

        let err = Db::open(&dir, schema().0, options()).unwrap_err();
        assert!(matches!(err, Error::AlreadyOpen(_)), "{err:?}");
        assert!(
            err.to_string()
                .contains("already open (by this or another process)"),
            "{err}"
        );

        // A thread keeps a clone (as a watch task would).
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let (clone, t0) = (db.clone(), t[0].clone());
        let keeper = std::thread::spawn(move || {
            stop_rx.recv().unwrap();
            let mut w = clone.write(&[&t0]);
            w.insert(&t0, row("late", 1)).unwrap();
            let refused = w.commit();
            // Reads still work on the last version.
            (refused, clone.read().len(&t0).unwrap())
        });
        db.close().unwrap();

        let (sch, _, by_id) = schema();
        let again = Db::open(&dir, sch, options()).expect("reopens after close");
        assert_eq!(again.read().get(&by_id[0], "kept").unwrap().unwrap().n, 7);
        stop_tx.send(()).unwrap();
        let (refused, len) = keeper.join().unwrap();
        assert!(matches!(refused, Err(Error::Closed(_))), "{refused:?}");
        assert_eq!(len, 1);
        assert!(again.read().get(&by_id[0], "late").unwrap().is_none());
        drop(again);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
