//! Persisted Raft snapshots: one file per snapshot in a directory of its
//! own, written to a temporary file, synced, renamed, and the directory
//! synced, so that a crash leaves the old snapshot or the new one.
//!
//! File layout (integers little-endian):
//!
//! ```text
//! "PDRSNAP1"            8 bytes, magic and version
//! meta length           u32
//! meta                  postcard of openraft's SnapshotMeta
//! data length           u64
//! data                  pandodb's snapshot format (docs/FORMAT.md)
//! crc32c                u32 of every byte before it
//! ```
//!
//! Named `snapshot-<last applied index + 1, 20 digits>.raft` (0: a snapshot
//! of nothing applied), so the newest sorts last. Only the newest is kept.

use crate::purge_guard::PurgeGuard;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use openraft::{RaftTypeConfig, SnapshotMeta};
use pandodb::Error;

const MAGIC: &[u8; 8] = b"PDRSNAP1";
const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".raft";
const TMP: &str = ".tmp";
/// The largest metadata accepted (a membership of thousands of nodes fits).
const META_LIMIT: u32 = 16 << 20;

fn io(context: String, e: &std::io::Error) -> Error {
    Error::Io {
        context,
        kind: e.kind(),
        message: e.to_string(),
    }
}

fn corrupt(file: &Path, offset: u64, detail: impl Into<String>) -> Error {
    Error::Corrupt {
        file: file.display().to_string(),
        offset,
        detail: detail.into(),
    }
}

fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Syncs a directory, so that a rename or a new file in it is durable.
fn sync_dir(dir: &Path) -> pandodb::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(format!("syncing directory {}", dir.display()), &e))
}

/// A snapshot read back: its metadata and its data.
pub(crate) type Loaded<C> = (
    SnapshotMeta<<C as RaftTypeConfig>::NodeId, <C as RaftTypeConfig>::Node>,
    Vec<u8>,
);

/// A directory of persisted snapshots.
#[derive(Debug)]
pub(crate) struct SnapshotDir {
    dir: PathBuf,
    /// How far the snapshots on disk cover the log.
    guard: PurgeGuard,
}

impl SnapshotDir {
    /// Opens (or creates) `dir` and removes the temporary files a crash in
    /// the middle of a save left there.
    pub(crate) fn open(dir: &Path) -> pandodb::Result<SnapshotDir> {
        fs::create_dir_all(dir).map_err(|e| io(format!("creating {}", dir.display()), &e))?;
        for name in Self::names(dir)? {
            if name.ends_with(TMP) {
                let p = dir.join(&name);
                fs::remove_file(&p).map_err(|e| io(format!("removing {}", p.display()), &e))?;
            }
        }
        Ok(SnapshotDir {
            dir: dir.to_path_buf(),
            guard: PurgeGuard::default(),
        })
    }

