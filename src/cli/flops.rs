//! `zoo flops NAME`: operation counts under every named convention, beside the documented value.
//!
//! NAME is a registry model (name or alias), counted at its card's own input and compared with
//! its card's FLOPs, or an architecture, counted at `--image-size` (224 unless given).
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};

use super::Status;
use crate::arch::Network;
use crate::flops::{self, Convention, Count, InputSize};
use crate::lookup::{self, CountedAs, Named};
use crate::registry::Registry;

/// Arguments of `zoo flops`.
#[derive(Debug, clap::Args)]
pub struct FlopsArgs {
    /// A registry model or alias (`b6_ns`, `tf_efficientnet_b6.ns_jft_in1k`): counted at its
    /// card's input and compared with its card. Or an architecture: a timm name
    /// (`tf_efficientnet_b6`, `tf_mixnet_l`, `tf_mobilenetv3_large_100`, …) or
    /// `efficientnet:width=…,depth=…,classes=…`.
    #[arg(value_name = "NAME")]
    pub name: String,
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
    /// The documented FLOPs to compare against (default: the model card's).
    #[arg(long, value_name = "N")]
    pub documented: Option<u64>,
}

/// What to count: a resolved spec with what its card says.
#[derive(Debug, Clone)]
pub struct Target {
    /// Display name.
    pub name: String,
    /// The resolved architecture.
    pub spec: Network,
    /// The card's FLOPs.
    pub documented: Option<u64>,
    /// The card's `Image Size`.
    pub image_size: Option<usize>,
    /// How the card's FLOPs were counted.
    pub counted_as: Option<CountedAs>,
    /// `Some` for an architecture that is not a registry model: the registry models built on it.
    pub models_with_arch: Option<Vec<(String, Option<usize>)>>,
}

/// Image size used when neither the card nor the command line gives one.
const DEFAULT_IMAGE_SIZE: usize = 224;

#[derive(serde::Serialize)]
struct Row {
    #[serde(flatten)]
    count: Count,
    description: &'static str,
    /// The convention and input the card's FLOPs were counted under.
    card: bool,
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

/// Where the image size came from.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
enum SizeFrom {
    CommandLine,
    Card,
    Default,
}

#[derive(serde::Serialize)]
struct Report<'a> {
    arch: &'a str,
    /// The registry model, when NAME is one.
    model: Option<&'a str>,
    image_size: usize,
    image_size_from: SizeFrom,
    /// `--size`: every convention counted at this input instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<InputSize>,
    /// How the card's FLOPs were counted.
    card: Option<CountedAs>,
    parameters: u64,
    buffers: u64,
    counts: Vec<Row>,
    #[serde(skip_serializing_if = "Option::is_none")]
    layers: Option<Vec<LayerRow<'a>>>,
    #[serde(skip)]
    models_with_arch: Option<&'a [(String, Option<usize>)]>,
}

