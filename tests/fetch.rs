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
    sha256_file, Cache, FetchError, FetchOptions, FileSpec, Origin, Proof, ReuseDirs, WeightsLock,
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

#[test]
fn mirror_prefix_is_tried_first() {
    let server = TestServer::start();
    let body = payload(10_000, 6);
    server.serve("/mirror/m.bin", body.clone());
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
            url: server.url("/mirror/m.bin")
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
