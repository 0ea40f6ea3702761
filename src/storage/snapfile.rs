//! The snapshot container: a checksummed, versioned stream of opaque
//! records behind a caller-provided header ([`SnapshotWriter`],
//! [`SnapshotReader`]), the atomic file helpers ([`write_snapshot_file`],
//! [`open_snapshot_file`]), and the `std::io` adapters over a [`VfsFile`]
//! they use ([`VfsWriter`], [`VfsReader`]).
//!
//! # On disk
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `b"PANDOSNP"` |
//! | 4 | format version, u32 ([`SNAPSHOT_VERSION`]) |
//! | 4 | CRC-32C of the 12 bytes above |
//! | 4 | header length `h`, u32, at most [`MAX_RECORD`] |
//! | 4 | CRC-32C of header length ‖ header |
//! | h | header (the caller's blob) |
//! | … | blocks |
//! | 28 | trailer |
//!
//! A block is `len` u32 (1 ..= [`BLOCK_SIZE`]), `crc` u32 = CRC-32C of
//! block index (u64, from 0) ‖ `len` ‖ data, then `len` bytes of data. The
//! blocks' data, concatenated, is the body: every record as a u32 length
//! (at most [`MAX_RECORD`]) followed by its bytes. Records span blocks
//! freely; every block but the last is full.
//!
//! The trailer is `0u32` (where a block length would be: the end marker),
//! `crc` u32 = CRC-32C of the 20 bytes that follow, record count u64,
//! block count u64, and the chain u32: CRC-32C over the header's CRC and
//! then every block's CRC, each as 4 little-endian bytes, in order. Nothing
//! may follow the trailer.
//!
//! The reader holds one block and the current record in memory, verifies
//! every checksum as it goes, and checks the trailer when it reaches it:
//! records it returned before an error are whole and unchanged, but a
//! snapshot is valid only once [`SnapshotReader::next_record`] has returned
//! `Ok(None)`.

use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use super::MAX_RECORD;
use super::fs::{Vfs, VfsFile};
use crate::{Error, Result};

/// Magic bytes at the start of a snapshot file.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"PANDOSNP";
/// The snapshot format version this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;
/// The data size of a full block (64 KiB).
pub const BLOCK_SIZE: usize = 64 << 10;
/// The suffix of a snapshot file being written.
pub const TEMP_SUFFIX: &str = ".tmp";

fn block_crc(index: u64, data: &[u8]) -> u32 {
    let c = crc32c::crc32c(&index.to_le_bytes());
    let c = crc32c::crc32c_append(c, &(data.len() as u32).to_le_bytes());
    crc32c::crc32c_append(c, data)
}

