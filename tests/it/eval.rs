//! `zoo eval`'s pipeline against timm and Pillow, bit for bit.
use std::path::{Path, PathBuf};
use std::process::Command;

use zoo::eval::{decode, EvalTransform, Normalize, PassOrder};

const MEAN: [f64; 3] = [0.485, 0.456, 0.406];
const STD: [f64; 3] = [0.229, 0.224, 0.225];

pub fn python() -> String {
    std::env::var("ZOO_PYTHON").expect("set ZOO_PYTHON to a python with torch, timm and Pillow 13.0.0")
}

/// Runs `tests/python/<script>` with the given arguments; panics with its stderr on failure.
pub fn run_python(script: &str, args: &[&Path]) {
    let out = Command::new(python())
        .arg(crate::root().join("tests/python").join(script))
        .args(args)
        .output()
        .expect("run ZOO_PYTHON");
    assert!(
        out.status.success(),
        "{script} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// Where and by how much two f32 tensors differ (count, first index, max |Δ| in ulps).
fn compare_f32(ours: &[f32], theirs: &[f32]) -> Option<String> {
    assert_eq!(ours.len(), theirs.len());
    let bad: Vec<usize> = (0..ours.len()).filter(|&i| ours[i].to_bits() != theirs[i].to_bits()).collect();
    let first = *bad.first()?;
    let max_ulp = bad
        .iter()
        .map(|&i| (ours[i].to_bits() as i64 - theirs[i].to_bits() as i64).abs())
        .max()
        .unwrap();
    Some(format!(
        "{} of {} values differ (first at {first}: {} vs {}; max {max_ulp} ulp)",
        bad.len(),
        ours.len(),
        ours[first],
        theirs[first]
    ))
}

fn compare_u8(ours: &[u8], theirs: &[u8]) -> Option<String> {
    assert_eq!(ours.len(), theirs.len());
    let bad: Vec<usize> = (0..ours.len()).filter(|&i| ours[i] != theirs[i]).collect();
    let first = *bad.first()?;
    let max = bad.iter().map(|&i| ours[i].abs_diff(theirs[i])).max().unwrap();
    Some(format!(
        "{} of {} values differ (first at {first}: {} vs {}; max |Δ| {max})",
        bad.len(),
        ours.len(),
        ours[first],
        theirs[first]
    ))
}

/// The generated parity set: images + Pillow/timm outputs (tests/python/eval_parity.py).
fn parity_set(dir: &Path) -> serde_json::Value {
    run_python("eval_parity.py", &[dir]);
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

#[test]
#[ignore = "needs ZOO_PYTHON (python with torch/timm/Pillow 13.0.0); `make test` runs it"]
fn pipeline_equals_timm_create_transform_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let manifest = parity_set(dir);
    assert_eq!(manifest["pillow"], "13.0.0", "the expected tensors come from the pinned Pillow");
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut order_checked = 0;
    for img in manifest["images"].as_array().unwrap() {
        let name = img["name"].as_str().unwrap();
        let file: PathBuf = dir.join(img["file"].as_str().unwrap());
        let decoded = match decode(&std::fs::read(&file).unwrap(), &file.display().to_string()) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        assert_eq!((decoded.width as u64, decoded.height as u64), (img["width"].as_u64().unwrap(), img["height"].as_u64().unwrap()));
        if let Some(d) = compare_u8(&decoded.data, &std::fs::read(dir.join(format!("{name}.rgb"))).unwrap()) {
            failures.push(format!("{name}: decode: {d}"));
            continue;
        }
        let differs: Vec<&str> = img["order_differs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        for cfg in manifest["configs"].as_array().unwrap() {
            let cname = cfg["name"].as_str().unwrap();
            let mut t = EvalTransform::new(
                cfg["img_size"].as_u64().unwrap() as usize,
                cfg["crop_pct"].as_f64().unwrap(),
                MEAN,
                STD,
            )
            .unwrap();
            for (norm, suffix) in [(Normalize::ToTensor, "totensor"), (Normalize::Prefetcher, "prefetch")] {
                t.normalize = norm;
                t.pass_order = PassOrder::Pillow13;
                let ours = t.apply(&decoded).unwrap();
                let theirs = read_f32(&dir.join(format!("{name}.{cname}.{suffix}.f32")));
                if let Some(d) = compare_f32(&ours, &theirs) {
                    failures.push(format!("{name} {cname} {suffix}: {d}"));
                }
                checked += 1;
            }
            // Pillow < 13's order (both passes horizontal first), and that the setting matters
            // exactly where Python says it does.
            t.pass_order = PassOrder::Legacy;
            let legacy = t.crop_u8(&decoded).unwrap();
            if let Some(d) = compare_u8(&legacy, &std::fs::read(dir.join(format!("{name}.{cname}.legacy.u8"))).unwrap()) {
                failures.push(format!("{name} {cname} legacy order: {d}"));
            }
            t.pass_order = PassOrder::Pillow13;
            let v13 = t.crop_u8(&decoded).unwrap();
            assert_eq!(v13 != legacy, differs.contains(&cname), "{name} {cname}: pass order");
            order_checked += usize::from(v13 != legacy);
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    assert!(checked >= 90, "{checked}");
    assert!(order_checked >= 2, "the set must hold images whose result depends on the pass order");
}
