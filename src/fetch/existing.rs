//! Finding a file users already have in another tool's cache, so it is verified and reused
//! instead of downloaded again.
//!
//! - torch.hub: `$TORCH_HOME/hub/checkpoints/<file_name>`; `TORCH_HOME` defaults to
//!   `$XDG_CACHE_HOME/torch`, else `~/.cache/torch` (what `torch.hub.get_dir()` does).
//! - Hugging Face: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`,
//!   else `~/.cache/huggingface/hub`; inside it, `models--<org>--<repo>/snapshots/<rev>/<path>`
//!   for every URL of the form `https://huggingface.co/<org>/<repo>/resolve/<rev>/<path>`.
//!   A branch name `<rev>` is resolved through `refs/<rev>`; every other snapshot is a fallback
//!   candidate too (the hash check decides).
use std::path::{Path, PathBuf};

use super::{FileSpec, Origin};

/// Where other tools keep their caches; `None` disables reuse from that tool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReuseDirs {
    /// torch.hub's directory (`$TORCH_HOME`), holding `hub/checkpoints/`.
    pub torch_home: Option<PathBuf>,
    /// Hugging Face's hub cache (`$HF_HOME/hub`), holding `models--<org>--<repo>/`.
    pub hf_hub_cache: Option<PathBuf>,
}

impl ReuseDirs {
    /// No reuse at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// The directories torch and huggingface_hub themselves would use, from the environment.
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let xdg_cache =
            var("XDG_CACHE_HOME").or_else(|| dirs::home_dir().map(|h| h.join(".cache")));
        let torch_home = var("TORCH_HOME").or_else(|| xdg_cache.as_ref().map(|c| c.join("torch")));
        let hf_hub_cache = var("HF_HUB_CACHE")
            .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
            .or_else(|| {
                xdg_cache
                    .as_ref()
                    .map(|c| c.join("huggingface").join("hub"))
            });
        Self {
            torch_home,
            hf_hub_cache,
        }
    }

    /// Existing files that may hold `spec`'s content, most specific first. They still have to
    /// be verified by the caller.
    pub fn candidates(&self, spec: &FileSpec) -> Vec<(Origin, PathBuf)> {
        let mut out = Vec::new();
        if let Some(torch) = &self.torch_home {
            let path = torch.join("hub").join("checkpoints").join(&spec.file_name);
            if path.is_file() {
                out.push((Origin::TorchHub { path: path.clone() }, path));
            }
        }
        if let Some(hub) = &self.hf_hub_cache {
            for url in &spec.urls {
                let Some(hf) = parse_hf_url(url) else {
                    continue;
                };
                for path in hf_snapshot_candidates(hub, &hf) {
                    if path.is_file() && !out.iter().any(|(_, p)| *p == path) {
                        out.push((Origin::HfCache { path: path.clone() }, path));
                    }
                }
            }
        }
        out
    }
}

/// The parts of a `https://huggingface.co/<org>/<repo>/resolve/<rev>/<path>` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfFile {
    /// `<org>/<repo>`.
    pub repo_id: String,
    /// Branch, tag or commit.
    pub revision: String,
    /// Path inside the repo (may contain `/`).
    pub path: String,
}

/// Parses a Hugging Face `resolve` URL; `None` for anything else.
pub fn parse_hf_url(url: &str) -> Option<HfFile> {
    let rest = url
        .strip_prefix("https://huggingface.co/")
        .or_else(|| url.strip_prefix("http://huggingface.co/"))?;
    let rest = rest.split(['?', '#']).next()?;
    let mut parts = rest.splitn(5, '/');
    let org = parts.next()?;
    let repo = parts.next()?;
    if parts.next()? != "resolve" {
        return None;
    }
    let revision = parts.next()?;
    let path = parts.next()?;
    let safe = |s: &str| !s.is_empty() && s != "." && s != "..";
    if ![org, repo, revision]
        .iter()
        .all(|s| safe(s) && !s.contains('\\'))
        || !path.split('/').all(safe)
    {
        return None;
    }
    Some(HfFile {
        repo_id: format!("{org}/{repo}"),
        revision: revision.to_string(),
        path: path.to_string(),
    })
}

fn hf_snapshot_candidates(hub: &Path, hf: &HfFile) -> Vec<PathBuf> {
    let repo_dir = hub.join(format!("models--{}", hf.repo_id.replace('/', "--")));
    let snapshots = repo_dir.join("snapshots");
    let mut revs = vec![hf.revision.clone()];
    if let Ok(commit) = std::fs::read_to_string(repo_dir.join("refs").join(&hf.revision)) {
        let commit = commit.trim();
        if !commit.is_empty() && !commit.contains(['/', '\\']) {
            revs.push(commit.to_string());
        }
    }
    if let Ok(entries) = std::fs::read_dir(&snapshots) {
        let mut others: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        others.sort();
        revs.extend(others);
    }
    let mut out: Vec<PathBuf> = Vec::new();
    for rev in revs {
        let path = snapshots.join(&rev).join(&hf.path);
        if !out.contains(&path) {
            out.push(path);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_resolve_urls() {
        let hf = parse_hf_url(
            "https://huggingface.co/timm/tf_efficientnet_b0.ns_jft_in1k/resolve/main/model.safetensors",
        )
        .unwrap();
        assert_eq!(hf.repo_id, "timm/tf_efficientnet_b0.ns_jft_in1k");
        assert_eq!(hf.revision, "main");
        assert_eq!(hf.path, "model.safetensors");
        assert!(parse_hf_url("https://huggingface.co/timm/x/blob/main/a").is_none());
        assert!(parse_hf_url("https://huggingface.co/timm/x/resolve/main/../a").is_none());
        assert!(parse_hf_url("https://github.com/a/b/resolve/main/a").is_none());
    }
}
