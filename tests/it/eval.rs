//! `zoo eval`'s pipeline against timm and Pillow, bit for bit.
use std::path::{Path, PathBuf};
use std::process::Command;

use zoo::eval::{decode, EvalTransform, Normalize, PassOrder};

use crate::fixture;

const MEAN: [f64; 3] = [0.485, 0.456, 0.406];
const STD: [f64; 3] = [0.229, 0.224, 0.225];

/// Runs `tests/python/<script>` with the given arguments; panics with its output on failure.
pub fn run_python(script: &str, args: &[&Path]) {
    crate::python_script(script, args);
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
    let bad: Vec<usize> = (0..ours.len())
        .filter(|&i| ours[i].to_bits() != theirs[i].to_bits())
        .collect();
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
    let max = bad
        .iter()
        .map(|&i| ours[i].abs_diff(theirs[i]))
        .max()
        .unwrap();
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
    assert_eq!(
        manifest["pillow"], "13.0.0",
        "the expected tensors come from the pinned Pillow"
    );
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
        assert_eq!(
            (decoded.width as u64, decoded.height as u64),
            (
                img["width"].as_u64().unwrap(),
                img["height"].as_u64().unwrap()
            )
        );
        if let Some(d) = compare_u8(
            &decoded.data,
            &std::fs::read(dir.join(format!("{name}.rgb"))).unwrap(),
        ) {
            failures.push(format!("{name}: decode: {d}"));
            continue;
        }
        let differs: Vec<&str> = img["order_differs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for cfg in manifest["configs"].as_array().unwrap() {
            let cname = cfg["name"].as_str().unwrap();
            let mut t = EvalTransform::new(
                cfg["img_size"].as_u64().unwrap() as usize,
                cfg["crop_pct"].as_f64().unwrap(),
                MEAN,
                STD,
            )
            .unwrap();
            for (norm, suffix) in [
                (Normalize::ToTensor, "totensor"),
                (Normalize::Prefetcher, "prefetch"),
            ] {
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
            if let Some(d) = compare_u8(
                &legacy,
                &std::fs::read(dir.join(format!("{name}.{cname}.legacy.u8"))).unwrap(),
            ) {
                failures.push(format!("{name} {cname} legacy order: {d}"));
            }
            t.pass_order = PassOrder::Pillow13;
            let v13 = t.crop_u8(&decoded).unwrap();
            assert_eq!(
                v13 != legacy,
                differs.contains(&cname),
                "{name} {cname}: pass order"
            );
            order_checked += usize::from(v13 != legacy);
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked >= 90, "{checked}");
    assert!(
        order_checked >= 2,
        "the set must hold images whose result depends on the pass order"
    );
}

// ---------------------------------------------------------------------------------------------
// Datasets

use zoo::eval::dataset::{Dataset, DatasetError, Layout, Location};

/// A real JPEG (libjpeg-turbo, 4:2:0) of a w×h gradient whose colour depends on `seed`.
pub fn jpeg(w: usize, h: usize, seed: u8) -> Vec<u8> {
    let px: Vec<u8> = (0..w * h)
        .flat_map(|i| {
            let (x, y) = ((i % w) as u8, (i / w) as u8);
            [
                x.wrapping_mul(3).wrapping_add(seed),
                y.wrapping_mul(5),
                seed.wrapping_mul(37) ^ x,
            ]
        })
        .collect();
    let img = turbojpeg::Image {
        pixels: px.as_slice(),
        width: w,
        pitch: w * 3,
        height: h,
        format: turbojpeg::PixelFormat::RGB,
    };
    turbojpeg::compress(img, 90, turbojpeg::Subsamp::Sub2x2)
        .unwrap()
        .to_vec()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn image_folder_uses_timms_natural_order_and_split_search() {
    let tmp = tempfile::tempdir().unwrap();
    let val = tmp.path().join("val");
    for (class, files) in [
        ("n10", &["b.JPEG"][..]),
        ("n2", &["img10.jpg", "img9.JPG", "notes.txt"][..]),
        ("n01", &["x.png"][..]),
    ] {
        for f in files {
            write(&val.join(class).join(f), &jpeg(8, 8, 1));
        }
    }
    std::fs::create_dir_all(tmp.path().join("train")).unwrap();
    // The dataset root (train/ + val/) is searched for val/, as timm's `_search_split` does.
    let ds = Dataset::open(tmp.path()).unwrap();
    assert_eq!(ds.layout, Layout::ImageFolder);
    assert_eq!(ds.classes, ["n01", "n2", "n10"]);
    let ids: Vec<(&str, usize)> = ds
        .samples
        .iter()
        .map(|s| (s.id.as_str(), s.label))
        .collect();
    assert_eq!(
        ids,
        [
            ("n01/x.png", 0),
            ("n2/img9.JPG", 1),
            ("n2/img10.jpg", 1),
            ("n10/b.JPEG", 2)
        ]
    );
    let m = ds.manifest();
    assert_eq!((m.images, m.classes), (4, 3));
    assert_eq!(
        m,
        Dataset::open(&val).unwrap().manifest(),
        "the same set from val/ directly"
    );
    // Relabelling changes the manifest.
    std::fs::rename(val.join("n10"), val.join("n00")).unwrap();
    assert_ne!(
        Dataset::open(&val).unwrap().manifest().listing_sha256,
        m.listing_sha256
    );
}

#[test]
fn imagenet_v2_folders_are_class_indices() {
    let tmp = tempfile::tempdir().unwrap();
    for class in ["0", "2", "10", "100"] {
        write(&tmp.path().join(class).join("a.jpeg"), &jpeg(8, 8, 2));
    }
    let ds = Dataset::open(tmp.path()).unwrap();
    assert_eq!(ds.layout, Layout::ImageNetV2);
    let labels: Vec<usize> = ds.samples.iter().map(|s| s.label).collect();
    // A string sort would give 0, 10, 100, 2; timm's natural sort on a partial set 0, 1, 2, 3.
    assert_eq!(labels, [0, 2, 10, 100]);
    assert_eq!(ds.classes.len(), 1000);
}

#[test]
fn kaggle_layout_reads_loc_val_solution_and_names_missing_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let val = root.join("ILSVRC/Data/CLS-LOC/val");
    for i in 1..=3 {
        write(
            &val.join(format!("ILSVRC2012_val_{i:08}.JPEG")),
            &jpeg(8, 8, i as u8),
        );
    }
    let csv = root.join("LOC_val_solution.csv");
    write(
        &root.join("LOC_synset_mapping.txt"),
        b"n01440764 tench, Tinca tinca\nn01443537 goldfish\nn01484850 great white shark\n",
    );
    write(
        &csv,
        b"ImageId,PredictionString\nILSVRC2012_val_00000002,n01484850 1 2 3 4 n01484850 5 6 7 8\nILSVRC2012_val_00000001,n01443537 1 2 3 4\nILSVRC2012_val_00000003,n01440764 0 0 5 5\n",
    );
    for path in [root.to_path_buf(), val.clone()] {
        let ds = Dataset::open(&path).unwrap();
        assert_eq!(ds.layout, Layout::Kaggle);
        let labels: Vec<(String, usize)> =
            ds.samples.iter().map(|s| (s.id.clone(), s.label)).collect();
        assert_eq!(
            labels,
            [
                ("ILSVRC2012_val_00000001.JPEG".to_string(), 1),
                ("ILSVRC2012_val_00000002.JPEG".to_string(), 2),
                ("ILSVRC2012_val_00000003.JPEG".to_string(), 0)
            ]
        );
    }
    // A label file for another image count.
    write(&val.join("ILSVRC2012_val_00000004.JPEG"), &jpeg(8, 8, 4));
    let e = Dataset::open(root).unwrap_err();
    assert!(
        matches!(
            e,
            DatasetError::LabelCount {
                labels: 3,
                images: 4,
                ..
            }
        ),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("LOC_val_solution.csv: labels 3 images, but ") && msg.ends_with("val holds 4"),
        "{msg}"
    );
    // A missing label names the image and the file.
    std::fs::remove_file(val.join("ILSVRC2012_val_00000003.JPEG")).unwrap();
    let e = Dataset::open(root).unwrap_err().to_string();
    assert!(
        e.contains("ILSVRC2012_val_00000004.JPEG: no label in ")
            && e.contains("LOC_val_solution.csv"),
        "{e}"
    );
    // A malformed line names its line.
    write(
        &csv,
        b"ImageId,PredictionString\nILSVRC2012_val_00000001,xyz 1 2\n",
    );
    let e = Dataset::open(root).unwrap_err().to_string();
    assert!(
        e.contains("LOC_val_solution.csv:2: the first token of PredictionString is not a wnid"),
        "{e}"
    );
}

/// A devkit ground-truth file consistent with the ImageNet-1k validation labels: class `c`
/// (sorted-wnid order) gets the ILSVRC2012_ID `perm(c)`, a bijection unlike the sorted order, as
/// `meta.mat`'s is.
fn ground_truth(lines: usize, edit: impl Fn(usize, u32) -> u32) -> Vec<u8> {
    use zoo::eval::imagenet::val_label;
    let id = |c: usize| ((c * 7 + 3) % 1000 + 1) as u32;
    let mut out = String::new();
    for n in 1..=lines {
        let c = val_label(n).unwrap_or(0);
        out.push_str(&format!("{}\n", edit(n, id(c))));
    }
    out.into_bytes()
}

#[test]
fn devkit_flat_layout_is_labelled_by_the_shipped_map_and_cross_checked() {
    use zoo::eval::imagenet::synsets;
    let tmp = tempfile::tempdir().unwrap();
    let val = tmp.path().join("val");
    // The first five validation images: n01751748, n09193705, n02105855, n04263257, n03125729.
    for n in 1..=5u8 {
        write(
            &val.join(format!("ILSVRC2012_val_{n:08}.JPEG")),
            &jpeg(8, 8, n),
        );
    }
    let wnids = |ds: &Dataset| -> Vec<String> {
        ds.samples
            .iter()
            .map(|s| ds.classes[s.label].clone())
            .collect()
    };
    let expected = [
        "n01751748",
        "n09193705",
        "n02105855",
        "n04263257",
        "n03125729",
    ];
    // Without a ground-truth file: the shipped labels.
    let ds = Dataset::open(&val).unwrap();
    assert_eq!(ds.layout, Layout::Devkit);
    assert_eq!(ds.classes, synsets());
    assert_eq!(wnids(&ds), expected);
    assert_eq!(ds.samples[0].id, "ILSVRC2012_val_00000001.JPEG");
    assert_eq!(ds.label_file, None);
    // With the devkit's file: labels from its IDs, the ID → wnid map derived and checked.
    let gt = tmp
        .path()
        .join("ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt");
    write(&gt, &ground_truth(50_000, |_, id| id));
    let ds = Dataset::open(&val).unwrap();
    assert_eq!(wnids(&ds), expected);
    assert_eq!(ds.label_file.as_deref(), Some(gt.as_path()));
    // Line 3 carries line 1's ID: an error naming the line and both wnids.
    let first = ground_truth(1, |_, id| id);
    let first: u32 = std::str::from_utf8(&first).unwrap().trim().parse().unwrap();
    write(
        &gt,
        &ground_truth(50_000, |n, id| if n == 3 { first } else { id }),
    );
    let e = Dataset::open(&val).unwrap_err();
    assert!(
        matches!(e, DatasetError::GroundTruthMismatch { line: 3, .. }),
        "{e}"
    );
    let e = e.to_string();
    assert!(
        e.contains("ILSVRC2012_validation_ground_truth.txt:3: ILSVRC2012_ID")
            && e.contains("would be n02105855 here but was n01751748 on line 1"),
        "{e}"
    );
    // A file for a different image count.
    write(&gt, &ground_truth(49_999, |_, id| id));
    let e = Dataset::open(&val).unwrap_err().to_string();
    assert!(
        e.contains("ILSVRC2012_validation_ground_truth.txt: labels 49999 images")
            && e.contains("holds 50000"),
        "{e}"
    );
    // Not an ID.
    write(&gt, b"490\nx\n");
    let e = Dataset::open(&val).unwrap_err().to_string();
    assert!(
        e.contains("ground_truth.txt:2: expected an ILSVRC2012_ID"),
        "{e}"
    );
    std::fs::remove_dir_all(tmp.path().join("ILSVRC2012_devkit_t12")).unwrap();
    // A flat folder holding an image that is not a validation image.
    write(&val.join("holiday.jpg"), &jpeg(8, 8, 9));
    let e = Dataset::open(&val).unwrap_err().to_string();
    assert!(e.contains("holiday.jpg: no label in"), "{e}");
    std::fs::remove_file(val.join("holiday.jpg")).unwrap();
    write(&val.join("ILSVRC2012_val_00050001.JPEG"), &jpeg(8, 8, 9));
    let e = Dataset::open(&val).unwrap_err().to_string();
    assert!(
        e.contains("ILSVRC2012_val_00050001.JPEG: no label in"),
        "{e}"
    );
}

/// A webdataset shard: `<key>.jpg` + `<key>.cls` (+ a `.json` that is ignored).
pub fn shard(path: &Path, samples: &[(&str, Vec<u8>, Option<usize>)]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut add = |name: String, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    for (key, img, cls) in samples {
        add(format!("{key}.jpg"), img);
        if let Some(c) = cls {
            add(format!("{key}.cls"), c.to_string().as_bytes());
        }
        add(format!("{key}.json"), b"{}");
    }
    b.finish().unwrap();
}

#[test]
fn webdataset_shards_are_read_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (a, b, c) = (jpeg(9, 7, 1), jpeg(5, 11, 2), jpeg(16, 16, 3));
    shard(
        &dir.join("imagenet1k-validation-0001.tar"),
        &[("s3", c.clone(), Some(999))],
    );
    shard(
        &dir.join("imagenet1k-validation-0000.tar"),
        &[("s1", a.clone(), Some(7)), ("s2", b.clone(), Some(0))],
    );
    let ds = Dataset::open(dir).unwrap();
    assert_eq!(ds.layout, Layout::WebDataset);
    let got: Vec<(&str, usize)> = ds
        .samples
        .iter()
        .map(|s| (s.id.as_str(), s.label))
        .collect();
    assert_eq!(
        got,
        [
            ("imagenet1k-validation-0000.tar:s1", 7),
            ("imagenet1k-validation-0000.tar:s2", 0),
            ("imagenet1k-validation-0001.tar:s3", 999)
        ]
    );
    assert!(matches!(ds.samples[0].location, Location::Tar { .. }));
    assert_eq!(ds.read(&ds.samples[0]).unwrap(), a);
    assert_eq!(ds.read(&ds.samples[1]).unwrap(), b);
    assert_eq!(ds.read(&ds.samples[2]).unwrap(), c);
    // One shard as a file.
    assert_eq!(
        Dataset::open(&dir.join("imagenet1k-validation-0001.tar"))
            .unwrap()
            .samples
            .len(),
        1
    );
    // A sample without .cls is an error naming shard and key.
    shard(
        &dir.join("imagenet1k-validation-0001.tar"),
        &[("s3", c, None)],
    );
    let e = Dataset::open(dir).unwrap_err().to_string();
    assert!(
        e.contains("imagenet1k-validation-0001.tar:s3: no label in") && e.contains("s3.cls"),
        "{e}"
    );
}

