//! The `pandodb` command against real files: a durable directory (snapshot
//! plus log after it), a `snapshot_to` file, damaged copies of both, and
//! the compiled binary's exit codes.

#![cfg(feature = "cli")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use pandodb::cli::{self, EXIT_DAMAGED, EXIT_OK, EXIT_TORN, EXIT_USAGE, Registry};
use pandodb::{Db, Indexer, Options, Schema, Table};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    age: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    id: u64,
    label: String,
}

struct Setup {
    schema: Schema,
    users: Table<User>,
    items: Table<Item>,
}

fn schema() -> Setup {
    let mut s = Schema::builder();
    let mut u = s.table::<User>("user");
    u.primary("name", Indexer::string(|u: &User| u.name.as_str()));
    u.index("age", Indexer::value(|u: &User| u.age));
    u.serde();
    let users = s.add(u).unwrap();
    let mut i = s.table::<Item>("item");
    i.primary("id", Indexer::value(|i: &Item| i.id));
    i.unique("label", Indexer::string(|i: &Item| i.label.as_str()));
    i.serde().version(2);
    let items = s.add(i).unwrap();
    Setup {
        schema: s.build().unwrap(),
        users,
        items,
    }
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.register::<User>("user").register::<Item>("item");
    r
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "pandodb-cli-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Out {
    code: i32,
    out: String,
    err: String,
}

fn run(registry: &Registry, args: &[&str]) -> Out {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cli::run(&args, registry, &mut out, &mut err);
    Out {
        code,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Every file of `dir` with its bytes.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn files_named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix))
        .collect();
    v.sort();
    v
}

fn user(name: &str, age: u32) -> User {
    User {
        name: name.into(),
        age,
    }
}

/// A directory with a checkpoint at revision 3 (3 users, 2 items) and
/// revisions 4..=6 in the log after it. Returns the snapshot's revision.
fn build_dir(dir: &Path) -> u64 {
    let Setup {
        schema,
        users,
        items,
    } = schema();
    let db = Db::open(dir, schema, Options::default()).unwrap();
    let mut w = db.write(&[&users]);
    w.insert(&users, user("ann", 41)).unwrap();
    w.insert(&users, user("bob", 30)).unwrap();
    w.commit().unwrap();
    let mut w = db.write(&[&users, &items]);
    w.insert(&users, user("cat", 25)).unwrap();
    w.insert(
        &items,
        Item {
            id: 7,
            label: "seven".into(),
        },
    )
    .unwrap();
    w.commit().unwrap();
    let mut w = db.write(&[&items]);
    w.insert(
        &items,
        Item {
            id: 8,
            label: "eight".into(),
        },
    )
    .unwrap();
    w.commit().unwrap();
    let info = db.checkpoint().unwrap();
    assert_eq!(info.revision, 3);
    // After the checkpoint: update, delete, insert.
    let mut w = db.write(&[&users]);
    w.insert(&users, user("ann", 42)).unwrap();
    w.commit().unwrap();
    let mut w = db.write(&[&users]);
    w.delete(&users, &user("bob", 0)).unwrap();
    w.commit().unwrap();
    let mut w = db.write(&[&users]);
    w.insert(&users, user("dan", 19)).unwrap();
    w.commit().unwrap();
    assert_eq!(db.revision(), 6);
    info.revision
}

fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

