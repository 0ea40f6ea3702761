//! Multi-process cluster tests (feature `http`).
