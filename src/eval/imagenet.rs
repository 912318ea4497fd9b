//! ImageNet-1k validation facts zoo ships as data: timm's class order (the 1000 sorted wnids) and
//! the class of each of the 50,000 validation images, so a flat devkit folder can be labelled and
//! a devkit ground-truth file (ILSVRC2012_IDs in `meta.mat` order) cross-checked.
//!
//! Source of `data/ilsvrc2012_val_labels.u16le`: the public image → wnid listing of the ILSVRC2012
//! validation set (soumith/imagenetloader.torch `valprep.sh`, commit b81dbb1; the same mapping as
//! tensorflow/models' `imagenet_2012_validation_synset_labels.txt`), stored as one little-endian
//! u16 per image (in `ILSVRC2012_val_00000001 …` order): the index of its wnid in
//! `data/imagenet_synsets.txt`.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::dataset::DatasetError;

/// Images in the ImageNet-1k validation set.
pub const VAL_IMAGES: usize = 50_000;

const SYNSETS: &str = include_str!("data/imagenet_synsets.txt");
const VAL_LABELS: &[u8] = include_bytes!("data/ilsvrc2012_val_labels.u16le");

/// The 1000 ImageNet-1k wnids in timm's class order (sorted; `imagenet_synsets.txt`).
pub fn synsets() -> Vec<&'static str> {
    SYNSETS.lines().collect()
}

/// The class (index into [`synsets`]) of validation image `number` (1-based, as in
/// `ILSVRC2012_val_00000001.JPEG`), or `None` outside `1..=50000`.
pub fn val_label(number: usize) -> Option<usize> {
    let i = number.checked_sub(1)?;
    let b = VAL_LABELS.get(2 * i..2 * i + 2)?;
    Some(usize::from(u16::from_le_bytes([b[0], b[1]])))
}

/// The 1-based validation image number of a file or sample name such as
/// `ILSVRC2012_val_00012345.JPEG`, `val/n01440764/ILSVRC2012_val_00012345.JPEG` or
/// `shard.tar:ILSVRC2012_val_00012345`.
pub fn val_number(name: &str) -> Option<usize> {
    let base = name.rsplit(['/', '\\', ':']).next()?;
    let rest = base.strip_prefix("ILSVRC2012_val_")?;
    let digits = rest.split('.').next()?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: usize = digits.parse().ok()?;
    (1..=VAL_IMAGES).contains(&n).then_some(n)
}

/// The devkit's `ILSVRC2012_validation_ground_truth.txt`, read and checked against the shipped
/// labels: the ILSVRC2012_ID → class map it implies, one class per ID.
#[derive(Debug, Clone)]
pub struct GroundTruth {
    /// The file.
    pub path: PathBuf,
    /// ILSVRC2012_ID (1-based, `meta.mat` order) → class index (timm's order).
    pub id_to_class: BTreeMap<u32, usize>,
    /// The ID of each image, in image order.
    pub ids: Vec<u32>,
}

impl GroundTruth {
    /// Reads `path`: 50,000 lines, each an ILSVRC2012_ID in 1..=1000. The ID → wnid map is
    /// derived from the shipped per-image wnids; an ID that would name two wnids (a file that
    /// does not describe ImageNet-1k validation, or a line out of place) is an error naming the
    /// line.
    pub fn read(path: &Path) -> Result<GroundTruth, DatasetError> {
        let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut ids = Vec::with_capacity(VAL_IMAGES);
        let mut id_to_class: BTreeMap<u32, usize> = BTreeMap::new();
        let mut first_line: BTreeMap<u32, usize> = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let bad = |message| DatasetError::BadLabel {
                file: path.to_path_buf(),
                line: i + 1,
                message,
                text: line.to_string(),
            };
            let id: u32 = line
                .trim()
                .parse()
                .map_err(|_| bad("expected an ILSVRC2012_ID (an integer)"))?;
            if !(1..=1000).contains(&id) {
                return Err(bad("an ILSVRC2012_ID of ImageNet-1k lies in 1..=1000"));
            }
            let Some(class) = val_label(i + 1) else {
                return Err(DatasetError::LabelCount {
                    label_file: path.to_path_buf(),
                    labels: text.lines().count(),
                    dir: PathBuf::from("ImageNet-1k validation"),
                    images: VAL_IMAGES,
                });
            };
            match id_to_class.get(&id) {
                Some(&c) if c != class => {
                    return Err(DatasetError::GroundTruthMismatch {
                        file: path.to_path_buf(),
                        line: i + 1,
                        id,
                        wnid: synsets()[class].to_string(),
                        earlier_line: first_line[&id],
                        earlier_wnid: synsets()[c].to_string(),
                    })
                }
                Some(_) => {}
                None => {
                    id_to_class.insert(id, class);
                    first_line.insert(id, i + 1);
                }
            }
            ids.push(id);
        }
        if ids.len() != VAL_IMAGES {
            return Err(DatasetError::LabelCount {
                label_file: path.to_path_buf(),
                labels: ids.len(),
                dir: PathBuf::from("ImageNet-1k validation"),
                images: VAL_IMAGES,
            });
        }
        Ok(GroundTruth {
            path: path.to_path_buf(),
            id_to_class,
            ids,
        })
    }

    /// The class of validation image `number` (1-based) by the file's ID and the derived map.
    pub fn label(&self, number: usize) -> Option<usize> {
        let id = self.ids.get(number.checked_sub(1)?)?;
        self.id_to_class.get(id).copied()
    }
}

