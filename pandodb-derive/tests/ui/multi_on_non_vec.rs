use pandodb::Table;

#[derive(Table)]
struct User {
    #[pandodb(primary)]
    id: String,
    #[pandodb(index, multi)]
    team: String,
    #[pandodb(index, multi)]
    manager: Option<String>,
    #[pandodb(primary, multi)]
    tags: Vec<String>,
}

fn main() {}