#[test]
fn truncated_and_unreadable_images_are_errors_naming_the_image() {
    let good = jpeg(40, 30, 5);
    assert_eq!(decode(&good, "ok.jpg").unwrap().width, 40);
    let cut = &good[..good.len() * 2 / 3];
    let e = decode(cut, "val/n01/cut.JPEG").unwrap_err();
    assert!(matches!(e, zoo::eval::EvalError::Truncated { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("val/n01/cut.JPEG: truncated image ("),
        "{e}"
    );
    let e = decode(b"\xFF\xD8\xFF\xE0garbage", "val/n01/bad.JPEG")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("val/n01/bad.JPEG: "), "{e}");
    let e = decode(b"hello", "val/n01/text.JPEG")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("val/n01/text.JPEG: not a JPEG or PNG"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// The evaluation loop and `zoo eval`

use zoo::eval::dataset::Selection;
use zoo::eval::run::{evaluate, RunError, RunOptions};

/// A 10-class ImageFolder of generated JPEGs (`class<k>/<i>.jpg`, 3 per class).
fn ten_class_folder(dir: &Path) {
    for k in 0..10u8 {
        for i in 0..3u8 {
            write(
                &dir.join(format!("class{k}/{i}.jpg")),
                &jpeg(20 + 7 * usize::from(i), 30 + usize::from(k), k * 25 + i),
            );
        }
    }
}

/// A stand-in classifier over `classes` classes: class = (mean of the red plane · classes) mod
/// classes, as logits; the others ranked by index.
fn stand_in_classifier(classes: usize, data: &[f32], n: usize) -> Result<Vec<f32>, String> {
    let per = data.len() / n;
    Ok(data
        .chunks_exact(per)
        .flat_map(|img| {
            let red = &img[..per / 3];
            let m = red.iter().sum::<f32>() / red.len() as f32;
            let c = ((m.abs() * classes as f32) as usize) % classes;
            (0..classes).map(move |j| {
                if j == c {
                    1.0
                } else {
                    -(j as f32) / (10 * classes) as f32
                }
            })
        })
        .collect())
}

/// [`stand_in_classifier`] over 10 classes.
fn fake_classifier(data: &[f32], n: usize) -> Result<Vec<f32>, String> {
    stand_in_classifier(10, data, n)
}

#[test]
fn evaluation_loop_counts_the_same_with_any_worker_count_and_lists_bad_images() {
    let tmp = tempfile::tempdir().unwrap();
    ten_class_folder(tmp.path());
    let ds = Dataset::open(tmp.path()).unwrap();
    let t = EvalTransform::new(16, 0.875, MEAN, STD).unwrap();
    let all = Selection::All.indices(&ds.samples).unwrap();
    let run = |workers, batch_size, skip_bad| {
        let opts = RunOptions {
            batch_size,
            workers,
            skip_bad,
            keep_predictions: true,
            real: None,
        };
        evaluate(&ds, &all, &t, 10, &opts, fake_classifier, |_| {})
    };
    let one = run(1, 4, false).unwrap();
    let many = run(3, 4, false).unwrap();
    assert_eq!(one.n, 30);
    assert_eq!(
        (one.top1, one.top5, &one.content_sha256),
        (many.top1, many.top5, &many.content_sha256)
    );
    assert_eq!(one.predictions, many.predictions);
    assert_eq!(one.predictions[0].image, "class0/0.jpg");
    assert!(one.top5 >= one.top1);
    // A truncated image stops the run, naming it; --skip-bad counts and lists it.
    let victim = tmp.path().join("class3/1.jpg");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 2]).unwrap();
    let ds = Dataset::open(tmp.path()).unwrap();
    let opts = RunOptions {
        batch_size: 4,
        workers: 2,
        skip_bad: false,
        keep_predictions: false,
        real: None,
    };
    let e = evaluate(&ds, &all, &t, 10, &opts, fake_classifier, |_| {}).unwrap_err();
    assert!(matches!(e, RunError::Image(_)), "{e}");
    assert!(
        e.to_string().starts_with("class3/1.jpg: truncated image")
            && e.to_string()
                .contains("unless such images are to be counted and listed")
            && !e.to_string().contains("--"),
        "{e}"
    );
    let opts = RunOptions {
        skip_bad: true,
        ..opts
    };
    let skipped = evaluate(&ds, &all, &t, 10, &opts, fake_classifier, |_| {}).unwrap();
    assert_eq!(skipped.n, 29);
    assert_eq!(skipped.bad.len(), 1);
    assert_eq!(skipped.bad[0].image, "class3/1.jpg");
    assert_ne!(skipped.content_sha256, one.content_sha256);
}

#[cfg(not(feature = "torch"))]
#[test]
fn zoo_eval_without_libtorch_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    ten_class_folder(tmp.path());
    let registry = fixture("registry-tiny");
    let weights = fixture("efficientnet-tiny/tf_efficientnet_tiny.safetensors");
    let (code, _, err) = crate::zoo(&[
        "--registry",
        registry.to_str().unwrap(),
        "eval",
        "tiny",
        "--weights",
        weights.to_str().unwrap(),
        "--dataset",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("built without libtorch"), "{err}");
}

#[test]
fn zoo_eval_dataset_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        &tmp.path().join("ILSVRC2012_val_00000001.JPEG"),
        &jpeg(8, 8, 1),
    );
    write(
        &tmp.path().join("LOC_val_solution.csv"),
        b"ImageId,PredictionString\nILSVRC2012_val_00000002,n01440764 1 2 3 4\n",
    );
    let registry = fixture("registry-tiny");
    let weights = fixture("efficientnet-tiny/tf_efficientnet_tiny.safetensors");
    let (code, _, err) = crate::zoo(&[
        "--registry",
        registry.to_str().unwrap(),
        "eval",
        "tiny",
        "--weights",
        weights.to_str().unwrap(),
        "--dataset",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("ILSVRC2012_val_00000001.JPEG: no label in")
            && err.contains("LOC_val_solution.csv"),
        "{err}"
    );
}