    fn names(dir: &Path) -> pandodb::Result<Vec<String>> {
        let rd = fs::read_dir(dir).map_err(|e| io(format!("listing {}", dir.display()), &e))?;
        let mut names = Vec::new();
        for e in rd {
            let e = e.map_err(|e| io(format!("listing {}", dir.display()), &e))?;
            if let Ok(name) = e.file_name().into_string()
                && name.starts_with(PREFIX)
            {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// The newest snapshot, if any. A damaged file is
    /// [`Error::Corrupt`]: the log may already be purged up to it, so an
    /// older snapshot would not do.
    pub(crate) fn load<C: RaftTypeConfig>(&self) -> pandodb::Result<Option<Loaded<C>>> {
        let newest = Self::names(&self.dir)?
            .iter()
            .filter_map(|n| parse_name(n).map(|seq| (seq, n.clone())))
            .max();
        let Some((_, name)) = newest else {
            return Ok(None);
        };
        let path = self.dir.join(name);
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| io(format!("reading {}", path.display()), &e))?;
        let loaded = decode::<C>(&path, bytes)?;
        if let Some(l) = &loaded.0.last_log_id {
            self.guard.persisted(l.index);
        }
        Ok(Some(loaded))
    }

    /// How far the snapshots on disk cover the log.
    pub(crate) fn guard(&self) -> &PurgeGuard {
        &self.guard
    }

    /// Writes the snapshot durably (temporary file, fsync, rename,
    /// directory fsync), then removes the older ones.
    pub(crate) fn save<C: RaftTypeConfig>(
        &self,
        meta: &SnapshotMeta<C::NodeId, C::Node>,
        data: &[u8],
    ) -> pandodb::Result<()> {
        let seq = meta.last_log_id.as_ref().map_or(0, |l| l.index + 1);
        let name = format!("{PREFIX}{seq:020}{SUFFIX}");
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}{TMP}"));
        let header = encode_header::<C>(meta, data.len())?;
        let crc = crc32c::crc32c_append(crc32c::crc32c(&header), data);
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&header)?;
            f.write_all(data)?;
            f.write_all(&crc.to_le_bytes())?;
            f.sync_all()
        };
        write().map_err(|e| io(format!("writing {}", tmp.display()), &e))?;
        fs::rename(&tmp, &path).map_err(|e| io(format!("renaming {}", tmp.display()), &e))?;
        sync_dir(&self.dir)?;
        if let Some(l) = &meta.last_log_id {
            self.guard.persisted(l.index);
        }
        for old in Self::names(&self.dir)? {
            if old != name && parse_name(&old).is_some() {
                let p = self.dir.join(&old);
                fs::remove_file(&p).map_err(|e| io(format!("removing {}", p.display()), &e))?;
            }
        }
        Ok(())
    }
}

fn encode_header<C: RaftTypeConfig>(
    meta: &SnapshotMeta<C::NodeId, C::Node>,
    data_len: usize,
) -> pandodb::Result<Vec<u8>> {
    let m = postcard::to_allocvec(meta).map_err(|e| Error::Codec(e.to_string()))?;
    let mut h = Vec::with_capacity(8 + 4 + m.len() + 8);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&(m.len() as u32).to_le_bytes());
    h.extend_from_slice(&m);
    h.extend_from_slice(&(data_len as u64).to_le_bytes());
    Ok(h)
}

/// Decodes a snapshot file, checking every length before using it.
pub(crate) fn decode<C: RaftTypeConfig>(
    path: &Path,
    mut bytes: Vec<u8>,
) -> pandodb::Result<Loaded<C>> {
    let len = bytes.len() as u64;
    if bytes.len() < 8 + 4 + 8 + 4 {
        return Err(corrupt(path, 0, format!("{len} bytes: too short")));
    }
    if &bytes[..8] != MAGIC {
        return Err(corrupt(path, 0, "not a Raft snapshot file (bad magic)"));
    }
    let body = bytes.len() - 4;
    let stored = u32::from_le_bytes(bytes[body..].try_into().unwrap_or_default());
    if crc32c::crc32c(&bytes[..body]) != stored {
        return Err(corrupt(path, body as u64, "checksum mismatch"));
    }
    let meta_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    if meta_len > META_LIMIT || 12 + meta_len as u64 + 8 > body as u64 {
        return Err(corrupt(path, 8, format!("metadata length {meta_len}")));
    }
    let meta_end = 12 + meta_len as usize;
    let meta = postcard::from_bytes(&bytes[12..meta_end])
        .map_err(|e| corrupt(path, 12, format!("metadata: {e}")))?;
    let data_len = u64::from_le_bytes(bytes[meta_end..meta_end + 8].try_into().unwrap_or_default());
    let data_start = meta_end + 8;
    if data_len != (body - data_start) as u64 {
        return Err(corrupt(
            path,
            meta_end as u64,
            format!(
                "data length {data_len}, {} bytes present",
                body - data_start
            ),
        ));
    }
    bytes.truncate(body);
    bytes.drain(..data_start);
    Ok((meta, bytes))
}
