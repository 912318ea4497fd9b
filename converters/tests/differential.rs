//! Replays the differential fuzzers' corpora (`fuzz/corpus/pth_diff`, `fuzz/corpus/tar_diff`):
//! seeds, mutants zoo accepts, and the inputs on which zoo once disagreed with the reference
//! reader (`found-*`). Without Python the replay only checks that zoo answers every input;
//! with `ZOO_PYTHON` (`make test`) each answer is compared with `torch.load(weights_only=True)`
//! or Python's `tarfile` by `tests/python/diff_fuzz.py compare`.
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "support/digest.rs"]
mod digest;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn answers(kind: &str, files: &[PathBuf]) -> Vec<serde_json::Value> {
    files
        .iter()
        .map(|f| match kind {
            "pth" => digest::pth(f),
            _ => digest::tar(f),
        })
        .collect()
}

#[test]
fn differential_corpora_replay_without_panics() {
    for (kind, target, min) in [("pth", "pth_diff", 40), ("tar", "tar_diff", 20)] {
        let files = corpus(target);
        assert!(files.len() >= min, "{target}: {} inputs", files.len());
        let total: u64 = files
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        assert!(
            files.len() <= 200 && total <= 2 << 20,
            "{target}: keep the corpus small"
        );
        let answers = answers(kind, &files);
        let accepted = answers.iter().filter(|a| a["ok"] == true).count();
        assert!(accepted >= min / 2, "{target}: zoo accepts only {accepted}");
    }
}

fn compare_with_python(kind: &str, target: &str) {
    let python = std::env::var_os("ZOO_PYTHON")
        .expect("set ZOO_PYTHON to a python interpreter with torch installed");
    let files = corpus(target);
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("zoo.jsonl");
    let lines: Vec<String> = answers(kind, &files)
        .iter()
        .map(|a| a.to_string())
        .collect();
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/diff_fuzz.py");
    let out = Command::new(python)
        .arg(script)
        .args(["compare", kind])
        .arg(&jsonl)
        .args(&files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{target}: zoo and the reference reader disagree:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{target}: {}", stdout.trim());
}

#[test]
#[ignore = "needs ZOO_PYTHON (python with torch); `make test` runs it"]
fn pth_corpus_agrees_with_torch_load_weights_only() {
    compare_with_python("pth", "pth_diff");
}

#[test]
#[ignore = "needs ZOO_PYTHON (python with torch); `make test` runs it"]
fn tar_corpus_agrees_with_python_tarfile() {
    compare_with_python("tar", "tar_diff");
}
