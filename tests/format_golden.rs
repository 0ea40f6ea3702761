//! The on-disk formats do not drift: a snapshot and a log segment written by
//! an earlier build (kept in `tests/data/`) are read back to the same state,
//! and this build writes the same workload to exactly the same bytes.
//!
//! To re-create the files after a deliberate format change (and a new
//! format version), run with `PANDODB_WRITE_GOLDEN=1`.

use std::fs;
use std::path::{Path, PathBuf};

use pandodb::{Db, Durability, Index, Indexer, Options, Query, Schema, Table};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct User {
    id: u32,
    name: String,
    tags: Vec<String>,
}

struct H {
    users: Table<User>,
    by_name: Index<User, str>,
}

fn schema() -> (Schema, H) {
    let mut s = Schema::builder();
    let mut t = s.table::<User>("user");
    t.primary("id", Indexer::value(|u: &User| u.id));
    let by_name = t.unique("name", Indexer::string(|u: &User| u.name.as_str()));
    t.index("tag", Indexer::strings(|u: &User| u.tags.as_slice()));
    t.serde();
    let users = s.add(t).unwrap();
    (s.build().unwrap(), H { users, by_name })
}

/// The workload: inserts, updates and deletes over 12 commits.
fn workload(db: &Db, h: &H) {
    for c in 0..12u32 {
        let mut w = db.write(&[&h.users]);
        for i in 0..10u32 {
            let id = (c * 7 + i * 13) % 60;
            if (c + i) % 5 == 4 {
                w.delete(
                    &h.users,
                    &User {
                        id,
                        name: String::new(),
                        tags: Vec::new(),
                    },
                )
                .unwrap();
            } else {
                let user = User {
                    id,
                    name: format!("user-{id:03}"),
                    tags: (0..(c + i) % 3).map(|t| format!("t{t}-{c}")).collect(),
                };
                w.insert(&h.users, user).unwrap();
            }
        }
        w.commit().unwrap();
    }
}

fn dump(db: &Db, h: &H) -> String {
    let r = db.read();
    let mut out = format!("revision {}\n", r.revision());
    for v in r.all_versioned(&h.users).unwrap() {
        out += &format!(
            "{} {:?} {} {}\n",
            v.object.name, v.object.tags, v.created, v.modified
        );
    }
    // The unique index was rebuilt too.
    out += &format!("names {}\n", r.count_prefix(&h.by_name, "user-").unwrap());
    out
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Compares `bytes` with the kept file (or writes it when asked to).
fn golden(name: &str, bytes: &[u8]) {
    let path = data(name);
    if std::env::var_os("PANDODB_WRITE_GOLDEN").is_some() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, bytes).unwrap();
    }
    let kept = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        kept == bytes,
        "{name}: this build writes {} bytes that differ from the {} kept",
        bytes.len(),
        kept.len()
    );
}

#[test]
fn a_kept_snapshot_restores_and_is_written_identically() {
    let (s, h) = schema();
    let db = Db::new(s);
    workload(&db, &h);
    let mut bytes = Vec::new();
    db.snapshot_to(&mut bytes).unwrap();
    golden("golden-snapshot.pdb", &bytes);

    let (s, h2) = schema();
    let kept = fs::read(data("golden-snapshot.pdb")).unwrap();
    let restored = Db::restore_from(&kept[..], s).unwrap();
    assert_eq!(dump(&restored, &h2), dump(&db, &h));
}

#[test]
fn a_kept_log_segment_replays_and_is_written_identically() {
    let dir = std::env::temp_dir().join(format!("pandodb-golden-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let options = || {
        Options::default()
            .durability(Durability::Sync)
            .checkpoint_bytes(0)
    };
    let expected = {
        let (s, h) = schema();
        let db = Db::open(&dir, s, options()).unwrap();
        workload(&db, &h);
        dump(&db, &h)
    };
    let segment = pandodb_segment(&dir);
    golden("golden-wal.log", &fs::read(dir.join(&segment)).unwrap());
    fs::remove_dir_all(&dir).unwrap();

    // The kept segment alone, in a fresh directory, replays to the same
    // state.
    fs::create_dir_all(&dir).unwrap();
    fs::copy(data("golden-wal.log"), dir.join(&segment)).unwrap();
    let (s, h) = schema();
    let db = Db::open(&dir, s, options()).unwrap();
    assert_eq!(dump(&db, &h), expected);
    drop(db);
    fs::remove_dir_all(&dir).unwrap();
}

/// The name of the one log segment in `dir`.
fn pandodb_segment(dir: &Path) -> String {
    let mut logs: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    logs.remove(0)
}
