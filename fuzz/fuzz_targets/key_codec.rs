//! Arbitrary bytes through `streamfold_shared::keys::fuzz::key_bytes` (the body CI's proptests run too).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = streamfold_shared::keys::fuzz::key_bytes(data) {
        panic!("invariant broken: {broken}");
    }
});
