//! Order-preserving key encodings: every index key is bytes whose
//! lexicographic order equals the order of the values they encode.
//!
//! The rules (also in `docs/ARCHITECTURE.md`):
//! - unsigned integers: big-endian, fixed width;
//! - signed integers: big-endian with the sign bit flipped;
//! - `bool`: one byte, 0 or 1;
//! - strings and byte strings: `0x00` escaped as `0x00 0xFF`, then the
//!   terminator `0x00 0x00` (so a value that is a prefix of another sorts
//!   first, and no complete encoding is a prefix of another);
//! - [`Uuid`]: its 16 bytes;
//! - tuples: the concatenation of their components, so a query by the
//!   leading components is a prefix query.
//!
//! Every complete encoding is *self-delimiting*: `enc(a)` is a prefix of
//! `enc(b)` only when `a == b`. That makes "all keys equal to `a`" the same
//! as "all keys starting with `enc(a)`", for non-unique index keys (value
//! followed by the primary key) and for compound keys alike.

/// A value that can be an index key, encoded so that byte order equals value
/// order.
///
/// ```
/// use pandodb::Encode;
/// assert!((-5i64).to_key() < 3i64.to_key());
/// assert!("a".to_key() < "a\0".to_key());
/// assert!(("a", 9u8).to_key() < ("ab", 0u8).to_key());
/// ```
pub trait Encode {
    /// Appends the complete (self-delimiting) encoding to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Appends the encoding used for a *prefix* query: for strings and byte
    /// strings the escaped bytes without the terminator, so that
    /// `"ab"` matches `"abc"`; for everything else the complete encoding.
    fn encode_prefix(&self, out: &mut Vec<u8>) {
        self.encode(out);
    }

    /// Appends the encoding of the case-folded value (lowercase strings),
    /// complete or as a prefix; used by case-insensitive string indexes.
    /// Types other than strings encode themselves unchanged.
    fn encode_folded(&self, out: &mut Vec<u8>, prefix: bool) {
        if prefix {
            self.encode_prefix(out)
        } else {
            self.encode(out)
        }
    }

    /// The complete encoding as a new vector.
    fn to_key(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len() + 2);
    // Most keys hold no 0x00: one word-at-a-time search, one copy.
    if !bytes.contains(&0) {
        out.extend_from_slice(bytes);
        return;
    }
    for chunk in bytes.split_inclusive(|&b| b == 0) {
        match chunk.split_last() {
            Some((0, head)) => {
                out.extend_from_slice(head);
                out.extend_from_slice(&[0, 0xFF]);
            }
            _ => out.extend_from_slice(chunk),
        }
    }
}

const TERMINATOR: [u8; 2] = [0, 0];

impl Encode for str {
    fn encode(&self, out: &mut Vec<u8>) {
        escape(self.as_bytes(), out);
        out.extend_from_slice(&TERMINATOR);
    }
    fn encode_prefix(&self, out: &mut Vec<u8>) {
        escape(self.as_bytes(), out);
    }
    fn encode_folded(&self, out: &mut Vec<u8>, prefix: bool) {
        // Per character, not `str::to_lowercase`: the latter depends on
        // context (a final sigma folds differently at the end of a word), so
        // a query prefix could fold differently from the stored value.
        let lower: String = self.chars().flat_map(char::to_lowercase).collect();
        if prefix {
            lower.as_str().encode_prefix(out)
        } else {
            lower.as_str().encode(out)
        }
    }
}

impl Encode for String {
    fn encode(&self, out: &mut Vec<u8>) {
        self.as_str().encode(out);
    }
    fn encode_prefix(&self, out: &mut Vec<u8>) {
        self.as_str().encode_prefix(out);
    }
    fn encode_folded(&self, out: &mut Vec<u8>, prefix: bool) {
        self.as_str().encode_folded(out, prefix);
    }
}

impl Encode for [u8] {
    fn encode(&self, out: &mut Vec<u8>) {
        escape(self, out);
        out.extend_from_slice(&TERMINATOR);
    }
    fn encode_prefix(&self, out: &mut Vec<u8>) {
        escape(self, out);
    }
}

impl Encode for Vec<u8> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.as_slice().encode(out);
    }
    fn encode_prefix(&self, out: &mut Vec<u8>) {
        self.as_slice().encode_prefix(out);
    }
}

impl Encode for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl Encode for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
        }
    )*};
}
unsigned!(u8, u16, u32, u64, u128);

impl Encode for usize {
    fn encode(&self, out: &mut Vec<u8>) {
        (*self as u64).encode(out);
    }
}