fn header_crc(header: &[u8]) -> u32 {
    let c = crc32c::crc32c(&(header.len() as u32).to_le_bytes());
    crc32c::crc32c_append(c, header)
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

fn le64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

/// [`std::io::Write`] over a [`VfsFile`]: every write appends.
pub struct VfsWriter {
    file: Box<dyn VfsFile>,
}

impl VfsWriter {
    /// Wraps `file`.
    pub fn new(file: Box<dyn VfsFile>) -> VfsWriter {
        VfsWriter { file }
    }
    /// The wrapped file.
    pub fn into_inner(self) -> Box<dyn VfsFile> {
        self.file
    }
}

impl Write for VfsWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write_all(buf)?;
        Ok(buf.len())
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// [`std::io::Read`] over a [`VfsFile`], from offset 0 on.
pub struct VfsReader {
    file: Box<dyn VfsFile>,
    pos: u64,
}

impl VfsReader {
    /// Reads `file` from its start.
    pub fn new(file: Box<dyn VfsFile>) -> VfsReader {
        VfsReader { file, pos: 0 }
    }
}

impl Read for VfsReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(self.pos, buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Writes a snapshot to `W`: header at [`SnapshotWriter::new`], records
/// with [`SnapshotWriter::write_record`], trailer at
/// [`SnapshotWriter::finish`].
pub struct SnapshotWriter<W: Write> {
    w: W,
    block: Vec<u8>,
    blocks: u64,
    records: u64,
    chain: u32,
    failed: bool,
    block_size: usize,
}

impl<W: Write> SnapshotWriter<W> {
    /// Writes the file header and the caller's `header` blob (at most
    /// [`MAX_RECORD`] bytes).
    pub fn new(mut w: W, header: &[u8]) -> Result<SnapshotWriter<W>> {
        if header.len() > MAX_RECORD {
            return Err(Error::Codec(format!(
                "snapshot header of {} bytes is over the {MAX_RECORD}-byte limit",
                header.len()
            )));
        }
        let mut pre = Vec::with_capacity(24 + header.len());
        pre.extend_from_slice(SNAPSHOT_MAGIC);
        pre.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        let c = crc32c::crc32c(&pre);
        pre.extend_from_slice(&c.to_le_bytes());
        pre.extend_from_slice(&(header.len() as u32).to_le_bytes());
        let hc = header_crc(header);
        pre.extend_from_slice(&hc.to_le_bytes());
        pre.extend_from_slice(header);
        w.write_all(&pre)
            .map_err(|e| Error::io("writing a snapshot", &e))?;
        Ok(SnapshotWriter {
            w,
            block: Vec::with_capacity(BLOCK_SIZE),
            blocks: 0,
            records: 0,
            chain: crc32c::crc32c(&hc.to_le_bytes()),
            failed: false,
            block_size: BLOCK_SIZE,
        })
    }

    /// A writer with smaller blocks, so that small test files have many.
    #[cfg(test)]
    pub(crate) fn with_block_size(
        w: W,
        header: &[u8],
        block_size: usize,
    ) -> Result<SnapshotWriter<W>> {
        assert!((1..=BLOCK_SIZE).contains(&block_size));
        let mut s = SnapshotWriter::new(w, header)?;
        s.block_size = block_size;
        Ok(s)
    }

    fn check(&self) -> Result<()> {
        if self.failed {
            Err(Error::WritesStopped(
                "an earlier write of this snapshot failed".into(),
            ))
        } else {
            Ok(())
        }
    }

    fn flush_block(&mut self) -> Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let crc = block_crc(self.blocks, &self.block);
        let mut head = [0u8; 8];
        head[..4].copy_from_slice(&(self.block.len() as u32).to_le_bytes());
        head[4..].copy_from_slice(&crc.to_le_bytes());
        let r = self
            .w
            .write_all(&head)
            .and_then(|()| self.w.write_all(&self.block));
        if let Err(e) = r {
            self.failed = true;
            return Err(Error::io("writing a snapshot", &e));
        }
        self.chain = crc32c::crc32c_append(self.chain, &crc.to_le_bytes());
        self.blocks += 1;
        self.block.clear();
        Ok(())
    }

    fn push(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let take = (self.block_size - self.block.len()).min(data.len());
            self.block.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.block.len() == self.block_size {
                self.flush_block()?;
            }
        }
        Ok(())
    }

    /// Appends one record (at most [`MAX_RECORD`] bytes).
    pub fn write_record(&mut self, record: &[u8]) -> Result<()> {
        self.check()?;
        if record.len() > MAX_RECORD {
            return Err(Error::Codec(format!(
                "snapshot record of {} bytes is over the {MAX_RECORD}-byte limit",
                record.len()
            )));
        }
        self.push(&(record.len() as u32).to_le_bytes())?;
        self.push(record)?;
        self.records += 1;
        Ok(())
    }

    /// How many records were written.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Writes the last block and the trailer, flushes, and returns the
    /// writer (not synced: that is the caller's business).
    pub fn finish(mut self) -> Result<W> {
        self.check()?;
        self.flush_block()?;
        let mut t = [0u8; 28];
        t[8..16].copy_from_slice(&self.records.to_le_bytes());
        t[16..24].copy_from_slice(&self.blocks.to_le_bytes());
        t[24..28].copy_from_slice(&self.chain.to_le_bytes());
        let c = crc32c::crc32c(&t[8..]);
        t[4..8].copy_from_slice(&c.to_le_bytes());
        self.w
            .write_all(&t)
            .and_then(|()| self.w.flush())
            .map_err(|e| Error::io("writing a snapshot", &e))?;
        Ok(self.w)
    }
}

/// Reads a snapshot back, one block in memory at a time, verifying every
/// checksum.
pub struct SnapshotReader<R: Read> {
    r: R,
    file: String,
    header: Vec<u8>,
    /// Bytes consumed from `r`.
    pos: u64,
    block: Vec<u8>,
    bpos: usize,
    /// File offset of the current block's data.
    block_at: u64,
    blocks: u64,
    records: u64,
    chain: u32,
    record: Vec<u8>,
    done: bool,
    failed: Option<Error>,
}