#[cfg(feature = "torch")]
#[test]
#[ignore = "needs ZOO_PYTHON (python with torch/timm); `make test` runs it"]
fn zoo_eval_top5_equals_timms_per_image() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pth = fixture("efficientnet-tiny/tf_efficientnet_tiny.pth");
    run_python("eval_predictions.py", &[dir, &pth]);
    let timm: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("timm.json")).unwrap()).unwrap();
    let registry = fixture("registry-tiny");
    let preds = dir.join("zoo.jsonl");
    let val = dir.join("val");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "--registry",
            registry.to_str().unwrap(),
            "eval",
            "tiny",
            "--weights",
            pth.to_str().unwrap(),
            "--dataset",
            val.to_str().unwrap(),
            "--batch-size",
            "8",
            "--predictions",
            preds.to_str().unwrap(),
            "--json",
        ];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        crate::zoo(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (code, out, err) = run(&[]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let r = &report[0];
    assert_eq!(r["outcome"]["n"], timm["n"]);
    assert_eq!(r["outcome"]["top1"], timm["top1"], "top-1 count");
    assert_eq!(r["outcome"]["top5"], timm["top5"], "top-5 count");
    let ours: Vec<serde_json::Value> = std::fs::read_to_string(&preds)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let theirs = timm["images"].as_array().unwrap();
    assert_eq!(ours.len(), theirs.len());
    for (o, t) in ours.iter().zip(theirs) {
        assert_eq!(o["image"], t["image"]);
        assert_eq!(o["label"], t["label"], "{}", o["image"]);
        assert_eq!(
            o["top5"], t["top5"],
            "{}: timm logits {}",
            o["image"], t["logits"]
        );
    }
    assert!(
        r["verdict_skipped"]
            .as_str()
            .unwrap()
            .contains("not the 50,000"),
        "{r}"
    );
    // A truncated image: an error naming it, or (--skip-bad) counted and listed.
    let victim = val.join("class4/0.jpg");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 2]).unwrap();
    let (code, _, err) = run(&[]);
    assert_eq!(code, 2);
    assert!(err.contains("class4/0.jpg: truncated image"), "{err}");
    assert!(
        err.contains("hint: --skip-bad counts and lists such images instead"),
        "{err}"
    );
    let (code, out, err) = run(&["--skip-bad"]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r[0]["outcome"]["n"], 39);
    assert_eq!(r[0]["outcome"]["bad"][0]["image"], "class4/0.jpg");
    // timm's results-CSV columns.
    std::fs::write(&victim, &bytes).unwrap();
    let mut a = args(&["--csv"]);
    a.retain(|s| s != "--json");
    let (code, out, err) = crate::zoo(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("model,top1,top1_err,top5,top5_err,param_count,img_size,crop_pct,interpolation")
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("efficientnet_tiny,") && row.ends_with(",0.03,64,1,bicubic"),
        "{row}"
    );
}

