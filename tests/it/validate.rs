//! `zoo validate`, shards and `zoo report merge` (issue 7).
use std::path::Path;
use std::process::Command;

use crate::{copy_dir, fixture, root};

#[path = "../support/http_server.rs"]
mod http_server;

/// Runs zoo with an isolated, empty cache (and no other caches to reuse).
fn zoo_cached(cache: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_zoo"))
        .args(args)
        .current_dir(root())
        .env("ZOO_CACHE", cache)
        .env("TORCH_HOME", cache.join("no-torch"))
        .env("HF_HOME", cache.join("no-hf"))
        .env_remove("ZOO_OFFLINE")
        .env_remove("ZOO_REGISTRY")
        .output()
        .expect("run zoo");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The README's main job: all 10 models, offline, exit 0.
#[test]
fn embedded_registry_validates_offline() {
    let cache = tempfile::tempdir().unwrap();
    let (code, out, err) = zoo_cached(cache.path(), &["validate", "--offline", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let results = r["results"].as_array().unwrap();
    let models: std::collections::BTreeSet<&str> = results
        .iter()
        .map(|x| x["model"].as_str().unwrap())
        .collect();
    assert_eq!(models.len(), 10, "{models:?}");
    for x in results {
        let (check, status) = (x["check"].as_str().unwrap(), x["status"].as_str().unwrap());
        match check {
            "schema" | "flops" | "params" | "file-size" => assert_eq!(status, "pass", "{x}"),
            "docs" => assert_eq!(status, "pass", "{x}"),
            "checksum" | "inference" => {
                assert_eq!(status, "skipped", "{x}");
                assert_eq!(x["detail"], "weights not cached", "{x}");
            }
            _ => assert_ne!(status, "fail", "{x}"),
        }
    }
    let b7 = results
        .iter()
        .find(|x| x["model"] == "tf_efficientnet_b7_ns" && x["check"] == "params")
        .unwrap();
    assert!(
        b7["detail"].as_str().unwrap().contains("float artefact"),
        "{b7}"
    );
    assert_eq!(b7["documented"], "66349999");
    let flops = results
        .iter()
        .find(|x| x["model"] == "tf_efficientnet_l2_ns" && x["check"] == "flops")
        .unwrap();
    assert!(
        flops["detail"]
            .as_str()
            .unwrap()
            .contains("exact under thop-2020 at 800x1019"),
        "{flops}"
    );
}

/// A registry with a wrong FLOPs value, a wrong parameter count and a dangling collection
/// exits 1 and names all three.
#[test]
fn seeded_errors_are_all_named() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = tmp.path().join("registry");
    copy_dir(&root().join("registry"), &reg);
    let f = reg.join("efficientnet/noisy-student.yml");
    let text = std::fs::read_to_string(&f).unwrap();
    let text = text
        .replacen("FLOPs: 883633200", "FLOPs: 883633201", 1)
        .replacen("Parameters: 9110000", "Parameters: 9120000", 1)
        .replacen(
            "- Name: tf_efficientnet_b3_ns\n  In Collection: Noisy Student",
            "- Name: tf_efficientnet_b3_ns\n  In Collection: Noisy Students",
            1,
        );
    std::fs::write(&f, text).unwrap();
    let (code, out, err) = zoo_cached(
        tmp.path(),
        &[
            "--registry",
            &reg.display().to_string(),
            "validate",
            "--offline",
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("FAIL tf_efficientnet_b1_ns flops: documented 883633201, measured 883633200"),
        "{out}"
    );
    assert!(
        out.contains("FAIL tf_efficientnet_b2_ns params: documented 9120000, measured 9110000"),
        "{out}"
    );
    assert!(
        out.contains("FAIL tf_efficientnet_b3_ns schema:")
            && out.contains("`Noisy Students`, which is not defined"),
        "{out}"
    );
    assert!(
        out.contains("noisy-student.yml:"),
        "file:line:col named: {out}"
    );
}

/// Four shard runs merged equal one unsharded run.
#[test]
fn shards_merge_to_the_unsharded_report() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, full, _) = zoo_cached(tmp.path(), &["validate", "--offline", "--json"]);
    assert_eq!(code, 0);
    let mut files = vec![];
    let mut seen = 0;
    for k in 1..=4 {
        let (code, out, err) = zoo_cached(
            tmp.path(),
            &[
                "validate",
                "--offline",
                "--json",
                "--shard",
                &format!("{k}/4"),
            ],
        );
        assert_eq!(code, 0, "{err}");
        let r: serde_json::Value = serde_json::from_str(&out).unwrap();
        seen += r["results"].as_array().unwrap().len();
        let p = tmp.path().join(format!("shard-{k}.json"));
        std::fs::write(&p, out).unwrap();
        files.push(p.display().to_string());
    }
    let mut args = vec!["report", "merge", "--json"];
    args.extend(files.iter().map(String::as_str));
    let junit = tmp.path().join("junit.xml");
    let junit_arg = junit.display().to_string();
    args.extend(["--junit", &junit_arg]);
    let (code, merged, err) = zoo_cached(tmp.path(), &args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(merged, full);
    assert_eq!(seen, 80);
    let x = std::fs::read_to_string(junit).unwrap();
    assert!(
        x.contains("tests=\"80\"") && x.contains("<skipped message=\"weights not cached\"/>"),
        "{x}"
    );
}

/// The shipped CI-matrix and Kubernetes examples are valid YAML and shard by 4.
#[test]
fn examples_are_valid_yaml() {
    for (f, needle) in [
        (
            "examples/github-actions/zoo-validate.yml",
            "--shard ${{ matrix.shard }}/4",
        ),
        (
            "examples/kubernetes/zoo-validate-job.yaml",
            "JOB_COMPLETION_INDEX + 1",
        ),
    ] {
        let text = std::fs::read_to_string(root().join(f)).unwrap();
        let docs =
            yaml_rust2::YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(docs.len(), 1, "{f}");
        assert!(!docs[0].is_badvalue() && docs[0].as_hash().is_some(), "{f}");
        assert!(text.contains(needle), "{f}");
    }
}

fn tiny_registry(dir: &Path, server: &str) -> String {
    let reg = dir.join("registry-tiny");
    copy_dir(&fixture("registry-tiny"), &reg);
    let f = reg.join("tiny.yml");
    let text = std::fs::read_to_string(&f)
        .unwrap()
        .replace("http://127.0.0.1:9", server);
    let text = text.replace(
        "../efficientnet-tiny/",
        &format!("{}/", fixture("efficientnet-tiny").display()),
    );
    std::fs::write(&f, text).unwrap();
    reg.display().to_string()
}

/// The tiny model served by a local HTTP server: downloaded, converted, run, passed; corrupt
/// bytes fail the checksum.
#[test]
fn tiny_validates_with_fetch_and_corruption_fails() {
    let server = http_server::TestServer::start();
    let bytes = std::fs::read(fixture("efficientnet-tiny/efficientnet-tiny.tar.gz")).unwrap();
    server.serve("/efficientnet-tiny.tar.gz", bytes.clone());
    let tmp = tempfile::tempdir().unwrap();
    let reg = tiny_registry(tmp.path(), &server.url(""));
    let (code, out, err) = zoo_cached(
        &tmp.path().join("cache"),
        &["--registry", &reg, "validate", "tiny", "--fetch"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("pass efficientnet_tiny checksum: verified: efficientnet-tiny.tar.gz"),
        "{out}"
    );
    if cfg!(feature = "torch") {
        assert!(out.contains("pass efficientnet_tiny inference:"), "{out}");
    } else {
        assert!(
            out.contains(
                "skip efficientnet_tiny inference: zoo was built without the `torch` feature"
            ),
            "{out}"
        );
    }
    assert_eq!(server.full_gets("/efficientnet-tiny.tar.gz"), 1);

    server.set_fault("/efficientnet-tiny.tar.gz", http_server::Fault::WrongBytes);
    let (code, out, err) = zoo_cached(
        &tmp.path().join("cache2"),
        &["--registry", &reg, "validate", "tiny", "--fetch"],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("FAIL efficientnet_tiny checksum:"), "{out}");
    assert!(
        out.contains("f536f9317239e351894faef5e8c1d847202a2028370e014c449d01cc0ef2ebe1"),
        "expected hash shown: {out}"
    );
}

/// `zoo fetch NAME` over the registry: downloads the model's file from the server, verified.
#[test]
fn fetch_by_registry_name() {
    let server = http_server::TestServer::start();
    let bytes = std::fs::read(fixture("efficientnet-tiny/efficientnet-tiny.tar.gz")).unwrap();
    server.serve("/efficientnet-tiny.tar.gz", bytes);
    let tmp = tempfile::tempdir().unwrap();
    let reg = tiny_registry(tmp.path(), &server.url(""));
    let cache = tmp.path().join("cache");
    let (code, out, err) = zoo_cached(&cache, &["--registry", &reg, "fetch", "tiny", "--offline"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("efficientnet-tiny.tar.gz"), "{err}");
    assert_eq!(server.request_count(), 0);
    let (code, out, err) = zoo_cached(&cache, &["--registry", &reg, "fetch", "tiny"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("f536f9317239e351894faef5e8c1d847202a2028370e014c449d01cc0ef2ebe1"),
        "{out}"
    );
    let (code, out, _) = zoo_cached(&cache, &["--registry", &reg, "fetch", "--all", "--verify"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(server.full_gets("/efficientnet-tiny.tar.gz"), 1);
}
