//! `zoo show NAME [--json]`.
use std::path::Path;

use serde::Serialize;

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
    model: &'a Model,
}

pub(super) fn run(registry: &Registry, name: &str, json: bool) -> anyhow::Result<Status> {
    let entry = registry.resolve(name)?;
    let arch = entry.arch()?;
    let params = arch.resolve()?.trainable_params();
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
            model: &entry.model,
        };
        outln!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(Status::Ok);
    }
    outln!("{}", entry.name());
    outln!("  aliases:     {}", entry.aliases().join(", "));
    if let Some(c) = entry.collection.as_ref().and_then(|c| c.name.as_ref()) {
        outln!("  collection:  {}", c.as_str());
    }
    outln!("  defined at:  {}:{}", entry.file.display(), entry.pos);
    outln!("  trainable parameters (from the architecture): {params}");
    let size = entry
        .input()
        .and_then(|i| i.image_size.as_ref())
        .map(|c| c.value);
    if let (Some(flops), Some(size)) = (entry.zoo().and_then(|z| z.flops.as_ref()), size) {
        if let (Some(conv), Some(rule)) = (&flops.convention, &flops.input_rule) {
            let (h, w) = rule.value.input_hw(size);
            outln!(
                "  documented FLOPs convention: {} on a {h}x{w} input ({})",
                conv.value.as_str(),
                rule.value.as_str()
            );
        }
    }
    outln!();
    let node = crate::schema::yaml::Node::Seq(crate::schema::yaml::Seq {
        items: vec![entry.model.to_node()],
        pos: Default::default(),
    });
    out!("{}", crate::schema::yaml::emit(&node));
    Ok(Status::Ok)
}
