//! Indexers: typed closures that turn an object into its index keys.
//!
//! An [`Indexer<T, K>`] extracts zero, one or several keys of query type `K`
//! from a `T` and writes them, encoded (see [`key`]), into a [`KeySink`].
//! The constructors cover the usual shapes — strings (optionally
//! case-insensitive), integers, bools, UUIDs, optional fields, multi-value
//! fields, maps, compound and compound-multi keys, conditions and
//! field-set checks — and [`Indexer::custom`] takes any closure.

pub mod key;
mod keylog;

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::sync::Arc;

use key::Encode;
pub(crate) use keylog::KeyLog;

/// Where a [`Indexer::custom`] closure puts the keys of one object: only
/// keys of the index's key type `K` are accepted.
///
/// ```
/// # use pandodb::{Indexer, KeySink};
/// struct Doc { words: String }
/// let by_word: Indexer<Doc, str> = Indexer::custom(|d: &Doc, keys: &mut KeySink<str>| {
///     d.words.split_whitespace().for_each(|w| keys.add(w));
/// });
/// # let _ = by_word;
/// ```
///
/// An index declared with one key type cannot be fed another:
///
/// ```compile_fail
/// # use pandodb::{Indexer, KeySink};
/// struct Doc { id: u64, name: String }
/// let by_id: Indexer<Doc, u64> = Indexer::custom(|d: &Doc, keys: &mut KeySink<u64>| {
///     keys.add(d.name.as_str()); // a string into a u64 index
/// });
/// ```
pub struct KeySink<'a, K: ?Sized> {
    buf: &'a mut KeyBuf,
    _key: PhantomData<fn(&K)>,
}

impl<K: Encode + ?Sized> KeySink<'_, K> {
    /// Adds one key.
    pub fn add(&mut self, key: &K) {
        self.buf.add(key);
    }

    /// Number of keys added so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether no key was added yet.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

impl<K: ?Sized> std::fmt::Debug for KeySink<'_, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySink")
            .field("keys", &self.buf.len())
            .finish()
    }
}

/// The keys one object yields for one index, encoded back to back (the
/// untyped buffer behind a [`KeySink`]).
#[derive(Default, Debug)]
pub(crate) struct KeyBuf {
    buf: Vec<u8>,
    ends: Vec<usize>,
    fold: bool,
}

impl KeyBuf {
    /// Adds one key.
    pub(crate) fn add<K: Encode + ?Sized>(&mut self, key: &K) {
        if self.fold {
            key.encode_folded(&mut self.buf, false);
        } else {
            key.encode(&mut self.buf);
        }
        self.ends.push(self.buf.len());
    }

    /// Adds one key that `encode` writes (a compound key of parts).
    fn push_with(&mut self, encode: impl FnOnce(&mut Vec<u8>)) {
        encode(&mut self.buf);
        self.ends.push(self.buf.len());
    }

    pub(crate) fn clear(&mut self, fold: bool) {
        self.buf.clear();
        self.ends.clear();
        self.fold = fold;
    }

    /// Number of keys added.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether no key was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The keys, in the order added.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let k = &self.buf[start..end];
            start = end;
            k
        })
    }

    /// The `i`-th key.
    fn key_at(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }

    /// Whether `key` is among the keys, by binary search: the keys must be
    /// sorted (as [`KeyBuf::dedup`] leaves them).
    pub(crate) fn contains_sorted(&self, key: &[u8]) -> bool {
        let (mut lo, mut hi) = (0, self.ends.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.key_at(mid).cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }

    /// Sorts the keys and drops duplicates (a multi-value field may repeat).
    pub(crate) fn dedup(&mut self) {
        if self.ends.len() < 2 {
            return;
        }
        let mut keys: Vec<Vec<u8>> = self.keys().map(<[u8]>::to_vec).collect();
        keys.sort();
        keys.dedup();
        self.buf.clear();
        self.ends.clear();
        for k in keys {
            self.buf.extend_from_slice(&k);
            self.ends.push(self.buf.len());
        }
    }
}

type ExtractFn<T> = dyn Fn(&T, &mut KeyBuf) + Send + Sync;