/// Resolves `args.name` (a registry model first, else an architecture) and runs.
pub fn run(
    args: FlopsArgs,
    registry: impl FnOnce() -> anyhow::Result<Registry>,
) -> anyhow::Result<Status> {
    let registry = registry();
    let named = match (
        &registry,
        lookup::lookup(registry.as_ref().ok(), &args.name),
    ) {
        (_, Ok(named)) => named,
        // Without a registry, say why the name could not be looked up there too.
        (Err(e), Err(not_arch)) => {
            return Err(anyhow::anyhow!(
                "{not_arch}; the registry did not load: {e:#}"
            ))
        }
        (Ok(_), Err(e)) => return Err(e.into()),
    };
    let spec = named.arch().resolve()?;
    let target = match &named {
        Named::Model { entry, .. } => {
            let card = lookup::card_flops(entry);
            Target {
                name: entry.name().to_owned(),
                spec,
                documented: card.documented,
                image_size: card.image_size,
                // As validate checks it: the declared convention, else timm's cards' own.
                counted_as: card.checked_as().map(|(c, _)| c),
                models_with_arch: None,
            }
        }
        Named::Arch(arch) => Target {
            name: args.name.clone(),
            spec,
            documented: None,
            image_size: None,
            counted_as: None,
            models_with_arch: Some(match &registry {
                Ok(r) => lookup::models_with_arch(r, arch)
                    .into_iter()
                    .map(|e| (e.name().to_owned(), lookup::card_flops(e).image_size))
                    .collect(),
                Err(_) => vec![],
            }),
        },
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
    let (image_size, image_size_from) = match (args.image_size, target.image_size) {
        (Some(s), _) => (s, SizeFrom::CommandLine),
        (None, Some(s)) => (s, SizeFrom::Card),
        (None, None) => (DEFAULT_IMAGE_SIZE, SizeFrom::Default),
    };
    // The card's own input for its convention, unless the command line chose another size.
    let card = target
        .counted_as
        .filter(|_| args.image_size.is_none() && args.size.is_none());
    let documented = args.documented.or(target.documented);
    let spec = &target.spec;
    let rows: Vec<Row> = conventions
        .iter()
        .map(|&convention| {
            let on_card = card.filter(|c| c.convention == convention);
            let input = args.size.unwrap_or_else(|| match on_card {
                Some(c) => c.input,
                None => convention.input_for_image_size(image_size),
            });
            let value = flops::count(spec, convention, input)?;
            Ok(Row {
                count: Count {
                    convention,
                    input,
                    value,
                },
                description: convention.description(),
                card: target
                    .counted_as
                    .is_some_and(|c| c.convention == convention && c.input == input),
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
        model: target
            .models_with_arch
            .is_none()
            .then_some(target.name.as_str()),
        image_size,
        image_size_from,
        size: args.size,
        card: target.counted_as,
        parameters: spec.trainable_params(),
        buffers: spec.buffer_elements(),
        counts: rows,
        layers,
        models_with_arch: target.models_with_arch.as_deref(),
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report, documented, args.documented.is_some());
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

fn print_report(report: &Report<'_>, documented: Option<u64>, documented_given: bool) {
    outln!(
        "{}: {} parameters, {} buffer elements",
        report.arch,
        thousands(report.parameters),
        thousands(report.buffers)
    );
    print_input(report);
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
        let name = if row.card {
            format!("{} (card)", row.count.convention.name())
        } else {
            row.count.convention.name().to_owned()
        };
        table.add_row(vec![
            Cell::new(name),
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
    print_verdict(report, documented, documented_given);
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

/// Which input the counts are at, and why.
fn print_input(report: &Report<'_>) {
    let s = report.image_size;
    if let Some(size) = report.size {
        let card = match (report.image_size_from, &report.card) {
            (SizeFrom::Card, Some(c)) => format!(
                " (the card's Image Size is {s}: {} at {} by `{}`)",
                c.convention,
                c.input,
                c.rule.as_str()
            ),
            (SizeFrom::Card, None) => format!(" (the card's Image Size is {s})"),
            _ => String::new(),
        };
        outln!("  input: {size} (--size), every convention counted there{card}");
        return;
    }
    match (report.image_size_from, &report.card) {
        (SizeFrom::Card, Some(c)) => outln!(
            "  input: the card's Image Size {s} (`Zoo: Input`); {} at {} by its input rule `{}` \
             (`Zoo: Flops`), the other conventions at {s}x{s}",
            c.convention,
            c.input,
            c.rule.as_str()
        ),
        (SizeFrom::Card, None) => outln!(
            "  input: the card's Image Size {s}; {s}x{s}, thop-2020 at {}",
            InputSize::thop_2020(s)
        ),
        (SizeFrom::CommandLine, _) => outln!(
            "  input: Image Size {s} (--image-size); {s}x{s}, thop-2020 at {}",
            InputSize::thop_2020(s)
        ),
        (SizeFrom::Default, _) => {
            outln!(
                "  input: Image Size {s}, zoo's default for an architecture (--image-size S for \
                 another); {s}x{s}, thop-2020 at {}",
                InputSize::thop_2020(s)
            );
        }
    }
}

/// How the documented value compares, or why there is none.
fn print_verdict(report: &Report<'_>, documented: Option<u64>, documented_given: bool) {
    let Some(documented) = documented else {
        match report.models_with_arch {
            Some(models) => {
                outln!(
                    "no documented value: `{}` is an architecture, not a registry model; --documented N compares with a number",
                    report.arch
                );
                for (name, size) in models {
                    let size = size
                        .map(|s| format!(", Image Size {s}"))
                        .unwrap_or_default();
                    outln!(
                        "  registry model on this architecture: {name}{size} (`zoo flops {name}` compares with its card)"
                    );
                }
            }
            None => outln!("no documented value: the card has no `FLOPs`"),
        }
        return;
    };
    let source = if documented_given {
        "--documented"
    } else {
        "the card's FLOPs"
    };
    match report.counts.iter().find(|r| r.card) {
        Some(row) => {
            let verdict = match row.difference {
                Some(0) => "exact".to_owned(),
                Some(d) => format!("differs by {}", signed(d)),
                None => String::new(),
            };
            outln!(
                "documented {documented} ({source}), counted {} under {} at {}: {verdict}",
                row.count.value,
                row.count.convention,
                row.count.input
            );
        }
        None => match &report.card {
            Some(c) => outln!(
                "documented {documented} ({source}), counted as {} at {}, which is not among the \
                 counts shown; the difference column compares it with each",
                c.convention,
                c.input
            ),
            None => outln!(
                "documented {documented} ({source}); the difference column compares it with each count"
            ),
        },
    }
}
