//! Placeholder: the TF bundle index target lives on branch `bundle`; the lead merges it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|_data: &[u8]| {});