/// Extracts the keys of type `K` that an object of type `T` has in one index.
///
/// An indexer must be a pure function of the object: the keys of a stored
/// object are computed again when it is replaced or deleted, to find its
/// index entries.
///
/// ```
/// use pandodb::Indexer;
/// struct User { name: String, age: u8, tags: Vec<String>, nick: Option<String> }
/// let by_name = Indexer::string(|u: &User| u.name.as_str());
/// let by_age = Indexer::value(|u: &User| u.age);
/// let by_tag = Indexer::strings(|u: &User| u.tags.as_slice());
/// let by_nick = Indexer::optional_string(|u: &User| u.nick.as_deref());
/// let by_name_age = Indexer::value(|u: &User| (u.name.clone(), u.age));
/// # let _ = (by_name, by_age, by_tag, by_nick, by_name_age);
/// ```
pub struct Indexer<T, K: ?Sized> {
    pub(crate) extract: Arc<ExtractFn<T>>,
    pub(crate) case_insensitive: bool,
    _key: PhantomData<fn(&K)>,
}

impl<T, K: ?Sized> Clone for Indexer<T, K> {
    fn clone(&self) -> Self {
        Indexer {
            extract: self.extract.clone(),
            case_insensitive: self.case_insensitive,
            _key: PhantomData,
        }
    }
}

impl<T: 'static, K: Encode + ?Sized + 'static> Indexer<T, K> {
    /// Any closure: it adds zero or more keys of type `K` to the sink.
    ///
    /// ```
    /// # use pandodb::Indexer;
    /// struct Doc { words: String }
    /// let by_word: Indexer<Doc, str> = Indexer::custom(|d: &Doc, keys| {
    ///     for w in d.words.split_whitespace() {
    ///         keys.add(w);
    ///     }
    /// });
    /// # let _ = by_word;
    /// ```
    pub fn custom(f: impl Fn(&T, &mut KeySink<'_, K>) + Send + Sync + 'static) -> Self {
        Indexer {
            extract: Arc::new(move |t: &T, buf: &mut KeyBuf| {
                f(
                    t,
                    &mut KeySink {
                        buf,
                        _key: PhantomData,
                    },
                )
            }),
            case_insensitive: false,
            _key: PhantomData,
        }
    }
}

impl<T: 'static, K: Encode + 'static> Indexer<T, K> {
    /// One owned key per object: integers of any width, `bool`, [`Uuid`](key::Uuid),
    /// `String`, and tuples of these (compound keys, queryable by any
    /// leading subset through [`Index::leading`](crate::Index::leading)).
    pub fn value(f: impl Fn(&T) -> K + Send + Sync + 'static) -> Self {
        Self::custom(move |t, keys| keys.add(&f(t)))
    }

    /// An optional field: no key when it is `None` (allow-missing).
    pub fn optional(f: impl Fn(&T) -> Option<K> + Send + Sync + 'static) -> Self {
        Self::custom(move |t, keys| {
            if let Some(k) = f(t) {
                keys.add(&k);
            }
        })
    }

    /// A multi-value field: one key per item.
    pub fn multi<I: IntoIterator<Item = K>>(f: impl Fn(&T) -> I + Send + Sync + 'static) -> Self {
        Self::custom(move |t, keys| {
            for k in f(t) {
                keys.add(&k);
            }
        })
    }
}

impl<T: 'static> Indexer<T, bool> {
    /// A condition: the key is the predicate's result, so a query for `true`
    /// finds the objects that satisfy it.
    pub fn conditional(f: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
        Self::value(f)
    }

    /// Whether an optional field is set: key `true` when present.
    pub fn field_set<F: ?Sized>(f: impl Fn(&T) -> Option<&F> + Send + Sync + 'static) -> Self {
        Self::custom(move |t, keys| keys.add(&f(t).is_some()))
    }
}

impl<T: 'static, A: Encode + 'static, B: Encode + 'static> Indexer<T, (A, B)> {
    /// Compound-multi: the cartesian product of two multi-value fields,
    /// returned as owned vectors (computed, or cloned, on every extraction:
    /// prefer [`Indexer::compound_multi_ref`] for fields of the object).
    pub fn compound_multi(
        fa: impl Fn(&T) -> Vec<A> + Send + Sync + 'static,
        fb: impl Fn(&T) -> Vec<B> + Send + Sync + 'static,
    ) -> Self {
        Self::custom(move |t, keys| {
            let bs = fb(t);
            for a in fa(t) {
                for b in &bs {
                    keys.buf.push_with(|out| {
                        a.encode(out);
                        b.encode(out);
                    });
                }
            }
        })
    }
}

