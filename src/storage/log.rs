//! The write-ahead log: checksummed records in numbered segment files,
//! group-commit writing ([`LogWriter`]) and recovery ([`recover`]) that cuts
//! back a torn tail and reports any other damage as [`Error::Corrupt`].
//!
//! # On disk
//!
//! A log directory holds segment files named `wal-<R>.log`, where `<R>` is
//! the revision of the segment's first record as 20 decimal digits
//! (zero-padded, so names sort like revisions). Other names are ignored.
//!
//! A segment is a 24-byte header followed by records:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `b"PANDOWAL"` |
//! | 4 | format version, u32 ([`LOG_VERSION`]) |
//! | 8 | revision of the last record before this segment, u64 ([`NO_REV`]: none) |
//! | 4 | CRC-32C of the 20 bytes above |
//!
//! A record is a 20-byte header followed by the payload:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `b"PdRc"` |
//! | 4 | payload length `n`, u32, at most [`MAX_RECORD`] |
//! | 8 | revision, u64 |
//! | 4 | CRC-32C of length ‖ revision ‖ payload |
//! | n | payload |
//!
//! Revisions strictly increase across the whole log (and are below
//! [`NO_REV`]), the first record of a segment has the revision in the
//! segment's name, and a segment's header names the last revision of the
//! segment before it, so a segment cut short at a record boundary is
//! detected (the first segment's is reported as [`Recovered::first_prev`]:
//! the records up to it were removed and must be in a snapshot). A segment
//! is created by the first [`LogWriter::sync`] that has records for it,
//! with its header and those records in one write, then the file is synced
//! and then the directory, so every segment but the last one is complete
//! and non-empty. A segment header with a valid checksum and a version
//! above [`LOG_VERSION`] is [`Error::UnsupportedVersion`].
//!
//! # Recovery rules
//!
//! Segments are read in name order. In the **last** segment, a record that
//! fails validation (short header, bad magic, length over the limit or past
//! the end of the file, checksum mismatch) is a torn tail when no valid
//! record starts at any later offset of the file: the file is truncated to
//! the end of the last whole record and synced (a segment left without
//! records is removed and the directory synced). Any other failed record, a
//! bad segment header, an empty segment that is not the last, a revision
//! that does not increase, a first revision that differs from the name, or
//! a previous revision in the header that differs from the end of the
//! previous segment is [`Error::Corrupt`] naming the file and byte offset.
//! This assumes that a
//! crash leaves the unsynced end of a file as a prefix of what was written,
//! possibly followed by garbage; a valid record after damage means the
//! damage is not a torn write. (A payload that itself contains a valid
//! record image could make a torn tail look like corruption: recovery then
//! refuses, it never serves wrong data.)

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::MAX_RECORD;
use super::fs::{Vfs, VfsFile};
use crate::{Error, Result};

/// Magic bytes at the start of every segment.
pub const SEGMENT_MAGIC: &[u8; 8] = b"PANDOWAL";
/// The log format version this build writes and reads.
pub const LOG_VERSION: u32 = 1;
/// Length of the segment header.
pub const SEGMENT_HEADER_LEN: usize = 24;
/// "No revision" in a segment header's previous-revision field.
pub const NO_REV: u64 = u64::MAX;
/// Magic bytes at the start of every record.
pub const RECORD_MAGIC: &[u8; 4] = b"PdRc";
/// Length of a record header.
pub const RECORD_HEADER_LEN: usize = 20;

/// The file name of the segment whose first record has revision `first_rev`.
pub fn segment_name(first_rev: u64) -> String {
    format!("wal-{first_rev:020}.log")
}

/// The first revision named by a segment file name, if `name` is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn segment_header(prev_rev: Option<u64>) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&LOG_VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&prev_rev.unwrap_or(NO_REV).to_le_bytes());
    let crc = crc32c::crc32c(&h[..20]);
    h[20..].copy_from_slice(&crc.to_le_bytes());
    h
}

