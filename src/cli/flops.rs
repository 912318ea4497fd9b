//! `zoo flops ARCH`: operation counts under every named convention, beside the documented value.
use anyhow::Context;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};

use super::Status;
use crate::arch::{ArchConfig, Spec};
use crate::flops::{self, Convention, Count, InputSize};

/// Arguments of `zoo flops`.
#[derive(Debug, clap::Args)]
pub struct FlopsArgs {
    /// A variant (`b0`…`l2`, `tf_efficientnet_b6`) or `efficientnet:width=…,depth=…,classes=…`.
    pub arch: String,
    /// Count every convention at this input (`HxW`), instead of each convention's own input.
    #[arg(long, value_name = "HxW", conflicts_with = "image_size")]
    pub size: Option<InputSize>,
    /// The card's `Image Size` S: square S×S, and S × floor(S·1546/1213) for thop-2020.
    #[arg(long, value_name = "S", value_parser = parse_image_size)]
    pub image_size: Option<usize>,
    /// `macs`, `flops`, `fvcore`, `thop-2020`, or `all`.
    #[arg(long, default_value = "all", value_name = "C")]
    pub convention: String,
    /// Print every layer: name, output shape, MACs, parameters.
    #[arg(long)]
    pub per_layer: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// The documented FLOPs to compare against.
    #[arg(long, value_name = "N")]
    pub documented: Option<u64>,
}

/// What to count: a resolved spec with what its card says (the registry fills this in).
#[derive(Debug, Clone)]
pub struct Target {
    /// Display name.
    pub name: String,
    /// The resolved architecture.
    pub spec: Spec,
    /// The card's FLOPs.
    pub documented: Option<u64>,
    /// The card's `Image Size`.
    pub image_size: Option<usize>,
}

/// Image size used when neither the card nor the command line gives one.
const DEFAULT_IMAGE_SIZE: usize = 224;

#[derive(serde::Serialize)]
struct Row {
    #[serde(flatten)]
    count: Count,
    description: &'static str,
    documented: Option<u64>,
    difference: Option<i128>,
}

#[derive(serde::Serialize)]
struct LayerRow<'a> {
    name: &'a str,
    kind: flops::LayerKind,
    output: [usize; 3],
    macs: u64,
    params: u64,
    count: u64,
}

#[derive(serde::Serialize)]
struct Report<'a> {
    arch: &'a str,
    parameters: u64,
    buffers: u64,
    counts: Vec<Row>,
    #[serde(skip_serializing_if = "Option::is_none")]
    layers: Option<Vec<LayerRow<'a>>>,
}

/// Resolves `args.arch` and runs.
pub fn run(args: FlopsArgs) -> anyhow::Result<Status> {
    let cfg: ArchConfig = args.arch.parse()?;
    let spec = cfg
        .resolve()
        .with_context(|| format!("resolving `{}`", args.arch))?;
    let target = Target {
        name: args.arch.clone(),
        spec,
        documented: None,
        image_size: None,
    };
    run_target(&target, &args)
}

/// Counts `target`; command-line values override the card's.
pub fn run_target(target: &Target, args: &FlopsArgs) -> anyhow::Result<Status> {
    let conventions: Vec<Convention> = if args.convention == "all" {
        Convention::ALL.to_vec()
    } else {
        vec![args.convention.parse()?]
    };
    let image_size = args
        .image_size
        .or(target.image_size)
        .unwrap_or(DEFAULT_IMAGE_SIZE);
    let documented = args.documented.or(target.documented);
    let spec = &target.spec;
    let rows: Vec<Row> = conventions
        .iter()
        .map(|&convention| {
            let input = args
                .size
                .unwrap_or_else(|| convention.input_for_image_size(image_size));
            let value = flops::count(spec, convention, input)?;
            Ok(Row {
                count: Count {
                    convention,
                    input,
                    value,
                },
                description: convention.description(),
                documented,
                difference: documented.map(|d| value as i128 - d as i128),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    // Per-layer output uses the first convention's input and reports its count per layer.
    let layer_input = rows[0].count.input;
    let walked = args
        .per_layer
        .then(|| flops::layers(spec, layer_input))
        .transpose()?;
    let layers = walked.as_ref().map(|w| {
        w.iter()
            .map(|l| LayerRow {
                name: l.name,
                kind: l.kind,
                output: l.output,
                macs: l.macs,
                params: l.params,
                count: l.count(rows[0].count.convention),
            })
            .collect::<Vec<_>>()
    });
    let report = Report {
        arch: &target.name,
        parameters: spec.trainable_params(),
        buffers: spec.buffer_elements(),
        counts: rows,
        layers,
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(Status::Ok)
}

/// `--image-size`: a side from 1 to [`flops::MAX_INPUT_SIDE`].
fn parse_image_size(s: &str) -> Result<usize, String> {
    s.trim()
        .parse::<usize>()
        .ok()
        .filter(|v| (1..=flops::MAX_INPUT_SIDE).contains(v))
        .ok_or_else(|| {
            format!(
                "`{s}` is not an image size from 1 to {}",
                flops::MAX_INPUT_SIDE
            )
        })
}

fn thousands(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn signed(v: i128) -> String {
    let sign = if v < 0 {
        "-"
    } else if v > 0 {
        "+"
    } else {
        ""
    };
    format!("{sign}{}", thousands(v.unsigned_abs() as u64))
}

fn right(s: String) -> Cell {
    Cell::new(s).set_alignment(CellAlignment::Right)
}

fn print_report(report: &Report<'_>) {
    outln!(
        "{}: {} parameters, {} buffer elements",
        report.arch,
        thousands(report.parameters),
        thousands(report.buffers)
    );
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header(vec![
        "convention",
        "value",
        "input",
        "documented",
        "difference",
    ]);
    for row in &report.counts {
        let diff = match (row.documented, row.difference) {
            (Some(d), Some(x)) if d != 0 => {
                format!("{} ({:+.2} %)", signed(x), 100.0 * x as f64 / d as f64)
            }
            _ => String::new(),
        };
        table.add_row(vec![
            Cell::new(row.count.convention.name()),
            right(thousands(row.count.value)),
            Cell::new(row.count.input.to_string()),
            right(row.documented.map(thousands).unwrap_or_default()),
            right(diff),
        ]);
    }
    outln!("{table}");
    for row in &report.counts {
        outln!("  {:<10} {}", row.count.convention.name(), row.description);
    }
    if let Some(layers) = &report.layers {
        let mut table = Table::new();
        let conv = report.counts[0].count.convention.name();
        table
            .load_style(UTF8_FULL_CONDENSED)
            .set_header(vec!["layer", "output", "MACs", "params", conv]);
        for l in layers {
            let [c, h, w] = l.output;
            table.add_row(vec![
                Cell::new(l.name),
                Cell::new(format!("{c}x{h}x{w}")),
                right(thousands(l.macs)),
                right(thousands(l.params)),
                right(thousands(l.count)),
            ]);
        }
        outln!("{table}");
    }
}
