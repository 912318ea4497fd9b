//! `zoo fingerprint FILE` and `zoo diff A B`: compare weights across containers.
use std::path::PathBuf;

use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use zoo_converters::text::{esc, esc_text};

use super::Status;
use crate::arch::Network;
use crate::checkpoint;
use crate::convert::WeightSet;
use crate::diff::diff;
use crate::fingerprint::fingerprint;
use crate::registry::Registry;

/// Arguments of `zoo fingerprint`.
#[derive(Debug, clap::Args)]
pub struct FingerprintArgs {
    /// Checkpoints: TF bundle/.tar.gz (needs --arch), .pth (zip or legacy), .safetensors.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Architecture (a variant, `efficientnet:…`, or a registry model's): maps TF names, and
    /// checks other containers key by key.
    #[arg(long, value_name = "SPEC")]
    pub arch: Option<String>,
    /// TF weight set.
    #[arg(long, value_enum, default_value = "ema")]
    pub weights: WeightSet,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `zoo diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// First checkpoint.
    pub a: PathBuf,
    /// Second checkpoint.
    pub b: PathBuf,
    /// Architecture (a variant, `efficientnet:…`, or a registry model's); needed for TF sources.
    #[arg(long, value_name = "SPEC")]
    pub arch: Option<String>,
    /// TF weight set.
    #[arg(long, value_enum, default_value = "ema")]
    pub weights: WeightSet,
    /// Largest absolute element difference counted as equal.
    #[arg(long, default_value_t = 0.0)]
    pub tol: f64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn spec(
    arch: &Option<String>,
    registry: impl FnOnce() -> anyhow::Result<Registry>,
) -> anyhow::Result<Option<Network>> {
    Ok(match arch {
        Some(a) => Some(super::arch_named(a, registry)?.resolve()?),
        None => None,
    })
}

/// A FIFO or device would block the reader or never end: refused before it is opened.
fn refuse_special(path: &std::path::Path) -> anyhow::Result<()> {
    crate::fsutil::refuse_special_file(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Runs `zoo fingerprint`.
pub(crate) fn fingerprint_cmd(
    args: FingerprintArgs,
    flags: super::hint::Flags,
    registry: impl FnOnce() -> anyhow::Result<Registry>,
) -> anyhow::Result<Status> {
    let spec = spec(&args.arch, registry)?;
    let mut rows = vec![];
    let mut failed = 0usize;
    for f in &args.files {
        // One unreadable file does not hide the others' results: each failure is said, in
        // order, and the run fails at the end.
        let opened =
            refuse_special(f).and_then(|()| Ok(checkpoint::open(f, spec.as_ref(), args.weights)?));
        let opened = match opened {
            Ok(o) => o,
            Err(e) => {
                failed += 1;
                eprintln!("error: {}", esc_text(&format!("{e:#}")));
                if let Some(hint) = super::hint::hint(flags, &e) {
                    eprintln!("{}", esc_text(&hint));
                }
                continue;
            }
        };
        let fp = fingerprint(opened.tensors.iter().map(|(k, t)| (k, t)));
        rows.push(serde_json::json!({"file": f, "format": opened.format, "fingerprint": fp}));
        if !args.json {
            outln!(
                "{}  {}  ({} params, {} buffers)",
                fp.fingerprint,
                f.display(),
                fp.param_tensors,
                fp.buffer_tensors
            );
        }
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&rows)?);
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} file(s) could not be fingerprinted",
            args.files.len()
        );
    }
    Ok(Status::Ok)
}

/// Runs `zoo diff`: exit 0 when identical within `--tol`, 1 otherwise.
pub fn diff_cmd(
    args: DiffArgs,
    registry: impl FnOnce() -> anyhow::Result<Registry>,
) -> anyhow::Result<Status> {
    let spec = spec(&args.arch, registry)?;
    refuse_special(&args.a)?;
    refuse_special(&args.b)?;
    let a = checkpoint::open(&args.a, spec.as_ref(), args.weights)?;
    let b = checkpoint::open(&args.b, spec.as_ref(), args.weights)?;
    let d = diff(&a.tensors, &b.tensors, args.tol);
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        // Tensor names come from the files: shown escaped (no terminal control characters).
        for k in &d.only_in_a {
            outln!("only in A: {}", esc(k));
        }
        for k in &d.only_in_b {
            outln!("only in B: {}", esc(k));
        }
        for m in &d.mismatched {
            outln!("shape/dtype: {}: A {} vs B {}", esc(&m.key), m.a, m.b);
        }
        let differing: Vec<_> = d.differing().collect();
        if !differing.is_empty() {
            let mut t = Table::new();
            t.load_style(UTF8_FULL_CONDENSED);
            t.set_header(["tensor", "max |A-B|", "max rel"]);
            for x in &differing {
                t.add_row([
                    esc(&x.key).to_string(),
                    format!("{:.3e}", x.max_abs),
                    format!("{:.3e}", x.max_rel),
                ]);
            }
            outln!("{t}");
        }
        let identical = d.tensors.iter().filter(|t| t.identical).count();
        if d.is_equal() {
            outln!(
                "identical: {} tensors ({} bit-identical) within tolerance {}",
                d.tensors.len(),
                identical,
                d.tolerance
            );
        } else {
            outln!(
                "different: {} of {} common tensors differ, {} only in A, {} only in B, {} shape mismatches",
                differing.len(),
                d.tensors.len(),
                d.only_in_a.len(),
                d.only_in_b.len(),
                d.mismatched.len()
            );
        }
    }
    Ok(if d.is_equal() {
        Status::Ok
    } else {
        Status::Failed
    })
}
