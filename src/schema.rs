//! Schemas: tables of typed objects and their indexes, declared with a
//! builder and validated once, plus the typed handles ([`Table`], [`Index`])
//! that queries and writes take. What a table is once declared (its
//! definition and its state) is the table layer's (`crate::table`).

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::index::{Indexer, key::Encode};
use crate::table::{AnyTable, Codec, IndexDef, TableDef, decode_postcard, encode_postcard};

static NEXT_SCHEMA_ID: AtomicU64 = AtomicU64::new(1);

/// A handle to a table of objects of type `T`; cheap to clone. Returned by
/// [`SchemaBuilder::add`]; writes and [`Query::len`](crate::Query::len) take it.
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
/// assert_eq!(people.name(), "person");
/// assert_eq!(db.read().len(&people)?, 0);
/// # let _ = (by_id, by_age);
/// # Ok::<(), pandodb::Error>(())
/// ```
pub struct Table<T> {
    pub(crate) schema: u64,
    pub(crate) def: Arc<TableDef<T>>,
}

impl<T> Clone for Table<T> {
    fn clone(&self) -> Self {
        Table {
            schema: self.schema,
            def: self.def.clone(),
        }
    }
}

impl<T> Table<T> {
    /// The table's name.
    pub fn name(&self) -> &str {
        &self.def.name
    }

    pub(crate) fn id(&self) -> usize {
        self.def.id
    }

    /// The handle of this table's index `name`, whose keys are of type `K`
    /// (as declared: `str` for [`Indexer::string`], the value's type for
    /// [`Indexer::value`], ...). Fails with [`Error::UnknownTable`] when the
    /// table has no such index and [`Error::TypeMismatch`] when its keys are
    /// of another type.
    ///
    /// ```
    /// # use pandodb::{Db, Error, Indexer, Query, Schema};
    /// # struct Person { id: String, age: i64 }
    /// let mut schema = Schema::builder();
    /// let mut t = schema.table::<Person>("person");
    /// t.primary("id", Indexer::string(|p: &Person| p.id.as_str()));
    /// t.index("age", Indexer::value(|p: &Person| p.age));
    /// schema.add(t)?;
    /// let schema = schema.build()?;
    /// // Elsewhere, from the schema alone:
    /// let people = schema.table::<Person>("person")?;
    /// let by_age = people.index::<i64>("age")?;
    /// assert!(matches!(people.index::<str>("age"), Err(Error::TypeMismatch { .. })));
    /// let db = Db::new(schema);
    /// assert_eq!(db.read().count(&by_age, &41)?, 0);
    /// # Ok::<(), pandodb::Error>(())
    /// ```
    pub fn index<K: ?Sized + 'static>(&self, name: &str) -> Result<Index<T, K>> {
        let def = &self.def;
        let Some(pos) = def.indexes.iter().position(|ix| ix.name == name) else {
            return Err(Error::UnknownTable(format!("{}.{name}", def.name)));
        };
        let ix = &def.indexes[pos];
        if ix.key != std::any::TypeId::of::<K>() {
            return Err(Error::TypeMismatch {
                what: format!("index {}.{name}", def.name),
                requested: std::any::type_name::<K>(),
            });
        }
        Ok(Index {
            schema: self.schema,
            table: def.id,
            pos,
            name: name.into(),
            table_name: def.name.as_str().into(),
            unique: ix.unique,
            case_insensitive: ix.case_insensitive,
            leading: false,
            _p: PhantomData,
        })
    }
}

impl<T> std::fmt::Debug for Table<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Table({:?})", self.def.name)
    }
}

/// Ties an index handle to its object and key types without owning either.
type IndexMarker<T, K> = (fn() -> T, fn(&K));

