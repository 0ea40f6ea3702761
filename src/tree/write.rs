//! Writes to an inner node: copy-on-write ([`Inner::make_mut`]), adding and
//! removing a child, and the growth, shrinking and rebuilds between slot
//! capacities and layouts those need (moving, lending or cloning the slots).

use super::body::{Body, NodeArc};
use super::ledger::Ledger;
use super::node::{Head, Inner, LARGE_MIN, Layout, MEDIUM_MAX, MEDIUM_MIN, Prefix, SMALL_MAX};
use super::slot::{Slot, duplicate};

/// Slot capacity a `Medium` node grows by.
const MEDIUM_STEP: usize = 8;

/// The capacity a `Small` node of `len` children grows to when full:
/// exact steps while tiny, then by two (most nodes are small).
#[inline]
fn small_growth(len: usize) -> usize {
    if len < 4 {
        len + 1
    } else {
        (len + 2).min(SMALL_MAX)
    }
}

impl<V: Clone> Inner<V> {
    /// Write access to this node: in place when the writer owns it (see
    /// [`Inner::owned`]), else after copying it, by lending its child
    /// handles when the ledger allows (see [`Ledger`]) or by cloning them
    /// (one reference count each).
    #[inline]
    pub(crate) fn make_mut(&mut self, lg: Option<&mut Ledger<V>>) -> &mut Body<V> {
        if !self.owned(&lg) {
            self.copy_for_write(lg);
        }
        match self.get_mut() {
            Some(body) => body,
            None => unreachable!("make_mut: the node was just made unique"),
        }
    }

    /// The copy of [`Inner::make_mut`], out of line: most calls find the
    /// node owned already (every node of a path after its first write), and
    /// that check is what gets inlined into each descent.
    #[inline(never)]
    fn copy_for_write(&mut self, lg: Option<&mut Ledger<V>>) {
        let cap = self.slots().len();
        // A copied `Small` node that is full gets one spare slot: a copy
        // is usually made to change the node, often to add a child.
        let cap = match self.layout {
            Layout::Small { len, .. } if usize::from(len) == cap => small_growth(cap),
            _ => cap,
        };
        match lg {
            Some(l) if l.may_lend(self) => self.lend_copy(cap, l),
            lg => {
                let layout = self.layout.clone();
                self.rebuild(layout, (0..cap).map(Some), lg);
            }
        }
    }

    /// The lending copy of [`Inner::make_mut`] (see [`Inner::rebuild`]):
    /// the same layout with `cap` slots (at least the current capacity), the
    /// children's handles duplicated bit for bit in one copy of the slot
    /// array rather than one slot at a time. The old node joins the ledger.
    #[allow(unsafe_code)]
    fn lend_copy(&mut self, cap: usize, l: &mut Ledger<V>) {
        let head = Head {
            prefix: self.prefix.clone(),
            count: self.count,
            terminal: self.terminal.clone(),
            layout: self.layout.clone(),
            generation: l.generation,
        };
        let slots = self.slots();
        let n = slots.len();
        assert!(n <= cap, "lend_copy: {cap} slots cannot hold {n}");
        // SAFETY: the closure writes every one of the new node's `cap >= n`
        // slots. The first `n` become bitwise duplicates of the old node's
        // slots (a child handle's duplicate, as `duplicate` makes one, or
        // `None`), copied in one piece from a distinct allocation:
        // `may_lend` established that the old node belongs to the base
        // version alone, and it joins the ledger below, which keeps it (and
        // so each lent child's count) alive until settlement, which then
        // either frees it without dropping its slots (their counts pass to
        // these copies) or gives each of its children one more count. The
        // rest are `None`.
        let new = Inner(unsafe {
            NodeArc::new_with(head, cap, |dst| {
                let (lent, spare) = dst.split_at_mut(n);
                std::ptr::copy_nonoverlapping(slots.as_ptr(), lent.as_mut_ptr().cast(), n);
                for s in spare {
                    s.write(None);
                }
            })
        });
        let old = std::mem::replace(self, new);
        l.lent_from(old);
    }

