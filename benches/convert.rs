//! TF → timm conversion at the size of EfficientNet-L2's EMA weights (480M params, 1.9 GB f32):
//! zoo's streaming converter against the usual Python path (`tf.train.load_checkpoint` + numpy
//! transposes + `torch.save`, `benches/python/convert_tf_to_pth.py`), each in its own child
//! process so that peak RSS is per process. Targets: zoo ≥ 3× faster, ≤ 1/4 of the peak RSS.
//!
//! Run: `cargo bench --bench convert`. Environment:
//! - `ZOO_BENCH_DIR`: where the synthetic checkpoint and outputs live
//!   (default `target/bench-data/l2-ema`); the checkpoint is generated once and reused.
//! - `ZOO_BENCH_PYTHON`: a Python with `tensorflow-cpu` and `torch`
//!   (default `/work/bench-venv/bin/python`); set it empty to skip the Python path.
//! - `ZOO_BENCH_CACHE`: `cold`, `warm` or `cold,warm` (default): cold evicts the checkpoint's
//!   files from the page cache (`dd iflag=nocache`) before each run.
//!
//! Wall time is the child process's, start to exit (Python's includes importing TF and torch);
//! "self" is the conversion as timed inside the child (for the `zoo convert` row, which also
//! reads its output back and hashes it, the wall time). Peak RSS is `/usr/bin/time`'s `%M`
//! when available, else the child's own report (VmHWM / `ru_maxrss`).
//!
//! A "disk floor" row copies the checkpoint's data files the way zoo's writers write, with the
//! final fsync and no conversion work: zoo makes every output durable before publishing it, so on
//! a slow disk its time is bounded by that row, whatever the CPU does. Every run starts with its
//! outputs deleted and synced.
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use zoo::arch::ArchConfig;
use zoo::convert::stream::{convert_streaming, StreamOutputs};
use zoo::convert::tf_efficientnet::{tensor_maps, EMA_SUFFIX};
use zoo::convert::{inventory, plan_tf, Plan, WeightSet};
use zoo::fingerprint::FINGERPRINT_KEY;
use zoo_converters::tf_bundle::{Bundle, BundleWriter};
use zoo_converters::writeback::EarlyWriteback;
use zoo_converters::{DType, Tensor};

const SCOPE: &str = "efficientnet-l2";
const CHILD: &str = "__zoo_convert_child";
const FLOOR: &str = "__zoo_copy_floor";

fn l2_plan(bundle: &Bundle) -> Plan {
    let spec = ArchConfig::variant("l2")
        .expect("l2")
        .resolve()
        .expect("resolves");
    plan_tf(&spec, &inventory(bundle), WeightSet::Ema).expect("synthetic checkpoint maps")
}

/// Writes the synthetic checkpoint: every EMA variable L2 has, with its TF shape and cheap
/// pseudo-random values, plus `global_step` and the raw stem kernel (tiny; `plan_tf` finds the
/// model scope from the raw name `<scope>/stem/conv2d/kernel`, so an EMA-only checkpoint would
/// not plan).
fn generate(prefix: &Path) {
    let spec = ArchConfig::variant("l2")
        .expect("l2")
        .resolve()
        .expect("resolves");
    let mut w = BundleWriter::create(prefix).expect("create bundle");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let maps = tensor_maps(&spec, SCOPE).expect("every layer has a TF name");
    let stem = maps.first().expect("a stem kernel");
    let named = maps
        .iter()
        .map(|m| (format!("{}{EMA_SUFFIX}", m.tf_name), m.tf_shape()))
        .chain([(stem.tf_name.clone(), stem.tf_shape())]);
    for (name, shape) in named {
        let n: usize = shape.iter().product();
        let mut data = Vec::with_capacity(n * 4);
        for _ in 0..n {
            // xorshift64; the top 24 bits as a float in [-1, 1)
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let v = (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
            data.extend_from_slice(&v.to_le_bytes());
        }
        let t = Tensor::new(&name, DType::F32, shape, data).expect("tensor");
        w.add(&name, &t).expect("add");
    }
    let step = Tensor::new(
        "global_step",
        DType::I64,
        vec![],
        1_000_000i64.to_le_bytes().to_vec(),
    )
    .expect("scalar");
    w.add("global_step", &step).expect("add");
    w.finish().expect("finish bundle");
}

fn vm_hwm_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The child: one streaming conversion, reporting like the Python script does.
fn child(args: &[String]) {
    let [prefix, pth, st] = args else {
        panic!("usage: {CHILD} PREFIX PTH|- SAFETENSORS|-");
    };
    let opt = |s: &String| (s != "-").then(|| PathBuf::from(s));
    let (pth, st) = (opt(pth), opt(st));
    let start = Instant::now();
    let bundle = Bundle::open(prefix).expect("open bundle");
    let plan = l2_plan(&bundle);
    let outputs = StreamOutputs {
        pth: pth.as_deref(),
        safetensors: st.as_deref(),
        metadata: [
            ("format".to_owned(), "pt".to_owned()),
            (FINGERPRINT_KEY.to_owned(), String::new()),
        ]
        .into(),
        progress: None,
    };
    let fp = convert_streaming(&bundle, &plan, &outputs).expect("conversion");
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "seconds": seconds,
            "peak_rss_bytes": vm_hwm_bytes(),
            "tensors": plan.items.len(),
            "fingerprint": fp.fingerprint,
        })
    );
}

