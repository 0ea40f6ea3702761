//! openraft's own storage conformance suite (`openraft::testing::Suite`)
//! against the pandodb state machine and the in-memory log store of the
//! example.

mod common;

use common::{Cfg, Sm, fresh};
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use pandodb_openraft::MemLogStore;

struct Builder;

impl StoreBuilder<Cfg, MemLogStore<Cfg>, Sm> for Builder {
    async fn build(&self) -> Result<((), MemLogStore<Cfg>, Sm), StorageError<u64>> {
        Ok(((), MemLogStore::new(), fresh()))
    }
}

#[test]
fn openraft_storage_suite() {
    if let Err(e) = Suite::test_all(Builder) {
        panic!("the openraft storage suite failed: {e}");
    }
}
