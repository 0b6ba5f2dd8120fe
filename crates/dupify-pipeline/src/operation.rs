//! The six image operations: typed options in, typed results out.

use std::sync::Arc;

use dupify_api::{
    round4, Attribute, AttributeSource, AttributesResult, Color, ColorsResult, CutoutFormat,
    CutoutResult, EmbedResult, Foreground, ForegroundMethod, QualityScores, SilhouetteResult,
};
use dupify_core::{ApiError, ErrorCode, Scope};
use serde::Serialize;

use crate::category::CategoryTaxonomy;
use crate::choice::ModelChoice;
use crate::context::Context;
use crate::prepare::{Needs, Prepared};
use crate::semantic::SemanticIndex;
use dupify_models::Embedder;

pub use dupify_api::OperationKind;

/// The scope a key needs for an operation. Quality is part of embed's answer
/// (`include_quality`), so it shares its scope.
pub trait RequiredScope {
    fn scope(self) -> Scope;
}

impl RequiredScope for OperationKind {
    fn scope(self) -> Scope {
        match self {
            OperationKind::Embed | OperationKind::Quality => Scope::Embed,
            OperationKind::Colors => Scope::Colors,
            OperationKind::Silhouette => Scope::Silhouette,
            OperationKind::Attributes => Scope::Attributes,
            OperationKind::BackgroundRemove => Scope::BackgroundRemove,
        }
    }
}

/// `max_colors`: 1 to 12, default 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxColors(u8);

impl MaxColors {
    pub const MIN: u8 = 1;
    pub const MAX: u8 = 12;

