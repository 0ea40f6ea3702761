//! A small key-value application shared by the tests: typed rows, a
//! secondary index, compare-and-swap, and an all-or-nothing batch.

#![allow(dead_code)]

pub mod cluster;

use std::io::Cursor;

use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership};
use pandodb::{Db, Error, Index, Indexer, Query, Schema, Table, WriteTxn};
use pandodb_openraft::{
    Applied, Apply, Dedup, Idempotent, MetaTable, PandoStateMachine, RequestId, register_dedup,
    register_meta,
};
use serde::{Deserialize, Serialize};

/// A row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kv {
    pub key: String,
    pub value: u64,
    pub tag: String,
}

/// A command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cmd {
    Put(Kv),
    Delete(String),
    /// Set the value if the row's modified revision is the one expected.
    Cas {
        key: String,
        expected: u64,
        value: u64,
    },
    /// Read-modify-write.
    Incr(String),
    /// Several puts, all or nothing (a put to a key named "!" fails).
    Batch(Vec<Kv>),
    /// Delete every row with this tag.
    DeleteTag(String),
    /// A command with a client request id (deduplicated by `Dedup`).
    Tagged {
        id: RequestId,
        cmd: Box<Cmd>,
    },
}

impl Idempotent for Cmd {
    fn request_id(&self) -> Option<RequestId> {
        match self {
            Cmd::Tagged { id, .. } => Some(*id),
            _ => None,
        }
    }
}

/// A response.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resp {
    #[default]
    None,
    Ok,
    Value(u64),
    Conflict(Option<u64>),
    Failed,
}

openraft::declare_raft_types!(
    pub Cfg:
        D = Cmd,
        R = Resp,
);

#[derive(Clone)]
pub struct KvApp {
    pub kv: Table<Kv>,
    pub by_key: Index<Kv, str>,
    pub by_tag: Index<Kv, str>,
}

impl Apply<Cfg> for KvApp {
    fn apply(&self, w: &mut WriteTxn, cmd: &Cmd) -> Applied<Resp> {
        let r = (|| -> pandodb::Result<Applied<Resp>> {
            Ok(match cmd {
                Cmd::Put(kv) => {
                    w.insert(&self.kv, kv.clone())?;
                    Applied::Commit(Resp::Ok)
                }
                Cmd::Delete(k) => {
                    w.delete_all(&self.by_key, k.as_str())?;
                    Applied::Commit(Resp::Ok)
                }
                Cmd::Cas {
                    key,
                    expected,
                    value,
                } => {
                    let Some(cur) = w.get(&self.by_key, key.as_str())? else {
                        return Ok(Applied::Commit(Resp::Conflict(None)));
                    };
                    let new = Kv {
                        value: *value,
                        ..(*cur).clone()
                    };
                    match w.update_if(&self.kv, new, *expected) {
                        Ok(_) => Applied::Commit(Resp::Ok),
                        Err(Error::Conflict { current, .. }) => {
                            Applied::Commit(Resp::Conflict(current))
                        }
                        Err(e) => return Err(e),
                    }
                }
                Cmd::Incr(k) => {
                    let v = w.get(&self.by_key, k.as_str())?.map_or(0, |r| r.value) + 1;
                    w.insert(
                        &self.kv,
                        Kv {
                            key: k.clone(),
                            value: v,
                            tag: "counter".into(),
                        },
                    )?;
                    Applied::Commit(Resp::Value(v))
                }
                Cmd::Batch(rows) => {
                    for kv in rows {
                        if kv.key == "!" {
                            return Ok(Applied::Rollback(Resp::Failed));
                        }
                        w.insert(&self.kv, kv.clone())?;
                    }
                    Applied::Commit(Resp::Ok)
                }
                Cmd::DeleteTag(t) => {
                    w.delete_all(&self.by_tag, t.as_str())?;
                    Applied::Commit(Resp::Ok)
                }
                Cmd::Tagged { cmd, .. } => self.apply(w, cmd),
            })
        })();
        r.unwrap_or(Applied::Rollback(Resp::Failed))
    }

    fn empty_response(&self) -> Resp {
        Resp::None
    }
}

pub type Sm = PandoStateMachine<Cfg, KvApp>;

/// The schema (the same on every replica), the meta table and the app.
pub fn schema() -> (Schema, MetaTable<Cfg>, KvApp) {
    let mut s = Schema::builder();
    let meta = register_meta::<Cfg>(&mut s).unwrap();
    let mut t = s.table::<Kv>("kv");
    let by_key = t.primary("key", Indexer::string(|r: &Kv| r.key.as_str()));
    let by_tag = t.index("tag", Indexer::string(|r: &Kv| r.tag.as_str()));
    t.serde();
    let kv = s.add(t).unwrap();
    (s.build().unwrap(), meta, KvApp { kv, by_key, by_tag })
}

