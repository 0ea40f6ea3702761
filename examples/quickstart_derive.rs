//! The quickstart's schema declared with `#[derive(Table)]` instead of by
//! hand: the same table, the same indexes, the same keys (the test
//! `pandodb-derive/tests/equivalence.rs` checks it), then the same first
//! queries.
//!
//! Run: `cargo run --release --features derive --example quickstart_derive`

use pandodb::{Db, Error, Query, Schema, Table};

#[derive(Table, Debug, Clone, serde::Serialize, serde::Deserialize)]
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
    // 1. Schema: `User::declare` declares the table and returns its handles,
    //    a `UserTable { table, id, email, roles, team_age }`.
    let mut schema = Schema::builder();
    let users = User::declare(&mut schema)?;
    let db = Db::new(schema.build()?);

    // 2. One write transaction, committed atomically.
    let mut w = db.write(&[&users.table]);
    w.insert(&users.table, user("alice", "infra", &["admin", "dev"], 34))?;
    w.insert(&users.table, user("bob", "infra", &["dev"], 27))?;
    w.insert(&users.table, user("carol", "web", &["dev", "oncall"], 41))?;
    let rev = w.commit()?.revision;
    println!("committed revision {rev}");

    // 3. Queries by secondary indexes, through the typed handles.
    let r = db.read();
    let devs: Vec<String> = r.iter(&users.roles, "dev")?.map(|u| u.id.clone()).collect();
    println!("role=dev            -> {devs:?}");
    let infra: Vec<(String, i64)> = r
        .iter(&users.team_age.leading(), &("infra".to_string(),))?
        .map(|u| (u.id.clone(), u.age))
        .collect();
    println!("team=infra by age   -> {infra:?}");
    let found = r
        .get(&users.email, "CAROL@example.com")?
        .map(|u| u.id.clone());
    println!("email (any case)    -> {found:?}");
    let bob = r.get(&users.id, "bob")?.map(|u| u.age);
    println!("bob's age           -> {bob:?}");
    Ok(())
}
