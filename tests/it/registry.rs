//! The embedded registry: every model resolves, aliases are unique, lookups and the CLI.
use std::collections::BTreeSet;

use zoo::registry::{Registry, RegistryError};
use zoo::schema::{FileRole, InputRule};

use crate::zoo;

#[test]
fn embedded_registry_has_48_models_whose_architectures_resolve() {
    let reg = Registry::embedded().unwrap();
    assert_eq!(
        reg.diagnostics(),
        &[],
        "the registry loads without findings"
    );
    let names: Vec<_> = reg.models().map(|m| m.name().to_string()).collect();
    assert_eq!(names.len(), 48);
    let mut all = BTreeSet::new();
    for m in reg.models() {
        let spec = m.arch().unwrap().resolve().unwrap();
        assert!(spec.trainable_params() > 0);
        // Documented Parameters = round(n / 1e6, 2) · 1e6, truncated (metadata-conventions.md).
        let documented = m
            .model
            .metadata
            .as_ref()
            .unwrap()
            .parameters
            .as_ref()
            .unwrap()
            .value;
        let n = spec.trainable_params() as f64;
        assert_eq!(
            ((n / 1e6 * 100.0).round() / 100.0 * 1e6) as u64,
            documented,
            "{}",
            m.name()
        );
        assert!(all.insert(m.name().to_string()));
        for a in m.aliases() {
            assert!(all.insert(a.to_string()), "alias {a} is not unique");
            assert_eq!(reg.resolve(a).unwrap().name(), m.name());
        }
        let roles: Vec<_> = m
            .files()
            .iter()
            .map(|f| f.role.as_ref().unwrap().value)
            .collect();
        assert_eq!(
            roles,
            [
                FileRole::TimmPth,
                FileRole::TfCheckpoint,
                FileRole::HfSafetensors
            ]
        );
        let input = m.input().unwrap();
        let card_size = m
            .model
            .metadata
            .as_ref()
            .unwrap()
            .image_size
            .as_ref()
            .unwrap()
            .value;
        assert_eq!(input.image_size.as_ref().unwrap().value, card_size);
    }
    // 48 names and 58 aliases, all distinct.
    assert_eq!(all.len(), 106);
}

#[test]
fn b6_aliases_resolve_to_one_model() {
    let reg = Registry::embedded().unwrap();
    for q in [
        "b6_ns",
        "tf_efficientnet_b6_ns",
        "tf_efficientnet_b6.ns_jft_in1k",
    ] {
        assert_eq!(reg.resolve(q).unwrap().name(), "tf_efficientnet_b6_ns");
    }
    let b0 = reg.resolve("b0_ns").unwrap();
    let rule = b0
        .zoo()
        .unwrap()
        .flops
        .as_ref()
        .unwrap()
        .input_rule
        .as_ref()
        .unwrap()
        .value;
    assert_eq!(rule, InputRule::DogJpgShortSide);
    let at = |s| zoo::lookup::rule_input(rule, s).to_string();
    assert_eq!(at(224), "224x285");
    assert_eq!(at(800), "800x1019");
}

