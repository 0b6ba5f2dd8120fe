//! Which models a request uses.

use std::sync::Arc;

use dupify_core::ApiError;
use dupify_models::clip::Clip;
use dupify_models::{Embedder, EmbedderError, Models, Segmenter, SegmenterError};

/// The models a request uses, resolved from the server's models and the request's
/// options.
#[derive(Clone, Default)]
pub struct ModelChoice {
    pub segmenter: Option<Arc<Segmenter>>,
    pub clip: Option<Arc<Clip>>,
    /// The embedding model a request names and the parameter naming it (`None`: the
    /// server's default).
    pub embedding: Option<(String, String)>,
}

impl ModelChoice {
    /// The segmenter named by the request (or the default). An unknown name is a 400
    /// naming `parameter`; a known but unavailable one a 503. When the default is
    /// missing, features fall back to the model-free estimate and say so.
    pub fn resolve(
        models: &Models,
        requested: Option<&str>,
        parameter: &str,
    ) -> Result<ModelChoice, ApiError> {
        let segmenter = match models.segmenter(requested) {
            Ok(s) => Some(s.clone()),
            Err(SegmenterError::Unknown(name, have)) => {
                return Err(ApiError::invalid(
                    parameter,
                    format!(
                        "unknown segmentation model {name:?}; this server offers {}",
                        have.join(", ")
                    ),
                ))
            }
            Err(SegmenterError::Unavailable(name, reason)) => {
                if requested.is_some() {
                    return Err(ApiError::unavailable(
                        format!(
                            "segmentation model {name} is not available on this server: {reason}"
                        ),
                        30,
                    ));
                }
                None
            }
        };
        Ok(ModelChoice {
            segmenter,
            clip: models.clip().cloned(),
            embedding: None,
        })
    }

    /// The same choice with the embedding model a request names (`parameter` names it
    /// in errors).
    pub fn with_embedding(mut self, name: Option<String>, parameter: &str) -> ModelChoice {
        self.embedding = name.map(|n| (n, parameter.to_owned()));
        self
    }

    /// The embedding model to use. An unknown name asked for is a 400 naming its
    /// parameter; a model that is not loaded, or a misconfigured default, a 503.
    pub fn embedder(&self, models: &Models) -> Result<Embedder, ApiError> {
        let requested = self.embedding.as_ref();
        models
            .embedder(requested.map(|(n, _)| n.as_str()))
            .map_err(|e| match (e, requested) {
                (EmbedderError::Unknown(name, have), Some((_, parameter))) => ApiError::invalid(
                    parameter,
                    format!(
                        "unknown embedding model {name:?}; this server offers {}",
                        have.join(", ")
                    ),
                ),
                (EmbedderError::Unknown(name, _), None) => ApiError::unavailable(
                    format!(
                        "the configured embedding model {name} is not installed on this server"
                    ),
                    30,
                ),
                (EmbedderError::Unavailable(name, reason), _) => ApiError::unavailable(
                    format!("embedding model {name} is not loaded: {reason}"),
                    30,
                ),
            })
    }

    /// The segmentation model as it enters cache keys: name and file fingerprint.
    pub fn segmenter_key(&self) -> String {
        self.segmenter
            .as_ref()
            .map_or_else(|| "none".into(), |s| s.key())
    }

    /// The CLIP model as it enters cache keys, when one is loaded.
    pub fn clip_key(&self) -> Option<String> {
        self.clip.as_ref().map(|c| c.key())
    }
}

/// Refuses work that needs the CLIP model when one should be loaded but is not:
/// answering from `dupify-visual-v1` instead would mix two vector spaces.
pub fn require_clip_if_expected(models: &Models) -> Result<(), ApiError> {
    match (models.clip(), models.clip_problem()) {
        (None, Some(reason)) => Err(ApiError::unavailable(
            format!("the CLIP model is not loaded: {reason}"),
            30,
        )),
        _ => Ok(()),
    }
}