/// A handle to one index of a `Table<T>`, queried with keys of type `K`.
/// Returned by the [`TableBuilder`] methods; every query takes one.
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
/// assert_eq!((by_id.name(), by_id.is_unique()), ("id", true));
/// assert_eq!((by_age.name(), by_age.is_unique()), ("age", false));
/// let r = db.read();
/// let _: Option<std::sync::Arc<Person>> = r.get(&by_id, "ann")?; // K = str
/// let _ = r.count(&by_age, &41)?; // K = i64
/// # let _ = people;
/// # Ok::<(), pandodb::Error>(())
/// ```
pub struct Index<T, K: ?Sized> {
    pub(crate) schema: u64,
    pub(crate) table: usize,
    pub(crate) pos: usize,
    pub(crate) name: Arc<str>,
    pub(crate) table_name: Arc<str>,
    pub(crate) unique: bool,
    pub(crate) case_insensitive: bool,
    /// A view by a leading part of a compound key ([`Index::leading`]):
    /// its keys select by prefix.
    pub(crate) leading: bool,
    _p: PhantomData<IndexMarker<T, K>>,
}

impl<T, K: ?Sized> Clone for Index<T, K> {
    fn clone(&self) -> Self {
        self.retype(self.unique)
    }
}

impl<T, K: ?Sized> std::fmt::Debug for Index<T, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Index({}.{})", self.table_name, self.name)
    }
}

impl<T, K: ?Sized> Index<T, K> {
    /// The index's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the index holds at most one object per key.
    pub fn is_unique(&self) -> bool {
        self.unique
    }

    /// A view queried by a leading part of the key: never a point lookup.
    fn leading_view<Q: ?Sized>(&self) -> Index<T, Q> {
        let mut view = self.retype(false);
        view.leading = true;
        view
    }

    /// The same index under another query key type.
    fn retype<Q: ?Sized>(&self, unique: bool) -> Index<T, Q> {
        Index {
            schema: self.schema,
            table: self.table,
            pos: self.pos,
            name: self.name.clone(),
            table_name: self.table_name.clone(),
            unique,
            case_insensitive: self.case_insensitive,
            leading: self.leading,
            _p: PhantomData,
        }
    }

    /// Encodes a query key (complete, or as a prefix).
    pub(crate) fn encode(&self, key: &K, prefix: bool) -> Vec<u8>
    where
        K: Encode,
    {
        let mut out = Vec::with_capacity(32);
        self.encode_into(key, prefix, &mut out);
        out
    }

    pub(crate) fn encode_into(&self, key: &K, prefix: bool, out: &mut Vec<u8>)
    where
        K: Encode,
    {
        match (self.case_insensitive, prefix) {
            (true, p) => key.encode_folded(out, p),
            (false, false) => key.encode(out),
            (false, true) => key.encode_prefix(out),
        }
    }

    /// Runs `f` on the complete encoding of `key`, in a reused per-thread
    /// buffer (point lookups then allocate nothing).
    pub(crate) fn with_key<R>(&self, key: &K, f: impl FnOnce(&[u8]) -> R) -> R
    where
        K: Encode,
    {
        self.with_encoded(key, false, f)
    }

    /// Runs `f` on the encoding of `key` (complete, or as a prefix) in a
    /// reused per-thread buffer.
    pub(crate) fn with_encoded<R>(&self, key: &K, prefix: bool, f: impl FnOnce(&[u8]) -> R) -> R
    where
        K: Encode,
    {
        thread_local! {
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BUF.with(|b| match b.try_borrow_mut() {
            Ok(mut buf) => {
                buf.clear();
                self.encode_into(key, prefix, &mut buf);
                f(&buf)
            }
            // Re-entered from inside `f` (an indexer querying): allocate.
            Err(_) => f(&self.encode(key, prefix)),
        })
    }
}

impl<T, A, B> Index<T, (A, B)> {
    /// The same index queried by its first component only: every query on
    /// the result is a prefix query over the compound keys (so it may match
    /// several objects even when the index is unique).
    pub fn leading(&self) -> Index<T, (A,)> {
        self.leading_view()
    }
}

impl<T> Index<T, (String, String)> {
    /// The same index queried with borrowed `(&str, &str)` keys, which
    /// encode exactly as `(String, String)` ones: lookups allocate nothing.
    ///
    /// ```
    /// # use pandodb::{Db, Indexer, Query, Schema};
    /// # use std::collections::BTreeMap;
    /// struct Node { id: u32, labels: BTreeMap<String, String> }
    /// let mut schema = Schema::builder();
    /// let mut t = schema.table::<Node>("node");
    /// t.primary("id", Indexer::value(|n: &Node| n.id));
    /// let by_label = t.index("label", Indexer::map_entries(|n: &Node| &n.labels));
    /// let nodes = schema.add(t)?;
    /// let db = Db::new(schema.build()?);
    /// let mut w = db.write(&[&nodes]);
    /// let labels = BTreeMap::from([("zone".to_string(), "eu".to_string())]);
    /// w.insert(&nodes, Node { id: 7, labels })?;
    /// assert_eq!(w.get(&by_label.borrowed(), &("zone", "eu"))?.unwrap().id, 7);
    /// # Ok::<(), pandodb::Error>(())
    /// ```
    pub fn borrowed<'a>(&self) -> Index<T, (&'a str, &'a str)> {
        self.retype(self.unique)
    }
}

