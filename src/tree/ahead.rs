//! Reading ahead of a caller: a small ring of items taken early from an
//! iterator, so that the cache misses on the objects they point to overlap.
//!
//! Owns [`ReadAhead`] (the ring) and [`Stride`] (whether reading ahead pays),
//! used by the owned value iterator ([`super::Values::read_ahead`]) and the
//! database's borrowed result iterator (`RefIter`).

/// How many items are read ahead of the caller at most.
pub(crate) const READ_AHEAD: usize = 16;

/// Tells a reader of objects whether looking ahead pays. Objects handed out
/// in address order are streamed in by the hardware prefetcher, so reading
/// ahead of them only costs (pages of 100 rows in id order: ~10 % slower
/// with it); objects that jump around (rows of a secondary index) each
/// cost a cache miss unless prefetched early.
#[derive(Default, Clone, Copy)]
pub(crate) struct Stride {
    prev: usize,
    jumps: u8,
}

impl Stride {
    /// Objects closer than this to the previous one count as in order.
    const NEAR: usize = 512;

    /// Records the address of the next object; returns whether the recent
    /// objects are scattered (then read ahead).
    #[inline(always)]
    pub(crate) fn scattered(&mut self, addr: *const u8) -> bool {
        let a = addr as usize;
        let near = a.abs_diff(self.prev) <= Self::NEAR;
        self.prev = a;
        self.jumps = if near {
            self.jumps.saturating_sub(1)
        } else {
            (self.jumps + 1).min(4)
        };
        self.is_scattered()
    }

    /// Whether the recent objects were scattered.
    #[inline]
    pub(crate) fn is_scattered(&self) -> bool {
        self.jumps >= 2
    }
}

/// Up to [`READ_AHEAD`] items taken from the front of an iterator ahead of
/// its caller, oldest first, while the objects they point to are scattered.
pub(crate) struct ReadAhead<P> {
    ring: [Option<P>; READ_AHEAD],
    head: usize,
    len: usize,
    stride: Stride,
    /// Size in bytes of the objects the items point to.
    span: usize,
}

impl<P: Copy> ReadAhead<P> {
    /// An empty read-ahead for items pointing to objects of `span` bytes.
    pub(crate) fn new(span: usize) -> Self {
        ReadAhead {
            ring: [None; READ_AHEAD],
            head: 0,
            len: 0,
            stride: Stride::default(),
            span,
        }
    }

    /// Number of items held.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The next item in front order: held ones first, then `pull`'s.
    /// `addr` gives the address of the object an item points to (it is
    /// called on each item right after `pull` returned it); while
    /// those addresses are scattered, up to [`READ_AHEAD`] items are pulled
    /// ahead and their objects prefetched.
    #[inline(always)]
    pub(crate) fn next(
        &mut self,
        mut pull: impl FnMut() -> Option<P>,
        addr: impl Fn(P) -> *const u8,
    ) -> Option<P> {
        if self.len == 0 {
            let item = pull()?;
            let at = addr(item);
            if !self.stride.scattered(at) {
                return Some(item);
            }
            self.push_back(item, at);
        }
        while self.len < READ_AHEAD && self.stride.is_scattered() {
            let Some(item) = pull() else { break };
            let at = addr(item);
            self.stride.scattered(at);
            self.push_back(item, at);
        }
        self.pop_front()
    }

    /// Holds `item`, asking for two cache lines of its object: the one 16
    /// bytes before it (for an object in an `Arc`, the reference counts a
    /// clone changes, and usually the object's first fields too) and its
    /// last one.
    #[inline]
    fn push_back(&mut self, item: P, addr: *const u8) {
        // `wrapping_*` only computes addresses for the hint.
        super::node::prefetch(addr.wrapping_sub(2 * std::mem::size_of::<usize>()));
        super::node::prefetch(addr.wrapping_add(self.span.saturating_sub(1)));
        self.ring[(self.head + self.len) % READ_AHEAD] = Some(item);
        self.len += 1;
    }

    #[inline]
    fn pop_front(&mut self) -> Option<P> {
        if self.len == 0 {
            return None;
        }
        let item = self.ring[self.head].take();
        self.head = (self.head + 1) % READ_AHEAD;
        self.len -= 1;
        item
    }

    /// The newest item held (the back end, once the iterator it reads from
    /// has nothing left).
    #[inline]
    pub(crate) fn pop_back(&mut self) -> Option<P> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        self.ring[(self.head + self.len) % READ_AHEAD].take()
    }
}
