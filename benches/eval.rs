//! Preprocessing throughput (decode + resize + crop + normalise, b0's 224 / 0.875): zoo's
//! pipeline on `W` threads against Pillow + timm's `create_transform` in `W` worker processes
//! (`benches/python/eval_preprocess.py`, like a `DataLoader` with `W` workers), on the same
//! generated 500×375 JPEGs. Target: zoo ≥ 2×.
//!
//! End to end (with `--features torch`): `zoo eval b0_ns` with a seeded random full-width
//! tf_efficientnet_b0 on CPU against timm's evaluation loop (`DataLoader` with the same workers),
//! on an ImageFolder of generated JPEGs (`benches/python/eval_end_to_end.py`), with the top-1/
//! top-5 counts of both (they must be equal), how many images' top-5 agree (all must), each
//! side's peak RSS and CPU user/sys seconds. Target: zoo ≥ 1.2×.
//! `ZOO_BENCH_E2E_IMAGES` (default 320) sets the image count; `0` skips it.
//!
//! Measured on 2 cores (AVX2), `OMP_WAIT_POLICY=PASSIVE`, idle machine.
//! - Preprocessing alone, seven runs: zoo 1067–1242 images/s, Pillow + timm 370–477:
//!   2.24–3.05× (median 2.8×). Half of zoo's time is now libjpeg-turbo's Huffman decoding
//!   (`decode_mcu`), which both sides run; the two resize passes are the AVX2 kernels of
//!   `src/eval/resize/avx2.rs` (vertical: 8 `i32` lanes, 32 bytes a step; horizontal: two rows a
//!   vector, `vpmaddwd` on weights split into `i16` halves). With the portable kernels the same
//!   runs gave 1.32–2.11× (zoo 590–865 images/s), the two passes taking 40 % of zoo's time.
//! - End to end, two runs: zoo 53.1 / 55.5 images/s, timm 16.9 / 19.7 (3.14× / 2.82×), top-5
//!   equal for 320 of 320 images, peak RSS zoo 1042 / 869 MiB, timm 1288 / 1259 MiB, CPU seconds
//!   zoo 5.5–5.6 user + 4.7–5.3 sys, timm 9.4–9.6 + 16.2–18.0. Most of timm's time is page
//!   faults: every activation over 32 MiB is a fresh mapping. zoo was at 0.84× before its
//!   forward pass ran in place and channels-last (see `src/torch/enabled.rs`) and each worker
//!   classified its own batch (`src/eval/run.rs`).
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
    zoo_pipeline(files, workers, true)
}

/// zoo's decode (+ resize, crop, normalise when `transform`) on `workers` threads, images/s.
fn zoo_pipeline(files: &[PathBuf], workers: usize, transform: bool) -> f64 {
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
                    if transform {
                        t.apply_into(&img, &tables, &mut out).unwrap();
                    } else {
                        std::hint::black_box(&img);
                    }
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
    let decode_only = zoo_pipeline(&files, workers, false);
    println!("preprocessing, b0 224/0.875, {n} JPEGs 500x375 4:2:0, {workers} workers:");
    println!("  zoo (libjpeg-turbo + Pillow-exact resize): {zoo:.1} images/s");
    println!("  zoo decode alone (the share both sides run): {decode_only:.1} images/s");
    match pillow {
        Some(p) => println!(
            "  Pillow + timm create_transform:            {p:.1} images/s  (zoo {:.2}x)",
            zoo / p
        ),
        None => println!("  Pillow + timm: skipped"),
    }
    end_to_end(&python, &root.join("target/bench-data/eval-e2e"), workers);
}

/// `zoo eval` against timm's loop, both run by the Python script (which times zoo as a child).
fn end_to_end(python: &str, dir: &Path, workers: usize) {
    let n: usize = env_or("ZOO_BENCH_E2E_IMAGES", 320);
    if n == 0 || python.is_empty() {
        println!("end to end: skipped (ZOO_BENCH_E2E_IMAGES=0 or no ZOO_BENCH_PYTHON)");
        return;
    }
    if !cfg!(feature = "torch") {
        println!(
            "end to end: skipped (zoo is built without libtorch; run `cargo bench --features \
             torch --bench eval`)"
        );
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python/eval_end_to_end.py");
    let out = Command::new(python)
        .arg(script)
        .arg(dir)
        .args([n.to_string(), workers.to_string()])
        .arg(env!("CARGO_BIN_EXE_zoo"))
        .output();
    let out = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            println!("end to end: failed\n{}", String::from_utf8_lossy(&o.stderr));
            return;
        }
        Err(e) => {
            println!("end to end: could not run {python}: {e}");
            return;
        }
    };
    let field = |line: &str, key: &str| -> Option<String> {
        let mut it = line.split_whitespace();
        it.by_ref().find(|w| *w == key)?;
        it.next().map(str::to_owned)
    };
    let side = |name: &str| out.lines().find(|l| l.starts_with(name)).map(str::to_owned);
    let (Some(timm), Some(zoo)) = (side("timm "), side("zoo ")) else {
        println!("end to end: unexpected output\n{out}");
        return;
    };
    println!("end to end, tf_efficientnet_b0 (random weights) on CPU, {n} JPEGs, {workers} workers, batch 32:");
    println!("  side  images/s  top-1  top-5  peak RSS MiB  CPU user s  CPU sys s");
    for (label, line) in [("timm", &timm), ("zoo ", &zoo)] {
        println!(
            "  {label}  {:>8}  {:>5}  {:>5}  {:>12}  {:>10}  {:>9}",
            field(line, "images/s").unwrap_or_default(),
            field(line, "top1").unwrap_or_default(),
            field(line, "top5").unwrap_or_default(),
            field(line, "maxrss_mib").unwrap_or_default(),
            field(line, "user_s").unwrap_or_default(),
            field(line, "sys_s").unwrap_or_default()
        );
    }
    let rate = |l: &str| field(l, "images/s").and_then(|v| v.parse::<f64>().ok());
    let same_top5 = side("same_top5").unwrap_or_default();
    if let (Some(t), Some(z)) = (rate(&timm), rate(&zoo)) {
        let same = field(&timm, "top1") == field(&zoo, "top1")
            && field(&timm, "top5") == field(&zoo, "top5");
        println!(
            "  zoo {:.2}x timm; counts {}; per-image top-5 equal for {} images",
            z / t,
            if same { "equal" } else { "DIFFER" },
            same_top5.strip_prefix("same_top5 ").unwrap_or("?")
        );
    }
}
