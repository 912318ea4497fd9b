//! Text from files (card values, tensor names, archive members) never reaches a terminal or a
//! report with its control characters: they are shown as `\u{..}` escapes, and a JUnit report
//! stays well-formed XML.
use std::path::Path;
use std::process::Command;

use crate::{copy_dir, root, zoo};

/// Runs zoo in `cwd` with an isolated cache there; returns (exit code, stdout, stderr).
fn zoo_in(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    crate::zoo_isolated_in(cwd, &cwd.join("cache"), args)
}

/// No C0/C1 control character but line breaks and tabs, and no bidi override.
fn assert_no_controls(what: &str, text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|c| (c.is_control() && !matches!(c, '\n' | '\t')) || *c == '\u{202e}')
        .collect();
    assert!(bad.is_empty(), "{what} holds raw {bad:?}:\n{text}");
}

/// Checks XML 1.0 well-formedness as far as a JUnit report needs it: only characters XML
/// allows, every `&` a known entity or a reference to an allowed character, quoted attribute
/// values without `<`, and tags that nest and close.
fn assert_well_formed_xml(x: &str) {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r')
            || ('\u{20}'..='\u{d7ff}').contains(&c)
            || ('\u{e000}'..='\u{fffd}').contains(&c)
            || c >= '\u{10000}'
    };
    if let Some(c) = x.chars().find(|c| !allowed(*c)) {
        panic!("character {c:?} is not allowed in XML 1.0:\n{x}");
    }
    for (i, _) in x.match_indices('&') {
        let rest = &x[i + 1..];
        let end = rest
            .find(';')
            .unwrap_or_else(|| panic!("unterminated entity at {i}"));
        let name = &rest[..end];
        let ok = match name {
            "amp" | "lt" | "gt" | "quot" | "apos" => true,
            n if n.starts_with("#x") => u32::from_str_radix(&n[2..], 16)
                .ok()
                .and_then(char::from_u32)
                .is_some_and(allowed),
            n if n.starts_with('#') => n[1..]
                .parse::<u32>()
                .ok()
                .and_then(char::from_u32)
                .is_some_and(allowed),
            _ => false,
        };
        assert!(ok, "bad reference &{name}; at {i}");
    }
    let mut stack: Vec<&str> = vec![];
    let mut rest = x;
    while let Some(open) = rest.find('<') {
        let tag_start = &rest[open + 1..];
        // The tag ends at the first `>` outside quotes.
        let mut quote = None;
        let mut end = None;
        for (j, c) in tag_start.char_indices() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (Some(_), '<') => panic!("`<` in an attribute value: {tag_start}"),
                (None, '>') => {
                    end = Some(j);
                    break;
                }
                _ => {}
            }
        }
        let end = end.unwrap_or_else(|| panic!("unterminated tag: {tag_start}"));
        let tag = &tag_start[..end];
        if tag.starts_with('?') {
        } else if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop(), Some(name.trim()), "mismatched </{name}>");
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().unwrap_or_default());
        }
        rest = &tag_start[end + 1..];
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

