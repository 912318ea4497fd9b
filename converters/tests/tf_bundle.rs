//! TensorFlow tensor bundle reader: the real fixture checkpoint, corruption, tarballs, round trips.
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use zoo_converters::tf_bundle::{unpack_tarball, Bundle, BundleError, BundleWriter, Entry, Index};
use zoo_converters::{DType, Error, Limits, Tensor};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/efficientnet-tiny")
}

fn fixture_prefix() -> PathBuf {
    fixture_dir().join("ckpt/model.ckpt")
}

fn manifest() -> serde_json::Value {
    let text = fs::read_to_string(fixture_dir().join("MANIFEST.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn bundle_err(e: Error) -> BundleError {
    match e {
        Error::TfBundle(b) => b,
        other => panic!("expected a tf_bundle error, got {other}"),
    }
}

fn dtype_from_manifest(s: &str) -> DType {
    match s {
        "float32" => DType::F32,
        "int64" => DType::I64,
        other => panic!("manifest dtype {other} not expected in the fixture"),
    }
}

fn shape_of(v: &serde_json::Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

/// Checks everything the fixture's manifest and converted files say about the checkpoint.
fn check_fixture_checkpoint(prefix: &Path) {
    let bundle = Bundle::open(prefix).unwrap();
    let m = manifest();

    // Names, shapes and dtypes: exactly the manifest's 665 variables.
    let vars = m["variables"].as_array().unwrap();
    assert_eq!(bundle.entries().len(), 665);
    assert_eq!(vars.len(), 665);
    let mut want: Vec<(String, Vec<usize>, DType)> = vars
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_owned(),
                shape_of(&v["shape"]),
                dtype_from_manifest(v["dtype"].as_str().unwrap()),
            )
        })
        .collect();
    want.sort();
    let got: Vec<(String, Vec<usize>, DType)> = bundle
        .entries()
        .iter()
        .map(|e| (e.name.clone(), e.shape.clone(), e.dtype))
        .collect();
    assert_eq!(
        got, want,
        "entries are the manifest's variables, in name order"
    );

    // Every tensor reads (crc-checked).
    for e in bundle.entries() {
        let t = bundle.read(&e.name).unwrap();
        assert_eq!(t.shape(), e.shape.as_slice());
        assert_eq!(t.data().len() as u64, e.size);
    }

    let step = bundle.read("global_step").unwrap();
    assert_eq!(step.dtype(), DType::I64);
    assert_eq!(step.shape(), &[] as &[usize]);
    assert_eq!(step.data(), 1234i64.to_le_bytes());
    assert_eq!(m["global_step"].as_i64(), Some(1234));

    // Values: EMA and raw tensors, permuted to torch layout, equal the converted files bit for bit.
    for (file, key) in [
        ("tf_efficientnet_tiny.safetensors", "tf_ema"),
        ("tf_efficientnet_tiny_raw.safetensors", "tf"),
    ] {
        let bytes = fs::read(fixture_dir().join(file)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mapping = m["mapping"].as_array().unwrap();
        assert_eq!(mapping.len(), 197);
        assert_eq!(st.names().len(), 197);
        for row in mapping {
            let tf_name = row[key].as_str().unwrap();
            let timm = row["timm"].as_str().unwrap();
            let t = bundle.read(tf_name).unwrap();
            assert_eq!(
                t.shape(),
                shape_of(&row["tf_shape"]).as_slice(),
                "{tf_name}"
            );
            let t = match row["permute"].as_array() {
                Some(p) => {
                    let perm: Vec<usize> = p.iter().map(|x| x.as_u64().unwrap() as usize).collect();
                    t.permute(&perm).unwrap()
                }
                None => t,
            };
            let view = st.tensor(timm).unwrap();
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{timm}");
            assert_eq!(t.shape(), view.shape(), "{tf_name} -> {timm}");
            assert!(
                t.data() == view.data(),
                "{file}: {tf_name} -> {timm} differs"
            );
        }
    }
}

#[test]
fn fixture_checkpoint_reads_completely_and_matches_the_converted_files() {
    check_fixture_checkpoint(&fixture_prefix());
}

#[test]
fn fixture_tarball_unpacks_and_reads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let prefix =
        unpack_tarball(&fixture_dir().join("efficientnet-tiny.tar.gz"), dir.path()).unwrap();
    assert_eq!(prefix, dir.path().join("efficientnet-tiny/model.ckpt"));
    check_fixture_checkpoint(&prefix);
}

