//! Downloads stay in bounds against hostile servers and files (issue 14: M3, M8, L2, L12, L13,
//! L15, Q4, and the cut-off message of Q6), on the loopback server of
//! tests/support/http_server.rs.
mod support {
    pub mod http_server;
}

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use sha2::{Digest, Sha256};
use support::http_server::{Fault, TestServer};
use zoo::fetch::{Cache, FetchError, FetchOptions, FileSpec, ReuseDirs};

/// Deterministic test bytes.
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

/// A spec with the full hash but no size (so only `max_size` bounds the transfer).
fn unsized_spec(name: &str, url: String, body: &[u8]) -> FileSpec {
    FileSpec {
        file_name: name.to_string(),
        urls: vec![url],
        size: None,
        sha256: Some(sha256_hex(body)),
        sha256_prefix: None,
        entry: None,
        unique_name: false,
    }
}

fn opts() -> FetchOptions {
    FetchOptions {
        timeout: Duration::from_secs(5),
        retries: 1,
        backoff: Duration::from_millis(10),
        ..FetchOptions::default()
    }
}

fn cache_in(dir: &Path) -> Cache {
    Cache::open(dir.join("zoo-cache"))
        .unwrap()
        .with_reuse(ReuseDirs::none())
}

/// `.part` files left in the cache's tmp dir.
fn parts(cache: &Cache) -> Vec<String> {
    std::fs::read_dir(cache.tmp_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect()
}

/// The one failure of a single-URL fetch.
fn only_failure(err: FetchError) -> FetchError {
    match err {
        FetchError::AllSourcesFailed { mut failures, .. } if failures.len() == 1 => {
            failures.remove(0).error
        }
        other => other,
    }
}

fn zoo(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zoo"))
        .args(args)
        .env("ZOO_CACHE", cache)
        .env_remove("ZOO_OFFLINE")
        .env("TORCH_HOME", "/nonexistent/torch-home")
        .env("HF_HOME", "/nonexistent/hf-home")
        .env_remove("HF_HUB_CACHE")
        .output()
        .expect("run zoo")
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

/// M3: a body with no `Content-Length` that never ends stops at `max_size`, even with a hash
/// (which could only fail at the end), and the failed attempt leaves no `.part`.
#[test]
fn endless_body_of_unknown_size_stops_at_max_size_and_leaves_no_part() {
    let server = TestServer::start();
    server.serve_with("/x.bin", vec![], Fault::Endless);
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let spec = unsized_spec("x.bin", server.url("/x.bin"), b"x");
    let opts = FetchOptions {
        max_size: 1 << 20,
        ..opts()
    };
    let err = only_failure(cache.fetch(&spec, &opts).unwrap_err());
    match &err {
        FetchError::TooLarge {
            limit, expected, ..
        } => assert_eq!((*limit, *expected), (1 << 20, false)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(err.to_string().contains("--max-size"), "{err}");
    assert!(!err.is_verification_failure());
    assert!(parts(&cache).is_empty(), "{:?}", parts(&cache));
    assert_eq!(server.request_count(), 1, "a size refusal is not retried");
}

/// M3: a `Content-Length` beyond `max_size` is refused before the body is read.
#[test]
fn announced_length_beyond_max_size_is_refused_before_the_body() {
    let server = TestServer::start();
    let body = payload(300_000, 1);
    server.serve("/big.bin", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let spec = unsized_spec("big.bin", server.url("/big.bin"), &body);
    let opts = FetchOptions {
        max_size: 100_000,
        ..opts()
    };
    let err = only_failure(cache.fetch(&spec, &opts).unwrap_err());
    assert!(
        matches!(
            err,
            FetchError::TooLarge {
                size: Some(300_000),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("announced 300000 bytes"), "{err}");
    assert!(parts(&cache).is_empty());
    // Within the bound the same file downloads.
    let ok = cache
        .fetch(
            &spec,
            &FetchOptions {
                max_size: 300_000,
                ..opts
            },
        )
        .unwrap();
    assert_eq!(ok.size, 300_000);
}

/// M3 and Q6 (F02c): an endless body is cut at the expected size; the message says the file
/// is larger than its expected size (not "actual 609463"), it is a verification failure, and
/// no `.part` remains.
#[test]
fn endless_body_is_cut_at_the_expected_size_with_a_clear_message() {
    let server = TestServer::start();
    server.serve_with("/e.bin", vec![], Fault::Endless);
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let mut spec = unsized_spec("e.bin", server.url("/e.bin"), b"x");
    spec.size = Some(609_462);
    let err = only_failure(cache.fetch(&spec, &opts()).unwrap_err());
    assert!(err.is_verification_failure(), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("e.bin is larger than its expected size of 609462 bytes"),
        "{msg}"
    );
    assert!(!msg.contains("609463"), "{msg}");
    assert!(parts(&cache).is_empty());
}

/// M3: through the CLI, `--max-size` bounds an ad-hoc fetch with no `--size`.
#[test]
fn cli_max_size_bounds_an_unsized_download() {
    let server = TestServer::start();
    server.serve_with("/z.bin", vec![], Fault::Endless);
    let dir = tempfile::tempdir().unwrap();
    let url = server.url("/z.bin");
    let sha = sha256_hex(b"x");
    let out = zoo(
        &["fetch", "--url", &url, "--sha256", &sha, "--max-size", "2M"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("2097152 bytes"), "{err}");
    let cache = Cache::open(dir.path()).unwrap();
    assert!(parts(&cache).is_empty());
}

/// M3/L12: `file://` URLs to devices and FIFOs are refused before they are opened (reading
/// `/dev/zero` never ends; opening a FIFO blocks), and nothing is left behind.
#[cfg(unix)]
#[test]
fn file_urls_to_devices_and_fifos_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let fifo = dir.path().join("pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    for (url, kind) in [
        ("file:///dev/zero".to_string(), "character device"),
        (format!("file://{}", fifo.display()), "FIFO"),
    ] {
        let spec = unsized_spec("z.bin", url.clone(), b"x");
        let err = only_failure(cache.fetch(&spec, &opts()).unwrap_err());
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("not a regular file (a {kind})")),
            "{url}: {msg}"
        );
        assert!(parts(&cache).is_empty());
    }
    // `zoo hash` and `zoo fingerprint` refuse a FIFO too, instead of blocking on it.
    let path = fifo.display().to_string();
    for args in [
        vec!["hash", path.as_str()],
        vec!["fingerprint", path.as_str()],
    ] {
        let out = zoo(&args, dir.path());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains("FIFO"), "{}", text(&out.stderr));
    }
}

/// M3: a local file larger than `max_size` (and of unknown expected size) is not copied.
#[test]
fn file_url_larger_than_max_size_is_not_copied() {
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let src = dir.path().join("src.bin");
    let body = payload(5000, 3);
    std::fs::write(&src, &body).unwrap();
    let spec = unsized_spec("src.bin", format!("file://{}", src.display()), &body);
    let small = FetchOptions {
        max_size: 4999,
        ..opts()
    };
    let err = only_failure(cache.fetch(&spec, &small).unwrap_err());
    assert!(matches!(err, FetchError::TooLarge { .. }), "{err:?}");
    assert!(parts(&cache).is_empty());
    let got = cache.fetch(&spec, &opts()).unwrap();
    assert_eq!(got.size, 5000);
}

/// Writes `len` bytes of `byte` as the `.part` of `spec`.
fn seed_part(cache: &Cache, spec: &FileSpec, bytes: &[u8]) -> PathBuf {
    let part = cache.part_path(spec, &opts()).unwrap();
    std::fs::write(&part, bytes).unwrap();
    part
}

/// M8: resuming, a `206` whose `Content-Length` (2^64 − 3) overflows when added to the bytes
/// already on disk is a protocol error, not an arithmetic panic.
#[test]
fn resume_with_an_overflowing_content_length_is_a_protocol_error() {
    let server = TestServer::start();
    let head = "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 4-9/10\r\n\
                Content-Length: 18446744073709551613\r\nConnection: close\r\n\r\n";
    server.serve_with(
        "/f.bin",
        b"x".to_vec(),
        Fault::Raw {
            head: head.to_string(),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let spec = unsized_spec("f.bin", server.url("/f.bin"), b"abc");
    seed_part(&cache, &spec, b"abcd");
    let err = only_failure(cache.fetch(&spec, &opts()).unwrap_err());
    match &err {
        FetchError::Protocol { reason, .. } => {
            assert!(reason.contains("18446744073709551613"), "{reason}");
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
    // The CLI says the same and exits 2 (before: exit 101, "attempt to add with overflow").
    let sha = sha256_hex(b"abc");
    let cli_cache = tempfile::tempdir().unwrap();
    let c = Cache::open(cli_cache.path()).unwrap();
    let part = c
        .part_path(
            &FileSpec {
                urls: vec![],
                ..spec.clone()
            },
            &FetchOptions::default(),
        )
        .unwrap();
    std::fs::write(&part, b"abcd").unwrap();
    let out = zoo(
        &[
            "fetch",
            "--url",
            &server.url("/f.bin"),
            "--sha256",
            &sha,
            "--retries",
            "0",
        ],
        cli_cache.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );
}

/// M8: a `206` whose `Content-Range` and `Content-Length` disagree is refused; the message
/// quotes the header as sent (not Rust's `Some("…")`).
#[test]
fn resume_with_inconsistent_range_and_length_is_a_protocol_error() {
    let server = TestServer::start();
    let head = "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 4-9/10\r\n\
                Content-Length: 3\r\nConnection: close\r\n\r\n";
    server.serve_with(
        "/g.bin",
        b"xyz".to_vec(),
        Fault::Raw {
            head: head.to_string(),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let spec = unsized_spec("g.bin", server.url("/g.bin"), b"abc");
    seed_part(&cache, &spec, b"abcd");
    let err = only_failure(cache.fetch(&spec, &opts()).unwrap_err());
    assert!(
        matches!(&err, FetchError::Protocol { reason, .. } if reason
            == "Content-Range: bytes 4-9/10 holds 6 bytes, but Content-Length says 3"),
        "{err:?}"
    );
}

/// L12: `deadline` ends a download that trickles in forever below the stall timeout; the
/// partial download is kept for a later resume.
#[test]
fn deadline_ends_a_trickling_download() {
    let server = TestServer::start();
    let body = payload(2000, 4);
    server.serve_with(
        "/slow.bin",
        body.clone(),
        Fault::Throttle {
            chunk: 10,
            delay: Duration::from_millis(50),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let mut spec = unsized_spec("slow.bin", server.url("/slow.bin"), &body);
    spec.size = Some(body.len() as u64);
    let opts = FetchOptions {
        deadline: Some(Duration::from_millis(400)),
        ..opts()
    };
    let err = only_failure(cache.fetch(&spec, &opts).unwrap_err());
    assert!(matches!(err, FetchError::Deadline { .. }), "{err:?}");
    assert!(err.to_string().contains("0.4s deadline"), "{err}");
    assert_eq!(server.request_count(), 1, "a deadline is not retried");
    let part = cache.part_path(&spec, &opts).unwrap();
    let kept = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    assert!(kept > 0 && kept < 2000, "{kept}");
    // Without a deadline it resumes and completes.
    server.set_fault("/slow.bin", Fault::None);
    let got = cache.fetch(&spec, &self::opts()).unwrap();
    assert_eq!(got.sha256, sha256_hex(&body));
    assert!(server.requests().last().unwrap().range.is_some());
}

/// L12: `--deadline` on the command line, and `--timeout` documented as a stall timeout.
#[test]
fn cli_deadline_option_is_applied_and_documented() {
    let dir = tempfile::tempdir().unwrap();
    let out = zoo(&["fetch", "--help"], dir.path());
    let help = text(&out.stdout);
    assert!(help.contains("--deadline"), "{help}");
    assert!(help.contains("Stall timeout"), "{help}");
    let out = zoo(
        &[
            "fetch",
            "--url",
            "http://127.0.0.1:9/x",
            "--deadline",
            "1e300",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--deadline"),
        "{}",
        text(&out.stderr)
    );
}

/// L13: a write that fails (here: `/dev/full`, "no space left on device") removes the `.part`
/// instead of leaving it to keep the disk full.
#[cfg(target_os = "linux")]
#[test]
fn disk_full_removes_the_part() {
    let server = TestServer::start();
    let body = payload(3 << 20, 5);
    server.serve("/full.bin", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let spec = unsized_spec("full.bin", server.url("/full.bin"), &body);
    let part = cache.part_path(&spec, &opts()).unwrap();
    std::os::unix::fs::symlink("/dev/full", &part).unwrap();
    let err = only_failure(cache.fetch(&spec, &opts()).unwrap_err());
    match &err {
        FetchError::Io { error, .. } => {
            assert_eq!(error.kind(), std::io::ErrorKind::StorageFull, "{err}")
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    assert!(std::fs::symlink_metadata(&part).is_err(), "the part stays");
}

/// L13: a `416` for a `.part` longer than the file restarts from zero in the same fetch
/// (before: "restarting from zero", then a failure).
#[test]
fn range_not_satisfiable_restarts_from_zero() {
    let server = TestServer::start();
    let body = payload(1000, 6);
    server.serve("/r.bin", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let spec = unsized_spec("r.bin", server.url("/r.bin"), &body);
    seed_part(&cache, &spec, &payload(2000, 7));
    let got = cache.fetch(&spec, &opts()).unwrap();
    assert_eq!(got.sha256, sha256_hex(&body));
    let log: Vec<(Option<String>, u16)> = server
        .requests()
        .into_iter()
        .map(|r| (r.range, r.status))
        .collect();
    assert_eq!(log, [(Some("bytes=2000-".into()), 416), (None, 200)]);
}

/// L13: a `.part` with corrupt bytes fails the hash after resuming; zoo retries once from zero
/// and succeeds, in the same fetch.
#[test]
fn corrupt_part_is_retried_once_from_zero() {
    let server = TestServer::start();
    let body = payload(300_000, 8);
    server.serve("/c.bin", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let mut spec = unsized_spec("c.bin", server.url("/c.bin"), &body);
    spec.size = Some(body.len() as u64);
    let corrupt: Vec<u8> = body[..100_000].iter().map(|b| b ^ 0x55).collect();
    seed_part(&cache, &spec, &corrupt);
    let got = cache.fetch(&spec, &opts()).unwrap();
    assert_eq!(got.sha256, sha256_hex(&body));
    let ranges: Vec<Option<String>> = server.requests().into_iter().map(|r| r.range).collect();
    assert_eq!(ranges, [Some("bytes=100000-".into()), None]);

    // Bytes that are wrong from zero too are retried only once, then reported.
    let other = payload(300_000, 12);
    server.serve_with("/w.bin", other.clone(), Fault::WrongBytes);
    let mut spec = unsized_spec("w.bin", server.url("/w.bin"), &other);
    spec.size = Some(other.len() as u64);
    seed_part(&cache, &spec, &other[..1000]);
    let err = only_failure(cache.fetch(&spec, &opts()).unwrap_err());
    assert!(matches!(err, FetchError::HashMismatch { .. }), "{err:?}");
    let w = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/w.bin")
        .count();
    assert_eq!(w, 2);
    assert!(parts(&cache).is_empty());
}

/// L15: credentials in a URL never show in an error, the JSON result or the text output.
#[test]
fn url_credentials_are_redacted_everywhere() {
    let server = TestServer::start();
    let body = payload(1000, 9);
    server.serve("/ok.bin", body.clone());
    let secret = "S3cretPassw0rd";
    let with_creds = |path: &str| {
        server
            .url(path)
            .replace("://", &format!("://alice:{secret}@"))
    };
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    // 404, connection refused (reqwest puts the URL in its message), redirect with creds.
    server.serve_with(
        "/redir.bin",
        vec![],
        Fault::Redirect {
            location: format!("file://bob:{secret}@/etc/passwd"),
        },
    );
    let urls = [
        with_creds("/missing.bin"),
        format!("http://alice:{secret}@127.0.0.1:9/refused.bin"),
        with_creds("/redir.bin"),
    ];
    for url in &urls {
        let spec = unsized_spec("m.bin", url.clone(), &body);
        let err = cache.fetch(&spec, &opts()).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(shown.contains("***@"), "{shown}");
    }
    // A successful fetch: JSON and text output carry the URL without the password.
    for json in [true, false] {
        let cli_cache = tempfile::tempdir().unwrap();
        let url = with_creds("/ok.bin");
        let sha = sha256_hex(&body);
        let mut args = vec!["fetch", "--url", url.as_str(), "--sha256", sha.as_str()];
        if json {
            args.push("--json");
        }
        let out = zoo(&args, cli_cache.path());
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!all.contains(secret), "{all}");
        assert!(all.contains("http://***@127.0.0.1"), "{all}");
    }
    // And a failing one through the CLI.
    let out = zoo(
        &[
            "fetch",
            "--url",
            &with_creds("/missing.bin"),
            "--retries",
            "0",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(!text(&out.stderr).contains(secret), "{}", text(&out.stderr));
}

/// Q4: a redirect zoo does not follow says where it pointed.
#[test]
fn refused_redirect_names_its_target() {
    let server = TestServer::start();
    server.serve_with(
        "/r.bin",
        vec![],
        Fault::Redirect {
            location: "file:///etc/passwd".into(),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let spec = unsized_spec("r.bin", server.url("/r.bin"), b"x");
    let err = only_failure(cache.fetch(&spec, &opts()).unwrap_err());
    let msg = err.to_string();
    assert!(
        msg.contains("HTTP 302 redirect to file:///etc/passwd, not followed"),
        "{msg}"
    );
}

/// L2: a sha256 prefix shorter than 8 hex digits is refused (library and CLI); 8 are enough.
#[test]
fn short_sha256_prefixes_are_refused() {
    let server = TestServer::start();
    let body = payload(1000, 10);
    server.serve("/p.bin", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let full = sha256_hex(&body);
    let spec = |prefix: &str| FileSpec {
        file_name: "p.bin".into(),
        urls: vec![server.url("/p.bin")],
        size: None,
        sha256: None,
        sha256_prefix: Some(prefix.into()),
        entry: None,
        unique_name: false,
    };
    for short in ["5", &full[..7]] {
        let err = cache.fetch(&spec(short), &opts()).unwrap_err();
        assert!(
            matches!(&err, FetchError::InvalidSpec { reason, .. } if reason.contains("8..=64")),
            "{err:?}"
        );
    }
    assert_eq!(server.request_count(), 0);
    cache.fetch(&spec(&full[..8]), &opts()).unwrap();
    let out = zoo(
        &[
            "fetch",
            "--url",
            &server.url("/p.bin"),
            "--sha256-prefix",
            "5",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("8..=64"),
        "{}",
        text(&out.stderr)
    );
}

/// L2: a fetch that nothing verifies (no hash, nothing pinned) says so.
#[test]
fn unverified_fetch_warns() {
    let server = TestServer::start();
    server.serve("/u.bin", payload(100, 11));
    let dir = tempfile::tempdir().unwrap();
    let out = zoo(&["fetch", "--url", &server.url("/u.bin")], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("warning: u.bin: no sha256 to verify against"),
        "{}",
        text(&out.stderr)
    );
    let sha = sha256_hex(&payload(100, 11));
    let out = zoo(
        &["fetch", "--url", &server.url("/u.bin"), "--sha256", &sha],
        dir.path(),
    );
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
}

/// L15: a card whose URL carries credentials is refused by the schema, and the finding does not
/// repeat the password.
#[test]
fn card_urls_with_credentials_are_refused_without_echoing_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let yaml = std::fs::read_to_string(root.join("tests/fixtures/registry-tiny/tiny.yml")).unwrap();
    let url = "http://127.0.0.1:9/efficientnet-tiny.tar.gz";
    assert!(yaml.contains(url));
    let card = dir.path().join("tiny.yml");
    std::fs::write(
        &card,
        yaml.replace(
            url,
            "http://alice:S3cretPassw0rd@127.0.0.1:9/efficientnet-tiny.tar.gz",
        ),
    )
    .unwrap();
    let out = zoo(&["check-cards", &card.display().to_string()], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!all.contains("S3cretPassw0rd"), "{all}");
    assert!(
        all.contains(
            "URL must not carry credentials (`user:password@`), found `http://***@127.0.0.1:9/"
        ),
        "{all}"
    );
}
