//! Watches (G9): precise firing per query form, never missed (also when a
//! commit races with the registration), fired only after the commit is
//! visible, watch sets of 100,000 watches on one thread, and the async
//! forms (driven by a tiny executor, no runtime dependency).

use std::future::Future;
use std::ops::Bound;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use pandodb::{Db, Index, Indexer, Query, Schema, Table, Watch, WatchSet};

#[derive(Debug, Clone, PartialEq)]
struct Svc {
    name: String,
    port: u16,
    zone: String,
}

fn svc(name: &str, port: u16, zone: &str) -> Svc {
    Svc {
        name: name.into(),
        port,
        zone: zone.into(),
    }
}

struct Setup {
    db: Db,
    t: Table<Svc>,
    by_name: Index<Svc, str>,
    by_port: Index<Svc, u16>,
    by_zone: Index<Svc, str>,
    other: Table<Svc>,
}

fn setup() -> Setup {
    let mut s = Schema::builder();
    let mut t = s.table::<Svc>("svc");
    let by_name = t.primary("name", Indexer::string(|x: &Svc| x.name.as_str()));
    let by_port = t.unique("port", Indexer::value(|x: &Svc| x.port));
    let by_zone = t.index("zone", Indexer::string(|x: &Svc| x.zone.as_str()));
    let t = s.add(t).unwrap();
    let mut o = s.table::<Svc>("other");
    o.primary("name", Indexer::string(|x: &Svc| x.name.as_str()));
    let other = s.add(o).unwrap();
    let db = Db::new(s.build().unwrap());
    let st = Setup {
        db,
        t,
        by_name,
        by_port,
        by_zone,
        other,
    };
    put(&st, svc("api", 80, "eu"));
    put(&st, svc("db", 5432, "us"));
    st
}

fn put(s: &Setup, x: Svc) -> u64 {
    let mut w = s.db.write(&[&s.t]);
    w.insert(&s.t, x).unwrap();
    w.commit().unwrap().revision
}

fn del(s: &Setup, name: &str) {
    let mut w = s.db.write(&[&s.t]);
    w.delete_all(&s.by_name, name).unwrap();
    w.commit().unwrap();
}

/// Applies `change` and reports which of the watches fired.
fn fired_after(watches: &[&Watch], change: impl FnOnce()) -> Vec<bool> {
    assert!(watches.iter().all(|w| !w.is_fired()), "fired too early");
    change();
    watches.iter().map(|w| w.is_fired()).collect()
}

#[test]
fn exact_watches_are_precise() {
    let s = setup();
    let r = s.db.read();
    let (api, w_api) = r.get_watch(&s.by_name, "api").unwrap();
    assert_eq!(api.unwrap().port, 80);
    let (_, w_db) = r.get_watch(&s.by_name, "db").unwrap();
    let (missing, w_missing) = r.get_watch(&s.by_name, "cache").unwrap();
    assert!(missing.is_none());
    let (_, w_port) = r.get_watch(&s.by_port, &5432).unwrap();
    // Unrelated keys fire nothing (go-memdb issue #150: a missing key's
    // watch fires on unrelated writes there).
    assert_eq!(
        fired_after(&[&w_api, &w_db, &w_missing, &w_port], || {
            put(&s, svc("web", 8080, "eu"));
        }),
        [false, false, false, false]
    );
    // Changing `api` fires only its watch.
    assert_eq!(
        fired_after(&[&w_api, &w_db, &w_missing, &w_port], || {
            put(&s, svc("api", 81, "eu"));
        }),
        [true, false, false, false]
    );
    // A missing key's watch fires when it appears.
    assert_eq!(
        fired_after(&[&w_db, &w_missing, &w_port], || {
            put(&s, svc("cache", 6379, "us"));
        }),
        [false, true, false]
    );
    // A unique secondary key: fires when its holder goes.
    assert_eq!(
        fired_after(&[&w_db, &w_port], || del(&s, "db")),
        [true, true]
    );
    // A change to another table fires nothing here.
    let (_, w) = s.db.read().get_watch(&s.by_name, "api").unwrap();
    let mut tx = s.db.write(&[&s.other]);
    tx.insert(&s.other, svc("api", 1, "x")).unwrap();
    tx.commit().unwrap();
    assert!(!w.is_fired());
}