/// Copies the fixture checkpoint into a temp dir (so it can be damaged).
fn fixture_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for f in ["model.ckpt.index", "model.ckpt.data-00000-of-00001"] {
        fs::copy(fixture_dir().join("ckpt").join(f), dir.path().join(f)).unwrap();
    }
    let prefix = dir.path().join("model.ckpt");
    (dir, prefix)
}

#[test]
fn flipping_any_data_byte_names_the_tensor() {
    let (_dir, prefix) = fixture_copy();
    let data_path = dir_data(&prefix);
    let bundle = Bundle::open(&prefix).unwrap();
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&data_path)
        .unwrap();
    let entries: Vec<Entry> = bundle.entries().to_vec();
    let largest = entries.iter().max_by_key(|e| e.size).unwrap().name.clone();
    let sample = entries
        .iter()
        .enumerate()
        .filter(|(i, e)| i % 23 == 0 || e.name == "global_step" || e.name == largest)
        .map(|(_, e)| e);
    let mut checked = 0;
    for e in sample {
        let mut positions = vec![0, e.size - 1, e.size / 2, e.size / 3];
        positions.dedup();
        for pos in positions {
            let at = e.offset + pos;
            let mut b = [0u8];
            file.read_exact_at(&mut b, at).unwrap();
            for flip in [0x01u8, 0x80, 0xff] {
                file.write_all_at(&[b[0] ^ flip], at).unwrap();
                let err = bundle_err(bundle.read(&e.name).unwrap_err());
                match &err {
                    BundleError::TensorChecksum {
                        tensor,
                        expected,
                        actual,
                        offset,
                        path,
                        ..
                    } => {
                        assert_eq!(tensor, &e.name);
                        assert_eq!(*expected, e.crc32c);
                        assert_ne!(actual, expected);
                        assert_eq!(*offset, e.offset);
                        assert_eq!(path, &data_path);
                    }
                    other => panic!("flip at {at} in {}: {other}", e.name),
                }
                let msg = err.to_string();
                assert!(msg.contains(&e.name) && msg.contains("crc32c"), "{msg}");
                checked += 1;
            }
            file.write_all_at(&b, at).unwrap();
            bundle.read(&e.name).unwrap();
        }
    }
    assert!(checked > 100, "only {checked} flips checked");
}

fn dir_data(prefix: &Path) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".data-00000-of-00001");
    PathBuf::from(s)
}

#[test]
fn truncated_data_is_a_typed_error_at_open_and_at_read() {
    let (_dir, prefix) = fixture_copy();
    let data_path = dir_data(&prefix);
    let full = fs::metadata(&data_path).unwrap().len();
    let bundle = Bundle::open(&prefix).unwrap();
    let last = bundle
        .entries()
        .iter()
        .max_by_key(|e| e.offset + e.size)
        .unwrap()
        .clone();
    assert_eq!(last.offset + last.size, full);
    for len in [full - 1, full / 2, 1, 0] {
        fs::OpenOptions::new()
            .write(true)
            .open(&data_path)
            .unwrap()
            .set_len(len)
            .unwrap();
        let err = bundle_err(Bundle::open(&prefix).unwrap_err());
        match err {
            BundleError::Truncated {
                path,
                needed,
                available,
                what,
                offset,
            } => {
                assert_eq!(path, data_path);
                assert!(available < needed, "{what}: {available} >= {needed}");
                assert_eq!(available, len.saturating_sub(offset));
                assert!(what.starts_with("tensor `"), "{what}");
            }
            other => panic!("len {len}: {other}"),
        }
        // The bundle opened before the truncation reports it when reading.
        let err = bundle_err(bundle.read(&last.name).unwrap_err());
        assert!(
            matches!(&err, BundleError::Truncated { what, needed, .. } if what.contains(&last.name) && *needed == last.size),
            "{err}"
        );
    }
}