    pub fn new(n: i64) -> Option<MaxColors> {
        (i64::from(Self::MIN)..=i64::from(Self::MAX))
            .contains(&n)
            .then_some(MaxColors(n as u8))
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for MaxColors {
    fn default() -> Self {
        MaxColors(5)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColorsOptions {
    pub max_colors: MaxColors,
    /// Count only the product's pixels (default true).
    pub foreground_only: bool,
    /// (beyond) Adds the quality block, as `/v1/embed` does.
    pub include_quality: bool,
}

impl Default for ColorsOptions {
    fn default() -> Self {
        ColorsOptions {
            max_colors: MaxColors::default(),
            foreground_only: true,
            include_quality: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CutoutOptions {
    pub output: CutoutFormat,
    /// Crop to the foreground's bounding box.
    pub crop: bool,
}

/// One operation with its options, as a request asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Embed { include_quality: bool },
    Colors(ColorsOptions),
    Silhouette,
    Attributes,
    Quality,
    BackgroundRemove(CutoutOptions),
}

impl Operation {
    pub fn kind(&self) -> OperationKind {
        match self {
            Operation::Embed { .. } => OperationKind::Embed,
            Operation::Colors(_) => OperationKind::Colors,
            Operation::Silhouette => OperationKind::Silhouette,
            Operation::Attributes => OperationKind::Attributes,
            Operation::Quality => OperationKind::Quality,
            Operation::BackgroundRemove(_) => OperationKind::BackgroundRemove,
        }
    }

    /// The operation with its default options.
    pub fn default_for(kind: OperationKind) -> Operation {
        match kind {
            OperationKind::Embed => Operation::Embed {
                include_quality: false,
            },
            OperationKind::Colors => Operation::Colors(ColorsOptions::default()),
            OperationKind::Silhouette => Operation::Silhouette,
            OperationKind::Attributes => Operation::Attributes,
            OperationKind::Quality => Operation::Quality,
            OperationKind::BackgroundRemove => Operation::BackgroundRemove(Default::default()),
        }
    }
}

/// What one operation answered for one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Output {
    Embed(EmbedResult),
    Colors(ColorsResult),
    Silhouette(SilhouetteResult),
    Attributes(AttributesResult),
    Quality(QualityScores),
    Cutout(CutoutResult),
}

impl Output {
    /// Reads back the JSON of an `Output` of `kind` (a cached answer).
    pub fn from_json(kind: OperationKind, json: &[u8]) -> Result<Output, serde_json::Error> {
        Ok(match kind {
            OperationKind::Embed => Output::Embed(serde_json::from_slice(json)?),
            OperationKind::Colors => Output::Colors(serde_json::from_slice(json)?),
            OperationKind::Silhouette => Output::Silhouette(serde_json::from_slice(json)?),
            OperationKind::Attributes => Output::Attributes(serde_json::from_slice(json)?),
            OperationKind::Quality => Output::Quality(serde_json::from_slice(json)?),
            OperationKind::BackgroundRemove => Output::Cutout(serde_json::from_slice(json)?),
        })
    }
}

/// An operation bound to the models a request uses: ready to run on a [`Prepared`]
/// image, with the cache key part that names everything its result depends on.
#[derive(Clone)]
pub struct Task {
    op: Operation,
    segmenter: String,
    /// The embedding model (embed only).
    embedder: Option<Embedder>,
    semantic: Option<Arc<SemanticIndex>>,
    /// The ImageNet category taxonomy (attributes only, when the model is loaded).
    categories: Option<Arc<CategoryTaxonomy>>,
    /// The classifier's cache key (name and file fingerprint), with `categories`.
    classifier: Option<String>,
}

impl Context {
    /// Binds `op` to `models`, refusing at once what this server cannot answer.
    pub async fn plan(&self, op: Operation, models: &ModelChoice) -> Result<Task, ApiError> {
        let kind = op.kind();
        let embedder = match kind {
            OperationKind::Embed => Some(models.embedder(&self.models)?),
            _ => None,
        };
        if kind == OperationKind::Attributes {
            crate::choice::require_clip_if_expected(&self.models)?;
        }
        if kind == OperationKind::BackgroundRemove && models.segmenter.is_none() {
            return Err(ApiError::unavailable(
                "no segmentation model is loaded on this server (see GET /ready)",
                30,
            ));
        }
        let (semantic, categories) = if kind == OperationKind::Attributes {
            let semantic = self.semantic_index().await.map_err(|e| {
                ApiError::unavailable(format!("semantic attributes are not ready: {e}"), 5)
            })?;
            let categories = self.category_taxonomy().map_err(|e| {
                ApiError::unavailable(format!("the category taxonomy is not usable: {e}"), 30)
            })?;
            (semantic, categories)
        } else {
            (None, None)
        };
        let classifier = categories
            .as_ref()
            .and(self.models.imagenet())
            .map(|m| m.key());
        Ok(Task {
            op,
            segmenter: models.segmenter_key(),
            embedder,
            semantic,
            categories,
            classifier,
        })
    }
}

impl Task {
    pub fn operation(&self) -> &Operation {
        &self.op
    }

    pub fn kind(&self) -> OperationKind {
        self.op.kind()
    }

    /// Canonical form of the options and models that change the result (cache keys).
    pub fn options_key(&self) -> String {
        let seg = &self.segmenter;
        match &self.op {
            Operation::Embed { include_quality } => format!(
                "q={include_quality};model={};seg={seg}",
                self.embedder
                    .as_ref()
                    .map_or_else(|| dupify_vision::VISUAL_MODEL.to_owned(), Embedder::key)
            ),
            Operation::Colors(o) => format!(
                "max={};fg={};q={};seg={seg}",
                o.max_colors.get(),
                o.foreground_only,
                o.include_quality
            ),
            Operation::Silhouette | Operation::Quality => format!("seg={seg}"),
            Operation::Attributes => {
                let mut key = format!("seg={seg}");
                if let (Some(c), Some(m)) = (&self.categories, &self.classifier) {
                    key.push_str(&format!(";classifier={m};categories={}", c.hash));
                }
                if let Some(s) = &self.semantic {
                    key.push_str(&format!(";clip={};taxonomy={}", s.model, s.taxonomy_hash));
                }
                key
            }
            Operation::BackgroundRemove(o) => {
                format!("out={};crop={};seg={seg}", o.output.as_str(), o.crop)
            }
        }
    }

    /// What must be computed before the task runs.
    pub fn needs(&self) -> Needs {
        match &self.op {
            Operation::Embed { include_quality } => {
                let (clip, imagenet) = match &self.embedder {
                    Some(Embedder::Clip(_)) => (true, false),
                    Some(Embedder::ImageNet(_)) => (false, true),
                    _ => (false, false),
                };
                Needs {
                    // The ImageNet and visual embeddings are of the foreground; quality's
                    // composition uses it too.
                    mask: !clip || *include_quality,
                    full_resolution: false,
                    clip,
                    imagenet,
                }
            }
            Operation::Colors(o) => Needs {
                mask: o.foreground_only || o.include_quality,
                ..Needs::default()
            },
            Operation::Silhouette | Operation::Quality => Needs::MASK,
            Operation::Attributes => Needs {
                mask: true,
                full_resolution: false,
                clip: self.semantic.is_some(),
                imagenet: self.categories.is_some(),
            },
            Operation::BackgroundRemove(_) => Needs {
                mask: true,
                full_resolution: true,
                clip: false,
                imagenet: false,
            },
        }
    }

    /// Runs on a prepared image (CPU-bound: call it off the async workers).
    pub fn run(&self, p: &Prepared) -> Result<Output, ApiError> {
        Ok(match &self.op {
            Operation::Embed { include_quality } => Output::Embed(self.embed(p, *include_quality)?),
            Operation::Colors(o) => Output::Colors(colors(p, o)?),
            Operation::Silhouette => Output::Silhouette(silhouette(p)),
            Operation::Attributes => Output::Attributes(self.attributes(p)),
            Operation::Quality => Output::Quality(quality(p)),
            Operation::BackgroundRemove(o) => Output::Cutout(crate::cutout::cutout(p, o)?),
        })
    }

    /// The chosen model's vector: CLIP's of the whole image, EfficientNet-Lite0's of
    /// the foreground crop, or the weight-free `dupify-visual-v1` of the foreground.
    fn embed(&self, p: &Prepared, include_quality: bool) -> Result<EmbedResult, ApiError> {
        let (embedding, model) = match (&self.embedder, &p.clip_embedding, &p.imagenet) {
            (Some(Embedder::Clip(_)), Some((v, name)), _) => (v.clone(), name.clone()),
            (Some(Embedder::ImageNet(_)), _, Some((out, name))) => {
                (out.embedding.clone(), name.clone())
            }
            // The planner asked for the model's vector; not having it is a bug.
            (Some(Embedder::Clip(_) | Embedder::ImageNet(_)), _, _) => {
                return Err(ApiError::internal())
            }
            (Some(Embedder::Visual) | None, _, _) => (
                dupify_vision::visual_embedding(&p.image, p.foreground_mask()),
                dupify_vision::VISUAL_MODEL.to_string(),
            ),
        };
        Ok(EmbedResult {
            dimensions: embedding.len(),
            embedding,
            model,
            quality: include_quality.then(|| quality(p)),
        })
    }

    fn attributes(&self, p: &Prepared) -> AttributesResult {
        let mut attributes: std::collections::BTreeMap<String, Attribute> =
            dupify_vision::pixel_attributes(&p.image, p.foreground_mask(), p.has_alpha)
                .into_iter()
                .map(|(name, a)| {
                    let attribute = Attribute {
                        value: a.value,
                        confidence: round4(a.confidence),
                        source: AttributeSource::Pixels,
                        model: None,
                    };
                    (name.to_owned(), attribute)
                })
                .collect();
        let mut model = format!("dupify-attributes-v1+{}", p.foreground_source());
        if let (Some(taxonomy), Some((out, classifier))) = (&self.categories, &p.imagenet) {
            for (name, value, confidence) in taxonomy.classify(&out.probabilities) {
                let attribute = Attribute {
                    value,
                    confidence: round4(confidence),
                    source: AttributeSource::Classifier,
                    model: Some(classifier.clone()),
                };
                attributes.insert(name, attribute);
            }
            model = format!("{model}+{classifier}");
        }
        // Zero-shot CLIP answers over the operator's own classes win where both speak.
        if let (Some(index), Some((embedding, clip))) = (&self.semantic, &p.clip_embedding) {
            for (name, value, confidence) in index.classify(embedding) {
                let attribute = Attribute {
                    value,
                    confidence: round4(confidence),
                    source: AttributeSource::Clip,
                    model: Some(clip.clone()),
                };
                attributes.insert(name, attribute);
            }
            model = format!("{model}+{clip}");
        }
        AttributesResult { attributes, model }
    }
}

/// The `foreground` block: how the product was separated, honestly named.
pub(crate) fn foreground_block(p: &Prepared) -> Foreground {
    use dupify_vision::ForegroundMethod as M;
    let f = p.foreground();
    Foreground {
        method: match f.method {
            M::Alpha => ForegroundMethod::Alpha,
            M::BorderColor => ForegroundMethod::BorderColor,
            M::Model => ForegroundMethod::Model,
            M::None => ForegroundMethod::None,
        },
        source: p.foreground_source().to_owned(),
        ratio: round4(f.foreground_ratio),
    }
}

/// The quality scores, judged on the separated foreground when there is one.
fn quality(p: &Prepared) -> QualityScores {
    let q = dupify_vision::quality(&p.image, p.foreground_mask());
    QualityScores {
        overall: q.overall,
        sharpness: q.sharpness,
        brightness: q.brightness,
        composition: q.composition,
    }
}

fn colors(p: &Prepared, o: &ColorsOptions) -> Result<ColorsResult, ApiError> {
    let mask = if o.foreground_only {
        p.foreground_mask()
    } else {
        None
    };
    let colors = dupify_vision::dominant_colors(&p.image, mask, o.max_colors.get());
    if colors.is_empty() {
        return Err(ApiError::new(
            ErrorCode::ProcessingFailed,
            "the image has no opaque pixels to take colors from",
        ));
    }
    Ok(ColorsResult {
        colors: colors
            .into_iter()
            .map(|c| Color {
                hex: c.hex,
                rgb: c.rgb,
                name: c.name.to_owned(),
                percentage: c.percentage,
            })
            .collect(),
        // Says how the background was separated, so nobody mistakes an estimate for a
        // segmentation model's answer.
        foreground: o.foreground_only.then(|| foreground_block(p)),
        quality: o.include_quality.then(|| quality(p)),
    })
}

fn silhouette(p: &Prepared) -> SilhouetteResult {
    let s = dupify_vision::silhouette(&p.foreground().mask);
    SilhouetteResult {
        dimensions: s.embedding.len(),
        embedding: s.embedding,
        aspect_ratio: round4(s.aspect_ratio),
        coverage: round4(s.coverage),
        model: format!("dupify-silhouette-v1+{}", p.foreground_source()),
        foreground: foreground_block(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_their_names_and_scopes() {
        for k in OperationKind::ALL {
            assert_eq!(OperationKind::parse(k.name()), Some(k));
            assert_eq!(Operation::default_for(k).kind(), k);
        }
        assert_eq!(OperationKind::parse("resize"), None);
        assert_eq!(OperationKind::Quality.scope(), Scope::Embed);
    }

    #[test]
    fn max_colors_is_bounded() {
        assert_eq!(MaxColors::new(0), None);
        assert_eq!(MaxColors::new(13), None);
        assert_eq!(MaxColors::new(12).map(MaxColors::get), Some(12));
        assert_eq!(MaxColors::default().get(), 5);
    }
}
