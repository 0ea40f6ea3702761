//! The application's row decoders, for `dump`.

use std::collections::HashMap;

use serde_json::Value;

/// Stored row version and bytes → JSON text.
type Decoder = Box<dyn Fn(u32, &[u8]) -> Result<String, String> + Send + Sync>;

/// The application's row decoders, per table name: how `dump` turns a
/// stored object (postcard bytes) into JSON. Tables without a decoder are
/// dumped with their byte count only.
#[derive(Default)]
pub struct Registry {
    decoders: HashMap<String, Decoder>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.decoders.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Registry").field("tables", &names).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Decodes the rows of `table` as `T` (the table's row type, stored as
    /// postcard bytes by `TableBuilder::serde`) and shows them as `T`
    /// serializes to JSON (fields in declaration order). Replaces an
    /// earlier decoder of the same table.
    pub fn register<T>(&mut self, table: &str) -> &mut Registry
    where
        T: serde::de::DeserializeOwned + serde::Serialize,
    {
        let decode = |_version: u32, bytes: &[u8]| {
            let obj: T = postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
            serde_json::to_string(&obj).map_err(|e| e.to_string())
        };
        self.decoders.insert(table.to_string(), Box::new(decode));
        self
    }

    /// Registers a decoder of `table` taking the stored row version (see
    /// `TableBuilder::version`) and the row's bytes, for tables whose older
    /// rows need another type. Log rows carry no version: they get the
    /// version of the newest snapshot's table (0 without a snapshot).
    pub fn register_with(
        &mut self,
        table: &str,
        decode: impl Fn(u32, &[u8]) -> Result<Value, String> + Send + Sync + 'static,
    ) -> &mut Registry {
        let decode =
            move |version: u32, bytes: &[u8]| decode(version, bytes).map(|v| v.to_string());
        self.decoders.insert(table.to_string(), Box::new(decode));
        self
    }

    /// Whether `table` has a decoder.
    pub fn contains(&self, table: &str) -> bool {
        self.decoders.contains_key(table)
    }

    /// Decodes a row of `table` to JSON text (`None`: no decoder
    /// registered).
    pub fn decode(
        &self,
        table: &str,
        version: u32,
        bytes: &[u8],
    ) -> Option<Result<String, String>> {
        self.decoders.get(table).map(|d| d(version, bytes))
    }
}
