//! Arbitrary bytes as a database file: open, iterate, look up, verify (see `../open_verify.rs`).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../open_verify.rs"]
mod open_verify;

fuzz_target!(|data: &[u8]| {
    let _ = open_verify::open_verify(data);
});
