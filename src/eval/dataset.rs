//! ImageNet validation sets in the layouts users have, detected from the path, with labels in
//! timm's class order (sorted wnids, `imagenet_synsets.txt`).
//!
//! | layout | detected by | label |
//! |---|---|---|
//! | ImageFolder `val/<wnid>/*.JPEG` (also `DIR/val`, `DIR/validation`) | sub-folders holding images | class = position of the leaf folder name in timm's natural sort (`natural_key`) |
//! | ImageNetV2 `<0..999>/*.jpeg` | every class folder is a decimal number | the number itself (timm's natural sort gives the same on the full set) |
//! | Kaggle `ILSVRC/Data/CLS-LOC/val/*.JPEG` + `LOC_val_solution.csv` | the CSV in DIR or up to 4 parents | first wnid of `PredictionString`, in `LOC_synset_mapping.txt` order (else the sorted wnids) |
//! | webdataset shards `*.tar` (a file or a folder of them) | `.tar` | the sample's `.cls` member (an integer) |
//!
//! Samples are listed in timm's order (natural sort of the path; webdataset: shard order, then
//! member order). Shards are read in place: members are located by a scan of the tar headers and
//! read by offset, never extracted.
//!
//! | devkit: flat `ILSVRC2012_val_*.JPEG` (+ `ILSVRC2012_validation_ground_truth.txt` in DIR, up to 3 parents, or `ILSVRC2012_devkit_t12/data/`) | images named `ILSVRC2012_val_<8 digits>` directly in DIR | the shipped per-image wnids ([`super::imagenet`]); a ground-truth file (ILSVRC2012_IDs in `meta.mat` order) is cross-checked against them |
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Why a dataset could not be listed or an image not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Nothing that looks like a dataset.
    #[error("{}: no images found (looked for <class>/*.{{jpg,jpeg,png}} folders, a flat ILSVRC2012_val_*.JPEG folder, and *.tar shards)", path.display())]
    NoImages {
        /// The dataset path.
        path: PathBuf,
    },
    /// An image has no label.
    #[error("{image}: no label in {}", label_file.display())]
    MissingLabel {
        /// The image.
        image: String,
        /// Where its label should be.
        label_file: PathBuf,
    },
    /// The label file describes a different set of images.
    #[error("{}: labels {labels} images, but {} holds {images}", label_file.display(), dir.display())]
    LabelCount {
        /// The label file.
        label_file: PathBuf,
        /// How many images it labels.
        labels: usize,
        /// The image directory.
        dir: PathBuf,
        /// How many images it holds.
        images: usize,
    },
    /// A line of a label file could not be parsed.
    #[error("{}:{line}: {message}: {text:?}", file.display())]
    BadLabel {
        /// The label file (or `shard.tar:member`).
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: &'static str,
        /// The offending text.
        text: String,
    },
    /// A tar shard is malformed.
    #[error("{}: tar: {message}", shard.display())]
    Tar {
        /// The shard.
        shard: PathBuf,
        /// What is wrong (with the byte offset where known).
        message: String,
    },
    /// A layout zoo recognises but cannot label.
    #[error("{}: {why}", path.display())]
    Unsupported {
        /// The file that identified the layout.
        path: PathBuf,
        /// Why, and what to do instead.
        why: String,
    },
    /// A devkit ground-truth file disagrees with the shipped validation labels.
    #[error("{}:{line}: ILSVRC2012_ID {id} would be {wnid} here but was {earlier_wnid} on line {earlier_line}: not the ImageNet-1k validation ground truth zoo ships (or a line out of place)", file.display())]
    GroundTruthMismatch {
        /// The ground-truth file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// The ID on that line.
        id: u32,
        /// The wnid the shipped labels give that image.
        wnid: String,
        /// The line where the ID first appeared.
        earlier_line: usize,
        /// The wnid it meant there.
        earlier_wnid: String,
    },
    /// A `--subset`/`--per-class` request that cannot be met.
    #[error("selection: {0}")]
    Selection(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError + '_ {
    move |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Which layout a dataset was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// `<class>/*.JPEG`, classes in natural-sort order.
    ImageFolder,
    /// `<index>/*.jpeg` (ImageNetV2), class = the folder's number.
    ImageNetV2,
    /// Kaggle's flat folder + `LOC_val_solution.csv`.
    Kaggle,
    /// webdataset `.tar` shards with `.cls` labels.
    WebDataset,
    /// The devkit's flat `ILSVRC2012_val_*.JPEG` folder.
    Devkit,
}

