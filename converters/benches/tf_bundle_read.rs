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

fn read_all(bundle: &Bundle) -> (u64, u32) {
    let mut bytes = 0u64;
    let mut acc = 0u32;
    for e in bundle.entries() {
        let t = bundle.read_entry(e).expect("read");
        bytes += t.data().len() as u64;
        acc ^= u32::from(t.data().first().copied().unwrap_or(0));
    }
    (bytes, acc)
}

fn read_phase(prefix: &Path) {
    let rss_start = vm_hwm_kb();
    let bundle = Bundle::open(prefix).expect("open");
    let largest = bundle.entries().iter().map(|e| e.size).max().unwrap_or(0);
    let total: u64 = bundle.entries().iter().map(|e| e.size).sum();
    let (warm, _) = read_all(&bundle); // warms the page cache
    assert_eq!(warm, total);
    println!(
        "tf_bundle_read: {:.3} GB, {} tensors, {} shards, largest tensor {:.1} MB",
        total as f64 / 1e9,
        bundle.entries().len(),
        bundle.num_shards(),
        largest as f64 / 1e6
    );
    println!("| pass | seconds | GB/s |");
    println!("|-----:|--------:|-----:|");
    let mut best = 0f64;
    for pass in 1..=PASSES {
        let t0 = Instant::now();
        let (bytes, acc) = read_all(&bundle);
        let s = t0.elapsed().as_secs_f64();
        std::hint::black_box(acc);
        let gbs = bytes as f64 / 1e9 / s;
        best = best.max(gbs);
        println!("| {pass} | {s:.3} | {gbs:.2} |");
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
        "best {best:.2} GB/s vs target 1 GB/s: {}",
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