/// A card value with control characters (`Source: "tensorflow\x01\x1btpu"`): `zoo validate
/// --junit` writes XML that parses, and the text output holds no raw ESC. Before, the report
/// held a raw U+0001 (not allowed in XML 1.0) and the terminal got the escape sequence.
#[test]
fn a_card_value_with_control_characters_is_escaped_in_text_and_junit() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&root().join("registry"), &tmp.path().join("registry"));
    let card = tmp.path().join("registry/efficientnet/noisy-student.yml");
    let text = std::fs::read_to_string(&card).unwrap();
    // The source also reports a far-off accuracy, so a failure message (in JUnit too) names it.
    let from = "    - Source: tensorflow/tpu efficientnet README\n      Top 1 Accuracy: 78.8%";
    assert!(text.contains(from));
    let to = "    - Source: \"tensorflow\\x01\\e[31m\\u202Etpu\"\n      Top 1 Accuracy: 70.8%";
    std::fs::write(&card, text.replacen(from, to, 1)).unwrap();
    let junit = tmp.path().join("j.xml");
    let (_, out, err) = zoo_in(
        tmp.path(),
        &[
            "validate",
            "--offline",
            "-v",
            "b0_ns",
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    assert!(
        out.contains("tensorflow\\u{1}\\u{1b}[31m\\u{202e}tpu"),
        "the value is shown, escaped:\n{out}{err}"
    );
    assert_no_controls("validate's output", &out);
    assert_no_controls("validate's errors", &err);
    assert!(
        out.contains("FAIL tf_efficientnet_b0_ns accuracy:"),
        "{out}"
    );
    let x = std::fs::read_to_string(&junit).unwrap();
    assert!(x.contains("<failure message="), "{x}");
    assert!(x.contains("tensorflow\\u{1}\\u{1b}[31m\\u{202e}tpu"), "{x}");
    assert_well_formed_xml(&x);
    // The JSON report keeps the value as it is (JSON escapes it).
    let (_, out, _) = zoo_in(tmp.path(), &["validate", "--offline", "b0_ns", "--json"]);
    assert!(
        out.contains("tensorflow\\u0001\\u001b[31m\u{202e}tpu"),
        "{out}"
    );
}

/// The checker of the test above refuses what the old report held.
#[test]
#[should_panic(expected = "not allowed in XML 1.0")]
fn the_xml_check_refuses_a_raw_control_character() {
    assert_well_formed_xml("<a b=\"x\u{1}y\"/>");
}

/// A `.safetensors` file with one F32 tensor of one element per name.
fn safetensors(path: &Path, names: &[&str]) {
    let mut header = serde_json::Map::new();
    for (i, n) in names.iter().enumerate() {
        header.insert(
            n.to_string(),
            serde_json::json!({"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]}),
        );
    }
    let header = serde_json::to_vec(&header).unwrap();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(&header);
    bytes.extend(std::iter::repeat_n(0u8, 4 * names.len()));
    std::fs::write(path, bytes).unwrap();
}

/// `zoo diff` and `zoo fingerprint` show tensor names from the files escaped.
#[test]
fn diff_shows_tensor_names_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("esc1.safetensors");
    let b = tmp.path().join("esc2.safetensors");
    safetensors(&a, &["x\u{1b}]0;owned\u{7}", "same"]);
    safetensors(&b, &["y\u{1b}[2J\u{202e}", "same"]);
    let (code, out, err) = zoo(&["diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("only in A: x\\u{1b}]0;owned\\u{7}"), "{out}");
    assert!(out.contains("only in B: y\\u{1b}[2J\\u{202e}"), "{out}");
    assert_no_controls("diff's output", &out);
}

/// A tarball member named with escape sequences: the error that names it is escaped.
#[test]
fn an_archive_member_name_in_an_error_is_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let tarball = tmp.path().join("evil.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&tarball).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(gz);
    for name in [
        "ck/\u{1b}[31mevil\u{7}.index",
        "ck/\u{1b}[31mevil\u{7}.data-00000-of-00001",
    ] {
        let body = b"not a tensor bundle";
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, name, &body[..]).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
    let t = tarball.to_str().unwrap();
    for args in [
        vec!["fingerprint", t, "--arch", "tf_efficientnet_b0"],
        vec!["diff", t, t, "--arch", "tf_efficientnet_b0"],
    ] {
        let (code, out, err) = zoo(&args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains("\\u{1b}[31mevil\\u{7}"), "{args:?}: {err}");
        assert_no_controls("the error", &err);
    }
}

/// `zoo fingerprint A B C` with B unreadable prints A's and C's fingerprints, names B's failure,
/// and exits 2; before, it stopped at B and printed nothing for C.
#[test]
fn fingerprint_reports_every_file() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.safetensors");
    let c = tmp.path().join("c.safetensors");
    safetensors(&a, &["w"]);
    safetensors(&c, &["w", "v"]);
    let missing = tmp.path().join("b.safetensors");
    let (code, out, err) = zoo(&[
        "fingerprint",
        a.to_str().unwrap(),
        missing.to_str().unwrap(),
        c.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.lines().next().unwrap().contains("a.safetensors"),
        "{out}"
    );
    assert!(
        out.lines().nth(1).unwrap().contains("c.safetensors"),
        "{out}"
    );
    assert!(err.contains("b.safetensors"), "{err}");
    assert!(
        err.contains("1 of 3 file(s) could not be fingerprinted"),
        "{err}"
    );
}

/// `zoo check-cards FIFO` says it is a FIFO (before: "no such file"); a missing file is
/// missing.
#[cfg(unix)]
#[test]
fn check_cards_says_what_a_special_file_is() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("card.yml");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let (code, _, err) = zoo(&["check-cards", fifo.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a regular file (a FIFO)"), "{err}");
    let gone = tmp.path().join("gone.yml");
    let (code, _, err) = zoo(&["check-cards", gone.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("No such file or directory"), "{err}");
    let (code, _, err) = zoo(&["--registry", fifo.to_str().unwrap(), "list"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a regular file (a FIFO)"), "{err}");
}
