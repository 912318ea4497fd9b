//! Regression tests for the trust-boundary defects of issue #14 (H1, M1, M2, L1, L3, L4, L9,
//! L11, Q1–Q3 of `trust-boundary-defects.md`), each for its whole class: the inputs here are
//! built from scratch, not copied from the report.
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use zoo_converters::pickle::{self, StateDictPickler};
use zoo_converters::pth::{self, Error};
use zoo_converters::tf_bundle::{self, BundleError};
use zoo_converters::{npy, safetensors, DType, LimitKind, Limits};

#[path = "support/craft.rs"]
mod craft;
use craft::zip_of;

fn tiny(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/efficientnet-tiny")
        .join(name)
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// `data.pkl` of `{'w': <f32 tensor of 4>}` on storage key `0`.
fn one_tensor_pickle() -> Vec<u8> {
    let mut p = StateDictPickler::new();
    p.add("w", DType::F32, &[4]);
    p.finish()
}

fn ones() -> Vec<u8> {
    f32_bytes(&[1.0; 4])
}

fn nines() -> Vec<u8> {
    f32_bytes(&[9.0; 4])
}

fn write_tmp(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    p
}

// ---- H1: duplicate zip entries ----

#[test]
fn zip_with_any_duplicate_entry_name_is_refused_naming_the_entry() {
    let pkl = one_tensor_pickle();
    let (ones, nines) = (ones(), nines());
    let base: Vec<(&str, &[u8])> = vec![
        ("archive/data.pkl", &pkl),
        ("archive/byteorder", b"little"),
        ("archive/data/0", &ones),
        ("archive/version", b"3\n"),
    ];
    assert_eq!(
        pth::read_bytes(&zip_of(&base), Limits::default()).unwrap()[0]
            .1
            .data(),
        &ones[..]
    );
    // a second copy of every entry, before and after the first, with the same name or one
    // that differs only in ASCII case (torch's lookup does not tell those apart)
    for i in 0..base.len() {
        for second in [base[i].0.to_owned(), base[i].0.to_uppercase(), {
            let (root, rest) = base[i].0.split_once('/').unwrap();
            format!("{root}/{}", rest.to_uppercase())
        }] {
            for before in [false, true] {
                let mut entries = base.clone();
                let dup: (&str, &[u8]) = (&second, &nines);
                if before {
                    entries.insert(i, dup);
                } else {
                    entries.insert(i + 1, dup);
                }
                let err = pth::read_bytes(&zip_of(&entries), Limits::default()).unwrap_err();
                match &err {
                    Error::DuplicateEntry {
                        first, second: s, ..
                    } => {
                        assert!(
                            first.eq_ignore_ascii_case(base[i].0)
                                && s.eq_ignore_ascii_case(base[i].0),
                            "{err}"
                        );
                    }
                    // a case-changed first entry changes the root torch takes
                    Error::Root { .. } if before && i == 0 && second != base[0].0 => {}
                    other => panic!("{second} (before: {before}): {other}"),
                }
            }
        }
    }
}

#[test]
fn zip_read_the_way_torch_reads_it() {
    let pkl = one_tensor_pickle();
    let ones = ones();
    let read = |entries: &[(&str, &[u8])]| pth::read_bytes(&zip_of(entries), Limits::default());
    // torch takes the root from the first entry and requires a version record
    let stray = read(&[
        ("other/x", b""),
        ("archive/data.pkl", &pkl),
        ("archive/data/0", &ones),
        ("archive/version", b"3\n"),
    ]);
    assert!(matches!(stray, Err(Error::Root { .. })), "{stray:?}");
    // a TorchScript archive (torch.load with weights_only refuses those), an empty root
    let script = read(&[
        ("archive/data.pkl", &pkl),
        ("archive/data/0", &ones),
        ("archive/constants.pkl", b"\x80\x02).".as_slice()),
        ("archive/version", b"3\n"),
    ]);
    assert!(matches!(script, Err(Error::Root { .. })), "{script:?}");
    let empty_root = read(&[
        ("/data.pkl", &pkl),
        ("/data/0", &ones),
        ("/version", b"3\n"),
    ]);
    assert!(
        matches!(empty_root, Err(Error::Root { .. })),
        "{empty_root:?}"
    );
    let no_version = read(&[("archive/data.pkl", &pkl), ("archive/data/0", &ones)]);
    assert!(
        matches!(no_version, Err(Error::MissingEntry { .. })),
        "{no_version:?}"
    );
    for bad in [&b"0\n"[..], b"11\n", b"", b"3x", b" 3"] {
        let r = read(&[
            ("archive/data.pkl", &pkl),
            ("archive/data/0", &ones),
            ("archive/version", bad),
        ]);
        assert!(matches!(r, Err(Error::Record { .. })), "{bad:?}: {r:?}");
    }
    let ok = read(&[
        ("archive/data.pkl", &pkl),
        ("archive/data/0", &ones),
        ("archive/.data/version", b"10\n"),
    ]);
    assert!(ok.is_ok(), "{ok:?}");
    // every storage the pickle names must load, as torch loads them all
    let mut p = StateDictPickler::new();
    p.add("w", DType::F32, &[4]);
    p.add("v", DType::F32, &[2]);
    let two = p.finish();
    let short = read(&[
        ("archive/data.pkl", &two),
        ("archive/data/0", &ones),
        ("archive/data/1", &ones[..7]),
        ("archive/version", b"3\n"),
    ]);
    assert!(matches!(short, Err(Error::StorageSize { .. })), "{short:?}");
    // a record's bytes must match its CRC-32
    let mut bytes = zip_of(&[
        ("archive/data.pkl", &pkl),
        ("archive/data/0", &ones),
        ("archive/version", b"3\n"),
    ]);
    let at = bytes
        .windows(4)
        .position(|w| w == [0, 0, 0x80, 0x3f])
        .unwrap();
    bytes[at + 3] = 0x40;
    let crc = pth::read_bytes(&bytes, Limits::default());
    assert!(matches!(crc, Err(Error::Checksum { .. })), "{crc:?}");
}

// ---- L3: one storage key under two dtypes or sizes ----

#[test]
fn storage_key_declared_twice_with_another_dtype_or_size_is_refused() {
    let two = |second_class: &str, second_numel: u8| {
        let mut p = StateDictPickler::new();
        p.add("a", DType::F32, &[4]);
        p.add("b", DType::F32, &[4]);
        let mut bytes = p.finish();
        // the second persistent id: key '1' → '0', its class and numel as given
        let key1 = b"X\x01\x00\x00\x001";
        let at = bytes.windows(key1.len()).rposition(|w| w == key1).unwrap();
        bytes[at + key1.len() - 1] = b'0';
        let class = b"torch\nFloatStorage\n";
        let c = bytes[..at]
            .windows(class.len())
            .rposition(|w| w == class)
            .unwrap();
        bytes.splice(
            c..c + class.len(),
            format!("torch\n{second_class}\n").bytes(),
        );
        let numel = b"K\x04tQ";
        let n = bytes.windows(4).rposition(|w| w == numel).unwrap();
        bytes[n + 1] = second_numel;
        bytes
    };
    for (class, numel) in [
        ("IntStorage", 4u8),
        ("DoubleStorage", 2),
        ("FloatStorage", 3),
    ] {
        let pkl = two(class, numel);
        let e = pickle::unpickle(&pkl, &Limits::default()).unwrap_err();
        assert!(
            matches!(&e, pickle::Error::StorageRedeclared { key, first_dtype: DType::F32, first_numel: 4, .. } if key == "0"),
            "{class}: {e}"
        );
        assert!(e.to_string().contains("storage `0`"), "{e}");
    }
    // the same declaration twice is one storage (tied weights)
    let same = two("FloatStorage", 4);
    assert!(pickle::unpickle(&same, &Limits::default()).is_ok());
}

// ---- L1: interpreter memory ----

#[test]
fn pickle_memory_is_bounded_by_its_length_and_a_cap() {
    let is_memory_limit = |e: &pickle::Error| {
        matches!(
            e,
            pickle::Error::Limit {
                kind: LimitKind::PickleMemory | LimitKind::PickleItems,
                ..
            }
        )
    };
    let n = 1_000_000;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("NONE", [&b"\x80\x02"[..], &vec![b'N'; n], b"."].concat()),
        (
            "EMPTY_LIST",
            [&b"\x80\x02"[..], &vec![b']'; n], b"."].concat(),
        ),
        (
            "EMPTY_DICT",
            [&b"\x80\x02"[..], &vec![b'}'; n], b"."].concat(),
        ),
        (
            "nested 1-tuples",
            [&b"\x80\x02N"[..], &vec![0x85; n], b"."].concat(),
        ),
        (
            "appends",
            [&b"\x80\x02]"[..], &b"Na".repeat(n / 2), b"."].concat(),
        ),
    ];
    for (what, data) in cases {
        let e = pickle::unpickle(&data, &Limits::default()).unwrap_err();
        assert!(is_memory_limit(&e), "{what}: {e}");
        assert!(e.to_string().contains("ZOO_LIMITS=pickle-"), "{e}");
    }
    // MEMOIZE is not an opcode torch's weights-only unpickler reads
    let memoize = [&b"\x80\x02"[..], &b"]\x94".repeat(1000), b"."].concat();
    assert!(matches!(
        pickle::unpickle(&memoize, &Limits::default()),
        Err(pickle::Error::UnsupportedOpcode { opcode: 0x94, .. })
    ));
    // a real state dict pickle is far within the budget
    let real = pth::read(&tiny("tf_efficientnet_tiny.pth")).unwrap();
    assert_eq!(real.len(), 197);
}

