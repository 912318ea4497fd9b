//! Preprocessing throughput (decode + resize + crop + normalise, b0's 224 / 0.875): zoo's
//! pipeline on `W` threads against Pillow + timm's `create_transform` in `W` worker processes
//! (`benches/python/eval_preprocess.py`, like a `DataLoader` with `W` workers), on the same
//! generated 500×375 JPEGs. Target: zoo ≥ 2×.
//!
//! Run: `cargo bench --bench eval`. Environment: `ZOO_BENCH_PYTHON` (default `.venv/bin/python`;
//! empty skips the Python side), `ZOO_BENCH_IMAGES` (default 400), `ZOO_BENCH_WORKERS` (default:
//! the cores), `ZOO_BENCH_DIR` (default `target/bench-data/eval-jpegs`).
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use zoo::eval::{decode, EvalTransform};

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn python_side(python: &str, dir: &Path, n: usize, workers: usize) -> Option<f64> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python/eval_preprocess.py");
    let out = Command::new(python)
        .arg(script)
        .arg(dir)
        .args([n.to_string(), workers.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "python side failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        l.strip_prefix("images/s ")
            .and_then(|v| v.trim().parse().ok())
    })
}

fn zoo_side(files: &[PathBuf], workers: usize) -> f64 {
    let t = EvalTransform::new(224, 0.875, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]).unwrap();
    let tables = t.tables();
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut out = vec![0f32; 3 * 224 * 224];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(f) = files.get(i) else { return };
                    let bytes = std::fs::read(f).unwrap();
                    let img = decode(&bytes, &f.display().to_string()).unwrap();
                    t.apply_into(&img, &tables, &mut out).unwrap();
                    std::hint::black_box(&out);
                }
            });
        }
    });
    files.len() as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let n: usize = env_or("ZOO_BENCH_IMAGES", 400);
    let workers: usize = env_or(
        "ZOO_BENCH_WORKERS",
        std::thread::available_parallelism().map_or(1, usize::from),
    );
    let dir = std::env::var_os("ZOO_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/bench-data/eval-jpegs"));
    let python = std::env::var("ZOO_BENCH_PYTHON")
        .unwrap_or_else(|_| root.join(".venv/bin/python").display().to_string());
    // The Python side also writes the images (once).
    let pillow = if python.is_empty() {
        None
    } else {
        python_side(&python, &dir, n, workers)
    };
    let files: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("{i:05}.jpg"))).collect();
    if files.iter().any(|f| !f.exists()) {
        eprintln!(
            "no images in {} (they are written by the Python side; set ZOO_BENCH_PYTHON)",
            dir.display()
        );
        return;
    }
    zoo_side(&files[..n.min(32)], workers); // warm the page cache
    let zoo = zoo_side(&files, workers);
    println!("preprocessing, b0 224/0.875, {n} JPEGs 500x375 4:2:0, {workers} workers:");
    println!("  zoo (libjpeg-turbo + Pillow-exact resize): {zoo:.1} images/s");
    match pillow {
        Some(p) => println!(
            "  Pillow + timm create_transform:            {p:.1} images/s  (zoo {:.2}x)",
            zoo / p
        ),
        None => println!("  Pillow + timm: skipped"),
    }
}
