//! Arbitrary bytes through the data-only pickle interpreter: it must return Ok or a typed
//! error, never panic, and stay within its limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use zoo_converters::{pickle, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::FUZZ;
    if let Ok(u) = pickle::unpickle(data, &limits) {
        assert!(u.len <= data.len());
        assert!(u.root < u.objects.len());
    }
});
