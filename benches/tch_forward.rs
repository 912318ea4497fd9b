//! Forward-pass time of zoo's libtorch Model (CPU, at most 2 intra-op threads).
//! Weights are zero: the work of a forward pass does not depend on the values.
//!
//! `cargo bench --features torch --bench tch_forward [-- ARCH...]` (default: b0).
use std::time::{Duration, Instant};

use zoo::arch::ArchConfig;
use zoo::torch::Model;
use zoo_converters::Tensor;

const RUNS: usize = 10;

fn main() {
    let archs: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let archs = if archs.is_empty() {
        vec!["b0".to_owned()]
    } else {
        archs
    };
    println!("| arch | input | batch | median ms | min ms | runs |");
    println!("|---|---|---|---|---|---|");
    for arch in archs {
        let spec = arch
            .parse::<ArchConfig>()
            .and_then(|c| c.resolve())
            .unwrap_or_else(|e| panic!("{arch}: {e}"));
        let model = Model::zeroed(&spec).expect("build model");
        for (size, batch) in [(224usize, 1usize), (224, 8)] {
            let n = batch * spec.in_chans * size * size;
            let input = Tensor::from_f32(vec![batch, spec.in_chans, size, size], &vec![0.5f32; n])
                .expect("input");
            model.forward(&input).expect("warm-up");
            let mut times: Vec<Duration> = (0..RUNS)
                .map(|_| {
                    let t = Instant::now();
                    model.forward(&input).expect("forward");
                    t.elapsed()
                })
                .collect();
            times.sort();
            println!(
                "| {arch} | {size}x{size} | {batch} | {:.1} | {:.1} | {RUNS} |",
                times[RUNS / 2].as_secs_f64() * 1e3,
                times[0].as_secs_f64() * 1e3
            );
        }
    }
}