#[test]
fn non_unique_and_prefix_watches_are_precise() {
    let s = setup();
    let r = s.db.read();
    let (eu, w_eu) = r.iter_watch(&s.by_zone, "eu").unwrap();
    assert_eq!(eu.len(), 1);
    let (_, w_ap) = r.get_watch(&s.by_zone, "ap").unwrap();
    let (_, w_pfx) = r.prefix_watch(&s.by_name, "ap").unwrap();
    let (n, w_cnt) = r.count_watch(&s.by_zone, "us").unwrap();
    assert_eq!(n, 1);
    let (_, w_cntp) = r.count_prefix_watch(&s.by_name, "d").unwrap();
    let all = [&w_eu, &w_ap, &w_pfx, &w_cnt, &w_cntp];
    // "dz" in zone "us": count of "us" and prefix "d" change.
    assert_eq!(
        fired_after(&all, || {
            put(&s, svc("dz", 1, "us"));
        }),
        [false, false, false, true, true]
    );
    // "apx" in zone "eu": prefix "ap" of names and zone "eu" change; zone
    // "ap" (a prefix of no zone here) does not.
    assert_eq!(
        fired_after(&[&w_eu, &w_ap, &w_pfx], || {
            put(&s, svc("apx", 2, "eu"));
        }),
        [true, false, true]
    );
    // A zone that sorts next to "ap" but is not "ap": no fire. The zone
    // "ap" itself: fire.
    assert!(
        !fired_after(&[&w_ap], || {
            put(&s, svc("q", 3, "apac"));
        })[0]
    );
    assert!(
        fired_after(&[&w_ap], || {
            put(&s, svc("r", 4, "ap"));
        })[0]
    );
}

#[test]
fn range_all_and_table_watches() {
    let s = setup();
    let r = s.db.read();
    let (rows, w_lb) = r.lower_bound_watch(&s.by_port, &1000).unwrap();
    assert_eq!(rows.len(), 1);
    let (_, w_rng) = r
        .range_watch(&s.by_port, Bound::Included(&100), Bound::Excluded(&200))
        .unwrap();
    let (_, w_all) = r.all_watch(&s.by_zone).unwrap();
    let w_table = r.table_watch(&s.t).unwrap();
    // A port below both ranges: only the whole-index and table watches.
    assert_eq!(
        fired_after(&[&w_lb, &w_rng, &w_all, &w_table], || {
            put(&s, svc("low", 10, "eu"));
        }),
        [false, false, true, true]
    );
    assert_eq!(
        fired_after(&[&w_lb, &w_rng], || {
            put(&s, svc("mid", 150, "eu"));
        }),
        [false, true]
    );
    assert!(
        fired_after(&[&w_lb], || {
            put(&s, svc("high", 9000, "eu"));
        })[0]
    );
}

#[test]
fn a_watch_taken_from_an_older_snapshot_sees_commits_since() {
    let s = setup();
    let old = s.db.read();
    put(&s, svc("api", 99, "eu"));
    // Registered after the commit, from a snapshot before it: fires at once.
    let (_, w) = old.get_watch(&s.by_name, "api").unwrap();
    assert!(w.is_fired());
    // A commit that did not touch the key: not fired, as long as the table
    // was watched when it committed (so its keys were logged; a table
    // nobody watches logs nothing and such a late watch fires at once).
    let (_, keep) = s.db.read().get_watch(&s.by_name, "db").unwrap();
    let old = s.db.read();
    put(&s, svc("zzz", 1, "eu"));
    let (_, w) = old.get_watch(&s.by_name, "api").unwrap();
    assert!(!w.is_fired());
    assert!(!keep.is_fired());
    // Fires at once also when the older commits are no longer remembered
    // one by one (conservatively).
    let old = s.db.read();
    for i in 0..100 {
        put(&s, svc(&format!("n{i}"), 20_000 + i, "eu"));
    }
    let (_, w) = old.get_watch(&s.by_name, "api").unwrap();
    assert!(w.is_fired());
}

#[test]
fn a_woken_reader_sees_the_commit_that_fired_the_watch() {
    let s = Arc::new(setup());
    for i in 0..200u16 {
        let (_, w) = s.db.read().get_watch(&s.by_name, "api").unwrap();
        let writer = {
            let s = s.clone();
            thread::spawn(move || put(&s, svc("api", 1000 + i, "eu")))
        };
        assert!(
            w.wait_timeout(Duration::from_secs(30)).unwrap(),
            "watch {i} never fired"
        );
        let seen = s.db.read().get(&s.by_name, "api").unwrap().unwrap().port;
        assert_eq!(seen, 1000 + i, "woken before the commit was visible");
        writer.join().unwrap();
    }
}