/// The same per-image parity with a full-width `tf_efficientnet_b0` (seeded random weights and
/// BatchNorm statistics, 1000 classes) evaluated as the registry's `b0_ns` at 224, crop 0.875:
/// every block of the real architecture, timm's own input config, and the 1000-way top-5.
#[cfg(feature = "torch")]
#[test]
#[ignore = "needs ZOO_PYTHON (python with torch/timm); `make test` runs it"]
fn zoo_eval_top5_equals_timms_per_image_with_a_full_width_b0() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pth = dir.join("tf_efficientnet_b0_random.pth");
    run_python("eval_predictions.py", &[dir, &pth, Path::new("b0")]);
    let timm: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("timm.json")).unwrap()).unwrap();
    let preds = dir.join("zoo.jsonl");
    let val = dir.join("val");
    let (code, out, err) = crate::zoo(&[
        "eval",
        "b0_ns",
        "--weights",
        pth.to_str().unwrap(),
        "--dataset",
        val.to_str().unwrap(),
        "--batch-size",
        "8",
        "--predictions",
        preds.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let outcome = &report[0]["outcome"];
    assert_eq!(outcome["n"], timm["n"]);
    assert_eq!(outcome["top1"], timm["top1"], "top-1 count");
    assert_eq!(outcome["top5"], timm["top5"], "top-5 count");
    let ours: Vec<serde_json::Value> = std::fs::read_to_string(&preds)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let theirs = timm["images"].as_array().unwrap();
    assert_eq!(ours.len(), 40);
    assert_eq!(ours.len(), theirs.len());
    for (o, t) in ours.iter().zip(theirs) {
        assert_eq!(o["image"], t["image"]);
        assert_eq!(o["top5"], t["top5"], "{}", o["image"]);
    }
}

// ---------------------------------------------------------------------------------------------
// ImageNet-ReaL, shards

use zoo::eval::imagenet::RealLabels;
use zoo::eval::model::{merge_shards, shard_range, EvalReport, ShardMergeError};
use zoo::report::Shard;

/// A flat devkit folder of the first `n` validation images.
fn devkit_folder(dir: &Path, n: usize) {
    for i in 1..=n {
        write(
            &dir.join(format!("ILSVRC2012_val_{i:08}.JPEG")),
            &jpeg(12 + i % 7, 14 + i % 5, i as u8),
        );
    }
}

/// [`stand_in_classifier`] over ImageNet's 1000 classes.
fn thousand_class_classifier(data: &[f32], n: usize) -> Result<Vec<f32>, String> {
    stand_in_classifier(1000, data, n)
}

#[test]
fn real_labels_count_as_timm_does_and_refuse_another_image_count() {
    let tmp = tempfile::tempdir().unwrap();
    let val = tmp.path().join("val");
    devkit_folder(&val, 6);
    let ds = Dataset::open(&val).unwrap();
    let t = EvalTransform::new(16, 0.875, MEAN, STD).unwrap();
    let all = Selection::All.indices(&ds.samples).unwrap();
    // First the predictions, to build ReaL sets around them.
    let mut opts = RunOptions {
        batch_size: 4,
        workers: 2,
        skip_bad: false,
        keep_predictions: true,
        real: None,
    };
    let plain = evaluate(
        &ds,
        &all,
        &t,
        1000,
        &opts,
        thousand_class_classifier,
        |_| {},
    )
    .unwrap();
    let p = &plain.predictions;
    // Image 1: its top-1 is in the set; 2: only its 3rd guess; 3: empty set (left out);
    // 4: none of its top-5; 5 and 6: the top-1 among others.
    let mut sets = vec![Vec::<usize>::new(); 50_000];
    sets[0] = vec![p[0].top5[0]];
    sets[1] = vec![p[1].top5[2], 999 - p[1].top5[0].min(998)];
    sets[3] = vec![(0..1000).find(|c| !p[3].top5.contains(c)).unwrap()];
    sets[4] = vec![1, p[4].top5[0]];
    sets[5] = vec![p[5].top5[0], 7];
    let json = tmp.path().join("real.json");
    std::fs::write(&json, serde_json::to_vec(&sets).unwrap()).unwrap();
    let real = RealLabels::read(&json).unwrap();
    opts.real = Some(std::sync::Arc::new(real.for_samples(&ds.samples).unwrap()));
    let o = evaluate(
        &ds,
        &all,
        &t,
        1000,
        &opts,
        thousand_class_classifier,
        |_| {},
    )
    .unwrap();
    let r = o.real.unwrap();
    assert_eq!((r.n, r.top1, r.top5), (5, 3, 4));
    assert_eq!((o.n, o.top1, o.top5), (plain.n, plain.top1, plain.top5));
    // A label file for another image count, and a sample without a validation image name.
    std::fs::write(&json, serde_json::to_vec(&sets[..49_999]).unwrap()).unwrap();
    let e = RealLabels::read(&json).unwrap_err().to_string();
    assert!(
        e.contains("real.json: labels 49999 images") && e.contains("50000"),
        "{e}"
    );
    sets[2] = vec![1000];
    std::fs::write(&json, serde_json::to_vec(&sets).unwrap()).unwrap();
    let e = RealLabels::read(&json).unwrap_err().to_string();
    assert!(
        e.contains("real.json") && e.contains("image 3") && e.contains("0..1000"),
        "{e}"
    );
    sets[2] = vec![];
    std::fs::write(&json, serde_json::to_vec(&sets).unwrap()).unwrap();
    let folder = tmp.path().join("folder");
    ten_class_folder(&folder);
    let other = Dataset::open(&folder).unwrap();
    let e = RealLabels::read(&json)
        .unwrap()
        .for_samples(&other.samples)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "class0/0.jpg (ReaL labels are found by the ILSVRC2012_val_<number> name): no label in"
        ),
        "{e}"
    );
}

