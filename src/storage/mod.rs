//! The byte-level storage layer of durable mode, independent of the
//! database types: a file-system seam ([`fs`]), the write-ahead log
//! ([`log`]) and the snapshot container ([`snapfile`]). Payloads are opaque
//! bytes; the database encodes and decodes them.
//!
//! All integers on disk are little-endian; every checksum is CRC-32C
//! (Castagnoli).

pub mod fs;
mod lock;
pub mod log;
pub mod snapfile;

#[cfg(test)]
mod tests;

/// The largest log record payload, snapshot header or snapshot record
/// (64 MiB). Larger lengths read from disk are treated as damage, so no
/// allocation is ever sized by an unchecked length.
pub const MAX_RECORD: usize = 64 << 20;
