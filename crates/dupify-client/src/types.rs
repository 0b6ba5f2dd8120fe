//! Request options and response bodies. Image answers are the wire contract's types
//! (`dupify-api`); the others keep any field this version does not know in `extra`.
//! Either way a newer server never breaks an older client: unknown fields are ignored
//! and unknown enum values read as `Other`.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

// ---------------------------------------------------------------- options

/// Options of `POST /v1/embed`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EmbedOptions {
    /// Add the `quality` block (sharpness, brightness, composition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_quality: Option<bool>,
    /// The embedding model (`efficientnet-lite0`, `dupify-visual-v1`, an installed
    /// CLIP model's name); absent = the server's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `u2net` or `u2netp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segmentation_model: Option<String>,
}

/// Options of `POST /v1/colors`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ColorsOptions {
    /// 1 to 12 (server default 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_colors: Option<u8>,
    /// Colors of the product only (server default `true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub foreground_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_quality: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segmentation_model: Option<String>,
}

/// Options of `POST /v1/silhouette` and `POST /v1/attributes`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SegmentationOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segmentation_model: Option<String>,
}

/// What `POST /v1/background-remove` returns: the RGBA cutout or the 8-bit mask.
pub use dupify_api::CutoutFormat as CutoutOutput;

/// Options of `POST /v1/background-remove`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BackgroundRemoveOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<CutoutOutput>,
    /// Cut the answer to the product's bounding box.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crop: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segmentation_model: Option<String>,
}

/// An operation of `POST /v1/batch`.
pub use dupify_api::OperationKind as Operation;

/// Body of `POST /v1/batch` (without the images, which are passed separately).
#[derive(Clone, Debug, Default, Serialize)]
pub struct BatchOptions {
    pub operations: Vec<Operation>,
    /// Per operation, the options its endpoint takes, e.g. `{"colors": {"max_colors": 3}}`.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub options: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segmentation_model: Option<String>,
}

// ---------------------------------------------------------------- image results
//
// The answers are the wire contract's own types (`dupify-api`, shared with the server),
// wrapped in `Answer` (`cached`, `processing_time_ms`); they deref to the result.

pub use dupify_api::{
    Answer, Attribute, AttributeSource, AttributesResult, BatchItem as BatchResult, Color,
    ColorsResult, CropBox, CutoutResult, EmbedResult, Foreground, ForegroundMethod,
    QualityScores as Quality, SilhouetteResult,
};

/// `POST /v1/embed` (one image or one text).
pub type Embedding = Answer<EmbedResult>;
/// `POST /v1/colors`.
pub type Colors = Answer<ColorsResult>;
/// `POST /v1/silhouette`.
pub type Silhouette = Answer<SilhouetteResult>;
/// `POST /v1/attributes`.
pub type Attributes = Answer<AttributesResult>;
/// `POST /v1/background-remove`.
pub type BackgroundRemoval = Answer<CutoutResult>;

/// A failed item of a batch: the error envelope without `request_id`.
#[derive(Clone, Debug, Deserialize)]
pub struct ItemError {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub details: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One slot of a batch answer: the item's result, or why it failed.
pub type BatchItem<T> = Result<T, ItemError>;

/// `{"results": [...], "processing_time_ms"}` with one slot per input, in order.
#[derive(Clone, Debug)]
pub struct BatchResponse<T> {
    pub results: Vec<BatchItem<T>>,
    pub processing_time_ms: Option<u64>,
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for BatchResponse<T> {
    // The slots are data, not a propagated error: their size does not matter here.
    #[allow(clippy::result_large_err)]
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            results: Vec<Value>,
            #[serde(default)]
            processing_time_ms: Option<u64>,
        }
        #[derive(Deserialize)]
        struct Failed {
            error: ItemError,
        }
        let raw = Raw::deserialize(d)?;
        let results = raw
            .results
            .into_iter()
            .map(|v| {
                if v.get("error").is_some() {
                    serde_json::from_value::<Failed>(v)
                        .map(|f| Err(f.error))
                        .map_err(serde::de::Error::custom)
                } else {
                    serde_json::from_value::<T>(v)
                        .map(Ok)
                        .map_err(serde::de::Error::custom)
                }
            })
            .collect::<Result<Vec<_>, D::Error>>()?;
        Ok(BatchResponse {
            results,
            processing_time_ms: raw.processing_time_ms,
        })
    }
}

// ---------------------------------------------------------------- catalog
//
// Answers are the wire contract's types (`dupify-api`); requests are built here.

pub use dupify_api::{
    Deleted, DuplicateGroup, EmbeddingError, EmbeddingStatus, Product, ProductPage, Scores,
    SearchHit, UpsertStatus,
};
/// The answer for one uploaded product.
pub type UpsertResult = dupify_api::UpsertAnswer;
/// Answer of `POST /v1/catalog/search`.
pub type SearchResponse = dupify_api::SearchAnswer;
/// Answer of `POST /v1/catalog/duplicates`.
pub type DuplicatesResponse = dupify_api::DuplicatesAnswer;

