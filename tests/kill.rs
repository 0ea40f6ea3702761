//! G5 under real process death: this test re-spawns its own binary as a
//! child that opens a durable database and commits synchronously as fast as
//! it can, printing each acknowledged revision; the parent SIGKILLs it at
//! random moments, reopens the directory and checks that every acknowledged
//! revision is there (and nothing half-done is). Then the next child goes
//! on from the recovered state.
//!
//! Tier 1: 100 kills. Tier 2: `PANDODB_KILLS=2000 cargo test --release --test kill`.
//! The random moments come from `PANDODB_SEED` (printed on failure).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use pandodb::{Db, Index, Indexer, Options, Query, Schema, Table};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Entry {
    seq: u64,
    /// Written in the same transaction as `seq` into the second table.
    pair: u64,
}

fn schema() -> (Schema, Table<Entry>, Table<Entry>, Index<Entry, u64>) {
    let mut s = Schema::builder();
    let mut a = s.table::<Entry>("a");
    let by_seq = a.primary("seq", Indexer::value(|e: &Entry| e.seq));
    a.serde();
    let a = s.add(a).unwrap();
    let mut b = s.table::<Entry>("b");
    b.primary("seq", Indexer::value(|e: &Entry| e.seq));
    b.index("pair", Indexer::value(|e: &Entry| e.pair));
    b.serde();
    let b = s.add(b).unwrap();
    (s.build().unwrap(), a, b, by_seq)
}

fn open(dir: &Path) -> (Db, Table<Entry>, Table<Entry>, Index<Entry, u64>) {
    let (s, a, b, by_seq) = schema();
    // Small checkpoints, so kills also land inside checkpoints.
    let db = Db::open(dir, s, Options::default().checkpoint_bytes(16 << 10)).unwrap();
    (db, a, b, by_seq)
}

/// The child: commits forever, one acknowledged revision per line.
#[test]
#[ignore = "the child process of `every_acknowledged_commit_survives_sigkill`"]
fn kill_child() {
    let Some(dir) = std::env::var_os("PANDODB_KILL_DIR") else {
        return;
    };
    let (db, a, b, _) = open(Path::new(&dir));
    let mut seq = db.revision();
    println!("ready {seq}");
    loop {
        seq += 1;
        let mut w = db.write(&[&a, &b]);
        w.insert(&a, Entry { seq, pair: seq }).unwrap();
        w.insert(&b, Entry { seq, pair: seq }).unwrap();
        let rev = w.commit().unwrap().revision;
        assert_eq!(rev, seq);
        println!("{rev}");
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn every_acknowledged_commit_survives_sigkill() {
    let kills: usize = std::env::var("PANDODB_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let seed: u64 = std::env::var("PANDODB_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let dir: PathBuf =
        std::env::temp_dir().join(format!("pandodb-kill-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng(seed | 1);
    let mut acked_max = 0;
    for k in 0..kills {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "kill_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PANDODB_KILL_DIR", &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acked = Vec::new();
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Ok(rev) = line.trim().parse::<u64>() {
                    acked.push(rev);
                }
            }
            acked
        });
        // Let it run a random while (sometimes before it is even open).
        std::thread::sleep(Duration::from_micros(rng.next() % 40_000));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acked = reader.join().unwrap();
        if let Some(&last) = acked.last() {
            acked_max = acked_max.max(last);
        }
        let (db, _, b, by_seq) = open(&dir);
        let r = db.read();
        let rev = r.revision();
        assert!(
            rev >= acked_max,
            "kill {k} (seed {seed}): reopened at {rev}, acknowledged {acked_max}"
        );
        // Every commit is whole: both tables hold 1..=rev.
        assert_eq!(
            r.index_len(&by_seq).unwrap() as u64,
            rev,
            "kill {k} (seed {seed})"
        );
        for seq in [1, rev / 2, rev].into_iter().filter(|&s| s > 0) {
            assert!(
                r.get(&by_seq, &seq).unwrap().is_some(),
                "kill {k}: seq {seq} lost"
            );
        }
        assert_eq!(r.len(&b).unwrap() as u64, rev, "kill {k}: a torn commit");
        drop(r);
        drop(db);
    }
    println!("{kills} kills, final revision {acked_max}+");
    std::fs::remove_dir_all(&dir).unwrap();
}
