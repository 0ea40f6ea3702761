//! Snapshots (G7, G8, G10): state → snapshot → restore gives the same
//! state (a property test; also while a writer commits), snapshots of equal
//! states are byte-identical, schema changes between runs are handled or
//! refused with a typed error, and damaged bytes are refused, never
//! served.
//!
//! `PROPTEST_CASES` sets the number of cases (default 256).

use std::sync::Arc;

use pandodb::{Db, Error, Index, Indexer, Query, Schema, Table};
use proptest::prelude::*;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct User {
    name: String,
    age: u8,
    tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Group {
    id: u16,
    owner: String,
}

struct H {
    users: Table<User>,
    by_name: Index<User, str>,
    by_age: Index<User, u8>,
    by_tag: Index<User, str>,
    groups: Table<Group>,
    by_owner: Index<Group, str>,
}

fn schema() -> (Schema, H) {
    let mut s = Schema::builder();
    let mut u = s.table::<User>("user");
    let by_name = u.primary("name", Indexer::string(|x: &User| x.name.as_str()));
    let by_age = u.index("age", Indexer::value(|x: &User| x.age));
    let by_tag = u.index("tag", Indexer::strings(|x: &User| x.tags.as_slice()));
    u.serde();
    let users = s.add(u).unwrap();
    let mut g = s.table::<Group>("group");
    g.primary("id", Indexer::value(|x: &Group| x.id));
    let by_owner = g.index("owner", Indexer::string(|x: &Group| x.owner.as_str()));
    g.serde();
    let groups = s.add(g).unwrap();
    (
        s.build().unwrap(),
        H {
            users,
            by_name,
            by_age,
            by_tag,
            groups,
            by_owner,
        },
    )
}

/// Everything observable: rows with revisions, index sizes, revision.
fn dump<Q: Query>(q: &Q, h: &H) -> String {
    let mut out = String::new();
    for v in q.all_versioned(&h.users).unwrap() {
        out += &format!("{:?} {} {}\n", v.object, v.created, v.modified);
    }
    for v in q.all_versioned(&h.groups).unwrap() {
        out += &format!("{:?} {} {}\n", v.object, v.created, v.modified);
    }
    let ages: Vec<u8> = q.all(&h.by_age).unwrap().map(|u| u.age).collect();
    let tags = q.index_len(&h.by_tag).unwrap();
    let owners: Vec<String> = q
        .all(&h.by_owner)
        .unwrap()
        .map(|g| g.owner.clone())
        .collect();
    let since: Vec<u64> = q
        .modified_since(&h.users, 0)
        .unwrap()
        .map(|v| v.modified)
        .collect();
    out += &format!(
        "{ages:?} {tags} {owners:?} {since:?} {}\n",
        q.index_len(&h.by_name).unwrap()
    );
    out
}

#[derive(Debug, Clone)]
enum Op {
    User(String, u8, Vec<String>),
    DelUser(String),
    Group(u16, String),
    DelGroup(u16),
    Commit,
}

fn op() -> impl Strategy<Value = Op> {
    let name = "[a-c]{0,3}";
    prop_oneof![
        4 => (name, 0u8..5, proptest::collection::vec("[xy]{1,2}", 0..3))
            .prop_map(|(n, a, t)| Op::User(n, a, t)),
        1 => name.prop_map(Op::DelUser),
        2 => (0u16..6, name).prop_map(|(i, o)| Op::Group(i, o)),
        1 => (0u16..6).prop_map(Op::DelGroup),
        2 => Just(Op::Commit),
    ]
}

fn apply(db: &Db, h: &H, ops: &[Op]) {
    let mut w = db.write(&[&h.users, &h.groups]);
    for op in ops {
        match op {
            Op::User(n, a, t) => {
                w.insert(
                    &h.users,
                    User {
                        name: n.clone(),
                        age: *a,
                        tags: t.clone(),
                    },
                )
                .unwrap();
            }
            Op::DelUser(n) => {
                w.delete_all(&h.by_name, n.as_str()).unwrap();
            }
            Op::Group(i, o) => {
                w.insert(
                    &h.groups,
                    Group {
                        id: *i,
                        owner: o.clone(),
                    },
                )
                .unwrap();
            }
            Op::DelGroup(i) => {
                w.delete(
                    &h.groups,
                    &Group {
                        id: *i,
                        owner: String::new(),
                    },
                )
                .unwrap();
            }
            Op::Commit => {
                w.commit().unwrap();
                w = db.write(&[&h.users, &h.groups]);
            }
        }
    }
    w.commit().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn snapshot_round_trip(ops in proptest::collection::vec(op(), 0..60)) {
        let (s, h) = schema();
        let db = Db::new(s);
        apply(&db, &h, &ops);
        let mut bytes = Vec::new();
        let info = db.snapshot_to(&mut bytes).unwrap();
        prop_assert_eq!(info.revision, db.revision());
        prop_assert_eq!(info.bytes as usize, bytes.len());
        let (s2, h2) = schema();
        let copy = Db::restore_from(&bytes[..], s2).unwrap();
        prop_assert_eq!(copy.revision(), db.revision());
        prop_assert_eq!(dump(&copy.read(), &h2), dump(&db.read(), &h));
        // Equal states give byte-identical snapshots.
        let mut again = Vec::new();
        copy.snapshot_to(&mut again).unwrap();
        prop_assert_eq!(again, bytes);
    }
}

#[test]
fn a_snapshot_is_the_state_at_its_revision_while_a_writer_commits() {
    let (s, h) = schema();
    let db = Db::new(s);
    apply(
        &db,
        &h,
        &[Op::User("a".into(), 1, vec![]), Op::Group(1, "a".into())],
    );
    let h = Arc::new(h);
    let view = db.read();
    let expected = dump(&view, &h);
    let writer = {
        let (db, h) = (db.clone(), h.clone());
        std::thread::spawn(move || {
            for i in 0..1000u32 {
                let mut w = db.write(&[&h.users]);
                w.insert(
                    &h.users,
                    User {
                        name: format!("w{i}"),
                        age: (i % 5) as u8,
                        tags: vec![format!("t{}", i % 3)],
                    },
                )
                .unwrap();
                w.commit().unwrap();
            }
        })
    };
    // Streams from the frozen view while the writer commits.
    let mut bytes = Vec::new();
    let info = view.snapshot_to(&mut bytes).unwrap();
    writer.join().unwrap();
    assert_eq!(info.revision, view.revision());
    let (s2, h2) = schema();
    let copy = Db::restore_from(&bytes[..], s2).unwrap();
    assert_eq!(dump(&copy.read(), &h2), expected);
    assert_eq!(db.revision(), view.revision() + 1000);
}

fn small_snapshot() -> Vec<u8> {
    let (s, h) = schema();
    let db = Db::new(s);
    let mut ops = Vec::new();
    for i in 0..12u8 {
        ops.push(Op::User(format!("u{i}"), i % 4, vec!["x".into()]));
        ops.push(Op::Group(u16::from(i), format!("u{i}")));
        if i % 3 == 0 {
            ops.push(Op::Commit);
        }
    }
    apply(&db, &h, &ops);
    let mut bytes = Vec::new();
    db.snapshot_to(&mut bytes).unwrap();
    bytes
}

/// Restores `bytes`: the dump, or the error.
fn try_restore(bytes: &[u8]) -> Result<String, Error> {
    let (s, h) = schema();
    let db = Db::restore_from(bytes, s)?;
    Ok(dump(&db.read(), &h))
}

#[test]
fn damaged_snapshots_are_refused_never_served() {
    let good = small_snapshot();
    let want = try_restore(&good).unwrap();
    let mut errors = 0;
    let mut check = |bytes: &[u8], what: &str| match try_restore(bytes) {
        Ok(got) => assert_eq!(got, want, "{what}: different data served"),
        Err(e) => {
            assert!(
                matches!(
                    e,
                    Error::Corrupt { .. } | Error::UnsupportedVersion { .. } | Error::Io { .. }
                ),
                "{what}: unexpected {e:?}"
            );
            errors += 1;
        }
    };
    for i in 0..good.len() {
        for bit in 0..8 {
            let mut b = good.clone();
            b[i] ^= 1 << bit;
            check(&b, &format!("bit {bit} of byte {i} flipped"));
        }
    }
    for cut in 0..good.len() {
        check(&good[..cut], &format!("cut at {cut}"));
    }
    for sector in 0..good.len().div_ceil(512) {
        let mut b = good.clone();
        let end = ((sector + 1) * 512).min(b.len());
        b[sector * 512..end].fill(0);
        check(&b, &format!("sector {sector} zeroed"));
    }
    let mut longer = good.clone();
    longer.push(0);
    check(&longer, "a byte appended");
    // Every damage was caught (none happened to leave equal data).
    assert_eq!(
        errors,
        good.len() * 8 + good.len() + good.len().div_ceil(512) + 1
    );
}

#[test]
fn schema_changes_between_runs() {
    let bytes = small_snapshot();
    // A new index is built on load.
    {
        let mut s = Schema::builder();
        let mut u = s.table::<User>("user");
        let by_name = u.primary("name", Indexer::string(|x: &User| x.name.as_str()));
        let by_len = u.index("name_len", Indexer::value(|x: &User| x.name.len() as u64));
        u.serde();
        let users = s.add(u).unwrap();
        let mut g = s.table::<Group>("group");
        g.primary("id", Indexer::value(|x: &Group| x.id));
        g.serde();
        s.add(g).unwrap();
        let db = Db::restore_from(&bytes[..], s.build().unwrap()).unwrap();
        let r = db.read();
        assert_eq!(r.len(&users).unwrap(), 12);
        assert_eq!(r.count(&by_len, &2).unwrap(), 10);
        assert_eq!(r.count(&by_len, &3).unwrap(), 2);
        assert!(r.get(&by_name, "u11").unwrap().is_some());
    }
    // A table of the snapshot missing from the schema: refused.
    {
        let mut s = Schema::builder();
        let mut u = s.table::<User>("user");
        u.primary("name", Indexer::string(|x: &User| x.name.as_str()));
        u.serde();
        s.add(u).unwrap();
        let e = Db::restore_from(&bytes[..], s.build().unwrap()).unwrap_err();
        assert!(
            matches!(&e, Error::SchemaMismatch(m) if m.contains("\"group\"")),
            "{e:?}"
        );
    }
    // A table without a codec: a schema error.
    {
        let mut s = Schema::builder();
        let mut u = s.table::<User>("user");
        u.primary("name", Indexer::string(|x: &User| x.name.as_str()));
        s.add(u).unwrap();
        let e = Db::restore_from(&bytes[..], s.build().unwrap()).unwrap_err();
        assert!(matches!(e, Error::Schema(_)), "{e:?}");
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct UserV2 {
    name: String,
    age: u8,
    tags: Vec<String>,
    admin: bool,
}

fn v2_schema(version: u32, migrate: bool) -> (Schema, Table<UserV2>) {
    let mut s = Schema::builder();
    let mut u = s.table::<UserV2>("user");
    u.primary("name", Indexer::string(|x: &UserV2| x.name.as_str()));
    u.serde().version(version);
    if migrate {
        u.migrate(|from, bytes| {
            assert_eq!(from, 0);
            let old: User = postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
            Ok(UserV2 {
                name: old.name,
                age: old.age,
                tags: old.tags,
                admin: false,
            })
        });
    }
    let users = s.add(u).unwrap();
    let mut g = s.table::<Group>("group");
    g.primary("id", Indexer::value(|x: &Group| x.id));
    g.serde();
    s.add(g).unwrap();
    (s.build().unwrap(), users)
}

#[test]
fn row_versions_migrate_or_are_refused() {
    let bytes = small_snapshot();
    // Older rows with a migration hook: migrated.
    let (s, users) = v2_schema(1, true);
    let db = Db::restore_from(&bytes[..], s).unwrap();
    assert_eq!(db.read().len(&users).unwrap(), 12);
    let mut v2 = Vec::new();
    db.snapshot_to(&mut v2).unwrap();
    // Older rows without a hook: refused, naming the table.
    let (s, _) = v2_schema(1, false);
    let e = Db::restore_from(&bytes[..], s).unwrap_err();
    assert!(
        matches!(&e, Error::SchemaMismatch(m) if m.contains("user")),
        "{e:?}"
    );
    // Newer rows than the schema: refused.
    let (s, _) = schema();
    let e = Db::restore_from(&v2[..], s).unwrap_err();
    assert!(
        matches!(&e, Error::SchemaMismatch(m) if m.contains("newer")),
        "{e:?}"
    );
    // Rows that do not decode as the declared type: a typed error.
    let (s, _) = v2_schema(0, false);
    let e = Db::restore_from(&bytes[..], s).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
}

#[test]
fn errors_name_what_is_wrong_stale_snapshot_and_not_durable() {
    let bytes = small_snapshot();
    let (s, h) = schema();
    let db = Db::restore_from(&bytes[..], s).unwrap();
    let revision = db.revision();
    assert!(revision > 0);
    // One more commit: the snapshot is now older than the database.
    apply(&db, &h, &[Op::User("late".into(), 1, vec![]), Op::Commit]);
    let e = db.install_snapshot(&bytes[..]).unwrap_err();
    assert_eq!(
        e,
        Error::StaleSnapshot {
            snapshot: revision,
            current: revision + 1
        }
    );
    assert!(dump(&db.read(), &h).contains("late"), "nothing changed");
    // A checkpoint needs a directory.
    assert!(matches!(db.checkpoint(), Err(Error::NotDurable(_))));
}

/// A schema for the `user` rows of [`small_snapshot`] with a different
/// primary key (age descending, then name: stored rows come in name order,
/// not in this key's order) when `rekey`, a unique age index when
/// `unique_age`, and the `group` table as stored.
fn rekeyed_schema(
    rekey: bool,
    unique_age: bool,
) -> (Schema, Table<User>, Index<User, (u8, String)>) {
    let mut s = Schema::builder();
    let mut u = s.table::<User>("user");
    let key = |x: &User| (9 - x.age, x.name.clone());
    let by_key = if rekey {
        u.primary("key", Indexer::value(key))
    } else {
        u.primary("name", Indexer::string(|x: &User| x.name.as_str()));
        u.unique("key", Indexer::value(key))
    };
    if unique_age {
        u.unique("age", Indexer::value(|x: &User| x.age));
    } else {
        u.index("age", Indexer::value(|x: &User| x.age));
    }
    u.index("tag", Indexer::strings(|x: &User| x.tags.as_slice()));
    u.serde();
    let users = s.add(u).unwrap();
    let mut g = s.table::<Group>("group");
    g.primary("id", Indexer::value(|x: &Group| x.id));
    g.serde();
    s.add(g).unwrap();
    (s.build().unwrap(), users, by_key)
}

#[test]
fn restore_checks_unique_indexes_and_takes_rows_in_any_order() {
    let bytes = small_snapshot();
    // Twelve users over four ages: a unique age index is violated, and the
    // restore says so with the error an insert gives, whether the rows come
    // in the primary key's order or not.
    for rekey in [false, true] {
        let (s, _, _) = rekeyed_schema(rekey, true);
        let e = Db::restore_from(&bytes[..], s).unwrap_err();
        assert!(
            matches!(&e, Error::UniqueViolation { index, .. } if index == "age"),
            "{e:?}"
        );
    }
    // Rows out of the new primary key's order: every row and index as
    // inserting the same rows one by one gives.
    let (s, users, by_key) = rekeyed_schema(true, false);
    let db = Db::restore_from(&bytes[..], s).unwrap();
    let r = db.read();
    assert_eq!(r.len(&users).unwrap(), 12);
    let (s2, users2, by_key2) = rekeyed_schema(true, false);
    let db2 = Db::new(s2);
    let mut w = db2.write(&[&users2]);
    for u in r.all(&by_key).unwrap() {
        w.insert(&users2, (*u).clone()).unwrap();
    }
    w.commit().unwrap();
    let r2 = db2.read();
    assert!(r.all(&by_key).unwrap().eq(r2.all(&by_key2).unwrap()));
    let keys: Vec<(u8, String)> = r
        .all(&by_key)
        .unwrap()
        .map(|u| (9 - u.age, u.name.clone()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    // The same rows in stored order, the unique "key" index built from
    // sorted keys.
    let (s, users, by_key) = rekeyed_schema(false, false);
    let db = Db::restore_from(&bytes[..], s).unwrap();
    let r = db.read();
    assert_eq!(r.len(&users).unwrap(), 12);
    assert!(r.all(&by_key).unwrap().eq(r2.all(&by_key2).unwrap()));
}