/// The disk floor: the checkpoint's data files copied into `path` the way zoo's writers write
/// (1 MiB writes, [`EarlyWriteback`], a final `sync_all`), with no conversion work: reading the
/// source (from disk when cold) and writing its bytes durably. No converter that makes its
/// output durable can finish faster.
fn floor_child(args: &[String]) {
    let [path, sources @ ..] = args else {
        panic!("usage: {FLOOR} OUT SOURCE...");
    };
    let start = Instant::now();
    let mut file = std::fs::File::create(path).expect("create");
    let mut writeback = EarlyWriteback::start(&file).expect("writeback thread");
    let mut chunk = vec![0u8; 1 << 20];
    for source in sources {
        let mut from = std::fs::File::open(source).expect("open source");
        loop {
            let n = from.read(&mut chunk).expect("read source");
            if n == 0 {
                break;
            }
            file.write_all(&chunk[..n]).expect("write");
            writeback.wrote(n as u64);
        }
    }
    writeback.finish().expect("writeback");
    file.sync_all().expect("fsync");
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"seconds": seconds, "peak_rss_bytes": vm_hwm_bytes()})
    );
}

struct Run {
    wall: f64,
    /// user + system CPU seconds of the child (from `/usr/bin/time`), if known.
    cpu: Option<f64>,
    seconds: f64,
    peak_rss: u64,
    report: serde_json::Value,
}

/// Runs `cmd` under `/usr/bin/time` (when present) and parses the JSON line it prints last.
fn run(program: &Path, args: &[&str], scratch: &Path) -> Run {
    let time = Path::new("/usr/bin/time");
    let time_out = scratch.join("time.txt");
    let mut cmd = if time.exists() {
        let mut c = Command::new(time);
        c.arg("-f")
            .arg("%e %M %U %S")
            .arg("-o")
            .arg(&time_out)
            .arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args);
    let start = Instant::now();
    let out = cmd.output().expect("spawn child");
    let wall = start.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}\n{stdout}\n{}",
        program.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // a JSON line last (the children here), or one JSON document (`zoo convert --json`)
    let report: serde_json::Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .or_else(|| serde_json::from_str(&stdout).ok())
        .expect("child prints JSON");
    let self_rss = report["peak_rss_bytes"].as_u64();
    let timed = std::fs::read_to_string(&time_out).unwrap_or_default();
    let field = |i: usize| timed.split_whitespace().nth(i);
    let time_rss = field(1)
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb * 1024);
    let cpu = match (field(2), field(3)) {
        (Some(u), Some(s)) => u
            .parse::<f64>()
            .ok()
            .zip(s.parse::<f64>().ok())
            .map(|(u, s)| u + s),
        _ => None,
    };
    let _ = std::fs::remove_file(&time_out);
    Run {
        wall,
        cpu,
        seconds: report["seconds"].as_f64().unwrap_or(wall),
        peak_rss: time_rss.or(self_rss).expect("a peak RSS"),
        report,
    }
}

