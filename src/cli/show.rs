//! `zoo show NAME [--json]`.
use std::path::Path;

use serde::Serialize;
use zoo_converters::text::esc_text;

use super::Status;
use crate::registry::Registry;
use crate::schema::{FieldValue, Model};

#[derive(Serialize)]
struct Shown<'a> {
    name: &'a str,
    aliases: Vec<&'a str>,
    collection: Option<&'a str>,
    file: &'a Path,
    line: usize,
    col: usize,
    architecture: Option<crate::arch::ArchConfig>,
    trainable_params: Option<u64>,
    /// How the card's FLOPs were counted.
    flops_counted_as: Option<crate::lookup::CountedAs>,
    /// Plain multiply-accumulates at the native Image Size², the conventional "GMACs".
    macs: Option<u64>,
    model: &'a Model,
}

pub(super) fn run(registry: &Registry, name: &str, json: bool) -> anyhow::Result<Status> {
    let entry = registry.resolve(name)?;
    let arch = entry.arch()?;
    let spec = arch.resolve()?;
    let params = spec.trainable_params();
    let card = crate::lookup::card_flops(entry);
    let macs = card.macs(&spec);
    if json {
        let shown = Shown {
            name: entry.name(),
            aliases: entry.aliases(),
            collection: entry
                .collection
                .as_ref()
                .and_then(|c| c.name.as_ref())
                .map(|n| n.as_str()),
            file: &entry.file,
            line: entry.pos.line,
            col: entry.pos.col,
            architecture: Some(arch),
            trainable_params: Some(params),
            flops_counted_as: card.counted_as,
            macs,
            model: &entry.model,
        };
        outln!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(Status::Ok);
    }
    // Names come from the card: shown escaped (no terminal control characters).
    outln!("{}", esc_text(entry.name()));
    outln!("  aliases:     {}", esc_text(&entry.aliases().join(", ")));
    if let Some(c) = entry.collection.as_ref().and_then(|c| c.name.as_ref()) {
        outln!("  collection:  {}", esc_text(c.as_str()));
    }
    outln!("  defined at:  {}:{}", entry.file.display(), entry.pos);
    outln!("  trainable parameters (from the architecture): {params}");
    if let (Some(c), Some(s), Some(macs)) = (card.counted_as, card.image_size, macs) {
        let documented = card.documented.map_or("the card has no FLOPs".into(), |d| {
            format!("card FLOPs {d}")
        });
        outln!(
            "  FLOPs: {documented}, counted as {} on a {} input ({}); conventionally {:.2} GMACs \
             (multiply-accumulates at {s}x{s}; `zoo flops {}` for every convention)",
            c.convention,
            c.input,
            c.rule.as_str(),
            macs as f64 / 1e9,
            entry.name()
        );
    }
    outln!();
    let node = crate::schema::yaml::Node::Seq(crate::schema::yaml::Seq {
        items: vec![entry.model.to_node()],
        pos: Default::default(),
    });
    out!("{}", crate::schema::yaml::emit(&node));
    Ok(Status::Ok)
}