// ---- M1 / M2: tarballs ----

fn gz(tar: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(tar).unwrap();
    e.finish().unwrap()
}

/// A tar of regular files (GNU headers), with or without the end-of-archive blocks.
fn tar_of(files: &[(&str, &[u8])], end: bool) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    // `into_inner` writes the two zero blocks that end an archive
    let mut out = b.into_inner().unwrap();
    if !end {
        out.truncate(out.len() - 1024);
    }
    out
}

fn checkpoint_files(dir: &str) -> Vec<(String, Vec<u8>)> {
    ["model.ckpt.index", "model.ckpt.data-00000-of-00001"]
        .iter()
        .map(|f| {
            (
                format!("{dir}/{f}"),
                fs::read(tiny("ckpt").join(f)).unwrap(),
            )
        })
        .collect()
}

fn refs(files: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
    files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect()
}

fn tar_err(e: zoo_converters::Error) -> BundleError {
    match e {
        zoo_converters::Error::TfBundle(b) => b,
        other => panic!("expected a tarball error, got {other}"),
    }
}

#[test]
fn multi_member_gzip_tarball_is_read_to_the_end() {
    let work = tempfile::tempdir().unwrap();
    let a = checkpoint_files("a");
    let b = checkpoint_files("b");
    // member 1: checkpoint a without the end blocks; member 2: checkpoint b
    let two = [gz(&tar_of(&refs(&a), false)), gz(&tar_of(&refs(&b), true))].concat();
    let path = write_tmp(work.path(), "two.tar.gz", &two);
    let err = tar_err(tf_bundle::unpack_tarball(&path, &work.path().join("x")).unwrap_err());
    assert!(
        matches!(&err, BundleError::CheckpointNotFound { found, .. } if found.len() == 2),
        "{err}"
    );
    // member 2 repeats member 1's paths with other bytes: refused, never overridden
    let mut zeroed = a.clone();
    zeroed[1].1.iter_mut().take(64).for_each(|b| *b = 0);
    let over = [
        gz(&tar_of(&refs(&a), false)),
        gz(&tar_of(&refs(&zeroed), true)),
    ]
    .concat();
    let path = write_tmp(work.path(), "over.tar.gz", &over);
    let err = tar_err(tf_bundle::unpack_tarball(&path, &work.path().join("y")).unwrap_err());
    assert!(
        matches!(&err, BundleError::UnsafeTarEntry { reason, .. } if reason.contains("listed twice")),
        "{err}"
    );
    // anything after the end of the archive, or after the last gzip member, is refused
    for tail in [
        gz(&tar_of(&[("b/x.index", b"hidden")], true)),
        b"trailing garbage".to_vec(),
    ] {
        let bytes = [gz(&tar_of(&refs(&a), true)), tail].concat();
        let path = write_tmp(work.path(), "tail.tar.gz", &bytes);
        let dest = tempfile::tempdir().unwrap();
        let err = tar_err(tf_bundle::unpack_tarball(&path, dest.path()).unwrap_err());
        assert!(matches!(&err, BundleError::Tar { .. }), "{err}");
    }
    // one complete checkpoint in two gzip members is one checkpoint
    let split = [
        gz(&tar_of(&refs(&a[..1]), false)),
        gz(&tar_of(&refs(&a[1..]), true)),
    ]
    .concat();
    let path = write_tmp(work.path(), "split.tar.gz", &split);
    let prefix = tf_bundle::unpack_tarball(&path, &work.path().join("z")).unwrap();
    assert!(tf_bundle::Bundle::open(&prefix).is_ok());
}