/// Drops the checkpoint's pages from the page cache (only these files, not the machine's).
fn evict(files: &[PathBuf]) {
    for f in files {
        let ok = Command::new("dd")
            .arg(format!("if={}", f.display()))
            .args(["iflag=nocache", "count=0", "status=none"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "could not evict {} from the page cache", f.display());
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some(CHILD) => return child(&args[1..]),
        Some(FLOOR) => return floor_child(&args[1..]),
        _ => {}
    }
    let dir = std::env::var_os("ZOO_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data/l2-ema"));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let prefix = dir.join("model.ckpt");
    if !prefix.with_extension("ckpt.index").exists() {
        let start = Instant::now();
        eprintln!(
            "generating the synthetic L2 checkpoint in {} …",
            dir.display()
        );
        generate(&prefix);
        eprintln!("generated in {:.1} s", start.elapsed().as_secs_f64());
    }
    let bundle = Bundle::open(&prefix).expect("open bundle");
    let plan = l2_plan(&bundle);
    let source_bytes: u64 = plan
        .items
        .iter()
        .map(|i| bundle.entry(&i.source).expect("planned").size)
        .sum();
    let params: usize = plan
        .items
        .iter()
        .map(|i| i.map.target.shape.iter().product::<usize>())
        .sum();
    let plan_json: Vec<serde_json::Value> = plan
        .items
        .iter()
        .map(|i| {
            serde_json::json!({
                "source": i.source,
                "target": i.map.target.name,
                "permute": i.map.layout.permutation(),
            })
        })
        .collect();
    let plan_path = dir.join("plan.json");
    std::fs::write(&plan_path, serde_json::to_vec(&plan_json).expect("json")).expect("plan.json");
    let mut ckpt_files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("model.ckpt."))
        })
        .collect();
    ckpt_files.sort();
    drop(bundle);

    let out = dir.join("out");
    std::fs::create_dir_all(&out).expect("out dir");
    let me = std::env::current_exe().expect("current exe");
    let python = match std::env::var("ZOO_BENCH_PYTHON") {
        Ok(p) if p.is_empty() => None,
        Ok(p) => Some(PathBuf::from(p)),
        Err(_) => Some(PathBuf::from("/work/bench-venv/bin/python")),
    };
    let python = match python {
        None => {
            println!("skipping the Python path: ZOO_BENCH_PYTHON is empty");
            None
        }
        Some(p) if !p.exists() => {
            println!(
                "skipping the Python path: {} does not exist (set ZOO_BENCH_PYTHON)",
                p.display()
            );
            None
        }
        Some(p) => Some(p),
    };
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python");
    let modes = std::env::var("ZOO_BENCH_CACHE").unwrap_or_else(|_| "cold,warm".into());

    println!(
        "synthetic L2 EMA checkpoint: {} tensors, {params} params, {:.3} GB ({})",
        plan.items.len(),
        source_bytes as f64 / 1e9,
        dir.display()
    );
    println!("load before: {}", load());
    let zoo_pth = out.join("zoo.pth");
    let zoo_st = out.join("zoo.safetensors");
    let py_pth = out.join("python.pth");
    let floor = out.join("floor.bin");
    // zoo's .pth, kept out of the way of the runs' clean-up for the final comparison with Python's
    let zoo_kept = out.join("zoo-kept.pth");
    let mut rows: Vec<(String, Run)> = vec![];
    for mode in modes.split(',') {
        let cold = match mode.trim() {
            "cold" => true,
            "warm" => false,
            other => panic!("ZOO_BENCH_CACHE: unknown mode `{other}`"),
        };
        let prep = || {
            if cold {
                evict(&ckpt_files);
            } else {
                // make sure the source is cached
                for f in &ckpt_files {
                    let _ = std::fs::read(f);
                }
            }
        };
        let p = prefix.to_str().expect("utf-8 path");
        // Every run starts with no output of an earlier run: none to replace (replacing a
        // 1.9 GB file frees its extents, 1.3 s here, inside `rename` for zoo and inside the
        // truncating `open` for torch.save) and none of its dirty pages still being written
        // back (torch.save does not fsync; its writeback would slow the next run).
        let prep = || {
            for f in [&zoo_pth, &zoo_st, &py_pth, &floor] {
                let _ = std::fs::remove_file(f);
            }
            let cli_out = out.join("cli");
            let _ = std::fs::remove_dir_all(&cli_out);
            let _ = Command::new("sync").arg("-f").arg(&out).status();
            prep();
        };
        prep();
        let data_files: Vec<&str> = ckpt_files
            .iter()
            .filter_map(|f| f.to_str())
            .filter(|f| f.contains(".data-"))
            .collect();
        let floor_args = [&[FLOOR, floor.to_str().expect("utf-8")], &data_files[..]].concat();
        let r = run(&me, &floor_args, &out);
        rows.push((format!("disk floor: copy+fsync ({mode})"), r));
        prep();
        let r = run(
            &me,
            &[CHILD, p, zoo_pth.to_str().expect("utf-8"), "-"],
            &out,
        );
        rows.push((format!("zoo .pth ({mode})"), r));
        prep();
        let r = run(&me, &[CHILD, p, "-", zoo_st.to_str().expect("utf-8")], &out);
        rows.push((format!("zoo .safetensors ({mode})"), r));
        prep();
        let r = run(
            &me,
            &[
                CHILD,
                p,
                zoo_pth.to_str().expect("utf-8"),
                zoo_st.to_str().expect("utf-8"),
            ],
            &out,
        );
        rows.push((format!("zoo both ({mode})"), r));
        std::fs::rename(&zoo_pth, &zoo_kept).expect("keep zoo.pth");
        // The whole `zoo convert` command: streams into a staging directory, reads the file back
        // (the fingerprint must match; this holds the model in memory, as the inference check
        // would), hashes it for its name and renames it into place.
        prep();
        let cli_out = out.join("cli");
        let r = run(
            Path::new(env!("CARGO_BIN_EXE_zoo")),
            &[
                "convert",
                "--from",
                p,
                "--arch",
                "l2",
                "--format",
                "pth",
                "--out",
                cli_out.to_str().expect("utf-8"),
                "--json",
            ],
            &out,
        );
        rows.push((format!("zoo convert CLI .pth ({mode})"), r));
        if let Some(py) = &python {
            prep();
            let script = scripts.join("convert_tf_to_pth.py");
            let r = run(
                py,
                &[
                    script.to_str().expect("utf-8"),
                    p,
                    plan_path.to_str().expect("utf-8"),
                    py_pth.to_str().expect("utf-8"),
                ],
                &out,
            );
            rows.push((format!("python .pth ({mode})"), r));
            prep();
            let r = run(
                py,
                &[
                    script.to_str().expect("utf-8"),
                    p,
                    plan_path.to_str().expect("utf-8"),
                    py_pth.to_str().expect("utf-8"),
                    "--fsync",
                ],
                &out,
            );
            rows.push((format!("python .pth+fsync ({mode})"), r));
        }
    }
    println!("load after: {}", load());

    let fps: Vec<&str> = rows
        .iter()
        .filter_map(|(_, r)| {
            let fp = &r.report["fingerprint"];
            fp.as_str().or_else(|| fp["fingerprint"].as_str())
        })
        .collect();
    assert!(
        fps.windows(2).all(|w| w[0] == w[1]),
        "zoo runs disagree: {fps:?}"
    );
    let gb = source_bytes as f64 / 1e9;
    println!(
        "\n{:<30} {:>9} {:>9} {:>9} {:>11} {:>11}",
        "run", "wall s", "self s", "CPU s", "GB/s self", "peak RSS MB"
    );
    for (name, r) in &rows {
        println!(
            "{name:<30} {:>9.2} {:>9.2} {:>9} {:>11.2} {:>11.0}",
            r.wall,
            r.seconds,
            r.cpu.map_or("?".into(), |c| format!("{c:.2}")),
            gb / r.seconds,
            r.peak_rss as f64 / 1e6
        );
    }
    for mode in modes.split(',').map(str::trim) {
        let find = |p: &str| {
            rows.iter()
                .find(|(n, _)| n == &format!("{p} ({mode})"))
                .map(|(_, r)| r)
        };
        if let (Some(z), Some(py)) = (find("zoo .pth"), find("python .pth")) {
            let speed_wall = py.wall / z.wall;
            let speed_self = py.seconds / z.seconds;
            let rss = z.peak_rss as f64 / py.peak_rss as f64;
            if let (Some(zc), Some(pc)) = (z.cpu, py.cpu) {
                println!("{mode}: python/zoo CPU time {:.1}×", pc / zc);
            }
            let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
            println!(
                "{mode}: python/zoo time {speed_wall:.1}× (wall, what the user waits for, incl. Python's imports): ≥ 3× {}; \
                 {speed_self:.1}× (self, the conversion only): ≥ 3× {}; zoo/python peak RSS {rss:.3}: ≤ 0.25 {}",
                verdict(speed_wall >= 3.0),
                verdict(speed_self >= 3.0),
                verdict(rss <= 0.25),
            );
        }
        if let (Some(z), Some(floor)) = (find("zoo .pth"), find("disk floor: copy+fsync")) {
            println!(
                "{mode}: zoo .pth takes {:.2}× the disk floor (copying the checkpoint durably, no conversion)",
                z.wall / floor.wall
            );
        }
        // zoo fsyncs every output before renaming it into place; torch.save does not.
        if let (Some(z), Some(py)) = (find("zoo .pth"), find("python .pth+fsync")) {
            println!(
                "{mode}: at the same durability (python+fsync)/zoo time {:.1}× (wall), {:.1}× (self)",
                py.wall / z.wall,
                py.seconds / z.seconds
            );
        }
    }
    if let Some(py) = &python {
        // zoo's file loads in torch with weights_only=True and equals the Python path's.
        let out = Command::new(py)
            .arg(scripts.join("compare_pth.py"))
            .arg(&zoo_kept)
            .arg(&py_pth)
            .output()
            .expect("run compare_pth.py");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "compare_pth.py failed: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!(
            "torch.load(weights_only=True) of zoo.pth vs python.pth: {}",
            text.trim()
        );
    }
    if std::env::var_os("ZOO_BENCH_KEEP_OUTPUTS").is_none() {
        for f in [&zoo_pth, &zoo_st, &py_pth, &floor, &zoo_kept] {
            let _ = std::fs::remove_file(f);
        }
        let _ = std::fs::remove_dir_all(out.join("cli"));
    }
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
