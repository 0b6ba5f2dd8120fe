//! The models one server loaded, and what is missing. Loading never fails the server:
//! a missing runtime or model file is recorded and reported by `/ready`, and only the
//! requests that need that model are refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::clip::Clip;
use crate::engine::{EngineError, EngineLoader};
use crate::onnx::OnnxLoader;
use crate::pool::{Observer, PoolOptions};
use crate::segment::{Segmenter, SEGMENTATION_MODELS};

#[derive(Debug, Clone)]
pub struct ModelsConfig {
    pub dir: PathBuf,
    /// ONNX Runtime shared library; `None` = `dir/libonnxruntime.so`.
    pub runtime_library: Option<PathBuf>,
    /// Segmentation models to load; the first is the default.
    pub segmentation: Vec<String>,
    /// CLIP export to load (a subdirectory of `dir` with a manifest.toml); `None` = the
    /// only one present, if exactly one is.
    pub clip: Option<String>,
    /// Engine instances per model and threads per inference.
    pub instances: usize,
    pub intra_threads: usize,
    /// Threads of the extra instance that runs an inference when it would run alone
    /// (see `crate::pool`); not more than `intra_threads` = no such instance.
    pub solo_threads: usize,
    pub queue_limit: usize,
    pub max_batch: usize,
}

impl ModelsConfig {
    pub fn runtime_library(&self) -> PathBuf {
        self.runtime_library
            .clone()
            .unwrap_or_else(|| self.dir.join("libonnxruntime.so"))
    }
}

/// One line of `/ready`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelStatus {
    pub name: String,
    pub kind: &'static str,
    pub ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_depth: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_batch: Option<usize>,
}

pub struct Models {
    segmenters: BTreeMap<String, Arc<Segmenter>>,
    default_segmentation: String,
    clip: Option<Arc<Clip>>,
    /// Why a CLIP model that is configured or installed is not loaded. Requests that
    /// would use it are refused rather than answered from another embedding space.
    clip_problem: Option<String>,
    problems: Vec<ModelStatus>,
    instances: usize,
}

impl Models {
    /// Loads everything `config` names, recording (not failing on) what is missing.
    pub fn load(config: &ModelsConfig, observe: Observer) -> Models {
        let loader: Arc<dyn EngineLoader> = Arc::new(OnnxLoader {
            library: config.runtime_library(),
        });
        Self::load_with(config, loader, observe)
    }

    pub fn load_with(
        config: &ModelsConfig,
        loader: Arc<dyn EngineLoader>,
        observe: Observer,
    ) -> Models {
        let options = PoolOptions {
            instances: config.instances.max(1),
            queue_limit: config.queue_limit.max(1),
            max_batch: config.max_batch.max(1),
            threads: config.intra_threads.max(1),
            solo_threads: config.solo_threads,
        };
        let mut segmenters = BTreeMap::new();
        let mut problems = Vec::new();
        for name in &config.segmentation {
            let path = config.dir.join(format!("{name}.onnx"));
            let started = std::time::Instant::now();
            match Segmenter::start(name, &path, loader.clone(), &options, observe.clone()) {
                Ok(s) => {
                    tracing::info!(model = %name, ms = started.elapsed().as_millis() as u64, instances = options.instances, "model loaded");
                    segmenters.insert(name.clone(), Arc::new(s));
                }
                Err(e) => {
                    tracing::warn!(model = %name, error = %e, "model not loaded");
                    problems.push(missing(name, "segmentation", &e));
                }
            }
        }
        let clip = match crate::clip::select(&config.dir, config.clip.as_deref()) {
            Ok(None) => None,
            Ok(Some(dir)) => {
                // Batch-capable: one instance batching requests beats several.
                let clip_options = PoolOptions {
                    instances: 1,
                    ..options.clone()
                };
                match Clip::load(&dir, loader.clone(), &clip_options, observe.clone()) {
                    Ok(c) => {
                        tracing::info!(model = %c.name(), text = c.has_text(), "CLIP model loaded");
                        Some(Arc::new(c))
                    }
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), error = %e, "CLIP model not loaded");
                        problems.push(missing(&dir_name(&dir), "clip", &e));
                        None
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "CLIP model not loaded");
                problems.push(missing(
                    config.clip.as_deref().unwrap_or("clip"),
                    "clip",
                    &e,
                ));
                None
            }
        };
        let clip_problem = problems
            .iter()
            .find(|p| p.kind == "clip")
            .and_then(|p| p.error.clone());
        Models {
            default_segmentation: config.segmentation.first().cloned().unwrap_or_default(),
            segmenters,
            clip,
            clip_problem,
            problems,
            instances: options.instances,
        }
    }

    /// The segmenter to use: `name` when given, else the default. `Err` says why not.
    pub fn segmenter(&self, name: Option<&str>) -> Result<&Arc<Segmenter>, SegmenterError> {
        let name = name.unwrap_or(&self.default_segmentation);
        if let Some(s) = self.segmenters.get(name) {
            return Ok(s);
        }
        if SEGMENTATION_MODELS.contains(&name) || name == self.default_segmentation {
            let reason = self
                .problems
                .iter()
                .find(|p| p.name == name)
                .and_then(|p| p.error.clone())
                .unwrap_or_else(|| "not loaded by this server's configuration".into());
            Err(SegmenterError::Unavailable(name.to_string(), reason))
        } else {
            Err(SegmenterError::Unknown(
                name.to_string(),
                self.segmenters.keys().cloned().collect(),
            ))
        }
    }

    pub fn clip(&self) -> Option<&Arc<Clip>> {
        self.clip.as_ref()
    }

    /// `Some(reason)` when a CLIP model should be there (configured, or exports are
    /// installed) but did not load.
    pub fn clip_problem(&self) -> Option<&str> {
        self.clip_problem.as_deref()
    }

    /// Every configured model with its state; `ready` is false for the missing ones.
    pub fn status(&self) -> Vec<ModelStatus> {
        let mut out: Vec<ModelStatus> = self
            .segmenters
            .values()
            .map(|s| ModelStatus {
                name: s.name().to_string(),
                kind: "segmentation",
                ready: true,
                error: None,
                instances: Some(self.instances),
                queue_depth: Some(s.pool().queue_depth()),
                max_batch: Some(s.pool().max_batch()),
            })
            .collect();
        if let Some(c) = &self.clip {
            out.push(ModelStatus {
                name: c.name().to_string(),
                kind: "clip",
                ready: true,
                error: None,
                instances: Some(1),
                queue_depth: Some(c.queue_depth()),
                max_batch: Some(c.max_batch()),
            });
        }
        out.extend(self.problems.iter().cloned());
        out
    }

    /// Queue depth per loaded model, for metrics.
    pub fn queue_depths(&self) -> Vec<(String, usize)> {
        let mut v: Vec<(String, usize)> = self
            .segmenters
            .values()
            .map(|s| (s.name().to_string(), s.pool().queue_depth()))
            .collect();
        if let Some(c) = &self.clip {
            v.push((c.name().to_string(), c.queue_depth()));
        }
        v
    }

    pub fn all_ready(&self) -> bool {
        self.problems.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SegmenterError {
    #[error("segmentation model {0} is not available: {1}")]
    Unavailable(String, String),
    #[error("unknown segmentation model {0} (this server has {1:?})")]
    Unknown(String, Vec<String>),
}

fn missing(name: &str, kind: &'static str, e: &EngineError) -> ModelStatus {
    ModelStatus {
        name: name.to_string(),
        kind,
        ready: false,
        error: Some(e.to_string()),
        instances: None,
        queue_depth: None,
        max_batch: None,
    }
}

fn dir_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}
