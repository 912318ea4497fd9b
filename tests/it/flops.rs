//! `zoo flops`, `zoo arch`, `--arch`, and the FLOPs columns of `zoo list` / `zoo show`: registry
//! names work wherever an architecture is asked for, and counts come with their input and
//! convention.
use crate::{fixture, zoo};

const B6_NS_NAMES: [&str; 3] = [
    "b6_ns",
    "tf_efficientnet_b6_ns",
    "tf_efficientnet_b6.ns_jft_in1k",
];

/// The card of `tf_efficientnet_b6_ns`: thop-2020 at 528x672.
const B6_NS_FLOPS: u64 = 24_180_518_488;

fn json(args: &[&str]) -> serde_json::Value {
    let (code, out, err) = zoo(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

fn row<'a>(report: &'a serde_json::Value, convention: &str) -> &'a serde_json::Value {
    report["counts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["convention"] == convention)
        .unwrap_or_else(|| panic!("no {convention} row: {report}"))
}

#[test]
fn flops_of_a_model_name_or_alias_counts_at_the_cards_input_and_fills_documented() {
    for name in B6_NS_NAMES {
        let report = json(&["flops", name, "--json"]);
        assert_eq!(report["model"], "tf_efficientnet_b6_ns", "{name}");
        assert_eq!(report["image_size"], 528, "{name}");
        assert_eq!(report["image_size_from"], "card", "{name}");
        let thop = row(&report, "thop-2020");
        assert_eq!(thop["value"], B6_NS_FLOPS, "{name}: {thop}");
        assert_eq!(thop["input"]["height"], 528, "{name}");
        assert_eq!(thop["input"]["width"], 672, "{name}");
        assert_eq!(thop["documented"], B6_NS_FLOPS, "{name}");
        assert_eq!(thop["difference"], 0, "{name}");
        assert_eq!(thop["card"], true, "{name}");
        // the other conventions at the native square size, compared with the same number
        let macs = row(&report, "macs");
        assert_eq!(macs["input"]["width"], 528, "{name}");
        assert_eq!(macs["documented"], B6_NS_FLOPS, "{name}");
        assert_eq!(macs["card"], false, "{name}");

        let (code, out, err) = zoo(&["flops", name]);
        assert_eq!(code, 0, "{name}: {err}");
        let line = out
            .lines()
            .find(|l| l.contains("thop-2020 (card)"))
            .unwrap_or_else(|| panic!("{name}: no card row in\n{out}"));
        assert!(
            line.contains("24,180,518,488 ┆ 528x672 ┆ 24,180,518,488"),
            "{name}: {line}"
        );
        assert!(
            out.contains(
                "documented 24180518488 (the card's FLOPs), counted 24180518488 under thop-2020 at 528x672: exact"
            ),
            "{name}: {out}"
        );
        assert!(out.contains("the card's Image Size 528"), "{name}: {out}");
    }
}

#[test]
fn flops_of_an_architecture_names_its_input_and_says_nothing_is_documented() {
    let (code, out, err) = zoo(&["flops", "b6"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("input: Image Size 224, zoo's default for an architecture"),
        "{out}"
    );
    assert!(out.contains("thop-2020 at 224x285"), "{out}");
    assert!(
        out.contains("no documented value: `b6` is an architecture, not a registry model"),
        "{out}"
    );
    assert!(
        out.contains("registry model on this architecture: tf_efficientnet_b6_ns, Image Size 528"),
        "{out}"
    );
    let report = json(&["flops", "b6", "--json"]);
    assert_eq!(report["model"], serde_json::Value::Null);
    assert_eq!(report["image_size_from"], "default");
    for r in report["counts"].as_array().unwrap() {
        assert_eq!(r["documented"], serde_json::Value::Null, "{r}");
    }
}

#[test]
fn flops_image_size_overrides_the_card_and_still_compares() {
    let report = json(&["flops", "b6_ns", "--image-size", "456", "--json"]);
    assert_eq!(report["image_size_from"], "command-line");
    let thop = row(&report, "thop-2020");
    assert_eq!(thop["input"]["width"], 581);
    assert_eq!(thop["card"], false, "not the card's input");
    assert_eq!(thop["documented"], B6_NS_FLOPS);
    let (code, out, err) = zoo(&["flops", "b6_ns", "--image-size", "456"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("counted as thop-2020 at 528x672, which is not among the counts shown"),
        "{out}"
    );
}

/// `--size HxW` counts every convention at that input, and the header says so: it names the
/// input that was counted, not the image size's own inputs.
#[test]
fn flops_size_header_names_the_input_that_was_counted() {
    for (name, card) in [("b6", ""), ("b6_ns", " (the card's Image Size is 528")] {
        let (code, out, err) = zoo(&["flops", name, "--size", "300x200"]);
        assert_eq!(code, 0, "{err}");
        let header = out.lines().find(|l| l.contains("input:")).unwrap();
        assert!(
            header.contains("input: 300x200 (--size), every convention counted there"),
            "{out}"
        );
        assert!(header.contains(card), "{out}");
        assert!(!header.contains("224x285"), "{header}");
        let report = json(&["flops", name, "--size", "300x200", "--json"]);
        assert_eq!(
            report["size"],
            serde_json::json!({"height": 300, "width": 200})
        );
        for r in report["counts"].as_array().unwrap() {
            assert_eq!(r["input"], report["size"], "{r}");
        }
    }
}

#[test]
fn flops_of_an_unknown_name_suggests_the_model() {
    let (code, _, err) = zoo(&["flops", "b6ns"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("`b6ns` is neither a registry model nor an architecture"),
        "{err}"
    );
    assert!(err.contains("did you mean `b6_ns`"), "{err}");
}

#[test]
fn arch_takes_registry_names_and_aliases() {
    let (code, b6, err) = zoo(&["arch", "b6"]);
    assert_eq!(code, 0, "{err}");
    for name in B6_NS_NAMES {
        let (code, out, err) = zoo(&["arch", name]);
        assert_eq!(code, 0, "{name}: {err}");
        assert_eq!(out, b6, "{name}");
    }
}

#[test]
fn arch_option_takes_registry_names() {
    let tarball = fixture("efficientnet-tiny/efficientnet-tiny.tar.gz");
    let tarball = tarball.to_str().unwrap();
    let (code, by_arch, err) = zoo(&[
        "fingerprint",
        tarball,
        "--arch",
        "efficientnet:width=0.05,depth=0.5,classes=10",
    ]);
    assert_eq!(code, 0, "{err}");
    let registry = fixture("registry-tiny");
    let (code, by_name, err) = zoo(&[
        "--registry",
        registry.to_str().unwrap(),
        "fingerprint",
        tarball,
        "--arch",
        "tiny",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(by_name, by_arch);
    // b0_ns is b0, which the tiny checkpoint does not fit: the mapping names b0's architecture
    let out = tempfile::tempdir().unwrap();
    let (code, _, err) = zoo(&[
        "convert",
        "--from",
        tarball,
        "--arch",
        "b0_ns",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`efficientnet:width=1,depth=1,classes=1000`"),
        "{err}"
    );
}

#[test]
fn list_and_show_give_conventional_gmacs_beside_the_cards_flops() {
    let spec = zoo::arch::ArchConfig::variant("b6")
        .unwrap()
        .resolve()
        .unwrap();
    let macs = zoo::flops::count(
        &spec,
        zoo::flops::Convention::Macs,
        zoo::flops::InputSize::square(528),
    )
    .unwrap();
    assert_eq!(macs, 19_067_593_536);
    let rows = json(&["list", "b6_ns", "--json"]);
    let b6 = &rows[0];
    assert_eq!(b6["flops"], B6_NS_FLOPS);
    assert_eq!(b6["flops_counted_as"]["convention"], "thop-2020");
    assert_eq!(b6["flops_counted_as"]["input"]["width"], 672);
    assert_eq!(b6["macs"], macs);
    let (code, out, err) = zoo(&["list", "b6_ns"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("GMACs at S×S"), "{out}");
    let cells: Vec<&str> = out
        .lines()
        .find(|l| l.contains("tf_efficientnet_b6_ns"))
        .unwrap()
        .split('|')
        .map(str::trim)
        .collect();
    assert_eq!(
        cells[5..8],
        ["24.18G", "thop-2020 528x672", "19.07"],
        "{out}"
    );
    let (code, out, err) = zoo(&["show", "b6_ns"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "FLOPs: card FLOPs 24180518488, counted as thop-2020 on a 528x672 input (dog-jpg-short-side); conventionally 19.07 GMACs (multiply-accumulates at 528x528"
        ),
        "{out}"
    );
    let shown = json(&["show", "b6_ns", "--json"]);
    assert_eq!(shown["macs"], macs);
}

#[test]
fn cards_that_zoo_docs_writes_pass_check_cards_without_unknown_keys() {
    let cards: Vec<String> = std::fs::read_dir(crate::root().join("registry/cards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| p.to_str().unwrap().to_owned())
        .collect();
    assert!(!cards.is_empty());
    let text = std::fs::read_to_string(&cards[0]).unwrap();
    assert!(text.contains("FLOPs Convention: thop-2020"), "{}", cards[0]);
    let mut args = vec!["check-cards", "--json"];
    args.extend(cards.iter().map(String::as_str));
    let findings = json(&args);
    assert_eq!(findings, serde_json::json!([]), "{findings:#}");
}

#[test]
fn a_flops_convention_that_disagrees_with_the_zoo_block_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("registry-tiny/tiny.yml")).unwrap();
    let text = text.replace(
        "    FLOPs: 1524304\n",
        "    FLOPs: 1524304\n    FLOPs Convention: macs\n",
    );
    let file = dir.path().join("tiny.yml");
    std::fs::write(&file, text).unwrap();
    let (code, out, err) = zoo(&["check-cards", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(
            "tiny.yml:9:23: error: `FLOPs Convention` is `macs`, but `Zoo: Flops: Convention` is `thop-2020`"
        ),
        "{out}{err}"
    );
}