impl<T: 'static, A: Encode + 'static, B: Encode + 'static> Indexer<T, (A, B)> {
    /// Compound-multi over two multi-value fields borrowed from the object
    /// (nothing is cloned): one key `(a, b)` per value `a` of the first and
    /// `b` of the second.
    ///
    /// ```
    /// # use pandodb::{Db, Indexer, Query, Schema};
    /// struct Shirt { id: u32, colors: Vec<String>, sizes: Vec<u8> }
    /// let mut schema = Schema::builder();
    /// let mut t = schema.table::<Shirt>("shirt");
    /// t.primary("id", Indexer::value(|s: &Shirt| s.id));
    /// let by_color_size = t.index(
    ///     "color_size",
    ///     Indexer::compound_multi_ref(|s: &Shirt| s.colors.as_slice(), |s: &Shirt| s.sizes.as_slice()),
    /// );
    /// let shirts = schema.add(t)?;
    /// let db = Db::new(schema.build()?);
    /// let mut w = db.write(&[&shirts]);
    /// w.insert(&shirts, Shirt { id: 1, colors: vec!["red".into(), "blue".into()], sizes: vec![1, 2] })?;
    /// assert_eq!(w.index_len(&by_color_size)?, 4);
    /// assert_eq!(w.count(&by_color_size, &("blue".to_string(), 2))?, 1);
    /// # Ok::<(), pandodb::Error>(())
    /// ```
    pub fn compound_multi_ref(
        fa: impl for<'a> Fn(&'a T) -> &'a [A] + Send + Sync + 'static,
        fb: impl for<'a> Fn(&'a T) -> &'a [B] + Send + Sync + 'static,
    ) -> Self {
        Self::custom(move |t, keys| {
            let bs = fb(t);
            for a in fa(t) {
                for b in bs {
                    keys.buf.push_with(|out| {
                        a.encode(out);
                        b.encode(out);
                    });
                }
            }
        })
    }
}

impl<T: 'static, A: Encode + Ord + 'static> Indexer<T, (A, A)> {
    /// The unordered pairs of distinct values of one multi-value field,
    /// borrowed from the object: one key `(a, b)` per two different values
    /// `a < b` (never `(a, a)`, never both `(a, b)` and `(b, a)`): for `n`
    /// distinct values, `n (n - 1) / 2` keys, where the cartesian product
    /// of the field with itself ([`Indexer::compound_multi`]) stores `n²`.
    /// Query a pair with its smaller value first; an object with one value
    /// has no key. For "objects with both `x` and `y`" without a pair index
    /// declared in advance, see [`Filter`](crate::Filter).
    ///
    /// `(&str, &str)` keys encode exactly as `(String, String)` ones (every
    /// `&E` encodes as `E`, and `String` as `str`), so a pair of strings is
    /// looked up without allocating through
    /// [`Index::borrowed`](crate::Index::borrowed).
    ///
    /// ```
    /// # use pandodb::{Db, Indexer, Query, Schema};
    /// struct Doc { id: u32, tags: Vec<String> }
    /// let mut schema = Schema::builder();
    /// let mut t = schema.table::<Doc>("doc");
    /// t.primary("id", Indexer::value(|d: &Doc| d.id));
    /// let by_pair = t.index("tag_pair", Indexer::pairs(|d: &Doc| d.tags.as_slice()));
    /// let docs = schema.add(t)?;
    /// let db = Db::new(schema.build()?);
    /// let mut w = db.write(&[&docs]);
    /// let tags = ["x", "y", "z", "y"].map(String::from).to_vec();
    /// w.insert(&docs, Doc { id: 1, tags })?;
    /// assert_eq!(w.index_len(&by_pair)?, 3); // (x, y), (x, z), (y, z)
    /// assert_eq!(w.count(&by_pair.borrowed(), &("x", "z"))?, 1);
    /// assert_eq!(w.count(&by_pair.borrowed(), &("z", "x"))?, 0); // smaller first
    /// # Ok::<(), pandodb::Error>(())
    /// ```
    pub fn pairs(f: impl for<'a> Fn(&'a T) -> &'a [A] + Send + Sync + 'static) -> Self {
        Self::custom(move |t, keys| {
            let mut vals: Vec<&A> = f(t).iter().collect();
            vals.sort_unstable();
            vals.dedup();
            for (i, a) in vals.iter().enumerate() {
                for b in &vals[i + 1..] {
                    keys.buf.push_with(|out| {
                        a.encode(out);
                        b.encode(out);
                    });
                }
            }
        })
    }
}

