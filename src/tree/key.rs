//! [`Key`]: a stored key, owned (a counted handle on its leaf).

use std::ops::Deref;

use super::node::Leaf;

/// An owned key: a handle on the stored leaf, cheap to clone (one
/// reference count), dereferencing to the key bytes.
///
/// ```
/// # use pandodb::tree::Tree;
/// let t: Tree<u8> = [("k", 1)].into_iter().collect();
/// let (key, value) = t.owned_iter().next().unwrap();
/// assert_eq!((&*key, value), (&b"k"[..], 1));
/// ```
pub struct Key<V>(Leaf<V>);

impl<V> Key<V> {
    /// A key handle on leaf `l` (one more count on it).
    #[inline]
    pub(crate) fn of(l: &Leaf<V>) -> Self {
        Key(l.clone())
    }

    /// The value stored with this key.
    #[inline]
    pub(crate) fn value(&self) -> &V {
        self.0.value()
    }
}

impl<V> Clone for Key<V> {
    fn clone(&self) -> Self {
        Key(self.0.clone())
    }
}

impl<V> Deref for Key<V> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.key()
    }
}

impl<V> AsRef<[u8]> for Key<V> {
    fn as_ref(&self) -> &[u8] {
        self.0.key()
    }
}

impl<V> PartialEq for Key<V> {
    fn eq(&self, other: &Self) -> bool {
        self.0.key() == other.0.key()
    }
}

impl<V> Eq for Key<V> {}

impl<V> PartialOrd for Key<V> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<V> Ord for Key<V> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.key().cmp(other.0.key())
    }
}

impl<V> std::hash::Hash for Key<V> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.key().hash(state);
    }
}

impl<V> std::fmt::Debug for Key<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.0.key()))
    }
}
