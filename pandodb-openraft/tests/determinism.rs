//! G10: the same log applied to fresh replicas gives byte-identical
//! snapshots, however it is batched; re-applying an index at or below the
//! last applied one is a no-op; installing (or restoring) a snapshot
//! discards all earlier state.
//!
//! `PANDODB_RAFT_LOGS` logs (100 by default, 10,000 for tier 2) of
//! `PANDODB_RAFT_ENTRIES` entries (1,000) each, from `PANDODB_SEED`.

mod common;

use std::io::Cursor;

use common::{Cfg, Resp, Rng, Sm, cursor_bytes, fresh, random_log, restored, runtime, seed};
use openraft::storage::RaftStateMachine;
use openraft::{Entry, RaftSnapshotBuilder};
use pandodb::Query;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Applies `log` in random batches; with `overlap`, every batch after the
/// first also starts up to 5 entries before the end of the previous one
/// (those must be skipped).
async fn apply_batched(sm: &mut Sm, log: &[Entry<Cfg>], rng: &mut Rng, overlap: bool) -> Vec<Resp> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < log.len() {
        let end = (at + 1 + rng.below(40) as usize).min(log.len());
        let start = if overlap {
            at.saturating_sub(rng.below(6) as usize)
        } else {
            at
        };
        let resp = sm.apply(log[start..end].to_vec()).await.unwrap();
        assert_eq!(resp.len(), end - start);
        out.extend_from_slice(&resp[at - start..]);
        at = end;
    }
    out
}

async fn build(sm: &mut Sm) -> openraft::Snapshot<Cfg> {
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap()
}

async fn one_log(case: u64, log_seed: u64, entries: u64) -> (usize, usize) {
    let mut rng = Rng(log_seed);
    let log = random_log(&mut rng, entries);
    let n = log.len();
    let k = 1 + rng.below(n as u64 - 1) as usize;

    // Replica A: the first k entries, a snapshot, then the rest.
    let mut a = fresh();
    let mut resp_a = apply_batched(&mut a, &log[..k], &mut rng, false).await;
    let mid = build(&mut a).await;
    assert_eq!(mid.meta.last_log_id, Some(log[k - 1].log_id), "case {case}");
    assert_eq!(
        a.db().revision(),
        k as u64,
        "case {case}: one revision per entry"
    );
    resp_a.extend(apply_batched(&mut a, &log[k..], &mut rng, false).await);
    let fin = build(&mut a).await;
    let want = cursor_bytes(&fin.snapshot);

    // Replica B: the whole log in other batches, overlapping (re-applied
    // entries are skipped).
    let mut b = fresh();
    let resp_b = apply_batched(&mut b, &log, &mut rng, true).await;
    assert_eq!(resp_a, resp_b, "case {case}: responses differ");
    assert_eq!(
        cursor_bytes(&build(&mut b).await.snapshot),
        want,
        "case {case}: A and B differ"
    );

    // Re-applying any old entries again changes nothing.
    let from = rng.below(n as u64) as usize;
    let old = log[from..(from + 1 + rng.below(50) as usize).min(n)].to_vec();
    let before = b.db().revision();
    let resp = b.apply(old).await.unwrap();
    assert!(resp.iter().all(|r| *r == Resp::None), "case {case}");
    assert_eq!(
        b.db().revision(),
        before,
        "case {case}: a re-applied entry committed"
    );
    assert_eq!(
        cursor_bytes(&build(&mut b).await.snapshot),
        want,
        "case {case}: re-apply changed B"
    );

    // Replica C: another log's state, then A's snapshot at k, then the rest.
    let mut c = fresh();
    let mut junk_rng = Rng(log_seed ^ 0xdead_beef);
    let junk = random_log(&mut junk_rng, rng.below(k as u64));
    apply_batched(&mut c, &junk, &mut rng, false).await;
    let mut recv = c.begin_receiving_snapshot().await.unwrap();
    *recv = Cursor::new(cursor_bytes(&mid.snapshot));
    c.install_snapshot(&mid.meta, recv).await.unwrap();
    assert_eq!(
        c.applied_state().await.unwrap().0,
        mid.meta.last_log_id,
        "case {case}"
    );
    assert_eq!(
        cursor_bytes(&c.get_current_snapshot().await.unwrap().unwrap().snapshot),
        cursor_bytes(&mid.snapshot),
        "case {case}: the installed snapshot is not served"
    );
    apply_batched(&mut c, &log[k..], &mut rng, true).await;
    assert_eq!(
        cursor_bytes(&build(&mut c).await.snapshot),
        want,
        "case {case}: C kept earlier state"
    );

    // Replica D: restarted from A's snapshot at k (Db::restore_from).
    let mut d = restored(&cursor_bytes(&mid.snapshot));
    assert_eq!(
        d.applied_state().await.unwrap(),
        (mid.meta.last_log_id, mid.meta.last_membership.clone())
    );
    apply_batched(&mut d, &log, &mut rng, false).await;
    assert_eq!(
        cursor_bytes(&build(&mut d).await.snapshot),
        want,
        "case {case}: D differs"
    );

    let ok = resp_a.iter().filter(|r| **r == Resp::Ok).count();
    let conflicts = resp_a
        .iter()
        .filter(|r| matches!(r, Resp::Conflict(_) | Resp::Failed))
        .count();
    let rows = a.db().read().len(&a.app().kv).unwrap();
    assert!(rows > 0);
    (ok, conflicts)
}

#[test]
fn same_log_same_bytes_reapply_noop_snapshot_discards() {
    let logs = env("PANDODB_RAFT_LOGS", 100);
    let entries = env("PANDODB_RAFT_ENTRIES", 1000);
    let base = seed();
    let rt = runtime();
    let started = std::time::Instant::now();
    let (mut ok, mut conflicts) = (0, 0);
    for case in 0..logs {
        let log_seed = base.wrapping_add(case.wrapping_mul(0x1000_0000_01b3));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(one_log(case, log_seed, entries))
        }));
        match r {
            Ok((o, c)) => {
                ok += o;
                conflicts += c;
            }
            Err(e) => {
                eprintln!(
                    "failed: case {case}, replay with PANDODB_SEED={base} (log seed {log_seed})"
                );
                std::panic::resume_unwind(e);
            }
        }
    }
    // Both outcomes of compare-and-swap and batches happened.
    assert!(ok > 0 && conflicts > 0, "ok {ok}, conflicts {conflicts}");
    eprintln!(
        "determinism: {logs} logs x {entries} entries, seed {base}: 0 differences in {:.1?}",
        started.elapsed()
    );
}