/// The report of evaluating `shard` of `ds` with the stand-in classifier, as `eval_model` builds
/// it.
fn shard_report(ds: &Dataset, shard: Shard, skip_bad: bool) -> EvalReport {
    let t = EvalTransform::new(16, 0.875, MEAN, STD).unwrap();
    let all = Selection::All.indices(&ds.samples).unwrap();
    let part = all[shard_range(all.len(), shard)].to_vec();
    let opts = RunOptions {
        batch_size: 4,
        workers: 2,
        skip_bad,
        keep_predictions: true,
        real: None,
    };
    let outcome = evaluate(ds, &part, &t, 10, &opts, fake_classifier, |_| {}).unwrap();
    let mut r = EvalReport {
        model: "tiny".into(),
        weights: "w.safetensors".into(),
        param_count: 0.03,
        dataset: ds.root.clone(),
        manifest: ds.manifest(),
        selection: Selection::All,
        shard,
        real_labels: None,
        transform: t,
        device: zoo::eval::model::Device::Cpu,
        half: false,
        batch_size: 4,
        zoo_version: env!("CARGO_PKG_VERSION").into(),
        pipeline_version: zoo::eval::model::PIPELINE_VERSION.into(),
        outcome,
        top1: 0.0,
        top5: 0.0,
        real_top1: None,
        real_top5: None,
        documented: vec![],
        verdicts: vec![],
        verdict_skipped: None,
    };
    r.conclude();
    r
}

