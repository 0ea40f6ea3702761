//! Opening a durable directory (snapshot + write-ahead log) in which one
//! file was damaged as the input says: recovery must return a committed
//! revision or a typed error, never panic, hang or allocate without bound;
//! see `pandodb::fuzzing::open_damaged_dir`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rev) = pandodb::fuzzing::open_damaged_dir(data) {
        assert!(
            rev <= 30,
            "recovered a revision that was never written: {rev}"
        );
    }
});