macro_rules! signed {
    ($($t:ty => $u:ty),*) => {$(
        impl Encode for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                let flipped = (*self as $u) ^ (1 << (<$u>::BITS - 1));
                out.extend_from_slice(&flipped.to_be_bytes());
            }
        }
    )*};
}
signed!(i8 => u8, i16 => u16, i32 => u32, i64 => u64, i128 => u128);

impl Encode for isize {
    fn encode(&self, out: &mut Vec<u8>) {
        (*self as i64).encode(out);
    }
}

impl<E: Encode + ?Sized> Encode for &E {
    fn encode(&self, out: &mut Vec<u8>) {
        (**self).encode(out);
    }
    fn encode_prefix(&self, out: &mut Vec<u8>) {
        (**self).encode_prefix(out);
    }
}

macro_rules! tuple {
    ($($name:ident $idx:tt),+ ; $last:ident $lidx:tt) => {
        impl<$($name: Encode,)+ $last: Encode> Encode for ($($name,)+ $last) {
            fn encode(&self, out: &mut Vec<u8>) {
                $(self.$idx.encode(out);)+
                self.$lidx.encode(out);
            }
            /// The leading components complete, the last one as a prefix.
            fn encode_prefix(&self, out: &mut Vec<u8>) {
                $(self.$idx.encode(out);)+
                self.$lidx.encode_prefix(out);
            }
        }
    };
}
impl<A: Encode> Encode for (A,) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
    }
    fn encode_prefix(&self, out: &mut Vec<u8>) {
        self.0.encode_prefix(out);
    }
}
tuple!(A 0; B 1);
tuple!(A 0, B 1; C 2);
tuple!(A 0, B 1, C 2; D 3);

/// A 16-byte UUID as an index value. Its key is the 16 raw bytes; queries by
/// a prefix of its hex form use [`Query::uuid_prefix`](crate::Query::uuid_prefix).
///
/// ```
/// use pandodb::Uuid;
/// let u = Uuid::parse("3fa85f64-5717-4562-b3fc-2c963f66afa6")?;
/// assert_eq!(u.to_string(), "3fa85f64-5717-4562-b3fc-2c963f66afa6");
/// assert!(Uuid::parse("3fa8").is_err());
/// # Ok::<(), pandodb::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// Parses the hyphenated or plain 32-digit hex form.
    pub fn parse(s: &str) -> Result<Self, crate::Error> {
        let hex: Vec<u8> = s.bytes().filter(|&b| b != b'-').collect();
        if hex.len() != 32 {
            return Err(crate::Error::InvalidKey(format!(
                "UUID {s:?} must have 32 hex digits, has {}",
                hex.len()
            )));
        }
        let mut out = [0u8; 16];
        for (i, pair) in hex.chunks(2).enumerate() {
            out[i] = (hex_digit(pair[0], s)? << 4) | hex_digit(pair[1], s)?;
        }
        Ok(Uuid(out))
    }
}

impl std::fmt::Display for Uuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

fn hex_digit(c: u8, whole: &str) -> Result<u8, crate::Error> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(crate::Error::InvalidKey(format!(
            "{whole:?} is not hex (byte {:?})",
            char::from(c)
        ))),
    }
}

impl Encode for Uuid {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}

/// A prefix of a UUID's hex form (hyphens allowed), for prefix queries on a
/// UUID index. An odd number of digits matches every UUID whose next
/// nibble completes it.
///
/// ```
/// use pandodb::UuidPrefix;
/// assert!(UuidPrefix::parse("3fa").is_ok());
/// assert!(UuidPrefix::parse("3fz").is_err());
/// ```
#[derive(Clone, Debug)]
pub struct UuidPrefix {
    bytes: Vec<u8>,
    /// A trailing high nibble, when the prefix has an odd number of digits.
    half: Option<u8>,
}

impl UuidPrefix {
    /// Parses a hex prefix such as `"3fa8"` or `"3fa85f64-57"`.
    pub fn parse(s: &str) -> Result<Self, crate::Error> {
        let hex: Vec<u8> = s.bytes().filter(|&b| b != b'-').collect();
        if hex.len() > 32 {
            return Err(crate::Error::InvalidKey(format!(
                "UUID prefix {s:?} is longer than 32 hex digits"
            )));
        }
        let mut bytes = Vec::with_capacity(16);
        for pair in hex.chunks_exact(2) {
            bytes.push((hex_digit(pair[0], s)? << 4) | hex_digit(pair[1], s)?);
        }
        let half = match hex.len() % 2 {
            1 => Some(hex_digit(hex[hex.len() - 1], s)? << 4),
            _ => None,
        };
        Ok(UuidPrefix { bytes, half })
    }

