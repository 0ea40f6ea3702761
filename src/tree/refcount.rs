//! The reference-count protocol shared by the tree's two handle types
//! (`leaf::Leaf` and `body::NodeArc`): a `u32` count in the allocation,
//! changed as `std::sync::Arc` changes its own.

use std::sync::atomic::{AtomicU32, Ordering};

/// Counts above this abort the process (as `std::sync::Arc` does near
/// `isize::MAX`): an overflow would free an allocation still in use.
const MAX_COUNT: u32 = u32::MAX / 2;

/// Takes one more count for a new handle made from an existing one.
#[inline]
pub(crate) fn retain(count: &AtomicU32) {
    // Relaxed, as in `std::sync::Arc`: the existing handle already keeps
    // the allocation alive.
    if count.fetch_add(1, Ordering::Relaxed) > MAX_COUNT {
        std::process::abort();
    }
}

/// Gives a handle's count back; `true` when it was the last one, and the
/// caller must then free the allocation.
#[inline]
pub(crate) fn release(count: &AtomicU32) -> bool {
    if count.fetch_sub(1, Ordering::Release) != 1 {
        return false;
    }
    // Every other handle's last use happened before its `Release`
    // decrement. This `Acquire` load reads the value our decrement wrote,
    // the end of the release sequence of all of them, so their uses happen
    // before the free. (A load rather than `fence(Acquire)`: the same
    // guarantee, and ThreadSanitizer, which does not model fences, can
    // check it; `std::sync::Arc` does the same under TSan.)
    count.load(Ordering::Acquire);
    true
}