#[test]
fn truncated_or_garbled_index_is_a_typed_error() {
    let bytes = fs::read(fixture_dir().join("ckpt/model.ckpt.index")).unwrap();
    let path = Path::new("model.ckpt.index");
    let limits = Limits::default();
    let good = Index::parse(&bytes, path, &limits).unwrap();
    assert_eq!(good.num_shards, 1);
    assert_eq!(good.entries.len(), 665);
    for len in (0..bytes.len())
        .step_by(97)
        .chain([bytes.len() - 1, bytes.len() - 48])
    {
        let err = bundle_err(Index::parse(&bytes[..len], path, &limits).unwrap_err());
        assert!(
            matches!(
                err,
                BundleError::Truncated { .. } | BundleError::BadMagic { .. }
            ),
            "len {len}: {err}"
        );
    }
    let footer_padding = bytes.len() - 48..bytes.len() - 8;
    let mut errors = 0;
    for i in (0..bytes.len())
        .step_by(13)
        .chain(bytes.len() - 60..bytes.len())
    {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        match Index::parse(&b, path, &limits) {
            Ok(idx) => {
                assert_eq!(idx, good, "flip at {i} changed the index silently");
                assert!(footer_padding.contains(&i), "flip at {i} went unnoticed");
            }
            Err(e) => {
                let e = bundle_err(e);
                assert!(e.to_string().contains("model.ckpt.index"), "{e}");
                errors += 1;
            }
        }
    }
    assert!(errors > 2000, "{errors}");
    // Through the file system as well: a garbled index on disk.
    let (_dir, prefix) = fixture_copy();
    let mut s = prefix.as_os_str().to_owned();
    s.push(".index");
    let mut b = bytes.clone();
    b[100] ^= 1;
    fs::write(PathBuf::from(s), &b).unwrap();
    let err = bundle_err(Bundle::open(&prefix).unwrap_err());
    assert!(
        matches!(err, BundleError::BlockChecksum { offset: 0, .. }),
        "{err}"
    );
}

#[test]
fn limits_are_enforced_before_reading() {
    let limits = Limits {
        max_tensor_bytes: 1000,
        ..Limits::default()
    };
    let err = bundle_err(Bundle::open_with_limits(fixture_prefix(), limits).unwrap_err());
    assert!(
        matches!(&err, BundleError::Limit { limit: 1000, what, .. } if what.contains("size of tensor")),
        "{err}"
    );
    let limits = Limits {
        max_tensors: 100,
        ..Limits::default()
    };
    let err = bundle_err(Bundle::open_with_limits(fixture_prefix(), limits).unwrap_err());
    assert!(
        matches!(
            &err,
            BundleError::Limit {
                actual: 102,
                limit: 101,
                ..
            }
        ),
        "{err}"
    );
    let limits = Limits {
        max_metadata_bytes: 28515,
        ..Limits::default()
    };
    let err = bundle_err(Bundle::open_with_limits(fixture_prefix(), limits).unwrap_err());
    assert!(
        matches!(&err, BundleError::Limit { actual: 28516, .. }),
        "{err}"
    );
}

#[test]
fn reading_an_unknown_name_is_an_error() {
    let bundle = Bundle::open(fixture_prefix()).unwrap();
    let err = bundle_err(bundle.read("no/such/tensor").unwrap_err());
    assert!(matches!(err, BundleError::NoSuchTensor { ref name, .. } if name == "no/such/tensor"));
    assert!(bundle.entry("").is_none(), "the header is not an entry");
}

#[test]
fn prefetch_is_only_a_hint() {
    let bundle = Bundle::open(fixture_prefix()).unwrap();
    let before: Vec<Tensor> = bundle
        .entries()
        .iter()
        .map(|e| bundle.read_entry(e).unwrap())
        .collect();
    // An entry that is not the bundle's (past the end of the shard) is ignored, not read.
    let mut foreign = bundle.entries()[0].clone();
    foreign.offset = u64::MAX / 2;
    bundle.prefetch(&foreign);
    for (e, t) in bundle.entries().iter().zip(&before) {
        bundle.prefetch(e);
        assert_eq!(&bundle.read_entry(e).unwrap(), t, "{}", e.name);
    }
    assert!(bundle_err(bundle.read_entry(&foreign).unwrap_err())
        .to_string()
        .contains(&foreign.name));
}