/// Where a sample's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file.
    File(PathBuf),
    /// `len` bytes at `offset` of shard `shard`.
    Tar {
        /// Index into [`Dataset::shards`].
        shard: usize,
        /// Byte offset of the member's data.
        offset: u64,
        /// Member size.
        len: u64,
    },
}

/// One labelled image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Its name in reports: the path relative to the dataset root, or `shard.tar:key`.
    pub id: String,
    /// Class index (timm's order).
    pub label: usize,
    /// Where its bytes are.
    pub location: Location,
    /// Its size in bytes.
    pub len: u64,
}

/// A labelled image set.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The path given.
    pub root: PathBuf,
    /// How it was read.
    pub layout: Layout,
    /// Class names in label order (wnids, or the ImageNetV2/webdataset indices), if known.
    pub classes: Vec<String>,
    /// Every sample, in timm's order.
    pub samples: Vec<Sample>,
    /// The webdataset shards.
    pub shards: Vec<PathBuf>,
    /// The label file, where the layout has one.
    pub label_file: Option<PathBuf>,
}

/// What identifies a dataset in results: its layout, size and a hash of its listing (ids,
/// labels, byte sizes), so a changed or relabelled set never reuses a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Manifest {
    /// How it was read.
    pub layout: Layout,
    /// Images in the set.
    pub images: usize,
    /// Classes.
    pub classes: usize,
    /// sha256 over `id\tlabel\tsize\n` of every sample, in order.
    pub listing_sha256: String,
}

/// timm's `natural_key`: lower-cased, split into digit and non-digit runs, digits compared as
/// numbers. Runs alternate text/number from a (possibly empty) text run, so two keys always
/// compare like with like.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn runs(s: &str) -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = vec![(false, String::new())];
        for c in s.to_lowercase().chars() {
            let digit = c.is_ascii_digit();
            match out.last_mut() {
                Some((d, run)) if *d == digit => run.push(c),
                _ => out.push((digit, c.to_string())),
            }
        }
        out
    }
    let (ra, rb) = (runs(a), runs(b));
    for (x, y) in ra.iter().zip(&rb) {
        let o = if x.0 && y.0 {
            let (tx, ty) = (x.1.trim_start_matches('0'), y.1.trim_start_matches('0'));
            tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty))
        } else {
            x.1.cmp(&y.1)
        };
        if o.is_ne() {
            return o;
        }
    }
    ra.len().cmp(&rb.len())
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
}

fn file_len(p: &Path) -> Result<u64, DatasetError> {
    Ok(std::fs::metadata(p).map_err(io(p))?.len())
}

/// Every image under `dir`, recursively, as (relative path, path).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DatasetError> {
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        let p = e.path();
        if e.file_type().map_err(io(&p))?.is_dir() {
            walk(&p, out)?;
        } else if is_image(&p) {
            out.push(p);
        }
    }
    Ok(())
}

impl Dataset {
    /// Reads the dataset at `path`, detecting its layout.
    pub fn open(path: &Path) -> Result<Dataset, DatasetError> {
        let meta = std::fs::metadata(path).map_err(io(path))?;
        if meta.is_file() {
            if path.extension().is_some_and(|e| e == "tar") {
                return Self::webdataset(path, vec![path.to_path_buf()]);
            }
            return Err(DatasetError::NoImages {
                path: path.to_path_buf(),
            });
        }
        let mut tars = Vec::new();
        let mut direct_images = 0usize;
        let mut subdirs = Vec::new();
        for e in std::fs::read_dir(path).map_err(io(path))? {
            let p = e.map_err(io(path))?.path();
            if p.is_dir() {
                subdirs.push(p);
            } else if p.extension().is_some_and(|e| e == "tar") {
                tars.push(p);
            } else if is_image(&p) {
                direct_images += 1;
            }
        }
        if !tars.is_empty() && direct_images == 0 {
            tars.sort_by(|a, b| natural_cmp(&a.to_string_lossy(), &b.to_string_lossy()));
            return Self::webdataset(path, tars);
        }
        if let Some(csv) = find_up(path, "LOC_val_solution.csv", 4) {
            let dir = if direct_images > 0 {
                path.to_path_buf()
            } else {
                path.join("ILSVRC/Data/CLS-LOC/val")
            };
            return Self::kaggle(path, &dir, &csv);
        }
        if direct_images > 0 {
            let gt = find_up(path, "ILSVRC2012_validation_ground_truth.txt", 3).or_else(|| {
                find_up(
                    path,
                    "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt",
                    2,
                )
            });
            return Self::devkit(path, gt.as_deref());
        }
        // timm's `_search_split`: a dataset root whose sub-folders are splits (`train/`, `val/`, …).
        if !subdirs.is_empty() && is_split_root(&subdirs) {
            for split in ["validation", "val"] {
                let p = path.join(split);
                if p.is_dir() {
                    return Self::image_folder(&p);
                }
            }
        }
        Self::image_folder(path)
    }

