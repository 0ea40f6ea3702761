//! The typed API refuses what does not fit, with an error naming the
//! cause: handles of another schema instance, lookups by name with the
//! wrong type, change records read as another type, and tables without a
//! codec on a database stored on disk. (Custom indexers fed keys of another
//! type do not compile: the `compile_fail` example of `KeySink`.)

use pandodb::{Db, Error, Indexer, Options, Query, Schema, Table};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct User {
    name: String,
    age: u32,
}

fn schema(serde: bool) -> (Schema, Table<User>) {
    let mut s = Schema::builder();
    let mut t = s.table::<User>("u");
    t.primary("name", Indexer::string(|u: &User| u.name.as_str()));
    t.index("age", Indexer::value(|u: &User| u.age));
    if serde {
        t.serde();
    }
    let users = s.add(t).unwrap();
    (s.build().unwrap(), users)
}

#[test]
fn a_handle_of_an_identically_rebuilt_schema_is_refused_by_name_of_the_cause() {
    let (s, _) = schema(false);
    let db = Db::new(s);
    let (_, foreign) = schema(false);
    let mut w = db.write(&[&foreign]);
    let e = w
        .insert(
            &foreign,
            User {
                name: "ann".into(),
                age: 1,
            },
        )
        .unwrap_err();
    assert_eq!(e, Error::ForeignHandle("u".into()));
    assert!(e.to_string().contains("another Schema instance"), "{e}");
    assert!(matches!(
        db.read().len(&foreign),
        Err(Error::ForeignHandle(_))
    ));
}

#[test]
fn tables_and_indexes_are_found_by_name_with_their_types() {
    let (s, _) = schema(false);
    let db = Db::new(s);
    let users = db.schema().table::<User>("u").unwrap();
    let by_age = users.index::<u32>("age").unwrap();
    let by_name = users.index::<str>("name").unwrap();
    let mut w = db.write(&[&users]);
    w.insert(
        &users,
        User {
            name: "ann".into(),
            age: 41,
        },
    )
    .unwrap();
    w.commit().unwrap();
    let r = db.read();
    assert_eq!(r.count(&by_age, &41).unwrap(), 1);
    assert_eq!(r.get(&by_name, "ann").unwrap().unwrap().age, 41);
    assert_eq!(
        db.schema().table::<User>("nope").unwrap_err(),
        Error::UnknownTable("nope".into())
    );
    assert!(matches!(
        db.schema().table::<String>("u"),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        users.index::<u64>("age"),
        Err(Error::TypeMismatch { .. })
    ));
    assert_eq!(
        users.index::<str>("nope").unwrap_err(),
        Error::UnknownTable("u.nope".into())
    );
}

#[test]
fn a_change_read_as_another_type_is_an_error() {
    let (s, users) = schema(false);
    let db = Db::new(s);
    let mut w = db.write(&[&users]);
    w.track_changes();
    w.insert(
        &users,
        User {
            name: "ann".into(),
            age: 41,
        },
    )
    .unwrap();
    let c = w.commit().unwrap();
    assert_eq!(c.changes[0].after::<User>().unwrap().unwrap().age, 41);
    assert!(matches!(
        c.changes[0].after::<u32>(),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(c.changes[0].before::<User>().unwrap().is_none());
}

#[test]
fn a_table_without_a_codec_is_refused_when_the_database_is_opened() {
    let dir = std::env::temp_dir().join(format!("pandodb-nocodec-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (s, _) = schema(false);
    let e = Db::open(&dir, s, Options::default()).unwrap_err();
    assert!(
        matches!(&e, Error::Schema(m) if m.contains("\"u\"") && m.contains("serde")),
        "{e}"
    );
    assert!(!dir.exists(), "nothing was created");
    let (s, _) = schema(false);
    assert!(matches!(
        Db::restore_from(&[][..], s),
        Err(Error::Schema(_))
    ));
    // With the codec it opens.
    let (s, _) = schema(true);
    drop(Db::open(&dir, s, Options::default()).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}