fn record_crc(len: u32, rev: u64, payload: &[u8]) -> u32 {
    let mut c = crc32c::crc32c(&len.to_le_bytes());
    c = crc32c::crc32c_append(c, &rev.to_le_bytes());
    crc32c::crc32c_append(c, payload)
}

fn encode_record(buf: &mut Vec<u8>, rev: u64, payload: &[u8]) {
    let len = payload.len() as u32;
    buf.extend_from_slice(RECORD_MAGIC);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&rev.to_le_bytes());
    buf.extend_from_slice(&record_crc(len, rev, payload).to_le_bytes());
    buf.extend_from_slice(payload);
}

fn u32_at(d: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(d[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(d: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(d[at..at + 8].try_into().expect("8 bytes"))
}

/// Parses the record at `pos`: `(revision, payload start, record end)`.
fn parse_record(d: &[u8], pos: usize) -> Result<(u64, usize, usize), &'static str> {
    if d.len() - pos < RECORD_HEADER_LEN {
        return Err("truncated record header");
    }
    if &d[pos..pos + 4] != RECORD_MAGIC {
        return Err("bad record magic");
    }
    let len = u32_at(d, pos + 4);
    if len as usize > MAX_RECORD {
        return Err("record length over the limit");
    }
    let start = pos + RECORD_HEADER_LEN;
    let end = start + len as usize;
    if end > d.len() {
        return Err("record runs past the end of the file");
    }
    let rev = u64_at(d, pos + 8);
    if record_crc(len, rev, &d[start..end]) != u32_at(d, pos + 16) {
        return Err("record checksum mismatch");
    }
    Ok((rev, start, end))
}

fn valid_record_after(d: &[u8], from: usize) -> bool {
    (from + 1..d.len().saturating_sub(RECORD_HEADER_LEN - 1))
        .any(|q| &d[q..q + 4] == RECORD_MAGIC && parse_record(d, q).is_ok())
}

/// One segment, validated.
struct Scanned {
    /// `(revision, payload start, payload end)` of every whole record.
    records: Vec<(u64, usize, usize)>,
    /// The previous revision named by the header.
    prev: Option<u64>,
    /// Where a torn tail starts, if there is one (last segment only).
    cut: Option<usize>,
}

fn corrupt(file: &Path, offset: usize, detail: impl Into<String>) -> Error {
    Error::Corrupt {
        file: file.display().to_string(),
        offset: offset as u64,
        detail: detail.into(),
    }
}

fn scan_segment(
    path: &Path,
    first_rev: u64,
    d: &[u8],
    is_last: bool,
    prev_rev: Option<u64>,
) -> Result<Scanned> {
    let mut out = Scanned {
        records: Vec::new(),
        prev: None,
        cut: None,
    };
    let bad = |offset: usize, detail: &'static str, out: Scanned| -> Result<Scanned> {
        if is_last && !valid_record_after(d, offset) {
            Ok(Scanned {
                cut: Some(offset),
                ..out
            })
        } else {
            Err(corrupt(path, offset, detail))
        }
    };
    if d.len() < SEGMENT_HEADER_LEN {
        return bad(0, "truncated segment header", out);
    }
    if &d[..8] != SEGMENT_MAGIC || crc32c::crc32c(&d[..20]) != u32_at(d, 20) {
        return bad(0, "bad segment header", out);
    }
    let version = u32_at(d, 8);
    if version > LOG_VERSION {
        return Err(Error::UnsupportedVersion {
            file: path.display().to_string(),
            found: version,
            supported: LOG_VERSION,
        });
    }
    if version == 0 {
        return Err(corrupt(path, 8, "log format version 0"));
    }
    let header_prev = u64_at(d, 12);
    out.prev = (header_prev != NO_REV).then_some(header_prev);
    if let Some(p) = prev_rev
        && out.prev != Some(p)
    {
        return Err(corrupt(
            path,
            12,
            format!(
                "segment says it follows revision {header_prev}, the previous segment ends at {p}"
            ),
        ));
    }
    let mut pos = SEGMENT_HEADER_LEN;
    let mut prev = prev_rev;
    while pos < d.len() {
        match parse_record(d, pos) {
            Ok((rev, start, end)) => {
                if out.records.is_empty() && rev != first_rev {
                    return Err(corrupt(
                        path,
                        pos,
                        format!("first record has revision {rev}, the file name says {first_rev}"),
                    ));
                }
                if let Some(p) = prev
                    && rev <= p
                {
                    return Err(corrupt(
                        path,
                        pos,
                        format!("revision {rev} does not follow revision {p}"),
                    ));
                }
                prev = Some(rev);
                out.records.push((rev, start, end));
                pos = end;
            }
            Err(detail) => return bad(pos, detail, out),
        }
    }
    Ok(out)
}

/// One segment as [`check_segment`] validated it.
#[cfg_attr(not(feature = "cli"), allow(dead_code))] // read by the `pandodb` command
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentCheck {
    /// `(revision, payload start, payload end)` of every whole record, as
    /// byte offsets into the segment (a record's header starts
    /// [`RECORD_HEADER_LEN`] bytes before its payload).
    pub records: Vec<(u64, usize, usize)>,
    /// The previous revision named by the segment header.
    pub prev: Option<u64>,
    /// Where a torn tail starts, if there is one (only when `is_last`):
    /// [`recover`] would truncate the file to this length.
    pub cut: Option<usize>,
}

/// Validates the bytes `data` of one segment with exactly the rules of
/// [`recover`] (`first_rev`: the revision in the file name; `prev_rev`: the
/// last revision of the segment before it), reading nothing and changing
/// nothing: for inspection tools. A torn tail is reported in
/// [`SegmentCheck::cut`], any other damage as the error `recover` gives.
#[cfg_attr(not(feature = "cli"), allow(dead_code))] // read by the `pandodb` command
pub fn check_segment(
    path: &Path,
    first_rev: u64,
    data: &[u8],
    is_last: bool,
    prev_rev: Option<u64>,
) -> Result<SegmentCheck> {
    let s = scan_segment(path, first_rev, data, is_last, prev_rev)?;
    Ok(SegmentCheck {
        records: s.records,
        prev: s.prev,
        cut: s.cut,
    })
}

/// What [`recover`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recovered {
    /// The revision of the last whole record, if any.
    pub last_rev: Option<u64>,
    /// How many records were delivered.
    pub records: u64,
    /// The previous revision named by the first segment's header: records
    /// up to it were in segments since removed, so a snapshot at or after
    /// it must exist for the log to be complete.
    pub first_prev: Option<u64>,
    /// The torn tail that was cut off: file, new length, old length.
    pub cut: Option<(String, u64, u64)>,
}

