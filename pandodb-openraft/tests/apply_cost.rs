//! What applying costs in each durability mode of the state machine's
//! database: 1,000 entries applied one `apply` call each (as openraft does
//! when entries commit one by one), timed and printed. With a durable Raft
//! log the database need not sync: `docs/RAFT.md` quotes these figures
//! (`cargo test --release -p pandodb-openraft --test apply_cost -- --nocapture`).

mod common;

use std::time::Instant;

use common::cluster::{MODES, open_db};
use common::{Cfg, Cmd, Kv, TempDir, runtime, schema_dedup};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use pandodb_openraft::PandoStateMachine;

#[test]
fn apply_1000_entries_in_each_durability_mode() {
    let rt = runtime();
    for mode in MODES {
        let tmp = TempDir::new("apply-cost");
        let (s, meta, app) = schema_dedup();
        let db = open_db(&tmp.0, mode, s);
        let mut sm = PandoStateMachine::<Cfg, _>::new(db, meta, app).unwrap();
        let t0 = Instant::now();
        for i in 0..1000u64 {
            let e = Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), i),
                payload: EntryPayload::Normal(Cmd::Put(Kv {
                    key: format!("k{i}"),
                    value: i,
                    tag: "t".into(),
                })),
            };
            rt.block_on(sm.apply([e])).unwrap();
        }
        let took = t0.elapsed();
        assert_eq!(sm.db().revision(), 1000);
        eprintln!(
            "apply, {mode:?}: 1,000 entries one by one in {:.1} ms ({:.1} us/entry)",
            took.as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e6 / 1000.0
        );
    }
}
