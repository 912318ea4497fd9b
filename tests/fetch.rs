//! Fetching against a real HTTP server on 127.0.0.1 (tests/support/http_server.rs): every
//! fault ends in a verified file or a clear error, never a corrupt file under a final name.
mod support {
    pub mod http_server;
}

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use sha2::{Digest, Sha256};
use support::http_server::{Fault, TestServer};
use zoo::fetch::{
    sha256_file, Cache, FetchError, FetchOptions, FileSpec, Origin, Proof, RegistryFile, ReuseDirs,
    WeightsLock,
};

/// Deterministic, non-repeating-looking test bytes.
fn payload(len: usize, seed: u8) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(seed);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn spec(name: &str, urls: Vec<String>, body: &[u8]) -> FileSpec {
    FileSpec {
        file_name: name.to_string(),
        urls,
        size: Some(body.len() as u64),
        sha256: Some(sha256_hex(body)),
        ..FileSpec::default()
    }
}

fn quick_opts() -> FetchOptions {
    FetchOptions {
        timeout: Duration::from_secs(5),
        retries: 2,
        backoff: Duration::from_millis(10),
        ..FetchOptions::default()
    }
}

fn cache_in(dir: &Path) -> Cache {
    Cache::open(dir.join("zoo-cache"))
        .unwrap()
        .with_reuse(ReuseDirs::none())
}

/// Files directly under `dir` (non-recursive), sorted.
fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Nothing of `name` under a final name: no source directory, no blob.
fn assert_nothing_final(cache: &Cache, name: &str) {
    assert!(
        list(&cache.dir().join("sources")).is_empty(),
        "{name}: no source may be linked"
    );
    assert!(
        list(&cache.dir().join("blobs/sha256")).is_empty(),
        "{name}: no blob may be stored"
    );
}

fn zoo(args: &[&str], envs: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zoo"));
    cmd.args(args)
        .env_remove("ZOO_OFFLINE")
        .env_remove("ZOO_REGISTRY")
        .env("TORCH_HOME", "/nonexistent/torch-home")
        .env("HF_HOME", "/nonexistent/hf-home")
        .env_remove("HF_HUB_CACHE");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run zoo")
}

#[test]
fn downloads_verifies_links_and_then_hits_the_cache() {
    let server = TestServer::start();
    let body = payload(300_000, 1);
    server.serve("/w.pth", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let spec = spec("w.pth", vec![server.url("/w.pth")], &body);

    let got = cache.fetch(&spec, &quick_opts()).unwrap();
    assert_eq!(
        got.origin,
        Origin::Download {
            url: server.url("/w.pth")
        }
    );
    assert_eq!(got.sha256, sha256_hex(&body));
    assert_eq!(got.size, body.len() as u64);
    assert_eq!(got.blob, cache.blob_path(&got.sha256));
    assert_eq!(std::fs::read(&got.path).unwrap(), body);
    assert!(list(&cache.tmp_dir()).iter().all(|f| !f.ends_with(".part")));

    let again = cache.fetch(&spec, &quick_opts()).unwrap();
    assert_eq!(again.origin, Origin::Cache);
    assert_eq!(server.request_count(), 1);
    assert_eq!(
        cache.verify(&spec, &quick_opts()).unwrap().sha256,
        got.sha256
    );
}

#[test]
fn interrupted_at_60_percent_resumes_with_range_in_the_same_call() {
    let server = TestServer::start();
    let body = payload(1_000_000, 2);
    server.serve_with(
        "/r.bin",
        body.clone(),
        Fault::DropAt {
            at: 600_000,
            times: 1,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let got = cache
        .fetch(
            &spec("r.bin", vec![server.url("/r.bin")], &body),
            &quick_opts(),
        )
        .unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), body);
    let log = server.requests();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0].range, None);
    assert_eq!(log[1].range.as_deref(), Some("bytes=600000-"));
    assert_eq!(log[1].status, 206);
}

#[test]
fn interrupted_download_resumes_from_part_in_a_new_process() {
    let server = TestServer::start();
    let body = payload(1_000_000, 3);
    server.serve_with(
        "/p.bin",
        body.clone(),
        Fault::DropAt {
            at: 600_000,
            times: 1,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("zoo-cache");
    let sha = sha256_hex(&body);
    let size = body.len().to_string();
    let url = server.url("/p.bin");
    let args = [
        "fetch",
        "--url",
        &url,
        "--sha256",
        &sha,
        "--size",
        &size,
        "--retries",
        "0",
    ];

    let first = zoo(&args, &[("ZOO_CACHE", &root)]);
    assert_eq!(first.status.code(), Some(2), "{first:?}");
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        stderr.contains("p.bin") && stderr.contains(&url),
        "{stderr}"
    );
    let cache = Cache::open(&root).unwrap();
    assert_nothing_final(&cache, "p.bin");
    let part = cache.tmp_dir().join(format!("sha256-{sha}.part"));
    assert_eq!(std::fs::metadata(&part).unwrap().len(), 600_000);

    let second = zoo(&args, &[("ZOO_CACHE", &root)]);
    assert_eq!(second.status.code(), Some(0), "{second:?}");
    let readable = cache
        .source_path(&spec("p.bin", vec![url.clone()], &body))
        .unwrap();
    assert_eq!(std::fs::read(readable).unwrap(), body);
    assert!(!part.exists());
    let log = server.requests();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[1].range.as_deref(), Some("bytes=600000-"));
}

#[test]
fn server_error_then_success_is_retried() {
    let server = TestServer::start();
    let body = payload(50_000, 4);
    server.serve_with("/e.bin", body.clone(), Fault::ServerError { times: 2 });
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let got = cache
        .fetch(
            &spec("e.bin", vec![server.url("/e.bin")], &body),
            &quick_opts(),
        )
        .unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), body);
    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 200]);
}

