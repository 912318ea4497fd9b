//! `zoo list [PATTERN...] [--json]`: each model with its card's FLOPs and how they were counted,
//! beside the conventional GMACs (plain multiply-accumulates at the native S×S).
use comfy_table::{presets, Cell, CellAlignment, Table};
use serde::Serialize;

use super::Status;
use crate::lookup::{self, CountedAs};
use crate::registry::{ModelEntry, Registry};
use zoo_converters::text::esc_text;

#[derive(Serialize)]
struct Row<'a> {
    name: &'a str,
    aliases: Vec<&'a str>,
    image_size: Option<u64>,
    parameters: Option<u64>,
    /// The card's number, counted as `flops_counted_as` says.
    flops: Option<u64>,
    flops_counted_as: Option<CountedAs>,
    /// Plain multiply-accumulates at the native `image_size`², the conventional "GMACs".
    macs: Option<u64>,
}

fn row(e: &ModelEntry) -> Row<'_> {
    let meta = e.model.metadata.as_ref();
    let card = lookup::card_flops(e);
    let macs = e
        .arch()
        .ok()
        .and_then(|a| a.resolve().ok())
        .and_then(|spec| card.macs(&spec));
    Row {
        name: e.name(),
        aliases: e.aliases(),
        image_size: card.image_size.map(|s| s as u64),
        parameters: meta.and_then(|m| m.parameters.as_ref()).map(|c| c.value),
        flops: card.documented,
        flops_counted_as: card.counted_as,
        macs,
    }
}

/// `12.23M`, `611.65G`: three significant decimals of a big count.
pub(crate) fn human(n: Option<u64>) -> String {
    match n {
        None => "-".into(),
        Some(n) if n >= 1_000_000_000 => format!("{:.2}G", n as f64 / 1e9),
        Some(n) if n >= 1_000_000 => format!("{:.2}M", n as f64 / 1e6),
        Some(n) => n.to_string(),
    }
}

pub(super) fn run(registry: &Registry, patterns: &[String], json: bool) -> anyhow::Result<Status> {
    let rows: Vec<Row> = registry.select(patterns)?.into_iter().map(row).collect();
    if json {
        outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(Status::Ok);
    }
    let mut table = Table::new();
    table
        .load_style(presets::ASCII_MARKDOWN)
        .force_no_tty()
        .set_header([
            "Name",
            "Aliases",
            "Image Size",
            "Params",
            "FLOPs (card)",
            "counted as",
            "GMACs at S×S",
        ]);
    for r in &rows {
        table.add_row(vec![
            // Names come from the cards: escaped per cell, so the columns stay aligned.
            Cell::new(esc_text(r.name)),
            Cell::new(esc_text(&r.aliases.join(", "))),
            Cell::new(r.image_size.map_or("-".into(), |s| s.to_string()))
                .set_alignment(CellAlignment::Right),
            Cell::new(human(r.parameters)).set_alignment(CellAlignment::Right),
            Cell::new(human(r.flops)).set_alignment(CellAlignment::Right),
            Cell::new(
                r.flops_counted_as
                    .map_or("-".into(), |c| format!("{} {}", c.convention, c.input)),
            ),
            Cell::new(
                r.macs
                    .map_or("-".into(), |m| format!("{:.2}", m as f64 / 1e9)),
            )
            .set_alignment(CellAlignment::Right),
        ]);
    }
    outln!("{table}");
    Ok(Status::Ok)
}