#[test]
fn tarball_extraction_writes_only_checkpoint_members_within_budget() {
    let work = tempfile::tempdir().unwrap();
    let mut files = checkpoint_files("ck");
    files.push((
        "ck/checkpoint".into(),
        b"model_checkpoint_path: \"model.ckpt\"\n".to_vec(),
    ));
    files.push(("ck/model.ckpt.meta".into(), vec![7; 5000]));
    files.push(("ck/pad.bin".into(), vec![0; 3 << 20]));
    files.push(("events/events.out.tfevents.1".into(), vec![1; 100]));
    let path = write_tmp(work.path(), "ck.tar.gz", &gz(&tar_of(&refs(&files), true)));
    let dest = work.path().join("dest");
    let written = tf_bundle::extract_members(&path, &dest, Limits::default()).unwrap();
    let names: Vec<&str> = written.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        names,
        [
            "ck/model.ckpt.index",
            "ck/model.ckpt.data-00000-of-00001",
            "ck/checkpoint"
        ]
    );
    assert!(!dest.join("ck/pad.bin").exists() && !dest.join("ck/model.ckpt.meta").exists());
    assert!(!dest.join("events").exists());

    // the disk budget counts what is decompressed, skipped members included
    let small = Limits {
        max_disk_bytes: 2 << 20,
        ..Limits::default()
    };
    let err = tar_err(
        tf_bundle::unpack_tarball_with_limits(&path, &work.path().join("d2"), small).unwrap_err(),
    );
    assert!(
        matches!(
            &err,
            BundleError::Limit {
                kind: LimitKind::DiskBytes,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("ZOO_LIMITS=disk-bytes="), "{err}");

    // a gzip bomb: 64 MiB of zeros in a small file, stopped at the budget, nothing written
    let bomb_files = [(
        "ck/model.ckpt.data-00000-of-00001",
        &vec![0u8; 64 << 20][..],
    )];
    let bomb = write_tmp(work.path(), "bomb.tar.gz", &gz(&tar_of(&bomb_files, true)));
    assert!(fs::metadata(&bomb).unwrap().len() < 1 << 20);
    let bomb_dest = work.path().join("bomb");
    let err = tar_err(tf_bundle::unpack_tarball_with_limits(&bomb, &bomb_dest, small).unwrap_err());
    assert!(
        matches!(
            &err,
            BundleError::Limit {
                kind: LimitKind::DiskBytes,
                ..
            }
        ),
        "{err}"
    );
    assert!(!bomb_dest.join("ck/model.ckpt.data-00000-of-00001").exists());

    // a member that is not part of the checkpoint and declares 6 GiB: refused from its header,
    // before anything is decompressed past it
    let mut h = tar::Header::new_gnu();
    h.set_path("ck/pad.bin").unwrap();
    h.set_size(6 << 30);
    h.set_mode(0o644);
    h.set_cksum();
    let mut pad = tar_of(&refs(&checkpoint_files("ck")), false);
    pad.extend(h.as_bytes());
    pad.extend(vec![0u8; 1 << 20]);
    let path = write_tmp(work.path(), "pad.tar.gz", &gz(&pad));
    let started = std::time::Instant::now();
    let err = tar_err(tf_bundle::unpack_tarball(&path, &work.path().join("pad")).unwrap_err());
    assert!(
        matches!(&err, BundleError::Limit { kind: LimitKind::DiskBytes, what, .. } if what.contains("not part of a checkpoint")),
        "{err}"
    );
    assert!(started.elapsed().as_secs() < 5);

    // an inode bomb: many empty members, stopped at the entry cap
    let many: Vec<(String, Vec<u8>)> = (0..1100).map(|i| (format!("x/f{i}"), vec![])).collect();
    let path = write_tmp(work.path(), "many.tar.gz", &gz(&tar_of(&refs(&many), true)));
    let err = tar_err(tf_bundle::unpack_tarball(&path, &work.path().join("many")).unwrap_err());
    assert!(
        matches!(
            &err,
            BundleError::Limit {
                kind: LimitKind::Entries,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("ZOO_LIMITS=entries="), "{err}");

    // a data shard larger than its index declares, whichever comes first in the archive
    let mut big = checkpoint_files("ck");
    big[1].1.extend(vec![0u8; 2 << 20]);
    for order in [[0, 1], [1, 0]] {
        let files: Vec<(String, Vec<u8>)> = order.iter().map(|&i| big[i].clone()).collect();
        let path = write_tmp(work.path(), "big.tar.gz", &gz(&tar_of(&refs(&files), true)));
        let dest = tempfile::tempdir().unwrap();
        let err = tar_err(tf_bundle::unpack_tarball(&path, dest.path()).unwrap_err());
        assert!(
            matches!(&err, BundleError::Limit { what, .. } if what.contains("larger than its index declares")),
            "{order:?}: {err}"
        );
    }
}

// ---- Q3 / L9: errors name the tarball, and never print raw bytes ----

#[test]
fn tarball_errors_name_the_tarball_and_escape_member_names() {
    let work = tempfile::tempdir().unwrap();
    // an index without its data shard: the missing file is named inside the tarball
    let files = checkpoint_files("ck");
    let path = write_tmp(
        work.path(),
        "partial.tar.gz",
        &gz(&tar_of(&refs(&files[..1]), true)),
    );
    let dest = work.path().join("scratch");
    let err = tf_bundle::open_tarball(&path, &dest, Limits::default()).unwrap_err();
    let text = err.to_string();
    let inside = path.join("ck/model.ckpt.data-00000-of-00001");
    assert!(text.contains(&inside.display().to_string()), "{text}");
    assert!(!text.contains(&dest.display().to_string()), "{text}");

    // a member name with terminal escapes, and a header with a bad checksum
    let evil = "ck/\u{1b}[2J\u{1b}]0;PWNED\u{7}/../x.index";
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..evil.len()].copy_from_slice(evil.as_bytes());
    h.set_size(0);
    h.set_cksum();
    let mut bytes = h.as_bytes().to_vec();
    bytes.extend([0u8; 1024]);
    let mut bad_sum = bytes.clone();
    bad_sum[148] = b'7';
    bad_sum[..4].copy_from_slice(b"\x1b[31");
    for (name, data) in [("evil.tar.gz", bytes), ("badsum.tar.gz", bad_sum)] {
        let path = write_tmp(work.path(), name, &gz(&data));
        let err = tf_bundle::unpack_tarball(&path, &work.path().join(name)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(name), "{text}");
        assert!(!text.chars().any(|c| c.is_control()), "{text:?}");
    }
}

// ---- L9: names from files are escaped in messages ----

#[test]
fn names_from_files_are_escaped_in_error_messages() {
    let no_controls = |text: &str| {
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        )
    };
    // a pickle GLOBAL that would clear the screen and retitle the terminal
    let global = b"\x80\x02c\x1b[2J\x1b[31mos\nsystem\x1b]0;PWNED-TITLE\x07\n).";
    let e = pickle::unpickle(global, &Limits::default()).unwrap_err();
    no_controls(&e.to_string());
    assert!(e.to_string().contains("\\u{1b}[2J"), "{e}");
    let zip = zip_of(&[("archive/data.pkl", global), ("archive/version", b"3\n")]);
    no_controls(
        &pth::read_bytes(&zip, Limits::default())
            .unwrap_err()
            .to_string(),
    );
    // zip entry names
    let pkl = one_tensor_pickle();
    let ones = ones();
    for entries in [
        vec![
            ("a\u{1b}[2J/data.pkl", &pkl[..]),
            ("a\u{1b}[2J/version", b"3\n"),
        ],
        vec![
            ("archive/data.pkl", &pkl[..]),
            ("archive/data/0", &ones[..]),
            ("archive/version", b"3\n"),
            ("archive/\u{1b}[2J\u{202e}", b""),
            ("archive/\u{1b}[2J\u{202e}", b""),
        ],
    ] {
        let e = pth::read_bytes(&zip_of(&entries), Limits::default());
        if let Err(e) = e {
            no_controls(&e.to_string());
            assert!(!e.to_string().contains('\u{202e}'), "{e}");
        }
    }
    // tensor names in safetensors
    let dir = tempfile::tempdir().unwrap();
    let header = br#"{"w\u001b[2J":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#;
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.extend(header);
    st.extend([0u8; 8]);
    let p = write_tmp(dir.path(), "x.safetensors", &st);
    let e = safetensors::read(&p).unwrap_err();
    no_controls(&e.to_string());
}

// ---- L4: allocations and npy sizes ----

#[test]
fn sizes_declared_beyond_the_limits_are_typed_errors_not_aborts() {
    let dir = tempfile::tempdir().unwrap();
    // a legacy .pth that is a few hundred bytes on disk (sparse) and declares a 16 GiB storage
    let numel: u64 = 4 << 30;
    let mut p = StateDictPickler::new();
    p.add("w", DType::F32, &[numel as usize]);
    let mut object = p.finish();
    // legacy persistent ids carry a sixth element, the view metadata (None)
    let pid_end = object.windows(2).position(|w| w == b"tQ").unwrap();
    object.insert(pid_end, b'N');
    let mut file = Vec::new();
    file.extend(pth::LEGACY_HEAD);
    file.extend(b".\x80\x02M\xe9\x03.\x80\x02}.");
    file.extend(&object);
    file.extend(b"\x80\x02]X\x01\x00\x00\x000a.");
    file.extend(numel.to_le_bytes());
    let path = write_tmp(dir.path(), "sparse.pth", &file);
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(file.len() as u64 + numel * 4)
        .unwrap();
    let err = pth::read(&path).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Pickle {
                error: pickle::Error::Limit {
                    kind: LimitKind::TensorBytes,
                    ..
                },
                ..
            }
        ),
        "{err}"
    );
    // the same file with the tensor limit raised still never allocates more than it may
    let roomy = Limits {
        max_tensor_bytes: u64::MAX,
        max_memory_bytes: 1 << 30,
        ..Limits::default()
    };
    let err = pth::read_with_limits(&path, roomy).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Limit {
                kind: LimitKind::MemoryBytes,
                ..
            }
        ),
        "{err}"
    );

    // an .npy declaring 8 GiB, sparse on disk
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2147483648,), }";
    let mut h = header.to_owned();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut npy_bytes = b"\x93NUMPY\x01\x00".to_vec();
    npy_bytes.extend((h.len() as u16).to_le_bytes());
    npy_bytes.extend(h.as_bytes());
    let path = write_tmp(dir.path(), "big.npy", &npy_bytes);
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(npy_bytes.len() as u64 + (8u64 << 30))
        .unwrap();
    let err = npy::read(&path).unwrap_err();
    assert!(
        matches!(
            &err,
            npy::Error::Limit {
                kind: LimitKind::TensorBytes,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("ZOO_LIMITS=tensor-bytes="),
        "{err}"
    );
}

// ---- L11: the npy header is read as numpy reads it ----

#[test]
fn npy_header_that_numpy_would_read_differently_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let write = |header: &str, data: &[u8]| {
        let mut h = header.to_owned();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((h.len() as u16).to_le_bytes());
        b.extend(h.as_bytes());
        b.extend(data);
        write_tmp(dir.path(), "a.npy", &b)
    };
    // the substring trap: a value that reads like `'fortran_order': False` before the key
    let p = write(
        "{'y': \"'fortran_order': False\", 'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
        &[0; 16],
    );
    assert!(matches!(npy::read(&p), Err(npy::Error::Header { .. })));
    let p = write(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), 'fortran_order': True, }",
        &[0; 16],
    );
    assert!(matches!(npy::read(&p), Err(npy::Error::Header { .. })));
    let p = write(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }",
        &[0; 16],
    );
    assert_eq!(npy::read(&p).unwrap().shape(), &[4]);
}

