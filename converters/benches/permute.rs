//! Throughput of [`Tensor::permute_into`] on the layouts a TF → timm EfficientNet conversion
//! permutes, at EfficientNet-L2 sizes (float32, recycled output buffer as the streaming
//! converter uses it). Prints one row per shape: MB, best-of-N milliseconds and GB/s.
//!
//! Run: `cargo bench -p zoo-converters --bench permute`.
use std::time::Instant;

use zoo_converters::{DType, Tensor};

const REPS: usize = 7;

fn filled(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut data = Vec::with_capacity(n * 4);
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&((x >> 40) as f32).to_le_bytes());
    }
    Tensor::new("bench", DType::F32, shape.to_vec(), data).expect("sizes are consistent")
}

fn main() {
    // The permutations zoo's TF → timm map uses (`Layout::permutation`; this crate knows no model).
    const HWIO_TO_OIHW: &[usize] = &[3, 2, 0, 1];
    const HWC1_TO_C1HW: &[usize] = &[2, 3, 0, 1];
    const IO_TO_OI: &[usize] = &[1, 0];
    // (what it is, TF shape, permutation to torch layout)
    let cases: [(&str, &[usize], &[usize]); 7] = [
        ("1x1 expand HWIO→OIHW", &[1, 1, 1376, 5504], HWIO_TO_OIHW),
        ("1x1 project HWIO→OIHW", &[1, 1, 5504, 1376], HWIO_TO_OIHW),
        ("1x1 small HWIO→OIHW", &[1, 1, 344, 2064], HWIO_TO_OIHW),
        ("head 1x1 HWIO→OIHW", &[1, 1, 2752, 5504], HWIO_TO_OIHW),
        ("depthwise 3x3 HWC1→C1HW", &[3, 3, 8256, 1], HWC1_TO_C1HW),
        ("depthwise 5x5 HWC1→C1HW", &[5, 5, 5504, 1], HWC1_TO_C1HW),
        ("classifier IO→OI", &[5504, 1000], IO_TO_OI),
    ];
    println!(
        "{:<28} {:>18} {:>9} {:>9} {:>9}",
        "layout", "TF shape", "MB", "best ms", "GB/s"
    );
    for (what, shape, perm) in cases {
        let t = filled(shape);
        let mut buf = Vec::new();
        let mut best = f64::INFINITY;
        for _ in 0..REPS {
            let start = Instant::now();
            let out = t.permute_into(perm, buf).expect("valid permutation");
            best = best.min(start.elapsed().as_secs_f64());
            buf = out.into_data();
        }
        let mb = t.data().len() as f64 / 1e6;
        println!(
            "{what:<28} {:>18} {mb:>9.1} {:>9.2} {:>9.2}",
            format!("{shape:?}"),
            best * 1e3,
            mb / 1e3 / best
        );
    }
}