/// ImageNet-ReaL labels (google-research/reassessed-imagenet `real.json`): for each of the
/// 50,000 validation images, in image order, the set of classes a reassessment found correct
/// (possibly empty: such images are left out of ReaL accuracy, as timm's `RealLabelsImagenet`
/// does).
#[derive(Debug, Clone)]
pub struct RealLabels {
    /// The file.
    pub path: PathBuf,
    /// Per image (index = number − 1), its classes.
    pub labels: Vec<Vec<usize>>,
}

impl RealLabels {
    /// Reads `real.json`: a JSON list of 50,000 lists of class indices in 0..1000.
    pub fn read(path: &Path) -> Result<RealLabels, DatasetError> {
        let bytes = std::fs::read(path).map_err(|source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |line: usize, message: &'static str, text: String| DatasetError::BadLabel {
            file: path.to_path_buf(),
            line,
            message,
            text,
        };
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(e.line(), "not JSON", e.to_string()))?;
        let list = value
            .as_array()
            .ok_or_else(|| bad(1, "expected a list (one entry per image)", String::new()))?;
        if list.len() != VAL_IMAGES {
            return Err(DatasetError::LabelCount {
                label_file: path.to_path_buf(),
                labels: list.len(),
                dir: PathBuf::from("ImageNet-1k validation"),
                images: VAL_IMAGES,
            });
        }
        let mut labels = Vec::with_capacity(VAL_IMAGES);
        for (i, entry) in list.iter().enumerate() {
            let at = || format!("entry {i} (image {}): {entry}", i + 1);
            let set = entry
                .as_array()
                .ok_or_else(|| bad(1, "expected a list of class indices", at()))?;
            let mut classes = Vec::with_capacity(set.len());
            for c in set {
                match c.as_u64() {
                    Some(c) if c < 1000 => classes.push(c as usize),
                    _ => return Err(bad(1, "a class index lies in 0..1000", at())),
                }
            }
            labels.push(classes);
        }
        Ok(RealLabels {
            path: path.to_path_buf(),
            labels,
        })
    }

    /// The classes of each sample of `ds`, by its validation image number (from its name, as
    /// timm looks ReaL labels up by file name); a sample without one is an error naming it.
    pub fn for_samples(
        &self,
        samples: &[super::dataset::Sample],
    ) -> Result<Vec<Vec<usize>>, DatasetError> {
        samples
            .iter()
            .map(|s| {
                val_number(&s.id)
                    .map(|n| self.labels[n - 1].clone())
                    .ok_or_else(|| DatasetError::MissingLabel {
                        image: format!(
                            "{} (ReaL labels are found by the ILSVRC2012_val_<number> name)",
                            s.id
                        ),
                        label_file: self.path.clone(),
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_labels_are_fifty_images_of_each_of_the_thousand_classes() {
        let s = synsets();
        assert_eq!(s.len(), 1000);
        assert!(s.windows(2).all(|w| w[0] < w[1]), "sorted, distinct");
        assert!(s.iter().all(|w| w.len() == 9 && w.starts_with('n')));
        assert_eq!(VAL_LABELS.len(), 2 * VAL_IMAGES);
        let mut counts = vec![0usize; 1000];
        for n in 1..=VAL_IMAGES {
            counts[val_label(n).unwrap()] += 1;
        }
        assert!(counts.iter().all(|&c| c == 50), "50 images per class");
        assert_eq!(val_label(0), None);
        assert_eq!(val_label(VAL_IMAGES + 1), None);
        // The first images of the published listing.
        assert_eq!(s[val_label(1).unwrap()], "n01751748");
        assert_eq!(s[val_label(2).unwrap()], "n09193705");
        assert_eq!(s[val_label(3).unwrap()], "n02105855");
        assert_eq!(s[val_label(50_000).unwrap()], "n02437616");
    }

    #[test]
    fn val_numbers_are_read_from_names() {
        assert_eq!(val_number("ILSVRC2012_val_00000001.JPEG"), Some(1));
        assert_eq!(
            val_number("n01440764/ILSVRC2012_val_00050000.JPEG"),
            Some(50_000)
        );
        assert_eq!(val_number("s.tar:ILSVRC2012_val_00000007"), Some(7));
        assert_eq!(val_number("ILSVRC2012_val_00050001.JPEG"), None);
        assert_eq!(val_number("ILSVRC2012_val_0000001.JPEG"), None);
        assert_eq!(val_number("img.jpg"), None);
    }
}