// ---- budget: one type, named limits ----

#[test]
fn limit_errors_name_the_limit_and_how_to_raise_it() {
    let data = fs::read(tiny("tf_efficientnet_tiny.pth")).unwrap();
    for (limits, key) in [
        (
            Limits {
                max_tensors: 100,
                ..Limits::default()
            },
            "tensors",
        ),
        (
            Limits {
                max_metadata_bytes: 1000,
                ..Limits::default()
            },
            "metadata-bytes",
        ),
        (
            Limits {
                max_pickle_items: 100,
                ..Limits::default()
            },
            "pickle-items",
        ),
        (
            Limits {
                max_memory_bytes: 1000,
                ..Limits::default()
            },
            "memory-bytes",
        ),
        (
            Limits {
                max_tensor_bytes: 1000,
                ..Limits::default()
            },
            "tensor-bytes",
        ),
    ] {
        let e = pth::read_bytes(&data, limits).unwrap_err();
        assert!(
            e.to_string().contains(&format!("ZOO_LIMITS={key}=")),
            "{key}: {e}"
        );
    }
    let bundle = tf_bundle::Bundle::open_with_limits(
        tiny("ckpt/model.ckpt"),
        Limits {
            max_tensor_bytes: 100,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert!(
        bundle.to_string().contains("ZOO_LIMITS=tensor-bytes="),
        "{bundle}"
    );
}

// ---- Q1: a cause is printed once ----

/// What `{:#}` of an `anyhow::Error` prints: the error and its sources, joined by `: `.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[test]
fn error_chains_print_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let os = std::io::Error::from(std::io::ErrorKind::NotFound).to_string();
    let errors: Vec<Box<dyn std::error::Error>> = vec![
        Box::new(pth::read(&missing).unwrap_err()),
        Box::new(safetensors::read(&missing).unwrap_err()),
        Box::new(npy::read(&missing).unwrap_err()),
        Box::new(tf_bundle::Bundle::open(&missing).unwrap_err()),
        Box::new(tf_bundle::unpack_tarball(&missing, dir.path()).unwrap_err()),
        Box::new(zoo_converters::Error::from(
            pth::read(&missing).unwrap_err(),
        )),
        Box::new(
            pth::read_bytes(
                &zip_of(&[
                    ("archive/data.pkl", b"\x80\x02K"),
                    ("archive/version", b"3\n"),
                ]),
                Limits::default(),
            )
            .unwrap_err(),
        ),
    ];
    for e in errors {
        let text = chain(e.as_ref());
        let parts: Vec<&str> = text.split(": ").collect();
        for w in parts.windows(2) {
            assert_ne!(w[0], w[1], "repeated cause in {text:?}");
        }
        assert!(
            text.matches("No such file").count() <= 1 && text.matches(&os).count() <= 1,
            "{text:?}"
        );
    }
}

// ---- found by the differential fuzzer ----

/// A bool tensor whose byte is 2: torch reads it as `True`, a byte-level reader as 2, so it is
/// refused (as the TF reader refuses it).
#[test]
fn bool_tensor_with_a_byte_other_than_0_or_1_is_refused() {
    let mut p = StateDictPickler::new();
    p.add("mask", DType::Bool, &[3]);
    let pkl = p.finish();
    let read = |data: &[u8]| {
        pth::read_bytes(
            &zip_of(&[
                ("archive/data.pkl", &pkl),
                ("archive/data/0", data),
                ("archive/version", b"3\n"),
            ]),
            Limits::default(),
        )
    };
    assert!(read(&[0, 1, 1]).is_ok());
    let err = read(&[0, 2, 1]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::BadBool {
                index: 1,
                value: 2,
                ..
            }
        ),
        "{err}"
    );
}

