//! Change records: one per object a commit changed, for the change feed,
//! the durable log and `WriteTxn::track_changes`.

use std::any::Any;
use std::sync::Arc;

use crate::error::{Error, Result};

/// One object changed by a committed transaction.
///
/// ```
/// # use pandodb::{Db, Indexer, Query, Schema};
/// # struct Person { id: String, age: i64 }
/// # let mut schema = Schema::builder();
/// # let mut t = schema.table::<Person>("person");
/// # let by_id = t.primary("id", Indexer::string(|p: &Person| p.id.as_str()));
/// # let by_age = t.index("age", Indexer::value(|p: &Person| p.age));
/// # let people = schema.add(t)?;
/// # let db = Db::new(schema.build()?);
/// let mut w = db.write(&[&people]);
/// w.track_changes();
/// w.insert(&people, Person { id: "ann".into(), age: 41 })?;
/// let commit = w.commit()?;
/// let change = &commit.changes[0];
/// assert_eq!(change.table(), "person");
/// assert!(change.before::<Person>()?.is_none());
/// assert_eq!(change.after::<Person>()?.unwrap().age, 41);
/// assert!(change.after::<String>().is_err()); // not the table's type
/// # let _ = (by_id, by_age);
/// # Ok::<(), pandodb::Error>(())
/// ```
#[derive(Clone)]
pub struct Change {
    pub(crate) table_id: usize,
    /// The created revision of the row written (`after`), for the log.
    pub(crate) created: u64,
    pub(crate) table: Arc<str>,
    pub(crate) before: Option<Arc<dyn Any + Send + Sync>>,
    pub(crate) after: Option<Arc<dyn Any + Send + Sync>>,
}

/// What a [`Change`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A new object.
    Insert,
    /// An object replaced by another with the same primary key.
    Update,
    /// An object deleted.
    Delete,
}

impl Change {
    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The table's position in the schema.
    pub(crate) fn table_id(&self) -> usize {
        self.table_id
    }

    /// Insert, update or delete.
    pub fn kind(&self) -> ChangeKind {
        match (&self.before, &self.after) {
            (None, _) => ChangeKind::Insert,
            (Some(_), Some(_)) => ChangeKind::Update,
            (Some(_), None) => ChangeKind::Delete,
        }
    }

    /// The object before the change (`None`: it was inserted). Fails with
    /// [`Error::TypeMismatch`] when the table's objects are not `T`.
    pub fn before<T: Send + Sync + 'static>(&self) -> Result<Option<Arc<T>>> {
        self.typed(self.before.as_ref())
    }

    /// The object after the change (`None`: it was deleted). Fails with
    /// [`Error::TypeMismatch`] when the table's objects are not `T`.
    pub fn after<T: Send + Sync + 'static>(&self) -> Result<Option<Arc<T>>> {
        self.typed(self.after.as_ref())
    }

    fn typed<T: Send + Sync + 'static>(
        &self,
        obj: Option<&Arc<dyn Any + Send + Sync>>,
    ) -> Result<Option<Arc<T>>> {
        match obj.map(|o| o.clone().downcast::<T>()) {
            None => Ok(None),
            Some(Ok(o)) => Ok(Some(o)),
            Some(Err(_)) => Err(Error::TypeMismatch {
                what: format!("a change of table {:?}", self.table),
                requested: std::any::type_name::<T>(),
            }),
        }
    }
}

impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind() {
            ChangeKind::Insert => "insert",
            ChangeKind::Update => "update",
            ChangeKind::Delete => "delete",
        };
        write!(f, "Change({} {kind})", self.table)
    }
}