// ---- tarballs ----

/// A tarball with one entry whose raw header fields are set by hand (the `tar` crate's
/// convenience setters refuse `..` and absolute paths, which is what we need to test).
fn evil_tarball(dir: &Path, name: &[u8], kind: tar::EntryType, link: Option<&str>) -> PathBuf {
    let path = dir.join("evil.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        fs::File::create(&path).unwrap(),
        flate2::Compression::fast(),
    );
    let mut builder = tar::Builder::new(gz);
    // A harmless checkpoint-looking file first, so the refusal is about the evil entry.
    let mut h = tar::Header::new_gnu();
    h.set_path("ok/model.ckpt.index").unwrap();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_cksum();
    builder.append(&h, &b"abc"[..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(kind);
    h.set_mode(0o644);
    let data: &[u8] = if kind == tar::EntryType::Regular {
        b"pwned"
    } else {
        b""
    };
    h.set_size(data.len() as u64);
    if let Some(l) = link {
        h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
    }
    h.set_cksum();
    builder.append(&h, data).unwrap();
    builder.into_inner().unwrap().finish().unwrap();
    path
}

#[test]
fn tarball_path_escapes_and_links_are_refused() {
    let cases: Vec<(&[u8], tar::EntryType, Option<&str>, &str)> = vec![
        (b"../evil", tar::EntryType::Regular, None, ".."),
        (b"ok/../../evil", tar::EntryType::Regular, None, ".."),
        (
            b"/tmp/zoo-evil-absolute",
            tar::EntryType::Regular,
            None,
            "absolute",
        ),
        (
            b"ok/link",
            tar::EntryType::Symlink,
            Some("/etc/passwd"),
            "Symlink",
        ),
        (b"ok/hard", tar::EntryType::Link, Some("../../evil"), "Link"),
        (b"ok/fifo", tar::EntryType::Fifo, None, "Fifo"),
        (
            b"ok/model.ckpt.index",
            tar::EntryType::Regular,
            None,
            "listed twice",
        ),
    ];
    for (name, kind, link, reason_has) in cases {
        let work = tempfile::tempdir().unwrap();
        let dest = work.path().join("dest");
        fs::create_dir(&dest).unwrap();
        let tgz = evil_tarball(work.path(), name, kind, link);
        let err = bundle_err(unpack_tarball(&tgz, &dest).unwrap_err());
        let shown = String::from_utf8_lossy(name).to_string();
        match &err {
            BundleError::UnsafeTarEntry {
                entry,
                reason,
                archive,
            } => {
                assert_eq!(entry, &shown);
                assert_eq!(archive, &tgz);
                assert!(reason.contains(reason_has), "{shown}: {reason}");
            }
            other => panic!("{shown}: {other}"),
        }
        assert!(!work.path().join("evil").exists(), "{shown} escaped");
        assert!(!Path::new("/tmp/zoo-evil-absolute").exists());
        assert!(!dest.join("ok/link").exists() && !dest.join("ok/hard").exists());
    }
}

#[test]
fn tarball_without_a_checkpoint_is_an_error() {
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("empty.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        fs::File::create(&path).unwrap(),
        flate2::Compression::fast(),
    );
    let mut builder = tar::Builder::new(gz);
    let mut h = tar::Header::new_gnu();
    h.set_path("x/readme.txt").unwrap();
    h.set_size(2);
    h.set_cksum();
    builder.append(&h, &b"hi"[..]).unwrap();
    builder.into_inner().unwrap().finish().unwrap();
    let dest = work.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let err = bundle_err(unpack_tarball(&path, &dest).unwrap_err());
    assert!(
        matches!(err, BundleError::CheckpointNotFound { ref found, .. } if found.is_empty()),
        "{err}"
    );
}

// ---- round trips through BundleWriter ----

fn tensor_of(dtype: DType, shape: Vec<usize>, seed: u64) -> Tensor {
    let n: usize = shape.iter().product::<usize>() * dtype.size();
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let data: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if dtype == DType::Bool {
                (x & 1) as u8
            } else {
                x as u8
            }
        })
        .collect();
    Tensor::new("t", dtype, shape, data).unwrap()
}

