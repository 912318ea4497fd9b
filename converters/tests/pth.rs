//! `.pth` reading (zip and legacy), writing, and rejection of unsafe or broken files.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zoo_converters::pickle;
use zoo_converters::pth::{self, Error};
use zoo_converters::{safetensors, DType, Limits, StateDict, Tensor};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn tiny(name: &str) -> PathBuf {
    fixture("../tests/fixtures/efficientnet-tiny").join(name)
}

fn names(sd: &StateDict) -> Vec<&str> {
    sd.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn efficientnet_zip_and_legacy_match_safetensors_bit_for_bit() {
    let zip = pth::read(&tiny("tf_efficientnet_tiny.pth")).unwrap();
    let legacy = pth::read(&tiny("tf_efficientnet_tiny_legacy.pth")).unwrap();
    let (st, meta) = safetensors::read(&tiny("tf_efficientnet_tiny.safetensors")).unwrap();
    assert_eq!(meta.get("format").map(String::as_str), Some("pt"));
    assert_eq!(zip.len(), 197);
    // zip and legacy: identical names, order, dtypes, shapes and bytes
    assert_eq!(zip, legacy);
    // the .pth keeps module order (the safetensors file is sorted by name), so compare by name
    assert_eq!(names(&zip)[0], "conv_stem.weight");
    let by_name: BTreeMap<&str, &Tensor> = st.iter().map(|(n, t)| (n.as_str(), t)).collect();
    assert_eq!(by_name.len(), 197);
    for (name, t) in &zip {
        assert_eq!(by_name.get(name.as_str()), Some(&t), "{name}");
    }
}

#[derive(serde::Deserialize)]
struct Expected {
    name: String,
    dtype: String,
    shape: Vec<usize>,
    hex: String,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("tests/fixtures/pth/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn assert_matches(sd: &StateDict, want: &serde_json::Value) {
    let want: Vec<Expected> = serde_json::from_value(want.clone()).unwrap();
    assert_eq!(
        names(sd),
        want.iter().map(|e| e.name.as_str()).collect::<Vec<_>>()
    );
    for ((name, t), e) in sd.iter().zip(&want) {
        assert_eq!(t.dtype().name(), e.dtype, "{name}");
        assert_eq!(t.shape(), e.shape.as_slice(), "{name}");
        assert_eq!(t.data(), hex(&e.hex).as_slice(), "{name}");
    }
}

fn both(name: &str) -> [PathBuf; 2] {
    [
        fixture(&format!("tests/fixtures/pth/{name}.pth")),
        fixture(&format!("tests/fixtures/pth/{name}_legacy.pth")),
    ]
}

#[test]
fn views_offsets_shared_storages_and_dtypes_read_as_torch_sees_them() {
    let want = expected();
    for path in both("views") {
        let sd = pth::read(&path).unwrap();
        assert_matches(&sd, &want["views"][""]);
        let t = &sd.iter().find(|(n, _)| n == "transposed").unwrap().1;
        // base = arange(24).reshape(4, 6); base.t()[0] = [0, 6, 12, 18]
        assert_eq!(
            &t.to_f32().unwrap()[..4],
            &[0.0, 6.0, 12.0, 18.0],
            "{}",
            path.display()
        );
    }
}

#[test]
fn module_state_dict_keeps_metadata_versions() {
    let want = expected();
    for path in both("module") {
        let ck = pth::read_checkpoint(&path).unwrap();
        assert_eq!(ck.state_dicts.len(), 1);
        let sd = &ck.state_dicts[0];
        assert_eq!(sd.path, "");
        assert_matches(&sd.tensors, &want["module"][""]);
        let meta: Vec<(String, i64)> =
            serde_json::from_value(want["module_metadata"].clone()).unwrap();
        assert!(!meta.is_empty());
        assert_eq!(sd.module_versions, meta);
    }
}

#[test]
fn nested_dicts_pick_state_dict_then_model() {
    let want = expected();
    for path in both("nested_state_dict") {
        assert_matches(
            &pth::read(&path).unwrap(),
            &want["nested_state_dict"]["state_dict"],
        );
        let ck = pth::read_checkpoint(&path).unwrap();
        assert!(ck.scalars.contains(&("epoch".into(), "3".into())));
        assert!(ck.scalars.contains(&("arch".into(), "tiny".into())));
    }
    for path in both("nested_model_ema") {
        assert_matches(
            &pth::read(&path).unwrap(),
            &want["nested_model_ema"]["model"],
        );
        let ck = pth::read_checkpoint(&path).unwrap();
        let paths: Vec<&str> = ck.state_dicts.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["model", "model_ema"]);
        assert_matches(
            &ck.get("model_ema").unwrap().tensors,
            &want["nested_model_ema"]["model_ema"],
        );
    }
    for path in both("ambiguous") {
        match pth::read(&path) {
            Err(Error::StateDict { candidates, .. }) => {
                assert_eq!(candidates, ["model_ema", "state_dict_ema"])
            }
            other => panic!("{}: {other:?}", path.display()),
        }
        assert_eq!(pth::read_checkpoint(&path).unwrap().state_dicts.len(), 2);
    }
}

#[test]
fn unsafe_globals_are_refused_by_name() {
    let cases = [
        ("os_system", "os", "system"),
        ("posix_system", "posix", "system"),
        ("dict_eval", "__builtin__", "eval"),
    ];
    let dir = fixture("tests/fixtures/malicious");
    for (file, module, name) in cases {
        let data = std::fs::read(dir.join(format!("{file}.pkl"))).unwrap();
        match pickle::unpickle(&data, &Limits::default()) {
            Err(pickle::Error::UnsupportedGlobal {
                module: m, name: n, ..
            }) => {
                assert_eq!((m.as_str(), n.as_str()), (module, name), "{file}")
            }
            other => panic!("{file}.pkl: {other:?}"),
        }
        for suffix in ["", "_legacy"] {
            let path = dir.join(format!("{file}{suffix}.pth"));
            let err = pth::read(&path).unwrap_err();
            match &err {
                Error::UnsupportedGlobal {
                    module: m,
                    name: n,
                    file: f,
                    ..
                } => {
                    assert_eq!((m.as_str(), n.as_str()), (module, name));
                    assert_eq!(f, &path);
                }
                other => panic!("{}: {other:?}", path.display()),
            }
            assert!(
                err.to_string().contains(&format!("{module}.{name}")),
                "{err}"
            );
        }
    }
}

/// Protocol 4 pickles start with FRAME, which torch's weights-only unpickler does not read:
/// they are refused there, before any global, exactly as torch refuses them.
#[test]
fn protocol_4_pickles_are_refused_at_frame_like_torch() {
    let dir = fixture("tests/fixtures/malicious");
    for file in ["builtins_eval", "subprocess_popen"] {
        let data = std::fs::read(dir.join(format!("{file}.pkl"))).unwrap();
        let e = pickle::unpickle(&data, &Limits::default()).unwrap_err();
        assert_eq!(
            e,
            pickle::Error::UnsupportedOpcode {
                opcode: 0x95,
                offset: 2
            },
            "{file}"
        );
        assert!(e.to_string().contains("FRAME"), "{e}");
        for suffix in ["", "_legacy"] {
            let path = dir.join(format!("{file}{suffix}.pth"));
            let err = pth::read(&path).unwrap_err();
            assert!(
                matches!(
                    &err,
                    Error::Pickle {
                        error: pickle::Error::UnsupportedOpcode { opcode: 0x95, .. },
                        ..
                    }
                ),
                "{}: {err:?}",
                path.display()
            );
        }
    }
}

/// Every prefix of a valid file is an error (never a panic, never a partial state dict).
fn truncation_sweep(path: &Path, step: usize) {
    let data = std::fs::read(path).unwrap();
    assert!(pth::read_bytes(&data, Limits::default()).is_ok());
    let mut checked = 0;
    for len in (0..data.len()).step_by(step) {
        assert!(
            pth::read_bytes(&data[..len], Limits::default()).is_err(),
            "{} cut at {len}",
            path.display()
        );
        checked += 1;
    }
    assert!(checked > 100, "{} cuts", checked);
}

#[test]
fn truncated_files_give_errors() {
    for path in both("views") {
        truncation_sweep(&path, 1);
    }
    // (coarser: each cut re-reads the whole 27 kB object pickle)
    truncation_sweep(&tiny("tf_efficientnet_tiny_legacy.pth"), 1009);
    truncation_sweep(&tiny("tf_efficientnet_tiny.pth"), 499);
}

#[test]
fn garbled_bytes_never_panic() {
    for path in both("views") {
        let data = std::fs::read(&path).unwrap();
        for i in 0..data.len() {
            for flip in [0x01u8, 0xff] {
                let mut d = data.clone();
                d[i] ^= flip;
                let _ = pth::read_bytes(&d, Limits::default());
            }
        }
    }
}

#[test]
fn garbled_storage_sizes_are_typed_errors() {
    // legacy: the element count of the last storage made huge
    let path = fixture("tests/fixtures/pth/nested_state_dict_legacy.pth");
    let mut data = std::fs::read(&path).unwrap();
    // the last storage is fc.bias (3 floats) or fc.weight (6 floats)
    let (at, numel) = [(data.len() - 12 - 8, 3u64), (data.len() - 24 - 8, 6)]
        .into_iter()
        .find(|&(at, n)| data[at..at + 8] == n.to_le_bytes())
        .unwrap();
    data[at..at + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    match pth::read_bytes(&data, Limits::default()) {
        Err(Error::StorageSize {
            key,
            expected,
            actual,
            ..
        }) => {
            assert!(!key.is_empty());
            assert_eq!(expected, 4 << 60);
            assert_eq!(actual, numel * 4);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn limits_are_applied() {
    let data = std::fs::read(tiny("tf_efficientnet_tiny.pth")).unwrap();
    let small = Limits {
        max_metadata_bytes: 1000,
        ..Limits::default()
    };
    assert!(matches!(
        pth::read_bytes(&data, small),
        Err(Error::Limit { .. })
    ));
    let few = Limits {
        max_pickle_items: 100,
        ..Limits::default()
    };
    assert!(matches!(
        pth::read_bytes(&data, few),
        Err(Error::Pickle {
            error: pickle::Error::Limit { .. },
            ..
        })
    ));
}

fn dtype_zoo() -> StateDict {
    let all = DType::ALL;
    let mut sd: StateDict = all
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            let shape = vec![2, 3, i % 3 + 1];
            let n = shape.iter().product::<usize>() * d.size();
            let data = (0..n)
                .map(|j| {
                    if d == DType::Bool {
                        (j % 2) as u8
                    } else {
                        (j * 37 + i) as u8
                    }
                })
                .collect();
            (
                format!("layer{i}.{}", d.name().to_lowercase()),
                Tensor::new("t", d, shape, data).unwrap(),
            )
        })
        .collect();
    sd.push(("scalar".into(), Tensor::from_f32(vec![], &[2.5]).unwrap()));
    sd.push(("empty".into(), Tensor::from_f32(vec![0, 3], &[]).unwrap()));
    sd
}

#[test]
fn writer_is_deterministic_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let effnet = pth::read(&tiny("tf_efficientnet_tiny.pth")).unwrap();
    for (i, sd) in [effnet, dtype_zoo()].iter().enumerate() {
        let a = dir.path().join(format!("a{i}.pth"));
        let b = dir.path().join(format!("other-name-{i}.pth"));
        pth::write(&a, sd).unwrap();
        pth::write(&b, sd).unwrap();
        let bytes = std::fs::read(&a).unwrap();
        assert_eq!(bytes, std::fs::read(&b).unwrap());
        assert_eq!(&pth::read(&a).unwrap(), sd);
        assert_eq!(&pth::read_bytes(&bytes, Limits::default()).unwrap(), sd);
    }
    // storages are 64-byte aligned in the file, as torch writes them
    let bytes = std::fs::read(dir.path().join("a0.pth")).unwrap();
    let sd = pth::read(&tiny("tf_efficientnet_tiny.pth")).unwrap();
    let first = sd[0].1.data();
    let at = bytes.windows(first.len()).position(|w| w == first).unwrap();
    assert_eq!(at % 64, 0);
}

/// Writes `sd` and a JSON manifest (name, dtype, shape, hex bytes) for check_torch_load.py.
fn write_with_manifest(dir: &Path, stem: &str, sd: &StateDict) -> (PathBuf, PathBuf) {
    let pth = dir.join(format!("{stem}.pth"));
    pth::write(&pth, sd).unwrap();
    let manifest: Vec<serde_json::Value> = sd
        .iter()
        .map(|(n, t)| {
            serde_json::json!({
                "name": n,
                "dtype": t.dtype().name(),
                "shape": t.shape(),
                "hex": t.data().iter().map(|b| format!("{b:02x}")).collect::<String>(),
            })
        })
        .collect();
    let json = dir.join(format!("{stem}.json"));
    std::fs::write(&json, serde_json::to_vec(&manifest).unwrap()).unwrap();
    (pth, json)
}

#[test]
#[ignore = "needs ZOO_PYTHON (python with torch/timm); `make test` runs it"]
fn torch_load_weights_only_accepts_written_files() {
    let python = std::env::var_os("ZOO_PYTHON")
        .expect("set ZOO_PYTHON to a python interpreter with torch installed");
    let dir = tempfile::tempdir().unwrap();
    let effnet = pth::read(&tiny("tf_efficientnet_tiny.pth")).unwrap();
    for (stem, sd) in [("effnet", effnet), ("dtypes", dtype_zoo())] {
        let (pth, json) = write_with_manifest(dir.path(), stem, &sd);
        let out = std::process::Command::new(&python)
            .arg(fixture("tests/python/check_torch_load.py"))
            .arg(&pth)
            .arg(&json)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{stem}: check_torch_load.py failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("ok {} tensors", sd.len())),
            "{stdout}"
        );
    }
}

