use pandodb::Table;

#[derive(Table)]
enum Shape {
    Circle,
}

#[derive(Table)]
struct Pair(String, i64);

#[derive(Table)]
struct Wrapper<T> {
    #[pandodb(primary)]
    id: String,
    value: T,
}

fn main() {}
