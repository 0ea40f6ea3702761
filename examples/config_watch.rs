//! A configuration store with watches, compare-and-swap and the change feed.
//!
//! ```sh
//! cargo run --release --example config_watch
//! ```
//!
//! - A *component* holds the configuration of its service and reacts to
//!   changes through a watch on its prefix instead of polling.
//! - Two *operators* edit the same setting with compare-and-swap: read the
//!   setting with its revision, compute, write back "unless changed since".
//!   The slower one loses, re-reads and retries; no update is lost.
//! - An *auditor* follows the change feed from revision 1 and prints every
//!   commit, in order.

use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use pandodb::{ChangeKind, Db, Error, Index, Indexer, Query, Schema, Table, WatchSet};

#[derive(Debug, Clone)]
struct Setting {
    key: String,
    value: i64,
}

struct Config {
    db: Db,
    settings: Table<Setting>,
    by_key: Index<Setting, str>,
}

fn open() -> Result<Config, Error> {
    let mut schema = Schema::builder();
    let mut t = schema.table::<Setting>("setting");
    let by_key = t.primary("key", Indexer::string(|s: &Setting| s.key.as_str()));
    let settings = schema.add(t)?;
    Ok(Config {
        db: Db::new(schema.build()?),
        settings,
        by_key,
    })
}

/// Adds `delta` to a setting with compare-and-swap, retrying on conflict.
/// Returns how many attempts it took.
fn bump(cfg: &Config, key: &str, delta: i64, who: &str) -> Result<u32, Error> {
    for attempt in 1.. {
        let seen = cfg
            .db
            .read()
            .get_versioned(&cfg.by_key, key)?
            .expect("the setting exists");
        // Time passes between reading and writing: another operator may
        // commit in between.
        thread::sleep(Duration::from_millis(5));
        let next = Setting {
            key: key.into(),
            value: seen.object.value + delta,
        };
        let mut w = cfg.db.write(&[&cfg.settings]);
        match w.update_if(&cfg.settings, next, seen.modified) {
            Ok(_) => {
                let rev = w.commit()?.revision;
                println!(
                    "  {who}: {key} {} -> {} at revision {rev} (attempt {attempt})",
                    seen.object.value,
                    seen.object.value + delta
                );
                return Ok(attempt);
            }
            Err(Error::Conflict { current, .. }) => {
                println!(
                    "  {who}: conflict on {key} (read revision {}, now {current:?}); retrying",
                    seen.modified
                );
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!()
}

fn main() -> Result<(), Error> {
    let cfg = Arc::new(open()?);
    let mut w = cfg.db.write(&[&cfg.settings]);
    for (key, value) in [("web.workers", 4), ("web.timeout_ms", 500), ("db.pool", 10)] {
        w.insert(
            &cfg.settings,
            Setting {
                key: key.into(),
                value,
            },
        )?;
    }
    w.commit()?;

    // The auditor: the change feed from the first revision.
    let mut feed = cfg.db.subscribe(&[&cfg.settings], 1)?;
    let auditor = thread::spawn(move || {
        let mut lines = Vec::new();
        while let Ok(Some(batch)) = feed.next_timeout(Duration::from_millis(300)) {
            for c in &batch.changes {
                // The table holds `Setting`s: the type is right by construction.
                let typed = |o: pandodb::Result<Option<_>>| o.expect("settings hold Setting");
                let s = typed(c.after::<Setting>()).or(typed(c.before::<Setting>()));
                let s = s.expect("a change has an object");
                let kind = match c.kind() {
                    ChangeKind::Insert => "insert",
                    ChangeKind::Update => "update",
                    ChangeKind::Delete => "delete",
                };
                lines.push(format!(
                    "revision {}: {kind} {} = {}",
                    batch.revision, s.key, s.value
                ));
            }
        }
        lines
    });

    // The component: watches everything under "web." and reloads on change.
    let (ready_tx, ready_rx) = mpsc::channel();
    let component = {
        let cfg = cfg.clone();
        thread::spawn(move || -> Result<u32, Error> {
            let mut reloads = 0;
            loop {
                let r = cfg.db.read();
                let (rows, web) = r.prefix_watch(&cfg.by_key, "web.")?;
                let current: Vec<String> = rows.map(|s| format!("{}={}", s.key, s.value)).collect();
                println!(
                    "component: config at revision {}: {}",
                    r.revision(),
                    current.join(", ")
                );
                // Also stop when told to (the "shutdown" key appears).
                let (_, stop) = r.get_watch(&cfg.by_key, "shutdown")?;
                let mut set = WatchSet::new();
                set.add(web);
                set.add(stop);
                if reloads == 0 {
                    ready_tx.send(()).expect("main is waiting");
                }
                match set.wait_timeout(Duration::from_secs(10))? {
                    Some(0) => reloads += 1,
                    Some(_) => return Ok(reloads),
                    None => panic!("no change within 10 s"),
                }
            }
        })
    };
    ready_rx.recv().expect("component started");

    // A change outside "web." does not wake the component.
    println!("operator: db.pool := 20 (not watched by the component)");
    let mut w = cfg.db.write(&[&cfg.settings]);
    w.insert(
        &cfg.settings,
        Setting {
            key: "db.pool".into(),
            value: 20,
        },
    )?;
    w.commit()?;

    // Two operators raise web.workers at the same time.
    println!("operators: both add to web.workers with compare-and-swap");
    let ops: Vec<_> = [("alice", 2), ("bob", 3)]
        .into_iter()
        .map(|(who, delta)| {
            let cfg = cfg.clone();
            thread::spawn(move || bump(&cfg, "web.workers", delta, who))
        })
        .collect();
    let attempts: u32 = ops
        .into_iter()
        .map(|h| h.join().expect("operator").expect("bump"))
        .sum();
    let workers = cfg
        .db
        .read()
        .get(&cfg.by_key, "web.workers")?
        .expect("exists")
        .value;
    println!("web.workers is now {workers} (4 + 2 + 3), after {attempts} attempts in all");
    assert_eq!(workers, 9, "no update lost");

    thread::sleep(Duration::from_millis(50));
    let mut w = cfg.db.write(&[&cfg.settings]);
    w.insert(
        &cfg.settings,
        Setting {
            key: "shutdown".into(),
            value: 1,
        },
    )?;
    w.commit()?;
    let reloads = component.join().expect("component")?;
    println!("component: reloaded {reloads} time(s), then stopped");

    println!("auditor: the change feed, in revision order");
    for line in auditor.join().expect("auditor") {
        println!("  {line}");
    }
    Ok(())
}
