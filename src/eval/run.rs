//! The evaluation loop: each worker thread reads, decodes and transforms a whole batch and then
//! classifies it; the calling thread only counts.
//!
//! Batch `b` always holds the same samples (positions `b·B ..` of the selection), whichever
//! worker builds it and in whatever order batches finish, so the counts do not depend on the
//! number of workers.
//!
//! The schedule. Decoding and inference both want every core. When a pool of decode threads
//! feeds one forward pass spread over all cores (libtorch's OpenMP threads), the two compete
//! for the cores: every op of the pass waits for its slowest thread, and a thread that the
//! kernel gave to a decoder is slow. So each worker runs its own batch's forward pass, and the
//! classifier decides how many passes run at once and on how many threads each (on the CPU,
//! `src/eval/model.rs`: up to two passes on half the cores each; with two cores, one thread
//! each, and each core alternates between decoding a batch and classifying it). On a GPU one
//! pass runs at a time while the other workers decode. Measured with b0, 320 images, 2 cores:
//! 6.9–10.2 s with two one-thread passes, 10.5–12.7 s with one two-thread pass at a time. A
//! worker whose batch is built while every pass is busy waits for one.
//!
//! Memory is bounded by one batch per worker (its pixels, then the classifier's activations)
//! plus [`IN_FLIGHT`] classified batches (their logits) waiting to be counted.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::dataset::{Dataset, DatasetError};
use super::{decode, EvalError, EvalTransform};

/// Classified batches waiting to be counted, beyond the one each worker holds.
pub const IN_FLIGHT: usize = 2;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Images per forward pass.
    pub batch_size: usize,
    /// Threads that decode, resize and classify batches.
    pub workers: usize,
    /// Count and list unreadable images instead of stopping at the first.
    pub skip_bad: bool,
    /// Keep every image's top-5 (and content digest) in the outcome.
    pub keep_predictions: bool,
    /// ImageNet-ReaL label sets, one per dataset sample (indexed like `Dataset::samples`).
    pub real: Option<std::sync::Arc<Vec<Vec<usize>>>>,
}

impl RunOptions {
    /// `batch_size` images per pass on `workers` threads; stop at the first bad image; no
    /// predictions kept; no ReaL labels.
    pub fn new(batch_size: usize, workers: usize) -> RunOptions {
        RunOptions {
            batch_size,
            workers,
            skip_bad: false,
            keep_predictions: false,
            real: None,
        }
    }
}

/// ImageNet-ReaL counts (timm's `RealLabelsImagenet`): over the images whose ReaL label set is
/// not empty, a prediction is correct when one of its top-k classes is in the set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RealCounts {
    /// Images with a non-empty ReaL set.
    pub n: u64,
    /// Top-1 in the set.
    pub top1: u64,
    /// Any of the top-5 in the set.
    pub top5: u64,
}

/// An image that could not be evaluated (`--skip-bad`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BadImage {
    /// The sample's id.
    pub image: String,
    /// Why.
    pub error: String,
}

/// One image's prediction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Prediction {
    /// The sample's id.
    pub image: String,
    /// Its label.
    pub label: usize,
    /// The five highest logits' classes, best first (ties: the lower class first).
    pub top5: Vec<usize>,
}

/// Progress, reported after each batch.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Images classified (or skipped) so far.
    pub done: usize,
    /// Images to go through.
    pub total: usize,
    /// Top-1 correct so far.
    pub top1: u64,
    /// Images classified so far.
    pub classified: u64,
    /// Since the start.
    pub elapsed: Duration,
}

