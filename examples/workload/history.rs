//! History workloads (issue 18), pandodb only:
//!
//! - `read_at_lookup`: a lookup by id through `db.read_at(revision)` (50
//!   revisions back) against `db.read()`, a fresh transaction per lookup
//!   and one transaction for many, interleaved over 6 rounds (min and
//!   median of the rounds);
//! - `history_memory`: heap bytes per retained revision under single-object
//!   update churn: the same churn on a database keeping 100 past revisions
//!   and on one keeping none;
//! - `update_history`: single-object update commits with a read history of
//!   100 revisions and of none, interleaved (a kept base version makes the
//!   commit restore its lending counts instead of freeing the copied
//!   nodes);
//! - `feed_rebuild`: `Db::open` of a directory whose feed retains 100,000
//!   commits, with the feed's retention at 100,000 against the feed off,
//!   with the commits in the log (replayed) and after a checkpoint (the
//!   history file);
//! - `versioned_rows`: rows with revisions (`VersionedQuery`) against the
//!   plain owned rows: a secondary index (`iter` by age, 10,000 rows per
//!   age at N = 1M) and the primary one (`lower_bound` pages of 100 ids),
//!   4 interleaved rounds.

use super::*;

/// The workload's schema in a database with `opts`.
fn pando_with(opts: Options) -> Pando {
    let e = pando_schema();
    let schema = e.db.schema().clone();
    drop(e.db);
    Pando {
        db: Db::with_options(schema, opts),
        people: e.people,
        by_id: e.by_id,
        by_age: e.by_age,
    }
}

fn loaded(n: u64, history: usize) -> Pando {
    let e = pando_with(Options::default().read_history(history));
    let mut w = e.db.write(&[&e.people]);
    for i in 0..n {
        w.insert(&e.people, person(i)).expect("insert");
    }
    w.commit().expect("commit");
    e
}

/// One single-object update commit of a random row.
fn update_one(e: &Pando, rng: &mut Rng, n: u64) {
    let mut p = person(rng.below(n));
    p.age = (p.age + 1 + rng.below(98) as i64) % 100;
    let mut w = e.db.write(&[&e.people]);
    w.insert(&e.people, p).expect("update");
    w.commit().expect("commit");
}

fn min_median(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2])
}

pub(super) fn history_workloads(cfg: &Cfg) {
    if cfg.enabled("read_at_lookup") {
        read_at_lookup(cfg);
    }
    if cfg.enabled("history_memory") {
        history_memory(cfg);
    }
    if cfg.enabled("update_history") {
        update_history(cfg);
    }
    if cfg.enabled("feed_rebuild") {
        feed_rebuild(cfg);
    }
    if cfg.enabled("versioned_rows") {
        versioned_rows(cfg);
    }
}

fn versioned_rows(cfg: &Cfg) {
    use pandodb::VersionedQuery;
    let n = cfg.n;
    let e = loaded(n, 0);
    let mut rng = Rng(19);
    let ages: Vec<i64> = (0..200).map(|_| rng.below(100) as i64).collect();
    let starts: Vec<String> = (0..100_000).map(|_| person(rng.below(n)).id).collect();
    let mut t = [vec![], vec![], vec![], vec![]];
    let mut rows = [0usize; 2];
    for _ in 0..4 {
        let r = e.db.read();
        let (secs, _, k) = timed(cfg, || {
            ages.iter()
                .map(|a| {
                    r.iter(&e.by_age, a)
                        .unwrap()
                        .map(|p| usize::from(p.age >= 0))
                        .sum::<usize>()
                })
                .sum::<usize>()
        });
        rows[0] = k;
        t[0].push(secs * 1e9 / k.max(1) as f64);
        let (secs, _, k) = timed(cfg, || {
            ages.iter()
                .map(|a| {
                    r.iter_versioned(&e.by_age, a)
                        .unwrap()
                        .map(|v| usize::from(v.modified > 0))
                        .sum::<usize>()
                })
                .sum::<usize>()
        });
        assert_eq!(k, rows[0]);
        t[1].push(secs * 1e9 / k.max(1) as f64);
        let (secs, _, k) = timed(cfg, || {
            starts
                .iter()
                .map(|s| {
                    r.lower_bound(&e.by_id, s.as_str())
                        .unwrap()
                        .take(100)
                        .map(|p| p.id.len())
                        .sum::<usize>()
                })
                .sum::<usize>()
        });
        rows[1] = k;
        t[2].push(secs * 1e9 / starts.len() as f64);
        let (secs, _, k) = timed(cfg, || {
            starts
                .iter()
                .map(|s| {
                    r.lower_bound_versioned(&e.by_id, s.as_str())
                        .unwrap()
                        .take(100)
                        .map(|v| v.object.id.len())
                        .sum::<usize>()
                })
                .sum::<usize>()
        });
        assert_eq!(k, rows[1]);
        t[3].push(secs * 1e9 / starts.len() as f64);
    }
    let [mut a, mut b, mut c, mut d] = t;
    let (sec_plain, _) = min_median(&mut a);
    let (sec_versioned, _) = min_median(&mut b);
    let (pri_plain, _) = min_median(&mut c);
    let (pri_versioned, _) = min_median(&mut d);
    emit(
        "pandodb",
        "versioned_rows",
        n,
        Some(sec_versioned),
        &[
            ("secondary_iter_ns_per_row", f2(sec_plain)),
            ("secondary_iter_versioned_ns_per_row", f2(sec_versioned)),
            ("primary_page_ns", f2(pri_plain)),
            ("primary_page_versioned_ns", f2(pri_versioned)),
            (
                "note",
                "\"iter(by_age) vs iter_versioned, 200 random ages; lower_bound(by_id) pages of 100 vs lower_bound_versioned, 100,000 random starts; min of 4 interleaved rounds\"".into(),
            ),
        ],
    );
}

