use pandodb::Table;

#[derive(Table)]
struct User {
    #[pandodb(primary)]
    id: String,
    #[pandodb(index, case_insensitive)]
    age: i64,
    #[pandodb(index, case_insensitive)]
    nick: Option<String>,
    #[pandodb(index, multi, case_insensitive)]
    tags: Vec<String>,
}

fn main() {}
