//! A consumer of the change feed that survives restarts (docs/GUIDE.md, "A
//! consumer that restarts"): it stores its position in the database itself,
//! in the same transaction as the effect of each batch, resumes from there
//! after a restart, and reloads from the current state on `Compacted`.
//!
//! `cargo run --release --example restarting_consumer`

use pandodb::{Batch, Db, Error, Index, Indexer, Options, Query, Schema, Table};

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Job {
    id: u64,
    state: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Cursor {
    name: String,
    revision: u64,
}

struct Handles {
    jobs: Table<Job>,
    jobs_id: Index<Job, u64>,
    /// What the consumer builds: its own copy of the jobs.
    done: Table<Job>,
    done_id: Index<Job, u64>,
    cursors: Table<Cursor>,
    cursor_name: Index<Cursor, str>,
}

fn open(dir: &std::path::Path) -> Result<(Db, Handles), Error> {
    let mut s = Schema::builder();
    let mut t = s.table::<Job>("job");
    let jobs_id = t.primary("id", Indexer::value(|j: &Job| j.id));
    t.serde();
    let jobs = s.add(t)?;
    let mut t = s.table::<Job>("done");
    let done_id = t.primary("id", Indexer::value(|j: &Job| j.id));
    t.serde();
    let done = s.add(t)?;
    let mut t = s.table::<Cursor>("cursor");
    let cursor_name = t.primary("name", Indexer::string(|c: &Cursor| c.name.as_str()));
    t.serde();
    let cursors = s.add(t)?;
    let db = Db::open(dir, s.build()?, Options::default())?;
    let h = Handles {
        jobs,
        jobs_id,
        done,
        done_id,
        cursors,
        cursor_name,
    };
    Ok((db, h))
}

/// Applies one batch and stores the position, atomically.
fn apply(db: &Db, h: &Handles, batch: &Batch) -> Result<(), Error> {
    let mut w = db.write(&[&h.done, &h.cursors]);
    for c in &batch.changes {
        match (c.before::<Job>()?, c.after::<Job>()?) {
            // An insert or an update.
            (_, Some(job)) => {
                w.insert(&h.done, (*job).clone())?;
            }
            // A delete.
            (Some(job), None) => {
                w.delete(&h.done, &job)?;
            }
            (None, None) => unreachable!("a change has an object"),
        }
    }
    let cursor = Cursor {
        name: "indexer".into(),
        revision: batch.revision,
    };
    w.insert(&h.cursors, cursor)?;
    w.commit()?;
    Ok(())
}

/// Rebuilds the consumer's state from the current version (after
/// `Compacted`: the changes it missed are gone, the state is not).
fn reload(db: &Db, h: &Handles) -> Result<u64, Error> {
    let mut w = db.write(&[&h.done, &h.cursors]);
    let r = db.read();
    let stale: Vec<_> = w.all(&h.done_id)?.collect();
    for job in stale {
        w.delete(&h.done, &job)?;
    }
    for job in r.all(&h.jobs_id)? {
        w.insert(&h.done, (*job).clone())?;
    }
    let cursor = Cursor {
        name: "indexer".into(),
        revision: r.revision(),
    };
    w.insert(&h.cursors, cursor)?;
    w.commit()?;
    Ok(r.revision())
}

/// Consumes every batch retained now (a service would iterate the
/// subscription, blocking, instead of stopping when it is idle).
fn consume(db: &Db, h: &Handles) -> Result<usize, Error> {
    let mut applied = 0;
    loop {
        let stored = db
            .read()
            .get(&h.cursor_name, "indexer")?
            .map_or(0, |c| c.revision);
        let mut feed = match db.subscribe(&[&h.jobs], stored + 1) {
            Ok(feed) => feed,
            Err(Error::Compacted { .. }) => {
                reload(db, h)?;
                continue;
            }
            Err(e) => return Err(e),
        };
        loop {
            match feed.try_next() {
                Ok(Some(batch)) => {
                    apply(db, h, &batch)?;
                    applied += 1;
                }
                Ok(None) => return Ok(applied),
                Err(Error::Compacted { .. }) => {
                    reload(db, h)?;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn write_jobs(db: &Db, h: &Handles, from: u64) -> Result<(), Error> {
    for id in from..from + 5 {
        let mut w = db.write(&[&h.jobs]);
        w.insert(
            &h.jobs,
            Job {
                id,
                state: "new".into(),
            },
        )?;
        if id > 0 {
            w.insert(
                &h.jobs,
                Job {
                    id: id - 1,
                    state: "running".into(),
                },
            )?;
        }
        w.commit()?;
    }
    // A delete while the consumer may be down.
    let mut w = db.write(&[&h.jobs]);
    w.delete(
        &h.jobs,
        &Job {
            id: from,
            state: String::new(),
        },
    )?;
    w.commit()?;
    Ok(())
}

fn main() -> Result<(), Error> {
    let dir = std::env::temp_dir().join(format!("pandodb-consumer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let (db, h) = open(&dir)?;
        write_jobs(&db, &h, 0)?;
        println!("first run: applied {} batches", consume(&db, &h)?);
        // Written while the consumer is down (here: after its last batch,
        // before the restart).
        write_jobs(&db, &h, 100)?;
    }
    let (db, h) = open(&dir)?;
    println!("after the restart: applied {} batches", consume(&db, &h)?);
    let r = db.read();
    let jobs: Vec<Job> = r.all(&h.jobs_id)?.map(|j| (*j).clone()).collect();
    let done: Vec<Job> = r.all(&h.done_id)?.map(|j| (*j).clone()).collect();
    assert_eq!(jobs, done, "the consumer's copy equals the jobs");
    println!("{} jobs mirrored at revision {}", done.len(), r.revision());
    drop((r, db));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