#[test]
fn persistent_server_error_fails_over_to_the_next_mirror() {
    let server = TestServer::start();
    let body = payload(50_000, 5);
    server.serve_with(
        "/bad/f.bin",
        body.clone(),
        Fault::ServerError { times: u32::MAX },
    );
    server.serve("/good/f.bin", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let urls = vec![
        server.url("/missing/f.bin"),
        server.url("/bad/f.bin"),
        server.url("/good/f.bin"),
    ];
    let got = cache
        .fetch(&spec("f.bin", urls, &body), &quick_opts())
        .unwrap();
    assert_eq!(
        got.origin,
        Origin::Download {
            url: server.url("/good/f.bin")
        }
    );
    let log = server.requests();
    // 404 is not retried; 500 is retried `retries` times.
    assert_eq!(log.iter().filter(|r| r.status == 404).count(), 1);
    assert_eq!(log.iter().filter(|r| r.status == 500).count(), 3);
}

/// A mirror is tried before the spec's URLs, at the `wget -m` place of the URL first.
#[test]
fn mirror_prefix_is_tried_first() {
    let server = TestServer::start();
    let body = payload(10_000, 6);
    let host = server.url("").trim_start_matches("http://").to_string();
    server.serve(&format!("/mirror/{host}/origin/m.bin"), body.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let opts = FetchOptions {
        mirrors: vec![server.url("/mirror")],
        ..quick_opts()
    };
    let got = cache
        .fetch(
            &spec("m.bin", vec![server.url("/origin/m.bin")], &body),
            &opts,
        )
        .unwrap();
    assert_eq!(
        got.origin,
        Origin::Download {
            url: server.url(&format!("/mirror/{host}/origin/m.bin"))
        }
    );
    assert_eq!(server.request_count(), 1);
}

#[test]
fn server_ignoring_range_restarts_from_zero() {
    let server = TestServer::start();
    let body = payload(400_000, 7);
    server.serve_with(
        "/i.bin",
        body.clone(),
        Fault::DropAt {
            at: 100_000,
            times: 1,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let spec = spec("i.bin", vec![server.url("/i.bin")], &body);
    let no_retry = FetchOptions {
        retries: 0,
        ..quick_opts()
    };
    let err = cache.fetch(&spec, &no_retry).unwrap_err();
    assert!(matches!(err, FetchError::AllSourcesFailed { .. }), "{err}");
    assert_nothing_final(&cache, "i.bin");

    server.set_fault("/i.bin", Fault::IgnoreRange);
    let got = cache.fetch(&spec, &no_retry).unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), body);
    let log = server.requests();
    assert_eq!(log[1].range.as_deref(), Some("bytes=100000-"));
    assert_eq!(log[1].status, 200);
}

#[test]
fn same_size_corruption_is_reported_with_both_hashes_and_the_url() {
    let server = TestServer::start();
    let body = payload(200_000, 8);
    server.serve_with("/c.bin", body.clone(), Fault::WrongBytes);
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let url = server.url("/c.bin");
    let err = cache
        .fetch(&spec("c.bin", vec![url.clone()], &body), &quick_opts())
        .unwrap_err();
    assert!(err.is_verification_failure());
    let wrong: Vec<u8> = body.iter().map(|b| b ^ 0xFF).collect();
    let text = err.to_string();
    assert!(text.contains(&sha256_hex(&body)), "{text}");
    assert!(text.contains(&sha256_hex(&wrong)), "{text}");
    assert!(text.contains(&url), "{text}");
    assert_nothing_final(&cache, "c.bin");
    assert!(list(&cache.tmp_dir()).iter().all(|f| !f.ends_with(".part")));
    // Not retried: a mismatch is not transient.
    assert_eq!(server.request_count(), 1);
}

#[test]
fn cli_exits_1_on_hash_mismatch() {
    let server = TestServer::start();
    let body = payload(20_000, 9);
    server.serve_with("/c1.bin", body.clone(), Fault::WrongBytes);
    let dir = tempfile::tempdir().unwrap();
    let sha = sha256_hex(&body);
    let url = server.url("/c1.bin");
    let out = zoo(
        &["fetch", "--url", &url, "--sha256", &sha],
        &[("ZOO_CACHE", dir.path())],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&sha) && stderr.contains(&url), "{stderr}");
    assert!(stderr.contains(&sha256_hex(
        &body.iter().map(|b| b ^ 0xFF).collect::<Vec<_>>()
    )));
}

#[test]
fn stall_past_the_timeout_is_a_clear_error_then_resumes() {
    let server = TestServer::start();
    let body = payload(300_000, 10);
    let stall = Fault::Stall {
        at: 100_000,
        pause: Duration::from_secs(3),
        times: 1,
    };
    server.serve_with("/s.bin", body.clone(), stall);
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let spec = spec("s.bin", vec![server.url("/s.bin")], &body);
    let opts = FetchOptions {
        timeout: Duration::from_millis(300),
        retries: 0,
        ..quick_opts()
    };
    let err = cache.fetch(&spec, &opts).unwrap_err();
    let FetchError::AllSourcesFailed { failures, .. } = &err else {
        panic!("unexpected {err}");
    };
    assert!(
        matches!(
            failures[0].error,
            FetchError::Network {
                timed_out: true,
                ..
            }
        ),
        "{err}"
    );
    assert_nothing_final(&cache, "s.bin");
    let got = cache.fetch(&spec, &opts).unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), body);
    assert_eq!(server.requests()[1].range.as_deref(), Some("bytes=100000-"));
}

#[test]
fn wrong_announced_size_is_rejected_before_download() {
    let server = TestServer::start();
    let body = payload(10_000, 11);
    server.serve("/z.bin", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let mut spec = spec("z.bin", vec![server.url("/z.bin")], &body);
    spec.size = Some(9_999);
    let err = cache.fetch(&spec, &quick_opts()).unwrap_err();
    assert!(err.is_verification_failure(), "{err}");
    assert!(
        err.to_string()
            .contains("expected 9999 bytes, actual 10000"),
        "{err}"
    );
    assert_nothing_final(&cache, "z.bin");
}

#[test]
fn two_concurrent_processes_download_once() {
    let server = TestServer::start();
    let body = payload(2_000_000, 12);
    let slow = Fault::Throttle {
        chunk: 64 * 1024,
        delay: Duration::from_millis(10),
    };
    server.serve_with("/cc.bin", body.clone(), slow);
    let dir = tempfile::tempdir().unwrap();
    let sha = sha256_hex(&body);
    let url = server.url("/cc.bin");
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_zoo"))
            .args(["fetch", "--url", &url, "--sha256", &sha, "--json"])
            .env("ZOO_CACHE", dir.path())
            .env("TORCH_HOME", "/nonexistent/torch-home")
            .env("HF_HOME", "/nonexistent/hf-home")
            .env_remove("ZOO_OFFLINE")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn();
    let b = spawn();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{a:?}");
    assert!(b.status.success(), "{b:?}");
    for out in [&a, &b] {
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["sha256"], sha.as_str());
    }
    assert_eq!(server.full_gets("/cc.bin"), 1);
    assert_eq!(server.request_count(), 1);
}

#[test]
fn torch_hub_file_is_verified_and_reused_without_a_request() {
    let server = TestServer::start();
    let body = payload(30_000, 13);
    server.serve("/t.pth", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let torch_home = dir.path().join("torch");
    let checkpoints = torch_home.join("hub/checkpoints");
    std::fs::create_dir_all(&checkpoints).unwrap();
    std::fs::write(checkpoints.join("t.pth"), &body).unwrap();
    let sha = sha256_hex(&body);
    let url = server.url("/t.pth");
    let root = dir.path().join("zoo-cache");
    let out = zoo(
        &["fetch", "--url", &url, "--sha256", &sha, "--json"],
        &[("ZOO_CACHE", &root), ("TORCH_HOME", &torch_home)],
    );
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["origin"]["kind"], "torch_hub");
    assert_eq!(server.request_count(), 0);
    let cache = Cache::open(&root).unwrap();
    let readable = cache
        .source_path(&spec("t.pth", vec![url.clone()], &body))
        .unwrap();
    assert_eq!(std::fs::read(readable).unwrap(), body);
}