    /// Replaces this node by a new allocation with header `layout` and a
    /// slot array laid out by `map` (one item per new slot: the old slot
    /// index to fill it from, or `None`; every occupied old slot must be
    /// mapped). Out-of-range or empty old slots give empty new slots. The
    /// slots are
    /// - moved, when the writer owns the node ([`Inner::owned`]);
    /// - lent (copied bit for bit, no count changes), when the ledger
    ///   allows it ([`Ledger::may_lend`]): the old node joins the ledger;
    /// - cloned otherwise, and the old handle is dropped (by the ledger at
    ///   settlement, in a lending transaction).
    #[allow(unsafe_code)]
    fn rebuild(
        &mut self,
        layout: Layout,
        map: impl ExactSizeIterator<Item = Option<usize>>,
        lg: Option<&mut Ledger<V>>,
    ) {
        let generation = lg.as_ref().map_or(0, |l| l.generation);
        if self.owned(&lg) {
            let Some(body) = self.get_mut() else {
                unreachable!("rebuild: an owned node is unique")
            };
            let h = body.header_mut();
            let head = Head {
                prefix: std::mem::replace(&mut h.prefix, Prefix::EMPTY),
                count: h.count,
                terminal: h.terminal.take(),
                layout,
                generation,
            };
            let slots = body.slice_mut();
            self.0 = NodeArc::from_iter(
                head,
                map.map(|i| i.and_then(|i| slots.get_mut(i).and_then(Option::take))),
            );
            return;
        }
        let head = Head {
            prefix: self.prefix.clone(),
            count: self.count,
            terminal: self.terminal.clone(),
            layout,
            generation,
        };
        match lg {
            Some(l) if l.may_lend(self) => {
                let slots = self.slots();
                let mut lent = 0;
                let new = NodeArc::from_iter(
                    head,
                    map.map(|i| {
                        let s = i.and_then(|i| slots.get(i)).and_then(Option::as_ref)?;
                        lent += 1;
                        // SAFETY: `may_lend` established that the old node
                        // belongs to the base version alone; it joins the
                        // ledger below, which keeps it (and so the count
                        // of each lent child) alive until settlement, and
                        // settlement either frees it without dropping its
                        // slots (their counts pass to these copies) or
                        // gives each of its children one more count.
                        Some(unsafe { duplicate(s) })
                    }),
                );
                debug_assert_eq!(lent, self.num_children(), "rebuild: a slot was not mapped");
                let old = std::mem::replace(&mut self.0, new);
                l.lent_from(Inner(old));
            }
            lg => {
                self.prefetch_children(1);
                let slots = self.slots();
                let new = NodeArc::from_iter(
                    head,
                    map.map(|i| i.and_then(|i| slots.get(i).cloned().flatten())),
                );
                let old = Inner(std::mem::replace(&mut self.0, new));
                match lg {
                    Some(l) => l.defer(Slot::from(old)),
                    None => drop(old),
                }
            }
        }
    }

    /// The child at byte `b`, for writing (the node is made unique first).
    #[inline]
    pub(crate) fn child_mut(
        &mut self,
        b: u8,
        lg: Option<&mut Ledger<V>>,
    ) -> Option<&mut Option<Slot<V>>> {
        let i = self.find(b)?;
        let body = self.make_mut(lg);
        body.slice_mut().get_mut(i).filter(|s| s.is_some())
    }

    /// More slots (`cap`) in the same layout: the owned node's block grows
    /// where it is ([`NodeArc::grow`]: one reallocation, no slot visited);
    /// a node the writer does not own is copied into a larger one.
    fn grow(&mut self, cap: usize, lg: Option<&mut Ledger<V>>) {
        if self.owned(&lg) {
            self.0.grow(cap);
        } else {
            let layout = self.layout.clone();
            self.rebuild(layout, (0..cap).map(Some), lg);
        }
    }

