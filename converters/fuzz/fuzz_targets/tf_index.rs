//! Arbitrary bytes as a tensor bundle `.index` (and a small data shard) into the reader.
//!
//! Input layout: `u16 LE n`, then `n` bytes of `.index`, then the rest as the data of every
//! shard. Parsing must never panic; every entry that parses is decoded against the data, which
//! exercises the extent, crc32c and dtype checks. Seeds: `[len][fixture index][data]` and small
//! writer-made bundles (see `converters/tests/tf_bundle.rs`, `write_fuzz_seeds`).
#![no_main]

use std::path::Path;

use zoo_converters::tf_bundle::Index;
use zoo_converters::Limits;

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    let (index, data) = match input {
        [a, b, rest @ ..] => {
            let n = (u16::from_le_bytes([*a, *b]) as usize).min(rest.len());
            rest.split_at(n)
        }
        _ => (input, &[][..]),
    };
    let limits = Limits {
        max_tensor_bytes: 1 << 20,
        max_tensors: 1 << 12,
        max_metadata_bytes: 1 << 20,
        ..Limits::default()
    };
    let Ok(index) = Index::parse(index, Path::new("fuzz.index"), &limits) else {
        return;
    };
    for e in &index.entries {
        let (Ok(start), Ok(size)) = (usize::try_from(e.offset), usize::try_from(e.size)) else {
            continue;
        };
        let Some(bytes) = start.checked_add(size).and_then(|end| data.get(start..end)) else {
            continue;
        };
        if let Ok(t) = e.decode(bytes.to_vec(), Path::new("fuzz.data")) {
            assert_eq!(t.shape(), e.shape.as_slice());
            assert_eq!(t.data(), bytes);
        }
    }
});
