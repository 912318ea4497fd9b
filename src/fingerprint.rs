//! A weight fingerprint that does not depend on the container.
//!
//! File hashes differ whenever the container differs (legacy vs zip `.pth`, safetensors, key
//! order, `_metadata`), even for identical weights. The fingerprint hashes the tensors in
//! canonical form instead:
//!
//! 1. each tensor's digest is `sha256("<DTYPE>\n<d0>,<d1>,…\n" ‖ contiguous little-endian bytes)`;
//! 2. tensors are split into parameters and buffers (`running_mean`, `running_var`); the
//!    `num_batches_tracked` counters are training bookkeeping and are listed, not hashed;
//! 3. each section's digest is `sha256` over its lines `<key>\t<tensor digest>\n`, keys sorted
//!    bytewise; the fingerprint is `sha256("zoo-fingerprint/1\nparams <p>\nbuffers <b>\n")`.
//!
//! Per-tensor digests make it streamable: a converter can fingerprint tensors as it writes them,
//! in any order.
use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use zoo_converters::Tensor;

/// Version tag hashed into every fingerprint.
pub const FINGERPRINT_VERSION: &str = "zoo-fingerprint/1";

/// The safetensors `__metadata__` key under which zoo records a file's fingerprint.
pub const FINGERPRINT_KEY: &str = "zoo.fingerprint";

/// Whether a state-dict key names a buffer rather than a trainable parameter.
pub fn is_buffer(key: &str) -> bool {
    key.ends_with(".running_mean") || key.ends_with(".running_var")
}

/// Keys that are neither hashed as parameters nor buffers.
pub fn is_bookkeeping(key: &str) -> bool {
    key.ends_with(".num_batches_tracked")
}

/// The digest of one tensor in canonical form.
pub fn tensor_digest(t: &Tensor) -> String {
    let mut h = Sha256::new();
    let shape: Vec<String> = t.shape().iter().map(ToString::to_string).collect();
    h.update(format!("{}\n{}\n", t.dtype().name(), shape.join(",")));
    h.update(t.data());
    hex::encode(h.finalize())
}

/// Accumulates tensor digests; order of [`Fingerprinter::add`] calls does not matter.
#[derive(Debug, Default, Clone)]
pub struct Fingerprinter {
    params: BTreeMap<String, String>,
    buffers: BTreeMap<String, String>,
    skipped: Vec<String>,
}

impl Fingerprinter {
    /// Adds one tensor.
    pub fn add(&mut self, key: &str, t: &Tensor) {
        if is_bookkeeping(key) {
            self.skipped.push(key.to_owned());
        } else if is_buffer(key) {
            self.buffers.insert(key.to_owned(), tensor_digest(t));
        } else {
            self.params.insert(key.to_owned(), tensor_digest(t));
        }
    }

    /// The result.
    pub fn finish(mut self) -> Fingerprint {
        fn section(m: &BTreeMap<String, String>) -> String {
            let mut h = Sha256::new();
            for (k, d) in m {
                h.update(format!("{k}\t{d}\n"));
            }
            hex::encode(h.finalize())
        }
        let params = section(&self.params);
        let buffers = section(&self.buffers);
        let fingerprint = hex::encode(Sha256::digest(format!(
            "{FINGERPRINT_VERSION}\nparams {params}\nbuffers {buffers}\n"
        )));
        self.skipped.sort();
        Fingerprint {
            fingerprint,
            params,
            buffers,
            param_tensors: self.params.len(),
            buffer_tensors: self.buffers.len(),
            skipped: self.skipped,
        }
    }
}

/// A container-independent identity of a set of weights.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fingerprint {
    /// The fingerprint (hex sha256).
    pub fingerprint: String,
    /// Digest of the parameter section.
    pub params: String,
    /// Digest of the buffer section.
    pub buffers: String,
    /// Number of parameter tensors.
    pub param_tensors: usize,
    /// Number of buffer tensors.
    pub buffer_tensors: usize,
    /// Keys listed but not hashed (`num_batches_tracked`), sorted.
    pub skipped: Vec<String>,
}

/// Fingerprints a whole state dict.
pub fn fingerprint<'a>(tensors: impl IntoIterator<Item = (&'a String, &'a Tensor)>) -> Fingerprint {
    let mut f = Fingerprinter::default();
    for (k, t) in tensors {
        f.add(k, t);
    }
    f.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32]) -> Tensor {
        Tensor::from_f32(vec![v.len()], v).unwrap()
    }

    #[test]
    fn order_independent_and_value_sensitive() {
        let a = [
            ("x.weight".to_string(), t(&[1.0, 2.0])),
            ("bn.running_var".to_string(), t(&[1.0])),
        ];
        let b = [a[1].clone(), a[0].clone()];
        let fa = fingerprint(a.iter().map(|(k, v)| (k, v)));
        assert_eq!(fa, fingerprint(b.iter().map(|(k, v)| (k, v))));
        assert_eq!((fa.param_tensors, fa.buffer_tensors), (1, 1));
        let c = [("x.weight".to_string(), t(&[1.0, 2.5])), a[1].clone()];
        assert_ne!(
            fa.fingerprint,
            fingerprint(c.iter().map(|(k, v)| (k, v))).fingerprint
        );
        // Same bytes, different shape → different fingerprint.
        let d = [
            (
                "x.weight".to_string(),
                Tensor::from_f32(vec![2, 1], &[1.0, 2.0]).unwrap(),
            ),
            a[1].clone(),
        ];
        assert_ne!(
            fa.fingerprint,
            fingerprint(d.iter().map(|(k, v)| (k, v))).fingerprint
        );
        // num_batches_tracked is listed, not hashed.
        let mut e = a.to_vec();
        e.push((
            "bn.num_batches_tracked".into(),
            Tensor::new("n", zoo_converters::DType::I64, vec![], vec![0; 8]).unwrap(),
        ));
        let fe = fingerprint(e.iter().map(|(k, v)| (k, v)));
        assert_eq!(fe.fingerprint, fa.fingerprint);
        assert_eq!(fe.skipped, vec!["bn.num_batches_tracked".to_string()]);
    }
}