impl<R: Read> SnapshotReader<R> {
    /// Reads and checks the file header; `file` names the file in errors.
    pub fn open(r: R, file: impl Into<String>) -> Result<SnapshotReader<R>> {
        let mut s = SnapshotReader {
            r,
            file: file.into(),
            header: Vec::new(),
            pos: 0,
            block: Vec::new(),
            bpos: 0,
            block_at: 0,
            blocks: 0,
            records: 0,
            chain: 0,
            record: Vec::new(),
            done: false,
            failed: None,
        };
        let mut pre = [0u8; 24];
        s.read_exact(&mut pre, 0, "the file header")?;
        if &pre[..8] != SNAPSHOT_MAGIC {
            return Err(s.corrupt(0, "not a snapshot file (bad magic)"));
        }
        if crc32c::crc32c(&pre[..12]) != le32(&pre[12..]) {
            return Err(s.corrupt(0, "file header checksum mismatch"));
        }
        let version = le32(&pre[8..]);
        if version > SNAPSHOT_VERSION {
            return Err(Error::UnsupportedVersion {
                file: s.file.clone(),
                found: version,
                supported: SNAPSHOT_VERSION,
            });
        }
        if version == 0 {
            return Err(s.corrupt(8, "snapshot format version 0"));
        }
        let len = le32(&pre[16..]) as usize;
        if len > MAX_RECORD {
            return Err(s.corrupt(16, "header length over the limit"));
        }
        // Grows with the bytes actually read, never sized by `len` alone.
        let mut header = Vec::new();
        let got = (&mut s.r)
            .take(len as u64)
            .read_to_end(&mut header)
            .map_err(|e| Error::io(format!("reading {}", s.file), &e))?;
        s.pos += got as u64;
        if got < len {
            return Err(s.corrupt(16, "file ends inside the header"));
        }
        let hc = header_crc(&header);
        if hc != le32(&pre[20..]) {
            return Err(s.corrupt(16, "header checksum mismatch"));
        }
        s.header = header;
        s.chain = crc32c::crc32c(&hc.to_le_bytes());
        s.block_at = s.pos;
        Ok(s)
    }

    fn corrupt(&self, offset: u64, detail: impl Into<String>) -> Error {
        Error::Corrupt {
            file: self.file.clone(),
            offset,
            detail: detail.into(),
        }
    }

    /// Reads exactly `buf.len()` bytes; a short file is damage to the
    /// structure that starts at `at`.
    fn read_exact(&mut self, buf: &mut [u8], at: u64, what: &str) -> Result<()> {
        match self.r.read_exact(buf) {
            Ok(()) => {
                self.pos += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(self.corrupt(at, format!("file ends inside {what}")))
            }
            Err(e) => Err(Error::io(format!("reading {}", self.file), &e)),
        }
    }

    /// The caller's header blob.
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// Loads the next block; `false` at the (verified) end.
    fn next_block(&mut self) -> Result<bool> {
        let at = self.pos;
        let mut head = [0u8; 8];
        self.read_exact(&mut head, at, "a block header")?;
        let len = le32(&head) as usize;
        let crc = le32(&head[4..]);
        if len == 0 {
            let mut t = [0u8; 20];
            self.read_exact(&mut t, at, "the trailer")?;
            if crc32c::crc32c(&t) != crc {
                return Err(self.corrupt(at, "trailer checksum mismatch"));
            }
            let (records, blocks, chain) = (le64(&t), le64(&t[8..]), le32(&t[16..]));
            if blocks != self.blocks || chain != self.chain {
                return Err(self.corrupt(at, "trailer does not match the blocks read"));
            }
            if records != self.records {
                return Err(self.corrupt(
                    at,
                    format!("trailer counts {records} records, read {}", self.records),
                ));
            }
            let mut extra = [0u8; 1];
            loop {
                match self.r.read(&mut extra) {
                    Ok(0) => break,
                    Ok(_) => return Err(self.corrupt(self.pos, "bytes after the trailer")),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::io(format!("reading {}", self.file), &e)),
                }
            }
            return Ok(false);
        }
        if len > BLOCK_SIZE {
            return Err(self.corrupt(at, "block length over the limit"));
        }
        self.block.resize(len, 0);
        let mut block = std::mem::take(&mut self.block);
        let r = self.read_exact(&mut block, at, "a block");
        self.block = block;
        r?;
        let want = block_crc(self.blocks, &self.block);
        if want != crc {
            return Err(self.corrupt(at, "block checksum mismatch"));
        }
        self.chain = crc32c::crc32c_append(self.chain, &crc.to_le_bytes());
        self.blocks += 1;
        self.bpos = 0;
        self.block_at = at + 8;
        Ok(true)
    }

    /// Copies `n` body bytes into `self.record` (appending); `at` is the
    /// offset of what is being read, for errors.
    fn take(&mut self, mut n: usize, at: u64) -> Result<()> {
        while n > 0 {
            if self.bpos == self.block.len() && !self.next_block()? {
                return Err(self.corrupt(at, "the body ends inside a record"));
            }
            let k = n.min(self.block.len() - self.bpos);
            self.record
                .extend_from_slice(&self.block[self.bpos..self.bpos + k]);
            self.bpos += k;
            n -= k;
        }
        Ok(())
    }

    fn advance(&mut self) -> Result<bool> {
        if self.bpos == self.block.len() && !self.next_block()? {
            return Ok(false);
        }
        let at = self.block_at + self.bpos as u64;
        self.record.clear();
        self.take(4, at)?;
        let len = le32(&self.record) as usize;
        if len > MAX_RECORD {
            return Err(self.corrupt(at, "record length over the limit"));
        }
        self.record.clear();
        self.take(len, at)?;
        self.records += 1;
        Ok(true)
    }

    /// The file offset just past the record last returned (approximate
    /// where records span blocks: the offset within the current block).
    pub fn offset(&self) -> u64 {
        self.block_at + self.bpos as u64
    }

    /// The name the reader reports in errors.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The next record, `Ok(None)` after the last one once the trailer
    /// checked out. After an error, every call returns that error.
    pub fn next_record(&mut self) -> Result<Option<&[u8]>> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.done {
            return Ok(None);
        }
        match self.advance() {
            Ok(true) => Ok(Some(&self.record)),
            Ok(false) => {
                self.done = true;
                self.block = Vec::new();
                self.record = Vec::new();
                Ok(None)
            }
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }
}

