//! `zoo validate`, shards and `zoo report merge` (issue 7).
use std::path::Path;

use crate::{copy_dir, fixture, root};

#[path = "../support/http_server.rs"]
mod http_server;

/// Runs zoo with an isolated, empty cache (and no other caches to reuse), in the crate root.
fn zoo_cached(cache: &Path, args: &[&str]) -> (i32, String, String) {
    zoo_in(root(), cache, args)
}

/// Runs zoo in `cwd` with an isolated, empty cache.
fn zoo_in(cwd: &Path, cache: &Path, args: &[&str]) -> (i32, String, String) {
    crate::zoo_isolated_in(cwd, cache, args)
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// A copy of the repository's registry at `<tmp>/registry`.
fn registry_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&root().join("registry"), &tmp.path().join("registry"));
    tmp
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// The README's main job, in a checkout: all 48 models of `./registry`, offline, exit 0; every
/// check that needs no weights passes or is explained, and the report names the registry it
/// checked. FLOPs and parameters are exact for every model; File Size is exact for the files
/// saved with timm 0.1.18–0.2.1 (the Noisy Student ones) and explained, to the byte, by the
/// module tree of the timm that saved the others; the EdgeTPU es/em accuracy is explained by
/// timm's later change of that block.
#[test]
fn checkout_registry_validates_offline() {
    let cache = tempfile::tempdir().unwrap();
    let (code, out, err) = zoo_cached(cache.path(), &["validate", "--offline", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let r = json(&out);
    assert_eq!(r["registry"]["source"], "registry");
    assert_eq!(r["registry"]["models"], 48);
    assert_eq!(r["shard"], serde_json::json!({"index": 1, "count": 1}));
    assert_eq!(r["models"].as_array().unwrap().len(), 48);
    assert_eq!(r["selected"], r["models"]);
    let results = r["results"].as_array().unwrap();
    let mut cards = 0;
    // The layout each file is explained by, as `validate` names it.
    let layout_of = |model: &str| -> Option<&str> {
        let t2019 = "timm 0.1.1–0.1.14's module tree";
        let t2021 = "timm 0.3–0.4.5's module tree";
        let stripped = "an OrderedDict without `_metadata`";
        match model {
            m if m.ends_with("_ns") || m.starts_with("tf_efficientnet_l2_ns") => None,
            m if m.ends_with("_ap") || m.contains("_cc_") => Some(t2021),
            "tf_efficientnet_b5" | "tf_efficientnet_b7" => Some(t2021),
            "tf_efficientnet_b8" => Some(stripped),
            m if m.contains("lite") || m.contains("mobilenetv3") => Some(stripped),
            _ => Some(t2019),
        }
    };
    let mut explained = 0;
    for x in results {
        let (check, status) = (x["check"].as_str().unwrap(), x["status"].as_str().unwrap());
        let model = x["model"].as_str().unwrap();
        match check {
            "schema" | "input" | "flops" | "params" => assert_eq!(status, "pass", "{x}"),
            "file-size" => match layout_of(model) {
                None => assert_eq!(status, "pass", "{x}"),
                Some(layout) => {
                    explained += 1;
                    assert_eq!(status, "explained", "{x}");
                    assert!(
                        x["detail"].as_str().unwrap().contains(&format!(
                            "the card is exactly a legacy (pre-1.6) torch.save (`Format: pth-legacy`) with {layout}"
                        )),
                        "{x}"
                    );
                }
            },
            "accuracy" if model == "tf_efficientnet_es" || model == "tf_efficientnet_em" => {
                explained += 1;
                assert_eq!(status, "explained", "{x}");
                assert!(x["detail"].as_str().unwrap().contains("666de85c"), "{x}");
            }
            "accuracy" => assert_eq!(status, "pass", "{x}"),
            "docs" => {
                cards += 1;
                assert_eq!(status, "pass", "{x}");
                assert!(
                    x["model"].as_str().unwrap().starts_with("registry/cards/"),
                    "{x}"
                );
            }
            "checksum" | "inference" => {
                assert_eq!(status, "skipped", "{x}");
                assert_eq!(x["detail"], "weights not cached", "{x}");
            }
            _ => assert_ne!(status, "fail", "{x}"),
        }
    }
    assert_eq!(explained, 40);
    // One row per card (7 collection cards, 48 Hub cards), not one per model.
    assert_eq!(cards, 55);
    assert_eq!(
        r["summary"],
        serde_json::json!({"checks": results.len(), "pass": 303, "fail": 0, "pinned": 0, "explained": 40, "skipped": 144})
    );
    let find = |model: &str, check: &str| {
        results
            .iter()
            .find(|x| x["model"] == model && x["check"] == check)
            .unwrap()
            .clone()
    };
    let b7 = find("tf_efficientnet_b7_ns", "params");
    assert!(
        b7["detail"].as_str().unwrap().contains("float artefact"),
        "{b7}"
    );
    assert_eq!(b7["documented"], "66349999");
    let flops = find("tf_efficientnet_l2_ns", "flops");
    assert!(
        flops["detail"]
            .as_str()
            .unwrap()
            .contains("exact under thop-2020 at 800x1019"),
        "{flops}"
    );
    // A file that is not cached has a predicted size, and says so.
    let size = find("tf_efficientnet_b0_ns", "file-size");
    assert_eq!(size["predicted"], true, "{size}");
    let top = find("tf_efficientnet_b0_ns", "accuracy");
    assert!(
        top["detail"].as_str().unwrap().contains(
            "Top 5 Accuracy 94.37% is within 0.3 pp of timm results-imagenet.csv (94.372%)"
        ),
        "{top}"
    );
    // The ReaL and ImageNetV2 numbers (85.020%, 67.740%) are for other label sets: not compared
    // with the card's ImageNet result, and said so.
    assert!(
        top["detail"].as_str().unwrap().contains(
            "Reported results on ImageNet ReaL, ImageNetV2 matched-frequency not compared: \
             the card has no result on those datasets"
        ),
        "{top}"
    );
}

/// Row 1 of the new-user report: in a checkout whose registry was edited, plain `zoo validate`
/// checks that registry (not the one embedded in the binary), from the checkout's root or any
/// directory below it.
#[test]
fn validate_in_a_checkout_checks_its_edited_registry() {
    let tmp = registry_copy();
    let reg = tmp.path().join("registry");
    edit(
        &reg.join("efficientnet/noisy-student.yml"),
        "FLOPs: 883633200",
        "FLOPs: 883633201",
    );
    let cache = tmp.path().join("cache");
    for (cwd, shown) in [
        (tmp.path().to_path_buf(), "registry"),
        (reg.join("efficientnet"), "../../registry"),
    ] {
        let (code, out, err) = zoo_in(&cwd, &cache, &["validate", "--offline"]);
        assert_eq!(code, 1, "{out}{err}");
        assert!(
            out.contains(
                "FAIL tf_efficientnet_b1_ns flops: documented 883633201, measured 883633200"
            ),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "registry: {shown} (found from the working directory), 48 models"
            )),
            "{out}"
        );
    }
}

