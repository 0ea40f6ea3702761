//! The snapshot decoder on hostile bytes: raw input, or (input starting
//! with 0xff) a valid snapshot damaged as the input says. Must never panic,
//! hang or allocate without bound; see `pandodb::fuzzing::restore_snapshot`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pandodb::fuzzing::restore_snapshot(data);
});
