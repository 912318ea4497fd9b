//! Peak resident memory of the readers, measured in a child process (`VmHWM` of
//! `/proc/self/status`): on any input, a reader stays below twice the largest tensor it
//! returns plus 64 MiB. The crafted inputs are the amplification attacks of issue 14 (pickles that are
//! small on disk and large in an interpreter, sparse files declaring huge storages, archives
//! that decompress to much more than they are); the large real-shaped file (EfficientNet-L2's
//! largest tensor and a state dict's spread of sizes) is `#[ignore]`d because it writes 200 MB.
//!
//! Run with `--nocapture` to see the figures.
#![cfg(target_os = "linux")]
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use zoo_converters::pickle::StateDictPickler;
use zoo_converters::{npy, pth, safetensors, tf_bundle, DType, Limits, Tensor};

#[path = "support/craft.rs"]
mod craft;

const CASE: &str = "ZOO_PEAK_CASE";
const FILE: &str = "ZOO_PEAK_FILE";
const MIB: u64 = 1 << 20;

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The child side: reads `$ZOO_PEAK_FILE` the way `$ZOO_PEAK_CASE` says and reports its peak.
#[test]
fn peak_child() {
    let (Ok(case), Ok(file)) = (std::env::var(CASE), std::env::var(FILE)) else {
        return;
    };
    let path = PathBuf::from(file);
    let mut largest = 0usize;
    let mut keep = |_: String, t: Tensor| {
        largest = largest.max(t.data().len());
        Ok(())
    };
    let outcome: Result<(), String> = match case.as_str() {
        "pth" => pth::read_each(&path, &mut keep).map_err(|e| e.to_string()),
        "safetensors" => safetensors::read_each(&path, &mut |_, t| {
            largest = largest.max(t.data().len());
            Ok(())
        })
        .map(drop)
        .map_err(|e| e.to_string()),
        "npy" => npy::read(&path)
            .map(|t| largest = t.data().len())
            .map_err(|e| e.to_string()),
        "tarball" => {
            let dest = tempfile::tempdir().unwrap();
            tf_bundle::open_tarball(&path, dest.path(), Limits::default())
                .and_then(|b| {
                    let mut buf = Vec::new();
                    for e in b.entries() {
                        let t = b.read_entry_into(e, buf)?;
                        largest = largest.max(t.data().len());
                        buf = t.into_data();
                    }
                    Ok(())
                })
                .map_err(|e| e.to_string())
        }
        other => panic!("unknown case {other}"),
    };
    let shown = match &outcome {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("refused: {}", e.chars().take(160).collect::<String>()),
    };
    println!("ZOO_PEAK {} {largest} {shown}", vm_hwm_kib());
}

