//! The seam between the pipeline and an inference engine: a loaded model takes a batch
//! of inputs (each tensor concatenated along the batch axis) and returns its outputs the
//! same way. ONNX Runtime is the one implementation today (`crate::onnx`); another
//! engine only has to implement [`Engine`] and [`EngineLoader`].

use std::path::Path;

/// Element data of one input tensor, all items of a batch back to back.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl TensorData {
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends another item's data of the same element type.
    pub(crate) fn extend(&mut self, other: &TensorData) -> Result<(), EngineError> {
        match (self, other) {
            (TensorData::F32(a), TensorData::F32(b)) => a.extend_from_slice(b),
            (TensorData::I64(a), TensorData::I64(b)) => a.extend_from_slice(b),
            _ => {
                return Err(EngineError::Input(
                    "mixed element types in one batch".into(),
                ))
            }
        }
        Ok(())
    }
}

/// Name and shape of a model input or output. `-1` marks a dynamic dimension.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IoSpec {
    pub name: String,
    pub dims: Vec<i64>,
}

impl IoSpec {
    /// Elements per batch item (every dimension after the first); `None` when one of them
    /// is dynamic.
    pub fn item_len(&self) -> Option<usize> {
        self.dims.iter().skip(1).try_fold(1usize, |acc, &d| {
            (d > 0).then(|| acc.saturating_mul(d as usize))
        })
    }

    /// Whether the first (batch) dimension accepts more than one item.
    pub fn dynamic_batch(&self) -> bool {
        self.dims.first().is_none_or(|&d| d < 0)
    }
}

/// What a loaded model expects and produces.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelSpec {
    pub inputs: Vec<IoSpec>,
    pub outputs: Vec<IoSpec>,
}

impl ModelSpec {
    /// Largest batch the model itself accepts: 1 when any input's batch dimension is fixed.
    pub fn batch_capable(&self) -> bool {
        self.inputs.iter().all(IoSpec::dynamic_batch)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot load the inference runtime: {0}")]
    Runtime(String),
    #[error("cannot load model {path}: {reason}")]
    Load { path: String, reason: String },
    #[error("bad model input: {0}")]
    Input(String),
    #[error("inference failed: {0}")]
    Run(String),
    #[error("the model's work queue is full")]
    Overloaded,
    #[error("the model worker stopped")]
    Stopped,
}

/// How a model failure reaches API clients (docs/API.md, "Errors"): a full queue or a
/// stopped model is 503 with `Retry-After`; a model that fails on this image is 422
/// `processing_failed`. The cause is logged here, never sent.
impl From<EngineError> for dupify_core::ApiError {
    fn from(e: EngineError) -> Self {
        use dupify_core::{ApiError, ErrorCode};
        match e {
            EngineError::Overloaded => ApiError::unavailable(
                "The server is busy running models for other images. Retry shortly.",
                1,
            ),
            EngineError::Stopped | EngineError::Runtime(_) | EngineError::Load { .. } => {
                tracing::error!(error = %e, "model unavailable");
                ApiError::unavailable("A model this request needs is not available right now.", 30)
            }
            EngineError::Input(_) | EngineError::Run(_) => {
                tracing::warn!(error = %e, "model failed on an image");
                ApiError::from_code(ErrorCode::ProcessingFailed)
                    .with_message("The model could not process this image.")
            }
        }
    }
}

/// One loaded model instance. `run` takes `&mut self`: an instance serves one batch at a
/// time, and parallelism comes from several instances (see `crate::pool`).
pub trait Engine: Send + 'static {
    fn spec(&self) -> &ModelSpec;

    /// Runs `batch` items. `inputs[i]` holds input `i` of `spec().inputs` for every item,
    /// concatenated; the result holds, per output, every item's data concatenated.
    fn run(&mut self, batch: usize, inputs: &[TensorData]) -> Result<Vec<Vec<f32>>, EngineError>;

    /// Runs once on a dummy input where the engine can make one, so the first real
    /// request does not pay for lazy initialisation. Failures are only logged.
    fn warm_up(&mut self) {}
}

/// Creates engine instances from a model file.
pub trait EngineLoader: Send + Sync + 'static {
    /// An instance whose inferences use `threads` threads (the pool decides: one per
    /// instance when instances run side by side, more for the one that runs alone).
    fn load(&self, path: &Path, threads: usize) -> Result<Box<dyn Engine>, EngineError>;
}