/// What [`write_snapshot_file`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Records in the snapshot.
    pub records: u64,
}

/// Writes the snapshot `dir/name` atomically: to `dir/name.tmp` first
/// (header, then `fill` writes the records), syncs it, renames it over
/// `name` and syncs the directory. Until the rename is durable the previous
/// `dir/name`, if any, stays intact. On error the temporary file is removed
/// (best effort).
pub fn write_snapshot_file(
    vfs: &dyn Vfs,
    dir: &Path,
    name: &str,
    header: &[u8],
    fill: impl FnOnce(&mut SnapshotWriter<VfsWriter>) -> Result<()>,
) -> Result<SnapshotInfo> {
    let tmp = dir.join(format!("{name}{TEMP_SUFFIX}"));
    let path = dir.join(name);
    let file = vfs
        .create(&tmp)
        .map_err(|e| Error::io(format!("creating {}", tmp.display()), &e))?;
    let result = (|| {
        let mut w = SnapshotWriter::new(VfsWriter::new(file), header)?;
        fill(&mut w)?;
        let records = w.records();
        let mut file = w.finish()?.into_inner();
        file.sync_data()
            .map_err(|e| Error::io(format!("syncing {}", tmp.display()), &e))?;
        drop(file);
        vfs.rename(&tmp, &path)
            .map_err(|e| Error::io(format!("renaming {}", tmp.display()), &e))?;
        vfs.sync_dir(dir)
            .map_err(|e| Error::io(format!("syncing {}", dir.display()), &e))?;
        Ok(SnapshotInfo { records })
    })();
    if result.is_err() && vfs.exists(&tmp).unwrap_or(false) {
        let _ = vfs.remove(&tmp);
    }
    result
}

/// Opens the snapshot `path` for reading (buffered, one block at a time).
pub fn open_snapshot_file(
    vfs: &dyn Vfs,
    path: &Path,
) -> Result<SnapshotReader<BufReader<VfsReader>>> {
    let file = vfs
        .open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), &e))?;
    let r = BufReader::with_capacity(BLOCK_SIZE + 64, VfsReader::new(file));
    SnapshotReader::open(r, path.display().to_string())
}

/// Removes leftover `*.tmp` files (snapshots interrupted by a crash) from
/// `dir`. Returns how many were removed.
pub fn remove_temp_files(vfs: &dyn Vfs, dir: &Path) -> Result<usize> {
    let names = vfs
        .list_dir(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), &e))?;
    let mut n = 0;
    for name in names.iter().filter(|n| n.ends_with(TEMP_SUFFIX)) {
        let p = dir.join(name);
        vfs.remove(&p)
            .map_err(|e| Error::io(format!("removing {}", p.display()), &e))?;
        n += 1;
    }
    if n > 0 {
        vfs.sync_dir(dir)
            .map_err(|e| Error::io(format!("syncing {}", dir.display()), &e))?;
    }
    Ok(n)
}
