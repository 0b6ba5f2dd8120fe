//! The models one server loaded, and what is missing. Loading never fails the server:
//! a missing runtime or model file is recorded and reported by `/ready`, and only the
//! requests that need that model are refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::clip::Clip;
use crate::engine::{EngineError, EngineLoader};
use crate::imagenet::{ImageNet, IMAGENET_MODEL};
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
    /// The default embedding model: a CLIP export's name, `efficientnet-lite0` or
    /// `dupify-visual-v1`; `None` = the CLIP model when one is installed, else
    /// EfficientNet-Lite0.
    pub embedding: Option<String>,
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
    imagenet: Option<Arc<ImageNet>>,
    /// The configured default embedding (`None` = automatic).
    embedding: Option<String>,
    problems: Vec<ModelStatus>,
    instances: usize,
}

/// An embedding model a request can use.
#[derive(Clone)]
pub enum Embedder {
    Clip(Arc<Clip>),
    ImageNet(Arc<ImageNet>),
    /// The weight-free `dupify-visual-v1` descriptor.
    Visual,
}

impl Embedder {
    pub fn name(&self) -> &str {
        match self {
            Embedder::Clip(c) => c.name(),
            Embedder::ImageNet(m) => m.name(),
            Embedder::Visual => dupify_vision::VISUAL_MODEL,
        }
    }

    /// The name with the loaded files' fingerprints, for cache keys.
    pub fn key(&self) -> String {
        match self {
            Embedder::Clip(c) => c.key(),
            Embedder::ImageNet(m) => m.key(),
            Embedder::Visual => dupify_vision::VISUAL_MODEL.to_owned(),
        }
    }
}

/// Why an embedding model cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EmbedderError {
    #[error("embedding model {0} is not available: {1}")]
    Unavailable(String, String),
    #[error("unknown embedding model {0} (this server has {1:?})")]
    Unknown(String, Vec<String>),
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
        // Batch-capable and small: one instance batching concurrent requests.
        let imagenet_options = PoolOptions {
            instances: 1,
            ..options.clone()
        };
        let started = std::time::Instant::now();
        // A server configured for the weight-free embedding does not need it.
        let wanted = config.embedding.as_deref() != Some(dupify_vision::VISUAL_MODEL);
        let imagenet = match wanted
            .then(|| ImageNet::load(&config.dir, loader.clone(), &imagenet_options, observe))
        {
            None => None,
            Some(Ok(m)) => {
                tracing::info!(
                    model = IMAGENET_MODEL,
                    ms = started.elapsed().as_millis() as u64,
                    "model loaded"
                );
                Some(Arc::new(m))
            }
            Some(Err(e)) => {
                tracing::warn!(model = IMAGENET_MODEL, error = %e, "model not loaded");
                problems.push(missing(IMAGENET_MODEL, "embedding", &e));
                None
            }
        };
        Models {
            default_segmentation: config.segmentation.first().cloned().unwrap_or_default(),
            segmenters,
            clip,
            clip_problem,
            imagenet,
            embedding: config.embedding.clone(),
            problems,
            instances: options.instances,
        }
    }

    pub fn imagenet(&self) -> Option<&Arc<ImageNet>> {
        self.imagenet.as_ref()
    }

    /// The embedding model named `name`, or the default one. A configured or installed
    /// model that did not load is refused rather than replaced by another: vectors of
    /// two models live in different spaces.
    pub fn embedder(&self, name: Option<&str>) -> Result<Embedder, EmbedderError> {
        let name = match name.or(self.embedding.as_deref()) {
            Some(n) => n,
            None => match (&self.clip, &self.clip_problem) {
                (Some(c), _) => return Ok(Embedder::Clip(c.clone())),
                (None, Some(reason)) => {
                    return Err(EmbedderError::Unavailable("clip".into(), reason.clone()))
                }
                (None, None) => IMAGENET_MODEL,
            },
        };
        if name == dupify_vision::VISUAL_MODEL {
            return Ok(Embedder::Visual);
        }
        if name == IMAGENET_MODEL {
            return match &self.imagenet {
                Some(m) => Ok(Embedder::ImageNet(m.clone())),
                None => Err(EmbedderError::Unavailable(
                    name.into(),
                    self.problem_of(name).unwrap_or_else(|| "not loaded".into()),
                )),
            };
        }
        if let Some(c) = self.clip.as_ref().filter(|c| c.name() == name) {
            return Ok(Embedder::Clip(c.clone()));
        }
        // A CLIP export of that name that did not load.
        match self
            .problems
            .iter()
            .find(|p| p.kind == "clip" && p.name == name)
        {
            Some(p) => Err(EmbedderError::Unavailable(
                name.into(),
                p.error.clone().unwrap_or_default(),
            )),
            None => Err(EmbedderError::Unknown(name.into(), self.embedding_names())),
        }
    }

    /// The default embedding model's name, loaded or not.
    pub fn default_embedding_name(&self) -> String {
        match (&self.embedding, &self.clip) {
            (Some(n), _) => n.clone(),
            (None, Some(c)) => c.name().to_owned(),
            (None, None) if self.clip_problem.is_some() => "clip".into(),
            (None, None) => IMAGENET_MODEL.into(),
        }
    }

    /// The embedding models this server can answer with, the configured default first.
    pub fn embedding_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.embedding.iter().cloned().collect();
        let loaded = [
            self.clip.as_ref().map(|c| c.name().to_owned()),
            self.imagenet.as_ref().map(|m| m.name().to_owned()),
            Some(dupify_vision::VISUAL_MODEL.to_owned()),
        ];
        names.retain(|n| loaded.iter().flatten().any(|l| l == n));
        for n in loaded.into_iter().flatten() {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        names
    }

    fn problem_of(&self, name: &str) -> Option<String> {
        self.problems
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.error.clone())
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
        if let Some(m) = &self.imagenet {
            out.push(ModelStatus {
                name: m.name().to_string(),
                kind: "embedding",
                ready: true,
                error: None,
                instances: Some(1),
                queue_depth: Some(m.queue_depth()),
                max_batch: Some(m.max_batch()),
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
        if let Some(m) = &self.imagenet {
            v.push((m.name().to_string(), m.queue_depth()));
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
