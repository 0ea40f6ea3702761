//! The pandodb tree in two minutes: build a tree in one transaction, keep a
//! version, mutate, and read both versions (point reads, prefix counts and
//! range scans).
//!
//! Run: `cargo run --release --example tree`

use pandodb::tree::Tree;

fn main() {
    // One transaction inserts 100,000 keys: each path is copied at most once.
    let empty: Tree<u64> = Tree::new();
    let mut txn = empty.txn();
    for i in 0..100_000u64 {
        txn.insert(format!("user-{i:08}").as_bytes(), i);
    }
    let v1 = txn.commit();
    println!(
        "v1: {} keys (the empty version still has {})",
        v1.len(),
        empty.len()
    );

    // Keep v1 and derive v2 from it: O(1) clone, copy-on-write mutation.
    let mut v2 = v1.clone();
    let removed = v2.remove_prefix(b"user-0000");
    v2.insert(b"user-99999999", 42);
    v2.insert(b"admin-root", 0);
    println!("v2: removed {removed} keys under \"user-0000\", added 2");

    for (name, t) in [("v1", &v1), ("v2", &v2)] {
        println!(
            "{name}: len={} count_prefix(\"user-0000\")={} count_prefix(\"user-0001\")={} get(\"user-00000042\")={:?}",
            t.len(),
            t.count_prefix(b"user-0000"),
            t.count_prefix(b"user-0001"),
            t.get(b"user-00000042"),
        );
        let page: Vec<String> = t
            .lower_bound(b"user-00009998")
            .take(4)
            .map(|(k, v)| format!("{}={v}", String::from_utf8_lossy(k)))
            .collect();
        println!(
            "{name}: lower_bound(\"user-00009998\") -> {}",
            page.join(", ")
        );
        let last: Vec<String> = t
            .iter()
            .rev()
            .take(2)
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect();
        println!("{name}: last two keys, descending -> {}", last.join(", "));
    }
    assert_eq!(v1.len(), 100_000);
    assert_eq!(v2.len(), 100_000 - removed + 2);
    println!("both versions read back independently: ok");
}
