//! Queries across indexes: a registry of workload entries, each with a
//! parent and a set of selectors, listed by selector sets the way an
//! identity registry matches them (exact, subset, superset, any-of), and
//! intersected with another index, without scanning and filtering by hand.
//!
//! ```sh
//! cargo run --release --example selectors
//! ```

use std::time::Duration;

use pandodb::{Db, Filter, Indexer, Query, Schema, SetMatch};

#[derive(Debug, Clone)]
struct Entry {
    id: String,
    parent: String,
    selectors: Vec<String>,
}

fn entry(id: &str, parent: &str, selectors: &[&str]) -> Entry {
    Entry {
        id: id.into(),
        parent: parent.into(),
        selectors: selectors.iter().map(|s| s.to_string()).collect(),
    }
}

fn ids(rows: impl Iterator<Item = std::sync::Arc<Entry>>) -> Vec<String> {
    rows.map(|e| e.id.clone()).collect()
}

fn main() -> pandodb::Result<()> {
    let mut schema = Schema::builder();
    let mut t = schema.table::<Entry>("entry");
    t.primary("id", Indexer::string(|e: &Entry| e.id.as_str()));
    let by_parent = t.index("parent", Indexer::string(|e: &Entry| e.parent.as_str()));
    let by_selector = t.index(
        "selector",
        Indexer::strings(|e: &Entry| e.selectors.as_slice()),
    );
    let entries = schema.add(t)?;
    let db = Db::new(schema.build()?);

    let mut w = db.write(&[&entries]);
    for e in [
        entry("e1", "node-1", &["k8s:ns:prod"]),
        entry("e2", "node-1", &["k8s:ns:prod", "k8s:sa:api"]),
        entry(
            "e3",
            "node-2",
            &["k8s:ns:prod", "k8s:sa:api", "k8s:pod:api-7"],
        ),
        entry("e4", "node-2", &["k8s:ns:dev", "k8s:sa:api"]),
    ] {
        w.insert(&entries, e)?;
    }
    w.commit()?;

    let r = db.read();
    let wanted = ["k8s:ns:prod", "k8s:sa:api"];
    for mode in [
        SetMatch::Superset,
        SetMatch::Exact,
        SetMatch::Subset,
        SetMatch::Any,
    ] {
        let f = Filter::set(&by_selector, mode, wanted);
        println!("{mode:?} of {wanted:?}: {:?}", ids(r.select(&f)?));
    }

    // An intersection across two indexes, in primary-key order whichever
    // condition is written first; the smallest one drives.
    let on_node2_api = Filter::key(&by_parent, "node-2") & Filter::key(&by_selector, "k8s:sa:api");
    println!("node-2 AND k8s:sa:api: {:?}", ids(r.select(&on_node2_api)?));
    let prod_or_dev =
        Filter::key(&by_selector, "k8s:ns:prod") | Filter::key(&by_selector, "k8s:ns:dev");
    println!("prod OR dev: {} entries", r.select_count(&prod_or_dev)?);

    // Follow a query: the watch fires on a commit that may change its
    // result, and not on writes to entries it cannot select.
    let exact = Filter::set(&by_selector, SetMatch::Exact, wanted);
    let (rows, watch) = r.select_watch(&exact)?;
    println!("exactly {wanted:?}: {:?}", ids(rows));
    let mut w = db.write(&[&entries]);
    w.insert(&entries, entry("e9", "node-3", &["unix:uid:0"]))?;
    w.commit()?;
    println!("after an unrelated write, fired: {}", watch.is_fired());
    let mut w = db.write(&[&entries]);
    w.insert(
        &entries,
        entry("e3", "node-2", &["k8s:ns:prod", "k8s:sa:api"]),
    )?;
    w.commit()?;
    assert!(watch.wait_timeout(Duration::from_secs(5))?);
    println!(
        "after e3 lost a selector: {:?}",
        ids(db.read().select(&exact)?)
    );
    Ok(())
}
