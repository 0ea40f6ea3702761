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
    /// No table (or index) of this name in the schema.
    UnknownTable(String),
    /// A table or index handle made by another [`Schema`](crate::Schema)
    /// instance than this database's. Handles are tied to the schema
    /// instance that made them, even when another was built from the same
    /// declarations: look them up in this database's schema instead
    /// ([`Schema::table`](crate::Schema::table),
    /// [`Table::index`](crate::Table::index)).
    ForeignHandle(String),
    /// A typed request for something of another type: a table looked up
    /// with another row type, an index with another key type, a change
    /// record read as another type.
    TypeMismatch {
        /// What was asked for (a table, an index, a change of a table).
        what: String,
        /// The type requested.
        requested: &'static str,
    },
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
    /// A conditional write found the object in another state than the one
    /// expected. The transaction is left as it was.
    Conflict {
        /// Table name.
        table: String,
        /// The object's primary key, printed lossily.
        key: String,
        /// The revision the caller expected (`None`: expected no object).
        expected: Option<u64>,
        /// The object's current modified revision (`None`: there is none).
        current: Option<u64>,
    },
    /// A change-feed subscription asked for revisions that are no longer
    /// retained.
    Compacted {
        /// The oldest revision still retained.
        oldest: u64,
    },
    /// An operation of durable mode (a checkpoint) on a database that was
    /// not opened from a directory.
    NotDurable(String),
    /// A snapshot to install is older than the database it would replace.
    StaleSnapshot {
        /// The snapshot's revision.
        snapshot: u64,
        /// The database's revision.
        current: u64,
    },
    /// A read asked for a revision that no commit has reached yet.
    RevisionNotReached {
        /// The revision asked for.
        requested: u64,
        /// The newest revision committed.
        latest: u64,
    },
    /// An operating-system I/O error.
    Io {
        /// What was being done, and on which path.
        context: String,
        /// The error's kind.
        kind: std::io::ErrorKind,
        /// The error's message.
        message: String,
    },
    /// Stored bytes that fail validation (checksum, framing, lengths).
    Corrupt {
        /// The file.
        file: String,
        /// Byte offset in the file where the damage was detected.
        offset: u64,
        /// What was wrong.
        detail: String,
    },
    /// A file written by an unsupported (newer) format version.
    UnsupportedVersion {
        /// The file.
        file: String,
        /// The version found.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// Stored data was written under a schema that differs from the one
    /// given.
    SchemaMismatch(String),
    /// A row could not be encoded or decoded by its codec.
    Codec(String),
    /// A commit is too large for the durable log: its record (every change
    /// of the transaction, encoded) is over the log's record limit. The
    /// commit is refused before anything of it is ordered or visible, and
    /// the database goes on; split the transaction.
    TooLarge {
        /// The size of the commit's record.
        bytes: u64,
        /// The largest record the log takes.
        limit: u64,
    },
    /// An earlier I/O error stopped the database from accepting writes
    /// (fail-stop); reopen it to recover.
    WritesStopped(String),
    /// What the operation waits on or goes through is gone: the database
    /// was closed ([`Db::close`](crate::Db::close)) or its last handle
    /// dropped, or the [`WatchSet`](crate::WatchSet) a future waits on was
    /// dropped. Says which.
    Closed(String),
    /// [`Db::open`](crate::Db::open) found the directory's `LOCK` file
    /// locked: the database is already open, by this process or another.
    AlreadyOpen(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Schema(m) => write!(f, "invalid schema: {m}"),
            Error::UnknownTable(t) => {
                write!(f, "the schema has no table or index named {t:?}")
            }
            Error::ForeignHandle(t) => write!(
                f,
                "the handle of {t:?} was made by another Schema instance than this database's \
                 (handles of a schema built again from the same declarations are not \
                 interchangeable: look them up with Schema::table)"
            ),
            Error::TypeMismatch { what, requested } => {
                write!(f, "{what} does not hold values of type {requested}")
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
            Error::Conflict {
                table,
                key,
                expected,
                current,
            } => {
                let rev = |r: &Option<u64>| match r {
                    Some(r) => format!("revision {r}"),
                    None => "no object".to_string(),
                };
                write!(
                    f,
                    "conflict on {table} {key:?}: expected {}, found {}",
                    rev(expected),
                    rev(current)
                )
            }
            Error::Compacted { oldest } => write!(
                f,
                "revisions before {oldest} are no longer retained (change feed or read history)"
            ),
            Error::NotDurable(op) => write!(
                f,
                "{op} needs a database opened from a directory (Db::open)"
            ),
            Error::StaleSnapshot { snapshot, current } => write!(
                f,
                "the snapshot's revision {snapshot} is older than the database's {current}"
            ),
            Error::RevisionNotReached { requested, latest } => write!(
                f,
                "revision {requested} has not been reached; the newest commit is {latest}"
            ),
            Error::Io {
                context,
                kind,
                message,
            } => write!(f, "I/O error ({kind:?}) while {context}: {message}"),
            Error::Corrupt {
                file,
                offset,
                detail,
            } => write!(f, "corrupt data in {file} at offset {offset}: {detail}"),
            Error::UnsupportedVersion {
                file,
                found,
                supported,
            } => write!(
                f,
                "{file} has format version {found}; this build reads up to {supported}"
            ),
            Error::SchemaMismatch(m) => write!(f, "schema mismatch: {m}"),
            Error::Codec(m) => write!(f, "codec error: {m}"),
            Error::TooLarge { bytes, limit } => write!(
                f,
                "commit too large for the log: its record is {bytes} bytes, the limit {limit}; split the transaction"
            ),
            Error::WritesStopped(m) => write!(
                f,
                "writes are refused after an earlier I/O error ({m}); reopen the database"
            ),
            Error::Closed(what) => write!(f, "{what}"),
            Error::AlreadyOpen(dir) => write!(
                f,
                "the database in {dir} is already open (by this or another process)"
            ),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>, e: &std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

impl Error {
    /// [`Error::Closed`] for a database that was closed or dropped.
    pub(crate) fn db_closed() -> Error {
        Error::Closed("the database was closed (Db::close, or its last handle dropped)".into())
    }
}

/// `Result` with pandodb's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