/// The counts of a run.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Outcome {
    /// Images classified.
    pub n: u64,
    /// Top-1 correct.
    pub top1: u64,
    /// Top-5 correct.
    pub top5: u64,
    /// Images skipped (`--skip-bad`), in dataset order.
    pub bad: Vec<BadImage>,
    /// sha256 over the sha256 of every selected image's bytes, in selection order (the dataset's
    /// content, as read).
    pub content_sha256: String,
    /// ImageNet-ReaL counts (with `--real-labels`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real: Option<RealCounts>,
    /// Per-image predictions in selection order (when asked for).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub predictions: Vec<Prediction>,
    /// Per-image content sha256 (hex; zeros for an unreadable file) in selection order (when
    /// predictions are kept), so shard outcomes can be merged into the whole run's hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_sha256: Vec<String>,
    /// Wall time.
    pub seconds: f64,
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// An image could not be read (without `--skip-bad`).
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// An image could not be decoded (without `--skip-bad`).
    #[error(
        "{0} (an unreadable image stops the run unless such images are to be counted and listed)"
    )]
    Image(#[from] EvalError),
    /// The classifier failed.
    #[error("inference: {0}")]
    Classifier(String),
    /// The classifier returned the wrong number of logits.
    #[error("inference: {got} logits for a batch of {images} images of {classes} classes")]
    Logits {
        /// Values returned.
        got: usize,
        /// Images in the batch.
        images: usize,
        /// Classes expected.
        classes: usize,
    },
}

struct Batch {
    /// Positions in the selection of the images in `data`, in order.
    positions: Vec<usize>,
    /// The transformed images (freed once classified).
    data: Vec<f32>,
    /// The classifier's logits, `positions.len() · classes`.
    logits: Vec<f32>,
    digests: Vec<(usize, [u8; 32])>,
    bad: Vec<(usize, BadImage)>,
}

