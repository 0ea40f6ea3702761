//! Loom model of reclamation by version interval (`src/tree/reclaim.rs`):
//! the real pin registry and freeing rule, on stand-in nodes.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --test loom_reclaim`
//!
//! A reader holds a pin on revision 1 and reads a node of it, then unpins,
//! while the writer commits revision 2 (retiring that node) and reclaims.
//! In every interleaving the node is freed only after the reader's last
//! read (freeing overwrites the node's contents; the read is relaxed, so
//! loom lets it see any write not ordered after it: a free that does not
//! happen after the read is seen), and once the reader is gone it is
//! freed. A node the pinned version cannot reach (made at 2, replaced at 3)
//! is freed while the pin is still held: the interval rule, not an
//! oldest-reader rule. A deliberately broken registry that frees without
//! looking at the pins must be caught.
#![cfg(loom)]

use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;
use pandodb::tree::{Garbage, Registry, Scratch, reclaim_unpinned};

/// What a freed stand-in node holds.
const FREED: u64 = u64::MAX;

/// A stand-in node: its contents, which freeing overwrites.
struct Cell(AtomicU64);

impl Cell {
    fn new(v: u64) -> Self {
        Cell(AtomicU64::new(v))
    }
    /// Relaxed: only the protocol's own synchronization orders this read
    /// before a free.
    fn read(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

struct Node {
    born: u64,
    cell: Arc<Cell>,
}

impl Garbage for Node {
    fn born(&self) -> u64 {
        self.born
    }
    fn free(self, _more: &mut Vec<Self>) {
        self.cell.0.store(FREED, Ordering::Relaxed);
    }
}

fn run(registry: fn() -> Registry<Node>) {
    loom::model(move || {
        let reg = Arc::new(Mutex::new(registry()));
        let old = Arc::new(Cell::new(1));
        // The writer pins revision 1 for the reader (`VersionedTree::version`).
        reg.lock().unwrap().pin(1);
        let reader = {
            let (reg, old) = (reg.clone(), old.clone());
            thread::spawn(move || {
                assert_eq!(old.read(), 1, "a pinned version's node was freed");
                reg.lock().unwrap().unpin(1);
            })
        };
        // Revision 2 replaces the node made at 1; revision 3 replaces one
        // made at 2, which revision 1 never reached.
        let young = Arc::new(Cell::new(2));
        reg.lock().unwrap().retire(
            [Node {
                born: 1,
                cell: old.clone(),
            }],
            2,
        );
        reg.lock().unwrap().retire(
            [Node {
                born: 2,
                cell: young.clone(),
            }],
            3,
        );
        reclaim_unpinned(&reg, usize::MAX, &mut Scratch::default());
        assert_eq!(young.read(), FREED, "the interval rule frees it at once");
        reader.join().unwrap();
        reclaim_unpinned(&reg, usize::MAX, &mut Scratch::default());
        assert_eq!(old.read(), FREED, "no pin left: freed");
        assert_eq!(reg.lock().unwrap().waiting(), 0);
    });
}

#[test]
fn a_node_is_freed_only_once_no_pin_reaches_it() {
    run(Registry::default);
}

#[test]
#[should_panic]
fn freeing_without_looking_at_the_pins_is_caught() {
    run(Registry::broken_ignoring_pins);
}
