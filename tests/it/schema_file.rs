//! The committed JSON Schemas are what the types generate.
use crate::root;

#[test]
fn committed_schemas_are_up_to_date() {
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
    for (name, text) in zoo::schema::schema_files() {
        let path = root().join("schemas").join(name);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "{} is stale; regenerate it with `cargo run -- schema --write` (or `UPDATE_SCHEMAS=1 cargo test --test it schema`)",
            path.display()
        );
    }
}

#[test]
fn schema_describes_the_zoo_block_as_closed() {
    let files = zoo::schema::schema_files();
    let zoo_schema: serde_json::Value = serde_json::from_str(&files[1].1).unwrap();
    assert_eq!(zoo_schema["additionalProperties"], false, "{zoo_schema:#}");
    let full: serde_json::Value = serde_json::from_str(&files[0].1).unwrap();
    assert!(
        full["$defs"]["Model"]["properties"]["In Collection"].is_object(),
        "{full:#}"
    );
}

/// `zoo schema --check DIR` tells a missing file from a stale one, and `--write` then makes the
/// check pass.
#[test]
fn schema_check_names_missing_and_stale_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    let (code, out, _) = crate::zoo(&["schema", "--check", dir]);
    assert_eq!(code, 1);
    assert!(
        out.contains("model-index.schema.json is missing; run `zoo schema --write"),
        "{out}"
    );
    let (code, _, err) = crate::zoo(&["schema", "--write", dir]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = crate::zoo(&["schema", "--check", dir]);
    assert_eq!((code, out.as_str()), (0, ""));
    std::fs::write(tmp.path().join("zoo-extension.schema.json"), "{}").unwrap();
    let (code, out, _) = crate::zoo(&["schema", "--check", dir]);
    assert_eq!(code, 1);
    assert!(out.contains("zoo-extension.schema.json is stale"), "{out}");
}