fn read_at_lookup(cfg: &Cfg) {
    let n = cfg.n;
    let e = loaded(n, 100);
    let mut rng = Rng(7);
    for _ in 0..100 {
        update_one(&e, &mut rng, n);
    }
    let past = e.db.revision() - 50;
    let ids: Vec<String> = (0..1_000_000).map(|_| person(rng.below(n)).id).collect();
    let (mut read, mut at, mut read_one, mut at_one) = (vec![], vec![], vec![], vec![]);
    for _ in 0..6 {
        let (secs, _, found) = timed(cfg, || {
            ids.iter()
                .filter(|id| {
                    e.db.read()
                        .get_ref(&e.by_id, id.as_str())
                        .unwrap()
                        .is_some()
                })
                .count()
        });
        assert_eq!(found, ids.len());
        read.push(secs * 1e9 / ids.len() as f64);
        let (secs, _, found) = timed(cfg, || {
            ids.iter()
                .filter(|id| {
                    let r = e.db.read_at(past).unwrap();
                    r.get_ref(&e.by_id, id.as_str()).unwrap().is_some()
                })
                .count()
        });
        assert_eq!(found, ids.len());
        at.push(secs * 1e9 / ids.len() as f64);
        let (secs, _, found) = timed(cfg, || {
            let r = e.db.read();
            ids.iter()
                .filter(|id| r.get_ref(&e.by_id, id.as_str()).unwrap().is_some())
                .count()
        });
        assert_eq!(found, ids.len());
        read_one.push(secs * 1e9 / ids.len() as f64);
        let (secs, _, found) = timed(cfg, || {
            let r = e.db.read_at(past).unwrap();
            ids.iter()
                .filter(|id| r.get_ref(&e.by_id, id.as_str()).unwrap().is_some())
                .count()
        });
        assert_eq!(found, ids.len());
        at_one.push(secs * 1e9 / ids.len() as f64);
    }
    let (read_min, read_med) = min_median(&mut read);
    let (at_min, at_med) = min_median(&mut at);
    let (read1_min, read1_med) = min_median(&mut read_one);
    let (at1_min, at1_med) = min_median(&mut at_one);
    emit(
        "pandodb",
        "read_at_lookup",
        n,
        Some(at_min),
        &[
            ("fresh_txn_read_ns_min", f2(read_min)),
            ("fresh_txn_read_ns_median", f2(read_med)),
            ("fresh_txn_read_at_ns_min", f2(at_min)),
            ("fresh_txn_read_at_ns_median", f2(at_med)),
            ("one_txn_read_ns_min", f2(read1_min)),
            ("one_txn_read_ns_median", f2(read1_med)),
            ("one_txn_read_at_ns_min", f2(at1_min)),
            ("one_txn_read_at_ns_median", f2(at1_med)),
            (
                "note",
                "\"get_ref by id, 1,000,000 random ids, read_at 50 revisions back of a 100-revision history; 6 interleaved rounds\"".into(),
            ),
        ],
    );
}