/// The `k` best classes, best first; ties go to the lower class index.
pub fn top_k(logits: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Evaluates `selection` (sample indices of `ds`) with `classify`, which maps a batch (f32 NCHW,
/// `n` images) to `n · classes` logits. `classify` is called from the worker threads, by as many
/// at once as there are workers.
pub fn evaluate(
    ds: &Dataset,
    selection: &[usize],
    transform: &EvalTransform,
    classes: usize,
    opts: &RunOptions,
    classify: impl Fn(&[f32], usize) -> Result<Vec<f32>, String> + Sync,
    mut progress: impl FnMut(Progress),
) -> Result<Outcome, RunError> {
    let start = Instant::now();
    let bs = opts.batch_size.max(1);
    let per_image = 3 * transform.img_size * transform.img_size;
    let batches = selection.len().div_ceil(bs);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let tables = transform.tables();
    let mut digests = vec![[0u8; 32]; selection.len()];
    let mut bad: Vec<(usize, BadImage)> = Vec::new();
    let mut predictions: Vec<Option<Prediction>> = if opts.keep_predictions {
        vec![None; selection.len()]
    } else {
        Vec::new()
    };
    let (mut n, mut top1, mut top5, mut done) = (0u64, 0u64, 0u64, 0usize);
    let mut real = RealCounts::default();
    let result: Result<(), RunError> = std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<Result<Batch, RunError>>(IN_FLIGHT);
        for _ in 0..opts.workers.max(1) {
            let tx = tx.clone();
            let (next, stop, tables, classify) = (&next, &stop, &tables, &classify);
            scope.spawn(move || loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches || stop.load(Ordering::Relaxed) {
                    return;
                }
                let positions: Vec<usize> = (b * bs..((b + 1) * bs).min(selection.len())).collect();
                let done = build_batch(
                    ds,
                    selection,
                    &positions,
                    transform,
                    tables,
                    per_image,
                    opts.skip_bad,
                )
                .and_then(|mut batch| {
                    let m = batch.positions.len();
                    if m > 0 {
                        batch.logits = classify(&batch.data, m).map_err(RunError::Classifier)?;
                    }
                    batch.data = Vec::new();
                    Ok(batch)
                });
                if done.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                if tx.send(done).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        for batch in rx {
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            };
            for (pos, d) in &batch.digests {
                digests[*pos] = *d;
            }
            done += batch.digests.len();
            bad.extend(batch.bad);
            let m = batch.positions.len();
            if m > 0 {
                let logits = batch.logits;
                if logits.len() != m * classes {
                    stop.store(true, Ordering::Relaxed);
                    return Err(RunError::Logits {
                        got: logits.len(),
                        images: m,
                        classes,
                    });
                }
                for (row, &pos) in logits.chunks_exact(classes).zip(&batch.positions) {
                    let sample = &ds.samples[selection[pos]];
                    let top = top_k(row, 5);
                    n += 1;
                    top1 += u64::from(top.first() == Some(&sample.label));
                    top5 += u64::from(top.contains(&sample.label));
                    if let Some(sets) = &opts.real {
                        let set = &sets[selection[pos]];
                        if !set.is_empty() {
                            real.n += 1;
                            real.top1 += u64::from(set.contains(&top[0]));
                            real.top5 += u64::from(top.iter().any(|c| set.contains(c)));
                        }
                    }
                    if opts.keep_predictions {
                        predictions[pos] = Some(Prediction {
                            image: sample.id.clone(),
                            label: sample.label,
                            top5: top,
                        });
                    }
                }
            }
            progress(Progress {
                done,
                total: selection.len(),
                top1,
                classified: n,
                elapsed: start.elapsed(),
            });
        }
        Ok(())
    });
    result?;
    bad.sort_by_key(|(pos, _)| *pos);
    let content_sha256 = content_hash(&digests);
    Ok(Outcome {
        n,
        top1,
        top5,
        bad: bad.into_iter().map(|(_, b)| b).collect(),
        content_sha256,
        real: opts.real.as_ref().map(|_| real),
        predictions: predictions.into_iter().flatten().collect(),
        image_sha256: if opts.keep_predictions {
            digests.iter().map(hex::encode).collect()
        } else {
            Vec::new()
        },
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The content hash of a run: sha256 over the per-image sha256s, in selection order.
pub fn content_hash(digests: &[[u8; 32]]) -> String {
    let mut h = Sha256::new();
    for d in digests {
        h.update(d);
    }
    hex::encode(h.finalize())
}

fn build_batch(
    ds: &Dataset,
    selection: &[usize],
    positions: &[usize],
    transform: &EvalTransform,
    tables: &[[f32; 256]; 3],
    per_image: usize,
    skip_bad: bool,
) -> Result<Batch, RunError> {
    let mut batch = Batch {
        positions: Vec::with_capacity(positions.len()),
        data: vec![0f32; positions.len() * per_image],
        logits: Vec::new(),
        digests: Vec::with_capacity(positions.len()),
        bad: Vec::new(),
    };
    for &pos in positions {
        let sample = &ds.samples[selection[pos]];
        let one = ds.read(sample).map_err(RunError::from).and_then(|bytes| {
            let digest: [u8; 32] = Sha256::digest(&bytes).into();
            batch.digests.push((pos, digest));
            let slot = batch.positions.len();
            let img = decode(&bytes, &sample.id)?;
            transform.apply_into(
                &img,
                tables,
                &mut batch.data[slot * per_image..][..per_image],
            )?;
            Ok(())
        });
        match one {
            Ok(()) => batch.positions.push(pos),
            Err(e) if skip_bad => batch.bad.push((
                pos,
                BadImage {
                    image: sample.id.clone(),
                    error: e.to_string(),
                },
            )),
            Err(e) => return Err(e),
        }
    }
    if batch.digests.len() < positions.len() {
        // Unreadable files still count in the content hash, as "no bytes".
        for &pos in positions {
            if !batch.digests.iter().any(|(p, _)| *p == pos) {
                batch.digests.push((pos, [0u8; 32]));
            }
        }
    }
    batch.data.truncate(batch.positions.len() * per_image);
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_breaks_ties_toward_the_lower_class() {
        assert_eq!(top_k(&[0.1, 0.9, 0.9, -1.0, 0.5, 0.2], 5), [1, 2, 4, 5, 0]);
        assert_eq!(top_k(&[1.0, 2.0], 5), [1, 0]);
    }
}
