//! `#[derive(Table)]` expands to exactly the hand-written schema: the
//! quickstart's `user` table (examples/quickstart.rs) and a table using
//! every field form are declared both ways, filled with the same objects
//! through the same writes, and compared index by index: names, uniqueness,
//! entry counts, the rows of every index in key order, every point and
//! prefix query on keys taken from the objects, and the snapshot bytes
//! (which hold the table's name, row version and each index's name and
//! uniqueness in declaration order).
//!
//! Run: `cargo test --release -p pandodb-derive --test equivalence`

use std::fmt::Debug;
use std::sync::Arc;

use pandodb::{Db, Encode, Index, Indexer, Query, ReadTxn, Schema, Table, Uuid};

/// The quickstart's row type, indexed as the quickstart indexes it.
#[derive(Table, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[pandodb(table = "user", serde, index(name = "team_age", fields(team, age)))]
struct User {
    #[pandodb(primary)]
    id: String,
    #[pandodb(unique, case_insensitive)]
    email: String,
    team: String,
    #[pandodb(index, multi, name = "role")]
    roles: Vec<String>,
    age: i64,
}

/// The quickstart's hand-written declaration, verbatim but for the names.
struct HandUsers {
    table: Table<User>,
    by_id: Index<User, str>,
    by_email: Index<User, str>,
    by_role: Index<User, str>,
    by_team_age: Index<User, (String, i64)>,
}

fn hand_users(schema: &mut pandodb::SchemaBuilder) -> pandodb::Result<HandUsers> {
    let mut users = schema.table::<User>("user");
    let by_id = users.primary("id", Indexer::string(|u: &User| u.id.as_str()));
    let by_email = users.unique("email", Indexer::string_ci(|u: &User| u.email.as_str()));
    let by_role = users.index("role", Indexer::strings(|u: &User| u.roles.as_slice()));
    let by_team_age = users.index(
        "team_age",
        Indexer::value(|u: &User| (u.team.clone(), u.age)),
    );
    users.serde();
    let table = schema.add(users)?;
    Ok(HandUsers {
        table,
        by_id,
        by_email,
        by_role,
        by_team_age,
    })
}

fn user(id: &str, email: &str, team: &str, roles: &[&str], age: i64) -> User {
    User {
        id: id.into(),
        email: email.into(),
        team: team.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        age,
    }
}

