//! Fuzz target `event_decoder`: see `fuzz/invariants.rs` for what is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../invariants.rs"]
mod invariants;

fuzz_target!(|data: &[u8]| {
    invariants::event_decoder(data);
});
