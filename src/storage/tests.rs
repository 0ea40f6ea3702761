//! Tests of the storage layer: log and snapshot round trips, torn tails,
//! corruption sweeps, simulated power loss at every operation and injected
//! I/O faults. Random choices come from `PANDODB_SEED` (printed on failure).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::fs::{CrashMode, SimFs, StdFs, Vfs, XorShift};
use super::log::{LogWriter, RECORD_HEADER_LEN, Records, recover_all, segment_name};
use super::snapfile::{
    BLOCK_SIZE, SnapshotReader, SnapshotWriter, open_snapshot_file, remove_temp_files,
    write_snapshot_file,
};
use crate::Error;

/// The test seed; printed if the test panics.
struct Seed(u64);

impl Drop for Seed {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("rerun with PANDODB_SEED={}", self.0);
        }
    }
}

fn seed() -> Seed {
    let s = match std::env::var("PANDODB_SEED") {
        Ok(v) => v.parse().expect("PANDODB_SEED must be a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    };
    Seed(s)
}

fn modes(seed: u64) -> [CrashMode; 4] {
    [
        CrashMode::KeepAll,
        CrashMode::DropAll,
        CrashMode::KeepPrefix(seed),
        CrashMode::Garble(seed),
    ]
}

/// The payload of revision `rev` (deterministic, 0 to `max - 1` bytes).
fn payload(rev: u64, max: u64) -> Vec<u8> {
    let mut r = XorShift::new(rev);
    let len = r.below(max);
    (0..len).map(|_| r.next_u64() as u8).collect()
}

fn dir() -> PathBuf {
    PathBuf::from("/db/log")
}

fn sim() -> SimFs {
    let fs = SimFs::new();
    fs.create_dir_all(&dir()).unwrap();
    fs
}

fn vfs(fs: &SimFs) -> Arc<dyn Vfs> {
    Arc::new(fs.clone())
}

fn recover(fs: &SimFs) -> Result<(Records, LogWriter), Error> {
    recover_all(vfs(fs), &dir()).map(|(r, w, _)| (r, w))
}

// ---------------------------------------------------------------------------
// Log

#[derive(Default)]
struct Model {
    appended: Records,
    /// The last revision whose sync returned Ok.
    acked: Option<u64>,
    /// The largest revision passed to `remove_segments_below`.
    floor: u64,
}

/// Recover, then append/sync/rotate/remove in a pattern fixed by `seed`;
/// stops at the first error. The writer is left in `writer`.
fn workload(
    fs: &SimFs,
    seed: u64,
    steps: usize,
    model: &mut Model,
    writer: &mut Option<LogWriter>,
) -> Result<(), Error> {
    let mut rng = XorShift::new(seed);
    let (recs, w) = recover(fs)?;
    let w = writer.insert(w);
    let mut rev = recs.last().map_or(0, |r| r.0);
    for _ in 0..steps {
        for _ in 0..1 + rng.below(3) {
            rev += 1;
            let p = payload(rev, 24);
            w.append(rev, &p)?;
            model.appended.push((rev, p));
        }
        w.sync()?;
        model.acked = Some(rev);
        match rng.below(5) {
            0 => w.rotate()?,
            1 => {
                let below = rev.saturating_sub(rng.below(5));
                model.floor = model.floor.max(below);
                w.remove_segments_below(below)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Recovered records are a contiguous run of what was appended, holding at
/// least every acknowledged revision not below the removal floor.
fn check_recovered(recs: &Records, model: &Model) {
    for (i, (rev, p)) in recs.iter().enumerate() {
        assert!(
            *rev >= 1 && *rev as usize <= model.appended.len(),
            "rev {rev}"
        );
        assert_eq!(&model.appended[*rev as usize - 1].1, p, "payload of {rev}");
        if i > 0 {
            assert_eq!(recs[i - 1].0 + 1, *rev, "gap in recovered revisions");
        }
    }
    if let Some(acked) = model.acked {
        let need = model.floor.max(1);
        let (first, last) = match (recs.first(), recs.last()) {
            (Some(f), Some(l)) => (f.0, l.0),
            _ => panic!("acknowledged revision {acked} lost: nothing recovered"),
        };
        assert!(
            last >= acked,
            "acknowledged {acked}, recovered up to {last}"
        );
        assert!(
            first <= need,
            "revisions from {need} needed, first is {first}"
        );
    }
}

/// After recovery the log takes new records, and they survive.
fn check_writable(fs: &SimFs, recs: &Records, mut w: LogWriter) {
    let next = recs.last().map_or(1, |r| r.0 + 1);
    w.append(next, b"after").unwrap();
    w.sync().unwrap();
    drop(w);
    fs.crash(CrashMode::DropAll);
    let (again, _) = recover(fs).unwrap();
    assert_eq!(&again[..again.len() - 1], &recs[..]);
    assert_eq!(again.last().unwrap(), &(next, b"after".to_vec()));
}

#[test]
fn log_round_trip_sim_and_std() {
    let fs = sim();
    let (recs, mut w) = recover(&fs).unwrap();
    assert!(recs.is_empty());
    let mut want = Vec::new();
    for rev in 1..=40u64 {
        let p = payload(rev, 300);
        w.append(rev, &p).unwrap();
        want.push((rev, p));
        if rev % 3 == 0 {
            w.sync().unwrap();
        }
        if rev % 10 == 0 {
            w.rotate().unwrap();
        }
    }
    w.sync().unwrap();
    assert_eq!(w.segments(), &[1, 11, 21, 31]);
    assert_eq!(w.synced_rev(), Some(40));
    drop(w);
    let (recs, mut w) = recover(&fs).unwrap();
    assert_eq!(recs, want);
    assert_eq!(w.remove_segments_below(25).unwrap(), 2);
    assert_eq!(w.segments(), &[21, 31]);
    drop(w);
    let (recs, w) = recover(&fs).unwrap();
    assert_eq!(recs, want[20..]);
    check_writable(&fs, &recs, w);

    let tmp = std::env::temp_dir().join(format!("pandodb-log-{}", std::process::id()));
    let std: Arc<dyn Vfs> = Arc::new(StdFs);
    let (recs, mut w, _) = recover_all(std.clone(), &tmp).unwrap();
    assert!(recs.is_empty());
    for (rev, p) in &want {
        w.append(*rev, p).unwrap();
        if rev % 7 == 0 {
            w.sync().unwrap();
        }
        if rev % 16 == 0 {
            w.rotate().unwrap();
        }
    }
    w.sync().unwrap();
    drop(w);
    let (recs, _, found) = recover_all(std, &tmp).unwrap();
    assert_eq!(recs, want);
    assert_eq!(found.last_rev, Some(40));
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn log_oversized_payload_is_refused_without_stopping() {
    let fs = sim();
    let (_, mut w) = recover(&fs).unwrap();
    let big = vec![0u8; super::MAX_RECORD + 1];
    assert!(matches!(w.append(1, &big), Err(Error::Codec(_))));
    w.append(1, b"ok").unwrap();
    w.sync().unwrap();
    assert_eq!(recover(&fs).unwrap().0, vec![(1, b"ok".to_vec())]);
}

#[test]
fn log_torn_tail_every_cut() {
    let s = seed();
    let mut rng = XorShift::new(s.0);
    let fs = sim();
    let (_, mut w) = recover(&fs).unwrap();
    let mut want = Vec::new();
    for rev in 1..=6u64 {
        let p = payload(rev, 60);
        w.append(rev, &p).unwrap();
        want.push((rev, p));
        if rev == 3 {
            w.rotate().unwrap();
        }
    }
    w.sync().unwrap();
    drop(w);
    let last = dir().join(segment_name(4));
    let full = fs.contents(&last).unwrap();
    let last_start = full.len() - RECORD_HEADER_LEN - want[5].1.len();
    let header_end = super::log::SEGMENT_HEADER_LEN;
    for cut in 0..full.len() {
        for garble in [false, true] {
            let f = fs.fork();
            let mut bytes = full[..cut].to_vec();
            if garble {
                for _ in 0..rng.below(100) {
                    bytes.push(rng.next_u64() as u8);
                }
                // Garbage that happens to repeat the byte it replaces
                // (1 in 256) would rebuild the cut record rather than tear
                // it: make the first garbage byte differ from the original.
                if let (Some(g), Some(&orig)) = (bytes.get_mut(cut), full.get(cut))
                    && *g == orig
                {
                    *g = orig ^ 0xff;
                }
            }
            f.overwrite(&last, bytes);
            let (recs, w) = match recover(&f) {
                Ok(r) => r,
                Err(e) if cut > header_end && cut < last_start => {
                    // Cutting inside an earlier record of the last segment
                    // is a torn tail too; garbage can never be "valid".
                    panic!("cut {cut} garble {garble}: {e}")
                }
                Err(e) => panic!("cut {cut} garble {garble}: {e}"),
            };
            let kept = if cut >= last_start {
                5
            } else if cut < header_end + RECORD_HEADER_LEN + want[3].1.len() {
                3
            } else if cut < header_end + 2 * RECORD_HEADER_LEN + want[3].1.len() + want[4].1.len() {
                4
            } else {
                5
            };
            assert_eq!(recs, want[..kept], "cut {cut} garble {garble}");
            if kept == 3 {
                assert!(!f.exists(&last).unwrap(), "empty last segment removed");
            } else {
                let len = f.contents(&last).unwrap().len();
                assert!(len <= cut.max(last_start), "cut back to a record end");
            }
            check_writable(&f, &recs, w);
        }
    }
}

/// Every mutation of one log file: an error naming a plausible offset, or
/// a prefix of the records. Damage to a non-last segment is always an error.
#[test]
fn log_corruption_sweep() {
    let fs = sim();
    let (_, mut w) = recover(&fs).unwrap();
    let mut want = Vec::new();
    for rev in 1..=10u64 {
        let p = payload(rev, 250);
        w.append(rev, &p).unwrap();
        want.push((rev, p));
        w.sync().unwrap();
        if rev == 5 {
            w.rotate().unwrap();
        }
    }
    drop(w);
    let files = [dir().join(segment_name(1)), dir().join(segment_name(6))];
    let mut cases = 0;
    for (fi, path) in files.iter().enumerate() {
        let orig = fs.contents(path).unwrap();
        let mut mutations: Vec<Vec<u8>> = Vec::new();
        for bit in 0..orig.len() * 8 {
            let mut m = orig.clone();
            m[bit / 8] ^= 1 << (bit % 8);
            mutations.push(m);
        }
        for cut in 0..orig.len() {
            mutations.push(orig[..cut].to_vec());
        }
        for sector in (0..orig.len()).step_by(512) {
            let mut m = orig.clone();
            let end = (sector + 512).min(m.len());
            m[sector..end].fill(0);
            mutations.push(m);
        }
        // Swap adjacent records.
        let mut bounds = vec![super::log::SEGMENT_HEADER_LEN];
        for (_, p) in &want[fi * 5..fi * 5 + 5] {
            bounds.push(bounds.last().unwrap() + RECORD_HEADER_LEN + p.len());
        }
        for i in 0..4 {
            let (a, b, c) = (bounds[i], bounds[i + 1], bounds[i + 2]);
            let mut m = orig[..a].to_vec();
            m.extend_from_slice(&orig[b..c]);
            m.extend_from_slice(&orig[a..b]);
            m.extend_from_slice(&orig[c..]);
            mutations.push(m);
        }
        for m in mutations {
            if m == orig {
                continue;
            }
            cases += 1;
            let f = fs.fork();
            f.overwrite(path, m.clone());
            match recover(&f) {
                Ok((recs, _)) => {
                    assert_eq!(fi, 1, "damage to a non-last segment must be an error");
                    assert!(recs.len() < want.len(), "damage must lose data");
                    assert_eq!(recs, want[..recs.len()], "never different data");
                }
                Err(Error::Corrupt { offset, .. }) => {
                    assert!(offset <= orig.len() as u64);
                }
                Err(e) => panic!("unexpected error {e}"),
            }
        }
    }
    assert!(cases > 10_000, "{cases}");
}

fn crash_and_check(fs: &SimFs, mode: CrashMode, model: &Model, second_crashes: bool) {
    fs.crash(mode);
    let before = fs.fork();
    let start = fs.op_count();
    let (recs, w) = recover(fs).unwrap_or_else(|e| panic!("recovery after {mode:?}: {e}"));
    let recovery_ops = fs.op_count() - start;
    check_recovered(&recs, model);
    if second_crashes {
        for j in 0..recovery_ops {
            for mode2 in [CrashMode::KeepAll, CrashMode::DropAll, CrashMode::Garble(j)] {
                let f = before.fork();
                f.fail_at(f.op_count() + j, true);
                assert!(recover(&f).is_err());
                f.crash(mode2);
                let (again, _) = recover(&f).unwrap();
                assert_eq!(again, recs, "recovery is idempotent (op {j}, {mode2:?})");
            }
        }
    }
    check_writable(fs, &recs, w);
}

/// Crash (every crash mode) at every operation of four append / sync /
/// rotate / remove workloads, and again at every operation of the recovery
/// that follows.
#[test]
fn log_crash_at_every_op() {
    let s = seed();
    let steps = 40;
    for k in 0..4 {
        let wseed = s.0.wrapping_add(k);
        let fs = sim();
        let base = fs.op_count();
        workload(&fs, wseed, steps, &mut Model::default(), &mut None).unwrap();
        let total = fs.op_count() - base;
        assert!(total > 80, "{total}");
        for i in 0..=total {
            for mode in modes(wseed ^ i) {
                let fs = sim();
                fs.fail_at(fs.op_count() + i, true);
                let mut model = Model::default();
                let r = workload(&fs, wseed, steps, &mut model, &mut None);
                assert_eq!(r.is_err(), i < total, "op {i}");
                crash_and_check(&fs, mode, &model, true);
            }
        }
    }
}

/// Fail every operation of two workloads, once or forever: the failing
/// call errs, the writer refuses everything after, and reopening (with or
/// without a power loss) recovers every acknowledged record.
#[test]
fn log_fail_every_op_once_and_forever() {
    let s = seed();
    let steps = 40;
    for (wseed, i, forever) in (0..2).flat_map(|k| {
        let wseed = s.0.wrapping_add(k);
        let fs = sim();
        let base = fs.op_count();
        workload(&fs, wseed, steps, &mut Model::default(), &mut None).unwrap();
        let total = fs.op_count() - base;
        (0..total).flat_map(move |i| [(wseed, i, false), (wseed, i, true)])
    }) {
        {
            let fs = sim();
            fs.fail_at(fs.op_count() + i, forever);
            let mut model = Model::default();
            let mut writer = None;
            let r = workload(&fs, wseed, steps, &mut model, &mut writer);
            assert!(matches!(r, Err(Error::Io { .. })), "op {i}: {r:?}");
            if let Some(mut w) = writer {
                assert!(w.is_stopped());
                let next = model.appended.len() as u64 + 1;
                assert!(matches!(w.append(next, b"x"), Err(Error::WritesStopped(_))));
                assert!(matches!(w.sync(), Err(Error::WritesStopped(_))));
                assert!(matches!(w.rotate(), Err(Error::WritesStopped(_))));
                assert!(matches!(
                    w.remove_segments_below(next),
                    Err(Error::WritesStopped(_))
                ));
            }
            fs.clear_faults();
            // Reopen without a power loss, then after one.
            let (recs, _) = recover(&fs).unwrap();
            check_recovered(&recs, &model);
            crash_and_check(&fs, CrashMode::DropAll, &model, false);
        }
    }
}

#[test]
fn log_disk_full() {
    let s = seed();
    let fs = sim();
    workload(&fs, s.0, 30, &mut Model::default(), &mut None).unwrap();
    let used: usize = fs
        .list_dir(&dir())
        .unwrap()
        .iter()
        .map(|n| fs.contents(&dir().join(n)).unwrap().len())
        .sum();
    for limit in (0..used as u64).step_by(13) {
        let fs = sim();
        fs.set_space_limit(Some(limit));
        let mut model = Model::default();
        let mut writer = None;
        match workload(&fs, s.0, 30, &mut model, &mut writer) {
            Err(Error::Io { kind, .. }) => assert_eq!(kind, std::io::ErrorKind::StorageFull),
            Ok(()) => {} // removals can keep a small log within the limit
            Err(e) => panic!("{e}"),
        }
        if let Some(mut w) = writer
            && w.is_stopped()
        {
            assert!(matches!(w.sync(), Err(Error::WritesStopped(_))));
        }
        fs.set_space_limit(None);
        crash_and_check(&fs, CrashMode::KeepPrefix(limit), &model, false);
    }
}

// ---------------------------------------------------------------------------
// Snapshots

fn snapshot_bytes(header: &[u8], records: &[Vec<u8>], block: Option<usize>) -> Vec<u8> {
    let mut w = match block {
        Some(b) => SnapshotWriter::with_block_size(Vec::new(), header, b).unwrap(),
        None => SnapshotWriter::new(Vec::new(), header).unwrap(),
    };
    for r in records {
        w.write_record(r).unwrap();
    }
    assert_eq!(w.records(), records.len() as u64);
    w.finish().unwrap()
}

/// Reads every record: the records read, and the error that ended it.
fn read_all(bytes: &[u8]) -> (Option<Vec<u8>>, Vec<Vec<u8>>, Option<Error>) {
    let mut r = match SnapshotReader::open(bytes, "snap") {
        Ok(r) => r,
        Err(e) => return (None, Vec::new(), Some(e)),
    };
    let header = r.header().to_vec();
    let mut out = Vec::new();
    loop {
        match r.next_record() {
            Ok(Some(rec)) => out.push(rec.to_vec()),
            Ok(None) => {
                assert!(matches!(r.next_record(), Ok(None)));
                return (Some(header), out, None);
            }
            Err(e) => {
                assert_eq!(r.next_record().unwrap_err(), e, "errors are sticky");
                return (Some(header), out, Some(e));
            }
        }
    }
}

#[test]
fn snapshot_round_trip() {
    let sizes = [
        0,
        1,
        5,
        BLOCK_SIZE - 4,
        BLOCK_SIZE,
        3 * BLOCK_SIZE + 7,
        2,
        0,
    ];
    let records: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| payload(i as u64 * 1000 + 7, n as u64 + 1))
        .map(|mut p| {
            p.resize(p.len().max(1) - 1, 3);
            p
        })
        .collect();
    for block in [None, Some(1), Some(7)] {
        let bytes = snapshot_bytes(b"hdr", &records, block);
        let (h, got, err) = read_all(&bytes);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(h.unwrap(), b"hdr");
        assert_eq!(got, records);
    }
    let empty = snapshot_bytes(b"", &[], None);
    assert_eq!(read_all(&empty), (Some(Vec::new()), Vec::new(), None));

    // Through the file helpers, on both file systems.
    let tmp = std::env::temp_dir().join(format!("pandodb-snap-{}", std::process::id()));
    let sim = SimFs::new();
    sim.create_dir_all(Path::new("/s")).unwrap();
    for (vfs, d) in [(&StdFs as &dyn Vfs, tmp.as_path()), (&sim, Path::new("/s"))] {
        vfs.create_dir_all(d).unwrap();
        let info = write_snapshot_file(vfs, d, "snap", b"h", |w| {
            records.iter().try_for_each(|r| w.write_record(r))
        })
        .unwrap();
        assert_eq!(info.records, records.len() as u64);
        let mut r = open_snapshot_file(vfs, &d.join("snap")).unwrap();
        assert_eq!(r.header(), b"h");
        for want in &records {
            assert_eq!(r.next_record().unwrap().unwrap(), &want[..]);
        }
        assert!(r.next_record().unwrap().is_none());
        assert_eq!(vfs.list_dir(d).unwrap(), vec!["snap".to_string()]);
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn snapshot_newer_version_is_refused() {
    let mut bytes = snapshot_bytes(b"h", &[b"r".to_vec()], None);
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    let c = crc32c::crc32c(&bytes[..12]);
    bytes[12..16].copy_from_slice(&c.to_le_bytes());
    match SnapshotReader::open(&bytes[..], "snap") {
        Err(Error::UnsupportedVersion {
            found, supported, ..
        }) => assert_eq!((found, supported), (2, 1)),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("accepted"),
    }
}

/// Every mutation of a small many-block snapshot is an error at or before
/// the damaged byte, after a prefix of the original records.
#[test]
fn snapshot_corruption_sweep() {
    let records: Vec<Vec<u8>> = (0..60).map(|i| payload(i, 40)).collect();
    let block = 64;
    let orig = snapshot_bytes(b"header!", &records, Some(block));
    assert!(orig.len() > 1500, "{}", orig.len());
    // (mutated bytes, first damaged offset)
    let mut mutations: Vec<(Vec<u8>, usize)> = Vec::new();
    for bit in 0..orig.len() * 8 {
        let mut m = orig.clone();
        m[bit / 8] ^= 1 << (bit % 8);
        mutations.push((m, bit / 8));
    }
    for cut in 0..orig.len() {
        mutations.push((orig[..cut].to_vec(), cut));
    }
    let mut extra = orig.clone();
    extra.push(0);
    mutations.push((extra, orig.len()));
    for sector in (0..orig.len()).step_by(512) {
        let mut m = orig.clone();
        let end = (sector + 512).min(m.len());
        m[sector..end].fill(0);
        mutations.push((m, sector));
    }
    let first_block = 24 + b"header!".len();
    let stride = 8 + block;
    for i in 0..8 {
        let a = first_block + i * stride;
        let mut m = orig.clone();
        m[a..a + stride].copy_from_slice(&orig[a + stride..a + 2 * stride]);
        m[a + stride..a + 2 * stride].copy_from_slice(&orig[a..a + stride]);
        mutations.push((m, a));
    }
    for (m, damaged) in mutations {
        if m == orig {
            continue;
        }
        let (_, got, err) = read_all(&m);
        assert_eq!(got, records[..got.len()], "never different data");
        match err {
            Some(Error::Corrupt { offset, file, .. }) => {
                assert_eq!(file, "snap");
                assert!(offset as usize <= damaged, "{offset} > {damaged}");
            }
            Some(e) => panic!("unexpected {e}"),
            None => panic!("damage at {damaged} not detected"),
        }
    }
}

#[test]
fn snapshot_file_is_atomic_under_crashes() {
    let s = seed();
    let d = Path::new("/snaps");
    let old: Vec<Vec<u8>> = (0..50).map(|i| payload(i, 100)).collect();
    let new: Vec<Vec<u8>> = (100..400).map(|i| payload(i, 1000)).collect();
    let write = |fs: &SimFs, recs: &[Vec<u8>]| {
        write_snapshot_file(fs, d, "snap", b"h", |w| {
            recs.iter().try_for_each(|r| w.write_record(r))
        })
    };
    let read = |fs: &SimFs| -> Vec<Vec<u8>> {
        let mut r = open_snapshot_file(fs, &d.join("snap")).unwrap();
        let mut out = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            out.push(rec.to_vec());
        }
        out
    };
    let base = SimFs::new();
    base.create_dir_all(d).unwrap();
    write(&base, &old).unwrap();
    let dry = base.fork();
    let start = dry.op_count();
    write(&dry, &new).unwrap();
    let total = dry.op_count() - start;
    for i in 0..=total {
        for mode in modes(s.0 ^ i) {
            let fs = base.fork();
            fs.fail_at(fs.op_count() + i, true);
            let ok = write(&fs, &new).is_ok();
            assert_eq!(ok, i >= total, "op {i}");
            fs.crash(mode);
            let got = read(&fs);
            if ok {
                assert!(got == new, "a written snapshot is durable");
            } else {
                assert!(
                    got == old || got == new,
                    "old or new, whole (op {i}, {mode:?})"
                );
            }
            remove_temp_files(&fs, d).unwrap();
            assert_eq!(fs.list_dir(d).unwrap(), vec!["snap".to_string()]);
        }
    }
}

#[test]
fn log_reports_versions_cuts_and_removed_prefix() {
    let fs = sim();
    let (_, mut w) = recover(&fs).unwrap();
    for rev in 1..=6u64 {
        w.append(rev, &payload(rev, 30)).unwrap();
        if rev % 2 == 0 {
            w.rotate().unwrap();
        }
    }
    assert_eq!(w.remove_segments_below(3).unwrap(), 1);
    drop(w);
    let (recs, _, found) = recover_all(vfs(&fs), &dir()).unwrap();
    assert_eq!(recs.first().map(|r| r.0), Some(3));
    assert_eq!(found.first_prev, Some(2), "records up to 2 were removed");
    assert_eq!(
        (found.last_rev, found.records, found.cut),
        (Some(6), 4, None)
    );

    // A torn tail is reported.
    let last = dir().join(segment_name(5));
    let full = fs.contents(&last).unwrap();
    fs.overwrite(&last, full[..full.len() - 1].to_vec());
    let (_, _, found) = recover_all(vfs(&fs), &dir()).unwrap();
    let (file, new_len, old_len) = found.cut.unwrap();
    assert_eq!(file, last.display().to_string());
    assert_eq!(old_len, full.len() as u64 - 1);
    assert!(new_len < old_len);
    assert_eq!(found.last_rev, Some(5));

    // A newer format version (with a valid header checksum) is refused.
    let seg = dir().join(segment_name(3));
    let mut bytes = fs.contents(&seg).unwrap();
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    let c = crc32c::crc32c(&bytes[..20]);
    bytes[20..24].copy_from_slice(&c.to_le_bytes());
    fs.overwrite(&seg, bytes);
    match recover(&fs) {
        Err(Error::UnsupportedVersion {
            found, supported, ..
        }) => assert_eq!((found, supported), (2, 1)),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("accepted a newer version"),
    }
}
