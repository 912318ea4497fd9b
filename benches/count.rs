//! Counts every model of the embedded registry (48: the Noisy Student, AutoAugment, AdvProp,
//! EdgeTPU, Lite, CondConv, MixNet and MobileNetV3 models, at their card Image Size) under every
//! convention (`flops::count_all`, one walk per distinct input), plus exact parameters, the
//! file-size prediction of the layout that explains the card, and the zip prediction; each model's
//! architecture is resolved inside the clock. Prints process CPU time and wall time per model.
//! Target: under 50 ms of CPU time in total (about 9 ms on a 2-core machine in December 2026).
//! The registry is read before the clock starts.
//!
//! Run: `cargo bench --bench count`.
use std::time::{Duration, Instant};

use cpu_time::ProcessTime;
use zoo::filesize::{self, Container, SaveLayout};
use zoo::flops::{self, Convention};
use zoo::registry::Registry;

fn main() {
    let registry = Registry::embedded().expect("the embedded registry loads");
    let models: Vec<(String, zoo::arch::ArchConfig, usize, Option<u64>)> = registry
        .models()
        .map(|m| {
            let meta = m.model.metadata.as_ref();
            let size = meta
                .and_then(|x| x.image_size.as_ref())
                .map_or(224, |c| c.value as usize);
            let doc = meta.and_then(|x| x.file_size.as_ref()).map(|c| c.value);
            (m.name().to_string(), m.arch().expect("resolves"), size, doc)
        })
        .collect();
    println!(
        "{:<34} {:>10} {:>10} {:>16} {:>14} {:>14}",
        "model", "cpu ms", "wall ms", "thop-2020", "params", "legacy bytes"
    );
    let (cpu0, wall0) = (ProcessTime::now(), Instant::now());
    let mut sink = 0u64;
    let mut ns_cpu = Duration::ZERO;
    for (id, arch, s, doc) in &models {
        let (cpu, wall) = (ProcessTime::now(), Instant::now());
        let spec = arch.resolve().expect("resolves");
        let mut thop = 0;
        for count in flops::count_all(&spec, *s, None).expect("fits in 64 bits") {
            if count.convention == Convention::Thop2020 {
                thop = count.value;
            }
            sink = sink.wrapping_add(count.value);
        }
        let params = spec.trainable_params();
        let layout = filesize::layout_for(
            &spec,
            *doc,
            Container::Legacy,
            SaveLayout::timm_2020_release(id),
        );
        let legacy = filesize::predict(&spec, &layout, Container::Legacy).total;
        sink = sink.wrapping_add(filesize::predict(&spec, &layout, Container::Zip).total);
        let (c, w) = (cpu.elapsed(), wall.elapsed());
        if id.contains("_ns") {
            ns_cpu += c;
        }
        println!(
            "{id:<34} {:>10.3} {:>10.3} {thop:>16} {params:>14} {legacy:>14}",
            ms(c),
            ms(w)
        );
    }
    let (c, w) = (cpu0.elapsed(), wall0.elapsed());
    println!(
        "{:<34} {:>10.3}",
        "of which the 10 Noisy Student",
        ms(ns_cpu)
    );
    println!("{:<34} {:>10.3} {:>10.3}", "total", ms(c), ms(w));
    println!(
        "target: < 50 ms CPU in total ({})",
        if ms(c) < 50.0 { "met" } else { "MISSED" }
    );
    std::hint::black_box(sink);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