/// Runs `case` on `file` in a child process; returns (peak bytes, largest tensor, outcome).
fn measure(case: &str, file: &Path) -> (u64, u64, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "peak_child", "--nocapture", "--test-threads=1"])
        .env(CASE, case)
        .env(FILE, file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("ZOO_PEAK ").map(|(_, r)| r))
        .unwrap_or_else(|| {
            panic!(
                "{case}: no report\n{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let mut parts = line.splitn(3, ' ');
    let kib: u64 = parts.next().unwrap().parse().unwrap();
    let largest: u64 = parts.next().unwrap().parse().unwrap();
    (kib * 1024, largest, parts.next().unwrap().to_owned())
}

fn check(name: &str, case: &str, file: &Path) -> u64 {
    let (peak, largest, outcome) = measure(case, file);
    let bound = 2 * largest + 64 * MIB;
    println!(
        "{name:<44} {:>8.1} MiB peak (bound {:>6.1} MiB, largest tensor {:>6.1} MiB, file {:>7.1} MiB): {outcome}",
        peak as f64 / MIB as f64,
        bound as f64 / MIB as f64,
        largest as f64 / MIB as f64,
        std::fs::metadata(file).unwrap().len() as f64 / MIB as f64,
    );
    assert!(peak < bound, "{name}: peak {peak} over {bound} ({outcome})");
    peak
}

fn pickle_pth(dir: &Path, name: &str, pickle: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, craft::pth_zip(pickle, &[])).unwrap();
    path
}

fn wrap(body: &[u8]) -> Vec<u8> {
    [&b"\x80\x02"[..], body, b"."].concat()
}

#[test]
fn crafted_amplification_inputs_stay_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let size = 8_000_000usize;
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "32 MB of EMPTY_LIST (over metadata-bytes)",
            wrap(&vec![b']'; 32_000_000]),
        ),
        ("8 MB of NONE", wrap(&vec![b'N'; size])),
        ("8 MB of EMPTY_LIST", wrap(&vec![b']'; size])),
        ("8 MB of EMPTY_DICT", wrap(&vec![b'}'; size])),
        (
            "8 MB of nested 1-tuples",
            wrap(&[&b"N"[..], &vec![0x85; size]].concat()),
        ),
        (
            "8 MB of APPENDs",
            wrap(&[&b"]"[..], &b"Na".repeat(size / 2)].concat()),
        ),
        ("8 MB of MARKs", wrap(&vec![b'('; size])),
        (
            "8 MB of distinct SETITEMs",
            wrap(
                &[
                    &b"}"[..],
                    &(0..size as u32 / 7)
                        .flat_map(|i| [&b"J"[..], &i.to_le_bytes(), b"Ns"].concat())
                        .collect::<Vec<u8>>(),
                ]
                .concat(),
            ),
        ),
        (
            "8 MB of one-item dicts",
            wrap(&b"}K\x01Ns".repeat(size / 5)),
        ),
        ("8 MB of one-item lists", wrap(&b"]Na".repeat(size / 3))),
        ("8 MB of one-item tuples", wrap(&b"(Nt".repeat(size / 3))),
        (
            "8 MB of distinct strings",
            wrap(
                &(0..size as u32 / 13)
                    .flat_map(|i| {
                        [&b"X\x08\x00\x00\x00"[..], format!("{i:08x}").as_bytes()].concat()
                    })
                    .collect::<Vec<u8>>(),
            ),
        ),
        (
            "one 7.5 MB string",
            wrap(
                &[
                    &b"X"[..],
                    &7_500_000u32.to_le_bytes(),
                    &vec![b'a'; 7_500_000],
                ]
                .concat(),
            ),
        ),
    ];
    // many tensors viewing one shared 4 MB storage: reads are bounded, never cached whole
    let mut p = StateDictPickler::new();
    for i in 0..2000 {
        p.add(&format!("t{i}"), DType::F32, &[1 << 20]);
    }
    let mut shared = p.finish();
    for i in 1..2000 {
        let key = format!("X{}\x00\x00\x00{i}", char::from(i.to_string().len() as u8));
        let at = shared
            .windows(key.len())
            .position(|w| w == key.as_bytes())
            .unwrap();
        shared.splice(at..at + key.len(), b"X\x01\x00\x00\x000".iter().copied());
    }
    let storage = vec![0u8; 4 << 20];
    let path = dir.path().join("shared.pth");
    std::fs::write(&path, craft::pth_zip(&shared, &[("0", &storage)])).unwrap();
    check("2000 views of one 4 MB storage", "pth", &path);
    for (name, pickle) in cases.drain(..) {
        let path = pickle_pth(dir.path(), "amp.pth", &pickle);
        check(name, "pth", &path);
    }

    // the same flood as a legacy file's object pickle (read in growing chunks)
    let mut legacy = pth::LEGACY_HEAD.to_vec();
    legacy.extend(b".\x80\x02M\xe9\x03.\x80\x02}.");
    legacy.extend(wrap(&b"}K\x01Ns".repeat(size / 5)));
    let path = dir.path().join("legacy_amp.pth");
    std::fs::write(&path, &legacy).unwrap();
    check("legacy .pth with 8 MB of one-item dicts", "pth", &path);

    // a sparse legacy file declaring a 16 GiB storage
    let numel: u64 = 4 << 30;
    let mut p = StateDictPickler::new();
    p.add("w", DType::F32, &[numel as usize]);
    let mut object = p.finish();
    let pid_end = object.windows(2).position(|w| w == b"tQ").unwrap();
    object.insert(pid_end, b'N');
    let mut file = pth::LEGACY_HEAD.to_vec();
    file.extend(b".\x80\x02M\xe9\x03.\x80\x02}.");
    file.extend(&object);
    file.extend(b"\x80\x02]X\x01\x00\x00\x000a.");
    file.extend(numel.to_le_bytes());
    let path = dir.path().join("sparse.pth");
    std::fs::write(&path, &file).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(file.len() as u64 + numel * 4).unwrap();
    check("sparse legacy .pth declaring 16 GiB", "pth", &path);

    // a tarball whose skipped member decompresses to 256 MiB
    let tar_path = dir.path().join("bomb.tar.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&tar_path).unwrap(),
        flate2::Compression::fast(),
    );
    {
        let mut b = tar::Builder::new(&mut gz);
        let ckpt =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/efficientnet-tiny/ckpt");
        for f in ["model.ckpt.index", "model.ckpt.data-00000-of-00001"] {
            b.append_path_with_name(ckpt.join(f), format!("ck/{f}"))
                .unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.set_path("ck/pad.bin").unwrap();
        h.set_size(256 << 20);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, std::io::repeat(0).take_bytes(256 << 20))
            .unwrap();
        b.finish().unwrap();
    }
    gz.finish().unwrap().flush().unwrap();
    check(
        "tarball with a 256 MiB skipped member",
        "tarball",
        &tar_path,
    );
}