/// Every dtype, in the order the committed fuzz seeds were written with (changing it changes
/// the seeds).
const DTYPES: [DType; 10] = [
    DType::F32,
    DType::F16,
    DType::BF16,
    DType::F64,
    DType::I8,
    DType::U8,
    DType::I16,
    DType::I32,
    DType::I64,
    DType::Bool,
];

fn write_and_check(
    tensors: &[(String, Tensor)],
    max_shard: u64,
    block: usize,
) -> (tempfile::TempDir, Bundle) {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("model.ckpt");
    let mut w = BundleWriter::create(&prefix)
        .unwrap()
        .with_max_shard_bytes(max_shard)
        .with_index_block_size(block);
    for (name, t) in tensors {
        w.add(name, t).unwrap();
    }
    let written = w.finish().unwrap();
    assert!(written.iter().all(|p| p.exists()));
    let bundle = Bundle::open(&prefix).unwrap();
    let mut want: Vec<&(String, Tensor)> = tensors.iter().collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(bundle.entries().len(), want.len());
    for (e, (name, t)) in bundle.entries().iter().zip(want) {
        assert_eq!(&e.name, name);
        assert_eq!(&bundle.read(name).unwrap(), t, "{name}");
    }
    (dir, bundle)
}

#[test]
fn round_trip_all_dtypes_many_shards_and_index_blocks() {
    let tensors: Vec<(String, Tensor)> = (0..1500)
        .map(|i| {
            let dtype = DTYPES[i % DTYPES.len()];
            let shape = match i % 4 {
                0 => vec![],
                1 => vec![i % 5],
                2 => vec![3, i % 7 + 1],
                _ => vec![2, 1, 3, i % 3],
            };
            (
                format!("model/layer_{:04}/{}", 1499 - i, dtype.name()),
                tensor_of(dtype, shape, i as u64),
            )
        })
        .collect();
    let (_dir, bundle) = write_and_check(&tensors, 4096, 1024);
    assert!(bundle.num_shards() > 5, "{} shards", bundle.num_shards());
    let shards: std::collections::BTreeSet<u32> =
        bundle.entries().iter().map(|e| e.shard_id).collect();
    assert_eq!(shards.len() as u32, bundle.num_shards());
}

#[test]
fn round_trip_empty_bundle_and_empty_tensor() {
    let (_d, b) = write_and_check(&[], u64::MAX, 1 << 18);
    assert_eq!(b.num_shards(), 1);
    let (_d, b) = write_and_check(
        &[("zero".into(), tensor_of(DType::F32, vec![0, 4], 1))],
        u64::MAX,
        1 << 18,
    );
    assert_eq!(b.entry("zero").unwrap().size, 0);
}

#[test]
fn writer_rejects_duplicates_and_the_header_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = BundleWriter::create(dir.path().join("m")).unwrap();
    let t = tensor_of(DType::F32, vec![2], 0);
    w.add("a", &t).unwrap();
    assert!(matches!(
        bundle_err(w.add("a", &t).unwrap_err()),
        BundleError::Write { .. }
    ));
    assert!(matches!(
        bundle_err(w.add("", &t).unwrap_err()),
        BundleError::Write { .. }
    ));
}

