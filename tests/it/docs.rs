//! `zoo docs`: the committed cards are what the registry renders, edits make `--check` fail with
//! a diff naming the card, generated cards pass `check-cards`, and the Noisy Student card.
use std::path::Path;

use zoo::registry::Registry;

use crate::{copy_dir, root, zoo};

/// Copies the registry and schemas into a temp project (`<tmp>/registry`, `<tmp>/schemas`).
fn temp_project() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&root().join("registry"), &tmp.path().join("registry"));
    copy_dir(&root().join("schemas"), &tmp.path().join("schemas"));
    tmp
}

#[test]
fn committed_cards_are_up_to_date() {
    let (code, out, err) = zoo(&["docs", "--check"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("up to date"), "{err}");
    // The library agrees, and both registries (embedded and on disk) render the same cards.
    let disk = Registry::load(&root().join("registry")).unwrap();
    assert_eq!(
        zoo::docs::check(&disk, &root().join("registry")).unwrap(),
        []
    );
    let embedded = zoo::docs::render_all(&Registry::embedded().unwrap()).unwrap();
    assert_eq!(embedded, zoo::docs::render_all(&disk).unwrap());
    let paths: Vec<_> = embedded.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(
        paths,
        [
            Path::new("cards/noisy-student.md"),
            Path::new("cards/tf-efficientnet.md")
        ]
    );
}

#[test]
fn edited_epochs_make_check_fail_with_a_diff_naming_the_card() {
    let tmp = temp_project();
    let reg = tmp.path().join("registry");
    let file = reg.join("efficientnet/noisy-student.yml");
    let text = std::fs::read_to_string(&file).unwrap();
    // b5 is the first model with 350 epochs.
    let edited = text.replacen("Epochs: 350", "Epochs: 351", 1);
    assert_ne!(edited, text);
    std::fs::write(&file, edited).unwrap();
    let reg_arg = reg.to_str().unwrap();
    let (code, out, err) = zoo(&["--registry", reg_arg, "docs", "--check"]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("noisy-student.md (committed)"), "{out}");
    assert!(
        out.contains("-    Epochs: 350\n+    Epochs: 351\n"),
        "{out}"
    );
    assert!(!out.contains("tf-efficientnet.md"), "{out}");
    assert!(
        err.contains(&format!("run `zoo --registry {reg_arg} docs`")),
        "{err}"
    );
    // The library names the models of the stale card (for `zoo validate`'s docs check).
    let stale = zoo::docs::check(&Registry::load(&reg).unwrap(), &reg).unwrap();
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].path, reg.join("cards/noisy-student.md"));
    assert_eq!(stale[0].models.len(), 9);
    // Regenerating fixes it.
    let (code, _, err) = zoo(&["--registry", reg_arg, "docs"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("wrote"), "{err}");
    let (code, out, err) = zoo(&["--registry", reg_arg, "docs", "--check"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
}

#[test]
fn added_model_and_stale_schema_are_reported() {
    let tmp = temp_project();
    let reg = tmp.path().join("registry");
    let file = reg.join("efficientnet/tf-efficientnet.yml");
    let text = std::fs::read_to_string(&file).unwrap();
    // A second model in the TF EfficientNet collection: l2_ns_475's entry, renamed, at b0.
    let models_at = text.find("Models:\n").unwrap() + "Models:\n".len();
    let entry = &text[models_at..];
    let added = entry
        .replace("tf_efficientnet_l2_ns_475", "tf_efficientnet_b0_copy")
        .replace("l2_ns_475", "b0_copy")
        .replace(
            "tf_efficientnet_l2.ns_jft_in1k_475",
            "tf_efficientnet_b0.copy",
        )
        .replace(
            "Architecture: tf_efficientnet_l2",
            "Architecture: tf_efficientnet_b0",
        );
    std::fs::write(&file, format!("{text}{added}")).unwrap();
    std::fs::write(tmp.path().join("schemas/zoo-extension.schema.json"), "{}\n").unwrap();
    let (code, out, err) = zoo(&["--registry", reg.to_str().unwrap(), "docs", "--check"]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("tf-efficientnet.md (committed)"), "{out}");
    assert!(out.contains("+- Name: tf_efficientnet_b0_copy\n"), "{out}");
    // b0's exact count, measured, not the copied L2 value.
    assert!(out.contains("+    Parameters: 5288548\n"), "{out}");
    assert!(
        out.contains("zoo-extension.schema.json (committed)"),
        "{out}"
    );
    assert!(!out.contains("noisy-student.md"), "{out}");
}

#[test]
fn generated_cards_pass_check_cards() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, err) = zoo(&["docs", "--out", tmp.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let cards = [
        tmp.path().join("cards/noisy-student.md"),
        tmp.path().join("cards/tf-efficientnet.md"),
    ];
    for c in &cards {
        assert_eq!(
            std::fs::read_to_string(c).unwrap(),
            std::fs::read_to_string(
                root()
                    .join("registry")
                    .join(c.strip_prefix(tmp.path()).unwrap())
            )
            .unwrap()
        );
    }
    assert!(tmp.path().join("schemas/model-index.schema.json").is_file());
    let mut args = vec!["check-cards"];
    args.extend(cards.iter().map(|c| c.to_str().unwrap()));
    let (code, out, err) = zoo(&args);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("0 error(s), 0 warning(s)"), "{err}");
}

#[test]
fn cards_report_measured_values_under_a_named_convention() {
    let cards = zoo::docs::render_cards(&Registry::embedded().unwrap()).unwrap();
    let ns = &cards[0];
    assert_eq!(ns.collection, "Noisy Student");
    assert_eq!(
        ns.models.first().map(String::as_str),
        Some("tf_efficientnet_b0_ns")
    );
    let (card, diags) = zoo::card::Card::parse(Path::new("noisy-student.md"), &ns.text);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let index = &card.unwrap().blocks[0].index;
    let models = index.models.as_ref().unwrap();
    assert!(models.iter().all(|m| m.zoo.is_none()));
    let b7 = models
        .iter()
        .find(|m| m.name() == "tf_efficientnet_b7_ns")
        .unwrap();
    let meta = b7.metadata.as_ref().unwrap();
    // Exact count, not the card's float-artefact 66349999.
    assert_eq!(meta.parameters.as_ref().unwrap().value, 66_347_960);
    // thop-2020 at 600x764 equals the documented value; the legacy .pth prediction too.
    assert_eq!(meta.flops.as_ref().unwrap().value, 48_205_304_880);
    assert_eq!(meta.file_size.as_ref().unwrap().value, 266_853_140);
    assert!(ns.text.contains("    FLOPs Convention: thop-2020\n"));
    assert!(ns
        .text
        .contains("timm.create_model('tf_efficientnet_b0_ns', pretrained=True)"));
}

#[test]
fn noisy_student_card_snapshot() {
    let cards = zoo::docs::render_all(&Registry::embedded().unwrap()).unwrap();
    insta::assert_snapshot!("noisy_student_card", cards[0].1);
}

#[test]
fn full_sha256_is_reported_only_when_it_agrees_with_the_file_name() {
    let tmp = temp_project();
    let reg = tmp.path().join("registry");
    let file = reg.join("efficientnet/noisy-student.yml");
    let text = std::fs::read_to_string(&file).unwrap();
    let line = "      Sha256 Prefix: 'c0e6a31c'\n";
    let good = format!("c0e6a31c{}", "0".repeat(56));
    std::fs::write(
        &file,
        text.replacen(line, &format!("{line}      Sha256: '{good}'\n"), 1),
    )
    .unwrap();
    let cards = zoo::docs::render_cards(&Registry::load(&reg).unwrap()).unwrap();
    assert!(
        cards[0]
            .text
            .contains(&format!("    Weights Sha256: {good}\n")),
        "{}",
        cards[0].text
    );
    assert_eq!(cards[0].text.matches("Weights Sha256").count(), 1);
    let bad = "f".repeat(64);
    std::fs::write(
        &file,
        text.replacen(line, &format!("{line}      Sha256: '{bad}'\n"), 1),
    )
    .unwrap();
    match zoo::docs::render_cards(&Registry::load(&reg).unwrap()) {
        Err(zoo::docs::DocsError::Sha256Mismatch { model, prefix, .. }) => {
            assert_eq!(model, "tf_efficientnet_b0_ns");
            assert_eq!(prefix, "c0e6a31c");
        }
        other => panic!("expected a sha256 mismatch, got {other:?}"),
    }
}

#[test]
fn collection_without_template_is_an_error() {
    let tmp = temp_project();
    let reg = tmp.path().join("registry");
    std::fs::remove_file(reg.join("templates/collections/tf-efficientnet.md.j2")).unwrap();
    let (code, _, err) = zoo(&["--registry", reg.to_str().unwrap(), "docs", "--check"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("collection `TF EfficientNet` has no card template `templates/collections/tf-efficientnet.md.j2`"),
        "{err}"
    );
}

/// A card an earlier `zoo docs` generated (it carries the marker) that nothing generates now is
/// stale, and regenerating removes it; a file without the marker is not zoo's and stays.
#[test]
fn orphan_cards_are_stale_and_removed_by_regenerating() {
    let tmp = temp_project();
    let reg = tmp.path().join("registry");
    let orphan = reg.join("cards/old-collection.md");
    std::fs::write(&orphan, format!("# Old\n{}\n", zoo::docs::GENERATED_MARKER)).unwrap();
    let notes = reg.join("cards/notes.md");
    std::fs::write(&notes, "# my notes\n").unwrap();
    let reg_arg = reg.to_str().unwrap();
    let (code, out, err) = zoo(&["--registry", reg_arg, "docs", "--check"]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("old-collection.md (committed)"), "{out}");
    assert!(out.contains("-# Old\n"), "{out}");
    assert!(!out.contains("notes.md"), "{out}");
    let (code, _, err) = zoo(&["--registry", reg_arg, "docs"]);
    assert_eq!(code, 0, "{err}");
    assert!(!orphan.exists());
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "# my notes\n");
    assert!(reg.join("cards/noisy-student.md").is_file());
    let (code, _, err) = zoo(&["--registry", reg_arg, "docs", "--check"]);
    assert_eq!(code, 0, "{err}");
}
