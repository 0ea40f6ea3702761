//! The command on crash images of the simulated disk: its directory scan
//! reads, through the `Vfs`, what `Db::open` reads, so on every image a
//! power loss leaves it must report the revision and the rows that opening
//! then recovers, and change nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::storage::fs::{CrashMode, SimFs, Vfs, XorShift};
use crate::{Db, Indexer, Options, Query, Schema, Table};

use super::{EXIT_OK, EXIT_TORN, Registry, run_on};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Item {
    id: u32,
    v: u64,
}

const DIR: &str = "/db";

fn open(fs: &SimFs) -> crate::Result<(Db, Table<Item>)> {
    let mut s = Schema::builder();
    let mut t = s.table::<Item>("items");
    t.primary("id", Indexer::value(|x: &Item| x.id));
    t.serde();
    let t = s.add(t)?;
    let options = Options::default()
        .checkpoint_bytes(400)
        .vfs(Arc::new(fs.clone()));
    Ok((Db::open(Path::new(DIR), s.build()?, options)?, t))
}

/// Random puts and deletes, a manual checkpoint every 7 commits (and
/// automatic ones); stops at the first failure.
fn workload(db: &Db, t: &Table<Item>, seed: u64) {
    let mut rng = XorShift::new(seed);
    for i in 0..30 {
        let mut w = db.write(&[t]);
        for _ in 0..1 + rng.below(3) {
            let item = Item {
                id: rng.below(10) as u32,
                v: i,
            };
            if rng.below(4) == 0 {
                let _ = w.delete(t, &item);
            } else {
                let _ = w.insert(t, item);
            }
        }
        if w.commit().is_err() || (i % 7 == 6 && db.checkpoint().is_err()) {
            return;
        }
    }
}

/// The files of the directory with their bytes (counted as one operation).
fn image(fs: &SimFs) -> BTreeMap<String, Vec<u8>> {
    let dir = Path::new(DIR);
    let names = fs.list_dir(dir).unwrap();
    let files = names.into_iter().map(|n| {
        let bytes = fs.contents(&dir.join(&n)).unwrap();
        (n, bytes)
    });
    files.collect()
}

/// Runs the command on `fs`: exit code, output, diagnostics.
fn cli(fs: &SimFs, args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let mut registry = Registry::new();
    registry.register::<Item>("items");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_on(fs, &args, &registry, &mut out, &mut err);
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (code, text(out), text(err))
}

/// The revision a report says opening gives.
fn revision_on_open(report: &str) -> Option<u64> {
    let line = report
        .lines()
        .find(|l| l.starts_with("revision on open: "))?;
    line["revision on open: ".len()..].parse().ok()
}

/// Rows as (object, created, modified), by id.
fn rows_of_dump(dump: &str) -> Vec<(Value, u64, u64)> {
    let mut rows: Vec<(Value, u64, u64)> = dump
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["table"], "items", "{l}");
            let n = |k: &str| v[k].as_u64().unwrap();
            (v["object"].clone(), n("created"), n("modified"))
        })
        .collect();
    rows.sort_by_key(|r| r.0["id"].as_u64());
    rows
}

fn rows_of_db(db: &Db, t: &Table<Item>) -> Vec<(Value, u64, u64)> {
    let r = db.read();
    let mut rows: Vec<(Value, u64, u64)> = r
        .all_versioned(t)
        .unwrap()
        .map(|v| (json!(*v.object), v.created, v.modified))
        .collect();
    rows.sort_by_key(|r| r.0["id"].as_u64());
    rows
}

#[test]
fn the_directory_scan_reports_what_opening_recovers_from_every_crash_image() {
    let seed = 5;
    let total = {
        let fs = SimFs::new();
        let (db, t) = open(&fs).unwrap();
        workload(&db, &t, seed);
        fs.op_count()
    };
    let keep = [CrashMode::KeepAll, CrashMode::KeepPrefix(seed)];
    let modes = keep
        .into_iter()
        .chain([CrashMode::DropAll, CrashMode::Garble(seed + 1)]);
    let modes: Vec<CrashMode> = modes.collect();
    let (mut images, mut torn, mut revisions) = (0, 0, std::collections::BTreeSet::new());
    for k in 0..total {
        for &mode in &modes {
            let what = format!("crash at operation {k}, {mode:?}");
            let fs = SimFs::new();
            fs.fail_at(k, true);
            if let Ok((db, t)) = open(&fs) {
                workload(&db, &t, seed);
            }
            fs.crash(mode);
            if !fs.exists(Path::new(DIR)).unwrap() {
                continue; // the power failed before the directory was made
            }
            let before = image(&fs);
            let (code, report, err) = cli(&fs, &["verify", DIR]);
            assert!(
                code == EXIT_OK || code == EXIT_TORN,
                "{what}: verify exits {code}:\n{report}{err}"
            );
            torn += usize::from(code == EXIT_TORN);
            let verified = revision_on_open(&report);
            let (code, report, err) = cli(&fs, &["inspect", DIR]);
            assert!(code == EXIT_OK || code == EXIT_TORN, "{what}: {err}");
            let inspected = revision_on_open(&report);
            let (code, dump, err) = cli(&fs, &["dump", DIR, "--json"]);
            assert!(code == EXIT_OK || code == EXIT_TORN, "{what}: {err}");
            assert_eq!(image(&fs), before, "{what}: the command changed the image");

            let (db, t) = open(&fs).unwrap_or_else(|e| panic!("{what}: opening fails: {e}"));
            let rev = db.revision();
            assert_eq!(verified, Some(rev), "{what}: verify");
            assert_eq!(inspected, Some(rev), "{what}: inspect");
            assert_eq!(rows_of_dump(&dump), rows_of_db(&db, &t), "{what}: dump");
            images += 1;
            revisions.insert(rev);
        }
    }
    println!(
        "{images} crash images: {torn} with a torn tail, {} distinct revisions",
        revisions.len()
    );
    assert!(images > 400 && torn > 0 && revisions.len() > 10);
}