impl<T, A, B, C> Index<T, (A, B, C)> {
    /// The same index queried by its first component only.
    pub fn leading(&self) -> Index<T, (A,)> {
        self.leading_view()
    }

    /// The same index queried by its first two components.
    pub fn leading2(&self) -> Index<T, (A, B)> {
        self.leading_view()
    }
}

/// Declares one table: its primary index and any secondary indexes. Hand it
/// to [`SchemaBuilder::add`] when done.
///
/// ```
/// use pandodb::{Error, Indexer, Schema};
/// struct Key { id: u64 }
/// let mut schema = Schema::builder();
/// let mut keys = schema.table::<Key>("key");
/// keys.index("id", Indexer::value(|k: &Key| k.id)); // no primary index
/// assert!(matches!(schema.add(keys), Err(Error::Schema(_))));
/// ```
pub struct TableBuilder<T> {
    schema: u64,
    id: usize,
    name: String,
    primary: Vec<usize>,
    indexes: Vec<IndexDef<T>>,
    codec: Option<Codec<T>>,
    version: u32,
}

impl<T: Send + Sync + 'static> TableBuilder<T> {
    fn push<K: ?Sized + 'static>(
        &mut self,
        name: &str,
        unique: bool,
        ix: Indexer<T, K>,
    ) -> Index<T, K> {
        self.indexes.push(IndexDef {
            name: name.to_string(),
            unique,
            case_insensitive: ix.case_insensitive,
            extract: ix.extract,
            key: std::any::TypeId::of::<K>(),
        });
        Index {
            schema: self.schema,
            table: self.id,
            pos: self.indexes.len() - 1,
            name: name.into(),
            table_name: self.name.as_str().into(),
            unique,
            case_insensitive: self.indexes[self.indexes.len() - 1].case_insensitive,
            leading: false,
            _p: PhantomData,
        }
    }

    /// The primary index: unique, and every object must yield exactly one key.
    pub fn primary<K: ?Sized + 'static>(&mut self, name: &str, ix: Indexer<T, K>) -> Index<T, K> {
        self.primary.push(self.indexes.len());
        self.push(name, true, ix)
    }

    /// A unique secondary index: inserting an object whose key another
    /// object holds fails with [`Error::UniqueViolation`].
    pub fn unique<K: ?Sized + 'static>(&mut self, name: &str, ix: Indexer<T, K>) -> Index<T, K> {
        self.push(name, true, ix)
    }

    /// A non-unique secondary index.
    pub fn index<K: ?Sized + 'static>(&mut self, name: &str, ix: Indexer<T, K>) -> Index<T, K> {
        self.push(name, false, ix)
    }

    /// Stores this table's rows in snapshots and the durable log, encoded
    /// with serde + postcard. Every table of a database that is snapshotted
    /// or opened from a directory needs it.
    ///
    /// ```
    /// # use pandodb::{Indexer, Schema};
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct User { name: String }
    /// let mut schema = Schema::builder();
    /// let mut t = schema.table::<User>("user");
    /// t.primary("name", Indexer::string(|u: &User| u.name.as_str()));
    /// t.serde().version(2);
    /// # schema.add(t)?;
    /// # Ok::<(), pandodb::Error>(())
    /// ```
    pub fn serde(&mut self) -> &mut Self
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        let migrate = self.codec.as_ref().and_then(|c| c.migrate.clone());
        self.codec = Some(Codec {
            encode: encode_postcard::<T>,
            decode: decode_postcard::<T>,
            migrate,
        });
        self
    }

    /// The version of the row type (default 0), stored with the table in
    /// snapshots. Loading rows of an older version goes through the
    /// [`TableBuilder::migrate`] hook; rows of a newer version are refused.
    pub fn version(&mut self, version: u32) -> &mut Self {
        self.version = version;
        self
    }

    /// Decodes rows stored by an older version of the row type: `f(version,
    /// bytes)` gets the stored version and the row's postcard bytes. Call
    /// it after [`TableBuilder::serde`].
    ///
    /// ```
    /// # use pandodb::{Indexer, Schema};
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct UserV1 { name: String }
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct User { name: String, admin: bool }
    /// let mut schema = Schema::builder();
    /// let mut t = schema.table::<User>("user");
    /// t.primary("name", Indexer::string(|u: &User| u.name.as_str()));
    /// t.serde().version(2).migrate(|version, bytes| match version {
    ///     1 => {
    ///         let old: UserV1 = postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
    ///         Ok(User { name: old.name, admin: false })
    ///     }
    ///     v => Err(format!("no migration from version {v}")),
    /// });
    /// # schema.add(t)?;
    /// # Ok::<(), pandodb::Error>(())
    /// ```
    pub fn migrate(
        &mut self,
        f: impl Fn(u32, &[u8]) -> std::result::Result<T, String> + Send + Sync + 'static,
    ) -> &mut Self {
        if let Some(c) = &mut self.codec {
            c.migrate = Some(Arc::new(f));
        }
        self
    }
}

