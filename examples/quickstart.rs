//! pandodb in two minutes: a schema of typed objects, inserts in a write
//! transaction, queries by secondary indexes, snapshot isolation, then
//! revisions and compare-and-swap, a watch, and a snapshot written and
//! restored.
//!
//! Run: `cargo run --release --example quickstart`
//!
//! `examples/quickstart_derive.rs` declares the same table with
//! `#[derive(Table)]` (feature `derive`).

use std::time::Duration;

use pandodb::{Db, Error, Indexer, Query, Schema};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct User {
    id: String,
    email: String,
    team: String,
    roles: Vec<String>,
    age: i64,
}

fn user(id: &str, team: &str, roles: &[&str], age: i64) -> User {
    User {
        id: id.into(),
        email: format!("{id}@example.com"),
        team: team.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        age,
    }
}

fn main() -> Result<(), Error> {
    // 1. Schema: a primary index and typed secondary indexes.
    let mut schema = Schema::builder();
    let mut users = schema.table::<User>("user");
    let by_id = users.primary("id", Indexer::string(|u: &User| u.id.as_str()));
    let by_email = users.unique("email", Indexer::string_ci(|u: &User| u.email.as_str()));
    let by_role = users.index("role", Indexer::strings(|u: &User| u.roles.as_slice()));
    let by_team_age = users.index(
        "team_age",
        Indexer::value(|u: &User| (u.team.clone(), u.age)),
    );
    users.serde(); // rows can be written to snapshots and the durable log
    let users = schema.add(users)?;
    let schema = schema.build()?;
    let db = Db::new(schema.clone());

    // 2. One write transaction, committed atomically.
    let mut w = db.write(&[&users]);
    w.insert(&users, user("alice", "infra", &["admin", "dev"], 34))?;
    w.insert(&users, user("bob", "infra", &["dev"], 27))?;
    w.insert(&users, user("carol", "web", &["dev", "oncall"], 41))?;
    let rev = w.commit()?.revision;
    println!("committed revision {rev}");

    // 3. Queries by secondary indexes.
    let r = db.read();
    let devs: Vec<String> = r.iter(&by_role, "dev")?.map(|u| u.id.clone()).collect();
    println!("role=dev            -> {devs:?}");
    let infra: Vec<(String, i64)> = r
        .iter(&by_team_age.leading(), &("infra".to_string(),))?
        .map(|u| (u.id.clone(), u.age))
        .collect();
    println!("team=infra by age   -> {infra:?}");
    let found = r.get(&by_email, "CAROL@example.com")?.map(|u| u.id.clone());
    println!("email (any case)    -> {found:?}");

    // 4. A unique index refuses a duplicate and leaves the transaction as it was.
    let mut w = db.write(&[&users]);
    let mut dup = user("mallory", "web", &[], 50);
    dup.email = "Alice@Example.com".into();
    match w.insert(&users, dup) {
        Err(e) => println!("duplicate email     -> refused: {e}"),
        Ok(_) => unreachable!("the unique index must refuse it"),
    }

    // 5. Snapshot isolation: `before` keeps seeing revision 1.
    let before = db.read();
    w.delete_all(&by_id, "bob")?;
    w.insert(&users, user("dave", "web", &["dev"], 22))?;
    println!(
        "inside the write txn: {} users (own writes visible)",
        w.len(&users)?
    );
    w.commit()?;
    let after = db.read();
    println!(
        "snapshot at rev {}: {} users, bob present: {}",
        before.revision(),
        before.len(&users)?,
        before.get(&by_id, "bob")?.is_some()
    );
    println!(
        "latest   at rev {}: {} users, bob present: {}",
        after.revision(),
        after.len(&users)?,
        after.get(&by_id, "bob")?.is_some()
    );

    // 6. Revisions and compare-and-swap: a stale read-modify-write loses.
    let seen = db.read().get_versioned(&by_id, "carol")?.expect("carol");
    println!(
        "carol: created at {}, modified at {}",
        seen.created, seen.modified
    );
    let mut w = db.write(&[&users]);
    w.insert(&users, user("carol", "web", &["dev"], 42))?; // someone else
    w.commit()?;
    let mut w = db.write(&[&users]);
    let mut promoted = (*seen.object).clone();
    promoted.roles.push("admin".into());
    match w.update_if(&users, promoted, seen.modified) {
        Err(e) => println!("stale update        -> refused: {e}"),
        Ok(_) => unreachable!("carol changed since she was read"),
    }
    drop(w);

    // 7. A watch fires when a query's answer may have changed.
    let (erin, watch) = db.read().get_watch(&by_id, "erin")?;
    println!("erin present: {}", erin.is_some());
    let writer = {
        let (db, users) = (db.clone(), users.clone());
        std::thread::spawn(move || -> Result<(), Error> {
            let mut w = db.write(&[&users]);
            w.insert(&users, user("erin", "infra", &["dev"], 30))?;
            w.commit()?;
            Ok(())
        })
    };
    let fired = watch.wait_timeout(Duration::from_secs(5))?;
    writer.join().expect("writer")?;
    println!(
        "watch fired: {fired}; erin present now: {}",
        db.read().get(&by_id, "erin")?.is_some()
    );

    // 8. A snapshot to bytes, restored into a new database.
    let mut bytes = Vec::new();
    let info = db.snapshot_to(&mut bytes)?;
    let copy = Db::restore_from(&bytes[..], schema)?;
    println!(
        "snapshot: revision {}, {} rows, {} bytes; restored copy has {} users",
        info.revision,
        info.rows,
        info.bytes,
        copy.read().len(&users)?
    );
    Ok(())
}
