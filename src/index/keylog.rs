//! The keys a write transaction changed, per index: what renumbering and
//! the watch registries read after a commit.

/// Index keys, each tagged with the position of its index, in one flat
/// buffer (one allocation for a whole transaction's keys).
#[derive(Default, Debug, Clone)]
pub(crate) struct KeyLog {
    bytes: Vec<u8>,
    ends: Vec<(u16, u32)>,
}

impl KeyLog {
    pub(crate) fn push(&mut self, index: usize, key: &[u8]) {
        self.bytes.extend_from_slice(key);
        // Index positions are small; key bytes of one transaction beyond
        // 4 GiB would wrap, so such a log is marked as overflowing instead.
        let end = u32::try_from(self.bytes.len()).unwrap_or(u32::MAX);
        self.ends.push((index as u16, end));
    }

    /// Empties the log, keeping its buffers.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// Whether the log lost track of keys (over 4 GiB of key bytes).
    pub(crate) fn overflowed(&self) -> bool {
        self.bytes.len() >= u32::MAX as usize
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &[u8])> {
        let mut start = 0usize;
        self.ends.iter().map(move |&(ix, end)| {
            let s = start;
            start = end as usize;
            (usize::from(ix), &self.bytes[s..end as usize])
        })
    }

    /// Approximate heap bytes.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * 8
    }
}
