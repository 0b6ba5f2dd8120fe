//! ONNX Runtime behind the [`Engine`] trait. The runtime is a shared library loaded at
//! start from the models directory (never downloaded at build time), once per process:
//! ONNX Runtime allows only one environment per process, so every server in the process
//! (tests start several) shares it.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::TensorRef;

use crate::engine::{Engine, EngineError, EngineLoader, IoSpec, ModelSpec, TensorData};

static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// Loads the ONNX Runtime library (first call wins; later calls return the same
/// environment whatever path they pass).
pub fn runtime(library: &Path) -> Result<&'static Environment, EngineError> {
    let init = ENVIRONMENT.get_or_init(|| {
        if !library.is_file() {
            return Err(format!(
                "{} not found (run `make models` or scripts/setup-models.py)",
                library.display()
            ));
        }
        let builder = ort::init_from(library).map_err(|e| format!("{}: {e}", library.display()))?;
        let builder = builder.with_name("dupify").with_telemetry(false);
        let env = builder.build().map_err(|e| e.to_string())?;
        Ok(env)
    });
    match init {
        Ok(env) => Ok(env),
        Err(e) => Err(EngineError::Runtime(e.clone())),
    }
}

/// Loads models with ONNX Runtime from `library`.
#[derive(Debug, Clone)]
pub struct OnnxLoader {
    pub library: PathBuf,
}

fn spec_of(outlets: &[ort::value::Outlet]) -> Vec<IoSpec> {
    outlets
        .iter()
        .map(|o| IoSpec {
            name: o.name().to_string(),
            dims: o
                .dtype()
                .tensor_shape()
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default(),
        })
        .collect()
}

impl EngineLoader for OnnxLoader {
    fn load(&self, path: &Path, threads: usize) -> Result<Box<dyn Engine>, EngineError> {
        let env = runtime(&self.library)?;
        let fail = |reason: String| EngineError::Load {
            path: path.display().to_string(),
            reason,
        };
        if !path.is_file() {
            return Err(fail("file not found".into()));
        }
        let builder_err =
            |e: ort::Error<ort::session::builder::SessionBuilder>| fail(e.to_string());
        let session = Session::builder(env)
            .map_err(|e| fail(e.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(builder_err)?
            .with_intra_threads(threads.max(1))
            .map_err(builder_err)?
            .with_inter_threads(1)
            .map_err(builder_err)?
            .with_parallel_execution(false)
            .map_err(builder_err)?
            // Spinning threads burn the other requests' CPU while idle between runs.
            .with_intra_op_spinning(false)
            .map_err(builder_err)?
            .with_inter_op_spinning(false)
            .map_err(builder_err)?
            // Memory-pattern planning kept ~200 MB more per u2netp instance after real
            // traffic (server RSS 1.6 GB vs 1.0 GB after 60 cut-outs) for no measurable
            // speed (7.6 vs 7.75 images/s). The CPU arena stays: without it inference
            // was 15-30 % slower.
            .with_memory_pattern(false)
            .map_err(builder_err)?
            .commit_from_file(path)
            .map_err(|e| fail(e.to_string()))?;
        let spec = ModelSpec {
            inputs: spec_of(session.inputs()),
            outputs: spec_of(session.outputs()),
        };
        let input_is_i64 = session
            .inputs()
            .iter()
            .map(|o| o.dtype().tensor_type() == Some(ort::value::TensorElementType::Int64))
            .collect();
        Ok(Box::new(OnnxEngine {
            session,
            spec,
            input_is_i64,
        }))
    }
}

pub struct OnnxEngine {
    session: Session,
    spec: ModelSpec,
    /// Element type per input: i64 (token ids, masks) or f32 (everything else here).
    input_is_i64: Vec<bool>,
}

impl Engine for OnnxEngine {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn warm_up(&mut self) {
        // Zeros of one item; a dynamic non-batch dimension (a sequence) gets length 1.
        let inputs: Vec<TensorData> = self
            .spec
            .inputs
            .iter()
            .zip(&self.input_is_i64)
            .map(|(i, &is_i64)| {
                let n = i.dims.iter().skip(1).map(|&d| d.max(1) as usize).product();
                if is_i64 {
                    TensorData::I64(vec![0; n])
                } else {
                    TensorData::F32(vec![0.0; n])
                }
            })
            .collect();
        if let Err(e) = self.run(1, &inputs) {
            tracing::warn!(error = %e, "warm-up run failed");
        }
    }

    fn run(&mut self, batch: usize, inputs: &[TensorData]) -> Result<Vec<Vec<f32>>, EngineError> {
        if inputs.len() != self.spec.inputs.len() {
            return Err(EngineError::Input(format!(
                "model takes {} inputs, got {}",
                self.spec.inputs.len(),
                inputs.len()
            )));
        }
        let mut values: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            Vec::with_capacity(inputs.len());
        for (spec, data) in self.spec.inputs.iter().zip(inputs) {
            let per_item = data.len() / batch.max(1);
            let mut shape: Vec<i64> = Vec::with_capacity(spec.dims.len());
            shape.push(batch as i64);
            let mut known = 1usize;
            let mut dynamic = None;
            for (i, &d) in spec.dims.iter().enumerate().skip(1) {
                if d > 0 {
                    known *= d as usize;
                    shape.push(d);
                } else {
                    dynamic.get_or_insert(i);
                    shape.push(-1);
                }
            }
            // At most one non-batch dimension may be dynamic (a sequence length); it is
            // inferred from the data.
            if let Some(i) = dynamic {
                if known == 0
                    || !per_item.is_multiple_of(known)
                    || shape.iter().filter(|&&d| d < 0).count() > 1
                {
                    return Err(EngineError::Input(format!(
                        "cannot infer the shape of {}",
                        spec.name
                    )));
                }
                shape[i] = (per_item / known) as i64;
            } else if per_item != known || per_item * batch != data.len() {
                return Err(EngineError::Input(format!(
                    "{} expects {known} values per item, got {per_item}",
                    spec.name
                )));
            }
            let value: SessionInputValue<'_> = match data {
                TensorData::F32(v) => TensorRef::from_array_view((shape, v.as_slice()))
                    .map_err(|e| EngineError::Input(e.to_string()))?
                    .into(),
                TensorData::I64(v) => TensorRef::from_array_view((shape, v.as_slice()))
                    .map_err(|e| EngineError::Input(e.to_string()))?
                    .into(),
            };
            values.push((Cow::Owned(spec.name.clone()), value));
        }
        let outputs = self
            .session
            .run(values)
            .map_err(|e| EngineError::Run(e.to_string()))?;
        let mut result = Vec::with_capacity(outputs.len());
        for (_, value) in outputs.iter() {
            let (_, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| EngineError::Run(e.to_string()))?;
            result.push(data.to_vec());
        }
        Ok(result)
    }
}
