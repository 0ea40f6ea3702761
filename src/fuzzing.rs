//! Entry points of the cargo-fuzz targets for the decoders of stored bytes
//! (not part of the API: hidden, and free to change). Each builds a small
//! valid file once, damages it as the fuzzer's input says, and runs the
//! real decoder on it; the fuzzer looks for panics, hangs and unbounded
//! allocations. A result is never checked against a model here: the
//! property tests (`tests/snapshot.rs`, `src/persist/tests.rs`) do that.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::storage::fs::{SimFs, Vfs};
use crate::{Db, Indexer, Options, Schema, Table};

#[derive(serde::Serialize, serde::Deserialize)]
struct Row {
    id: u32,
    name: String,
    tags: Vec<u16>,
}

fn schema() -> (Schema, Table<Row>) {
    let mut s = Schema::builder();
    let mut t = s.table::<Row>("row");
    t.primary("id", Indexer::value(|r: &Row| r.id));
    t.index("name", Indexer::string(|r: &Row| r.name.as_str()));
    t.serde();
    let t = s.add(t).expect("valid table");
    (s.build().expect("valid schema"), t)
}

fn fill(db: &Db, t: &Table<Row>, from: u32, to: u32) {
    for i in from..to {
        let mut w = db.write(&[t]);
        let _ = w.insert(
            t,
            Row {
                id: i % 7,
                name: format!("n{i}"),
                tags: vec![i as u16; (i % 4) as usize],
            },
        );
        let _ = w.commit();
    }
}

/// A valid directory image: a snapshot at revision 10 and a log up to 30.
fn sample_dir() -> &'static Vec<(String, Vec<u8>)> {
    static DIR: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    DIR.get_or_init(|| {
        let fs = SimFs::new();
        let (s, t) = schema();
        let db = Db::open(
            Path::new("/d"),
            s,
            Options::default()
                .checkpoint_bytes(0)
                .vfs(Arc::new(fs.clone())),
        )
        .expect("open");
        fill(&db, &t, 0, 10);
        db.checkpoint().expect("checkpoint");
        fill(&db, &t, 10, 30);
        drop(db);
        let mut names = fs.list_dir(Path::new("/d")).expect("list");
        names.sort();
        names
            .into_iter()
            .filter(|n| n != "LOCK")
            .map(|n| {
                let bytes = fs.read(&Path::new("/d").join(&n)).expect("read");
                (n, bytes)
            })
            .collect()
    })
}

/// Applies the fuzzer's input to `bytes`: pairs of (position, xor), and a
/// cut when the first byte is odd.
fn damage(bytes: &mut Vec<u8>, input: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    for pair in input.get(1..).unwrap_or(&[]).chunks(3) {
        if let [a, b, x] = *pair {
            let at = usize::from(u16::from_le_bytes([a, b])) % bytes.len();
            bytes[at] ^= x;
        }
    }
    if let Some(&first) = input.first()
        && first & 1 == 1
    {
        let cut = usize::from(first) * 7 % (bytes.len() + 1);
        bytes.truncate(cut);
    }
}

/// Opens a damaged copy of the sample directory (the input picks the file
/// to damage: the snapshot or a log segment). Returns the recovered
/// revision or the error.
#[doc(hidden)]
pub fn open_damaged_dir(input: &[u8]) -> crate::Result<u64> {
    let files = sample_dir();
    let target = usize::from(input.first().copied().unwrap_or(0) >> 1) % files.len();
    let fs = SimFs::new();
    fs.create_dir_all(Path::new("/d")).expect("mkdir");
    for (i, (name, bytes)) in files.iter().enumerate() {
        let mut bytes = bytes.clone();
        if i == target {
            damage(&mut bytes, input);
        }
        let mut f = fs.create(&Path::new("/d").join(name)).expect("create");
        f.write_all(&bytes).expect("write");
        f.sync_data().expect("sync");
    }
    fs.sync_dir(Path::new("/d")).expect("sync dir");
    let (s, _) = schema();
    let db = Db::open(
        Path::new("/d"),
        s,
        Options::default().vfs(Arc::new(fs.clone())),
    )?;
    Ok(db.revision())
}

/// Restores a snapshot from raw bytes (the input as is, or — when the
/// input starts with 0xff — a damaged copy of a valid snapshot).
#[doc(hidden)]
pub fn restore_snapshot(input: &[u8]) -> crate::Result<u64> {
    let bytes = match input.first() {
        Some(0xff) => {
            let mut b = sample_dir()
                .iter()
                .find(|(n, _)| n.starts_with("snap-"))
                .map(|(_, b)| b.clone())
                .unwrap_or_default();
            damage(&mut b, &input[1..]);
            b
        }
        _ => input.to_vec(),
    };
    let (s, _) = schema();
    Ok(Db::restore_from(&bytes[..], s)?.revision())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sample_opens_and_damage_is_refused_or_a_prefix() {
        assert_eq!(super::open_damaged_dir(&[]).unwrap(), 30);
        for seed in 0..200u32 {
            let input: Vec<u8> = (0..7).map(|i| (seed * 31 + i * 17) as u8).collect();
            if let Ok(rev) = super::open_damaged_dir(&input) {
                assert!(rev <= 30);
            }
            let _ = super::restore_snapshot(&input);
        }
        assert_eq!(super::restore_snapshot(&[0xff]).unwrap(), 10);
    }
}
