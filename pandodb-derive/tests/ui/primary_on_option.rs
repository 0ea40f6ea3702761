use pandodb::Table;

#[derive(Table)]
struct User {
    #[pandodb(primary)]
    id: Option<String>,
}

fn main() {}