/// Both handles name the same index the same way.
fn same_handle<T, K: ?Sized>(a: &Index<T, K>, b: &Index<T, K>) {
    assert_eq!(a.name(), b.name());
    assert_eq!(a.is_unique(), b.is_unique(), "{}", a.name());
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

/// Both indexes hold the same entries: the same count, the same rows in key
/// order (forwards and backwards), and the same answer to every point,
/// prefix and lower-bound query on `keys`.
fn same_index<T, K, R>(
    ra: &ReadTxn,
    a: &Index<T, K>,
    rb: &ReadTxn,
    b: &Index<T, K>,
    keys: &[&K],
    id: impl Fn(&T) -> R,
) where
    T: Send + Sync + 'static,
    K: Encode + Debug + ?Sized,
    R: PartialEq + Debug,
{
    let ids = |it: pandodb::RowIter<T>| it.map(|o: Arc<T>| id(&o)).collect::<Vec<R>>();
    let name = a.name();
    assert_eq!(ra.index_len(a).unwrap(), rb.index_len(b).unwrap(), "{name}");
    assert_eq!(ids(ra.all(a).unwrap()), ids(rb.all(b).unwrap()), "{name}");
    assert_eq!(
        ids(ra.all(a).unwrap())
            .into_iter()
            .rev()
            .collect::<Vec<_>>(),
        ra.all(a).unwrap().rev().map(|o| id(&o)).collect::<Vec<_>>(),
        "{name}"
    );
    for k in keys {
        let ctx = format!("{name} {k:?}");
        assert_eq!(ra.count(a, k).unwrap(), rb.count(b, k).unwrap(), "{ctx}");
        assert_eq!(
            ids(ra.iter(a, k).unwrap()),
            ids(rb.iter(b, k).unwrap()),
            "{ctx}"
        );
        assert_eq!(
            ids(ra.prefix(a, k).unwrap()),
            ids(rb.prefix(b, k).unwrap()),
            "{ctx}"
        );
        assert_eq!(
            ids(ra.lower_bound(a, k).unwrap()),
            ids(rb.lower_bound(b, k).unwrap()),
            "{ctx}"
        );
        assert_eq!(
            ra.first(a, k).unwrap().map(|o| id(&o)),
            rb.first(b, k).unwrap().map(|o| id(&o)),
            "{ctx}"
        );
        if a.is_unique() {
            assert_eq!(
                ra.get(a, k).unwrap().map(|o| id(&o)),
                rb.get(b, k).unwrap().map(|o| id(&o)),
                "{ctx}"
            );
        }
    }
}

fn snapshot(db: &Db) -> Vec<u8> {
    let mut bytes = Vec::new();
    db.snapshot_to(&mut bytes).unwrap();
    bytes
}

#[test]
fn derive_declares_exactly_the_quickstart_schema() {
    let mut sa = Schema::builder();
    let hand = hand_users(&mut sa).unwrap();
    let a = Db::new(sa.build().unwrap());
    let mut sb = Schema::builder();
    let derived: UserTable = User::declare(&mut sb).unwrap();
    let b = Db::new(sb.build().unwrap());

    assert_eq!(hand.table.name(), derived.table.name());
    same_handle(&hand.by_id, &derived.id);
    same_handle(&hand.by_email, &derived.email);
    same_handle(&hand.by_role, &derived.roles);
    same_handle(&hand.by_team_age, &derived.team_age);

    let objects = [
        user("alice", "alice@example.com", "infra", &["admin", "dev"], 34),
        user("bob", "Bob@Example.com", "infra", &["dev", "dev"], 27),
        user("carol", "carol@example.com", "web", &["dev", "oncall"], 41),
        user("dave", "DAVE@x.io", "web", &[], -3),
        user("erin", "erin@x.io", "", &["", "a\0b"], 0),
        user("frank", "frank@x.io", "infra", &["admin"], 27),
    ];
    let dup_email = user("mallory", "ALICE@example.com", "web", &[], 50);
    for (db, t) in [(&a, &hand.table), (&b, &derived.table)] {
        let mut w = db.write(&[t]);
        for o in &objects {
            w.insert(t, o.clone()).unwrap();
        }
        assert!(w.insert(t, dup_email.clone()).is_err(), "unique email");
        w.commit().unwrap();
        // An update that changes every key, and a delete.
        let mut w = db.write(&[t]);
        w.insert(t, user("bob", "bob@y.io", "web", &["oncall"], 28))
            .unwrap();
        w.delete(t, &objects[3]).unwrap();
        w.commit().unwrap();
    }

    let (ra, rb) = (a.read(), b.read());
    let id = |u: &User| u.id.clone();
    let mut strs: Vec<String> = Vec::new();
    for o in &objects {
        strs.extend([
            o.id.clone(),
            o.email.clone(),
            o.email.to_uppercase(),
            o.team.clone(),
        ]);
        strs.extend(o.roles.iter().cloned());
        strs.push(o.id[..1].to_string());
    }
    strs.extend([
        "".into(),
        "bob@y.io".into(),
        "nobody".into(),
        "BOB@Y".into(),
    ]);
    let strs: Vec<&str> = strs.iter().map(String::as_str).collect();
    same_index(&ra, &hand.by_id, &rb, &derived.id, &strs, id);
    same_index(&ra, &hand.by_email, &rb, &derived.email, &strs, id);
    same_index(&ra, &hand.by_role, &rb, &derived.roles, &strs, id);
    let pairs: Vec<(String, i64)> = objects
        .iter()
        .flat_map(|o| [(o.team.clone(), o.age), (o.team.clone(), o.age + 1)])
        .chain([("web".to_string(), 28), ("zzz".to_string(), i64::MIN)])
        .collect();
    let pairs: Vec<&(String, i64)> = pairs.iter().collect();
    same_index(&ra, &hand.by_team_age, &rb, &derived.team_age, &pairs, id);
    let teams: Vec<(String,)> = ["infra", "web", "", "w"].map(|t| (t.to_string(),)).into();
    let teams: Vec<&(String,)> = teams.iter().collect();
    same_index(
        &ra,
        &hand.by_team_age.leading(),
        &rb,
        &derived.team_age.leading(),
        &teams,
        id,
    );

    // The snapshots are byte-identical, and each restores under the other's
    // schema (the restore checks table and index names and uniqueness).
    let (snap_a, snap_b) = (snapshot(&a), snapshot(&b));
    assert_eq!(snap_a, snap_b);
    let mut sb2 = Schema::builder();
    let derived2 = User::declare(&mut sb2).unwrap();
    let restored = Db::restore_from(&snap_a[..], sb2.build().unwrap()).unwrap();
    let r = restored.read();
    same_index(&ra, &hand.by_role, &r, &derived2.roles, &strs, id);
}

/// Every field form the derive supports, with its hand-written twin.
#[derive(Table, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[pandodb(
    table = "person",
    serde,
    version = 3,
    unique(name = "team_rank", fields(team, rank, active)),
    index(name = "team_badge", fields(team, badge))
)]
pub struct Person {
    #[pandodb(primary)]
    id: String,
    #[pandodb(unique)]
    email: String,
    #[pandodb(index)]
    age: i64,
    #[pandodb(index, multi)]
    tags: Vec<String>,
    #[pandodb(index)]
    manager: Option<String>,
    #[pandodb(index)]
    level: Option<u16>,
    #[pandodb(index, multi, name = "score")]
    scores: Vec<u32>,
    #[pandodb(unique)]
    badge: Vec<u8>,
    #[pandodb(index)]
    active: bool,
    // `Uuid` has no serde implementation: not stored (snapshots are
    // compared byte for byte, not restored, in this test).
    #[pandodb(index)]
    #[serde(skip)]
    uuid: Uuid,
    team: String,
    rank: u8,
    note: String,
}

