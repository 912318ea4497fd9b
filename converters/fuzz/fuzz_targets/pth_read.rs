//! Placeholder: filled in on another branch.
#![no_main]

libfuzzer_sys::fuzz_target!(|_data: &[u8]| {});