impl<T: 'static> Indexer<T, str> {
    /// A string field, borrowed from the object.
    pub fn string(f: impl for<'a> Fn(&'a T) -> &'a str + Send + Sync + 'static) -> Self {
        Self::custom(move |t, keys| keys.add(f(t)))
    }

    /// A string field indexed case-insensitively (queries are folded too).
    pub fn string_ci(f: impl for<'a> Fn(&'a T) -> &'a str + Send + Sync + 'static) -> Self {
        let mut ix = Self::string(f);
        ix.case_insensitive = true;
        ix
    }

    /// An optional string field: no key when absent.
    pub fn optional_string(
        f: impl for<'a> Fn(&'a T) -> Option<&'a str> + Send + Sync + 'static,
    ) -> Self {
        Self::custom(move |t, keys| {
            if let Some(s) = f(t) {
                keys.add(s);
            }
        })
    }

    /// A multi-value string field (`Vec<String>`): one key per item.
    pub fn strings(f: impl for<'a> Fn(&'a T) -> &'a [String] + Send + Sync + 'static) -> Self {
        Self::custom(move |t, keys| {
            for s in f(t) {
                keys.add(s.as_str());
            }
        })
    }

    /// The keys of a string map: one key per map key.
    pub fn map_keys<M: StringMap + 'static>(
        f: impl for<'a> Fn(&'a T) -> &'a M + Send + Sync + 'static,
    ) -> Self {
        Self::custom(move |t, keys| f(t).each(&mut |k, _| keys.add(k)))
    }
}

impl<T: 'static> Indexer<T, (String, String)> {
    /// The entries of a string map: one `(key, value)` key per entry.
    pub fn map_entries<M: StringMap + 'static>(
        f: impl for<'a> Fn(&'a T) -> &'a M + Send + Sync + 'static,
    ) -> Self {
        Self::custom(move |t, keys| {
            f(t).each(&mut |k, v| {
                keys.buf.push_with(|out| {
                    k.encode(out);
                    v.encode(out);
                });
            })
        })
    }
}

impl<T: 'static> Indexer<T, [u8]> {
    /// A byte-string field.
    pub fn bytes(f: impl for<'a> Fn(&'a T) -> &'a [u8] + Send + Sync + 'static) -> Self {
        Self::custom(move |t, keys| keys.add(f(t)))
    }
}

/// A map from strings to strings that a map indexer can walk; implemented
/// for `BTreeMap<String, String>` and `HashMap<String, String>`.
///
/// ```
/// # use pandodb::Indexer;
/// # use std::collections::BTreeMap;
/// struct Node { labels: BTreeMap<String, String> }
/// let by_label = Indexer::map_entries(|n: &Node| &n.labels);
/// let by_label_key = Indexer::map_keys(|n: &Node| &n.labels);
/// # let _ = (by_label, by_label_key);
/// ```
pub trait StringMap {
    /// Calls `f` with every entry.
    fn each(&self, f: &mut dyn FnMut(&str, &str));
}

impl StringMap for BTreeMap<String, String> {
    fn each(&self, f: &mut dyn FnMut(&str, &str)) {
        for (k, v) in self {
            f(k, v);
        }
    }
}

impl<S: std::hash::BuildHasher> StringMap for HashMap<String, String, S> {
    fn each(&self, f: &mut dyn FnMut(&str, &str)) {
        for (k, v) in self {
            f(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::KeyBuf;

    #[test]
    fn contains_sorted_finds_exactly_the_keys() {
        let mut sink = KeyBuf::default();
        sink.clear(false);
        for k in ["pear", "apple", "fig", "apple", "kiwi", ""] {
            sink.add(k);
        }
        sink.dedup();
        let keys: Vec<Vec<u8>> = sink.keys().map(<[u8]>::to_vec).collect();
        assert_eq!(keys.len(), 5);
        for k in &keys {
            assert!(sink.contains_sorted(k));
        }
        let mut absent = KeyBuf::default();
        for k in ["apples", "a", "zebra", "fi"] {
            absent.clear(false);
            absent.add(k);
            let enc = absent.keys().next().unwrap().to_vec();
            assert!(!sink.contains_sorted(&enc), "{k}");
        }
        sink.clear(false);
        assert!(!sink.contains_sorted(b""));
    }
}
