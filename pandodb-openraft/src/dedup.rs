//! Client request deduplication: a client id and sequence number carried by
//! the command, and the last sequence number and response of each client
//! kept in a replicated table, so that a command retried after a leader
//! change (or a lost response) applies once.

use std::marker::PhantomData;

use openraft::RaftTypeConfig;
use pandodb::{Index, Indexer, Query, SchemaBuilder, Table, WriteTxn};
use serde::{Deserialize, Serialize};

use crate::state_machine::{Applied, Apply};

/// The name of the deduplication table in the application's schema.
pub const DEDUP_TABLE: &str = "__raft_dedup";

/// Who sent a command, and its place in that client's sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId {
    /// The client: unique among the clients of the cluster (a random
    /// 64-bit number drawn by the client at start is the usual choice).
    pub client: u64,
    /// The client's sequence number: 1 for its first request, one more for
    /// each new request, the same for a retry of a request.
    pub seq: u64,
}

/// A command that may carry a [`RequestId`]: implement it for the
/// application's command type (`C::D`) to use [`Dedup`].
pub trait Idempotent {
    /// The command's request id; `None` for a command that is not
    /// deduplicated.
    fn request_id(&self) -> Option<RequestId>;
}

/// A client's last applied request: a row of the deduplication table.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct ClientRow<C: RaftTypeConfig> {
    /// The client.
    pub client: u64,
    /// Its last applied sequence number.
    pub seq: u64,
    /// The response of that request.
    pub response: C::R,
}

/// The handle of the deduplication table, returned by [`register_dedup`].
pub struct DedupTable<C: RaftTypeConfig> {
    table: Table<ClientRow<C>>,
    by_client: Index<ClientRow<C>, u64>,
}

impl<C: RaftTypeConfig> Clone for DedupTable<C> {
    fn clone(&self) -> Self {
        DedupTable {
            table: self.table.clone(),
            by_client: self.by_client.clone(),
        }
    }
}

impl<C: RaftTypeConfig> DedupTable<C> {
    /// The table handle.
    pub fn table(&self) -> &Table<ClientRow<C>> {
        &self.table
    }

    /// The last applied sequence number of `client` and its response, as
    /// seen by `q`.
    pub fn last(&self, q: &impl Query, client: u64) -> pandodb::Result<Option<(u64, C::R)>>
    where
        C::R: Clone,
    {
        Ok(q.get(&self.by_client, &client)?
            .map(|r| (r.seq, r.response.clone())))
    }

    /// Forgets `client` (a client that has ended), inside a command's
    /// write transaction so that every replica forgets it at the same
    /// entry. A request of that client arriving later is applied as new.
    pub fn forget(&self, txn: &mut WriteTxn, client: u64) -> pandodb::Result<bool> {
        Ok(txn.delete_all(&self.by_client, &client)? > 0)
    }

    fn record(&self, txn: &mut WriteTxn, id: RequestId, response: C::R) -> pandodb::Result<()> {
        txn.insert(
            &self.table,
            ClientRow::<C> {
                client: id.client,
                seq: id.seq,
                response,
            },
        )?;
        Ok(())
    }
}

/// Registers the deduplication table (named [`DEDUP_TABLE`]) in the
/// application's schema, like [`register_meta`](crate::register_meta): the
/// same schema, in the same order, on every replica.
pub fn register_dedup<C: RaftTypeConfig>(
    schema: &mut SchemaBuilder,
) -> pandodb::Result<DedupTable<C>> {
    let mut t = schema.table::<ClientRow<C>>(DEDUP_TABLE);
    let by_client = t.primary("client", Indexer::value(|r: &ClientRow<C>| r.client));
    t.serde();
    let table = schema.add(t)?;
    Ok(DedupTable { table, by_client })
}

/// Wraps the application's [`Apply`] with request deduplication: a command
/// whose [`RequestId`] was already applied is not applied again.
///
/// For a command with a request id `(client, seq)`, inside the entry's
/// write transaction (so it is replicated, in every snapshot, and the same
/// on every replica):
///
/// - `seq` above the client's last applied one (or a client never seen):
///   the application applies it, and `(seq, response)` becomes the
///   client's last request, whether the application commits or rolls
///   back.
/// - `seq` equal to the last one: a retry. Nothing is applied; the stored
///   response is returned again.
/// - `seq` below the last one: the client already had a later request
///   applied, so it has seen this one's answer. Nothing is applied; the
///   response is the application's `empty_response`. (One response per
///   client is kept: a client sends its next request once the previous one
///   is answered, as in the Raft dissertation, section 6.3.)
///
/// Commands without a request id are applied as usual. Rows are kept until
/// [`DedupTable::forget`] removes them.
pub struct Dedup<C: RaftTypeConfig, A> {
    table: DedupTable<C>,
    app: A,
    _c: PhantomData<fn() -> C>,
}

impl<C: RaftTypeConfig, A: Clone> Clone for Dedup<C, A> {
    fn clone(&self) -> Self {
        Dedup {
            table: self.table.clone(),
            app: self.app.clone(),
            _c: PhantomData,
        }
    }
}

impl<C: RaftTypeConfig, A> Dedup<C, A> {
    /// Deduplicates `app`'s commands through `table`.
    pub fn new(table: DedupTable<C>, app: A) -> Self {
        Dedup {
            table,
            app,
            _c: PhantomData,
        }
    }

    /// The application.
    pub fn app(&self) -> &A {
        &self.app
    }

    /// The deduplication table.
    pub fn table(&self) -> &DedupTable<C> {
        &self.table
    }
}

impl<C, A> Apply<C> for Dedup<C, A>
where
    C: RaftTypeConfig,
    C::D: Idempotent,
    C::R: Clone,
    A: Apply<C>,
{
    fn apply(&self, txn: &mut WriteTxn, command: &C::D) -> Applied<C::R> {
        let Some(id) = command.request_id() else {
            return self.app.apply(txn, command);
        };
        match self.table.last(&*txn, id.client) {
            Ok(Some((seq, response))) if seq == id.seq => return Applied::Commit(response),
            Ok(Some((seq, _))) if seq > id.seq => {
                return Applied::Commit(self.app.empty_response());
            }
            Ok(_) => {}
            // The table is the adapter's own; a failure here is the same on
            // every replica.
            Err(_) => return Applied::Rollback(self.app.empty_response()),
        }
        match self.app.apply(txn, command) {
            Applied::Commit(r) => match self.table.record(txn, id, r.clone()) {
                Ok(()) => Applied::Commit(r),
                Err(_) => Applied::Rollback(r),
            },
            // Recorded by `rolled_back`, in the transaction that follows.
            Applied::Rollback(r) => Applied::Rollback(r),
        }
    }

    fn empty_response(&self) -> C::R {
        self.app.empty_response()
    }

    fn rolled_back(&self, txn: &mut WriteTxn, command: &C::D, response: &C::R) {
        self.app.rolled_back(txn, command, response);
        if let Some(id) = command.request_id() {
            let newer =
                matches!(self.table.last(&*txn, id.client), Ok(Some((s, _))) if s >= id.seq);
            if !newer {
                // Same on every replica: an error leaves it unrecorded everywhere.
                let _ = self.table.record(txn, id, response.clone());
            }
        }
    }
}