trait TakeBytes: std::io::Read + Sized {
    fn take_bytes(self, n: u64) -> std::io::Take<Self> {
        std::io::Read::take(self, n)
    }
}
impl<R: std::io::Read> TakeBytes for R {}

#[test]
#[ignore = "writes about 200 MB; run by hand for the figures"]
fn large_real_shaped_files_stay_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    // EfficientNet-L2's largest tensor (the classifier, 1000 × 5504 + …, 45 MB) and 150 MB
    // more in tensors of the sizes a state dict has (many small, some large)
    let mut sd: Vec<(String, Tensor)> = Vec::new();
    let mut add = |name: String, numel: usize| {
        let data: Vec<u8> = (0..numel * 4).map(|i| (i * 7 % 251) as u8).collect();
        sd.push((
            name,
            Tensor::new("t", DType::F32, vec![numel], data).unwrap(),
        ));
    };
    add("classifier.weight".into(), 11_360_256);
    for i in 0..30 {
        add(format!("blocks.{i}.conv_pw.weight"), 1_000_000);
    }
    for i in 0..2000 {
        add(format!("blocks.{i}.bn.weight"), 1000 + i);
    }
    let pth_path = dir.path().join("big.pth");
    pth::write(&pth_path, &sd).unwrap();
    check("200 MB .pth (zip), read tensor by tensor", "pth", &pth_path);
    let st_path = dir.path().join("big.safetensors");
    safetensors::write(&st_path, &sd, &Default::default()).unwrap();
    check(
        "200 MB .safetensors, read tensor by tensor",
        "safetensors",
        &st_path,
    );
    let npy_path = dir.path().join("big.npy");
    let (_, t) = &sd[0];
    let header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        t.numel()
    );
    let mut h = header;
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((h.len() as u16).to_le_bytes());
    bytes.extend(h.as_bytes());
    bytes.extend(t.data());
    std::fs::write(&npy_path, bytes).unwrap();
    check("45 MB .npy", "npy", &npy_path);
}
