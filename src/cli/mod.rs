//! The command line: clap definitions, dispatch, and all printing.
//!
//! Exit codes: 0 ok, 1 a check failed, 2 usage or I/O error.
//! Each subcommand's handler lives in its own file (`cli/<command>.rs`); this file holds the
//! clap definitions and the dispatch.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod fetch;
pub mod hash;

/// zoo: keep a model zoo honest.
#[derive(Debug, Parser)]
#[command(name = "zoo", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the resolved architecture of an EfficientNet description.
    Arch {
        /// A variant (`b0`…`l2`) or `efficientnet:width=…,depth=…,classes=…`.
        spec: String,
    },
    /// Download (or find in a cache) a weight file, verified by sha256.
    Fetch(fetch::FetchArgs),
    /// Print the sha256 and size of files.
    Hash(hash::HashArgs),
}

/// Outcome of a command that ran to completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Everything checked out.
    Ok,
    /// A check failed.
    Failed,
}

/// Parses the arguments, runs the command and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(Status::Ok) => ExitCode::SUCCESS,
        Ok(Status::Failed) => ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<Status> {
    match cli.command {
        Command::Arch { spec } => {
            let cfg: crate::arch::ArchConfig = spec.parse()?;
            let spec = cfg.resolve()?;
            println!("{}", serde_json::to_string_pretty(&spec)?);
            Ok(Status::Ok)
        }
        Command::Fetch(args) => fetch::run(args),
        Command::Hash(args) => hash::run(args),
    }
}