struct HandPeople {
    table: Table<Person>,
    id: Index<Person, str>,
    email: Index<Person, str>,
    age: Index<Person, i64>,
    tags: Index<Person, str>,
    manager: Index<Person, str>,
    level: Index<Person, u16>,
    scores: Index<Person, u32>,
    badge: Index<Person, [u8]>,
    active: Index<Person, bool>,
    uuid: Index<Person, Uuid>,
    team_rank: Index<Person, (String, u8, bool)>,
    team_badge: Index<Person, (String, Vec<u8>)>,
}

fn hand_people(schema: &mut pandodb::SchemaBuilder) -> pandodb::Result<HandPeople> {
    let mut t = schema.table::<Person>("person");
    let id = t.primary("id", Indexer::string(|p: &Person| p.id.as_str()));
    let email = t.unique("email", Indexer::string(|p: &Person| p.email.as_str()));
    let age = t.index("age", Indexer::value(|p: &Person| p.age));
    let tags = t.index("tags", Indexer::strings(|p: &Person| p.tags.as_slice()));
    let manager = t.index(
        "manager",
        Indexer::optional_string(|p: &Person| p.manager.as_deref()),
    );
    let level = t.index("level", Indexer::optional(|p: &Person| p.level));
    let scores = t.index("score", Indexer::multi(|p: &Person| p.scores.clone()));
    let badge = t.unique("badge", Indexer::bytes(|p: &Person| p.badge.as_slice()));
    let active = t.index("active", Indexer::value(|p: &Person| p.active));
    let uuid = t.index("uuid", Indexer::value(|p: &Person| p.uuid));
    let team_rank = t.unique(
        "team_rank",
        Indexer::value(|p: &Person| (p.team.clone(), p.rank, p.active)),
    );
    let team_badge = t.index(
        "team_badge",
        Indexer::value(|p: &Person| (p.team.clone(), p.badge.clone())),
    );
    t.serde().version(3);
    let table = schema.add(t)?;
    Ok(HandPeople {
        table,
        id,
        email,
        age,
        tags,
        manager,
        level,
        scores,
        badge,
        active,
        uuid,
        team_rank,
        team_badge,
    })
}

fn person(i: u8) -> Person {
    let n = i64::from(i);
    Person {
        id: format!("p{i}"),
        email: format!("p{i}@x.io"),
        age: 20 + n % 7 - 10,
        tags: (0..i % 4).map(|k| format!("t{}", (k + i) % 3)).collect(),
        manager: (!i.is_multiple_of(3)).then(|| format!("p{}", i / 2)),
        level: i.is_multiple_of(2).then_some(u16::from(i) * 300),
        scores: (0..i % 3)
            .map(|k| u32::from(k) * 1000 + u32::from(i % 5))
            .collect(),
        badge: vec![i, 0, i / 2],
        active: i % 2 == 1,
        uuid: Uuid([i % 4; 16]),
        team: ["red", "blue", "", "re"][usize::from(i % 4)].to_string(),
        rank: i,
        note: "ignored".into(),
    }
}

