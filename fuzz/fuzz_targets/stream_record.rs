//! Arbitrary bytes through `streamfold_shared::record::fuzz::stream_record` (the body CI's proptests run too).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = streamfold_shared::record::fuzz::stream_record(data) {
        panic!("invariant broken: {broken}");
    }
});
