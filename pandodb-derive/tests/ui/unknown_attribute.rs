use pandodb::Table;

#[derive(Table)]
#[pandodb(tabel = "user")]
struct User {
    #[pandodb(primary)]
    id: String,
    #[pandodb(index, unqiue)]
    email: String,
}

#[derive(Table)]
struct Team {
    #[pandodb(primary, indexed_by = "x")]
    id: String,
}

fn main() {}
