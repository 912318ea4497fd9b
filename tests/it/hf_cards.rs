//! Hugging Face Hub model cards (README.md with YAML front matter): the valid timm-style card has
//! no findings, and each seeded mistake is reported at the line and column of the wrong value.
use std::path::{Path, PathBuf};

use zoo::card::{Card, CardKind};
use zoo::diagnostic::{Diagnostic, Severity};
use zoo::schema::hf;

use crate::{fixture, zoo};

const CARD: &str = "cards/hf/tf_efficientnet_b0.ns_jft_in1k.md";

fn valid_text() -> String {
    std::fs::read_to_string(fixture(CARD)).unwrap()
}

/// The valid card with one piece of text replaced (which must occur exactly once).
fn seeded(from: &str, to: &str) -> String {
    let text = valid_text();
    assert_eq!(text.matches(from).count(), 1, "`{from}` occurs once");
    text.replacen(from, to, 1)
}

fn findings(text: &str) -> Vec<Diagnostic> {
    Card::parse(Path::new("README.md"), text).1
}

/// The one finding of a seeded card, as `line:col: severity: message`.
fn only_finding(text: &str) -> String {
    let diags = findings(text);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    let d = &diags[0];
    format!("{}:{}: {}: {}", d.line, d.col, d.severity, d.message)
}

#[test]
fn timm_hub_card_has_no_findings_and_is_typed() {
    let text = valid_text();
    let (card, diags) = Card::parse(&fixture(CARD), &text);
    assert_eq!(diags, vec![]);
    let card = card.unwrap();
    assert_eq!(card.kind, CardKind::HubReadme);
    assert!(card.blocks.is_empty());
    assert_eq!(card.write(), text, "the front matter is left as written");
    let fm = card.front_matter.unwrap();
    assert_eq!(fm.library_name.unwrap().as_str(), "timm");
    assert_eq!(fm.license.unwrap().as_str(), "apache-2.0");
    assert_eq!(fm.pipeline_tag.unwrap().as_str(), "image-classification");
    let datasets: Vec<&str> = fm
        .datasets
        .as_ref()
        .unwrap()
        .as_slice()
        .iter()
        .map(|t| t.as_str())
        .collect();
    assert_eq!(datasets, ["imagenet-1k", "jft-300m"]);
    let entry = &fm.model_index.as_ref().unwrap()[0];
    assert_eq!(
        entry.name.as_ref().unwrap().as_str(),
        "tf_efficientnet_b0.ns_jft_in1k"
    );
    let result = &entry.results.as_ref().unwrap()[0];
    let dataset = result.dataset.as_ref().unwrap();
    assert_eq!(dataset.type_.as_ref().unwrap().as_str(), "imagenet-1k");
    assert_eq!(dataset.split.as_ref().unwrap().as_str(), "validation");
    let metrics = result.metrics.as_ref().unwrap();
    let top1 = metrics[0].value.as_ref().unwrap();
    assert_eq!(top1.value, 78.66);
    // Positions are the .md file's own: line 23, after `      value: `.
    assert_eq!((top1.raw.pos.line, top1.raw.pos.col), (23, 14));
    assert!(metrics.iter().all(hf::Metric::is_accuracy));
    assert_eq!(
        result
            .source
            .as_ref()
            .unwrap()
            .url
            .as_ref()
            .unwrap()
            .as_str(),
        "https://github.com/huggingface/pytorch-image-models"
    );
}

#[test]
fn read_readme_checks_a_generated_readme_from_a_string() {
    let (fm, diags) = hf::read_readme(Path::new("README.md"), &valid_text());
    assert_eq!(diags, vec![]);
    assert!(fm.unwrap().model_index.is_some());
    let (fm, diags) = hf::read_readme(Path::new("README.md"), "# no metadata\n");
    assert!(fm.is_none());
    assert_eq!(
        diags[0].to_string(),
        "README.md:1:1: error: no front matter: a Hub model card starts with a `---` line"
    );
}

#[test]
fn crlf_card_has_the_same_lines() {
    let text = valid_text().replace('\n', "\r\n");
    assert_eq!(findings(&text), vec![]);
    let seeded = text.replacen("value: 78.66", "value: high", 1);
    assert_eq!(
        only_finding(&seeded),
        "23:14: error: `value` must be a number, found `high`"
    );
}