#[test]
fn directory_inspect_verify_dump() {
    let t = TempDir::new("dir");
    let dir = &t.0;
    build_dir(dir);
    let before = contents(dir);
    let reg = registry();

    let r = run(&reg, &["inspect", p(dir)]);
    assert_eq!(r.code, EXIT_OK, "{}{}", r.out, r.err);
    for want in [
        "snapshots: 1",
        "snap-00000000000000000003.pdb: revision 3",
        "format version: 1",
        "revision: 3",
        "schema fingerprint: 0x",
        "table \"user\": row version 0, rows 3, row bytes ",
        "indexes: name (primary), age",
        "table \"item\": row version 2, rows 2, row bytes ",
        "indexes: id (primary), label (unique)",
        "log after the snapshot: revisions 4..6, 3 commits",
        "table \"user\": 2 puts, 1 deletes",
        "revision on open: 6",
    ] {
        assert!(r.out.contains(want), "missing {want:?} in\n{}", r.out);
    }
    assert!(r.out.contains("wal-"), "{}", r.out);

    let r = run(&reg, &["verify", p(dir)]);
    assert_eq!(r.code, EXIT_OK, "{}{}", r.out, r.err);
    assert!(r.out.contains("verify: sound"), "{}", r.out);

    // The state after replaying the log over the snapshot, as JSON.
    let r = run(&reg, &["dump", p(dir), "--json"]);
    assert_eq!(r.code, EXIT_OK, "{}", r.err);
    let rows = json_lines(&r.out);
    let users: BTreeMap<String, &serde_json::Value> = rows
        .iter()
        .filter(|v| v["table"] == "user")
        .map(|v| (v["key"].as_str().unwrap().to_string(), v))
        .collect();
    assert_eq!(
        users.keys().collect::<Vec<_>>(),
        ["ann", "cat", "dan"],
        "{}",
        r.out
    );
    assert_eq!(users["ann"]["object"]["age"], 42);
    assert_eq!(users["ann"]["created"], 1);
    assert_eq!(users["ann"]["modified"], 4);
    assert_eq!(users["cat"]["object"]["name"], "cat");
    assert_eq!(
        (&users["dan"]["created"], &users["dan"]["modified"]),
        (&serde_json::json!(6), &serde_json::json!(6))
    );
    let items: Vec<&serde_json::Value> = rows.iter().filter(|v| v["table"] == "item").collect();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["object"]["label"], "seven");

    // Text, one table; and without a registry: byte counts only.
    let r = run(&reg, &["dump", p(dir), "--table", "user"]);
    assert_eq!(r.code, EXIT_OK, "{}", r.err);
    assert_eq!(r.out.lines().count(), 3, "{}", r.out);
    assert!(
        r.out
            .contains("user\t\"ann\"\tcreated 1\tmodified 4\t{\"name\":\"ann\",\"age\":42}"),
        "{}",
        r.out
    );
    let r = run(&Registry::new(), &["dump", p(dir), "--table", "item"]);
    assert_eq!(r.code, EXIT_OK, "{}", r.err);
    assert_eq!(r.out.lines().count(), 2, "{}", r.out);
    assert!(
        r.out
            .contains("item\t0x0000000000000007\tcreated 2\tmodified 2\t<"),
        "{}",
        r.out
    );

    // Nothing was changed, and the directory still opens to the same state.
    assert_eq!(contents(dir), before);
    let db = Db::open(dir, schema().schema, Options::default()).unwrap();
    assert_eq!(db.revision(), 6);
}

