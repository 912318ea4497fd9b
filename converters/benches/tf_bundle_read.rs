//! Throughput and memory of reading a ≥1 GB tensor bundle, every tensor crc32c-checked.
//!
//! Generates the bundle with `BundleWriter` in `$ZOO_BENCH_DIR` (default
//! `<tmp>/zoo-bench-tf-bundle`, reused when present), then re-runs itself in a fresh process
//! for the reading phase so that the peak RSS (VmHWM) measures reading only. The first read
//! pass warms the page cache; the timed passes follow.
//!
//! Targets: ≥ 1 GB/s, peak RSS < 2 × largest tensor + 64 MB.
//!
//! Run: `cargo bench -p zoo-converters --bench tf_bundle_read`.
use std::path::{Path, PathBuf};
use std::time::Instant;

use zoo_converters::tf_bundle::{Bundle, BundleWriter};
use zoo_converters::{DType, Tensor};

const MB: u64 = 1 << 20;
/// Tensor sizes in bytes, cycled: a mix like a real checkpoint, largest 64 MiB.
const SIZES: [u64; 6] = [64 * MB, 16 * MB, 4 * MB, MB, 64 * 1024, 1024];
const TARGET_BYTES: u64 = 1100 * MB;
const PASSES: usize = 3;

fn bench_dir() -> PathBuf {
    std::env::var_os("ZOO_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("zoo-bench-tf-bundle"))
}

fn filled(bytes: u64, seed: u64) -> Tensor {
    let n = (bytes / 4) as usize;
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut data = Vec::with_capacity(n * 4);
    for _ in 0..n / 2 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.resize(n * 4, 0x3c);
    Tensor::new("bench", DType::F32, vec![n], data).expect("sizes are consistent")
}

/// Writes the bundle unless a complete one (≥ TARGET_BYTES) is already there.
fn ensure_bundle(prefix: &Path) -> u64 {
    if let Ok(b) = Bundle::open(prefix) {
        let total: u64 = b.entries().iter().map(|e| e.size).sum();
        if total >= TARGET_BYTES {
            return 0;
        }
    }
    std::fs::create_dir_all(prefix.parent().expect("prefix has a dir")).expect("create bench dir");
    let t0 = Instant::now();
    let mut w = BundleWriter::create(prefix)
        .expect("writer")
        .with_max_shard_bytes(512 * MB);
    let mut total = 0u64;
    let mut i = 0u64;
    while total < TARGET_BYTES {
        let size = SIZES[(i as usize) % SIZES.len()];
        w.add(&format!("model/layer_{i:04}/kernel"), &filled(size, i))
            .expect("add");
        total += size;
        i += 1;
    }
    w.finish().expect("finish");
    eprintln!(
        "generated {:.2} GB in {i} tensors in {:.1} s",
        total as f64 / 1e9,
        t0.elapsed().as_secs_f64()
    );
    total
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) this process has used so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<u64>() as f64 / 100.0 // USER_HZ is 100 on Linux
}

/// Reads every tensor; `recycle` reuses the previous tensor's allocation.
fn read_all(bundle: &Bundle, recycle: bool) -> (u64, u32) {
    let mut bytes = 0u64;
    let mut acc = 0u32;
    let mut spare = Vec::new();
    for e in bundle.entries() {
        let t = if recycle {
            bundle.read_entry_into(e, std::mem::take(&mut spare))
        } else {
            bundle.read_entry(e)
        }
        .expect("read");
        bytes += t.data().len() as u64;
        acc ^= u32::from(t.data().first().copied().unwrap_or(0));
        if recycle {
            spare = t.into_data();
        }
    }
    (bytes, acc)
}

fn read_phase(prefix: &Path) {
    let rss_start = vm_hwm_kb();
    let bundle = Bundle::open(prefix).expect("open");
    let largest = bundle.entries().iter().map(|e| e.size).max().unwrap_or(0);
    let total: u64 = bundle.entries().iter().map(|e| e.size).sum();
    let (warm, _) = read_all(&bundle, false); // warms the page cache
    assert_eq!(warm, total);
    println!(
        "tf_bundle_read: {:.3} GB, {} tensors, {} shards, largest tensor {:.1} MB",
        total as f64 / 1e9,
        bundle.entries().len(),
        bundle.num_shards(),
        largest as f64 / 1e6
    );
    println!(
        "load average at start: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!("| mode | pass | wall s | GB/s (wall) | CPU s | GB per CPU-second |");
    println!("|------|-----:|-------:|------------:|------:|------------------:|");
    // Baseline: what the machine gives for plain page-cache reads right now (no checks, one
    // reused 64 MiB buffer, like `dd bs=64M`).
    {
        use std::os::unix::fs::FileExt;
        let c0 = cpu_seconds();
        let t0 = Instant::now();
        let mut buf = vec![0u8; 64 << 20];
        let mut bytes = 0u64;
        for i in 0..bundle.num_shards() {
            let path = zoo_converters::tf_bundle::shard_path(prefix, i, bundle.num_shards());
            let f = std::fs::File::open(&path).expect("open shard");
            let len = f.metadata().expect("stat").len();
            let mut off = 0u64;
            while off < len {
                let n = (len - off).min(buf.len() as u64) as usize;
                f.read_exact_at(&mut buf[..n], off).expect("read");
                off += n as u64;
            }
            bytes += len;
        }
        let s = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - c0;
        println!(
            "| baseline: raw pread, no checks | 1 | {s:.3} | {:.2} | {cpu:.2} | {:.2} |",
            bytes as f64 / 1e9 / s,
            bytes as f64 / 1e9 / cpu.max(0.01)
        );
    }
    let mut best = 0f64;
    for (mode, recycle) in [
        ("read (fresh Vec)", false),
        ("read_entry_into (recycled)", true),
    ] {
        for pass in 1..=PASSES {
            let c0 = cpu_seconds();
            let t0 = Instant::now();
            let (bytes, acc) = read_all(&bundle, recycle);
            let s = t0.elapsed().as_secs_f64();
            let cpu = cpu_seconds() - c0;
            std::hint::black_box(acc);
            let gbs = bytes as f64 / 1e9 / s;
            if !recycle {
                best = best.max(gbs);
            }
            println!(
                "| {mode} | {pass} | {s:.3} | {gbs:.2} | {cpu:.2} | {:.2} |",
                bytes as f64 / 1e9 / cpu.max(0.01)
            );
        }
    }
    let hwm = vm_hwm_kb() * 1024;
    let budget = 2 * largest + 64 * MB;
    println!(
        "peak RSS (VmHWM) {:.1} MB (process start {:.1} MB); budget 2 x largest + 64 MB = {:.1} MB: {}",
        hwm as f64 / 1e6,
        rss_start as f64 * 1024.0 / 1e6,
        budget as f64 / 1e6,
        if hwm < budget { "ok" } else { "OVER" }
    );
    println!(
        "best wall-clock `read` {best:.2} GB/s vs target 1 GB/s: {}",
        if best >= 1.0 { "ok" } else { "BELOW" }
    );
}

fn main() {
    let prefix = bench_dir().join("model.ckpt");
    if std::env::var_os("ZOO_BENCH_READ_PHASE").is_some() {
        read_phase(&prefix);
        return;
    }
    ensure_bundle(&prefix);
    // A fresh process, so VmHWM covers reading only (not generation).
    let exe = std::env::current_exe().expect("current exe");
    let status = std::process::Command::new(exe)
        .env("ZOO_BENCH_READ_PHASE", "1")
        .status()
        .expect("spawn read phase");
    assert!(status.success(), "read phase failed: {status}");
}