fn history_memory(cfg: &Cfg) {
    let n = cfg.n;
    let churn = 300;
    let mut live = [0usize; 2];
    for (slot, history) in [(0, 0), (1, 100)] {
        cfg.wait_quiet();
        let base = ALLOC.allocated();
        let e = loaded(n, history);
        let mut rng = Rng(11);
        for _ in 0..churn {
            update_one(&e, &mut rng, n);
        }
        live[slot] = ALLOC.allocated() - base;
        drop(e);
    }
    let per_revision = (live[1] as f64 - live[0] as f64) / 100.0;
    emit(
        "pandodb",
        "history_memory",
        n,
        None,
        &[
            ("live_bytes_history_0", live[0].to_string()),
            ("live_bytes_history_100", live[1].to_string()),
            ("bytes_per_retained_revision", f2(per_revision)),
            (
                "note",
                "\"300 single-object update commits (random ids) after bulk_insert; requested heap bytes\"".into(),
            ),
        ],
    );
}

fn update_history(cfg: &Cfg) {
    let n = cfg.n;
    let dbs = [loaded(n, 0), loaded(n, 100)];
    let mut rng = Rng(13);
    for e in &dbs {
        for _ in 0..200 {
            update_one(e, &mut rng, n);
        }
    }
    let per_round = 20_000;
    let mut ns = [vec![], vec![]];
    for _ in 0..5 {
        for (i, e) in dbs.iter().enumerate() {
            let (secs, _, ()) = timed(cfg, || {
                for _ in 0..per_round {
                    update_one(e, &mut rng, n);
                }
            });
            ns[i].push(secs * 1e9 / per_round as f64);
        }
    }
    let [mut none, mut hundred] = ns;
    let (none_min, none_med) = min_median(&mut none);
    let (h_min, h_med) = min_median(&mut hundred);
    emit(
        "pandodb",
        "update_history",
        n,
        Some(h_min),
        &[
            ("history_0_ns_min", f2(none_min)),
            ("history_0_ns_median", f2(none_med)),
            ("history_100_ns_min", f2(h_min)),
            ("history_100_ns_median", f2(h_med)),
            (
                "note",
                "\"single-object update commits, random ids; 5 interleaved rounds of 20,000\""
                    .into(),
            ),
        ],
    );
}

fn feed_rebuild(cfg: &Cfg) {
    let commits = 100_000u64;
    let rows = 10_000u64;
    let dir = scratch_dir("feed-rebuild");
    let opts = |retention: Retention| {
        Options::default()
            .durability(pandodb::Durability::Batched(Duration::from_secs(1)))
            .checkpoint_bytes(0)
            .feed_retention(retention)
    };
    {
        let e = open_durable(&dir, opts(Retention::commits(commits as usize)));
        let mut w = e.db.write(&[&e.people]);
        for i in 0..rows {
            w.insert(&e.people, person(i)).expect("insert");
        }
        w.commit().expect("commit");
        // A checkpoint of the rows: the log then holds the updates only.
        e.db.checkpoint().expect("checkpoint");
        let mut rng = Rng(17);
        for _ in 0..commits {
            update_one(&e, &mut rng, rows);
        }
    }
    let open_ms = |retention: Retention| {
        let mut v = vec![];
        for _ in 0..3 {
            cfg.wait_quiet();
            let t = Instant::now();
            let e = open_durable(&dir, opts(retention));
            v.push(t.elapsed().as_secs_f64() * 1e3);
            let (retained, _) = (e.db.stats().feed_commits, ());
            drop(e);
            if retention == Retention::commits(0) {
                assert_eq!(retained, 0);
            } else {
                assert_eq!(retained as u64, commits);
            }
        }
        min_median(&mut v).0
    };
    let from_log = open_ms(Retention::commits(commits as usize));
    let from_log_off = open_ms(Retention::commits(0));
    {
        let e = open_durable(&dir, opts(Retention::commits(commits as usize)));
        e.db.checkpoint().expect("checkpoint");
    }
    let hist_bytes: u64 = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|f| f.ok())
        .filter(|f| f.file_name().to_string_lossy().ends_with(".feed"))
        .map(|f| f.metadata().map_or(0, |m| m.len()))
        .sum();
    let from_file = open_ms(Retention::commits(commits as usize));
    let from_file_off = open_ms(Retention::commits(0));
    emit(
        "pandodb",
        "feed_rebuild",
        commits,
        Some((from_file - from_file_off) * 1e6 / commits as f64),
        &[
            ("open_ms_log_feed_on", f2(from_log)),
            ("open_ms_log_feed_off", f2(from_log_off)),
            ("open_ms_checkpoint_feed_on", f2(from_file)),
            ("open_ms_checkpoint_feed_off", f2(from_file_off)),
            ("history_file_bytes", hist_bytes.to_string()),
            (
                "note",
                "\"100,000 single-object update commits of a 10,000-row table retained; ns_per_op: rebuild from the history file per commit; min of 3 opens\"".into(),
            ),
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
}
