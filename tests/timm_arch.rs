//! Every architecture zoo builds by timm name against timm itself: the state-dict names, shapes
//! and order equal timm's `state_dict()` (a golden file made by the venv's timm,
//! `tests/python/gen_timm_state_dicts.py golden`), and `macs` equals
//! `torch.utils.flop_counter.FlopCounterMode` / 2 on timm's model (runs Python; ignored by
//! default, `make test` runs it).
use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};
use zoo::arch::family::MEMBERS;
use zoo::arch::{ArchConfig, Network};
use zoo::flops::{self, Convention, InputSize};

fn golden() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/timm/state-dicts.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn build(name: &str) -> Network {
    ArchConfig::variant(name)
        .unwrap_or_else(|| panic!("{name} is not a known architecture"))
        .resolve()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `<name> <d0>x<d1>…` lines in state-dict order, as the generator hashes them.
fn lines(net: &Network) -> String {
    net.params()
        .iter()
        .map(|p| {
            let shape: Vec<String> = p.shape.iter().map(ToString::to_string).collect();
            format!("{} {}\n", p.name, shape.join("x"))
        })
        .collect()
}

#[test]
fn every_member_has_timms_state_dict() {
    let golden = golden();
    let archs = golden["architectures"].as_object().unwrap();
    let mut names: Vec<&str> = MEMBERS.iter().map(|m| m.0).collect();
    names.sort_unstable();
    let mut golden_names: Vec<&str> = archs.keys().map(String::as_str).collect();
    golden_names.sort_unstable();
    assert_eq!(
        names, golden_names,
        "the table and the golden file list the same models"
    );
    let mut wrong = vec![];
    for (name, want) in archs {
        let net = match ArchConfig::variant(name).map(|c| c.resolve()) {
            Some(Ok(net)) => net,
            Some(Err(e)) => {
                wrong.push(format!("{name}: {e}"));
                continue;
            }
            None => panic!("{name} is not a known architecture"),
        };
        let text = lines(&net);
        let got = (
            net.params().len() as u64,
            net.trainable_params(),
            hex::encode(Sha256::digest(text.as_bytes())),
        );
        let want = (
            want["entries"].as_u64().unwrap(),
            want["trainable"].as_u64().unwrap(),
            want["sha256"].as_str().unwrap().to_owned(),
        );
        if got != want {
            wrong.push(format!(
                "{name}: zoo has {} entries, {} parameters; timm {} entries, {} parameters \
                 (compare `gen_timm_state_dicts.py dump {name}` with zoo's list)",
                got.0, got.1, want.0, want.1
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// One member per family, at two input sizes (one odd and not square, so TF 'same' padding
/// splits unevenly).
#[test]
#[ignore = "needs ZOO_PYTHON (python with torch/timm); `make test` runs it"]
fn macs_equal_flop_counter_mode_for_every_family() {
    let python = std::env::var("ZOO_PYTHON").expect("set ZOO_PYTHON to a python with torch/timm");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/gen_timm_state_dicts.py");
    let sizes = [
        InputSize::square(224),
        InputSize {
            height: 193,
            width: 257,
        },
    ];
    let mut wrong = vec![];
    for name in [
        "tf_efficientnet_b0",
        "tf_efficientnet_lite0",
        "tf_efficientnet_es",
        "tf_efficientnet_cc_b0_8e",
        "tf_mixnet_s",
        "tf_mixnet_l",
        "tf_mobilenetv3_large_100",
        "tf_mobilenetv3_large_minimal_100",
        "tf_mobilenetv3_small_075",
        "tf_mobilenetv3_small_minimal_100",
    ] {
        let out = Command::new(&python)
            .arg(&script)
            .arg("macs")
            .arg(name)
            .args(sizes.iter().map(ToString::to_string))
            .env("OMP_NUM_THREADS", "1")
            .output()
            .expect("run ZOO_PYTHON");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let net = build(name);
        for (line, input) in String::from_utf8(out.stdout).unwrap().lines().zip(sizes) {
            let (size, total) = line.split_once(' ').unwrap();
            assert_eq!(size, input.to_string());
            let torch: u64 = total.parse().unwrap();
            let macs = flops::count(&net, Convention::Macs, input).unwrap();
            if 2 * macs != torch {
                wrong.push(format!(
                    "{name} at {input}: zoo macs {macs}, FlopCounterMode/2 {}",
                    torch as f64 / 2.0
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