    /// Adds a child at byte `b`, which must be absent. Grows the node (to
    /// the next capacity or layout) when it is full.
    pub(crate) fn add_child(&mut self, b: u8, slot: Slot<V>, mut lg: Option<&mut Ledger<V>>) {
        debug_assert!(self.child(b).is_none());
        let cap = self.slots().len();
        let n = self.num_children();
        if n == cap {
            match &self.layout {
                Layout::Small { .. } if n < SMALL_MAX => {
                    self.grow(small_growth(n), lg.as_deref_mut());
                }
                Layout::Small { keys, .. } => {
                    let mut index = Box::new([0u8; 256]);
                    for (i, &k) in keys.iter().enumerate() {
                        index[usize::from(k)] = (i + 1) as u8;
                    }
                    let layout = Layout::Medium {
                        index,
                        len: n as u8,
                    };
                    self.rebuild(layout, (0..n + MEDIUM_STEP).map(Some), lg.as_deref_mut());
                }
                Layout::Medium { .. } if n < MEDIUM_MAX => {
                    self.grow((n + MEDIUM_STEP).min(MEDIUM_MAX), lg.as_deref_mut());
                }
                Layout::Medium { index, .. } => {
                    let map: [u8; 256] = **index;
                    let layout = Layout::Large { len: n as u16 };
                    self.rebuild(
                        layout,
                        map.into_iter().map(|i| usize::from(i).checked_sub(1)),
                        lg.as_deref_mut(),
                    );
                }
                Layout::Large { .. } => {}
            }
        }
        let body = self.make_mut(lg);
        // The header first, then the slots (one allocation, two borrows).
        let (at, shift_from) = match &mut body.header_mut().layout {
            Layout::Small { keys, len } => {
                let n = usize::from(*len);
                let at = keys[..n].iter().position(|&k| k > b).unwrap_or(n);
                keys.copy_within(at..n, at + 1);
                keys[at] = b;
                *len += 1;
                (at, Some(n))
            }
            Layout::Medium { index, len } => {
                let at = usize::from(*len);
                *len += 1;
                index[usize::from(b)] = *len;
                (at, None)
            }
            Layout::Large { len } => {
                *len += 1;
                (usize::from(b), None)
            }
        };
        let slots = body.slice_mut();
        if let Some(n) = shift_from {
            slots[at..=n].rotate_right(1);
        }
        slots[at] = Some(slot);
    }

    /// Removes and returns the child at byte `b`, shrinking the node when
    /// it falls below its layout's size class.
    /// The caller disposes of the removed slot (through the ledger, in a
    /// lending transaction).
    pub(crate) fn remove_child(
        &mut self,
        b: u8,
        mut lg: Option<&mut Ledger<V>>,
    ) -> Option<Slot<V>> {
        let i = self.find(b)?;
        self.slots().get(i)?.as_ref()?;
        let body = self.make_mut(lg.as_deref_mut());
        // The header first, then the slots (one allocation, two borrows).
        enum Fill {
            /// Close the gap: `slots[i..n]` shift left by one.
            Shift(usize),
            /// Move the last slot (`slots[n]`) into the hole.
            Last(usize),
            Hole,
        }
        let fill = match &mut body.header_mut().layout {
            Layout::Small { keys, len } => {
                let n = usize::from(*len);
                keys.copy_within(i + 1..n, i);
                *len -= 1;
                Fill::Shift(n)
            }
            Layout::Medium { index, len } => {
                index[usize::from(b)] = 0;
                let last = usize::from(*len) - 1;
                *len -= 1;
                if i != last {
                    // The last slot moves into the hole: repoint its byte.
                    if let Some(e) = index.iter_mut().find(|e| usize::from(**e) == last + 1) {
                        *e = (i + 1) as u8;
                    }
                    Fill::Last(last)
                } else {
                    Fill::Hole
                }
            }
            Layout::Large { len } => {
                *len -= 1;
                Fill::Hole
            }
        };
        let slots = body.slice_mut();
        let removed = slots[i].take();
        match fill {
            Fill::Shift(n) => slots[i..n].rotate_left(1),
            Fill::Last(last) => slots.swap(i, last),
            Fill::Hole => {}
        }
        self.shrink(lg);
        removed
    }

    /// Moves a node that fell below its size class to the next smaller
    /// layout.
    fn shrink(&mut self, lg: Option<&mut Ledger<V>>) {
        match &self.layout {
            Layout::Medium { index, len } if usize::from(*len) <= MEDIUM_MIN => {
                let mut keys = [0u8; SMALL_MAX];
                let mut order = [0usize; SMALL_MAX];
                let mut n = 0;
                for (byte, &i) in index.iter().enumerate() {
                    if i != 0 {
                        keys[n] = byte as u8;
                        order[n] = usize::from(i) - 1;
                        n += 1;
                    }
                }
                let layout = Layout::Small { keys, len: n as u8 };
                self.rebuild(layout, order[..n].iter().map(|&i| Some(i)), lg);
            }
            Layout::Large { len } if usize::from(*len) <= LARGE_MIN => {
                let n = usize::from(*len);
                let mut index = Box::new([0u8; 256]);
                let mut order = Vec::with_capacity(n);
                for (byte, s) in self.slots().iter().enumerate() {
                    if s.is_some() {
                        order.push(byte);
                        index[byte] = order.len() as u8;
                    }
                }
                let layout = Layout::Medium {
                    index,
                    len: n as u8,
                };
                self.rebuild(layout, order.into_iter().map(Some), lg);
            }
            _ => {}
        }
    }
}