    fn image_folder(dir: &Path) -> Result<Dataset, DatasetError> {
        let mut files = Vec::new();
        walk(dir, &mut files)?;
        if files.is_empty() {
            return Err(DatasetError::NoImages {
                path: dir.to_path_buf(),
            });
        }
        let leaf = |p: &Path| {
            p.parent()
                .filter(|d| *d != dir)
                .and_then(|d| d.file_name())
                .map(|n| n.to_string_lossy().into_owned())
        };
        let mut names = BTreeSet::new();
        for f in &files {
            match leaf(f) {
                Some(n) => {
                    names.insert(n);
                }
                None => {
                    return Err(DatasetError::MissingLabel {
                        image: f.display().to_string(),
                        label_file: dir.join("<class folder>"),
                    })
                }
            }
        }
        let v2 = names
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && n.len() <= 6);
        let mut classes: Vec<String> = names.into_iter().collect();
        classes.sort_by(|a, b| natural_cmp(a, b));
        let (layout, index): (Layout, BTreeMap<String, usize>) = if v2 {
            let max = classes
                .iter()
                .map(|c| c.parse::<usize>().unwrap_or(0))
                .max()
                .unwrap_or(0);
            classes = (0..=max.max(999)).map(|i| i.to_string()).collect();
            (
                Layout::ImageNetV2,
                classes
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.clone(), i))
                    .collect(),
            )
        } else {
            (
                Layout::ImageFolder,
                classes
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.clone(), i))
                    .collect(),
            )
        };
        let mut samples = Vec::with_capacity(files.len());
        for f in files {
            let rel = f
                .strip_prefix(dir)
                .unwrap_or(&f)
                .to_string_lossy()
                .into_owned();
            let label = index[&leaf(&f).unwrap_or_default()];
            let label = if v2 {
                leaf(&f).and_then(|n| n.parse().ok()).unwrap_or(label)
            } else {
                label
            };
            samples.push(Sample {
                id: rel,
                label,
                len: file_len(&f)?,
                location: Location::File(f),
            });
        }
        samples.sort_by(|a, b| natural_cmp(&a.id, &b.id));
        Ok(Dataset {
            root: dir.to_path_buf(),
            layout,
            classes,
            samples,
            shards: Vec::new(),
            label_file: None,
        })
    }

    /// The devkit's flat folder: every image must be named `ILSVRC2012_val_<8 digits>`; its class
    /// comes from the ground-truth file when there is one (checked against the shipped labels),
    /// else from the shipped labels.
    fn devkit(dir: &Path, gt: Option<&Path>) -> Result<Dataset, DatasetError> {
        let truth = gt.map(super::imagenet::GroundTruth::read).transpose()?;
        let label_file = gt.map_or_else(
            || dir.join("ILSVRC2012_validation_ground_truth.txt"),
            Path::to_path_buf,
        );
        let mut samples = Vec::new();
        for e in std::fs::read_dir(dir).map_err(io(dir))? {
            let p = e.map_err(io(dir))?.path();
            if !(p.is_file() && is_image(&p)) {
                continue;
            }
            let id = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let number = super::imagenet::val_number(&id);
            let label = number.and_then(|n| match &truth {
                Some(t) => t.label(n),
                None => super::imagenet::val_label(n),
            });
            let Some(label) = label else {
                return Err(DatasetError::MissingLabel {
                    image: p.display().to_string(),
                    label_file: if number.is_none() {
                        PathBuf::from(
                            "ILSVRC2012 validation (a flat folder needs ILSVRC2012_val_<1..50000>.JPEG names, or LOC_val_solution.csv)",
                        )
                    } else {
                        label_file.clone()
                    },
                });
            };
            samples.push(Sample {
                id,
                label,
                len: file_len(&p)?,
                location: Location::File(p),
            });
        }
        samples.sort_by(|a, b| natural_cmp(&a.id, &b.id));
        Ok(Dataset {
            root: dir.to_path_buf(),
            layout: Layout::Devkit,
            classes: super::imagenet::synsets()
                .into_iter()
                .map(str::to_string)
                .collect(),
            samples,
            shards: Vec::new(),
            label_file: gt.map(Path::to_path_buf),
        })
    }

    fn kaggle(root: &Path, dir: &Path, csv: &Path) -> Result<Dataset, DatasetError> {
        let text = std::fs::read_to_string(csv).map_err(io(csv))?;
        let mut labels: BTreeMap<String, String> = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            if i == 0 && line.starts_with("ImageId") {
                continue;
            }
            if line.trim().is_empty() {
                continue;
            }
            let bad = |message| DatasetError::BadLabel {
                file: csv.to_path_buf(),
                line: i + 1,
                message,
                text: line.to_string(),
            };
            let (id, pred) = line
                .split_once(',')
                .ok_or_else(|| bad("expected `ImageId,PredictionString`"))?;
            let wnid = pred
                .split_whitespace()
                .next()
                .ok_or_else(|| bad("empty PredictionString"))?;
            if !(wnid.len() == 9
                && wnid.starts_with('n')
                && wnid[1..].bytes().all(|b| b.is_ascii_digit()))
            {
                return Err(bad("the first token of PredictionString is not a wnid"));
            }
            labels.insert(id.to_string(), wnid.to_string());
        }
        let classes: Vec<String> = match find_up(dir, "LOC_synset_mapping.txt", 4) {
            Some(map) => std::fs::read_to_string(&map)
                .map_err(io(&map))?
                .lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .collect(),
            None => labels
                .values()
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        };
        let index: BTreeMap<&str, usize> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let mut files = Vec::new();
        for e in std::fs::read_dir(dir).map_err(io(dir))? {
            let p = e.map_err(io(dir))?.path();
            if p.is_file() && is_image(&p) {
                files.push(p);
            }
        }
        if files.is_empty() {
            return Err(DatasetError::NoImages {
                path: dir.to_path_buf(),
            });
        }
        if files.len() != labels.len() {
            return Err(DatasetError::LabelCount {
                label_file: csv.to_path_buf(),
                labels: labels.len(),
                dir: dir.to_path_buf(),
                images: files.len(),
            });
        }
        let mut samples = Vec::with_capacity(files.len());
        for f in files {
            let stem = f
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let id = f
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let wnid = labels
                .get(&stem)
                .ok_or_else(|| DatasetError::MissingLabel {
                    image: f.display().to_string(),
                    label_file: csv.to_path_buf(),
                })?;
            let label = *index
                .get(wnid.as_str())
                .ok_or_else(|| DatasetError::MissingLabel {
                    image: format!("{} (class {wnid})", f.display()),
                    label_file: find_up(dir, "LOC_synset_mapping.txt", 4)
                        .unwrap_or_else(|| csv.to_path_buf()),
                })?;
            samples.push(Sample {
                id,
                label,
                len: file_len(&f)?,
                location: Location::File(f),
            });
        }
        samples.sort_by(|a, b| natural_cmp(&a.id, &b.id));
        Ok(Dataset {
            root: root.to_path_buf(),
            layout: Layout::Kaggle,
            classes,
            samples,
            shards: Vec::new(),
            label_file: Some(csv.to_path_buf()),
        })
    }

    fn webdataset(root: &Path, shards: Vec<PathBuf>) -> Result<Dataset, DatasetError> {
        let mut samples = Vec::new();
        for (si, shard) in shards.iter().enumerate() {
            let name = shard
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let tar_err = |e: std::io::Error| DatasetError::Tar {
                shard: shard.clone(),
                message: e.to_string(),
            };
            let mut archive = tar::Archive::new(File::open(shard).map_err(io(shard))?);
            // key → (image location, label)
            let mut pending: Vec<PendingSample> = Vec::new();
            for entry in archive.entries_with_seek().map_err(tar_err)? {
                let mut entry = entry.map_err(tar_err)?;
                if !entry.header().entry_type().is_file() {
                    continue;
                }
                let path = entry
                    .path()
                    .map_err(tar_err)?
                    .to_string_lossy()
                    .into_owned();
                // webdataset: the key is the path up to the first dot of the file name.
                let (dirpart, base) = path
                    .rsplit_once('/')
                    .map_or(("", path.as_str()), |(d, b)| (d, b));
                let Some((stem, ext)) = base.split_once('.') else {
                    continue;
                };
                let key = if dirpart.is_empty() {
                    stem.to_string()
                } else {
                    format!("{dirpart}/{stem}")
                };
                let ext = ext.to_ascii_lowercase();
                if pending.last().is_none_or(|p| p.0 != key) {
                    pending.push((key.clone(), None, None));
                }
                let slot = pending.last_mut().expect("pushed");
                match ext.as_str() {
                    "jpg" | "jpeg" | "png" => {
                        slot.1 = Some((entry.raw_file_position(), entry.size()))
                    }
                    "cls" => {
                        let mut s = String::new();
                        entry
                            .by_ref()
                            .take(64)
                            .read_to_string(&mut s)
                            .map_err(tar_err)?;
                        let label =
                            s.trim()
                                .parse::<usize>()
                                .map_err(|_| DatasetError::BadLabel {
                                    file: PathBuf::from(format!("{}:{path}", shard.display())),
                                    line: 1,
                                    message: "a .cls member must hold a class index",
                                    text: s.clone(),
                                })?;
                        slot.2 = Some(label);
                    }
                    _ => {}
                }
            }
            for (key, image, label) in pending {
                let Some((offset, len)) = image else { continue };
                let label = label.ok_or_else(|| DatasetError::MissingLabel {
                    image: format!("{}:{key}", shard.display()),
                    label_file: PathBuf::from(format!("{}:{key}.cls", shard.display())),
                })?;
                samples.push(Sample {
                    id: format!("{name}:{key}"),
                    label,
                    location: Location::Tar {
                        shard: si,
                        offset,
                        len,
                    },
                    len,
                });
            }
        }
        if samples.is_empty() {
            return Err(DatasetError::NoImages {
                path: root.to_path_buf(),
            });
        }
        let n = samples.iter().map(|s| s.label).max().unwrap_or(0).max(999) + 1;
        Ok(Dataset {
            root: root.to_path_buf(),
            layout: Layout::WebDataset,
            classes: (0..n).map(|i| i.to_string()).collect(),
            samples,
            shards,
            label_file: None,
        })
    }

    /// The bytes of a sample.
    pub fn read(&self, s: &Sample) -> Result<Vec<u8>, DatasetError> {
        match &s.location {
            Location::File(p) => std::fs::read(p).map_err(io(p)),
            Location::Tar { shard, offset, len } => {
                let path = &self.shards[*shard];
                let mut f = File::open(path).map_err(io(path))?;
                f.seek(SeekFrom::Start(*offset)).map_err(io(path))?;
                let mut buf = Vec::with_capacity(*len as usize);
                f.take(*len).read_to_end(&mut buf).map_err(io(path))?;
                if buf.len() as u64 != *len {
                    return Err(DatasetError::Tar {
                        shard: path.clone(),
                        message: format!(
                            "member {} ends at byte {} of {len} (offset {offset})",
                            s.id,
                            buf.len()
                        ),
                    });
                }
                Ok(buf)
            }
        }
    }

    /// The dataset's identity in results.
    pub fn manifest(&self) -> Manifest {
        let mut h = Sha256::new();
        for s in &self.samples {
            h.update(format!("{}\t{}\t{}\n", s.id, s.label, s.len).as_bytes());
        }
        Manifest {
            layout: self.layout,
            images: self.samples.len(),
            classes: self.classes.len(),
            listing_sha256: hex::encode(h.finalize()),
        }
    }
}

