//! Catalog wire types (docs/API.md, "Catalog").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::results::{Attribute, Color, Foreground};

/// Every field a product upload may carry (anything else is refused; custom data goes
/// in `metadata`). The CLI import maps file columns with the same list.
pub const PRODUCT_FIELDS: [&str; 12] = [
    "title",
    "image_url",
    "image_base64",
    "external_id",
    "sku",
    "description",
    "brand",
    "category",
    "price",
    "currency",
    "product_url",
    "metadata",
];

/// The shape summary of a product's silhouette (the vector itself is only sent with
/// `include=embedding`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SilhouetteSummary {
    pub aspect_ratio: f32,
    pub coverage: f32,
    pub dimensions: usize,
    pub model: String,
}

/// A product's `features`, as extracted in the background and stored with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FeatureSummary {
    /// The embedding model of the product's vector.
    pub model: String,
    pub dimensions: usize,
    pub colors: Vec<Color>,
    pub color_signature_model: String,
    #[serde(default)]
    pub attributes: BTreeMap<String, Attribute>,
    pub attributes_model: Option<String>,
    pub silhouette: SilhouetteSummary,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreground: Option<Foreground>,
}

/// Where a product's feature extraction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingStatus {
    Processing,
    Ready,
    Failed,
    /// A status this version does not know (a newer server).
    #[serde(other)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    Other,
}

/// Why a product's feature extraction failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EmbeddingError {
    pub code: String,
    pub message: String,
}

/// A catalog product. Optional fields are sent as `null` when unset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
    /// The flat object uploaded with the product.
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub embedding_status: EmbeddingStatus,
    #[serde(default)]
    pub embedding_error: Option<EmbeddingError>,
    /// ISO-8601 UTC.
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub processed_at: Option<String>,
    /// Only on `GET /v1/catalog/products/{id}`: the extracted features (embedding model,
    /// colors, attributes, silhouette summary; the vectors too with `include=embedding`),
    /// `null` until extraction succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<serde_json::Value>,
}

/// Whether an upload made a new product or updated one (by `external_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum UpsertStatus {
    Created,
    Updated,
    /// A status this version does not know (a newer server).
    #[serde(other)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    Other,
}

impl UpsertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UpsertStatus::Created => "created",
            UpsertStatus::Updated => "updated",
            UpsertStatus::Other => "other",
        }
    }
}

impl PartialEq<&str> for UpsertStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The answer for one uploaded product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct UpsertAnswer {
    pub id: String,
    #[serde(default)]
    pub external_id: Option<String>,
    pub status: UpsertStatus,
    pub embedding_status: EmbeddingStatus,
}

/// `GET /v1/catalog/products`: one page, newest cursor last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ProductPage {
    pub data: Vec<Product>,
    pub has_more: bool,
    #[serde(default)]
    pub next_cursor: Option<String>,
    pub total: u64,
}

/// `DELETE /v1/catalog/products/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Deleted {
    pub id: String,
    pub deleted: bool,
}

/// The similarities a search score blends; only the weighted ones are present.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Scores {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visual: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silhouette: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<f32>,
}

/// One search hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SearchHit {
    pub product: Product,
    pub score: f32,
    pub scores: Scores,
}

/// `POST /v1/catalog/search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SearchAnswer {
    pub results: Vec<SearchHit>,
    pub took_ms: u64,
    /// The vector space searched.
    #[serde(default)]
    pub model: Option<String>,
    /// `exact`, `hnsw` or `hnsw_filtered`.
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub candidates: Option<u64>,
    #[serde(default)]
    pub query_features_ms: Option<f64>,
    #[serde(default)]
    pub search_ms: Option<f64>,
}

/// One group of near-duplicates; `score` is its weakest link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DuplicateGroup {
    pub product_ids: Vec<String>,
    pub score: f32,
}

/// `POST /v1/catalog/duplicates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DuplicatesAnswer {
    pub groups: Vec<DuplicateGroup>,
    pub total_groups: u64,
    #[serde(default)]
    pub threshold: Option<f64>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub took_ms: Option<u64>,
}
