//! Request options and response bodies. Image answers are the wire contract's types
//! (`dupify-api`); the others keep any field this version does not know in `extra`.
//! Either way a newer server never breaks an older client: unknown fields are ignored
//! and unknown enum values read as `Other`.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

// ---------------------------------------------------------------- options

/// Options of `POST /v1/embed`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EmbedOptions {
    /// Add the `quality` block (sharpness, brightness, composition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_quality: Option<bool>,
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Embed,
    Colors,
    Silhouette,
    Attributes,
    Quality,
    BackgroundRemove,
}

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

/// `embedding_status` of a product.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingStatus {
    Processing,
    Ready,
    Failed,
}

/// The answer for one uploaded product.
#[derive(Clone, Debug, Deserialize)]
pub struct UpsertResult {
    pub id: String,
    #[serde(default)]
    pub external_id: Option<String>,
    /// `created` or `updated`.
    pub status: String,
    pub embedding_status: EmbeddingStatus,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
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

/// Why a product's feature extraction failed.
#[derive(Clone, Debug, Deserialize)]
pub struct EmbeddingError {
    pub code: String,
    pub message: String,
}

/// A catalog product.
#[derive(Clone, Debug, Deserialize)]
pub struct Product {
    pub id: String,
    #[serde(default)]
    pub external_id: Option<String>,
    pub title: String,
    #[serde(default)]
    pub sku: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub brand: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub price: Option<f64>,
    pub currency: String,
    #[serde(default)]
    pub image_url: Option<String>,
    #[serde(default)]
    pub product_url: Option<String>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    pub embedding_status: EmbeddingStatus,
    #[serde(default)]
    pub embedding_error: Option<EmbeddingError>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub processed_at: Option<String>,
    /// Present on `GET /v1/catalog/products/{id}` once ready.
    #[serde(default)]
    pub features: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
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

/// One page of products.
#[derive(Clone, Debug, Deserialize)]
pub struct ProductPage {
    pub data: Vec<Product>,
    pub has_more: bool,
    #[serde(default)]
    pub next_cursor: Option<String>,
    pub total: u64,
}

/// Answer of `DELETE /v1/catalog/products/{id}`.
#[derive(Clone, Debug, Deserialize)]
pub struct Deleted {
    pub id: String,
    pub deleted: bool,
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
        Ok(Value::Object(m))
    }
}

/// Per-component similarities of a search hit.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Scores {
    #[serde(default)]
    pub visual: Option<f64>,
    #[serde(default)]
    pub silhouette: Option<f64>,
    #[serde(default)]
    pub color: Option<f64>,
}

/// One search hit.
#[derive(Clone, Debug, Deserialize)]
pub struct SearchHit {
    pub product: Product,
    pub score: f64,
    pub scores: Scores,
}

/// Answer of `POST /v1/catalog/search`.
#[derive(Clone, Debug, Deserialize)]
pub struct SearchResponse {
    pub results: Vec<SearchHit>,
    pub took_ms: u64,
    #[serde(default)]
    pub model: Option<String>,
    /// `exact`, `hnsw` or `hnsw_filtered`.
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub candidates: Option<u64>,
    #[serde(default)]
    pub search_ms: Option<f64>,
    #[serde(default)]
    pub query_features_ms: Option<f64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
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

/// One group of near-duplicates; `score` is its weakest link.
#[derive(Clone, Debug, Deserialize)]
pub struct DuplicateGroup {
    pub product_ids: Vec<String>,
    pub score: f64,
}

/// Answer of `POST /v1/catalog/duplicates`.
#[derive(Clone, Debug, Deserialize)]
pub struct DuplicatesResponse {
    pub groups: Vec<DuplicateGroup>,
    pub total_groups: u64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

// ---------------------------------------------------------------- account

/// The billing period.
#[derive(Clone, Debug, Deserialize)]
pub struct Period {
    pub start: String,
    pub end: String,
}

/// Calls of one key this period.
#[derive(Clone, Debug, Deserialize)]
pub struct KeyUsage {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub mode: String,
    pub state: String,
    pub calls: u64,
}

/// Calls of one day.
#[derive(Clone, Debug, Deserialize)]
pub struct DayUsage {
    pub date: String,
    pub calls: u64,
    pub test_calls: u64,
    #[serde(default)]
    pub by_key: BTreeMap<String, u64>,
}

/// Per-minute limit.
#[derive(Clone, Debug, Deserialize)]
pub struct RateLimitInfo {
    pub per_minute: u64,
}

/// Answer of `GET /v1/usage`.
#[derive(Clone, Debug, Deserialize)]
pub struct Usage {
    pub account_id: String,
    pub tier: String,
    pub period: Period,
    /// `None` for the unlimited tier.
    pub monthly_limit: Option<u64>,
    pub used: u64,
    pub remaining: Option<u64>,
    pub rate_limit: RateLimitInfo,
    pub keys: Vec<KeyUsage>,
    pub days: Vec<DayUsage>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