/// torch's miniz "extracts" an entry marked as a directory (DOS attribute 0x10, or a name
/// ending in `/`) without reading a byte, so torch.load returns uninitialised memory for it;
/// it also refuses encrypted and patched entries. zoo refuses all of them.
#[test]
fn zip_entries_torch_would_not_read_as_stored_files_are_refused() {
    let pkl = one_tensor_pickle();
    let ones = ones();
    let good = zip_of(&[
        ("archive/data.pkl", &pkl),
        ("archive/data/0", &ones),
        ("archive/version", b"3\n"),
    ]);
    assert!(pth::read_bytes(&good, Limits::default()).is_ok());
    // central directory entry of `archive/data/0`
    let cd = good
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == [0x50, 0x4b, 0x01, 0x02])
        .map(|(i, _)| i)
        .nth(1)
        .unwrap();
    let mut dir_attr = good.clone();
    dir_attr[cd + 38] |= 0x10; // external attributes: DOS directory bit
    let mut encrypted = good.clone();
    encrypted[cd + 8] |= 0x01; // general purpose flags
    let mut patched = good.clone();
    patched[cd + 8] |= 0x20;
    for (what, bytes) in [
        ("directory", dir_attr),
        ("flags", encrypted),
        ("flags", patched),
    ] {
        let err = pth::read_bytes(&bytes, Limits::default()).unwrap_err();
        assert!(
            matches!(&err, Error::ZipStructure { what: w, .. } if w.contains(what)),
            "{what}: {err}"
        );
    }
    let slash = pth::read_bytes(
        &zip_of(&[
            ("archive/data.pkl", &pkl),
            ("archive/data/0", &ones),
            ("archive/x/", b""),
            ("archive/version", b"3\n"),
        ]),
        Limits::default(),
    );
    assert!(
        matches!(slash, Err(Error::ZipStructure { .. })),
        "{slash:?}"
    );
    // torch decodes `.data/serialization_id` as UTF-8
    let id = pth::read_bytes(
        &zip_of(&[
            ("archive/data.pkl", &pkl),
            ("archive/data/0", &ones),
            ("archive/version", b"3\n"),
            ("archive/.data/serialization_id", b"\x85\xff"),
        ]),
        Limits::default(),
    );
    assert!(matches!(id, Err(Error::Record { .. })), "{id:?}");
}

