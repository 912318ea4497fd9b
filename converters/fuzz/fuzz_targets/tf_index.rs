//! Arbitrary bytes as a tensor bundle `.index` (and a small data shard) into the reader.
//!
//! Input layout: `u16 LE n`, then `n` bytes of `.index`, then the rest as the data of every
//! shard. Parsing must never panic; every entry that parses is decoded against the data, which
//! exercises the extent, crc32c and dtype checks. Seeds: `[len][fixture index][data]` and small
//! writer-made bundles (see `converters/tests/tf_bundle.rs`, `write_fuzz_seeds`).
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    zoo_converters::tf_bundle::fuzz_index(input);
});