#[test]
fn watches_never_miss_a_racing_commit() {
    // A writer bumps one counter as fast as it can; a watcher reads it with
    // a watch and waits. Every wait must end (no lost wake-up).
    let s = Arc::new(setup());
    let total = 3000u16;
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (s, done) = (s.clone(), done.clone());
        thread::spawn(move || {
            for i in 0..total {
                put(&s, svc("api", i, "eu"));
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut waits = 0;
    loop {
        let r = s.db.read();
        let (v, w) = r.get_watch(&s.by_name, "api").unwrap();
        if v.unwrap().port == total - 1 {
            break;
        }
        assert!(
            w.wait_timeout(Duration::from_secs(30)).unwrap(),
            "missed a commit after revision {}",
            r.revision()
        );
        waits += 1;
    }
    writer.join().unwrap();
    assert!(done.load(Ordering::SeqCst));
    assert!(waits > 0);
}

#[test]
fn a_watch_set_of_100k_watches_waits_on_one_thread() {
    let s = setup();
    let r = s.db.read();
    let n = 100_000;
    let mut set = WatchSet::new();
    for i in 0..n {
        let (_, w) = r.get_watch(&s.by_name, &format!("k{i:06}")).unwrap();
        assert_eq!(set.add(w), i);
    }
    let (count, bytes) = s.db.watch_stats();
    assert_eq!(count, n);
    println!(
        "{n} watches registered: {bytes} registry bytes ({} per watch)",
        bytes / n
    );
    assert_eq!(set.wait_timeout(Duration::from_millis(5)).unwrap(), None);
    // Unrelated commits do not wake the set.
    put(&s, svc("zzz", 1, "eu"));
    assert_eq!(set.fired(), None);
    let waiter = thread::spawn(move || set.wait());
    put(&s, svc("k077777", 2, "eu"));
    assert_eq!(waiter.join().unwrap().unwrap(), 77_777);
    // The fired watch left the registry; the others stay.
    assert_eq!(s.db.watch_stats().0, n - 1);
}

#[test]
fn dropped_watches_are_swept_from_the_registry() {
    let s = setup();
    for i in 0..10_000 {
        let r = s.db.read();
        drop(r.get_watch(&s.by_name, &format!("k{i}")).unwrap());
    }
    // Registering sweeps watches nobody holds: the registry stays small.
    assert!(s.db.watch_stats().0 < 2048, "{:?}", s.db.watch_stats());
}

/// A minimal executor: polls a future on this thread, parking between
/// wake-ups.
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

#[test]
fn watches_and_sets_are_futures() {
    let s = Arc::new(setup());
    let (_, w) = s.db.read().get_watch(&s.by_name, "api").unwrap();
    let mut set = WatchSet::new();
    set.add(s.db.read().get_watch(&s.by_name, "nothing").unwrap().1);
    set.add(s.db.read().get_watch(&s.by_name, "db").unwrap().1);
    let fut = set.wait_async();
    let writer = {
        let s = s.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            put(&s, svc("api", 1, "eu"));
            put(&s, svc("db", 2, "eu"));
        })
    };
    block_on(w.fired()).unwrap();
    assert_eq!(block_on(fut), Ok(1));
    writer.join().unwrap();
}

/// The blocking waits end with `Error::Closed` when the database is closed
/// or its last handle dropped before their watch fired, whether they were
/// already blocked then (threads below) or start after (at once, the
/// timeouts not waited for). A wait that stays blocked fails the test
/// after 60 s instead of hanging it.
#[test]
fn blocking_waits_end_when_the_database_closes_or_goes() {
    use std::sync::mpsc;
    let limit = Duration::from_secs(60);
    for close in [false, true] {
        let s = setup();
        let r = s.db.read();
        let watch = r.get_watch(&s.by_name, "api").unwrap().1;
        let mut set = WatchSet::new();
        set.add(r.get_watch(&s.by_name, "db").unwrap().1);
        set.add(r.get_watch(&s.by_name, "zzz").unwrap().1);
        drop(r);
        let (tx, rx) = mpsc::channel();
        let (w1, w2, tx1, tx2) = (watch.clone(), watch.clone(), tx.clone(), tx.clone());
        thread::spawn(move || tx1.send(w1.wait()));
        thread::spawn(move || tx2.send(w2.wait_timeout(Duration::from_secs(600)).map(|_| ())));
        let (set_tx, set_rx) = mpsc::channel();
        thread::spawn(move || {
            let r = set.wait();
            set_tx.send((r, set)).unwrap();
        });
        thread::sleep(Duration::from_millis(20));
        if close {
            s.db.clone().close().unwrap();
        }
        drop(s);
        for _ in 0..2 {
            let r = rx.recv_timeout(limit).expect("a blocked wait did not end");
            assert!(matches!(r, Err(pandodb::Error::Closed(_))), "{r:?}");
        }
        let (r, set) = set_rx
            .recv_timeout(limit)
            .expect("the set's wait did not end");
        assert!(matches!(r, Err(pandodb::Error::Closed(_))), "{r:?}");
        // Waits begun afterwards end at once (the timeouts are not waited
        // for).
        let (after_tx, after_rx) = mpsc::channel();
        thread::spawn(move || {
            let w = watch.wait();
            let t = watch.wait_timeout(Duration::from_secs(600));
            let s = set.wait_timeout(Duration::from_secs(600));
            after_tx.send((w, t, s, watch.is_fired())).unwrap();
        });
        let (w, t, s, fired) = after_rx
            .recv_timeout(limit)
            .expect("a wait begun after the close did not end");
        assert!(matches!(w, Err(pandodb::Error::Closed(_))), "{w:?}");
        assert!(matches!(t, Err(pandodb::Error::Closed(_))), "{t:?}");
        assert!(matches!(s, Err(pandodb::Error::Closed(_))), "{s:?}");
        assert!(!fired);
    }
}
