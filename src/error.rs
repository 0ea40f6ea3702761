//! The one error type of pandodb.

use std::fmt;

/// Everything that can go wrong, as one non-exhaustive enum.
///
/// ```
/// use pandodb::Error;
/// let e = Error::UniqueViolation { table: "person".into(), index: "email".into(), key: "a@b".into() };
/// assert_eq!(e.to_string(), "unique index person.email already holds key \"a@b\"");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The schema is not valid (no primary index, duplicate names, ...).
    Schema(String),
    /// A table handle that does not belong to this database's schema.
    UnknownTable(String),
    /// A write to a table the write transaction did not name.
    TableNotLocked(String),
    /// An object would give a unique index a key it already holds for
    /// another object. The transaction is left as it was.
    UniqueViolation {
        /// Table name.
        table: String,
        /// Index name.
        index: String,
        /// The conflicting key, printed lossily.
        key: String,
    },
    /// An indexer yielded no key (or several) where exactly one is required.
    MissingKey {
        /// Table name.
        table: String,
        /// Index name.
        index: String,
        /// What was wrong.
        detail: String,
    },
    /// A query argument that cannot be a key (e.g. malformed UUID text).
    InvalidKey(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Schema(m) => write!(f, "invalid schema: {m}"),
            Error::UnknownTable(t) => {
                write!(f, "table {t:?} is not part of this database's schema")
            }
            Error::TableNotLocked(t) => {
                write!(
                    f,
                    "table {t:?} was not named when the write transaction began"
                )
            }
            Error::UniqueViolation { table, index, key } => {
                write!(f, "unique index {table}.{index} already holds key {key:?}")
            }
            Error::MissingKey {
                table,
                index,
                detail,
            } => write!(f, "index {table}.{index}: {detail}"),
            Error::InvalidKey(m) => write!(f, "invalid key: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// `Result` with pandodb's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