#[test]
fn bool_tensor_with_a_byte_other_than_0_or_1_is_rejected() {
    let t = Tensor::new("b", DType::Bool, vec![3], vec![0, 1, 2]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("m");
    let mut w = BundleWriter::create(&prefix).unwrap();
    w.add("b", &t).unwrap();
    w.finish().unwrap();
    let err = bundle_err(Bundle::open(&prefix).unwrap().read("b").unwrap_err());
    assert!(
        matches!(
            err,
            BundleError::BadBool {
                index: 2,
                value: 2,
                ..
            }
        ),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn round_trip_random_bundles(
        specs in prop::collection::vec(
            ("[a-z/_]{1,12}", 0usize..DTYPES.len(), prop::collection::vec(0usize..5, 0..4)),
            0..40,
        ),
        max_shard in prop_oneof![Just(u64::MAX), 1u64..200],
        block in 1usize..600,
    ) {
        let mut seen = std::collections::BTreeSet::new();
        let tensors: Vec<(String, Tensor)> = specs
            .into_iter()
            .enumerate()
            .filter(|(_, (name, _, _))| seen.insert(name.clone()))
            .map(|(i, (name, d, shape))| (name, tensor_of(DTYPES[d], shape, i as u64)))
            .collect();
        write_and_check(&tensors, max_shard, block);
    }
}

// ---- fuzz corpus and regressions ----

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

#[test]
fn fuzz_regressions_and_corpus_replay_without_panics() {
    let regressions = files_in(&fuzz_dir().join("regressions/tf_index"));
    let corpus = files_in(&fuzz_dir().join("corpus/tf_index"));
    assert!(corpus.len() >= 5, "corpus has {} files", corpus.len());
    for p in regressions.iter().chain(&corpus) {
        zoo_converters::tf_bundle::fuzz_index(&fs::read(p).unwrap());
    }
}

/// The seed inputs: `[u16 len][index][data]` for the fixture and for small writer-made bundles.
fn fuzz_seeds() -> Vec<(String, Vec<u8>)> {
    let pack = |index: &[u8], data: &[u8]| {
        let mut v = (index.len() as u16).to_le_bytes().to_vec();
        v.extend_from_slice(index);
        v.extend_from_slice(data);
        v
    };
    let mut seeds = Vec::new();
    // The fixture index, with the first 4 KiB of its data.
    let idx = fs::read(fixture_dir().join("ckpt/model.ckpt.index")).unwrap();
    let data = fs::read(fixture_dir().join("ckpt/model.ckpt.data-00000-of-00001")).unwrap();
    seeds.push(("seed-fixture".to_owned(), pack(&idx, &data[..4096])));
    let cases: Vec<(&str, usize, usize, usize)> = vec![
        ("seed-one-f32", 1, 0, 1 << 18),
        ("seed-all-dtypes", 10, 0, 1 << 18),
        ("seed-multi-block", 24, 0, 96),
        ("seed-restart-1", 40, 1, 64),
        ("seed-sharded", 12, 2, 200),
    ];
    for (label, n, variant, block) in cases {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("m");
        let mut w = BundleWriter::create(&prefix)
            .unwrap()
            .with_index_block_size(block)
            .with_max_shard_bytes(if variant == 2 { 16 } else { u64::MAX });
        for i in 0..n {
            let dtype = DTYPES[i % DTYPES.len()];
            let shape = if variant == 1 {
                vec![1]
            } else {
                vec![i % 3 + 1, 2]
            };
            w.add(
                &format!("net/block_{i:02}/w"),
                &tensor_of(dtype, shape, i as u64),
            )
            .unwrap();
        }
        w.finish().unwrap();
        let idx = fs::read(dir.path().join("m.index")).unwrap();
        let shard0 = files_in(dir.path())
            .into_iter()
            .find(|p| p.to_string_lossy().contains(".data-00000-of-"))
            .unwrap();
        seeds.push((label.to_owned(), pack(&idx, &fs::read(shard0).unwrap())));
    }
    seeds
}

/// The committed seeds equal what the writer makes now. `ZOO_WRITE_FUZZ_SEEDS=1` rewrites them.
#[test]
fn fuzz_seeds_are_committed_and_current() {
    let dir = fuzz_dir().join("corpus/tf_index");
    let write = std::env::var_os("ZOO_WRITE_FUZZ_SEEDS").is_some();
    for (name, bytes) in fuzz_seeds() {
        let path = dir.join(&name);
        if write {
            fs::create_dir_all(&dir).unwrap();
            fs::write(&path, &bytes).unwrap();
        }
        let committed = fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with ZOO_WRITE_FUZZ_SEEDS=1 to create)",
                path.display()
            )
        });
        assert!(
            committed == bytes,
            "{} is stale (ZOO_WRITE_FUZZ_SEEDS=1 rewrites it)",
            path.display()
        );
        zoo_converters::tf_bundle::fuzz_index(&bytes);
    }
}
