//! Arbitrary bytes as a `.pth` file (zip or legacy, detected from the content): the reader
//! must return a state dict or a typed error, never panic or allocate without bound.
#![no_main]
use libfuzzer_sys::fuzz_target;
use zoo_converters::{pth, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::FUZZ;
    if let Ok(sd) = pth::read_bytes(data, limits) {
        let total: usize = sd.iter().map(|(_, t)| t.data().len()).sum();
        assert!(total as u64 <= 16 * data.len() as u64 + (1 << 20));
    }
});
