//! Where zoo writes, what it may delete, and with which permissions (issue 14: M4, L5, L7, L8,
//! L14 and the `--out` messages).
use std::path::{Path, PathBuf};

use crate::{copy_dir, fixture, root, zoo};

const TINY: &str = "efficientnet:width=0.05,depth=0.5,classes=10";

fn tarball() -> String {
    fixture("efficientnet-tiny/efficientnet-tiny.tar.gz")
        .display()
        .to_string()
}

/// Every file under `dir`, recursively, relative and sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = vec![];
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// M4: `--name-as` with `..`, an absolute path or a separator is refused before anything is
/// written, and nothing appears outside (or inside) `--out`.
#[test]
fn convert_name_as_cannot_leave_the_output_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("a/b");
    let abs = tmp.path().join("abs/V06_abs").display().to_string();
    for name in ["../../escape", "..", &abs, "x/y", ".hidden", "bell\u{7}"] {
        let (code, stdout, err) = zoo(&[
            "convert",
            "--from",
            &tarball(),
            "--arch",
            TINY,
            "--out",
            &out.display().to_string(),
            "--name-as",
            name,
        ]);
        assert_eq!(code, 2, "{name:?}: {stdout}{err}");
        assert!(err.contains("output name"), "{name:?}: {err}");
        assert!(err.contains("--name-as"), "{name:?}: {err}");
        assert!(
            tree(tmp.path()).is_empty(),
            "{name:?}: {:?}",
            tree(tmp.path())
        );
    }
}