/// The application with request deduplication.
pub type DedupApp = Dedup<Cfg, KvApp>;

/// The schema with the deduplication table too.
pub fn schema_dedup() -> (Schema, MetaTable<Cfg>, DedupApp) {
    let mut s = Schema::builder();
    let meta = register_meta::<Cfg>(&mut s).unwrap();
    let dedup = register_dedup::<Cfg>(&mut s).unwrap();
    let mut t = s.table::<Kv>("kv");
    let by_key = t.primary("key", Indexer::string(|r: &Kv| r.key.as_str()));
    let by_tag = t.index("tag", Indexer::string(|r: &Kv| r.tag.as_str()));
    t.serde();
    let kv = s.add(t).unwrap();
    let app = KvApp { kv, by_key, by_tag };
    (s.build().unwrap(), meta, Dedup::new(dedup, app))
}

/// A fresh replica.
pub fn fresh() -> Sm {
    let (s, meta, app) = schema();
    PandoStateMachine::new(Db::new(s), meta, app).unwrap()
}

/// A replica restored from snapshot bytes (the restart path).
pub fn restored(bytes: &[u8]) -> Sm {
    let (s, meta, app) = schema();
    PandoStateMachine::new(Db::restore_from(bytes, s).unwrap(), meta, app).unwrap()
}

/// The database's snapshot bytes.
pub fn snapshot_bytes(db: &Db) -> Vec<u8> {
    let mut v = Vec::new();
    db.snapshot_to(&mut v).unwrap();
    v
}

/// Snapshot bytes of a `Cursor`.
pub fn cursor_bytes(c: &Cursor<Vec<u8>>) -> Vec<u8> {
    c.get_ref().clone()
}

/// A small deterministic generator (splitmix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The seed: `PANDODB_SEED` or a fixed default.
pub fn seed() -> u64 {
    std::env::var("PANDODB_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x005e_ed0f_0af7)
}

/// A random log of `n` entries, indexes `0..n`, terms growing now and then.
pub fn random_log(rng: &mut Rng, n: u64) -> Vec<Entry<Cfg>> {
    let mut term = 1;
    let mut leader = 1;
    // The position (revision) of the last write to each key, so that some
    // compare-and-swaps expect the right revision.
    let mut last_write = std::collections::BTreeMap::<String, u64>::new();
    let tags = ["web", "db", "cache", "counter"];
    (0..n)
        .map(|index| {
            if rng.chance(1) {
                term += 1;
                leader = 1 + rng.below(3);
            }
            let log_id = LogId::new(CommittedLeaderId::new(term, leader), index);
            let key = format!("k{}", rng.below(40));
            let payload = match rng.below(100) {
                0..=4 => EntryPayload::Blank,
                5..=6 => {
                    let voters: std::collections::BTreeSet<u64> = (1..=3 + rng.below(3)).collect();
                    EntryPayload::Membership(Membership::new(vec![voters], ()))
                }
                7..=40 => {
                    last_write.insert(key.clone(), index + 1);
                    EntryPayload::Normal(Cmd::Put(Kv {
                        key,
                        value: rng.below(1000),
                        tag: tags[rng.below(4) as usize].to_string(),
                    }))
                }
                41..=50 => EntryPayload::Normal(Cmd::Delete(key)),
                51..=70 => {
                    let expected = match last_write.get(&key) {
                        Some(&r) if rng.chance(70) => r,
                        _ => rng.below(index + 2),
                    };
                    last_write.insert(key.clone(), index + 1);
                    EntryPayload::Normal(Cmd::Cas {
                        key,
                        expected,
                        value: rng.below(1000),
                    })
                }
                71..=85 => {
                    last_write.insert(key.clone(), index + 1);
                    EntryPayload::Normal(Cmd::Incr(key))
                }
                86..=97 => {
                    let rows = (0..1 + rng.below(4))
                        .map(|i| Kv {
                            key: if rng.chance(10) {
                                "!".into()
                            } else {
                                format!("b{}-{i}", rng.below(20))
                            },
                            value: rng.below(1000),
                            tag: tags[rng.below(4) as usize].to_string(),
                        })
                        .collect();
                    EntryPayload::Normal(Cmd::Batch(rows))
                }
                _ => EntryPayload::Normal(Cmd::DeleteTag(tags[rng.below(3) as usize].to_string())),
            };
            Entry { log_id, payload }
        })
        .collect()
}

/// A fresh directory under the system's temporary directory, removed when
/// dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "pandodb-raft-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A current-thread runtime to drive the async storage API.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
