//! G1, G2 — threaded stress: two writers move value between accounts (each
//! transfer one write transaction that reads two rows and writes both, plus
//! one ledger row in a second table), two readers check on every fresh read
//! transaction that
//! - the sum of balances is constant (no torn or partial commit),
//! - the per-account operation counters add up to twice the ledger length
//!   (the two tables of one commit become visible together),
//! - revisions never go backwards, and a read never shows a revision newer
//!   than the database's,
//! - a snapshot kept for a while still reads back exactly what it did;
//!
//! a watcher (G9) waits on a watch of the ledger taken from a fresh read and
//! checks that it always fires while writers run, and that the read after
//! the wake-up shows a newer revision; a change-feed subscriber checks that
//! every transfer arrives once, in revision order, as one batch of exactly
//! its three changes, with no gap.
//!
//! Runs for `STRESS_SECS` seconds (default 10), then asserts zero
//! violations, progress on every thread, and that the final revision equals
//! the number of commits.
//!
//! Run: `STRESS_SECS=10 cargo test --release --test stress`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use pandodb::{ChangeKind, Db, Index, Indexer, Options, Query, ReadTxn, Retention, Schema, Table};

#[derive(Debug, Clone, PartialEq)]
struct Account {
    id: u32,
    bal: i64,
    ops: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    seq: u64,
    from: u32,
    to: u32,
    amount: i64,
}

const ACCOUNTS: u32 = 16;
const START: i64 = 1_000;
const TOTAL: i64 = ACCOUNTS as i64 * START;

#[derive(Clone)]
struct Bank {
    db: Db,
    accounts: Table<Account>,
    ledger: Table<Entry>,
    by_id: Index<Account, u32>,
    by_bal: Index<Account, i64>,
    by_seq: Index<Entry, u64>,
}

