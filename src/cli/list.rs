//! `zoo list [PATTERN...] [--json]`.
use comfy_table::{presets, Cell, CellAlignment, Table};
use serde::Serialize;

use super::Status;
use crate::registry::{ModelEntry, Registry};

#[derive(Serialize)]
struct Row<'a> {
    name: &'a str,
    aliases: Vec<&'a str>,
    image_size: Option<u64>,
    parameters: Option<u64>,
    flops: Option<u64>,
}

fn row(e: &ModelEntry) -> Row<'_> {
    let meta = e.model.metadata.as_ref();
    Row {
        name: e.name(),
        aliases: e.aliases(),
        image_size: e
            .input()
            .and_then(|i| i.image_size.as_ref())
            .or_else(|| meta.and_then(|m| m.image_size.as_ref()))
            .map(|c| c.value),
        parameters: meta.and_then(|m| m.parameters.as_ref()).map(|c| c.value),
        flops: meta.and_then(|m| m.flops.as_ref()).map(|c| c.value),
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
        .set_header(["Name", "Aliases", "Image Size", "Params", "FLOPs"]);
    for r in &rows {
        table.add_row(vec![
            Cell::new(r.name),
            Cell::new(r.aliases.join(", ")),
            Cell::new(r.image_size.map_or("-".into(), |s| s.to_string()))
                .set_alignment(CellAlignment::Right),
            Cell::new(human(r.parameters)).set_alignment(CellAlignment::Right),
            Cell::new(human(r.flops)).set_alignment(CellAlignment::Right),
        ]);
    }
    outln!("{table}");
    Ok(Status::Ok)
}
