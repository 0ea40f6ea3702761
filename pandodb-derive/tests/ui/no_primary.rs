use pandodb::Table;

#[derive(Table)]
struct User {
    #[pandodb(unique)]
    id: String,
    #[pandodb(index)]
    age: i64,
}

fn main() {}