#[test]
fn every_field_form_expands_to_its_hand_written_indexer() {
    let mut sa = Schema::builder();
    let hand = hand_people(&mut sa).unwrap();
    let a = Db::new(sa.build().unwrap());
    let mut sb = Schema::builder();
    let d: PersonTable = Person::declare(&mut sb).unwrap();
    let b = Db::new(sb.build().unwrap());

    // The handles have the documented key types.
    let _: &Index<Person, str> = &d.manager;
    let _: &Index<Person, i64> = &d.age;
    let _: &Index<Person, u16> = &d.level;
    let _: &Index<Person, [u8]> = &d.badge;
    let _: &Index<Person, u32> = &d.scores;
    let _: &Index<Person, Uuid> = &d.uuid;
    let _: &Index<Person, (String, u8, bool)> = &d.team_rank;
    let _: &Index<Person, (String, Vec<u8>)> = &d.team_badge;

    assert_eq!(hand.table.name(), d.table.name());
    same_handle(&hand.id, &d.id);
    same_handle(&hand.email, &d.email);
    same_handle(&hand.age, &d.age);
    same_handle(&hand.tags, &d.tags);
    same_handle(&hand.manager, &d.manager);
    same_handle(&hand.level, &d.level);
    same_handle(&hand.scores, &d.scores);
    same_handle(&hand.badge, &d.badge);
    same_handle(&hand.active, &d.active);
    same_handle(&hand.uuid, &d.uuid);
    same_handle(&hand.team_rank, &d.team_rank);
    same_handle(&hand.team_badge, &d.team_badge);

    let objects: Vec<Person> = (0..24).map(person).collect();
    for (db, t) in [(&a, &hand.table), (&b, &d.table)] {
        let mut w = db.write(&[t]);
        for o in &objects {
            w.insert(t, o.clone()).unwrap();
        }
        let mut clash = person(30);
        clash.badge = objects[5].badge.clone();
        assert!(w.insert(t, clash).is_err(), "unique badge");
        w.commit().unwrap();
        let mut w = db.write(&[t]);
        for o in objects.iter().step_by(5) {
            w.delete(t, o).unwrap();
        }
        let mut moved = objects[7].clone();
        (moved.manager, moved.level, moved.tags) = (None, Some(1), vec!["t9".into()]);
        w.insert(t, moved).unwrap();
        w.commit().unwrap();
    }

    let (ra, rb) = (a.read(), b.read());
    let id = |p: &Person| p.id.clone();
    let mut strs: Vec<String> = vec!["".into(), "p".into(), "t".into(), "t9".into()];
    for o in &objects {
        strs.extend([o.id.clone(), o.email.clone()]);
        strs.extend(o.tags.iter().cloned());
        strs.extend(o.manager.iter().cloned());
    }
    let strs: Vec<&str> = strs.iter().map(String::as_str).collect();
    same_index(&ra, &hand.id, &rb, &d.id, &strs, id);
    same_index(&ra, &hand.email, &rb, &d.email, &strs, id);
    same_index(&ra, &hand.tags, &rb, &d.tags, &strs, id);
    same_index(&ra, &hand.manager, &rb, &d.manager, &strs, id);
    let ages: Vec<i64> = (-12..20).collect();
    same_index(
        &ra,
        &hand.age,
        &rb,
        &d.age,
        &ages.iter().collect::<Vec<_>>(),
        id,
    );
    let levels: Vec<u16> = (0..30).map(|i| i * 150).chain([1]).collect();
    same_index(
        &ra,
        &hand.level,
        &rb,
        &d.level,
        &levels.iter().collect::<Vec<_>>(),
        id,
    );
    let scores: Vec<u32> = (0..3)
        .flat_map(|k| (0..6).map(move |i| k * 1000 + i))
        .collect();
    same_index(
        &ra,
        &hand.scores,
        &rb,
        &d.scores,
        &scores.iter().collect::<Vec<_>>(),
        id,
    );
    let badges: Vec<&[u8]> = objects
        .iter()
        .map(|o| o.badge.as_slice())
        .chain([&b""[..], &[3u8][..]])
        .collect();
    same_index(&ra, &hand.badge, &rb, &d.badge, &badges, id);
    same_index(&ra, &hand.active, &rb, &d.active, &[&true, &false], id);
    let uuids: Vec<Uuid> = (0..5).map(|i| Uuid([i; 16])).collect();
    same_index(
        &ra,
        &hand.uuid,
        &rb,
        &d.uuid,
        &uuids.iter().collect::<Vec<_>>(),
        id,
    );
    let ranks: Vec<(String, u8, bool)> = objects
        .iter()
        .flat_map(|o| {
            [
                (o.team.clone(), o.rank, o.active),
                (o.team.clone(), o.rank, !o.active),
            ]
        })
        .collect();
    same_index(
        &ra,
        &hand.team_rank,
        &rb,
        &d.team_rank,
        &ranks.iter().collect::<Vec<_>>(),
        id,
    );
    let tb: Vec<(String, Vec<u8>)> = objects
        .iter()
        .map(|o| (o.team.clone(), o.badge.clone()))
        .collect();
    same_index(
        &ra,
        &hand.team_badge,
        &rb,
        &d.team_badge,
        &tb.iter().collect::<Vec<_>>(),
        id,
    );
    let teams: Vec<(String,)> = ["red", "blue", "", "re", "r"]
        .map(|t| (t.to_string(),))
        .into();
    let teams: Vec<&(String,)> = teams.iter().collect();
    same_index(
        &ra,
        &hand.team_rank.leading(),
        &rb,
        &d.team_rank.leading(),
        &teams,
        id,
    );
    let tr: Vec<(String, u8)> = objects.iter().map(|o| (o.team.clone(), o.rank)).collect();
    same_index(
        &ra,
        &hand.team_rank.leading2(),
        &rb,
        &d.team_rank.leading2(),
        &tr.iter().collect::<Vec<_>>(),
        id,
    );

    // An absent optional field has no key: the hand-written count of the
    // objects with a manager is the index's size.
    let with_manager = ra
        .all(&hand.id)
        .unwrap()
        .filter(|p| p.manager.is_some())
        .count();
    assert_eq!(rb.index_len(&d.manager).unwrap(), with_manager);
    assert_eq!(snapshot(&a), snapshot(&b));
}