fn bank() -> Bank {
    let mut s = Schema::builder();
    let mut a = s.table::<Account>("accounts");
    let by_id = a.primary("id", Indexer::value(|x: &Account| x.id));
    let by_bal = a.index("bal", Indexer::value(|x: &Account| x.bal));
    let mut l = s.table::<Entry>("ledger");
    let by_seq = l.primary("seq", Indexer::value(|e: &Entry| e.seq));
    let _by_from = l.index("from", Indexer::value(|e: &Entry| e.from));
    let accounts = s.add(a).unwrap();
    let ledger = s.add(l).unwrap();
    let db = Db::with_options(
        s.build().unwrap(),
        Options::default().feed_retention(Retention::commits(4_000_000).max_bytes(4 << 30)),
    );
    let mut w = db.write(&[&accounts]);
    for id in 0..ACCOUNTS {
        w.insert(
            &accounts,
            Account {
                id,
                bal: START,
                ops: 0,
            },
        )
        .unwrap();
    }
    w.commit().unwrap();
    Bank {
        db,
        accounts,
        ledger,
        by_id,
        by_bal,
        by_seq,
    }
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// What one consistent version must satisfy; returns its (sum, ops, ledger
/// length) fingerprint, or a description of the violation.
fn audit(b: &Bank, r: &ReadTxn) -> Result<(i64, u64, usize), String> {
    let rows: Vec<Arc<Account>> = r.all(&b.by_id).map_err(|e| e.to_string())?.collect();
    if rows.len() != ACCOUNTS as usize || r.len(&b.accounts).unwrap() != rows.len() {
        return Err(format!("rev {}: {} accounts", r.revision(), rows.len()));
    }
    let sum: i64 = rows.iter().map(|a| a.bal).sum();
    let ops: u64 = rows.iter().map(|a| a.ops).sum();
    let ledger = r.len(&b.ledger).unwrap();
    if sum != TOTAL {
        return Err(format!("rev {}: sum {sum} != {TOTAL}", r.revision()));
    }
    if ops != 2 * ledger as u64 {
        return Err(format!(
            "rev {}: ops {ops} != 2 x ledger {ledger}",
            r.revision()
        ));
    }
    // The secondary index holds the same rows and the same sum.
    let by_bal: i64 = r.all(&b.by_bal).unwrap().map(|a| a.bal).sum();
    if by_bal != TOTAL || r.index_len(&b.by_bal).unwrap() != ACCOUNTS as usize {
        return Err(format!("rev {}: bal index sum {by_bal}", r.revision()));
    }
    if rows.iter().any(|a| a.bal < 0) {
        return Err(format!("rev {}: negative balance", r.revision()));
    }
    Ok((sum, ops, ledger))
}

#[test]
fn transfers_keep_the_sum_and_readers_see_consistent_versions() {
    let secs: f64 = std::env::var("STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let b = bank();
    let stop = Arc::new(AtomicBool::new(false));
    let violations = Arc::new(AtomicU64::new(0));
    let first_violation: Arc<Mutex<Option<String>>> = Arc::default();
    let report = {
        let (v, f) = (violations.clone(), first_violation.clone());
        move |msg: String| {
            v.fetch_add(1, Ordering::Relaxed);
            f.lock().unwrap().get_or_insert(msg);
        }
    };

    let mut writers = Vec::new();
    for t in 0..2u64 {
        let (b, stop) = (b.clone(), stop.clone());
        writers.push(thread::spawn(move || {
            let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (t + 1));
            let (mut commits, mut skipped) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let from = (rng.next() % u64::from(ACCOUNTS)) as u32;
                let to = (from + 1 + (rng.next() % u64::from(ACCOUNTS - 1)) as u32) % ACCOUNTS;
                let amount = (rng.next() % 150) as i64 + 1;
                let mut w = b.db.write(&[&b.accounts, &b.ledger]);
                let src = w.get(&b.by_id, &from).unwrap().expect("account exists");
                let dst = w.get(&b.by_id, &to).unwrap().expect("account exists");
                if src.bal < amount {
                    skipped += 1;
                    w.abort();
                    continue;
                }
                let seq = (t << 48) | commits;
                w.insert(
                    &b.accounts,
                    Account {
                        id: from,
                        bal: src.bal - amount,
                        ops: src.ops + 1,
                    },
                )
                .unwrap();
                w.insert(
                    &b.accounts,
                    Account {
                        id: to,
                        bal: dst.bal + amount,
                        ops: dst.ops + 1,
                    },
                )
                .unwrap();
                w.insert(
                    &b.ledger,
                    Entry {
                        seq,
                        from,
                        to,
                        amount,
                    },
                )
                .unwrap();
                w.commit().unwrap();
                commits += 1;
            }
            (commits, skipped)
        }));
    }

    let mut readers = Vec::new();
    for _ in 0..2 {
        let (b, stop, report) = (b.clone(), stop.clone(), report.clone());
        readers.push(thread::spawn(move || {
            let mut last_rev = 0u64;
            let mut reads = 0u64;
            let mut kept: Option<(ReadTxn, (i64, u64, usize))> = None;
            while !stop.load(Ordering::Relaxed) {
                let r = b.db.read();
                let rev = r.revision();
                if rev < last_rev {
                    report(format!("revision went backwards: {last_rev} -> {rev}"));
                }
                if rev > b.db.revision() {
                    report(format!("read shows revision {rev} above the database's"));
                }
                last_rev = rev;
                match audit(&b, &r) {
                    Ok(fp) => {
                        // Re-reading the same transaction gives the same answer.
                        if audit(&b, &r) != Ok(fp) {
                            report(format!("rev {rev}: non-repeatable read"));
                        }
                        if reads.is_multiple_of(64) {
                            if let Some((s, old)) = kept.take() {
                                match audit(&b, &s) {
                                    Ok(now) if now == old => {}
                                    other => report(format!(
                                        "kept snapshot changed: {old:?} -> {other:?}"
                                    )),
                                }
                                if s.len(&b.ledger).unwrap() != s.all(&b.by_seq).unwrap().count() {
                                    report("kept snapshot: ledger len != ledger rows".into());
                                }
                            }
                            kept = Some((r, fp));
                        }
                    }
                    Err(e) => report(e),
                }
                reads += 1;
            }
            reads
        }));
    }

    let watcher = {
        let (b, stop, report) = (b.clone(), stop.clone(), report.clone());
        thread::spawn(move || {
            let mut wakes = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let r = b.db.read();
                let (_, w) = r.all_watch(&b.by_seq).unwrap();
                if !w.wait_timeout(Duration::from_secs(5)).unwrap() {
                    if !stop.load(Ordering::Relaxed) {
                        report(format!("watch taken at {} never fired", r.revision()));
                    }
                    break;
                }
                let after = b.db.read().revision();
                if after <= r.revision() {
                    report(format!(
                        "woken at revision {after}, watch taken at {}",
                        r.revision()
                    ));
                }
                wakes += 1;
            }
            wakes
        })
    };
    let subscriber = {
        let (b, stop, report) = (b.clone(), stop.clone(), report.clone());
        let mut sub = b.db.subscribe(&[&b.accounts, &b.ledger], 2).unwrap();
        thread::spawn(move || {
            let mut batches = 0u64;
            let mut last = 1u64;
            loop {
                let batch = match sub.next_timeout(Duration::from_millis(100)) {
                    Ok(Some(batch)) => batch,
                    Ok(None) if stop.load(Ordering::Relaxed) => break,
                    Ok(None) => continue,
                    Err(e) => {
                        report(format!("feed: {e}"));
                        break;
                    }
                };
                if batch.revision != last + 1 {
                    report(format!("feed: revision {} after {last}", batch.revision));
                }
                last = batch.revision;
                let kinds: Vec<(String, ChangeKind)> = batch
                    .changes
                    .iter()
                    .map(|c| (c.table().to_string(), c.kind()))
                    .collect();
                let want = [
                    ("accounts".to_string(), ChangeKind::Update),
                    ("accounts".to_string(), ChangeKind::Update),
                    ("ledger".to_string(), ChangeKind::Insert),
                ];
                if kinds != want {
                    report(format!("feed: batch {} is {kinds:?}", batch.revision));
                }
                batches += 1;
            }
            // Drain what is left after the writers stopped.
            while let Ok(Some(batch)) = sub.try_next() {
                if batch.revision != last + 1 {
                    report(format!("feed: revision {} after {last}", batch.revision));
                }
                last = batch.revision;
                batches += 1;
            }
            batches
        })
    };

    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let mut commits = 0;
    for (i, h) in writers.into_iter().enumerate() {
        let (c, skipped) = h.join().unwrap();
        eprintln!("writer {i}: {c} transfers committed, {skipped} skipped");
        assert!(c > 0, "writer {i} made no progress");
        commits += c;
    }
    for (i, h) in readers.into_iter().enumerate() {
        let reads = h.join().unwrap();
        eprintln!("reader {i}: {reads} read transactions audited");
        assert!(reads > 0, "reader {i} made no progress");
    }
    let wakes = watcher.join().unwrap();
    eprintln!("watcher: {wakes} wake-ups");
    assert!(wakes > 0, "the watcher was never woken");
    let batches = subscriber.join().unwrap();
    eprintln!("subscriber: {batches} batches");
    assert_eq!(
        batches, commits,
        "the feed delivered one batch per transfer"
    );
    let v = violations.load(Ordering::Relaxed);
    assert_eq!(
        v,
        0,
        "{v} violations, first: {:?}",
        first_violation.lock().unwrap()
    );

    // The final state: every commit is one revision (plus the initial load).
    let r = b.db.read();
    assert_eq!(audit(&b, &r), Ok((TOTAL, 2 * commits, commits as usize)));
    assert_eq!(r.revision(), commits + 1);
    // The ledger replays to the final balances.
    let mut bal = vec![START; ACCOUNTS as usize];
    for e in r.all(&b.by_seq).unwrap() {
        bal[e.from as usize] -= e.amount;
        bal[e.to as usize] += e.amount;
    }
    let fin: Vec<i64> = r.all(&b.by_id).unwrap().map(|a| a.bal).collect();
    assert_eq!(fin, bal, "ledger replay");
}