/// A webdataset key while its shard is scanned: (key, image offset and size, label).
type PendingSample = (String, Option<(u64, u64)>, Option<usize>);

/// Whether the sub-folders look like a dataset root (`train/`, `val/`, …) rather than classes.
fn is_split_root(subdirs: &[PathBuf]) -> bool {
    subdirs.iter().all(|d| {
        matches!(
            d.file_name().and_then(|n| n.to_str()),
            Some("train" | "val" | "validation" | "test" | "valid" | "eval")
        )
    })
}

fn find_up(dir: &Path, name: &str, levels: usize) -> Option<PathBuf> {
    dir.ancestors()
        .take(levels + 1)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Which samples a run evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Selection {
    /// Every image.
    All,
    /// `n` images drawn uniformly without replacement.
    Subset {
        /// How many.
        n: usize,
        /// The seed.
        seed: u64,
    },
    /// The first `k` images of each class after a seeded shuffle.
    PerClass {
        /// Per class.
        k: usize,
        /// The seed.
        seed: u64,
    },
}

/// The default seed of `--subset`/`--per-class` (recorded in every result).
pub const DEFAULT_SEED: u64 = 0x5EED_2012;

/// SplitMix64 (Steele, Lea, Flood 2014): a fixed, documented generator, so a recorded seed
/// selects the same images in every zoo version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift with rejection).
    fn below(&mut self, n: u64) -> u64 {
        loop {
            let m = u128::from(self.next()) * u128::from(n);
            if (m as u64) >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }

    /// A seeded Fisher–Yates shuffle.
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

impl Selection {
    /// The selected sample indices, ascending.
    pub fn indices(&self, samples: &[Sample]) -> Result<Vec<usize>, DatasetError> {
        let mut out: Vec<usize> = match *self {
            Selection::All => (0..samples.len()).collect(),
            Selection::Subset { n, seed } => {
                if n == 0 || n > samples.len() {
                    return Err(DatasetError::Selection(format!(
                        "--subset {n}: the dataset has {} images",
                        samples.len()
                    )));
                }
                let mut all: Vec<usize> = (0..samples.len()).collect();
                SplitMix64(seed).shuffle(&mut all);
                all.truncate(n);
                all
            }
            Selection::PerClass { k, seed } => {
                let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
                for (i, s) in samples.iter().enumerate() {
                    by_class.entry(s.label).or_default().push(i);
                }
                let mut rng = SplitMix64(seed);
                let mut out = Vec::new();
                for (class, mut v) in by_class {
                    if v.len() < k {
                        return Err(DatasetError::Selection(format!(
                            "--per-class {k}: class {class} has {} images",
                            v.len()
                        )));
                    }
                    rng.shuffle(&mut v);
                    out.extend_from_slice(&v[..k]);
                }
                out
            }
        };
        out.sort_unstable();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn natural_order_is_timms() {
        let mut v = vec![
            "n10/a.jpg",
            "n2/b10.jpg",
            "n2/b9.jpg",
            "N2/b1.JPG",
            "n01/x.jpg",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            [
                "n01/x.jpg",
                "N2/b1.JPG",
                "n2/b9.jpg",
                "n2/b10.jpg",
                "n10/a.jpg"
            ]
        );
        assert_eq!(natural_cmp("100", "2"), Ordering::Greater);
        assert_eq!(natural_cmp("n01440764", "n01443537"), Ordering::Less);
    }

    #[test]
    fn splitmix_is_the_published_sequence() {
        // First outputs of SplitMix64 seeded with 0 (reference: Vigna's splitmix64.c).
        let mut r = SplitMix64(0);
        assert_eq!(r.next(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn selections_are_seeded_and_sized() {
        let samples: Vec<Sample> = (0..100)
            .map(|i| Sample {
                id: i.to_string(),
                label: i % 10,
                location: Location::File(PathBuf::new()),
                len: 0,
            })
            .collect();
        let a = Selection::Subset { n: 30, seed: 1 }
            .indices(&samples)
            .unwrap();
        assert_eq!(a.len(), 30);
        assert_eq!(
            a,
            Selection::Subset { n: 30, seed: 1 }
                .indices(&samples)
                .unwrap()
        );
        assert_ne!(
            a,
            Selection::Subset { n: 30, seed: 2 }
                .indices(&samples)
                .unwrap()
        );
        let p = Selection::PerClass { k: 3, seed: 1 }
            .indices(&samples)
            .unwrap();
        assert_eq!(p.len(), 30);
        for c in 0..10 {
            assert_eq!(p.iter().filter(|&&i| samples[i].label == c).count(), 3);
        }
        assert!(Selection::Subset { n: 101, seed: 1 }
            .indices(&samples)
            .is_err());
        assert!(Selection::PerClass { k: 11, seed: 1 }
            .indices(&samples)
            .is_err());
    }
}
