//! Persistence: snapshots (`snapshot.rs`) and the byte formats of pandodb's
//! own records (`format.rs`), on top of the storage layer (`crate::storage`).

pub(crate) mod durable;
pub(crate) mod format;
pub(crate) mod history;
pub(crate) mod recover;
pub(crate) mod snapshot;

pub use durable::Durability;
pub use snapshot::SnapshotInfo;

#[cfg(test)]
mod tests;
