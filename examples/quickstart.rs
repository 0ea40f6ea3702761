//! pandodb in two minutes: a schema of typed objects, inserts in a write
//! transaction, queries by secondary indexes, and snapshot isolation.
//!
//! Run: `cargo run --release --example quickstart`

use pandodb::{Db, Error, Indexer, Query, Schema};

#[derive(Debug, Clone)]
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
    let users = schema.add(users)?;
    let db = Db::new(schema.build()?);

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
    Ok(())
}