#[test]
fn shards_merge_into_exactly_the_unsharded_result_and_name_a_missing_or_repeated_one() {
    let tmp = tempfile::tempdir().unwrap();
    ten_class_folder(tmp.path());
    // One unreadable image, so bad-image lists merge too.
    let victim = tmp.path().join("class5/2.jpg");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 3]).unwrap();
    let ds = Dataset::open(tmp.path()).unwrap();
    let whole = shard_report(&ds, Shard::ALL, true);
    let s = |k| shard_report(&ds, Shard { index: k, count: 3 }, true);
    let (a, b, c) = (s(1), s(2), s(3));
    assert_eq!(a.outcome.n + b.outcome.n + c.outcome.n, whole.outcome.n);
    assert!(a.verdict_skipped.as_deref().unwrap().contains("shard 1/3"));
    // Through the report file (gzip) and back, in any order.
    let files: Vec<PathBuf> = [&c, &a, &b]
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let p = tmp.path().join(format!("s{i}.json.gz"));
            zoo::eval::report_file::write(&p, &[(*r).clone()]).unwrap();
            assert_eq!(std::fs::read(&p).unwrap()[..2], [0x1f, 0x8b]);
            p
        })
        .collect();
    let back: Vec<EvalReport> = files
        .iter()
        .flat_map(|p| zoo::eval::report_file::read(p).unwrap().unwrap().reports)
        .collect();
    let mut merged = merge_shards(back).unwrap();
    let mut expected = whole.clone();
    merged.outcome.seconds = 0.0;
    expected.outcome.seconds = 0.0;
    assert_eq!(merged, expected);
    assert_eq!(merged.outcome.bad.len(), 1);
    assert_eq!(merged.outcome.bad[0].image, "class5/2.jpg");
    // A missing and a repeated shard are errors naming them.
    let e = merge_shards(vec![a.clone(), c.clone()]).unwrap_err();
    assert!(matches!(e, ShardMergeError::Missing { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "tiny: shard 2/3 missing: the merge would not cover the selection"
    );
    let e = merge_shards(vec![a.clone(), b.clone(), b.clone(), c.clone()]).unwrap_err();
    assert_eq!(e.to_string(), "tiny: shard 2/3 given twice");
    let mut other = b.clone();
    other.manifest.listing_sha256 = "0".repeat(64);
    let e = merge_shards(vec![a, other, c]).unwrap_err().to_string();
    assert!(
        e.contains("shard 2/3: the dataset listing differs from shard 1/3's"),
        "{e}"
    );
}

#[test]
fn vanished_and_garbage_images_are_named_or_counted_and_listed_with_skip_bad() {
    let tmp = tempfile::tempdir().unwrap();
    ten_class_folder(tmp.path());
    let ds = Dataset::open(tmp.path()).unwrap();
    // After listing: one file disappears (unreadable), one becomes garbage of the same size.
    std::fs::remove_file(tmp.path().join("class2/0.jpg")).unwrap();
    let garbage = tmp.path().join("class7/2.jpg");
    let len = std::fs::metadata(&garbage).unwrap().len() as usize;
    std::fs::write(&garbage, vec![0x42u8; len]).unwrap();
    let t = EvalTransform::new(16, 0.875, MEAN, STD).unwrap();
    let all = Selection::All.indices(&ds.samples).unwrap();
    let mut opts = RunOptions::new(4, 2);
    let e = evaluate(&ds, &all, &t, 10, &opts, fake_classifier, |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("class2/0.jpg")
            || e.contains("class7/2.jpg: not a JPEG or PNG (first bytes 42424242"),
        "{e}"
    );
    opts.skip_bad = true;
    let o = evaluate(&ds, &all, &t, 10, &opts, fake_classifier, |_| {}).unwrap();
    assert_eq!(o.n, 28);
    let bad: Vec<(&str, &str)> = o
        .bad
        .iter()
        .map(|b| (b.image.as_str(), b.error.as_str()))
        .collect();
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert_eq!(bad[0].0, "class2/0.jpg");
    assert!(
        bad[0].1.contains("class2/0.jpg") && bad[0].1.contains("No such file"),
        "{bad:?}"
    );
    assert_eq!(bad[1].0, "class7/2.jpg");
    assert!(bad[1].1.contains("not a JPEG or PNG"), "{bad:?}");
}

/// `zoo --registry <registry-tiny> eval tiny --weights WEIGHTS --dataset DATASET EXTRA…`.
fn zoo_eval_tiny(weights: &Path, dataset: &Path, extra: &[&str]) -> (i32, String, String) {
    let registry = fixture("registry-tiny");
    let mut a = vec![
        "--registry",
        registry.to_str().unwrap(),
        "eval",
        "tiny",
        "--weights",
        weights.to_str().unwrap(),
        "--dataset",
        dataset.to_str().unwrap(),
    ];
    a.extend_from_slice(extra);
    crate::zoo(&a)
}

/// Weights of another architecture: the error says which architecture they fit, and the hint
/// names only what `zoo eval` takes (no `--arch`, which eval does not have).
#[cfg(feature = "torch")]
#[test]
fn zoo_eval_with_the_weights_of_another_architecture_hints_in_evals_own_words() {
    let tmp = tempfile::tempdir().unwrap();
    ten_class_folder(tmp.path());
    let weights = fixture("efficientnet-tiny/tf_efficientnet_tiny.safetensors");
    let (code, _, err) = crate::zoo(&[
        "eval",
        "b0_ns",
        "--weights",
        weights.to_str().unwrap(),
        "--dataset",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("the checkpoint fits `"), "{err}");
    assert!(!err.contains("--arch"), "{err}");
    assert!(err.contains("hint: the weights are `"), "{err}");
}

#[test]
fn zoo_eval_on_a_missing_gpu_or_half_on_cpu_is_a_clear_error() {
    if zoo::torch::cuda_devices() > 0 {
        return; // a GPU machine: --device cuda just works there
    }
    let tmp = tempfile::tempdir().unwrap();
    ten_class_folder(tmp.path());
    let weights = fixture("efficientnet-tiny/tf_efficientnet_tiny.safetensors");
    let run = |extra: &[&str]| zoo_eval_tiny(&weights, tmp.path(), extra);
    for (extra, expected) in [
        (&["--device", "cuda"][..], "--device cuda:0: libtorch sees 0 CUDA device(s) (no GPU or driver here); use --device cpu"),
        (&["--device", "cuda:1"][..], "--device cuda:1: libtorch sees 0 CUDA device(s)"),
        (&["--half"][..], "--half: float16 inference needs --device cuda"),
    ] {
        let (code, _, err) = run(extra);
        assert_eq!(code, 2, "{err}");
        if cfg!(feature = "torch") {
            assert!(err.contains(expected), "{extra:?}: {err}");
        } else {
            assert!(err.contains("built without libtorch"), "{err}");
        }
    }
    let (code, _, err) = run(&["--device", "gpu"]);
    assert_eq!(code, 2);
    assert!(err.contains("`gpu`: expected cpu, cuda or cuda:N"), "{err}");
}

/// `zoo eval --shard K/3 --report` three times, then `zoo report merge`: the totals, bad-image
/// list, content hash and per-image predictions of the unsharded run, exactly.
#[cfg(feature = "torch")]
#[test]
fn zoo_eval_shards_merge_to_the_unsharded_run() {
    let tmp = tempfile::tempdir().unwrap();
    let val = tmp.path().join("val");
    ten_class_folder(&val);
    let victim = val.join("class6/1.jpg");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 2]).unwrap();
    let weights = fixture("efficientnet-tiny/tf_efficientnet_tiny.safetensors");
    let eval = |extra: &[&str]| {
        let mut a = vec!["--batch-size", "4", "--skip-bad", "--json"];
        a.extend_from_slice(extra);
        let (code, out, err) = zoo_eval_tiny(&weights, &val, &a);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    let whole_file = tmp.path().join("whole.json.gz");
    let whole = eval(&["--report", whole_file.to_str().unwrap()]);
    let mut files = vec![];
    for k in 1..=3 {
        let f = tmp.path().join(format!("s{k}.json.gz"));
        let part = eval(&[
            "--shard",
            &format!("{k}/3"),
            "--report",
            f.to_str().unwrap(),
        ]);
        assert_eq!(part[0]["shard"]["index"], k);
        files.push(f.to_str().unwrap().to_string());
    }
    let merge = |fs: &[&str]| {
        let mut a = vec!["report", "merge", "--json"];
        a.extend_from_slice(fs);
        crate::zoo(&a)
    };
    let (code, out, err) = merge(&[&files[2], &files[0], &files[1]]);
    assert_eq!(code, 0, "{err}");
    let merged: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (m, w) = (&merged[0], &whole[0]);
    for key in ["n", "top1", "top5", "bad", "content_sha256"] {
        assert_eq!(m["outcome"][key], w["outcome"][key], "{key}");
    }
    assert_eq!(m["outcome"]["bad"][0]["image"], "class6/1.jpg");
    assert_eq!(m["shard"]["count"], 1);
    // The per-image predictions equal those of the unsharded report file.
    let whole_preds = zoo::eval::report_file::read(&whole_file)
        .unwrap()
        .unwrap()
        .reports[0]
        .outcome
        .predictions
        .clone();
    assert_eq!(whole_preds.len(), 29);
    let merged_preds: Vec<zoo::eval::run::Prediction> =
        serde_json::from_value(m["outcome"]["predictions"].clone()).unwrap();
    assert_eq!(merged_preds, whole_preds);
    // Missing or repeated: exit 1, naming the shard.
    let (code, _, err) = merge(&[&files[0], &files[2]]);
    assert_eq!(code, 1);
    assert!(
        err.contains("efficientnet_tiny: shard 2/3 missing"),
        "{err}"
    );
    let (code, _, err) = merge(&[&files[0], &files[1], &files[1], &files[2]]);
    assert_eq!(code, 1);
    assert!(
        err.contains("efficientnet_tiny: shard 2/3 given twice"),
        "{err}"
    );
    // A shard needs --report.
    let (code, _, err) = zoo_eval_tiny(&weights, &val, &["--shard", "1/3"]);
    assert_eq!(code, 2);
    assert!(err.contains("--shard 1/3: give --report FILE"), "{err}");
}

/// Without `--weights`, `zoo eval` takes the model's registry file through the same verified
/// lookup as convert and validate: offline with an empty cache it says so and how to get the
/// file; from a `file:///` mirror the file is verified into the cache, then evaluated (with
/// libtorch) exactly as the same file given with `--weights`.
#[test]
fn zoo_eval_without_weights_uses_the_registrys_verified_file() {
    let tmp = tempfile::tempdir().unwrap();
    let val = tmp.path().join("val");
    ten_class_folder(&val);
    let cache = tmp.path().join("cache");
    let registry = fixture("registry-tiny");
    let run = |extra: &[&str], offline: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_zoo"));
        cmd.args(["--registry", registry.to_str().unwrap(), "eval", "tiny"])
            .args(["--dataset", val.to_str().unwrap(), "--json"])
            .args(extra)
            .env("ZOO_CACHE", &cache)
            .env_remove("ZOO_OFFLINE");
        if offline {
            cmd.env("ZOO_OFFLINE", "1");
        }
        let out = cmd.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = run(&[], true);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "efficientnet-tiny.tar.gz of efficientnet_tiny (tf-checkpoint) is not in the cache"
        ) && err.contains("zoo fetch efficientnet_tiny --role tf-checkpoint"),
        "{err}"
    );
    // The next steps name eval's own flags, not convert's.
    assert!(
        err.contains("zoo eval efficientnet_tiny --dataset DIR --weights PATH")
            && err.contains("zoo eval efficientnet_tiny --dataset DIR --mirror URL")
            && !err.contains("--from"),
        "{err}"
    );
    let mirror = format!("file://{}/", fixture("efficientnet-tiny").display());
    let (code, out, err) = run(&["--mirror", &mirror], true);
    let cached = std::fs::read_dir(cache.join("v2/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect::<Vec<_>>();
    assert_eq!(
        cached,
        ["f536f9317239e351894faef5e8c1d847202a2028370e014c449d01cc0ef2ebe1"],
        "the registry's sha256 of the file"
    );
    if cfg!(feature = "torch") {
        assert_eq!(code, 0, "{err}");
        let given = fixture("efficientnet-tiny/efficientnet-tiny.tar.gz");
        let (code2, out2, err2) = run(&["--weights", given.to_str().unwrap()], true);
        assert_eq!(code2, 0, "{err2}");
        let counts = |o: &str| {
            let r: serde_json::Value = serde_json::from_str(o).unwrap();
            (
                r[0]["outcome"]["top1"].clone(),
                r[0]["outcome"]["top5"].clone(),
            )
        };
        assert_eq!(counts(&out), counts(&out2));
    } else {
        assert_eq!(code, 2, "{out}{err}");
        assert!(err.contains("torch"), "{err}");
    }
}
