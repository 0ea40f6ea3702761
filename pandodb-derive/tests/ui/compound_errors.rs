use pandodb::Table;

#[derive(Table)]
#[pandodb(
    index(name = "team_age", fields(team, agee)),
    index(name = "team_tags", fields(team, tags)),
    unique(name = "by-team", fields(team, id)),
    index(fields(team, id)),
    index(name = "lonely", fields(team)),
    index(name = "id", fields(team, id))
)]
struct User {
    #[pandodb(primary)]
    id: String,
    team: String,
    #[pandodb(index, multi)]
    tags: Vec<String>,
    age: i64,
}

fn main() {}