/// Builds a [`Schema`].
///
/// ```
/// use pandodb::{Indexer, Schema};
/// struct Person { id: String, email: String, age: i64 }
///
/// let mut schema = Schema::builder();
/// let mut people = schema.table::<Person>("person");
/// let by_id = people.primary("id", Indexer::string(|p: &Person| p.id.as_str()));
/// let by_email = people.unique("email", Indexer::string(|p: &Person| p.email.as_str()));
/// let by_age = people.index("age", Indexer::value(|p: &Person| p.age));
/// let people = schema.add(people)?;
/// let schema = schema.build()?;
/// # let _ = (by_id, by_email, by_age, people, schema);
/// # Ok::<(), pandodb::Error>(())
/// ```
pub struct SchemaBuilder {
    id: u64,
    declared: usize,
    tables: Vec<Arc<dyn AnyTable>>,
    errors: Vec<String>,
}

impl SchemaBuilder {
    /// Declares a table named `name` holding objects of type `T`.
    pub fn table<T: Send + Sync + 'static>(&mut self, name: &str) -> TableBuilder<T> {
        self.declared += 1;
        TableBuilder {
            schema: self.id,
            id: self.declared - 1,
            name: name.to_string(),
            primary: Vec::new(),
            indexes: Vec::new(),
            codec: None,
            version: 0,
        }
    }

    /// Validates a declared table and adds it. A failure is also kept:
    /// [`SchemaBuilder::build`] fails after it.
    pub fn add<T: Send + Sync + 'static>(&mut self, t: TableBuilder<T>) -> Result<Table<T>> {
        let added = self.try_add(t);
        match &added {
            Err(Error::Schema(m)) => self.errors.push(m.clone()),
            Err(e) => self.errors.push(e.to_string()),
            Ok(_) => {}
        }
        added
    }

    fn try_add<T: Send + Sync + 'static>(&mut self, t: TableBuilder<T>) -> Result<Table<T>> {
        let fail = |m: String| Err(Error::Schema(format!("table {:?}: {m}", t.name)));
        if t.schema != self.id {
            return fail("declared by another schema builder".into());
        }
        if t.name.is_empty() {
            return Err(Error::Schema("a table name is empty".into()));
        }
        let primary = match t.primary.as_slice() {
            [] => return fail("has no primary index".into()),
            [p] => *p,
            _ => return fail("has more than one primary index".into()),
        };
        for (i, ix) in t.indexes.iter().enumerate() {
            if ix.name.is_empty() {
                return fail("an index name is empty".into());
            }
            if t.indexes[..i].iter().any(|o| o.name == ix.name) {
                return fail(format!("index {:?} is declared twice", ix.name));
            }
        }
        if self.tables.iter().any(|x| x.name() == t.name) {
            return fail("is declared twice".into());
        }
        if self.tables.len() != t.id {
            return fail("tables must be added in the order they were declared".into());
        }
        let def = Arc::new(TableDef {
            id: t.id,
            shared_name: t.name.as_str().into(),
            name: t.name,
            primary,
            indexes: t.indexes,
            codec: t.codec,
            version: t.version,
            spare: Default::default(),
        });
        self.tables.push(def.clone());
        Ok(Table {
            schema: self.id,
            def,
        })
    }

    /// Finishes the schema. Fails if a declared table was not added, or an
    /// earlier `add` failed.
    pub fn build(self) -> Result<Schema> {
        if let Some(e) = self.errors.first() {
            return Err(Error::Schema(e.clone()));
        }
        if self.tables.len() != self.declared {
            return Err(Error::Schema(format!(
                "{} table(s) declared but not added",
                self.declared - self.tables.len()
            )));
        }
        if self.tables.is_empty() {
            return Err(Error::Schema("the schema has no table".into()));
        }
        Ok(Schema {
            id: self.id,
            tables: self.tables.into(),
        })
    }
}

