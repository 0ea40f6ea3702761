//! A commit too large for the durable log is refused with
//! `Error::TooLarge` before anything of it is ordered or visible, in every
//! logging mode; the database goes on, and reopens to exactly the commits
//! that succeeded.

use pandodb::{Db, Durability, Error, Index, Indexer, Options, Query, Schema, Table};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Blob {
    id: u32,
    data: String,
}

fn schema() -> (Schema, Table<Blob>, Index<Blob, u32>) {
    let mut s = Schema::builder();
    let mut t = s.table::<Blob>("blob");
    let by_id = t.primary("id", Indexer::value(|b: &Blob| b.id));
    t.serde();
    let t = s.add(t).unwrap();
    (s.build().unwrap(), t, by_id)
}

#[test]
fn an_oversized_commit_is_refused_and_the_database_goes_on() {
    for (name, mode) in [
        ("sync", Durability::Sync),
        (
            "batched",
            Durability::Batched(std::time::Duration::from_millis(5)),
        ),
    ] {
        let dir =
            std::env::temp_dir().join(format!("pandodb-limits-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let (s, t, _) = schema();
            let db = Db::open(&dir, s, Options::default().durability(mode)).unwrap();
            let mut w = db.write(&[&t]);
            w.insert(
                &t,
                Blob {
                    id: 1,
                    data: "small".into(),
                },
            )
            .unwrap();
            w.commit().unwrap();
            // 65 MiB in one commit: over the log's 64 MiB record limit.
            let mut w = db.write(&[&t]);
            w.insert(
                &t,
                Blob {
                    id: 2,
                    data: "x".repeat(65 << 20),
                },
            )
            .unwrap();
            let e = w.commit().unwrap_err();
            assert!(
                matches!(e, Error::TooLarge { bytes, limit } if bytes > limit),
                "{name}: {e:?}"
            );
            // Nothing of it is visible, and writes go on.
            assert_eq!(db.revision(), 1, "{name}");
            assert_eq!(db.read().len(&t).unwrap(), 1, "{name}");
            let mut w = db.write(&[&t]);
            w.insert(
                &t,
                Blob {
                    id: 3,
                    data: "after".into(),
                },
            )
            .unwrap();
            assert_eq!(w.commit().unwrap().revision, 2, "{name}");
            db.close().unwrap();
        }
        let (s, _, by_id) = schema();
        let db = Db::open(&dir, s, Options::default()).unwrap();
        assert_eq!(db.revision(), 2, "{name}");
        let ids: Vec<u32> = db.read().all(&by_id).unwrap().map(|b| b.id).collect();
        assert_eq!(ids, [1, 3], "{name}");
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