#[test]
fn snapshot_file_inspect_dump_verify_and_damage() {
    let t = TempDir::new("file");
    let Setup {
        schema,
        users,
        items,
    } = schema();
    let db = Db::new(schema);
    let mut w = db.write(&[&users, &items]);
    for i in 0..500 {
        w.insert(&users, user(&format!("u{i:04}"), i)).unwrap();
    }
    w.insert(
        &items,
        Item {
            id: 1,
            label: "one".into(),
        },
    )
    .unwrap();
    w.commit().unwrap();
    let mut w = db.write(&[&users]);
    w.insert(&users, user("u0000", 99)).unwrap();
    w.commit().unwrap();
    let file = t.0.join("copy.snapshot");
    let info = db
        .snapshot_to(std::fs::File::create(&file).unwrap())
        .unwrap();
    assert_eq!((info.revision, info.rows), (2, 501));
    let reg = registry();

    let r = run(&reg, &["inspect", p(&file)]);
    assert_eq!(r.code, EXIT_OK, "{}", r.err);
    for want in [
        "revision: 2",
        "rows: 501",
        "table \"user\": row version 0, rows 500",
        "table \"item\": row version 2, rows 1",
        &format!("size: {} bytes", info.bytes),
    ] {
        assert!(r.out.contains(want), "missing {want:?} in\n{}", r.out);
    }

    let r = run(&reg, &["dump", p(&file), "--json", "--table", "user"]);
    assert_eq!(r.code, EXIT_OK, "{}", r.err);
    let rows = json_lines(&r.out);
    assert_eq!(rows.len(), 500);
    assert_eq!(rows[0]["key"], "u0000");
    assert_eq!(
        rows[0]["object"],
        serde_json::json!({"name": "u0000", "age": 99})
    );
    assert_eq!(
        (&rows[0]["created"], &rows[0]["modified"]),
        (&serde_json::json!(1), &serde_json::json!(2))
    );

    let r = run(&reg, &["verify", p(&file)]);
    assert_eq!(r.code, EXIT_OK, "{}{}", r.out, r.err);

    // One flipped byte anywhere in the blocks is damage, named with file
    // and offset; so is one in the trailer.
    let bytes = std::fs::read(&file).unwrap();
    for at in [bytes.len() / 2, bytes.len() - 3] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x10;
        std::fs::write(&file, &bad).unwrap();
        let r = run(&reg, &["verify", p(&file)]);
        assert_eq!(r.code, EXIT_DAMAGED, "flip at {at}: {}{}", r.out, r.err);
        assert!(
            r.err.contains(p(&file)) && r.err.contains("offset"),
            "{}",
            r.err
        );
        assert!(r.out.contains("verify: DAMAGED"), "{}", r.out);
        assert_eq!(
            std::fs::read(&file).unwrap(),
            bad,
            "verify changed the file"
        );
    }
    // A cut file too.
    std::fs::write(&file, &bytes[..bytes.len() - 10]).unwrap();
    assert_eq!(run(&reg, &["verify", p(&file)]).code, EXIT_DAMAGED);
    // Something else entirely.
    std::fs::write(&file, b"hello, world").unwrap();
    let r = run(&reg, &["inspect", p(&file)]);
    assert_eq!(r.code, EXIT_DAMAGED);
    assert!(r.err.contains("neither a pandodb snapshot"), "{}", r.err);
}

