use pandodb::Table;

#[derive(Table)]
struct User {
    #[pandodb(primary)]
    id: String,
    #[pandodb(index)]
    tags: Vec<String>,
}

fn main() {}
