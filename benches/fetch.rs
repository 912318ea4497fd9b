//! Fetch throughput: sha256 of a 1 GiB file vs `sha256sum`, and a verified download over
//! loopback from the test HTTP server. Prints a table.
//!
//! Run: `cargo bench --bench fetch` (size: `ZOO_BENCH_MB`, default 1024).
#[path = "../tests/support/http_server.rs"]
mod http_server;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use http_server::TestServer;
use zoo::fetch::{sha256_file, Cache, FetchOptions, FileSpec, ReuseDirs};

fn main() {
    let mb: usize = std::env::var("ZOO_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let len = mb << 20;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let path = dir.path().join("bench.bin");
    let data = pseudo_random(len);
    {
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(&data).expect("write");
        f.sync_all().expect("sync");
    }

    // Hashing: best of 3, page cache warm for both.
    let mut ours = Duration::MAX;
    let mut hex = String::new();
    for _ in 0..3 {
        let t = Instant::now();
        let (h, size) = sha256_file(&path).expect("hash");
        ours = ours.min(t.elapsed());
        assert_eq!(size, len as u64);
        hex = h;
    }
    let mut theirs = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let out = Command::new("sha256sum")
            .arg(&path)
            .output()
            .expect("run sha256sum");
        theirs = theirs.min(t.elapsed());
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.split_whitespace().next(),
            Some(hex.as_str()),
            "sha256sum disagrees"
        );
    }

    // Download over loopback into a fresh cache, verified against the full hash: once into the
    // same disk as the file, once into tmpfs (/dev/shm) when present, to separate network+hash
    // cost from the disk's write speed.
    let server = TestServer::start();
    server.serve("/bench.bin", data);
    let mut targets = vec![("disk", dir.path().to_path_buf())];
    let shm = Path::new("/dev/shm");
    let shm_dir = shm
        .is_dir()
        .then(|| tempfile::tempdir_in(shm).expect("tempdir in /dev/shm"));
    if let Some(d) = &shm_dir {
        targets.push(("tmpfs", d.path().to_path_buf()));
    }
    let mut downloads = Vec::new();
    for (label, base) in &targets {
        let mut best = Duration::MAX;
        for i in 0..2 {
            let cache = Cache::open(base.join(format!("cache-{i}")))
                .expect("cache")
                .with_reuse(ReuseDirs::none());
            let spec = FileSpec {
                file_name: "bench.bin".into(),
                urls: vec![server.url("/bench.bin")],
                size: Some(len as u64),
                sha256: Some(hex.clone()),
                ..FileSpec::default()
            };
            let t = Instant::now();
            let got = cache.fetch(&spec, &FetchOptions::default()).expect("fetch");
            best = best.min(t.elapsed());
            assert_eq!(got.sha256, hex);
            std::fs::remove_dir_all(cache.dir()).ok();
        }
        downloads.push((*label, best));
    }

    // Reference: curl writing the same URL to the same places (no hashing), when installed.
    let mut curl = Vec::new();
    for (label, base) in &targets {
        let out_path = base.join("curl.bin");
        let mut best = None::<Duration>;
        for _ in 0..2 {
            let t = Instant::now();
            let status = Command::new("curl")
                .args(["-s", "-f", "-o"])
                .arg(&out_path)
                .arg(server.url("/bench.bin"))
                .status();
            let elapsed = t.elapsed();
            if !matches!(status, Ok(s) if s.success()) {
                best = None;
                break;
            }
            best = Some(best.map_or(elapsed, |b| b.min(elapsed)));
            std::fs::remove_file(&out_path).ok();
        }
        if let Some(b) = best {
            curl.push((*label, b));
        }
    }

    let rate = |d: Duration| len as f64 / 1e6 / d.as_secs_f64();
    let sha_cpu = std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| c.contains(" sha_ni"))
        .unwrap_or(false);
    println!("fetch benchmark: {mb} MiB, CPU sha_ni: {sha_cpu}");
    println!("| measurement                       | time (s) | MB/s    | target        |");
    println!("|-----------------------------------|----------|---------|---------------|");
    println!(
        "| sha256_file (zoo, sha2 crate)     | {:8.3} | {:7.0} | ≥ 90 % sha256sum |",
        ours.as_secs_f64(),
        rate(ours)
    );
    println!(
        "| sha256sum (coreutils, subprocess) | {:8.3} | {:7.0} |               |",
        theirs.as_secs_f64(),
        rate(theirs)
    );
    for (label, d) in &downloads {
        println!(
            "| download loopback → {label:<6} cache  | {:8.3} | {:7.0} | ≥ 500 MB/s    |",
            d.as_secs_f64(),
            rate(*d)
        );
    }
    for (label, d) in &curl {
        println!(
            "| curl loopback → {label:<6} (no hash) | {:8.3} | {:7.0} | reference     |",
            d.as_secs_f64(),
            rate(*d)
        );
    }
    println!(
        "zoo hash throughput = {:.1} % of sha256sum\n",
        100.0 * theirs.as_secs_f64() / ours.as_secs_f64()
    );
}

/// Fast deterministic filler (xorshift64, 8 bytes per step).
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    while out.len() < len {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let take = (len - out.len()).min(8);
        out.extend_from_slice(&s.to_le_bytes()[..take]);
    }
    out
}
