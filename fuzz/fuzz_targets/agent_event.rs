//! Arbitrary bytes through `agent_activity::event::fuzz::agent_event` (the body CI's proptests run too).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = agent_activity::event::fuzz::agent_event(data) {
        panic!("invariant broken: {broken}");
    }
});