#[test]
fn torch_hub_file_with_wrong_bytes_is_not_reused() {
    let server = TestServer::start();
    let body = payload(30_000, 14);
    server.serve("/t2.pth", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = dir.path().join("torch/hub/checkpoints");
    std::fs::create_dir_all(&checkpoints).unwrap();
    std::fs::write(checkpoints.join("t2.pth"), payload(30_000, 99)).unwrap();
    let cache = cache_in(dir.path()).with_reuse(ReuseDirs {
        torch_home: Some(dir.path().join("torch")),
        hf_hub_cache: None,
    });
    let got = cache
        .fetch(
            &spec("t2.pth", vec![server.url("/t2.pth")], &body),
            &quick_opts(),
        )
        .unwrap();
    assert!(matches!(got.origin, Origin::Download { .. }));
    assert_eq!(server.request_count(), 1);
}

#[test]
fn hf_cache_snapshot_is_verified_and_reused_without_a_request() {
    let server = TestServer::start();
    let body = payload(40_000, 15);
    server.serve("/model.safetensors", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let hub = dir.path().join("hf/hub");
    let repo = hub.join("models--timm--tf_efficientnet_b0.ns_jft_in1k");
    let blob = repo.join("blobs/etag123");
    let snapshot = repo.join("snapshots/0123abcd");
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(&blob, &body).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    std::os::unix::fs::symlink("../../blobs/etag123", snapshot.join("model.safetensors")).unwrap();
    let cache = cache_in(dir.path()).with_reuse(ReuseDirs {
        torch_home: None,
        hf_hub_cache: Some(hub),
    });
    let hf_url =
        "https://huggingface.co/timm/tf_efficientnet_b0.ns_jft_in1k/resolve/main/model.safetensors";
    let spec = spec(
        "tf_efficientnet_b0_ns.safetensors",
        vec![hf_url.to_string(), server.url("/model.safetensors")],
        &body,
    );
    let got = cache.fetch(&spec, &quick_opts()).unwrap();
    assert_eq!(
        got.origin,
        Origin::HfCache {
            path: snapshot.join("model.safetensors")
        }
    );
    assert_eq!(server.request_count(), 0);
    assert_eq!(std::fs::read(&got.path).unwrap(), body);
    // The HF cache itself is untouched (still a symlink to its blob).
    assert!(
        std::fs::symlink_metadata(snapshot.join("model.safetensors"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn offline_with_empty_cache_fails_naming_the_file_without_a_request() {
    let server = TestServer::start();
    let body = payload(1_000, 16);
    server.serve("/o.bin", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let url = server.url("/o.bin");
    let sha = sha256_hex(&body);
    let out = zoo(
        &["fetch", "--offline", "--url", &url, "--sha256", &sha],
        &[("ZOO_CACHE", dir.path())],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("o.bin") && stderr.contains("offline"),
        "{stderr}"
    );

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zoo"));
    let env_out = cmd
        .args(["fetch", "--url", &url, "--sha256", &sha])
        .env("ZOO_CACHE", dir.path())
        .env("ZOO_OFFLINE", "1")
        .env("TORCH_HOME", "/nonexistent")
        .env("HF_HOME", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(env_out.status.code(), Some(2), "{env_out:?}");
    assert_eq!(server.request_count(), 0);
}

#[test]
fn offline_serves_a_cache_hit() {
    let server = TestServer::start();
    let body = payload(1_000, 17);
    server.serve("/oh.bin", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let spec = spec("oh.bin", vec![server.url("/oh.bin")], &body);
    cache.fetch(&spec, &quick_opts()).unwrap();
    let offline = FetchOptions {
        offline: true,
        ..quick_opts()
    };
    assert_eq!(cache.fetch(&spec, &offline).unwrap().origin, Origin::Cache);
    assert_eq!(
        cache.lookup(&spec, &offline).unwrap().unwrap().origin,
        Origin::Cache
    );
    assert_eq!(server.request_count(), 1);
}

#[test]
fn prefix_only_pins_the_full_hash_which_is_then_enforced() {
    let server = TestServer::start();
    let body = payload(25_000, 18);
    let full = sha256_hex(&body);
    server.serve("/x-12345678.pth", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let lock_path = dir.path().join("registry/weights.lock");
    let opts = FetchOptions {
        lock_file: Some(lock_path.clone()),
        ..quick_opts()
    };
    let spec = FileSpec {
        file_name: "x.pth".to_string(),
        urls: vec![server.url("/x-12345678.pth")],
        size: None,
        sha256: None,
        sha256_prefix: Some(full[..8].to_string()),
        entry: None,
        unique_name: false,
    };
    let cache = cache_in(dir.path());
    let got = cache.fetch(&spec, &opts).unwrap();
    assert_eq!(got.sha256, full);
    let lock = WeightsLock::read(&lock_path).unwrap();
    let pin = &lock.pins[&server.url("/x-12345678.pth")];
    assert_eq!(
        (pin.file.as_str(), pin.sha256.as_str()),
        ("x.pth", full.as_str())
    );
    assert_eq!(pin.size, body.len() as u64);
    assert_eq!(
        got.proof,
        Proof::Sha256Prefix {
            prefix: full[..8].to_string(),
            lock: Some(lock_path.clone())
        }
    );

    // A fresh cache, and the server now serves other bytes of the same size: the pinned full
    // hash is enforced.
    server.set_fault("/x-12345678.pth", Fault::WrongBytes);
    let other_cache = Cache::open(dir.path().join("other-cache"))
        .unwrap()
        .with_reuse(ReuseDirs::none());
    let err = other_cache.fetch(&spec, &opts).unwrap_err();
    assert!(err.is_verification_failure(), "{err}");
    // The message names the lock file, the pin, and how to re-pin.
    let text = err.to_string();
    assert!(text.contains(&format!("pinned sha256 {full}")), "{text}");
    assert!(
        text.contains(&format!(
            "delete the entry \"{}\" from {}",
            server.url("/x-12345678.pth"),
            lock_path.display()
        )),
        "{text}"
    );
}

#[test]
fn prefix_mismatch_is_a_verification_failure() {
    let server = TestServer::start();
    let body = payload(5_000, 19);
    server.serve("/y.pth", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let actual = sha256_hex(&body);
    let wrong_prefix = if actual.starts_with("00000000") {
        "11111111"
    } else {
        "00000000"
    };
    let spec = FileSpec {
        file_name: "y.pth".to_string(),
        urls: vec![server.url("/y.pth")],
        size: None,
        sha256: None,
        sha256_prefix: Some(wrong_prefix.to_string()),
        entry: None,
        unique_name: false,
    };
    let err = cache.fetch(&spec, &quick_opts()).unwrap_err();
    assert!(err.is_verification_failure());
    assert!(err.to_string().contains(&actual), "{err}");
    assert_nothing_final(&cache, "y.pth");
}

#[test]
fn verify_detects_a_corrupted_blob_and_removes_it() {
    let server = TestServer::start();
    let body = payload(20_000, 20);
    server.serve("/v.bin", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("zoo-cache");
    let sha = sha256_hex(&body);
    let url = server.url("/v.bin");
    let args = ["fetch", "--url", &url, "--sha256", &sha, "--verify"];
    assert_eq!(zoo(&args, &[("ZOO_CACHE", &root)]).status.code(), Some(0));
    let cache = Cache::open(&root).unwrap();
    // Same-size bit rot in the cache.
    let blob = cache.blob_path(&sha);
    let mut rotten = body.clone();
    rotten[123] ^= 1;
    std::fs::write(&blob, &rotten).unwrap();
    let out = zoo(&args, &[("ZOO_CACHE", &root)]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&sha256_hex(&rotten)), "{stderr}");
    assert!(!blob.exists());
    // The next fetch downloads a good copy again.
    assert_eq!(zoo(&args, &[("ZOO_CACHE", &root)]).status.code(), Some(0));
    assert_eq!(std::fs::read(&blob).unwrap(), body);
}

#[test]
fn file_urls_are_copied_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let body = payload(12_345, 21);
    let src = dir.path().join("local weights.bin");
    std::fs::write(&src, &body).unwrap();
    let url = reqwest_free_file_url(&src);
    let cache = cache_in(dir.path());
    let got = cache
        .fetch(&spec("l.bin", vec![url], &body), &quick_opts())
        .unwrap();
    assert_eq!(got.origin, Origin::LocalFile { path: src });
    assert_eq!(std::fs::read(&got.path).unwrap(), body);
}

fn reqwest_free_file_url(path: &Path) -> String {
    format!("file://{}", path.display()).replace(' ', "%20")
}

#[test]
fn hash_command_prints_sha256_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("h.bin");
    let body = payload(4_321, 22);
    std::fs::write(&path, &body).unwrap();
    let out = zoo(&["hash", path.to_str().unwrap()], &[]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        format!("{}  4321  {}", sha256_hex(&body), path.display())
    );
    let json = zoo(&["hash", "--json", path.to_str().unwrap()], &[]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value[0]["sha256"], sha256_hex(&body).as_str());
    assert_eq!(value[0]["size"], 4321);
    assert_eq!(sha256_file(&path).unwrap(), (sha256_hex(&body), 4321));
    let missing = zoo(&["hash", "/nonexistent/file"], &[]);
    assert_eq!(missing.status.code(), Some(2));
}

// ---------------------------------------------------------------------------------------------
// Issue 13: identity by source, proofs, pins, failures that fail, next steps.

fn first_use_spec(model: &str, url: String) -> FileSpec {
    FileSpec {
        file_name: "model.safetensors".to_string(),
        urls: vec![url],
        entry: Some(RegistryFile {
            model: model.to_string(),
            role: "hf-safetensors".to_string(),
        }),
        ..FileSpec::default()
    }
}

/// Every Hugging Face file is called `model.safetensors`: fetching one model's must never
/// answer another model's from the cache or the lock file.
#[test]
fn two_models_sharing_a_file_name_get_their_own_bytes() {
    let server = TestServer::start();
    let (b0, b1) = (payload(30_000, 30), payload(31_000, 31));
    server.serve("/timm/b0/resolve/main/model.safetensors", b0.clone());
    server.serve("/timm/b1/resolve/main/model.safetensors", b1.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let lock_path = dir.path().join("weights.lock");
    let opts = FetchOptions {
        lock_file: Some(lock_path.clone()),
        ..quick_opts()
    };
    let s0 = first_use_spec("b0", server.url("/timm/b0/resolve/main/model.safetensors"));
    let s1 = first_use_spec("b1", server.url("/timm/b1/resolve/main/model.safetensors"));

    let f0 = cache.fetch(&s0, &opts).unwrap();
    let f1 = cache.fetch(&s1, &opts).unwrap();
    assert!(matches!(f1.origin, Origin::Download { .. }), "{f1:?}");
    assert_eq!(std::fs::read(&f0.path).unwrap(), b0);
    assert_eq!(std::fs::read(&f1.path).unwrap(), b1);
    assert_ne!(f0.path, f1.path);
    assert_eq!(
        f1.proof,
        Proof::FirstUse {
            lock: Some(lock_path.clone())
        }
    );

    // Cached and pinned separately: a second round is two cache hits, each its own bytes.
    for (spec, body) in [(&s0, &b0), (&s1, &b1)] {
        let again = cache.fetch(spec, &opts).unwrap();
        assert_eq!(again.origin, Origin::Cache);
        assert_eq!(std::fs::read(&again.path).unwrap(), *body);
        assert_eq!(again.sha256, sha256_hex(body));
    }
    assert_eq!(server.request_count(), 2);
    let lock = WeightsLock::read(&lock_path).unwrap();
    assert_eq!(lock.pins.len(), 2);
    for (spec, body, model) in [(&s0, &b0, "b0"), (&s1, &b1, "b1")] {
        let pin = &lock.pins[&spec.urls[0]];
        assert_eq!(pin.sha256, sha256_hex(body));
        assert_eq!(pin.model.as_deref(), Some(model));
        assert_eq!(pin.role.as_deref(), Some("hf-safetensors"));
    }
}

/// A cache laid out as zoo wrote it before issue 13 (`v1/`: blobs, `by-name/<file_name>` links,
/// a lock keyed by file name) is never misread: its name links and lock are ignored, its
/// content-addressed blobs are taken over when a full hash or a prefix names them (re-hashed,
/// so a damaged one is not), and a version-1 lock file is replaced by a version-2 one.
#[test]
fn an_old_layout_cache_is_read_by_hash_only_and_its_names_are_ignored() {
    let server = TestServer::start();
    let b0 = payload(20_000, 40);
    let b1 = payload(21_000, 41);
    let pth = payload(22_000, 42);
    let good = payload(23_000, 43);
    server.serve("/b1/model.safetensors", b1.clone());
    server.serve("/good.bin", good.clone());
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("zoo-cache");

    // The old layout, exactly as the previous code wrote it.
    let v1 = root.join("v1");
    for sub in ["blobs/sha256", "by-name", "tmp"] {
        std::fs::create_dir_all(v1.join(sub)).unwrap();
    }
    let put_blob = |hash: &str, bytes: &[u8]| {
        std::fs::write(v1.join("blobs/sha256").join(hash), bytes).unwrap();
    };
    let link = |name: &str, hash: &str| {
        std::os::unix::fs::symlink(
            Path::new("..").join("blobs/sha256").join(hash),
            v1.join("by-name").join(name),
        )
        .unwrap();
    };
    put_blob(&sha256_hex(&b0), &b0);
    link("model.safetensors", &sha256_hex(&b0));
    let pth_hash = sha256_hex(&pth);
    put_blob(&pth_hash, &pth);
    link(&format!("x-{}.pth", &pth_hash[..8]), &pth_hash);
    // A damaged blob: its name is `good`'s hash, its bytes are not.
    put_blob(&sha256_hex(&good), &payload(23_000, 44));
    let v1_lock = format!(
        "{{\n  \"version\": 1,\n  \"files\": {{\n    \"model.safetensors\": {{\n      \"sha256\": \"{}\",\n      \"size\": {}\n    }}\n  }}\n}}\n",
        sha256_hex(&b0),
        b0.len()
    );
    std::fs::write(v1.join("weights.lock"), &v1_lock).unwrap();
    let registry_lock = dir.path().join("registry/weights.lock");
    std::fs::create_dir_all(registry_lock.parent().unwrap()).unwrap();
    std::fs::write(&registry_lock, &v1_lock).unwrap();

    let cache = Cache::open(&root).unwrap().with_reuse(ReuseDirs::none());
    for lock in [cache.dir().join("weights.lock"), registry_lock.clone()] {
        let opts = FetchOptions {
            lock_file: Some(lock.clone()),
            ..quick_opts()
        };
        // b1's model.safetensors has no hash: the old name link and the old lock (both saying
        // b0's bytes) are not read; b1's own bytes are downloaded.
        let s1 = first_use_spec("b1", server.url("/b1/model.safetensors"));
        let got = cache.fetch(&s1, &opts).unwrap();
        assert_eq!(
            std::fs::read(&got.path).unwrap(),
            b1,
            "lock {}",
            lock.display()
        );
        let pins = WeightsLock::read(&lock).unwrap().pins;
        assert_eq!(pins[&s1.urls[0]].sha256, sha256_hex(&b1));
    }
    assert_eq!(server.full_gets("/b1/model.safetensors"), 1);
    let rewritten = std::fs::read_to_string(&registry_lock).unwrap();
    assert!(rewritten.contains("\"version\": 2"), "{rewritten}");
    assert!(!rewritten.contains(&sha256_hex(&b0)), "{rewritten}");

    // A prefix names an old blob: taken over (and pinned), no request.
    let opts = FetchOptions {
        lock_file: Some(cache.dir().join("weights.lock")),
        ..quick_opts()
    };
    let prefixed = FileSpec {
        file_name: format!("x-{}.pth", &pth_hash[..8]),
        urls: vec![server.url("/not-served/x.pth")],
        sha256_prefix: Some(pth_hash[..8].to_string()),
        ..FileSpec::default()
    };
    let got = cache.fetch(&prefixed, &opts).unwrap();
    assert!(matches!(got.origin, Origin::LegacyCache { .. }), "{got:?}");
    assert_eq!(std::fs::read(&got.path).unwrap(), pth);
    // A full hash names an old blob: taken over, no request.
    let full = spec("b0.safetensors", vec![server.url("/not-served/b0")], &b0);
    let got = cache.fetch(&full, &opts).unwrap();
    assert!(matches!(got.origin, Origin::LegacyCache { .. }), "{got:?}");
    assert_eq!(std::fs::read(&got.blob).unwrap(), b0);
    // The damaged old blob is not taken: the file is downloaded.
    let got = cache
        .fetch(
            &spec("good.bin", vec![server.url("/good.bin")], &good),
            &opts,
        )
        .unwrap();
    assert!(matches!(got.origin, Origin::Download { .. }), "{got:?}");
    assert_eq!(std::fs::read(&got.path).unwrap(), good);
    assert!(server
        .requests()
        .iter()
        .all(|r| !r.path.starts_with("/not-served")));
}

/// A file with no hash anywhere is trusted on first use and pinned; when the source later
/// serves other bytes, the error names the lock file, the pin's key and how to re-pin.
#[test]
fn a_changed_file_fails_its_first_use_pin_with_the_lock_file_and_how_to_repin() {
    let server = TestServer::start();
    let body = payload(12_000, 50);
    let url = server.url("/m/model.safetensors");
    server.serve("/m/model.safetensors", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let lock_path = dir.path().join("registry/weights.lock");
    let opts = FetchOptions {
        lock_file: Some(lock_path.clone()),
        ..quick_opts()
    };
    let spec = first_use_spec("m", url.clone());
    let got = cache_in(dir.path()).fetch(&spec, &opts).unwrap();
    assert!(!got.proof.is_from_spec());

    server.set_fault("/m/model.safetensors", Fault::WrongBytes);
    let fresh = Cache::open(dir.path().join("fresh"))
        .unwrap()
        .with_reuse(ReuseDirs::none());
    let err = fresh.fetch(&spec, &opts).unwrap_err();
    assert!(err.is_verification_failure(), "{err}");
    let text = err.to_string();
    for needle in [
        format!("pinned sha256 {}", sha256_hex(&body)),
        format!("in {}", lock_path.display()),
        format!("delete the entry \"{url}\""),
        "`zoo fetch m --role hf-safetensors`".to_string(),
    ] {
        assert!(text.contains(&needle), "{needle} not in: {text}");
    }
    // Deleting the pin, as the message says, lets the new bytes in.
    std::fs::remove_file(&lock_path).unwrap();
    let repinned = fresh.fetch(&spec, &opts).unwrap();
    assert_eq!(
        repinned.sha256,
        sha256_hex(&body.iter().map(|b| b ^ 0xFF).collect::<Vec<_>>())
    );
}

/// What the next-steps message tells users to do works: a file put at the source path is
/// verified and taken in, offline; a wrong file put there is an error naming that path.
#[test]
fn a_file_put_at_its_source_path_is_verified_and_taken_in() {
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let body = payload(9_000, 60);
    let offline = FetchOptions {
        offline: true,
        ..quick_opts()
    };
    let good = spec("w.bin", vec!["https://example.invalid/w.bin".into()], &body);
    let place = cache.source_path(&good).unwrap();
    std::fs::create_dir_all(place.parent().unwrap()).unwrap();
    std::fs::write(&place, &body).unwrap();
    let got = cache.fetch(&good, &offline).unwrap();
    assert_eq!(
        got.origin,
        Origin::Placed {
            path: place.clone()
        }
    );
    assert_eq!(got.proof, Proof::Sha256);
    assert_eq!(std::fs::read(&got.blob).unwrap(), body);
    assert_eq!(cache.fetch(&good, &offline).unwrap().origin, Origin::Cache);

    let other = payload(9_000, 61);
    let wrong = spec(
        "v.bin",
        vec!["https://example.invalid/v.bin".into()],
        &other,
    );
    let place = cache.source_path(&wrong).unwrap();
    std::fs::create_dir_all(place.parent().unwrap()).unwrap();
    std::fs::write(&place, &body).unwrap();
    let err = cache.fetch(&wrong, &offline).unwrap_err();
    assert!(err.is_verification_failure(), "{err}");
    assert!(
        err.to_string().contains(&place.display().to_string()),
        "{err}"
    );
}

/// The io error is said once, even through the CLI's cause chain.
#[test]
fn io_errors_are_not_doubled() {
    let out = zoo(&["hash", "/nonexistent/file"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
    let err = FetchError::Io {
        path: PathBuf::from("/x"),
        error: std::io::Error::from(std::io::ErrorKind::NotFound),
    };
    assert_eq!(
        format!("{:#}", anyhow::Error::from(err)),
        "/x: entity not found"
    );
}

// --- the CLI over a registry -----------------------------------------------------------------

/// A copy of tests/fixtures/registry-tiny whose file URL points at `base` (`http://…`), with
/// `edit` applied to tiny.yml; returns (registry dir, tiny.yml text as written).
fn tiny_registry(dir: &Path, base: &str, edit: impl Fn(String) -> String) -> (PathBuf, String) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let reg = dir.join("registry-tiny");
    std::fs::create_dir_all(&reg).unwrap();
    std::fs::copy(
        fixtures.join("registry-tiny/model-index.yml"),
        reg.join("model-index.yml"),
    )
    .unwrap();
    let text = std::fs::read_to_string(fixtures.join("registry-tiny/tiny.yml"))
        .unwrap()
        .replace("http://127.0.0.1:9", base)
        .replace(
            "../efficientnet-tiny/",
            &format!("{}/", fixtures.join("efficientnet-tiny").display()),
        );
    let text = edit(text);
    std::fs::write(reg.join("tiny.yml"), &text).unwrap();
    (reg, text)
}

fn tiny_tarball() -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/efficientnet-tiny/efficientnet-tiny.tar.gz"),
    )
    .unwrap()
}

const TINY_SHA256: &str = "f536f9317239e351894faef5e8c1d847202a2028370e014c449d01cc0ef2ebe1";

/// An http base URL nothing listens on (bound, then closed).
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

fn registry_zoo(reg: &Path, cache: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["--registry", reg.to_str().unwrap()];
    all.extend(args);
    let out = zoo(&all, &[("ZOO_CACHE", cache)]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A registry at `<dir>/registry` of two models, m0 and m1, each with a hash-less
/// `model.safetensors` at `<base>/timm/<model>/resolve/main/model.safetensors`.
fn shared_name_registry(dir: &Path, base: &str) -> PathBuf {
    let reg = dir.join("registry");
    std::fs::create_dir_all(&reg).unwrap();
    let model = |name: &str| {
        format!(
            "- Name: {name}\n  In Collection: Shared Names\n  Zoo:\n    Architecture: tf_efficientnet_b0\n    Files:\n    - Role: hf-safetensors\n      File: model.safetensors\n      Urls:\n      - {base}/timm/{name}/resolve/main/model.safetensors\n      Format: safetensors\n"
        )
    };
    std::fs::write(
        reg.join("model-index.yml"),
        format!(
            "Type: model-index\nCollections:\n- Name: Shared Names\nModels:\n{}{}",
            model("m0"),
            model("m1")
        ),
    )
    .unwrap();
    reg
}

/// `zoo fetch m0 --role hf-safetensors`, then m1: each model gets its own `model.safetensors`.
#[test]
fn zoo_fetch_of_two_models_sharing_a_file_name_gets_each_its_own_bytes() {
    let server = TestServer::start();
    let (b0, b1) = (payload(10_000, 70), payload(10_001, 71));
    server.serve("/timm/m0/resolve/main/model.safetensors", b0.clone());
    server.serve("/timm/m1/resolve/main/model.safetensors", b1.clone());
    let dir = tempfile::tempdir().unwrap();
    let reg = shared_name_registry(dir.path(), &server.url(""));
    let cache = dir.path().join("cache");
    for (name, body) in [("m0", &b0), ("m1", &b1), ("m0", &b0)] {
        let (code, out, err) = registry_zoo(
            &reg,
            &cache,
            &["fetch", name, "--role", "hf-safetensors", "--json"],
        );
        assert_eq!(code, 0, "{out}{err}");
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(json["sha256"], sha256_hex(body).as_str(), "{name}");
        assert_eq!(json["proof"]["kind"], "first_use", "{json}");
        let path = PathBuf::from(json["path"].as_str().unwrap());
        assert_eq!(std::fs::read(path).unwrap(), *body, "{name}");
    }
    assert_eq!(server.request_count(), 2);
    let lock = WeightsLock::read(&reg.join("weights.lock")).unwrap();
    assert_eq!(lock.pins.len(), 2);
}

/// A mirror holds files in the `wget -m` layout, `<prefix>/<host>:<port>/<path>`, so two models'
/// `model.safetensors` never collide: with the registry's host dead, `zoo fetch m0 m1 --mirror`
/// gets each model its own bytes, and the flat `<prefix>/model.safetensors` (which could be
/// either) is never asked for. Before, both got the flat file's bytes, pinned on first use.
#[test]
fn mirrors_keep_files_of_one_name_apart() {
    let server = TestServer::start();
    let origin = closed_port_url();
    let host = origin.trim_start_matches("http://").to_string();
    let (b0, b1) = (payload(10_000, 72), payload(10_001, 73));
    for (name, body) in [("m0", &b0), ("m1", &b1)] {
        server.serve(
            &format!("/A/{host}/timm/{name}/resolve/main/model.safetensors"),
            body.clone(),
        );
    }
    server.serve("/A/model.safetensors", b0.clone());
    let dir = tempfile::tempdir().unwrap();
    let reg = shared_name_registry(dir.path(), &origin);
    let cache = dir.path().join("cache");
    let mirror = server.url("/A/");
    let (code, out, err) = registry_zoo(
        &reg,
        &cache,
        &[
            "fetch",
            "m0",
            "m1",
            "--role",
            "hf-safetensors",
            "--mirror",
            &mirror,
            "--json",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let got: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&out)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(got.len(), 2, "{out}");
    for (json, body) in got.iter().zip([&b0, &b1]) {
        assert_eq!(json["sha256"], sha256_hex(body).as_str(), "{json}");
        let path = PathBuf::from(json["path"].as_str().unwrap());
        assert_eq!(std::fs::read(path).unwrap(), *body);
    }
    assert_eq!(server.full_gets("/A/model.safetensors"), 0);
    assert_eq!(server.request_count(), 2);
}

/// The flat `<prefix>/<file name>` still serves a file whose name is unique in the registry or
/// whose full sha256 is given, after the `wget -m` place; without either it is not asked for.
#[test]
fn a_mirror_serves_a_flat_name_only_where_it_cannot_be_mistaken() {
    let server = TestServer::start();
    let body = payload(5_000, 74);
    server.serve("/flat/f.bin", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let origin = closed_port_url();
    let opts = FetchOptions {
        mirrors: vec![server.url("/flat")],
        ..quick_opts()
    };
    let host = origin.trim_start_matches("http://");
    let unhashed = FileSpec {
        file_name: "f.bin".into(),
        urls: vec![format!("{origin}/x/f.bin")],
        ..FileSpec::default()
    };
    assert!(cache.fetch(&unhashed, &opts).is_err());
    let asked: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(asked, [format!("/flat/{host}/x/f.bin")]);
    for spec in [
        FileSpec {
            unique_name: true,
            ..unhashed.clone()
        },
        FileSpec {
            sha256: Some(sha256_hex(&body)),
            ..unhashed.clone()
        },
    ] {
        let got = cache_in(&dir.path().join(format!("{}", spec.unique_name)))
            .fetch(&spec, &opts)
            .unwrap();
        assert_eq!(
            got.origin,
            Origin::Download {
                url: server.url("/flat/f.bin")
            }
        );
    }
}

/// Query values of URLs (signed URLs' tokens) are never printed, in text or JSON, nor kept in
/// the cache's lookup record: `?token=…` and `&X-Amz-Signature=…` show as `***`.
#[test]
fn query_tokens_are_redacted_in_output_and_records() {
    let server = TestServer::start();
    let body = payload(3_000, 75);
    server.serve("/s.bin?token=S3CRET1&dl=1", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let sha = sha256_hex(&body);
    let url = server.url("/s.bin?token=S3CRET1&dl=1");
    for json in [false, true] {
        let mut args = vec!["fetch", "--url", &url, "--sha256", &sha];
        if json {
            args.push("--json");
        }
        let out = zoo(&args, &[("ZOO_CACHE", &cache)]);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
        assert!(
            !stdout.contains("S3CRET1") && !stderr.contains("S3CRET1"),
            "{stdout}{stderr}"
        );
    }
    let mut records = vec![];
    for d in std::fs::read_dir(cache.join("v2/sources")).unwrap() {
        let text = std::fs::read_to_string(d.unwrap().path().join(".source.json")).unwrap();
        assert!(!text.contains("S3CRET1"), "{text}");
        records.push(text);
    }
    assert_eq!(records.len(), 1);
    assert!(
        records[0].contains("s.bin?token=***&dl=***"),
        "{}",
        records[0]
    );
    // Cached: the record still finds the file (no second download).
    let out = zoo(&["fetch", "--url", &url], &[("ZOO_CACHE", &cache)]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(server.full_gets("/s.bin?token=S3CRET1&dl=1"), 1);

    let dead = server.url("/gone.bin?X-Amz-Signature=S3CRET2");
    let out = zoo(
        &["fetch", "--url", &dead, "--retries", "0"],
        &[("ZOO_CACHE", &cache)],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("gone.bin?X-Amz-Signature=***"), "{stderr}");
    assert!(!stderr.contains("S3CRET2"), "{stderr}");
}

/// `zoo validate --fetch` where every download fails (a 404, or nothing listening) exits 1,
/// and the failure names the URL and the cause.
#[test]
fn validate_fetch_fails_when_the_download_fails() {
    let server = TestServer::start(); // no routes: every request is a 404
    let dir = tempfile::tempdir().unwrap();
    for (base, cause) in [
        (server.url(""), "HTTP 404".to_string()),
        (closed_port_url(), "Connection refused".to_string()),
    ] {
        let (reg, _) = tiny_registry(dir.path(), &base, |t| t);
        let url = format!("{base}/efficientnet-tiny.tar.gz");
        let (code, out, err) = registry_zoo(
            &reg,
            &dir.path().join("cache"),
            &["validate", "tiny", "--fetch"],
        );
        assert_eq!(code, 1, "{out}{err}");
        let line = out
            .lines()
            .find(|l| l.starts_with("FAIL efficientnet_tiny checksum:"))
            .unwrap_or_else(|| panic!("no checksum failure in: {out}"));
        assert!(line.contains(&url) && line.contains(&cause), "{line}");
        assert_eq!(line.matches(&url).count(), 1, "{line}");
        assert!(line.contains("--mirror URL"), "{line}");
        assert!(
            out.contains("FAIL efficientnet_tiny inference:"),
            "the inference check needed the same file: {out}"
        );
    }
}

/// `zoo convert NAME` with no network ends with what to do: where to put the file, `--from`,
/// `--mirror`, `zoo fetch NAME --role ROLE`; the URL and the OS error are said once.
#[test]
fn convert_without_network_ends_with_next_steps() {
    let dir = tempfile::tempdir().unwrap();
    let base = closed_port_url();
    let (reg, _) = tiny_registry(dir.path(), &base, |t| t);
    let cache = dir.path().join("cache");
    let out_dir = dir.path().join("out");
    let out_arg = out_dir.display().to_string();
    let url = format!("{base}/efficientnet-tiny.tar.gz");
    let (code, out, err) = registry_zoo(&reg, &cache, &["convert", "tiny", "--out", &out_arg]);
    assert_eq!(code, 2, "{out}{err}");
    let spec = FileSpec {
        file_name: "efficientnet-tiny.tar.gz".into(),
        urls: vec![url.clone()],
        ..FileSpec::default()
    };
    let place = Cache::open(&cache).unwrap().source_path(&spec).unwrap();
    for needle in [
        format!("put efficientnet-tiny.tar.gz at {}", place.display()),
        "zoo convert efficientnet_tiny --from PATH".to_string(),
        "zoo convert efficientnet_tiny --mirror URL".to_string(),
        "zoo fetch efficientnet_tiny --role tf-checkpoint".to_string(),
        "Connection refused".to_string(),
    ] {
        assert!(err.contains(&needle), "{needle} not in: {err}");
    }
    assert_eq!(err.matches(&url).count(), 1, "{err}");
    assert_eq!(err.matches("os error").count(), 1, "{err}");
    // Nothing to resume from a refused connection: no empty `.part` is left in the cache.
    fn parts(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                parts(&p, found);
            } else if p.extension().is_some_and(|e| e == "part") {
                found.push(p);
            }
        }
    }
    let mut found = vec![];
    parts(&cache, &mut found);
    let parts = found;
    assert_eq!(parts, Vec::<std::path::PathBuf>::new());

    // Offline: the same steps, and no request.
    let (code, _, err) = registry_zoo(
        &reg,
        &cache,
        &["convert", "tiny", "--out", &out_arg, "--offline"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("not in the cache, and zoo is offline"),
        "{err}"
    );
    assert!(err.contains(&place.display().to_string()), "{err}");

    // Doing what it says works: the file put there is taken in and converted.
    std::fs::create_dir_all(place.parent().unwrap()).unwrap();
    std::fs::write(&place, tiny_tarball()).unwrap();
    let (code, out, err) = registry_zoo(
        &reg,
        &cache,
        &["convert", "tiny", "--out", &out_arg, "--offline"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(TINY_SHA256), "{out}");
}

/// `zoo convert` warns that nothing verifies a hash-less file only for a file it used: not
/// before a fetch that then fails, and after one that succeeds.
#[test]
fn convert_warns_of_an_unverified_file_only_once_it_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let sha_line = format!("      Sha256: {TINY_SHA256}\n");
    let (reg, _) = tiny_registry(dir.path(), &closed_port_url(), |t| {
        assert!(t.contains(&sha_line));
        t.replace(&sha_line, "")
    });
    let cache = dir.path().join("cache");
    let out_arg = dir.path().join("out").display().to_string();
    let (code, out, err) = registry_zoo(&reg, &cache, &["convert", "tiny", "--out", &out_arg]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("Connection refused"), "{err}");
    assert!(!err.contains("no sha256 to verify against"), "{err}");

    let server = TestServer::start();
    server.serve("/m/efficientnet-tiny.tar.gz", tiny_tarball());
    let mirror = server.url("/m/");
    let (code, out, err) = registry_zoo(
        &reg,
        &cache,
        &["convert", "tiny", "--out", &out_arg, "--mirror", &mirror],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("warning: efficientnet-tiny.tar.gz: no sha256 to verify against"),
        "{err}"
    );
}

/// `zoo convert NAME --mirror URL` and `zoo validate --fetch --mirror URL` get the file from the
/// mirror when the registry's URL is dead.
#[test]
fn convert_and_validate_take_mirrors() {
    let server = TestServer::start();
    server.serve("/mirror/efficientnet-tiny.tar.gz", tiny_tarball());
    let dir = tempfile::tempdir().unwrap();
    let closed = closed_port_url();
    let (reg, _) = tiny_registry(dir.path(), &closed, |t| t);
    let mirror = server.url("/mirror/");

    let out_arg = dir.path().join("out").display().to_string();
    let (code, out, err) = registry_zoo(
        &reg,
        &dir.path().join("cache-convert"),
        &["convert", "tiny", "--out", &out_arg, "--mirror", &mirror],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(TINY_SHA256), "{out}");

    let (code, out, err) = registry_zoo(
        &reg,
        &dir.path().join("cache-validate"),
        &["validate", "tiny", "--fetch", "--mirror", &mirror, "-v"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("pass efficientnet_tiny checksum: verified: efficientnet-tiny.tar.gz"),
        "{out}"
    );
    assert_eq!(server.full_gets("/mirror/efficientnet-tiny.tar.gz"), 2);
    // Each run asked the `wget -m` place first (a 404 here), then the flat name (unique in
    // the registry).
    let asked: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    let host = closed.trim_start_matches("http://");
    let wget = format!("/mirror/{host}/efficientnet-tiny.tar.gz");
    let flat = "/mirror/efficientnet-tiny.tar.gz".to_string();
    assert_eq!(asked, [wget.clone(), flat.clone(), wget, flat]);
}

/// `zoo export NAME` takes `--mirror URL` as convert does, and its failed download names only
/// its own flags (`zoo export NAME --from PATH`, `--mirror URL`), never another command's.
#[test]
fn export_takes_mirrors_and_its_next_steps_name_export() {
    let server = TestServer::start();
    server.serve("/mirror/efficientnet-tiny.tar.gz", tiny_tarball());
    let dir = tempfile::tempdir().unwrap();
    let (reg, _) = tiny_registry(dir.path(), &closed_port_url(), |t| t);
    let hf = dir.path().join("hf").display().to_string();
    let cache = dir.path().join("cache");
    let (code, out, err) = registry_zoo(&reg, &cache, &["export", "tiny", "--hf", &hf]);
    assert_eq!(code, 2, "{out}{err}");
    for needle in [
        "zoo export efficientnet_tiny --from PATH",
        "zoo export efficientnet_tiny --mirror URL",
    ] {
        assert!(err.contains(needle), "{needle} not in: {err}");
    }
    assert!(!err.contains("zoo convert"), "{err}");
    let mirror = server.url("/mirror/");
    let (_, out, err) = registry_zoo(
        &reg,
        &cache,
        &["export", "tiny", "--hf", &hf, "--mirror", &mirror],
    );
    assert_eq!(
        server.full_gets("/mirror/efficientnet-tiny.tar.gz"),
        1,
        "{out}{err}"
    );
    assert!(!err.contains("could not be downloaded"), "{err}");
}

/// A file with no `Sha256` in the registry is `pinned` after its first fetch, never `pass`
/// (table, JSON, JUnit, totals), with the lock file named; `zoo fetch --record` writes the
/// learned hash into the registry file losslessly, after which the check passes.
#[test]
fn a_first_use_pin_is_pinned_not_pass_until_recorded_into_the_registry() {
    let server = TestServer::start();
    server.serve("/efficientnet-tiny.tar.gz", tiny_tarball());
    let dir = tempfile::tempdir().unwrap();
    let sha_line = format!("      Sha256: {TINY_SHA256}\n");
    // A leading comment, as the real registry files have: --record keeps it.
    let (reg, with_hash) = tiny_registry(dir.path(), &server.url(""), |t| {
        format!("# The tiny fixture.\n\n{t}")
    });
    std::fs::write(reg.join("tiny.yml"), with_hash.replace(&sha_line, "")).unwrap();
    let cache = dir.path().join("cache");
    let lock = reg.join("weights.lock");

    let junit = dir.path().join("junit.xml");
    let junit_arg = junit.display().to_string();
    let (code, out, err) = registry_zoo(
        &reg,
        &cache,
        &["validate", "tiny", "--fetch", "--junit", &junit_arg],
    );
    assert_eq!(code, 0, "pinned is not a failure: {out}{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("pinned efficientnet_tiny checksum:"))
        .unwrap_or_else(|| panic!("no pinned checksum in: {out}"));
    assert!(
        line.contains("the registry has no sha256 for it")
            && line.contains(&lock.display().to_string())
            && line.contains("zoo fetch efficientnet_tiny --role tf-checkpoint --record"),
        "{line}"
    );
    assert!(out.contains(" 1 pinned,"), "{out}");
    let x = std::fs::read_to_string(&junit).unwrap();
    assert!(x.contains("<skipped message=\"pinned: "), "{x}");
    let (_, json, _) = registry_zoo(&reg, &cache, &["validate", "tiny", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let checksum = json["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["check"] == "checksum")
        .unwrap();
    assert_eq!(checksum["status"], "pinned", "{checksum}");

    // --record needs a registry on disk: outside a checkout, the embedded one is refused.
    let outside = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_zoo"))
        .args(["fetch", "b0_ns", "--record", "--offline"])
        .current_dir(outside.path())
        .env_remove("ZOO_OFFLINE")
        .env_remove("ZOO_REGISTRY")
        .env("ZOO_CACHE", &cache)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--record") && err.contains("--registry DIR"),
        "{err}"
    );

    let (code, out, err) = registry_zoo(&reg, &cache, &["fetch", "tiny", "--record"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains(&format!("recorded Sha256: {TINY_SHA256}")),
        "{err}"
    );
    // Lossless: the file is the original fixture again, byte for byte (comments included).
    assert_eq!(
        std::fs::read_to_string(reg.join("tiny.yml")).unwrap(),
        with_hash
    );
    let (code, out, err) = registry_zoo(&reg, &cache, &["validate", "tiny", "-v"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("pass efficientnet_tiny checksum: verified: efficientnet-tiny.tar.gz")
            && out.contains("(the registry's sha256)"),
        "{out}"
    );
    // Recording again changes nothing.
    let (code, _, err) = registry_zoo(&reg, &cache, &["fetch", "tiny", "--record"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("recorded"), "{err}");
    assert_eq!(server.request_count(), 1);
}
