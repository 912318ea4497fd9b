//! Card I/O and the strict schema check: round trips and located diagnostics.
use std::path::{Path, PathBuf};

use zoo::card::Card;
use zoo::diagnostic::Severity;
use zoo::registry::check_cards;

use crate::{fixture, zoo};

const NOISY: &str = "cards/noisy-student.md";

fn read(rel: &str) -> (PathBuf, String) {
    let path = fixture(rel);
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

/// The YAML between `<!--` and `-->`, minus the newline after `<!--`.
fn comment_yaml(text: &str) -> &str {
    let start = text.find("<!--\n").unwrap() + 5;
    let end = text.rfind("-->").unwrap();
    &text[start..end]
}

#[test]
fn noisy_student_card_round_trips_byte_for_byte() {
    let (path, text) = read(NOISY);
    let (card, diags) = Card::parse(&path, &text);
    assert_eq!(diags, vec![], "the published card has no findings");
    let card = card.unwrap();
    assert_eq!(card.blocks.len(), 1);
    let models = card.blocks[0].index.models.as_ref().unwrap();
    assert_eq!(models.len(), 9);
    // The written index block equals the original, and so does the whole file.
    assert_eq!(card.index_yaml(), comment_yaml(&text));
    assert_eq!(card.write(), text);
    insta::assert_snapshot!("noisy_student_index_block", card.index_yaml());
    // parse → write → parse gives the same typed data.
    let (again, _) = Card::parse(&path, &card.write());
    assert_eq!(again.unwrap().blocks[0].index, card.blocks[0].index);
}

#[test]
fn mixed_scalar_types_are_typed_and_keep_their_spelling() {
    let (path, text) = read(NOISY);
    let card = Card::parse(&path, &text).0.unwrap();
    let b0 = &card.blocks[0].index.models.as_ref().unwrap()[0];
    let meta = b0.metadata.as_ref().unwrap();
    let image = meta.image_size.as_ref().unwrap();
    assert_eq!((image.value, image.raw.text.as_str()), (224, "224"));
    assert_eq!(image.raw.style, zoo::schema::yaml::Style::SingleQuoted);
    assert_eq!(meta.crop_pct.as_ref().unwrap().value, 0.875);
    assert_eq!(meta.lr.as_ref().unwrap().value, 0.128);
    let wd = meta.weight_decay.as_ref().unwrap();
    assert_eq!((wd.value, wd.raw.text.as_str()), (1.0e-05, "1.0e-05"));
    assert_eq!(meta.flops.as_ref().unwrap().value, 488_688_572);
    let top1 = b0.top1().unwrap();
    assert_eq!((top1.value, top1.percent), (78.66, true));
    let l2 = &card.blocks[0].index.models.as_ref().unwrap()[8];
    let tt = l2
        .metadata
        .as_ref()
        .unwrap()
        .training_time
        .as_ref()
        .unwrap();
    assert_eq!(tt.seconds, Some(6 * 86400));
}

#[test]
fn check_cards_passes_the_published_card() {
    let (code, out, err) = zoo(&["check-cards", "tests/fixtures/cards/noisy-student.md"]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(err.contains("0 error(s)"), "{err}");
}

fn lines(diags: &[zoo::diagnostic::Diagnostic], base: &Path) -> Vec<String> {
    diags
        .iter()
        .map(|d| {
            let rel = d.file.strip_prefix(base).unwrap_or(&d.file);
            format!(
                "{}:{}:{}: {}: {}",
                rel.display(),
                d.line,
                d.col,
                d.severity,
                d.message
            )
        })
        .collect()
}

#[test]
fn schema_errors_name_file_line_and_column() {
    let path = fixture("cards/bad/errors.yml");
    let diags = check_cards(std::slice::from_ref(&path));
    let first = format!("{}:10:9", path.display());
    let expected = [
        "errors.yml:5:3: error: model is missing `Name`".to_string(),
        "errors.yml:9:18: error: `In Collection` names `Nowhere`, which is not defined (collections: `Good`)".to_string(),
        "errors.yml:13:12: error: `FLOPs` must be an integer, found `lots`".to_string(),
        "errors.yml:14:17: error: `Parameters` must be a non-negative integer, found `-5`".to_string(),
        format!("errors.yml:15:9: error: duplicate model `counts` (first defined at {first})"),
        "errors.yml:19:3: info: unknown key `Flavour` in a model (kept)".to_string(),
    ];
    assert_eq!(lines(&diags, &fixture("cards/bad")), expected);
}

#[test]
fn unknown_keys_are_kept_when_written_back() {
    let (path, text) = read("cards/bad/errors.yml");
    let card = Card::parse(&path, &text).0.unwrap();
    let models = card.blocks[0].index.models.as_ref().unwrap();
    let extra = &models.iter().find(|m| m.name() == "extra").unwrap().extra;
    assert_eq!(extra.0.len(), 1);
    assert_eq!(extra.0[0].0.text, "Flavour");
    assert!(card.write().contains("  Flavour: vanilla\n"));
}

#[test]
fn malformed_comment_block_is_an_error_at_its_markdown_line() {
    let path = fixture("cards/bad/malformed-comment.md");
    let diags = check_cards(std::slice::from_ref(&path));
    assert_eq!(diags.len(), 1, "{diags:?}");
    let d = &diags[0];
    assert_eq!(d.severity, Severity::Error);
    assert!(d.message.starts_with("invalid YAML"), "{}", d.message);
    assert_eq!((d.line, d.col), (10, 10), "{d}");

    let path = fixture("cards/bad/unclosed-comment.md");
    let diags = check_cards(std::slice::from_ref(&path));
    assert_eq!(
        lines(&diags, &fixture("cards/bad")),
        vec!["unclosed-comment.md:3:1: error: model-index comment is not closed (no `-->`)"]
    );
}

#[test]
fn zoo_block_is_strict() {
    let path = fixture("cards/bad/bad-zoo.yml");
    let diags = check_cards(std::slice::from_ref(&path));
    let got = lines(&diags, &fixture("cards/bad"));
    assert_eq!(got.len(), 4, "{got:#?}");
    assert!(
        got[0].starts_with("bad-zoo.yml:5:19: error: `Architecture` `b99` does not parse"),
        "{got:#?}"
    );
    assert_eq!(
        got[1],
        "bad-zoo.yml:6:5: error: unknown key `Colour` in the Zoo block"
    );
    assert_eq!(
        got[2],
        "bad-zoo.yml:11:9: error: URL must be http(s), found `ftp://example.com/x.pth`"
    );
    assert_eq!(
        got[3],
        "bad-zoo.yml:12:15: error: `Sha256` must be 64 lowercase hex digits, found `abc`"
    );
}

#[test]
fn check_cards_cli_exits_1_with_located_errors() {
    let (code, out, _) = zoo(&["check-cards", "tests/fixtures/cards/bad/errors.yml"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("tests/fixtures/cards/bad/errors.yml:13:12: error: `FLOPs` must be an integer, found `lots`"),
        "{out}"
    );
    let (code, _, err) = zoo(&["check-cards", "tests/fixtures/cards/does-not-exist.md"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn list_metrics_string_papers_and_registry_files_round_trip() {
    let text = "\
Type: model-index
Collections:
- Name: C
  Paper: https://arxiv.org/abs/1911.04252
Models:
- Name: m
  In Collection: C
  Results:
  - Task: Image Classification
    Dataset: ImageNet
    Metrics:
    - Name: Top 1 Accuracy
      Value: 78.66%
    - Name: Top 5 Accuracy
      Value: 94.37
";
    let path = Path::new("inline.yml");
    let (card, diags) = Card::parse(path, text);
    assert_eq!(diags, vec![]);
    let card = card.unwrap();
    let m = &card.blocks[0].index.models.as_ref().unwrap()[0];
    assert_eq!(m.top1().unwrap().value, 78.66);
    assert!(matches!(
        card.blocks[0].index.collections.as_ref().unwrap()[0].paper,
        Some(zoo::schema::Paper::Link(_))
    ));
    assert_eq!(card.write(), text);

    // Registry files round trip too, apart from their leading `#` comment lines.
    for rel in [
        "efficientnet/noisy-student.yml",
        "efficientnet/tf-efficientnet.yml",
    ] {
        let path = crate::root().join("registry").join(rel);
        let text = std::fs::read_to_string(&path).unwrap();
        let body: String = text
            .lines()
            .skip_while(|l| l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        let card = Card::parse(&path, &text).0.unwrap();
        assert_eq!(card.index_yaml(), body, "{rel}");
    }
}

#[test]
fn sha256_prefix_must_match_the_file_name() {
    let text = "\
Models:
- Name: m
  Zoo:
    Architecture: tf_efficientnet_b0
    Files:
    - Role: timm-pth
      File: tf_efficientnet_b0_ns-c0e6a31c.pth
      Urls:
      - https://example.com/tf_efficientnet_b0_ns-c0e6a31c.pth
      Sha256 Prefix: 'deadbeef'
      Format: pth-legacy
";
    let (_, diags) = Card::parse(Path::new("p.yml"), text);
    let got: Vec<String> = diags.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        ["p.yml:10:22: error: `Sha256 Prefix` `deadbeef` disagrees with the file name's hash `c0e6a31c`"]
    );
}

#[test]
fn check_cards_follows_imports_of_a_root_index() {
    let (code, out, err) = zoo(&["check-cards", "registry/model-index.yml", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let diags: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(diags, serde_json::json!([]));
    // Checked together, the registry and the published card define the same models twice.
    let (code, out, _) = zoo(&[
        "check-cards",
        "registry/model-index.yml",
        "tests/fixtures/cards/noisy-student.md",
    ]);
    assert_eq!(code, 1);
    assert_eq!(out.matches("error: duplicate model").count(), 9, "{out}");
}