/// Inputs that once crashed a fuzz target (minimised by `cargo fuzz tmin`, in
/// `fuzz/regressions/<target>/`) and the fuzzers' corpora (`fuzz/corpus/<target>/`) must give
/// Ok or a typed error, never a panic.
#[test]
fn fuzz_regressions_and_corpus_replay() {
    let limits = Limits::FUZZ;
    for target in ["pickle_read", "pth_read"] {
        let mut inputs = vec![];
        for dir in ["fuzz/regressions", "fuzz/corpus"] {
            let Ok(entries) = std::fs::read_dir(fixture(dir).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let hidden = path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'));
                if path.is_file() && !hidden && path.extension().is_none_or(|e| e != "md") {
                    inputs.push(path);
                }
            }
        }
        assert!(
            inputs.len() >= 100,
            "{target}: only {} inputs to replay",
            inputs.len()
        );
        for path in &inputs {
            let data = std::fs::read(path).unwrap();
            match target {
                "pickle_read" => drop(pickle::unpickle(&data, &limits)),
                _ => drop(pth::read_bytes(&data, limits)),
            }
        }
    }
}

/// `read_each` hands over exactly what `read` returns, in the same order, for the real
/// EfficientNet files and for views and shared storages; a visitor's error stops the read.
#[test]
fn read_each_visits_what_read_returns() {
    let mut paths = vec![
        tiny("tf_efficientnet_tiny.pth"),
        tiny("tf_efficientnet_tiny_legacy.pth"),
    ];
    paths.extend(both("views"));
    for path in paths {
        let mut visited = vec![];
        pth::read_each(&path, &mut |n, t| {
            visited.push((n, t));
            Ok(())
        })
        .unwrap();
        assert_eq!(visited, pth::read(&path).unwrap(), "{}", path.display());
    }
    let st = tiny("tf_efficientnet_tiny.safetensors");
    let mut visited = vec![];
    let meta = safetensors::read_each(&st, &mut |n, t| {
        visited.push((n, t));
        Ok(())
    })
    .unwrap();
    assert_eq!((visited, meta), safetensors::read(&st).unwrap());

    let mut seen = 0;
    let err = pth::read_each(&tiny("tf_efficientnet_tiny.pth"), &mut |n, _| {
        seen += 1;
        Err(Error::DuplicateName {
            path: PathBuf::from("visitor"),
            name: n,
        })
    })
    .unwrap_err();
    assert_eq!(seen, 1);
    assert!(err.to_string().contains("conv_stem.weight"), "{err}");
}
