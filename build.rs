//! Build-time glue.
//! - The registry is embedded with `include_dir!`; rebuild when it changes.
//! - With the `torch` feature, torch-sys (a direct dependency for this reason) exports the
//!   libtorch it linked as `DEP_TCH_LIBTORCH_LIB`; baking that directory into the rpath lets
//!   `zoo` and the test binaries run with no LD_LIBRARY_PATH. tch's own rpath does not reach
//!   downstream binaries.
fn main() {
    println!("cargo:rerun-if-changed=registry");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.to_string_lossy());
    }
}