/// Fields named like the generated function's variables do not shadow them.
#[derive(Table, Debug, Clone)]
struct Clash {
    #[pandodb(primary)]
    t: String,
    #[pandodb(index)]
    schema: u32,
    #[pandodb(index)]
    f: Option<i8>,
}

#[test]
fn field_names_do_not_clash_with_the_generated_code() {
    let mut s = Schema::builder();
    let c: ClashTable = Clash::declare(&mut s).unwrap();
    assert_eq!(c.table.name(), "clash");
    let db = Db::new(s.build().unwrap());
    let mut w = db.write(&[&c.table]);
    w.insert(
        &c.table,
        Clash {
            t: "a".into(),
            schema: 7,
            f: None,
        },
    )
    .unwrap();
    w.commit().unwrap();
    let r = db.read();
    assert_eq!(r.count(&c.schema, &7).unwrap(), 1);
    assert_eq!(r.index_len(&c.f).unwrap(), 0);
    assert!(r.get(&c.t, "a").unwrap().is_some());
}

/// `declare_with` runs its closure on the table builder before the table is
/// added: here an extra index the derive does not express.
#[derive(Table, Debug, Clone)]
struct LongName {
    #[pandodb(primary)]
    id: u64,
    words: String,
}

#[test]
fn declare_with_runs_its_closure_before_the_table_is_added() {
    let mut s = Schema::builder();
    let mut by_word = None;
    let t = LongName::declare_with(&mut s, |t| {
        by_word = Some(t.index(
            "word",
            Indexer::<LongName, str>::custom(|o: &LongName, keys| {
                o.words.split_whitespace().for_each(|w| keys.add(w))
            }),
        ));
    })
    .unwrap();
    let by_word = by_word.unwrap();
    assert_eq!(t.table.name(), "long_name");
    let db = Db::new(s.build().unwrap());
    let mut w = db.write(&[&t.table]);
    w.insert(
        &t.table,
        LongName {
            id: 1,
            words: "a b".into(),
        },
    )
    .unwrap();
    w.commit().unwrap();
    assert_eq!(db.read().index_len(&by_word).unwrap(), 2);
    assert!(db.read().get(&t.id, &1).unwrap().is_some());
}