#[test]
fn hub_card_without_model_index_is_fine() {
    let text = valid_text();
    let start = text.find("model-index:").unwrap();
    let end = text.find("---\n# Model card").unwrap();
    let text = format!("{}{}", &text[..start], &text[end..]);
    let (card, diags) = Card::parse(Path::new("README.md"), &text);
    assert_eq!(diags, vec![]);
    let fm = card.unwrap().front_matter.unwrap();
    assert!(fm.model_index.is_none());
    assert_eq!(fm.tags.unwrap().as_slice().len(), 2);
}

#[test]
fn missing_required_keys_are_reported_at_their_mapping() {
    // The metric mapping starts at `type` (line 22, col 7).
    assert_eq!(
        only_finding(&seeded("      value: 78.66\n", "")),
        "22:7: error: a `model-index` metric is missing `value`"
    );
    // The dataset mapping starts at `name` (line 18, col 7).
    assert_eq!(
        only_finding(&seeded("      type: imagenet-1k\n", "")),
        "18:7: error: a `model-index` dataset is missing `type`"
    );
    // The entry starts at `name` (line 12, col 3).
    assert_eq!(
        only_finding(&seeded(
            "- name: tf_efficientnet_b0.ns_jft_in1k\n  results:",
            "- results:"
        )),
        "12:3: error: a `model-index` entry is missing `name`"
    );
}

#[test]
fn wrong_types_are_reported_at_the_value() {
    assert_eq!(
        only_finding(&seeded("value: 78.66", "value: high")),
        "23:14: error: `value` must be a number, found `high`"
    );
    assert_eq!(
        only_finding(&seeded("value: 78.66", "value: '78.66'")),
        "23:14: error: `value` must be a number, found the string `78.66` (remove the quotes)"
    );
    assert_eq!(
        only_finding(&seeded("license: apache-2.0", "license: [apache-2.0, mit]")),
        "6:10: error: `license` must be a string, found a list"
    );
    assert_eq!(
        only_finding(&seeded("library_name: timm", "library_name: 1.0")),
        "5:15: error: `library_name` must be a string, found `1.0` (YAML reads it as a number; quote it)"
    );
    assert_eq!(
        only_finding(&seeded(
            "pipeline_tag: image-classification",
            "pipeline_tag: {task: image-classification}"
        )),
        "10:15: error: `pipeline_tag` must be a string, found a mapping"
    );
    assert_eq!(
        only_finding(&seeded(
            "      name: Top 5 Accuracy\n",
            "      name: Top 5 Accuracy\n      verified: maybe\n"
        )),
        "28:17: error: `verified` must be `true` or `false`, found `maybe`"
    );
    assert_eq!(
        only_finding(&seeded(
            "    source:\n      name: Papers with Code model-index (timm docs)\n      url: https://github.com/huggingface/pytorch-image-models\n",
            "    source: Papers with Code\n"
        )),
        "28:13: error: `source` must be a mapping, found a scalar"
    );
}

#[test]
fn non_finite_metric_values_are_errors() {
    assert_eq!(
        only_finding(&seeded("value: 94.37", "value: .inf")),
        "26:14: error: `value` must be a finite number, found `.inf`"
    );
    assert_eq!(
        only_finding(&seeded("value: 94.37", "value: .nan")),
        "26:14: error: `value` must be a finite number, found `.nan`"
    );
}

#[test]
fn accuracy_outside_0_to_100_is_an_error() {
    assert_eq!(
        only_finding(&seeded("value: 78.66", "value: 786.6")),
        "23:14: error: accuracy `Top 1 Accuracy` must be within 0..=100, found `786.6`"
    );
    // Recognised by its name alone, too.
    let text = seeded(
        "    - type: accuracy\n      value: 94.37",
        "    - type: top-k\n      value: -94.37",
    );
    assert_eq!(
        only_finding(&text),
        "26:14: error: accuracy `Top 5 Accuracy` must be within 0..=100, found `-94.37`"
    );
}

#[test]
fn duplicate_keys_are_errors() {
    assert_eq!(
        only_finding(&seeded(
            "pipeline_tag: image-classification",
            "license: image-classification"
        )),
        "10:1: error: invalid YAML in front matter: duplicate key `license` (first at line 6)"
    );
}

