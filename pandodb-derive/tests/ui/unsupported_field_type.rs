use pandodb::Table;
use std::collections::BTreeMap;

#[derive(Table)]
struct Reading {
    #[pandodb(primary)]
    id: u64,
    #[pandodb(index)]
    celsius: f64,
    #[pandodb(index)]
    grade: char,
    #[pandodb(index)]
    labels: BTreeMap<String, String>,
    #[pandodb(index)]
    raw: [u8; 4],
    #[pandodb(index, multi)]
    history: Vec<Option<u32>>,
}

fn main() {}