#[test]
fn damaged_directory_files_are_named() {
    let t = TempDir::new("damage");
    let dir = &t.0;
    build_dir(dir);
    let reg = registry();
    let snap = files_named(dir, "snap-").pop().unwrap();
    let wal = files_named(dir, "wal-").pop().unwrap();
    let snap_bytes = std::fs::read(&snap).unwrap();
    let wal_bytes = std::fs::read(&wal).unwrap();

    // A flipped byte in the snapshot.
    let mut bad = snap_bytes.clone();
    let at = bad.len() / 2;
    bad[at] ^= 1;
    std::fs::write(&snap, &bad).unwrap();
    let r = run(&reg, &["verify", p(dir)]);
    assert_eq!(r.code, EXIT_DAMAGED, "{}{}", r.out, r.err);
    assert!(r.err.contains(p(&snap)), "{}", r.err);
    let r = run(&reg, &["inspect", p(dir)]);
    assert_eq!(r.code, EXIT_DAMAGED);
    assert!(r.out.contains("opening fails"), "{}", r.out);
    std::fs::write(&snap, &snap_bytes).unwrap();

    // A flipped byte in the first of the log's three records: damage
    // (valid records follow it, so it is not a torn tail).
    let mut bad = wal_bytes.clone();
    bad[24 + 20 + 2] ^= 1;
    std::fs::write(&wal, &bad).unwrap();
    let r = run(&reg, &["verify", p(dir)]);
    assert_eq!(r.code, EXIT_DAMAGED, "{}{}", r.out, r.err);
    assert!(
        r.err.contains(p(&wal)) && r.err.contains("offset 24"),
        "{}",
        r.err
    );
    // A lone segment file too.
    let r = run(&reg, &["verify", p(&wal)]);
    assert_eq!(r.code, EXIT_DAMAGED, "{}{}", r.out, r.err);

    // A torn tail: the last record cut short, or garbage after it.
    for torn in [
        wal_bytes[..wal_bytes.len() - 3].to_vec(),
        [&wal_bytes[..], &[0xAB; 7][..]].concat(),
    ] {
        std::fs::write(&wal, &torn).unwrap();
        let r = run(&reg, &["verify", p(dir)]);
        assert_eq!(r.code, EXIT_TORN, "{}{}", r.out, r.err);
        assert!(
            r.err.contains("torn tail") && r.err.contains(p(&wal)),
            "{}",
            r.err
        );
        assert_eq!(std::fs::read(&wal).unwrap(), torn, "verify cut the tail");
    }
    // The dump of a cut log stops at the last whole record.
    std::fs::write(&wal, &wal_bytes[..wal_bytes.len() - 3]).unwrap();
    let r = run(&reg, &["dump", p(dir), "--json", "--table", "user"]);
    let keys: Vec<String> = json_lines(&r.out)
        .iter()
        .map(|v| v["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, ["ann", "cat"], "{}", r.err);

    // A missing stretch of log (the segment says it follows revision 3,
    // but no snapshot at all covers 1..=3).
    std::fs::write(&wal, &wal_bytes).unwrap();
    std::fs::remove_file(&snap).unwrap();
    for older in files_named(dir, "wal-").into_iter().filter(|w| *w != wal) {
        std::fs::remove_file(older).unwrap();
    }
    let r = run(&reg, &["verify", p(dir)]);
    assert_eq!(r.code, EXIT_DAMAGED, "{}{}", r.out, r.err);
    assert!(r.err.contains("missing"), "{}", r.err);
}

#[test]
fn progress_on_long_runs() {
    let t = TempDir::new("progress");
    let Setup { schema, users, .. } = schema();
    let db = Db::new(schema);
    let mut w = db.write(&[&users]);
    for i in 0..(cli::PROGRESS_EVERY as u32 + 10) {
        w.insert(&users, user(&format!("{i:07}"), i)).unwrap();
    }
    w.commit().unwrap();
    let file = t.0.join("big.pdb");
    db.snapshot_to(std::fs::File::create(&file).unwrap())
        .unwrap();
    let r = run(&Registry::new(), &["verify", p(&file)]);
    assert_eq!(r.code, EXIT_OK, "{}", r.err);
    assert!(r.err.contains("100000 rows read"), "{}", r.err);
    let r = run(&Registry::new(), &["verify", "--quiet", p(&file)]);
    assert_eq!(r.code, EXIT_OK);
    assert!(r.err.is_empty(), "{}", r.err);
}

#[test]
fn usage() {
    let reg = Registry::new();
    let r = run(&reg, &["--help"]);
    assert_eq!(r.code, EXIT_OK);
    assert!(r.out.contains("inspect") && r.out.contains("exit codes"));
    assert_eq!(run(&reg, &[]).code, EXIT_USAGE);
    assert_eq!(run(&reg, &["frobnicate", "x"]).code, EXIT_USAGE);
    assert_eq!(run(&reg, &["dump"]).code, EXIT_USAGE);
    assert_eq!(run(&reg, &["verify", "a", "b"]).code, EXIT_USAGE);
    assert_eq!(run(&reg, &["inspect", "--json", "a"]).code, EXIT_USAGE);
}

#[test]
fn binary_exit_codes() {
    let t = TempDir::new("bin");
    let dir = &t.0;
    build_dir(dir);
    let bin = env!("CARGO_BIN_EXE_pandodb");
    let status = |args: &[&str]| std::process::Command::new(bin).args(args).output().unwrap();
    let o = status(&["verify", p(dir)]);
    assert_eq!(o.status.code(), Some(EXIT_OK), "{o:?}");
    let o = status(&["dump", p(dir)]);
    assert_eq!(o.status.code(), Some(EXIT_OK), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 5);
    assert_eq!(status(&["--help"]).status.code(), Some(EXIT_OK));
    assert_eq!(status(&[]).status.code(), Some(EXIT_USAGE));
    let wal = files_named(dir, "wal-").pop().unwrap();
    let mut bytes = std::fs::read(&wal).unwrap();
    bytes[30] ^= 0xFF;
    std::fs::write(&wal, &bytes).unwrap();
    let o = status(&["verify", p(dir)]);
    assert_eq!(o.status.code(), Some(EXIT_DAMAGED), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains(p(&wal)));
}
