//! Observing a database: `Db::stats` (revision, rows, watches, feed,
//! commit and sync latency histograms) and the `tracing` events (recovery
//! on open, checkpoints, slow commits), captured by a small hand-written
//! subscriber.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pandodb::{Db, Durability, Indexer, Options, Query, Retention, Schema, Table};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Item {
    name: String,
    n: u64,
}

fn schema() -> (Schema, Table<Item>, pandodb::Index<Item, str>, Table<Item>) {
    let mut s = Schema::builder();
    let mut t = s.table::<Item>("item");
    let by_name = t.primary("name", Indexer::string(|i: &Item| i.name.as_str()));
    t.serde();
    let items = s.add(t).unwrap();
    let mut o = s.table::<Item>("other");
    o.primary("name", Indexer::string(|i: &Item| i.name.as_str()));
    o.serde();
    let other = s.add(o).unwrap();
    (s.build().unwrap(), items, by_name, other)
}

fn put(db: &Db, table: &Table<Item>, name: &str, n: u64) -> u64 {
    let mut w = db.write(&[table]);
    w.insert(
        table,
        Item {
            name: name.into(),
            n,
        },
    )
    .unwrap();
    w.commit().unwrap().revision
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pandodb-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn stats_after_a_few_commits() {
    let (s, items, by_name, other) = schema();
    let db = Db::with_options(s, Options::default().feed_retention(Retention::commits(2)));
    let st = db.stats();
    assert_eq!(st.revision, 0);
    assert_eq!(st.rows.get("item"), Some(&0));
    assert_eq!(st.commit_latency.count(), 0);
    assert_eq!(st.commit_latency.quantile(0.5), None);
    assert!(
        st.sync_latency.is_none(),
        "an in-memory database never syncs"
    );

    put(&db, &items, "a", 1);
    put(&db, &items, "b", 2);
    put(&db, &other, "x", 3);
    // A commit that wrote nothing is not a commit: not counted.
    db.write(&[&items]).commit().unwrap();
    let (_, watch) = db.read().get_watch(&by_name, "a").unwrap();

    let st = db.stats();
    assert_eq!(st.revision, 3);
    let rows: Vec<(&str, usize)> = st.rows.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(rows, [("item", 2), ("other", 1)]);
    assert_eq!(st.commit_latency.count(), 3);
    assert!(st.commit_latency.sum() > Duration::ZERO);
    let p50 = st.commit_latency.quantile(0.5).unwrap();
    let p99 = st.commit_latency.quantile(0.99).unwrap();
    assert!(p50 <= p99 && p99 < Duration::from_secs(60));
    assert_eq!((st.watches, st.watch_bytes > 0), (1, true));
    assert_eq!(st.feed_commits, 2, "the feed retains the last two commits");
    assert!(st.feed_bytes > 0);
    drop(watch);
}

#[test]
fn sync_latency_is_recorded_in_sync_mode() {
    let dir = temp_dir("stats-sync");
    {
        let (s, items, _, _) = schema();
        let db = Db::open(&dir, s, Options::default()).unwrap();
        let st = db.stats();
        assert_eq!(st.sync_latency.as_ref().map(|h| h.count()), Some(0));
        for i in 0..5 {
            put(&db, &items, &format!("k{i}"), i);
        }
        let st = db.stats();
        assert_eq!((st.revision, st.rows["item"]), (5, 5));
        assert_eq!(st.commit_latency.count(), 5);
        let sync = st.sync_latency.unwrap();
        // One committer: one group (one fdatasync) per commit.
        assert_eq!(sync.count(), 5);
        assert!(sync.quantile(0.99).unwrap() > Duration::ZERO);
        // A commit waits for its sync: it takes at least as long.
        assert!(st.commit_latency.sum() >= sync.sum());
    }
    {
        // Memory-only durability opened from a directory never syncs a log.
        let (s, items, _, _) = schema();
        let db = Db::open(&dir, s, Options::default().durability(Durability::None)).unwrap();
        put(&db, &items, "more", 9);
        assert_eq!(db.stats().sync_latency.unwrap().count(), 0);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One captured event: level, message, fields, and the fields of the span
/// it happened in (its name under `"span"`).
#[derive(Debug, Clone)]
struct Captured {
    level: Level,
    fields: BTreeMap<String, String>,
    span: BTreeMap<String, String>,
}

impl Captured {
    fn message(&self) -> &str {
        self.fields.get("message").map_or("", String::as_str)
    }
    fn field(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .unwrap_or_else(|| panic!("event {self:?} has no field {name}"))
    }
}

/// A subscriber that keeps every event (of the thread it is the default
/// of) with the fields of the innermost entered span.
#[derive(Clone, Default)]
struct Capture {
    events: Arc<Mutex<Vec<Captured>>>,
    spans: Arc<Mutex<BTreeMap<u64, BTreeMap<String, String>>>>,
    stack: Arc<Mutex<Vec<u64>>>,
    next: Arc<AtomicU64>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
}

impl Capture {
    fn events(&self) -> Vec<Captured> {
        self.events.lock().unwrap().clone()
    }
    fn with_message(&self, message: &str) -> Vec<Captured> {
        let events = self.events();
        events
            .into_iter()
            .filter(|e| e.message() == message)
            .collect()
    }
}

impl Subscriber for Capture {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // Ask every time: other tests' threads run without this subscriber.
        Interest::sometimes()
    }
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut fields = BTreeMap::new();
        fields.insert("span".to_string(), span.metadata().name().to_string());
        span.record(&mut Fields(&mut fields));
        self.spans.lock().unwrap().insert(id, fields);
        Id::from_u64(id)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let span = self
            .stack
            .lock()
            .unwrap()
            .last()
            .and_then(|id| self.spans.lock().unwrap().get(id).cloned())
            .unwrap_or_default();
        self.events.lock().unwrap().push(Captured {
            level: *event.metadata().level(),
            fields,
            span,
        });
    }
    fn enter(&self, span: &Id) {
        self.stack.lock().unwrap().push(span.into_u64());
    }
    fn exit(&self, _: &Id) {
        self.stack.lock().unwrap().pop();
    }
}

#[test]
fn recovery_and_checkpoint_events() {
    let dir = temp_dir("trace-recovery");
    {
        let (s, items, _, _) = schema();
        let db = Db::open(&dir, s, Options::default()).unwrap();
        for i in 0..3 {
            put(&db, &items, &format!("k{i}"), i);
        }
    }
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || {
        let (s, items, by_name, _) = schema();
        let db = Db::open(&dir, s, Options::default()).unwrap();
        assert_eq!(db.read().get(&by_name, "k2").unwrap().unwrap().n, 2);
        let recovered = capture.with_message("pandodb: recovered");
        assert_eq!(recovered.len(), 1, "{:?}", capture.events());
        let e = &recovered[0];
        assert_eq!(e.level, Level::INFO);
        assert_eq!(e.field("snapshot_revision"), "0");
        assert_eq!(e.field("segments"), "1");
        assert_eq!(e.field("records"), "3");
        assert_eq!(e.field("revision"), "3");
        assert!(e.field("elapsed_us").parse::<u64>().is_ok());
        assert_eq!(e.span.get("span").map(String::as_str), Some("pandodb.open"));
        assert_eq!(e.span["dir"], dir.display().to_string());

        let info = db.checkpoint().unwrap();
        let checkpoints = capture.with_message("pandodb: checkpoint");
        assert_eq!(checkpoints.len(), 1);
        let c = &checkpoints[0];
        assert_eq!((c.field("revision"), c.field("rows")), ("3", "3"));
        assert_eq!(c.field("bytes"), info.bytes.to_string());
        put(&db, &items, "k3", 3);
        // Fast commits under the default threshold (100 ms) do not warn
        // (a loaded machine could make one slow: no assertion on that).
        drop(db);

        let (s, _, _, _) = schema();
        let db = Db::open(&dir, s, Options::default()).unwrap();
        let recovered = capture.with_message("pandodb: recovered");
        let e = recovered.last().unwrap();
        assert_eq!(e.field("snapshot_revision"), "3");
        assert_eq!(e.field("records"), "1");
        assert_eq!(e.field("revision"), "4");
        assert_eq!(db.revision(), 4);
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn slow_commits_warn_from_the_threshold_on() {
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || {
        let (s, items, _, other) = schema();
        let db = Db::with_options(s, Options::default().slow_commit(Duration::ZERO));
        put(&db, &items, "a", 1);
        let mut w = db.write(&[&items, &other]);
        for t in [&items, &other] {
            w.insert(
                t,
                Item {
                    name: "b".into(),
                    n: 2,
                },
            )
            .unwrap();
        }
        w.commit().unwrap();
        let slow = capture.with_message("pandodb: slow commit");
        assert_eq!(slow.len(), 2, "{:?}", capture.events());
        assert_eq!(slow[0].level, Level::WARN);
        assert_eq!(
            (slow[0].field("revision"), slow[0].field("tables")),
            ("1", "1")
        );
        assert_eq!(
            (slow[1].field("revision"), slow[1].field("tables")),
            ("2", "2")
        );
        assert_eq!(slow[1].field("threshold_us"), "0");
        assert!(slow[1].field("elapsed_us").parse::<u64>().is_ok());

        // No threshold: no event.
        let (s, items, _, _) = schema();
        let db = Db::with_options(s, Options::default().slow_commit(Duration::MAX));
        put(&db, &items, "a", 1);
        assert_eq!(capture.with_message("pandodb: slow commit").len(), 2);
    });
}