/// Outside any checkout the embedded registry is checked, and every report says so.
#[test]
fn outside_a_checkout_the_embedded_registry_is_checked_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let junit = tmp.path().join("junit.xml");
    let (code, out, err) = zoo_in(
        tmp.path(),
        &tmp.path().join("cache"),
        &[
            "validate",
            "--offline",
            "--json",
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let embedded = format!("embedded, zoo {}", env!("CARGO_PKG_VERSION"));
    assert_eq!(json(&out)["registry"]["source"], embedded.as_str());
    let x = std::fs::read_to_string(&junit).unwrap();
    assert!(
        x.contains(&format!(
            "<property name=\"registry\" value=\"{embedded}, 48 models\"/>"
        )),
        "{x}"
    );
    let (code, out, _) = zoo_in(
        tmp.path(),
        &tmp.path().join("cache"),
        &["validate", "--offline"],
    );
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!(
            "registry: {embedded}, 48 models; 48 models checked"
        )),
        "{out}"
    );
}

/// `--registry` takes the directory or its `model-index.yml`; any other path is a clear error.
#[test]
fn registry_flag_takes_the_directory_or_its_model_index() {
    let tmp = registry_copy();
    let reg = tmp.path().join("registry");
    let cache = tmp.path().join("cache");
    for given in [reg.clone(), reg.join("model-index.yml")] {
        let (code, out, err) = zoo_in(
            tmp.path(),
            &cache,
            &[
                "--registry",
                given.to_str().unwrap(),
                "validate",
                "--offline",
                "b0_ns",
            ],
        );
        assert_eq!(code, 0, "{out}{err}");
    }
    let card = reg.join("efficientnet/noisy-student.yml");
    let (code, _, err) = zoo_in(
        tmp.path(),
        &cache,
        &["--registry", card.to_str().unwrap(), "list"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is a file, not a registry") && err.contains("zoo check-cards"),
        "{err}"
    );
    let (code, _, err) = zoo_in(
        tmp.path(),
        &cache,
        &["--registry", "no-such-dir", "validate"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--registry no-such-dir: does not exist"),
        "{err}"
    );
}

/// One seeded mistake: in `model`'s entry, the first line starting with `key` gets its value
/// replaced by `to(value)`, or (when `to` is `None`) its key respelt as `respelt`.
struct Seed {
    what: &'static str,
    model: &'static str,
    key: &'static str,
    to: Option<fn(&str) -> String>,
    respelt: &'static str,
}

/// Applies the seed to `text`; returns the new text and the 1-based line and column of the
/// wrong value (or key).
fn seed(text: &str, s: &Seed) -> (String, usize, usize) {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let start = lines
        .iter()
        .position(|l| *l == format!("- Name: {}", s.model))
        .unwrap_or_else(|| panic!("{} not found", s.model));
    let i = (start + 1..lines.len())
        .take_while(|&i| !lines[i].starts_with("- "))
        .find(|&i| lines[i].starts_with(s.key))
        .unwrap_or_else(|| panic!("{} has no {:?}", s.model, s.key));
    let indent = s.key.len() - s.key.trim_start().len();
    let col = match s.to {
        Some(to) => {
            let value = lines[i][s.key.len()..].trim().to_string();
            lines[i] = format!("{} {}", s.key, to(&value));
            s.key.len() + 2
        }
        None => {
            lines[i] = lines[i].replacen(s.key.trim_start(), &format!("{}:", s.respelt), 1);
            indent + 1
        }
    };
    let mut out = lines.join("\n");
    out.push('\n');
    (out, i + 1, col)
}

/// The acceptance test of issue 13: any single wrong value in a checked field of `registry/`
/// (and a misspelt key) fails `zoo validate` with exit 1 and names the value's
/// `file:line:col`, run inside the copy and from outside it with `--registry`.
#[test]
fn every_seeded_mistake_fails_validate_at_its_file_line_col() {
    let seeds = [
        Seed {
            what: "FLOPs",
            model: "tf_efficientnet_b5_ns",
            key: "    FLOPs:",
            to: Some(|v| (v.parse::<u64>().unwrap() + 1000).to_string()),
            respelt: "",
        },
        Seed {
            what: "Parameters",
            model: "tf_efficientnet_b3_ns",
            key: "    Parameters:",
            to: Some(|v| (v.parse::<u64>().unwrap() + 10000).to_string()),
            respelt: "",
        },
        Seed {
            what: "File Size",
            model: "tf_efficientnet_b0_ns",
            key: "    File Size:",
            to: Some(|v| (v.parse::<u64>().unwrap() - 8).to_string()),
            respelt: "",
        },
        Seed {
            what: "Image Size",
            model: "tf_efficientnet_b5_ns",
            key: "    Image Size:",
            to: Some(|_| "'465'".to_string()),
            respelt: "",
        },
        Seed {
            what: "Zoo: Input Image Size",
            model: "tf_efficientnet_b1_ns",
            key: "      Image Size:",
            to: Some(|_| "250".to_string()),
            respelt: "",
        },
        Seed {
            what: "Crop Pct",
            model: "tf_efficientnet_b4_ns",
            key: "    Crop Pct:",
            to: Some(|_| "'0.875'".to_string()),
            respelt: "",
        },
        Seed {
            what: "Interpolation",
            model: "tf_efficientnet_b2_ns",
            key: "    Interpolation:",
            to: Some(|_| "bilinear".to_string()),
            respelt: "",
        },
        Seed {
            what: "Top 1 (digits swapped)",
            model: "tf_efficientnet_b6_ns",
            key: "      Top 1 Accuracy:",
            to: Some(|_| "68.45%".to_string()),
            respelt: "",
        },
        Seed {
            what: "Top 1 (half a point)",
            model: "tf_efficientnet_b7_ns",
            key: "      Top 1 Accuracy:",
            to: Some(|_| "87.33%".to_string()),
            respelt: "",
        },
        Seed {
            what: "Top 5",
            model: "tf_efficientnet_l2_ns",
            key: "      Top 5 Accuracy:",
            to: Some(|_| "98.06%".to_string()),
            respelt: "",
        },
        Seed {
            what: "misspelt Parameters",
            model: "tf_efficientnet_b2_ns",
            key: "    Parameters:",
            to: None,
            respelt: "Paramters",
        },
        Seed {
            what: "misspelt Image Size",
            model: "tf_efficientnet_b6_ns",
            key: "    Image Size:",
            to: None,
            respelt: "Image size",
        },
        Seed {
            what: "misspelt metric",
            model: "tf_efficientnet_b3_ns",
            key: "      Top 1 Accuracy:",
            to: None,
            respelt: "Top 1 Acuracy",
        },
    ];
    let original =
        std::fs::read_to_string(root().join("registry/efficientnet/noisy-student.yml")).unwrap();
    for s in &seeds {
        let tmp = registry_copy();
        let reg = tmp.path().join("registry");
        let (text, line, col) = seed(&original, s);
        std::fs::write(reg.join("efficientnet/noisy-student.yml"), text).unwrap();
        let at = format!("efficientnet/noisy-student.yml:{line}:{col}");
        let cache = tmp.path().join("cache");
        let outside = tempfile::tempdir().unwrap();
        for (cwd, args) in [
            (tmp.path(), vec!["validate", "--offline"]),
            (
                outside.path(),
                vec!["--registry", reg.to_str().unwrap(), "validate", "--offline"],
            ),
        ] {
            let (code, out, err) = zoo_in(cwd, &cache, &args);
            assert_eq!(code, 1, "{}: {out}{err}", s.what);
            assert!(out.contains(&at), "{}: {at} not named in\n{out}", s.what);
            assert!(
                !out.contains("regenerates them"),
                "{}: zoo advises regenerating the cards of a failing registry:\n{out}",
                s.what
            );
        }
    }
}

/// A registry with a wrong FLOPs value, a wrong parameter count and a dangling collection
/// exits 1 and names all three.
#[test]
fn seeded_errors_are_all_named() {
    let tmp = registry_copy();
    let reg = tmp.path().join("registry");
    let f = reg.join("efficientnet/noisy-student.yml");
    edit(&f, "FLOPs: 883633200", "FLOPs: 883633201");
    edit(&f, "Parameters: 9110000", "Parameters: 9120000");
    edit(
        &f,
        "- Name: tf_efficientnet_b3_ns\n  In Collection: Noisy Student",
        "- Name: tf_efficientnet_b3_ns\n  In Collection: Noisy Students",
    );
    let (code, out, err) = zoo_cached(
        tmp.path(),
        &[
            "--registry",
            &reg.display().to_string(),
            "validate",
            "--offline",
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("FAIL tf_efficientnet_b1_ns flops: documented 883633201, measured 883633200"),
        "{out}"
    );
    assert!(
        out.contains("FAIL tf_efficientnet_b2_ns params: documented 9120000, measured 9110000"),
        "{out}"
    );
    assert!(
        out.contains("FAIL tf_efficientnet_b3_ns schema:")
            && out.contains("`Noisy Students`, which is not defined"),
        "{out}"
    );
    assert!(
        out.contains("noisy-student.yml:"),
        "file:line:col named: {out}"
    );
}

/// A misspelt standard key is an error of the schema reader, so `check-cards` sees it as
/// `validate` does, at the key, with the key it most likely means.
#[test]
fn misspelt_key_is_an_error_for_check_cards_too() {
    let tmp = registry_copy();
    let f = tmp.path().join("registry/efficientnet/noisy-student.yml");
    edit(&f, "    Parameters: 9110000", "    Paramters: 9110000");
    let (code, out, err) = zoo_in(
        tmp.path(),
        &tmp.path().join("cache"),
        &["check-cards", f.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("noisy-student.yml:224:5: error: unknown key `Paramters` in Metadata; did you mean `Parameters`?"),
        "{out}"
    );
}

/// A wrong `Zoo: Input: Image Size` makes the FLOPs differ; the failure says which image size
/// gives the documented value exactly.
#[test]
fn flops_mismatch_names_the_image_size_that_gives_the_documented_value() {
    let tmp = registry_copy();
    let reg = tmp.path().join("registry");
    edit(
        &reg.join("efficientnet/noisy-student.yml"),
        "    Input:\n      Image Size: 240",
        "    Input:\n      Image Size: 250",
    );
    let (code, out, _) = zoo_in(
        tmp.path(),
        &tmp.path().join("cache"),
        &["validate", "--offline", "b1_ns"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "the card's value is exactly thop-2020 at 240x305, i.e. Image Size 240, not 250"
        ),
        "{out}"
    );
    assert!(
        out.contains("  --> registry/efficientnet/noisy-student.yml:118:12"),
        "{out}"
    );
}

/// With TF 'same' padding two image sizes can give the same count: b5's plain MACs are the same
/// at 463x463 and 464x464. A card holding that count is not pinned on the nearer size alone:
/// the failure names every size that gives it, and which is nearest to the card's Image Size.
#[test]
fn flops_mismatch_names_every_image_size_that_gives_the_documented_value() {
    let tmp = registry_copy();
    edit(
        &tmp.path().join("registry/efficientnet/noisy-student.yml"),
        "    FLOPs: 13176501888",
        "    FLOPs: 10360230272",
    );
    let (code, out, _) = zoo_in(
        tmp.path(),
        &tmp.path().join("cache"),
        &["validate", "--offline", "b5_ns"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "the card's value is exactly macs at 463x463 or macs at 464x464, i.e. Image Size 463 \
             or 464 (each gives this count; 463 is nearest to 456), not 456"
        ),
        "{out}"
    );
}

/// A collection-level edit makes one card stale: one finding for that card, after the real
/// errors, and no advice to regenerate the cards while the registry fails its checks.
#[test]
fn a_stale_card_is_one_finding_after_the_real_errors() {
    let tmp = registry_copy();
    let reg = tmp.path().join("registry");
    let f = reg.join("efficientnet/noisy-student.yml");
    edit(
        &f,
        "Title: Self-training with Noisy Student improves ImageNet classification",
        "Title: Self-training with Noisy Student improves ImageNet classification (2020)",
    );
    let cache = tmp.path().join("cache");
    let (code, out, _) = zoo_in(tmp.path(), &cache, &["validate", "--offline"]);
    assert_eq!(code, 1, "{out}");
    // One line for the collection card, one for the Hub cards (the collection's paper is on
    // each); no model fails.
    let fails: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL ")).collect();
    assert_eq!(
        fails,
        [
            "FAIL registry/cards/noisy-student.md docs: stale: differs from the card the registry generates (9 models)",
            "FAIL registry/cards/hf/ docs: 9 cards are stale: they differ from the cards the registry generates",
        ],
        "{out}"
    );
    let (_, out_json, _) = zoo_in(tmp.path(), &cache, &["validate", "--offline", "--json"]);
    let r = json(&out_json);
    let fails: Vec<&serde_json::Value> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["status"] == "fail")
        .collect();
    assert_eq!(fails.len(), 10, "one row per card: {out_json}");
    assert!(fails.iter().all(|x| x["check"] == "docs"));
    // Nothing else is wrong, so zoo says how to regenerate.
    assert!(out.contains("`zoo docs` regenerates them"), "{out}");

    // With a real error as well, the error comes first and regenerating is not advised.
    edit(&f, "Top 1 Accuracy: 86.45%", "Top 1 Accuracy: 68.45%");
    let (code, out, _) = zoo_in(tmp.path(), &cache, &["validate", "--offline"]);
    assert_eq!(code, 1, "{out}");
    let fails: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL ")).collect();
    assert_eq!(fails.len(), 3, "{out}");
    assert!(
        fails[2].starts_with("FAIL registry/cards/hf/ docs: 9 cards are stale"),
        "{out}"
    );
    assert!(fails[0].starts_with("FAIL tf_efficientnet_b6_ns accuracy: Top 1 Accuracy is 68.45%, but tensorflow/tpu efficientnet README reports 86.4%"), "{out}");
    assert!(
        fails[0].contains("timm results-imagenet.csv reports 86.476%"),
        "{out}"
    );
    assert!(
        fails[1..]
            .iter()
            .all(|l| l.contains(" docs: ") && l.contains("stale")),
        "{out}"
    );
    assert!(
        !out.contains("regenerates them") && !out.contains("run `zoo docs`"),
        "{out}"
    );
    assert!(out.contains("fix those first"), "{out}");
    // `zoo docs --check` holds back its advice too.
    let (code, _, err) = zoo_in(tmp.path(), &cache, &["docs", "--check"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        !err.contains("run `zoo docs`") && err.contains("fix those first"),
        "{err}"
    );
}

/// Row 12: a YAML error in one registry file leaves the other files' models checked, fails each
/// model of the broken file at the error, and a named model of that file points at it.
#[test]
fn a_yaml_error_fails_its_files_models_and_leaves_the_others_checked() {
    let tmp = registry_copy();
    let reg = tmp.path().join("registry");
    let f = reg.join("efficientnet/noisy-student.yml");
    edit(&f, "    LR: 0.128\n", "    LR: [0.128\n");
    let cache = tmp.path().join("cache");
    let (code, out, err) = zoo_in(tmp.path(), &cache, &["validate", "--offline", "--json"]);
    assert_eq!(code, 1, "{out}{err}");
    let r = json(&out);
    assert_eq!(r["registry"]["models"], 48);
    assert_eq!(r["models"].as_array().unwrap().len(), 48, "{out}");
    let results = r["results"].as_array().unwrap();
    let schema_fails: Vec<&serde_json::Value> = results
        .iter()
        .filter(|x| x["check"] == "schema" && x["status"] == "fail")
        .collect();
    assert_eq!(schema_fails.len(), 9, "{out}");
    let at = schema_fails[0]["location"].as_str().unwrap().to_string();
    assert!(
        at.starts_with("registry/efficientnet/noisy-student.yml:"),
        "{at}"
    );
    for x in &schema_fails {
        assert_eq!(x["location"], at.as_str());
        assert!(
            x["detail"].as_str().unwrap().contains("invalid YAML"),
            "{x}"
        );
    }
    // The other file's model is checked as usual.
    for check in [
        "schema",
        "input",
        "flops",
        "params",
        "file-size",
        "accuracy",
    ] {
        let x = results
            .iter()
            .find(|x| x["model"] == "tf_efficientnet_l2_ns_475" && x["check"] == check)
            .unwrap();
        assert_eq!(x["status"], "pass", "{x}");
    }
    // The YAML error is reported at the models, not a second time for the registry.
    assert!(
        !results
            .iter()
            .any(|x| x["model"] == "(registry)" && x["check"] == "schema"),
        "{out}"
    );
    // Shown once for the nine models, at the error.
    let (_, out, _) = zoo_in(tmp.path(), &cache, &["validate", "--offline"]);
    assert!(
        out.contains("FAIL 9 models schema: error: invalid YAML")
            && out.contains(&format!("  --> {at}\n  models: tf_efficientnet_b0_ns, "))
            && out.contains("registry: registry (found from the working directory), 48 models"),
        "{out}"
    );
    // Naming a model of the broken file (by an alias written in it) points at the error.
    let (code, out, err) = zoo_in(tmp.path(), &cache, &["validate", "--offline", "b6_ns"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(!err.contains("unknown model"), "{err}");
    assert!(
        out.contains("FAIL tf_efficientnet_b6_ns schema: error: invalid YAML"),
        "{out}"
    );
    assert!(out.contains(&format!("--> {at}")), "{out}");
    // A name in no file is still unknown.
    let (code, _, err) = zoo_in(tmp.path(), &cache, &["validate", "--offline", "b9_ns"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown model `b9_ns`"), "{err}");
}

/// `list` and `show` read around a broken registry file too: they show every readable model,
/// print the error and what it leaves out on stderr, and `list` (whose output is then
/// incomplete) exits 1.
#[test]
fn list_and_show_read_around_a_yaml_error() {
    let tmp = registry_copy();
    let reg = tmp.path().join("registry");
    edit(
        &reg.join("efficientnet/noisy-student.yml"),
        "    LR: 0.128\n",
        "    LR: [0.128\n",
    );
    let cache = tmp.path().join("cache");
    let (code, out, err) = zoo_in(tmp.path(), &cache, &["list"]);
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("tf_efficientnet_b0 "), "{out}");
    assert!(!out.contains("tf_efficientnet_b0_ns"), "{out}");
    assert!(
        err.contains("noisy-student.yml:") && err.contains("error: invalid YAML"),
        "{err}"
    );
    assert!(err.contains("not loaded: tf_efficientnet_b0_ns,"), "{err}");
    let (code, out, err) = zoo_in(tmp.path(), &cache, &["show", "tf_efficientnet_b0"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("tf_efficientnet_b0\n"), "{out}");
    let (code, _, err) = zoo_in(tmp.path(), &cache, &["show", "b0_ns"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("which could not be read"), "{err}");
}

/// `--strict`: a skipped check fails the run, in the exit code, the JSON and the JUnit report.
#[test]
fn strict_fails_a_run_with_skips() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, _) = zoo_cached(tmp.path(), &["validate", "--offline", "b0_ns"]);
    assert_eq!(code, 0);
    let junit = tmp.path().join("junit.xml");
    let (code, out, err) = zoo_cached(
        tmp.path(),
        &[
            "validate",
            "--offline",
            "--strict",
            "b0_ns",
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("skipped (3), which --strict counts as failures:"),
        "{out}"
    );
    assert!(
        out.contains("FAILED: 8 passed, 0 failed, 0 pinned, 3 skipped (--strict"),
        "{out}"
    );
    let x = std::fs::read_to_string(&junit).unwrap();
    assert!(x.contains("failures=\"3\" skipped=\"0\""), "{x}");
    let (_, out, _) = zoo_cached(
        tmp.path(),
        &["validate", "--offline", "--strict", "--json", "b0_ns"],
    );
    assert_eq!(json(&out)["strict"], true);
}

/// `--allow-skip CHECK` (with `--strict` only): skips of the named checks do not fail the run,
/// every other skip still does; the output, the JSON and the JUnit report say which.
#[test]
fn allow_skip_accepts_the_named_checks_skips_only() {
    let tmp = tempfile::tempdir().unwrap();
    let strict = |extra: &[&str]| {
        let mut args = vec!["validate", "--offline", "--strict", "b0_ns"];
        args.extend_from_slice(extra);
        zoo_cached(tmp.path(), &args)
    };
    // Nothing is cached: checksum, inference and fingerprint are skipped.
    let (code, out, err) = strict(&["--allow-skip", "inference", "--allow-skip", "checksum"]);
    assert_eq!(code, 1, "fingerprint's skip still fails: {out}{err}");
    assert!(
        out.contains(
            "which --strict counts as failures except those of --allow-skip checksum,inference"
        ),
        "{out}"
    );
    // As the output spells it (comma-separated) or repeated.
    let (code, out, err) = strict(&[
        "--allow-skip",
        "checksum,inference",
        "--allow-skip",
        "fingerprint",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let report = json(&out);
    assert_eq!(
        report["allowed_skips"],
        serde_json::json!(["checksum", "inference", "fingerprint"])
    );
    assert_eq!(report["summary"]["skipped"], 3, "still listed as skips");
    // Without --strict it means nothing, so it is refused; an unknown check is refused.
    let (code, _, err) = zoo_cached(
        tmp.path(),
        &[
            "validate",
            "--offline",
            "--allow-skip",
            "inference",
            "b0_ns",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--strict"), "{err}");
    let (code, _, err) = strict(&["--allow-skip", "speed"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown check `speed`"), "{err}");
}

/// The default output is short: the table, failures, skips by reason with how to run them, the
/// registry and totals; `-v` adds every pass. Piped, the table fits 100 columns.
#[test]
fn default_output_is_short_and_verbose_shows_every_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, _) = zoo_cached(tmp.path(), &["validate", "--offline"]);
    assert_eq!(code, 0);
    // The table (a row per model) and at most 25 lines of findings.
    assert!(out.lines().count() <= 48 + 25, "{out}");
    assert!(
        out.lines()
            .all(|l| l.chars().count() <= 100 || !l.contains("pass ")),
        "{out}"
    );
    assert!(out.lines().next().unwrap().chars().count() <= 100, "{out}");
    assert!(!out.contains("pass tf_"), "{out}");
    assert!(!out.contains('\x1b'), "no colour when piped: {out}");
    assert!(
        out.contains("skip 96 checks: weights not cached (checksum ×48, inference ×48)"),
        "{out}"
    );
    assert!(
        out.contains("`zoo validate --fetch` downloads at most 7.59 GB (48 files)"),
        "{out}"
    );
    assert!(
        out.contains("`zoo fetch tf_efficientnet_b0` for one model"),
        "{out}"
    );
    assert!(
        out.contains("cards: 55 of 55 in sync with the registry"),
        "{out}"
    );
    let (code, out, _) = zoo_cached(tmp.path(), &["validate", "--offline", "-v"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(
            "pass tf_efficientnet_b0_ns file-size: documented 21386709, predicted 21386709;"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "pass registry/cards/noisy-student.md docs: in sync with the registry (9 models)"
        ),
        "{out}"
    );
}

/// Four shard runs merged equal one unsharded run.
#[test]
fn shards_merge_to_the_unsharded_report() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, full, _) = zoo_cached(tmp.path(), &["validate", "--offline", "--json"]);
    assert_eq!(code, 0);
    let total = json(&full)["results"].as_array().unwrap().len();
    let files = shard_reports(tmp.path(), 4);
    let mut seen = 0;
    for f in &files {
        let r = json(&std::fs::read_to_string(f).unwrap());
        seen += r["results"].as_array().unwrap().len();
    }
    let mut args = vec!["report", "merge", "--json"];
    args.extend(files.iter().map(String::as_str));
    let junit = tmp.path().join("junit.xml");
    let junit_arg = junit.display().to_string();
    args.extend(["--junit", &junit_arg]);
    let (code, merged, err) = zoo_cached(tmp.path(), &args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(merged, full);
    assert_eq!(seen, total);
    assert_eq!(total, 487);
    let x = std::fs::read_to_string(junit).unwrap();
    assert!(
        x.contains("tests=\"487\"") && x.contains("<skipped message=\"weights not cached\"/>"),
        "{x}"
    );
}

/// `zoo validate --shard K/N --json` for K = 1..N; returns the report files.
fn shard_reports(dir: &Path, n: usize) -> Vec<String> {
    (1..=n)
        .map(|k| {
            let (code, out, err) = zoo_cached(
                dir,
                &[
                    "validate",
                    "--offline",
                    "--json",
                    "--shard",
                    &format!("{k}/{n}"),
                ],
            );
            assert_eq!(code, 0, "{err}");
            assert_eq!(json(&out)["shard"]["index"], k);
            let p = dir.join(format!("shard-{k}.json"));
            std::fs::write(&p, out).unwrap();
            p.display().to_string()
        })
        .collect()
}

/// Shards run against two different registry contents, both labelled `registry` with the same
/// model count, do not merge: each report records the sha256 of its registry's text, and the
/// merge fails (exit 1) naming both.
#[test]
fn shards_of_two_registry_contents_with_one_label_do_not_merge() {
    let (a, b) = (registry_copy(), registry_copy());
    edit(
        &b.path().join("registry/efficientnet/noisy-student.yml"),
        "# The Noisy Student EfficientNets.",
        "# The Noisy Student EfficientNets (edited).",
    );
    let shard = |dir: &Path, k: usize| {
        let (code, out, err) = zoo_in(
            dir,
            &dir.join("cache"),
            &[
                "validate",
                "--offline",
                "--json",
                "--shard",
                &format!("{k}/2"),
                "b0_ns",
                "b1_ns",
            ],
        );
        assert_eq!(code, 0, "{out}{err}");
        let r = json(&out);
        let p = dir.join(format!("shard-{k}.json"));
        std::fs::write(&p, out).unwrap();
        let sha = r["registry"]["content_sha256"].as_str().unwrap().to_owned();
        assert_eq!(sha.len(), 64, "{sha}");
        (
            p.display().to_string(),
            r["registry"]["source"].clone(),
            sha,
        )
    };
    let (one, source_a, sha_a) = shard(a.path(), 1);
    let (two, source_b, sha_b) = shard(b.path(), 2);
    assert_eq!(source_a, source_b, "the same label");
    assert_ne!(sha_a, sha_b);
    let (code, out, err) = zoo_in(
        a.path(),
        &a.path().join("cache"),
        &["report", "merge", &one, &two],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("shard 1/2 and shard 2/2 checked different contents of the registry"),
        "{err}"
    );
    assert!(err.contains(&sha_a) && err.contains(&sha_b), "{err}");
    // The same content merges.
    let (two_a, _, sha) = shard(a.path(), 2);
    assert_eq!(sha, sha_a);
    let (code, _, err) = zoo_in(
        a.path(),
        &a.path().join("cache"),
        &["report", "merge", &one, &two_a],
    );
    assert_eq!(code, 0, "{err}");
}

/// Merging 3 of 4 shard reports fails (exit 1) and names the missing shard; so does a shard
/// given twice.
#[test]
fn merging_three_of_four_shards_fails_naming_the_missing_one() {
    let tmp = tempfile::tempdir().unwrap();
    let files = shard_reports(tmp.path(), 4);
    let (code, out, err) = zoo_cached(
        tmp.path(),
        &["report", "merge", &files[0], &files[1], &files[3]],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("shard 3/4 is missing"), "{err}");
    let (code, _, err) = zoo_cached(
        tmp.path(),
        &[
            "report", "merge", &files[0], &files[1], &files[1], &files[2], &files[3],
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("shard 2/4 appears twice"), "{err}");
}

/// The shipped CI-matrix and Kubernetes examples (validate and eval) are valid YAML and shard.
#[test]
fn examples_are_valid_yaml() {
    for (f, needle) in [
        (
            "examples/github-actions/zoo-validate.yml",
            "--shard ${{ matrix.shard }}/4",
        ),
        (
            "examples/kubernetes/zoo-validate-job.yaml",
            "JOB_COMPLETION_INDEX + 1",
        ),
        (
            "examples/github-actions/zoo-eval.yml",
            "--shard ${{ matrix.shard }}/4 --report eval-${{ matrix.shard }}.json.gz",
        ),
        (
            "examples/kubernetes/zoo-eval-job.yaml",
            "--shard \"$((JOB_COMPLETION_INDEX + 1))/8\" --report",
        ),
    ] {
        let text = std::fs::read_to_string(root().join(f)).unwrap();
        let docs =
            yaml_rust2::YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(docs.len(), 1, "{f}");
        assert!(!docs[0].is_badvalue() && docs[0].as_hash().is_some(), "{f}");
        assert!(text.contains(needle), "{f}");
    }
}

fn tiny_registry(dir: &Path, server: &str) -> String {
    let reg = dir.join("registry-tiny");
    copy_dir(&fixture("registry-tiny"), &reg);
    let f = reg.join("tiny.yml");
    let text = std::fs::read_to_string(&f)
        .unwrap()
        .replace("http://127.0.0.1:9", server);
    let text = text.replace(
        "../efficientnet-tiny/",
        &format!("{}/", fixture("efficientnet-tiny").display()),
    );
    std::fs::write(&f, text).unwrap();
    reg.display().to_string()
}

/// Without reference vectors, the inference check still maps the cached checkpoint onto the
/// model's architecture (from the index, no tensor read): a checkpoint of another architecture
/// fails, with the diagnosis; the right one is a skip that says it maps.
#[test]
fn without_reference_vectors_a_checkpoint_of_another_architecture_still_fails() {
    let server = http_server::TestServer::start();
    let bytes = std::fs::read(fixture("efficientnet-tiny/efficientnet-tiny.tar.gz")).unwrap();
    server.serve("/efficientnet-tiny.tar.gz", bytes);
    let tmp = tempfile::tempdir().unwrap();
    let reg = tiny_registry(tmp.path(), &server.url(""));
    let card = Path::new(&reg).join("tiny.yml");
    let text = std::fs::read_to_string(&card).unwrap();
    let at = text.find("    Reference:").unwrap();
    let end = text[at..].find("Tolerance: 0.0001\n").unwrap() + at + "Tolerance: 0.0001\n".len();
    std::fs::write(&card, format!("{}{}", &text[..at], &text[end..])).unwrap();
    let cache = tmp.path().join("cache");
    let (_, out, err) = zoo_cached(
        &cache,
        &["--registry", &reg, "validate", "tiny", "--fetch", "--json"],
    );
    let inference = |out: &str| {
        json(out)["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["check"] == "inference")
            .cloned()
            .unwrap_or_else(|| panic!("{out}"))
    };
    let r = inference(&out);
    assert_eq!(r["status"], "skipped", "{r}{err}");
    assert!(
        r["detail"]
            .as_str()
            .unwrap()
            .contains("its checkpoint does map onto the architecture"),
        "{r}"
    );
    // The card now claims another width: the cached checkpoint is not that model.
    let text = std::fs::read_to_string(&card).unwrap();
    std::fs::write(
        &card,
        text.replace("width=0.05,depth=0.5", "width=0.1,depth=0.5"),
    )
    .unwrap();
    let (code, out, err) = zoo_cached(
        &cache,
        &[
            "--registry",
            &reg,
            "validate",
            "tiny",
            "--offline",
            "--json",
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    let r = inference(&out);
    assert_eq!(r["status"], "fail", "{r}");
    let detail = r["detail"].as_str().unwrap();
    assert!(
        detail.contains("the checkpoint fits `efficientnet:width=0.05,depth=0.5"),
        "{r}"
    );
    // validate has no --arch: the detail names the architecture, not another command's flag.
    assert!(!detail.contains("--arch"), "{r}");
}

/// The tiny model served by a local HTTP server: downloaded, converted, run, passed; corrupt
/// bytes fail the checksum.
#[test]
fn tiny_validates_with_fetch_and_corruption_fails() {
    let server = http_server::TestServer::start();
    let bytes = std::fs::read(fixture("efficientnet-tiny/efficientnet-tiny.tar.gz")).unwrap();
    server.serve("/efficientnet-tiny.tar.gz", bytes.clone());
    let tmp = tempfile::tempdir().unwrap();
    let reg = tiny_registry(tmp.path(), &server.url(""));
    let (code, out, err) = zoo_cached(
        &tmp.path().join("cache"),
        &["--registry", &reg, "validate", "tiny", "--fetch", "-v"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("pass efficientnet_tiny checksum: verified: efficientnet-tiny.tar.gz"),
        "{out}"
    );
    if cfg!(feature = "torch") {
        assert!(out.contains("pass efficientnet_tiny inference:"), "{out}");
    } else {
        assert!(
            out.contains("skip 1 check: zoo was built without the `torch` feature (inference ×1)"),
            "{out}"
        );
    }
    assert_eq!(server.full_gets("/efficientnet-tiny.tar.gz"), 1);

    server.set_fault("/efficientnet-tiny.tar.gz", http_server::Fault::WrongBytes);
    let (code, out, err) = zoo_cached(
        &tmp.path().join("cache2"),
        &["--registry", &reg, "validate", "tiny", "--fetch", "-v"],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("FAIL efficientnet_tiny checksum:"), "{out}");
    assert!(
        out.contains("f536f9317239e351894faef5e8c1d847202a2028370e014c449d01cc0ef2ebe1"),
        "expected hash shown: {out}"
    );
}

/// `zoo fetch NAME` over the registry: downloads the model's file from the server, verified.
#[test]
fn fetch_by_registry_name() {
    let server = http_server::TestServer::start();
    let bytes = std::fs::read(fixture("efficientnet-tiny/efficientnet-tiny.tar.gz")).unwrap();
    server.serve("/efficientnet-tiny.tar.gz", bytes);
    let tmp = tempfile::tempdir().unwrap();
    let reg = tiny_registry(tmp.path(), &server.url(""));
    let cache = tmp.path().join("cache");
    let (code, out, err) = zoo_cached(&cache, &["--registry", &reg, "fetch", "tiny", "--offline"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("efficientnet-tiny.tar.gz"), "{err}");
    assert_eq!(server.request_count(), 0);
    let (code, out, err) = zoo_cached(&cache, &["--registry", &reg, "fetch", "tiny"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("f536f9317239e351894faef5e8c1d847202a2028370e014c449d01cc0ef2ebe1"),
        "{out}"
    );
    let (code, out, _) = zoo_cached(&cache, &["--registry", &reg, "fetch", "--all", "--verify"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(server.full_gets("/efficientnet-tiny.tar.gz"), 1);
}

/// `zoo validate --dataset DIR`: a `measured` column for every model with cached weights; the
/// result is cached, so a re-run reads it (the images are unreadable by then) and a removed
/// cache entry re-evaluates.
#[test]
fn validate_dataset_measures_cached_models_once() {
    let server = http_server::TestServer::start();
    let bytes = std::fs::read(fixture("efficientnet-tiny/efficientnet-tiny.tar.gz")).unwrap();
    server.serve("/efficientnet-tiny.tar.gz", bytes);
    let tmp = tempfile::tempdir().unwrap();
    let reg = tiny_registry(tmp.path(), &server.url(""));
    let val = tmp.path().join("val");
    for k in 0..10u8 {
        for i in 0..2u8 {
            let p = val.join(format!("class{k}/{i}.jpg"));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, crate::eval::jpeg(40 + usize::from(i), 50, k * 20 + i)).unwrap();
        }
    }
    let cache = tmp.path().join("cache");
    let run = |extra: &[&str]| {
        let mut a = vec![
            "--registry",
            &reg,
            "validate",
            "tiny",
            "--json",
            "--dataset",
        ];
        let v = val.to_str().unwrap();
        a.push(v);
        a.extend_from_slice(extra);
        let (code, out, err) = zoo_cached(&cache, &a);
        let r = json(&out);
        let m = r["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "measured")
            .unwrap_or_else(|| panic!("no measured check: {out}{err}"))
            .clone();
        (code, m)
    };
    // Without weights: skipped, never passed.
    let (_, m) = run(&["--offline"]);
    assert_eq!(m["status"], "skipped", "{m}");
    assert!(
        m["detail"].as_str().unwrap().contains("weights not cached"),
        "{m}"
    );
    let (_, m) = run(&["--fetch"]);
    let detail = m["detail"].as_str().unwrap().to_string();
    if !cfg!(feature = "torch") {
        assert_eq!(m["status"], "skipped", "{m}");
        assert!(detail.contains("built without the `torch` feature"), "{m}");
        return;
    }
    // 20 images are not ImageNet: measured, not judged (skipped with the reason).
    assert_eq!(m["status"], "skipped", "{m}");
    assert!(
        detail.contains("efficientnet-tiny.tar.gz on")
            && detail.contains("(20 images): top-1")
            && detail.contains("not the 50,000")
            && !detail.contains("[cached result]"),
        "{detail}"
    );
    let entries: Vec<_> = std::fs::read_dir(cache.join("v2/eval")).unwrap().collect();
    assert_eq!(entries.len(), 1, "one cached result");
    // Every image unreadable now (same sizes, so the same listing): the re-run reads the cache.
    for k in 0..10u8 {
        for i in 0..2u8 {
            let p = val.join(format!("class{k}/{i}.jpg"));
            let len = std::fs::metadata(&p).unwrap().len() as usize;
            std::fs::write(&p, vec![0u8; len]).unwrap();
        }
    }
    let (_, m2) = run(&["--offline"]);
    let d2 = m2["detail"].as_str().unwrap();
    assert!(d2.contains("[cached result]"), "{d2}");
    assert_eq!(
        d2.replace(" [cached result]", ""),
        detail,
        "same counts from the cache"
    );
    // Without the cached result it evaluates again (and now fails on the broken image).
    for e in entries {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let (code, m3) = run(&["--offline"]);
    assert_eq!(code, 1);
    assert_eq!(m3["status"], "fail", "{m3}");
    assert!(
        m3["detail"]
            .as_str()
            .unwrap()
            .contains("class0/0.jpg: not a JPEG or PNG"),
        "{m3}"
    );
}

/// The Kubernetes eval example is an Indexed Job whose pods each take one GPU and read the
/// dataset from a shared volume, and whose shard count matches `completions`.
#[test]
fn kubernetes_eval_example_is_an_indexed_job_of_one_gpu_pods() {
    let text =
        std::fs::read_to_string(root().join("examples/kubernetes/zoo-eval-job.yaml")).unwrap();
    let doc = &yaml_rust2::YamlLoader::load_from_str(&text).unwrap()[0];
    let spec = &doc["spec"];
    assert_eq!(doc["kind"].as_str(), Some("Job"));
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    let n = spec["completions"].as_i64().unwrap();
    let pod = &spec["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"].as_i64(), Some(1));
    let cmd = c["args"][0].as_str().unwrap();
    assert!(cmd.contains(&format!("+ 1))/{n}\"")), "{cmd}");
    assert!(
        cmd.contains("--device cuda") && cmd.contains("--dataset /data/imagenet/val"),
        "{cmd}"
    );
    let mounts = c["volumeMounts"].as_vec().unwrap();
    assert!(mounts
        .iter()
        .any(|m| m["mountPath"].as_str() == Some("/data/imagenet")
            && m["readOnly"].as_bool() == Some(true)));
}

/// An explanation is a rule that reproduces the card's value exactly, never a shrug: another
/// model's File Size is no layout's size and fails with every layout's prediction, and an
/// accuracy far from a source is explained only when that source names the model change.
#[test]
fn a_size_or_accuracy_no_rule_explains_fails() {
    let tmp = registry_copy();
    let reg = tmp.path().join("registry");
    // tf_efficientnet_lite0 given lite1's file size.
    edit(
        &reg.join("efficientnet/tf-efficientnet-lite.yml"),
        "File Size: 18820223",
        "File Size: 21939331",
    );
    // tf_efficientnet_es's current-timm source without its model change.
    let yml = reg.join("efficientnet/tf-efficientnet.yml");
    let text = std::fs::read_to_string(&yml).unwrap();
    let i = text.find("- Name: tf_efficientnet_es\n").unwrap();
    let j = i + text[i..].find("      Model Change:").unwrap();
    let k = j + text[j..].find('\n').unwrap() + 1;
    std::fs::write(&yml, format!("{}{}", &text[..j], &text[k..])).unwrap();
    let cache = tmp.path().join("cache");
    let (code, out, err) = zoo_in(
        tmp.path(),
        &cache,
        &[
            "validate",
            "--offline",
            "--json",
            "tf_efficientnet_lite0",
            "tf_efficientnet_es",
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    let r = json(&out);
    let find = |model: &str, check: &str| {
        r["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["model"] == model && x["check"] == check)
            .unwrap()
            .clone()
    };
    let size = find("tf_efficientnet_lite0", "file-size");
    assert_eq!(size["status"], "fail", "{size}");
    let detail = size["detail"].as_str().unwrap();
    assert!(
        detail.contains("no known layout gives the card's value"),
        "{size}"
    );
    assert!(
        detail.contains("an OrderedDict without `_metadata` 18820223"),
        "{size}"
    );
    let top = find("tf_efficientnet_es", "accuracy");
    assert_eq!(top["status"], "fail", "{top}");
    assert!(
        top["detail"]
            .as_str()
            .unwrap()
            .contains("Top 1 Accuracy is 77.28%, but timm results-imagenet.csv reports 76.608%"),
        "{top}"
    );
}

/// The b0_ns card of a registry copy, rewritten to count FLOPs as plain MACs at the square input
/// and to declare its `.pth` a zip `torch.save`, with `flops` and `file_size` as its values.
fn b0_ns_as_macs_and_zip(flops: &str, file_size: &str) -> tempfile::TempDir {
    let tmp = registry_copy();
    let f = tmp.path().join("registry/efficientnet/noisy-student.yml");
    edit(&f, "    FLOPs: 488688572", &format!("    FLOPs: {flops}"));
    edit(
        &f,
        "    File Size: 21386709",
        &format!("    File Size: {file_size}"),
    );
    edit(
        &f,
        "      Convention: thop-2020\n      Input Rule: dog-jpg-short-side",
        "      Convention: macs\n      Input Rule: square",
    );
    edit(&f, "      Format: pth-legacy", "      Format: pth-zip");
    tmp
}

/// `validate` counts a card's FLOPs under the card's own `Zoo: Flops` and predicts its File Size
/// for the card's own `.pth` `Format`: the numbers `zoo flops` and `zoo docs` give for the same
/// card. So a card that docs wrote passes, and `zoo flops` marks the same count as exact.
#[test]
fn a_card_in_its_own_convention_and_container_passes_and_docs_agrees() {
    let tmp = b0_ns_as_macs_and_zip("385814752", "21448401");
    let cache = tmp.path().join("cache");
    let (code, out, err) = zoo_in(tmp.path(), &cache, &["docs"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!err.contains("fails"), "docs saw the card fail: {err}");
    let (code, out, err) = zoo_in(
        tmp.path(),
        &cache,
        &["validate", "--offline", "--json", "b0_ns"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let r = json(&out);
    let find = |check: &str| {
        r["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["model"] == "tf_efficientnet_b0_ns" && x["check"] == check)
            .unwrap()
            .clone()
    };
    let flops = find("flops");
    assert_eq!(flops["status"], "pass", "{flops}");
    assert!(
        flops["detail"]
            .as_str()
            .unwrap()
            .contains("exact under macs at 224x224 (`Zoo: Flops`)"),
        "{flops}"
    );
    let size = find("file-size");
    assert_eq!(size["status"], "pass", "{size}");
    assert!(
        size["detail"]
            .as_str()
            .unwrap()
            .contains("zip (torch >= 1.6) torch.save layout (`Format: pth-zip`)"),
        "{size}"
    );
    // The generated card carries exactly the values validate passed.
    let card = std::fs::read_to_string(tmp.path().join("registry/cards/noisy-student.md")).unwrap();
    assert!(
        card.contains("FLOPs: 385814752"),
        "docs wrote another FLOPs"
    );
    assert!(
        card.contains("File Size: 21448401"),
        "docs wrote another File Size"
    );
    let (code, out, err) = zoo_in(tmp.path(), &cache, &["flops", "b0_ns"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("counted 385814752 under macs at 224x224: exact"),
        "{out}"
    );
}

/// A value wrong in the card's own convention (or container) fails, naming the documented
/// value, the measured one, and the convention (container) it was measured under.
#[test]
fn a_wrong_value_in_the_cards_own_convention_fails_naming_both() {
    let tmp = b0_ns_as_macs_and_zip("385814753", "21448402");
    let cache = tmp.path().join("cache");
    let (code, out, err) = zoo_in(tmp.path(), &cache, &["validate", "--offline", "b0_ns"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(
            "FAIL tf_efficientnet_b0_ns flops: documented 385814753, measured 385814752; the \
             card's value is 1 more than macs at 224x224 (`Zoo: Flops`) gives"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "FAIL tf_efficientnet_b0_ns file-size: documented 21448402, predicted 21448401; \
             zip (torch >= 1.6) torch.save (`Format: pth-zip`)"
        ),
        "{out}"
    );
}
