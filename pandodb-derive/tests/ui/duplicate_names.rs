use pandodb::Table;

#[derive(Table)]
struct User {
    #[pandodb(primary)]
    id: String,
    #[pandodb(index, name = "id")]
    email: String,
    #[pandodb(index)]
    table: String,
    #[pandodb(index)]
    #[pandodb(unique)]
    age: i64,
    #[pandodb(name = "x")]
    team: String,
}

fn main() {}