/// A validated set of tables; give it to [`Db::new`](crate::Db::new).
///
/// ```
/// # use pandodb::{Indexer, Schema};
/// # struct Person { id: String }
/// let mut b = Schema::builder();
/// let mut t = b.table::<Person>("person");
/// t.primary("id", Indexer::string(|p: &Person| p.id.as_str()));
/// b.add(t)?;
/// let schema = b.build()?;
/// assert_eq!(schema.table_names().collect::<Vec<_>>(), ["person"]);
/// # Ok::<(), pandodb::Error>(())
/// ```
#[derive(Clone)]
pub struct Schema {
    pub(crate) id: u64,
    pub(crate) tables: Arc<[Arc<dyn AnyTable>]>,
}

impl Schema {
    /// Starts a schema.
    pub fn builder() -> SchemaBuilder {
        SchemaBuilder {
            id: NEXT_SCHEMA_ID.fetch_add(1, Ordering::Relaxed),
            declared: 0,
            tables: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Fails with [`Error::Schema`] naming the first table without a codec:
    /// a database stored on disk needs every table's rows encoded.
    pub(crate) fn require_codecs(&self) -> Result<()> {
        match self.tables.iter().find(|t| !t.codec_info().1) {
            Some(t) => Err(Error::Schema(format!(
                "table {:?} has no codec: call TableBuilder::serde to store it",
                t.name()
            ))),
            None => Ok(()),
        }
    }

    /// The table names, in declaration order.
    pub fn table_names(&self) -> impl Iterator<Item = &str> {
        self.tables.iter().map(|t| t.name())
    }

    /// The handle of table `name`, whose objects are of type `T`: what an
    /// application that did not keep the handles of
    /// [`SchemaBuilder::add`] uses (see [`Table::index`] for its indexes).
    /// Fails with [`Error::UnknownTable`] when there is no such table and
    /// [`Error::TypeMismatch`] when its objects are of another type.
    pub fn table<T: Send + Sync + 'static>(&self, name: &str) -> Result<Table<T>> {
        let Some(t) = self.tables.iter().find(|t| t.name() == name) else {
            return Err(Error::UnknownTable(name.to_string()));
        };
        match t.clone().into_any().downcast::<TableDef<T>>() {
            Ok(def) => Ok(Table {
                schema: self.id,
                def,
            }),
            Err(_) => Err(Error::TypeMismatch {
                what: format!("table {name:?}"),
                requested: std::any::type_name::<T>(),
            }),
        }
    }
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.table_names()).finish()
    }
}
