//! Rebuilds when the embedded registry changes (it is included with `include_dir!`).
fn main() {
    println!("cargo:rerun-if-changed=registry");
}
