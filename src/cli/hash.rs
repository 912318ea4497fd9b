//! `zoo hash FILE...`: sha256 and size of local files (`<sha256>  <size>  <path>` per line).
use std::path::PathBuf;

use anyhow::Context;

use super::Status;
use crate::fetch::sha256_file;

/// Arguments of `zoo hash`.
#[derive(Debug, clap::Args)]
pub struct HashArgs {
    /// Files to hash.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print a JSON array of `{path, sha256, size}`.
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct Hashed {
    path: PathBuf,
    sha256: String,
    size: u64,
}

/// Runs `zoo hash`.
pub fn run(args: HashArgs) -> anyhow::Result<Status> {
    let mut out = Vec::with_capacity(args.files.len());
    for path in args.files {
        let (sha256, size) =
            sha256_file(&path).with_context(|| format!("hashing {}", path.display()))?;
        if !args.json {
            outln!("{sha256}  {size}  {}", path.display());
        }
        out.push(Hashed { path, sha256, size });
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(Status::Ok)
}
