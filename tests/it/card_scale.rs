//! Large cards are read in linear time and still reported exactly (issue 14, M7). No test here
//! is timed: each checks the findings on a card far larger than any real one, which the
//! quadratic readers took minutes on (`cargo bench --bench cards` has the timings).
use std::fmt::Write as _;
use std::path::Path;

use zoo::card::{pos_of, Card, PosCursor};
use zoo::diagnostic::Pos;

fn check(path: &Path) -> Vec<String> {
    zoo::registry::check_cards(&[path.to_path_buf()])
        .iter()
        .map(|d| {
            let d = d.to_string();
            d.strip_prefix(&format!("{}:", path.display()))
                .unwrap_or(&d)
                .to_string()
        })
        .collect()
}

/// A mapping with 200 000 keys and one duplicate at the very end: the duplicate is found (by
/// hash, not by a scan per key) and reported at its line, naming the first one's line.
#[test]
fn duplicate_key_at_the_end_of_a_huge_mapping_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 200_000;
    let mut text = String::from("Type: model-index\nX:\n");
    for i in 0..n {
        let _ = writeln!(text, "  k{i:07}: 1");
    }
    text.push_str("  k0000000: 2\n");
    let path = tmp.path().join("keys.yml");
    std::fs::write(&path, &text).unwrap();
    let found = check(&path);
    let line = n + 3;
    assert_eq!(
        found,
        [format!(
            "{line}:3: error: invalid YAML: duplicate key `k0000000` (first at line 3)"
        )],
    );
}

/// The same mapping without the duplicate reads cleanly and is written back byte for byte
/// (the writer keeps the key order with a lookup table, not a scan per key).
#[test]
fn huge_mapping_of_unknown_keys_round_trips() {
    let mut text = String::from("Type: model-index\nModels:\n- Name: m\n");
    for i in 0..100_000 {
        let _ = writeln!(text, "  k{i:07}: {i}");
    }
    let (card, diags) = Card::parse(Path::new("m.yml"), &text);
    let card = card.unwrap();
    assert!(diags.iter().all(|d| !d.is_error()));
    // The first keys one by one, the rest summed up at the first key not listed.
    let limit = zoo::schema::MAX_UNKNOWN_KEY_FINDINGS;
    assert_eq!(diags.len(), limit + 1);
    assert_eq!(diags[0].message, "unknown key `k0000000` in a model (kept)");
    let last = diags.last().unwrap();
    assert_eq!((last.line, last.col), (4 + limit, 3));
    assert_eq!(
        last.message,
        format!(
            "… and {} more unknown keys in a model (kept)",
            100_000 - limit
        )
    );
    // Every key is kept all the same.
    assert_eq!(card.write(), text);
}

/// A markdown card with 50 000 model-index comment blocks: every block is read, and a finding
/// in the last one is at its own markdown line and column.
#[test]
fn many_comment_blocks_are_all_read_with_exact_positions() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 50_000;
    let mut text = String::new();
    for i in 0..n {
        let _ = write!(text, "t {i} é\n<!--\nType: model-index\n-->\n");
    }
    // The last block has a model without a name, after a non-ASCII prefix on its line.
    text.push_str("ü <!--\nType: model-index\nModels:\n- Paper: x\n-->\n");
    let path = tmp.path().join("blocks.md");
    std::fs::write(&path, &text).unwrap();
    let (card, _) = Card::parse(&path, &text);
    assert_eq!(card.unwrap().blocks.len(), n + 1);
    let found = check(&path);
    let line = 4 * n + 4;
    assert_eq!(
        found,
        [format!("{line}:3: error: model is missing `Name`")],
        "{found:?}"
    );
}

/// The incremental cursor agrees with the one-shot position at every offset, including inside
/// multi-byte characters' lines and after going backwards.
#[test]
fn pos_cursor_matches_pos_of() {
    let text = "ab\nçé\n\n日本語x\nz";
    let mut cursor = PosCursor::new(text);
    let offsets: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    for &o in &offsets {
        assert_eq!(cursor.pos(o), pos_of(text, o), "{o}");
    }
    assert_eq!(cursor.pos(3), Pos::new(2, 1));
    assert_eq!(pos_of(text, text.find('x').unwrap()), Pos::new(4, 4));
}

/// 20 000 models in one collection whose metadata has 20 000 keys: the collection is shared by
/// its models, not copied into each (that was 20 000² entries, minutes and gigabytes).
#[test]
fn a_large_collection_is_not_copied_per_model() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 20_000;
    let mut text = String::from("Type: model-index\nCollections:\n- Name: c\n  Metadata:\n");
    for i in 0..n {
        let _ = writeln!(text, "    k{i}: 1");
    }
    text.push_str("Models:\n");
    for i in 0..n {
        let _ = write!(text, "- Name: m{i}\n  In Collection: c\n");
    }
    // One dangling reference at the end: the message names a few collections, not all.
    text.push_str("- Name: last\n  In Collection: nowhere\n");
    let path = tmp.path().join("big-collection.yml");
    std::fs::write(&path, &text).unwrap();
    let errors: Vec<String> = check(&path)
        .into_iter()
        .filter(|d| d.contains("error"))
        .collect();
    let line = 4 + n + 1 + 2 * n + 2;
    assert_eq!(
        errors,
        [format!(
            "{line}:18: error: `In Collection` names `nowhere`, which is not defined (collections: `c`)"
        )]
    );
}

/// A dangling `In Collection` among many collections lists ten of them, not every one (one
/// such message per model made the output quadratic).
#[test]
fn dangling_collection_message_stays_short() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 5_000;
    let mut text = String::from("Type: model-index\nCollections:\n");
    for i in 0..n {
        let _ = writeln!(text, "- Name: c{i:05}");
    }
    text.push_str("Models:\n");
    for i in 0..n {
        let _ = write!(text, "- Name: m{i}\n  In Collection: x{i}\n");
    }
    let path = tmp.path().join("dangling.yml");
    std::fs::write(&path, &text).unwrap();
    let found = check(&path);
    assert_eq!(found.len(), n);
    assert!(
        found[0].ends_with(
            "(collections: `c00000`, `c00001`, `c00002`, `c00003`, `c00004`, `c00005`, `c00006`, \
         `c00007`, `c00008`, `c00009` and 4990 more)"
        ),
        "{}",
        found[0]
    );
}

/// A document with more `Import` globs than are read says so at the first one not read.
#[test]
fn too_many_imports_are_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut text = String::from("Type: model-index\nImport:\n");
    for i in 0..1500 {
        let _ = writeln!(text, "- f{i}.yml");
    }
    let path = tmp.path().join("root.yml");
    std::fs::write(&path, &text).unwrap();
    let found = check(&path);
    assert!(
        found.contains(
            &"1003:3: error: `Import` lists 1500 globs; at most 1000 are read".to_string()
        ),
        "{:?}",
        &found[..3]
    );
    // Only the first 1000 were matched (each matches no file).
    assert_eq!(
        found
            .iter()
            .filter(|d| d.contains("matches no file"))
            .count(),
        1000
    );
}
