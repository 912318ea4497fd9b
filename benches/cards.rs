//! `zoo check-cards` on large adversarial cards (issue 14, M7): a YAML mapping with very many
//! keys, a markdown card with very many `<!-- … -->` model-index blocks, and a model record with
//! very many unknown keys (one info finding each). Each is generated at 1, 4 and 16 MiB (the
//! registry's card size limit) and checked twice: through the library
//! (`zoo::registry::check_cards`) and end to end with the release binary (output to
//! /dev/null). Checking is linear in the card: 16 MiB should take under 2 s. The library column
//! has both wall and CPU time (the CPU time says what a busy machine's wall time hides).
//!
//! Run: `cargo bench --bench cards` (sizes in MiB: `ZOO_BENCH_CARD_MB=1,4,16`).
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cpu_time::ProcessTime;

/// One generated card: a name, the file extension and the text of item `i`.
struct Shape {
    name: &'static str,
    ext: &'static str,
    head: &'static str,
    item: fn(&mut String, usize),
}

const SHAPES: [Shape; 3] = [
    Shape {
        name: "mapping keys",
        ext: "yml",
        head: "Type: model-index\nX:\n",
        item: |s, i| {
            let _ = writeln!(s, "  k{i:08}: 1");
        },
    },
    Shape {
        name: "comment blocks",
        ext: "md",
        head: "",
        item: |s, i| {
            let _ = write!(s, "t {i}\n<!--\nType: model-index\n-->\n");
        },
    },
    Shape {
        name: "unknown model keys",
        ext: "yml",
        head: "Type: model-index\nModels:\n- Name: m\n",
        item: |s, i| {
            let _ = writeln!(s, "  k{i:08}: 1");
        },
    },
];

/// Writes a card of about `bytes` bytes; returns how many items it holds.
fn generate(shape: &Shape, bytes: usize, path: &Path) -> usize {
    let mut text = String::with_capacity(bytes + 64);
    text.push_str(shape.head);
    let mut n = 0;
    let mut item = String::new();
    loop {
        item.clear();
        (shape.item)(&mut item, n);
        if text.len() + item.len() > bytes {
            break;
        }
        text.push_str(&item);
        n += 1;
    }
    std::fs::write(path, text).expect("write card");
    n
}

fn main() {
    let sizes: Vec<usize> = std::env::var("ZOO_BENCH_CARD_MB")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 4, 16]);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    println!(
        "{:<20} {:>4} {:>9} {:>9} {:>10} {:>10} {:>14}",
        "card", "MiB", "items", "findings", "library s", "lib cpu s", "check-cards s"
    );
    for shape in &SHAPES {
        for &mb in &sizes {
            let path = dir.path().join(format!("card-{mb}.{}", shape.ext));
            let items = generate(shape, mb << 20, &path);

            let (t, cpu) = (Instant::now(), ProcessTime::now());
            let diags = zoo::registry::check_cards(std::slice::from_ref(&path.to_path_buf()));
            let (library, library_cpu) = (t.elapsed(), cpu.elapsed());

            let t = Instant::now();
            let status = Command::new(env!("CARGO_BIN_EXE_zoo"))
                .arg("check-cards")
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run zoo check-cards");
            let cli = t.elapsed();
            assert!(status.code().is_some(), "zoo check-cards was killed");
            println!(
                "{:<20} {:>4} {:>9} {:>9} {:>10.3} {:>10.3} {:>14.3}",
                shape.name,
                mb,
                items,
                diags.len(),
                secs(library),
                secs(library_cpu),
                secs(cli)
            );
        }
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}
