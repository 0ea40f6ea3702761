use pandodb::Table;

#[derive(Table)]
#[pandodb(primary(name = "team_id", fields(team, id)))]
struct User {
    #[pandodb(primary)]
    id: String,
    #[pandodb(primary)]
    email: String,
    team: String,
}

fn main() {}