/// A product to upload. `title` and one image form are required; `external_id` makes
/// the upload an upsert (and makes it safe for the client to resend after a timeout).
#[derive(Clone, Debug, Default, Serialize)]
pub struct NewProduct {
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    /// ISO-4217 letters (server default USD).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_url: Option<String>,
    /// Flat: string, number, boolean or null values.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

impl NewProduct {
    /// A product with a title and an image.
    pub fn new(title: impl Into<String>, image: &crate::ImageSource) -> Self {
        let mut p = NewProduct {
            title: title.into(),
            ..NewProduct::default()
        };
        match image {
            crate::ImageSource::Url(u) => p.image_url = Some(u.clone()),
            crate::ImageSource::Bytes(b) => {
                use base64::Engine as _;
                p.image_base64 = Some(base64::engine::general_purpose::STANDARD.encode(b))
            }
        }
        p
    }
}

/// The answer for a batch upload.
#[derive(Clone, Debug, Deserialize)]
pub struct UploadResponse {
    #[serde(flatten)]
    pub results: BatchResponse<UpsertResult>,
    pub created: u64,
    pub updated: u64,
    pub failed: u64,
}

/// Query of `GET /v1/catalog/products`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ListProducts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding_status: Option<EmbeddingStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// Search and duplicate filters; all given ones must match.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Filters {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

/// How much each similarity counts in a search score.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Weights {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visual: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silhouette: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<f64>,
}

/// What to search with.
#[derive(Clone, Debug)]
pub enum SearchQuery {
    Image(crate::ImageSource),
    /// A product of the catalog (never in its own results).
    ProductId(String),
    /// Needs a CLIP model with a text tower on the server.
    Text(String),
}

/// Body of `POST /v1/catalog/search`.
#[derive(Clone, Debug)]
pub struct SearchRequest {
    pub query: SearchQuery,
    pub top_k: Option<u32>,
    pub min_score: Option<f64>,
    pub filters: Option<Filters>,
    /// Dupes mode: only products priced strictly below this.
    pub cheaper_than: Option<f64>,
    pub weights: Option<Weights>,
    pub exclude_ids: Vec<String>,
    pub model: Option<String>,
}

impl SearchRequest {
    pub fn new(query: SearchQuery) -> Self {
        SearchRequest {
            query,
            top_k: None,
            min_score: None,
            filters: None,
            cheaper_than: None,
            weights: None,
            exclude_ids: Vec::new(),
            model: None,
        }
    }

    pub(crate) fn to_json(&self) -> Result<Value, serde_json::Error> {
        let mut m = Map::new();
        match &self.query {
            SearchQuery::Image(img) => img.write_to(&mut m),
            SearchQuery::ProductId(id) => {
                m.insert("product_id".into(), Value::from(id.as_str()));
            }
            SearchQuery::Text(t) => {
                m.insert("text".into(), Value::from(t.as_str()));
            }
        }
        m.extend(self.options_json()?);
        Ok(Value::Object(m))
    }

    /// Every field but the query.
    pub(crate) fn options_json(&self) -> Result<Map<String, Value>, serde_json::Error> {
        let mut m = Map::new();
        if let Some(k) = self.top_k {
            m.insert("top_k".into(), k.into());
        }
        if let Some(s) = self.min_score {
            m.insert("min_score".into(), s.into());
        }
        if let Some(f) = &self.filters {
            m.insert("filters".into(), serde_json::to_value(f)?);
        }
        if let Some(p) = self.cheaper_than {
            m.insert("cheaper_than".into(), p.into());
        }
        if let Some(w) = &self.weights {
            m.insert("weights".into(), serde_json::to_value(w)?);
        }
        if !self.exclude_ids.is_empty() {
            m.insert(
                "exclude_ids".into(),
                serde_json::to_value(&self.exclude_ids)?,
            );
        }
        if let Some(model) = &self.model {
            m.insert("model".into(), Value::from(model.as_str()));
        }
        Ok(m)
    }
}

/// `POST /v1/background-remove` answered with the PNG itself (`response=binary`): the
/// file and what the answer's headers say about it.
#[derive(Clone, Debug, PartialEq)]
pub struct CutoutPng {
    /// The PNG file (RGBA cutout, or 8-bit mask).
    pub png: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub original_width: u32,
    pub original_height: u32,
    pub foreground_ratio: f32,
    pub output: CutoutOutput,
    pub model: String,
    pub cached: bool,
    pub processing_time_ms: u64,
    /// Only when cropping was asked for: the box, or `None` when nothing was found.
    pub crop_box: Option<Option<CropBox>>,
}

/// Body of `POST /v1/catalog/duplicates`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DuplicatesRequest {
    /// Default 0.95.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<Filters>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

// ---------------------------------------------------------------- account

pub use dupify_api::usage::{DayUsage, KeyUsage, Period, RateLimitInfo, Usage};
