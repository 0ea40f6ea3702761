//! Scanning log segments with the recovery rules, without changing them.

use std::io;
use std::path::{Path, PathBuf};

use crate::storage::log::{
    RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, check_segment, parse_segment_name,
};

use super::Ctx;

/// One log segment as scanned.
pub(super) struct SegStat {
    pub(super) name: String,
    pub(super) first_rev: u64,
    pub(super) prev: Option<u64>,
    pub(super) records: u64,
    pub(super) last_rev: Option<u64>,
    pub(super) bytes: u64,
    /// Torn tail: (offset of the cut, file length).
    pub(super) cut: Option<(u64, u64)>,
    pub(super) damaged: bool,
}

/// What [`Ctx::scan_log`] hands each record to: the context, the
/// revision, the payload, the segment file and the record's offset in it;
/// returns whether to go on delivering.
pub(super) type OnRecord<'f> =
    dyn FnMut(&mut Ctx<'_>, u64, &[u8], &Path, u64) -> io::Result<bool> + 'f;

impl Ctx<'_> {
    /// Scans log segments `(first revision, path)` in order with the
    /// recovery rules (the last one may have a torn tail) and hands every
    /// record of the intact chain to `on_record(ctx, revision, payload,
    /// file, offset of the record)`, which returns `false` to stop the
    /// delivery. Segments after a damaged one are still checked on their
    /// own, but their records are not delivered.
    pub(super) fn scan_log(
        &mut self,
        segments: &[(u64, PathBuf)],
        on_record: &mut OnRecord<'_>,
    ) -> io::Result<(Vec<SegStat>, bool)> {
        let mut stats = Vec::new();
        let mut prev_rev = None;
        let mut delivering = true;
        let mut sound = true;
        for (i, (first, path)) in segments.iter().enumerate() {
            let is_last = i + 1 == segments.len();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string());
            let data = match self.vfs.read(path) {
                Ok(d) => d,
                Err(e) => {
                    self.io_error("reading", path, &e);
                    sound = false;
                    delivering = false;
                    prev_rev = None;
                    continue;
                }
            };
            let mut st = SegStat {
                name,
                first_rev: *first,
                prev: None,
                records: 0,
                last_rev: None,
                bytes: data.len() as u64,
                cut: None,
                damaged: false,
            };
            match check_segment(path, *first, &data, is_last, prev_rev) {
                Err(e) => {
                    self.finding(&e, "");
                    st.damaged = true;
                    sound = false;
                    delivering = false;
                    prev_rev = None;
                }
                Ok(c) => {
                    st.prev = c.prev;
                    st.records = c.records.len() as u64;
                    st.last_rev = c.records.last().map(|r| r.0);
                    if c.records.is_empty() && !is_last {
                        self.damage(path, 0, "segment without records");
                        st.damaged = true;
                        sound = false;
                        delivering = false;
                    }
                    if let Some(at) = c.cut {
                        st.cut = Some((at as u64, data.len() as u64));
                        self.torn(&path.display().to_string(), at as u64, data.len() as u64);
                    }
                    if c.records.is_empty() && is_last {
                        let _ = writeln!(
                            self.err,
                            "pandodb: note: {}: a last segment without records (opening removes it)",
                            path.display()
                        );
                    }
                    for &(rev, start, end) in &c.records {
                        self.tick("log records");
                        if delivering {
                            let at = (start - RECORD_HEADER_LEN) as u64;
                            delivering = on_record(self, rev, &data[start..end], path, at)?;
                        }
                    }
                    if !st.damaged {
                        prev_rev = st.last_rev.or(prev_rev);
                    }
                }
            }
            stats.push(st);
        }
        Ok((stats, sound))
    }

    /// The first revision of a lone segment file: from its name, else from
    /// its first record.
    pub(super) fn lone_segment_first(&self, path: &Path) -> u64 {
        let from_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_segment_name);
        from_name.unwrap_or_else(|| {
            let n = SEGMENT_HEADER_LEN + RECORD_HEADER_LEN;
            self.read_prefix(path, n)
                .ok()
                .filter(|b| b.len() == n)
                .and_then(|b| le_u64(&b, SEGMENT_HEADER_LEN + 8))
                .unwrap_or(0)
        })
    }
}

fn le_u64(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(d.get(at..at + 8)?.try_into().ok()?))
}