/// One raw tar header (GNU magic unless `ustar`), checksummed, and its padded data.
fn raw_member(
    name: &[u8],
    typeflag: u8,
    data: &[u8],
    ustar: bool,
    edit: impl Fn(&mut [u8; 512]),
) -> Vec<u8> {
    let mut h = if ustar {
        tar::Header::new_ustar()
    } else {
        tar::Header::new_gnu()
    };
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_size(data.len() as u64);
    h.as_mut_bytes()[156] = typeflag;
    edit(h.as_mut_bytes());
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend(data);
    out.resize(out.len().next_multiple_of(512), 0);
    out
}

/// `"<len> key=value\n"` with the length counting itself.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while len.to_string().len() + body.len() != len {
        len += 1;
    }
    format!("{len}{body}").into_bytes()
}

/// Tar constructs that Python's `tarfile` and the `tar` crate read differently (found by the
/// differential fuzzer): each is refused, so what zoo extracts is what `tarfile` lists.
#[test]
fn tar_headers_other_readers_read_differently_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let index = raw_member(b"ck/model.ckpt.index", b'0', b"abc", false, |_| {});
    let pax = |records: &[u8]| raw_member(b"././@PaxHeader", b'x', records, false, |_| {});
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "an mtime that is not octal (tarfile stops there)",
            raw_member(b"ck/checkpoint", b'0', b"x", false, |h| {
                h[136..148].copy_from_slice(b"12345678x\0\0\0")
            }),
            "mtime",
        ),
        (
            "a ustar prefix in a GNU header (tarfile prepends it)",
            raw_member(b"ck/checkpoint", b'0', b"x", false, |h| {
                h[345..348].copy_from_slice(b"abc")
            }),
            "prefix",
        ),
        (
            "a directory with data (tarfile does not skip it)",
            raw_member(b"ck/", b'5', &[1; 600], false, |_| {}),
            "directory with",
        ),
        (
            "a PAX global header (tarfile applies it to every member)",
            raw_member(b"pax_global", b'g', b"18 path=x.index\n", false, |_| {}),
            "PAX global",
        ),
        (
            "a PAX size keyword",
            [pax(b"10 size=5\n"), index.clone()].concat(),
            "size",
        ),
        (
            "PAX records that do not tile the data",
            [pax(b"16 path=a.index\nxx"), index.clone()].concat(),
            "PAX",
        ),
        (
            "a GNU long name with bytes after its NUL",
            [
                raw_member(
                    b"././@LongLink",
                    b'L',
                    b"ck/a.index\0ck/b.index",
                    false,
                    |_| {},
                ),
                index.clone(),
            ]
            .concat(),
            "long name",
        ),
        (
            "a V7 directory (type \\0, name ending in /) behind a long name",
            [
                raw_member(
                    b"././@LongLink",
                    b'L',
                    b"ck/x.data-00000-of-00001\0",
                    false,
                    |_| {},
                ),
                raw_member(b"ck/model.ckpt.index/", b'\0', &[7; 60], false, |_| {}),
            ]
            .concat(),
            "ends in `/`",
        ),
        (
            "two extension headers for one member",
            [
                pax(b"16 path=a.index\n"),
                pax(b"16 path=b.index\n"),
                index.clone(),
            ]
            .concat(),
            "two extension headers",
        ),
    ];
    for (what, mut tar, reason) in cases {
        tar.extend([0u8; 1024]);
        let path = write_tmp(work.path(), "t.tar.gz", &gz(&tar));
        let dest = tempfile::tempdir().unwrap();
        let err = tf_bundle::extract_members(&path, dest.path(), Limits::default()).unwrap_err();
        assert!(err.to_string().contains(reason), "{what}: {err}");
    }
    // what is allowed: a PAX path, a GNU long name, a ustar prefix in a ustar header
    let long = "d".repeat(120);
    let ok: Vec<u8> = [
        pax(&pax_record("path", &format!("{long}/m.ckpt.index"))),
        raw_member(b"ignored", b'0', b"one", false, |_| {}),
        raw_member(
            b"././@LongLink",
            b'L',
            format!("{long}/checkpoint\0").as_bytes(),
            false,
            |_| {},
        ),
        raw_member(b"ignored", b'0', b"two", false, |_| {}),
        raw_member(b"m.ckpt.data-00000-of-00001", b'0', b"three", true, |h| {
            h[345..348].copy_from_slice(b"pre")
        }),
        vec![0; 1024],
    ]
    .concat();
    let path = write_tmp(work.path(), "ok.tar.gz", &gz(&ok));
    let dest = tempfile::tempdir().unwrap();
    let files = tf_bundle::extract_members(&path, dest.path(), Limits::default()).unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        names,
        [
            format!("{long}/m.ckpt.index"),
            format!("{long}/checkpoint"),
            "pre/m.ckpt.data-00000-of-00001".to_owned()
        ]
    );
}

