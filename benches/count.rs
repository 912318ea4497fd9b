//! Counts all 10 registry models (b0…b7, l2 @ 800×1019, l2_475) under every convention, plus
//! exact parameters and the legacy and zip file-size predictions, and prints process CPU time
//! and wall time per model. Target: under 50 ms of CPU time in total.
//!
//! Run: `cargo bench --bench count`.
use std::time::{Duration, Instant};

use cpu_time::ProcessTime;
use zoo::arch::ArchConfig;
use zoo::filesize::{self, Container, SaveLayout};
use zoo::flops::{self, Convention};

/// (registry id, variant, card Image Size).
const MODELS: [(&str, &str, usize); 10] = [
    ("tf_efficientnet_b0_ns", "tf_efficientnet_b0", 224),
    ("tf_efficientnet_b1_ns", "tf_efficientnet_b1", 240),
    ("tf_efficientnet_b2_ns", "tf_efficientnet_b2", 260),
    ("tf_efficientnet_b3_ns", "tf_efficientnet_b3", 300),
    ("tf_efficientnet_b4_ns", "tf_efficientnet_b4", 380),
    ("tf_efficientnet_b5_ns", "tf_efficientnet_b5", 456),
    ("tf_efficientnet_b6_ns", "tf_efficientnet_b6", 528),
    ("tf_efficientnet_b7_ns", "tf_efficientnet_b7", 600),
    ("tf_efficientnet_l2_ns", "tf_efficientnet_l2", 800),
    ("tf_efficientnet_l2_ns_475", "tf_efficientnet_l2", 475),
];

fn main() {
    println!(
        "{:<27} {:>10} {:>10} {:>16} {:>14} {:>14}",
        "model", "cpu ms", "wall ms", "thop-2020", "params", "legacy bytes"
    );
    let (cpu0, wall0) = (ProcessTime::now(), Instant::now());
    let mut sink = 0u64;
    for (id, variant, s) in MODELS {
        let (cpu, wall) = (ProcessTime::now(), Instant::now());
        let spec = ArchConfig::variant(variant)
            .expect("known variant")
            .resolve()
            .expect("resolves");
        let mut thop = 0;
        for c in Convention::ALL {
            let v = flops::count(&spec, c, c.input_for_image_size(s)).expect("fits in 64 bits");
            if c == Convention::Thop2020 {
                thop = v;
            }
            sink = sink.wrapping_add(v);
        }
        let params = spec.trainable_params();
        let layout = SaveLayout::timm_2020_release(id);
        let legacy = filesize::predict(&spec, &layout, Container::Legacy).total;
        sink = sink.wrapping_add(filesize::predict(&spec, &layout, Container::Zip).total);
        let (c, w) = (cpu.elapsed(), wall.elapsed());
        println!(
            "{id:<27} {:>10.3} {:>10.3} {thop:>16} {params:>14} {legacy:>14}",
            ms(c),
            ms(w)
        );
    }
    let (c, w) = (cpu0.elapsed(), wall0.elapsed());
    println!("{:<27} {:>10.3} {:>10.3}", "total", ms(c), ms(w));
    println!(
        "target: < 50 ms CPU in total ({})",
        if ms(c) < 50.0 { "met" } else { "MISSED" }
    );
    std::hint::black_box(sink);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