#[test]
fn duplicate_results_in_one_entry_are_errors() {
    assert_eq!(
        only_finding(&seeded("name: Top 5 Accuracy", "name: Top 1 Accuracy")),
        "27:13: error: duplicate result for task `image-classification`, dataset `imagenet-1k` \
         split `validation`, metric `Top 1 Accuracy` (first at line 24)"
    );
    // Across results of one entry: the result (lines 14-30) repeated as lines 31-47.
    let text = valid_text();
    let first = text.find("  - task:").unwrap();
    let end = text.find("---\n# Model card").unwrap();
    let repeated = format!("{}{}{}", &text[..end], &text[first..end], &text[end..]);
    let lines: Vec<usize> = findings(&repeated).iter().map(|d| d.line).collect();
    assert_eq!(lines, [41, 44]);
    // A different split is a different result.
    let second = text[first..end].replace("split: validation", "split: test");
    let text = format!("{}{second}{}", &text[..end], &text[end..]);
    assert_eq!(findings(&text), vec![]);
}

#[test]
fn near_miss_keys_are_errors_with_a_suggestion() {
    assert_eq!(
        only_finding(&seeded("library_name: timm", "libary_name: timm")),
        "5:1: error: unknown key `libary_name` in the front matter; did you mean `library_name`?"
    );
    assert_eq!(
        only_finding(&seeded("model-index:", "model_index:")),
        "11:1: error: unknown key `model_index` in the front matter; did you mean `model-index`?"
    );
    // A near miss of a required key is reported once (not also as missing).
    assert_eq!(
        only_finding(&seeded("      value: 78.66", "      vaule: 78.66")),
        "23:7: error: unknown key `vaule` in a `model-index` metric; did you mean `value`?"
    );
    // Other unknown keys are kept, as info.
    let text = seeded(
        "license: apache-2.0\n",
        "license: apache-2.0\npretty_name: B0\n",
    );
    let diags = findings(&text);
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].severity, Severity::Info);
    assert_eq!(diags[0].line, 7);
    let fm = Card::parse(Path::new("README.md"), &text)
        .0
        .unwrap()
        .front_matter
        .unwrap();
    assert_eq!(fm.extra.0[0].0.text, "pretty_name");
}

#[test]
fn unclosed_or_invalid_front_matter_is_an_error() {
    let unclosed = seeded("---\n# Model card", "# Model card");
    assert_eq!(
        only_finding(&unclosed),
        "1:1: error: front matter is not closed: no `---` line after the opening `---`"
    );
    let (card, _) = Card::parse(Path::new("README.md"), &unclosed);
    assert!(card.is_none());
    let invalid = seeded("license: apache-2.0", "license: [apache-2.0");
    let finding = only_finding(&invalid);
    assert!(
        finding.starts_with("7:") && finding.contains("error: invalid YAML in front matter"),
        "{finding}"
    );
    assert_eq!(
        only_finding("---\n- timm\n---\n# Card\n"),
        "2:1: error: front matter must be a mapping, found a list"
    );
    assert_eq!(
        only_finding("---\n---\n# Card\n"),
        "2:1: warning: empty front matter"
    );
}

/// Writes `text` as `README.md` in a fresh directory under the target dir.
fn write_card(name: &str, text: &str) -> PathBuf {
    let dir = crate::root().join("target/tmp/hf_cards").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("README.md");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_cards_cli_exit_codes() {
    let valid = format!("tests/fixtures/{CARD}");
    let (code, out, err) = zoo(&["check-cards", &valid]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "");
    assert!(
        err.contains("checked 1 file(s): 0 error(s), 0 warning(s), 0 info"),
        "{err}"
    );

    let bad = write_card("bad", &seeded("value: 78.66", "value: high"));
    let (code, out, err) = zoo(&["check-cards", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        out,
        format!(
            "{}:23:14: error: `value` must be a number, found `high`\n",
            bad.display()
        )
    );
    assert!(err.contains("checked 1 file(s): 1 error(s)"), "{err}");

    let unclosed = write_card("unclosed", &seeded("---\n# Model card", "# Model card"));
    let (code, out, _) = zoo(&["check-cards", unclosed.to_str().unwrap(), &valid]);
    assert_eq!(code, 1);
    assert!(
        out.contains(":1:1: error: front matter is not closed"),
        "{out}"
    );

    // A Papers-with-Code card and a Hub card checked together.
    let (code, out, err) = zoo(&[
        "check-cards",
        "tests/fixtures/cards/noisy-student.md",
        &valid,
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        serde_json::json!([])
    );
}