/// The first revisions of the segment files among `names` (a directory
/// listing), in the order recovery reads them.
pub fn segments_of(names: &[String]) -> Vec<u64> {
    let mut segments: Vec<u64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
    segments.sort_unstable();
    segments
}

fn io_error(what: &str, p: &Path, e: &std::io::Error) -> Error {
    Error::io(format!("{what} {}", p.display()), e)
}

/// Reads the log in `dir` (created if missing), hands every whole record to
/// `on_record` in revision order, cuts back a torn tail, and returns a
/// writer that appends after the last record.
///
/// A segment is validated completely before any of its records is handed
/// out. An error from `on_record` stops recovery and is returned.
#[cfg_attr(not(test), allow(dead_code))] // the database lists its directory itself
pub fn recover(
    vfs: Arc<dyn Vfs>,
    dir: &Path,
    on_record: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<(LogWriter, Recovered)> {
    vfs.create_dir_all(dir)
        .map_err(|e| io_error("creating log directory", dir, &e))?;
    let names = vfs
        .list_dir(dir)
        .map_err(|e| io_error("listing log directory", dir, &e))?;
    recover_segments(vfs, dir, segments_of(&names), on_record)
}

/// [`recover`] of the existing directory `dir` whose segments the caller
/// has listed: `segments`, their first revisions as [`segments_of`] gives
/// them.
pub fn recover_segments(
    vfs: Arc<dyn Vfs>,
    dir: &Path,
    mut segments: Vec<u64>,
    mut on_record: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<(LogWriter, Recovered)> {
    let io = io_error;
    let mut found = Recovered::default();
    let mut active: Option<(Box<dyn VfsFile>, u64)> = None;
    let count = segments.len();
    for (i, &first) in segments.clone().iter().enumerate() {
        let path = dir.join(segment_name(first));
        let is_last = i + 1 == count;
        let data = vfs
            .read(&path)
            .map_err(|e| io("reading log segment", &path, &e))?;
        let scanned = scan_segment(&path, first, &data, is_last, found.last_rev)?;
        if i == 0 {
            found.first_prev = scanned.prev;
        }
        if scanned.records.is_empty() && !is_last {
            return Err(corrupt(&path, 0, "segment without records"));
        }
        for &(rev, start, end) in &scanned.records {
            on_record(rev, &data[start..end])?;
            found.records += 1;
            found.last_rev = Some(rev);
        }
        if !is_last {
            continue;
        }
        let len = scanned.cut.unwrap_or(data.len());
        if scanned.records.is_empty() {
            vfs.remove(&path)
                .map_err(|e| io("removing empty log segment", &path, &e))?;
            vfs.sync_dir(dir)
                .map_err(|e| io("syncing log directory", dir, &e))?;
            segments.pop();
        } else {
            let mut f = vfs
                .open(&path)
                .map_err(|e| io("opening log segment", &path, &e))?;
            if len < data.len() {
                f.set_len(len as u64)
                    .and_then(|()| f.sync_data())
                    .map_err(|e| io("cutting back the torn tail of", &path, &e))?;
            }
            active = Some((f, len as u64));
        }
        if len < data.len() {
            found.cut = Some((path.display().to_string(), len as u64, data.len() as u64));
        }
    }
    let (active, active_len) = match active {
        Some((f, len)) => (Some(f), len),
        None => (None, 0),
    };
    let writer = LogWriter {
        vfs,
        dir: dir.to_path_buf(),
        segments,
        active,
        active_len,
        buf: Vec::new(),
        buf_first_rev: None,
        last_rev: found.last_rev,
        synced_rev: found.last_rev,
        stopped: None,
    };
    Ok((writer, found))
}

/// Records as `(revision, payload)`, in revision order.
#[cfg(test)]
pub type Records = Vec<(u64, Vec<u8>)>;

/// [`recover`] collecting the records into a vector.
#[cfg(test)]
pub fn recover_all(vfs: Arc<dyn Vfs>, dir: &Path) -> Result<(Records, LogWriter, Recovered)> {
    let mut records = Vec::new();
    let (w, found) = recover(vfs, dir, |rev, p| {
        records.push((rev, p.to_vec()));
        Ok(())
    })?;
    Ok((records, w, found))
}

/// Appends records to the log. Obtained from [`recover`].
///
/// [`append`](LogWriter::append) only buffers; [`sync`](LogWriter::sync)
/// writes the buffer and syncs it, so a group commit is several appends and
/// one sync. After any I/O error the writer is stopped: every later call
/// returns [`Error::WritesStopped`] (fail-stop; recover to go on), so a
/// failed sync is never followed by a reported success.
pub struct LogWriter {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    /// First revisions of the segments on disk, ascending (the active one
    /// last when there is one).
    segments: Vec<u64>,
    active: Option<Box<dyn VfsFile>>,
    active_len: u64,
    /// Encoded records not yet written (starting with the segment header
    /// when `active` is `None`).
    buf: Vec<u8>,
    buf_first_rev: Option<u64>,
    last_rev: Option<u64>,
    synced_rev: Option<u64>,
    stopped: Option<String>,
}

impl LogWriter {
    fn check(&self) -> Result<()> {
        match &self.stopped {
            Some(m) => Err(Error::WritesStopped(m.clone())),
            None => Ok(()),
        }
    }

    fn fail(&mut self, context: String, e: &std::io::Error) -> Error {
        let err = Error::io(context, e);
        self.stopped = Some(err.to_string());
        err
    }

    /// Buffers a record. `rev` must be greater than every revision appended
    /// before (a violation is a caller bug and panics); `payload` must be at
    /// most [`MAX_RECORD`] bytes ([`Error::Codec`] otherwise, the writer
    /// goes on).
    pub fn append(&mut self, rev: u64, payload: &[u8]) -> Result<()> {
        self.check()?;
        if payload.len() > MAX_RECORD {
            return Err(Error::Codec(format!(
                "log record of {} bytes is over the {MAX_RECORD}-byte limit",
                payload.len()
            )));
        }
        if let Some(last) = self.last_rev {
            assert!(rev > last, "log revision {rev} after {last}");
        }
        assert!(rev != NO_REV, "log revision {NO_REV} is reserved");
        if self.buf.is_empty() && self.active.is_none() {
            self.buf.extend_from_slice(&segment_header(self.last_rev));
        }
        if self.buf_first_rev.is_none() {
            self.buf_first_rev = Some(rev);
        }
        encode_record(&mut self.buf, rev, payload);
        self.last_rev = Some(rev);
        Ok(())
    }

    /// Writes the buffered records and makes them durable; when they start
    /// a new segment, creates its file and syncs the directory too. Returns
    /// only after everything appended so far is on disk.
    pub fn sync(&mut self) -> Result<()> {
        self.check()?;
        let Some(first) = self.buf_first_rev else {
            return Ok(());
        };
        let mut created = false;
        let path = match self.active {
            Some(_) => self
                .dir
                .join(segment_name(*self.segments.last().expect("active"))),
            None => {
                let path = self.dir.join(segment_name(first));
                match self.vfs.create(&path) {
                    Ok(f) => self.active = Some(f),
                    Err(e) => {
                        return Err(self.fail(format!("creating {}", path.display()), &e));
                    }
                }
                self.segments.push(first);
                self.active_len = 0;
                created = true;
                path
            }
        };
        let f = self.active.as_mut().expect("active segment");
        if let Err(e) = f.write_all(&self.buf).and_then(|()| f.sync_data()) {
            return Err(self.fail(format!("writing {}", path.display()), &e));
        }
        if created && let Err(e) = self.vfs.sync_dir(&self.dir) {
            return Err(self.fail(format!("syncing {}", self.dir.display()), &e));
        }
        self.active_len += self.buf.len() as u64;
        self.buf.clear();
        self.buf_first_rev = None;
        self.synced_rev = self.last_rev;
        Ok(())
    }

    /// Syncs, then closes the current segment: the next record starts a
    /// new segment file (created by the sync that writes it).
    pub fn rotate(&mut self) -> Result<()> {
        self.sync()?;
        self.active = None;
        self.active_len = 0;
        Ok(())
    }

    /// Removes every segment that holds only revisions below `rev` (never
    /// the newest segment), then syncs the directory. Returns how many were
    /// removed. Call it only once a snapshot covering those revisions is
    /// durable.
    pub fn remove_segments_below(&mut self, rev: u64) -> Result<usize> {
        self.check()?;
        let mut n = 0;
        while self.segments.len() > 1 && self.segments[1] <= rev {
            let path = self.dir.join(segment_name(self.segments[0]));
            if let Err(e) = self.vfs.remove(&path) {
                return Err(self.fail(format!("removing {}", path.display()), &e));
            }
            self.segments.remove(0);
            n += 1;
        }
        if n > 0
            && let Err(e) = self.vfs.sync_dir(&self.dir)
        {
            return Err(self.fail(format!("syncing {}", self.dir.display()), &e));
        }
        Ok(n)
    }

    /// The last revision known durable.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn synced_rev(&self) -> Option<u64> {
        self.synced_rev
    }

    /// Bytes in the current segment (0 when the next sync starts a new one),
    /// for a rotation policy.
    pub fn segment_len(&self) -> u64 {
        self.active_len
    }

    /// First revisions of the segment files, ascending.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn segments(&self) -> &[u64] {
        &self.segments
    }

    /// Whether an I/O error has stopped the writer.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn is_stopped(&self) -> bool {
        self.stopped.is_some()
    }
}