/// Found by the differential fuzzer: a deflate stream with a back-reference before any output
/// ("invalid distance too far back" to zlib, gzip and Python) that the pure-Rust inflater read
/// as something; and a gzip stream holding no tar block at all ("empty file" to `tarfile`).
#[test]
fn gzip_streams_python_refuses_are_refused() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/tar_diff");
    for (name, reason) in [
        ("found-deflate-distance-too-far-back.tar.gz", "deflate"),
        (
            "found-empty-tar-stream.tar.gz",
            "less than one 512-byte block",
        ),
        (
            "found-two-empty-gzip-members.tar.gz",
            "less than one 512-byte block",
        ),
    ] {
        let dest = tempfile::tempdir().unwrap();
        let err = tf_bundle::extract_members(&corpus.join(name), dest.path(), Limits::default())
            .unwrap_err();
        assert!(err.to_string().contains(reason), "{name}: {err}");
    }
    // an archive of nothing but its end blocks is empty, not refused (as in tarfile)
    let work = tempfile::tempdir().unwrap();
    let path = write_tmp(work.path(), "end.tar.gz", &gz(&[0u8; 1024]));
    let dest = tempfile::tempdir().unwrap();
    assert!(
        tf_bundle::extract_members(&path, dest.path(), Limits::default())
            .unwrap()
            .is_empty()
    );
}