#[test]
fn unknown_names_suggest_near_ones() {
    let reg = Registry::embedded().unwrap();
    match reg.resolve("b9_ns") {
        Err(RegistryError::UnknownModel { query, suggestions }) => {
            assert_eq!(query, "b9_ns");
            assert_eq!(suggestions[..3], ["b0_ns", "b1_ns", "b2_ns"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn select_globs_over_names_and_aliases() {
    let reg = Registry::embedded().unwrap();
    let names = |p: &[&str]| -> Vec<String> {
        let p: Vec<String> = p.iter().map(|s| s.to_string()).collect();
        reg.select(&p)
            .unwrap()
            .iter()
            .map(|m| m.name().to_string())
            .collect()
    };
    assert_eq!(
        names(&["l2*"]),
        ["tf_efficientnet_l2_ns", "tf_efficientnet_l2_ns_475"]
    );
    assert_eq!(names(&["*.ns_jft_in1k"]).len(), 9);
    assert_eq!(names(&["*.ap_in1k"]).len(), 9);
    assert_eq!(names(&["tf_mixnet_*"]).len(), 3);
    // A collection's name selects its models (timm's card puts l2_ns_475 under TF EfficientNet).
    let noisy = names(&["Noisy Student"]);
    assert_eq!(noisy.len(), 9, "{noisy:?}");
    assert!(noisy.iter().all(|n| n.ends_with("_ns")), "{noisy:?}");
    assert_eq!(names(&["TF MixNet"]), names(&["tf_mixnet_*"]));
    assert_eq!(names(&[]).len(), 48);
    assert!(reg.select(&["nothing*".to_string()]).is_err());
}

fn copy_registry(dst: &std::path::Path) {
    for rel in [
        "model-index.yml",
        "efficientnet/noisy-student.yml",
        "efficientnet/tf-efficientnet.yml",
    ] {
        let to = dst.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(crate::root().join("registry").join(rel), to).unwrap();
    }
}

#[test]
fn a_registry_directory_with_a_duplicate_alias_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    copy_registry(dir.path());
    assert_eq!(Registry::load(dir.path()).unwrap().models().count(), 22);
    let path = dir.path().join("efficientnet/tf-efficientnet.yml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("- l2_ns_475\n", "- l2_ns\n");
    std::fs::write(&path, text).unwrap();
    match Registry::load(dir.path()) {
        Err(RegistryError::Invalid { diagnostics }) => {
            assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
            assert!(
                diagnostics[0]
                    .message
                    .starts_with("duplicate alias `l2_ns`"),
                "{}",
                diagnostics[0]
            );
            assert!(diagnostics[0]
                .file
                .ends_with("efficientnet/tf-efficientnet.yml"));
        }
        other => panic!("{other:?}"),
    }
    // `list` reads around the error, says it, and fails (its listing is not the registry's).
    let (code, _, err) = zoo(&["--registry", dir.path().to_str().unwrap(), "list"]);
    assert_eq!(code, 1);
    assert!(err.contains("duplicate alias `l2_ns`"), "{err}");
    assert!(err.contains("the registry has 1 error(s)"), "{err}");
}

#[test]
fn cli_list_and_show() {
    let (code, out, err) = zoo(&["list"]);
    assert_eq!(code, 0, "{err}");
    insta::assert_snapshot!("zoo_list", out);
    for q in ["b6_ns", "tf_efficientnet_b6.ns_jft_in1k"] {
        let (code, out, err) = zoo(&["show", q]);
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("tf_efficientnet_b6_ns\n"), "{out}");
        assert!(
            out.contains("noisy_student_efficientnet-b6.tar.gz"),
            "{out}"
        );
        assert!(out.contains("Top 1 Accuracy: 86.45%"), "{out}");
    }
    let (code, out, _) = zoo(&["show", "b6_ns", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["model"]["Metadata"]["FLOPs"], 24180518488u64);
    assert_eq!(v["trainable_params"], 43040704);
    let (code, _, err) = zoo(&["show", "b9_ns"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown model `b9_ns`; did you mean `b0_ns`"),
        "{err}"
    );
}

/// The registry's standard fields (everything but `Zoo:`) are the published cards, byte for byte,
/// so `zoo docs` can regenerate them.
#[test]
fn registry_standard_fields_equal_the_published_cards() {
    use zoo::card::Card;
    use zoo::schema::yaml::{emit, Node, Seq};
    use zoo::schema::FieldValue;

    let strip = |rel: &str| {
        let path = crate::root().join("registry").join(rel);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut card = Card::parse(&path, &text).0.unwrap();
        let index = &mut card.blocks[0].index;
        for m in index.models.iter_mut().flatten() {
            assert!(m.zoo.take().is_some(), "{} has a Zoo block", m.name());
        }
        index.clone()
    };

    let published = std::fs::read_to_string(crate::fixture("cards/noisy-student.md")).unwrap();
    let start = published.find("<!--\n").unwrap() + 5;
    let end = published.rfind("-->").unwrap();
    assert_eq!(
        strip("efficientnet/noisy-student.yml").to_yaml(),
        &published[start..end]
    );

    let published = std::fs::read_to_string(crate::fixture("cards/l2-ns-475.md")).unwrap();
    let start = published.find("```yaml\n").unwrap() + 8;
    let end = published.rfind("```").unwrap();
    let index = strip("efficientnet/tf-efficientnet.yml");
    let l2 = index
        .models
        .iter()
        .flatten()
        .filter(|m| m.name() == "tf_efficientnet_l2_ns_475")
        .map(FieldValue::to_node)
        .collect();
    let models = Node::Seq(Seq {
        items: l2,
        pos: Default::default(),
    });
    assert_eq!(emit(&models), &published[start..end]);

    // Every other collection is one of timm's 2021 cards, model for model.
    for name in [
        "tf-efficientnet",
        "advprop",
        "tf-efficientnet-lite",
        "tf-efficientnet-condconv",
        "tf-mixnet",
        "tf-mobilenet-v3",
    ] {
        let published =
            std::fs::read_to_string(crate::fixture(&format!("cards/timm-2021/{name}.md"))).unwrap();
        let start = published.find("<!--\n").unwrap() + 5;
        let end = published.rfind("-->").unwrap();
        assert_eq!(
            strip(&format!("efficientnet/{name}.yml")).to_yaml(),
            &published[start..end],
            "{name}"
        );
    }
}

/// The content hash is the registry's bytes, every file (a binary `.npy` too), wherever it lies.
#[test]
fn content_hash_covers_every_files_bytes_and_not_the_location() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for d in [a.path(), b.path()] {
        copy_registry(d);
        std::fs::write(
            d.join("ref.npy"),
            [0x93, b'N', b'U', b'M', b'P', b'Y', 0xff, 0],
        )
        .unwrap();
    }
    let hash = |d: &std::path::Path| Registry::load(d).unwrap().content_sha256();
    assert_eq!(hash(a.path()), hash(b.path()), "two places, one content");
    std::fs::write(
        b.path().join("ref.npy"),
        [0x93, b'N', b'U', b'M', b'P', b'Y', 0xfe, 0],
    )
    .unwrap();
    assert_ne!(hash(a.path()), hash(b.path()), "one byte of a binary file");
    // The lock file is state a run adds, not content.
    std::fs::write(a.path().join("weights.lock"), "x").unwrap();
    std::fs::write(
        b.path().join("ref.npy"),
        [0x93, b'N', b'U', b'M', b'P', b'Y', 0xff, 0],
    )
    .unwrap();
    assert_eq!(hash(a.path()), hash(b.path()));
}
