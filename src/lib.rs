//! # pandodb
//!
//! An embedded, in-memory, MVCC database engine built on persistent
//! adaptive radix trees. Every committed version shares structure with the
//! last; readers hold a root and are never blocked.
//!
//! The foundation is [`tree::Tree`], a persistent adaptive radix tree over
//! byte keys with O(1) clones, copy-on-write batched mutation, subtree
//! counts and ordered, double-ended iteration.

#![warn(missing_docs)]

pub mod tree;