    /// The key range `[lo, hi)` (hi `None`: unbounded) of matching UUIDs.
    pub(crate) fn key_range(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut lo = self.bytes.clone();
        let hi = match self.half {
            Some(nibble) => {
                lo.push(nibble);
                match nibble.checked_add(0x10) {
                    Some(next) => {
                        let mut hi = self.bytes.clone();
                        hi.push(next);
                        Some(hi)
                    }
                    None => successor(&self.bytes),
                }
            }
            None => successor(&self.bytes),
        };
        (lo, hi)
    }
}

/// A readable form of an encoded key for messages: an escaped, terminated
/// string is shown as the string; anything else as hex.
pub(crate) fn display(key: &[u8]) -> String {
    if let Some(body) = key.strip_suffix(&TERMINATOR) {
        let mut raw = Vec::with_capacity(body.len());
        let mut it = body.iter();
        while let Some(&b) = it.next() {
            if b == 0 && it.next() != Some(&0xFF) {
                return hex(key);
            }
            raw.push(b);
        }
        if let Ok(s) = String::from_utf8(raw) {
            return s;
        }
    }
    hex(key)
}

fn hex(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// The smallest byte string greater than every string starting with `p`
/// (`None` when `p` is empty or all `0xFF`).
pub(crate) fn successor(p: &[u8]) -> Option<Vec<u8>> {
    let mut s = p.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xFF {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ord_preserved<T: Encode + Ord>(a: &T, b: &T) {
        assert_eq!(a.cmp(b), a.to_key().cmp(&b.to_key()));
    }

    fn self_delimiting<T: Encode + Eq>(a: &T, b: &T) {
        assert_eq!(a == b, b.to_key().starts_with(&a.to_key()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        #[test]
        fn ints(a: i64, b: i64, c: i8, d: i8, e: u32, f: u32, g: i128, h: i128) {
            ord_preserved(&a, &b);
            ord_preserved(&c, &d);
            ord_preserved(&e, &f);
            ord_preserved(&g, &h);
        }

        #[test]
        fn strings_with_zero_bytes(
            a in proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(0xFFu8), any::<u8>()], 0..6),
            b in proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(0xFFu8), any::<u8>()], 0..6),
        ) {
            ord_preserved(&a, &b);
            self_delimiting(&a, &b);
            // A prefix query for `a` matches exactly the values starting with `a`.
            let mut p = Vec::new();
            a.encode_prefix(&mut p);
            prop_assert_eq!(b.starts_with(&a), b.to_key().starts_with(&p));
            let sa = String::from_utf8_lossy(&a).into_owned();
            let sb = String::from_utf8_lossy(&b).into_owned();
            ord_preserved(&sa, &sb);
        }

        #[test]
        fn compound_first_component_prefix(
            a in "[ab\\x00]{0,4}", b in "[ab\\x00]{0,4}", x: i16, y: i16, t: bool, u: bool,
        ) {
            ord_preserved(&(a.clone(), x), &(b.clone(), y));
            ord_preserved(&(a.clone(), x, t), &(b.clone(), y, u));
            self_delimiting(&(a.clone(), x), &(b.clone(), y));
            // Leading-subset query: enc((a,)) is a prefix of enc((b, y)) iff a == b.
            prop_assert_eq!(a == b, (b.clone(), y).to_key().starts_with(&(a.clone(),).to_key()));
        }

        #[test]
        fn uuid_hex_prefix(bytes: [u8; 16], len in 0usize..=32) {
            let u = Uuid(bytes);
            let hex: String = u.to_string().chars().filter(|c| *c != '-').collect();
            prop_assert_eq!(Uuid::parse(&hex).unwrap(), u);
            let p = UuidPrefix::parse(&hex[..len]).unwrap();
            let (lo, hi) = p.key_range();
            let k = u.to_key();
            prop_assert!(k >= lo);
            prop_assert!(hi.is_none_or(|h| k < h));
        }
    }

    #[test]
    fn bool_and_edge_values() {
        ord_preserved(&false, &true);
        ord_preserved(&i64::MIN, &i64::MAX);
        ord_preserved(&-1i64, &0i64);
        ord_preserved(&"", &"\0");
        assert!(Uuid::parse("not-a-uuid").is_err());
        assert!(UuidPrefix::parse("zz").is_err());
    }
}