/// M4: the default name is the source's stem; a stem that is not a plain file name is refused
/// the same way.
#[test]
fn convert_source_stem_must_be_a_plain_name() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join(".sneaky.tar.gz");
    std::fs::copy(tarball(), &src).unwrap();
    let out = tmp.path().join("out");
    let (code, _, err) = zoo(&[
        "convert",
        "--from",
        &src.display().to_string(),
        "--arch",
        TINY,
        "--out",
        &out.display().to_string(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("\".sneaky\"") || err.contains(".sneaky"),
        "{err}"
    );
    assert!(!out.exists());
}

/// M4 + L5: a registry whose model `Name:` would leave `--out` does not load, so
/// `zoo convert NAME` writes nothing; the error is at the name's line and column.
#[test]
fn registry_name_escaping_out_is_refused_at_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = tmp.path().join("reg");
    copy_dir(&fixture("registry-tiny"), &reg);
    let card = reg.join("tiny.yml");
    let text = std::fs::read_to_string(&card).unwrap();
    std::fs::write(
        &card,
        text.replace(
            "- Name: efficientnet_tiny\n",
            "- Name: ../../C09_name_escape\n",
        ),
    )
    .unwrap();
    let out = tmp.path().join("out/C09/a/b");
    let (code, _, err) = zoo(&[
        "--registry",
        &reg.display().to_string(),
        "convert",
        "../../C09_name_escape",
        "--from",
        &tarball(),
        "--out",
        &out.display().to_string(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "tiny.yml:5:9: error: `Name` `../../C09_name_escape` must be a single file name"
        ),
        "{err}"
    );
    assert!(!tmp.path().join("out").exists());
}

/// L5: `check-cards` refuses path-unsafe `File:` values and model names, each at its own
/// file:line:col, and passes the same card with plain names.
#[test]
fn check_cards_refuses_path_unsafe_file_and_name_values() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("registry-tiny/tiny.yml")).unwrap();
    let cases = [
        (
            "- Name: efficientnet_tiny\n",
            "- Name: a/b\n",
            "5:9",
            "`Name` `a/b`",
        ),
        (
            "- Name: efficientnet_tiny\n",
            "- Name: /abs\n",
            "5:9",
            "`Name` `/abs`",
        ),
        (
            "- Name: efficientnet_tiny\n",
            "- Name: \"bad\\x1bname\"\n",
            "5:9",
            "control character",
        ),
        (
            "File: efficientnet-tiny.tar.gz",
            "File: ../../../../tmp/x.tar.gz",
            "34:13",
            "`File` `../../../../tmp/x.tar.gz`",
        ),
        (
            "File: efficientnet-tiny.tar.gz",
            "File: /tmp/x.tar.gz",
            "34:13",
            "`File` `/tmp/x.tar.gz`",
        ),
        (
            "File: efficientnet-tiny.tar.gz",
            "File: '..'",
            "34:13",
            "`File` `..`",
        ),
    ];
    for (i, (from, to, at, needle)) in cases.iter().enumerate() {
        let card = tmp.path().join(format!("case{i}.yml"));
        assert!(text.contains(from));
        std::fs::write(&card, text.replacen(from, to, 1)).unwrap();
        let path = card.display().to_string();
        let (code, out, err) = zoo(&["check-cards", &path]);
        assert_eq!(code, 1, "{to}: {out}{err}");
        let line = format!("{path}:{at}: error: ");
        assert!(
            out.lines()
                .any(|l| l.starts_with(&line) && l.contains(needle)),
            "{to}: want {line}…{needle} in\n{out}"
        );
    }
    let plain = tmp.path().join("plain.yml");
    std::fs::write(&plain, &text).unwrap();
    let (code, out, err) = zoo(&["check-cards", &plain.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
}

/// L7: when placing fails half-way, only files this run created are removed: an earlier run's
/// `.pth` of the same name survives.
#[test]
fn convert_rollback_keeps_files_an_earlier_run_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let args = |out: &Path| {
        vec![
            "convert".to_string(),
            "--from".to_string(),
            tarball(),
            "--arch".to_string(),
            TINY.to_string(),
            "--out".to_string(),
            out.display().to_string(),
        ]
    };
    let run = |a: Vec<String>| zoo(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let (code, _, err) = run(args(&out));
    assert_eq!(code, 0, "{err}");
    let files = tree(&out);
    let pth = files.iter().find(|f| f.ends_with(".pth")).unwrap().clone();
    let st = files
        .iter()
        .find(|f| f.ends_with(".safetensors"))
        .unwrap()
        .clone();
    let before = std::fs::read(out.join(&pth)).unwrap();
    // The second run's safetensors rename hits a non-empty directory and fails.
    std::fs::remove_file(out.join(&st)).unwrap();
    std::fs::create_dir_all(out.join(&st).join("x")).unwrap();
    let (code, _, err) = run(args(&out));
    assert_eq!(code, 2, "{err}");
    assert_eq!(std::fs::read(out.join(&pth)).unwrap(), before, "{err}");
    assert!(out.join(&st).join("x").is_dir());
    // No staging directory is left behind.
    let left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".zoo-convert-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Q6 (V01): `--out` naming a file says so instead of a bare "File exists".
#[test]
fn convert_out_that_is_a_file_says_it_is_not_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("taken");
    std::fs::write(&file, b"mine").unwrap();
    let (code, _, err) = zoo(&[
        "convert",
        "--from",
        &tarball(),
        "--arch",
        TINY,
        "--out",
        &file.display().to_string(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("exists and is not a directory"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"mine");
}

/// The process umask, from `/proc/self/status` (Linux); 022 where it cannot be read.
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A copy of the embedded registry (templates, cards, model index) to render docs from.
fn registry_copy(dir: &Path) -> PathBuf {
    let reg = dir.join("registry");
    copy_dir(&root().join("registry"), &reg);
    reg
}

/// L14: cards from `zoo docs` and `weights.lock` are readable by others (0666 minus the umask,
/// 0644 under umask 022), not tempfile's 0600.
#[cfg(unix)]
#[test]
fn docs_cards_and_the_weights_lock_are_not_private() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = registry_copy(tmp.path());
    let out = tmp.path().join("out");
    let (code, _, err) = zoo(&[
        "--registry",
        &reg.display().to_string(),
        "docs",
        "--out",
        &out.display().to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    let want = 0o666 & !umask();
    let written = tree(&out);
    assert!(written.iter().any(|f| f.ends_with(".md")), "{written:?}");
    for f in &written {
        assert_eq!(mode(&out.join(f)), want, "{f}");
    }
    let lock = tmp.path().join("weights.lock");
    zoo::fetch::WeightsLock::record(
        &lock,
        "a.pth",
        zoo::fetch::LockedFile {
            file: "a.pth".into(),
            model: None,
            role: None,
            sha256: "ab".repeat(32),
            size: 1,
        },
    )
    .unwrap();
    assert_eq!(mode(&lock), want);
}

/// L14: convert outputs are 0644.
#[cfg(unix)]
#[test]
fn convert_outputs_are_readable_by_all() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (code, _, err) = zoo(&[
        "convert",
        "--from",
        &tarball(),
        "--arch",
        TINY,
        "--out",
        &out.display().to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    for f in tree(&out) {
        assert_eq!(mode(&out.join(&f)), 0o644, "{f}");
    }
}

/// L14: an exported Hub folder is readable by others: the weights 0644 (as every convert
/// output), `config.json` and `README.md` 0666 minus the umask, the folder 0755.
#[cfg(unix)]
#[test]
fn export_files_are_readable_by_all() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hub");
    let (code, _, err) = zoo(&[
        "--registry",
        &fixture("registry-tiny").display().to_string(),
        "export",
        "tiny",
        "--from",
        &tarball(),
        "--hf",
        &dir.display().to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(mode(&dir.join("model.safetensors")), 0o644);
    for f in ["config.json", "README.md"] {
        assert_eq!(mode(&dir.join(f)), 0o666 & !umask(), "{f}");
    }
    assert_eq!(mode(&dir), 0o755);
}

/// L12: a FIFO as the source of `convert` is refused before it is opened (it would block).
#[cfg(unix)]
#[test]
fn convert_refuses_a_fifo_source() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("ckpt.pth");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let (code, _, err) = zoo(&[
        "convert",
        "--from",
        &fifo.display().to_string(),
        "--arch",
        TINY,
        "--out",
        &tmp.path().join("out").display().to_string(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a regular file (a FIFO)"), "{err}");
}

/// L8: `zoo docs --out DIR` never deletes files it did not generate: notes and a README in
/// `DIR/cards/` (and a hand-written Hub README) survive, while a stale card carrying zoo's
/// generated marker is removed as an orphan.
#[test]
fn docs_out_keeps_files_it_did_not_generate() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = registry_copy(tmp.path());
    let out = tmp.path().join("out");
    let cards = out.join("cards");
    std::fs::create_dir_all(cards.join("hf/mine")).unwrap();
    std::fs::write(cards.join("my-notes.md"), "notes\n").unwrap();
    std::fs::write(cards.join("README.md"), "# my readme\n").unwrap();
    std::fs::write(
        cards.join("hf/mine/README.md"),
        "---\nlicense: mit\n---\nmine\n",
    )
    .unwrap();
    // A card an earlier `zoo docs` generated for a collection that no longer exists.
    let stale = format!("# Old collection\n\n{}\n", zoo::docs::GENERATED_MARKER);
    std::fs::write(cards.join("old-collection.md"), &stale).unwrap();
    let (code, _, err) = zoo(&[
        "--registry",
        &reg.display().to_string(),
        "docs",
        "--out",
        &out.display().to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(cards.join("my-notes.md")).unwrap(),
        "notes\n"
    );
    assert_eq!(
        std::fs::read_to_string(cards.join("README.md")).unwrap(),
        "# my readme\n"
    );
    assert!(cards.join("hf/mine/README.md").is_file());
    assert!(!cards.join("old-collection.md").exists(), "{err}");
    assert!(err.contains("old-collection.md"), "{err}");
    assert!(!err.contains("my-notes.md"), "{err}");
    // Every card zoo wrote carries the marker, so a later run can tell it is zoo's.
    for f in tree(&cards) {
        let text = std::fs::read_to_string(cards.join(&f)).unwrap();
        let user = ["my-notes.md", "README.md", "hf/mine/README.md"].contains(&f.as_str());
        assert_eq!(text.contains(zoo::docs::GENERATED_MARKER), !user, "{f}");
    }
}
