//! Catalog records: products, their features, the extraction queue's jobs and the rows
//! the vector index follows. (The SQL lives in `sqlite/catalog.rs`.)

use chrono::{DateTime, Utc};
use dupify_core::KeyMode;
use serde::Serialize;

/// Where a product's features stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    Processing,
    Ready,
    Failed,
}

impl ProductStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            ProductStatus::Processing => "processing",
            ProductStatus::Ready => "ready",
            ProductStatus::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "processing" => Some(ProductStatus::Processing),
            "ready" => Some(ProductStatus::Ready),
            "failed" => Some(ProductStatus::Failed),
            _ => None,
        }
    }
}

/// The image of an uploaded product.
#[derive(Debug, Clone)]
pub enum ProductImage {
    Url(String),
    /// Decoded base64 upload; kept in the job until processed.
    Bytes(Vec<u8>),
}

/// A validated product as uploaded.
#[derive(Debug, Clone)]
pub struct ProductInput {
    pub external_id: Option<String>,
    pub title: String,
    pub sku: Option<String>,
    pub description: Option<String>,
    pub brand: Option<String>,
    pub category: Option<String>,
    pub price: Option<f64>,
    pub currency: String,
    pub product_url: Option<String>,
    pub image: ProductImage,
    /// SHA-256 (hex) of the image URL or bytes: a change re-processes the product.
    pub image_ref: String,
    /// A flat JSON object, serialised.
    pub metadata: String,
}

/// Who uploads, and the limits the upload is checked against.
#[derive(Debug, Clone)]
pub struct UpsertContext {
    pub account_id: String,
    pub mode: KeyMode,
    pub key_id: String,
    pub period: String,
    /// Monthly quota limit (`None`: unlimited). Test keys reserve nothing.
    pub monthly_limit: Option<u64>,
    pub catalog_limit: Option<u64>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UpsertResult {
    pub id: String,
    pub pk: i64,
    pub external_id: Option<String>,
    pub created: bool,
    pub embedding_status: ProductStatus,
}

/// Why one product of an upload was refused (the others are unaffected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpsertRefusal {
    CatalogLimit { limit: u64, current_size: u64 },
    Quota { used: u64, limit: u64 },
}

/// A product as stored (features included when asked for).
#[derive(Debug, Clone)]
pub struct ProductRecord {
    pub pk: i64,
    pub id: String,
    pub external_id: Option<String>,
    pub title: String,
    pub sku: Option<String>,
    pub description: Option<String>,
    pub brand: Option<String>,
    pub category: Option<String>,
    pub price: Option<f64>,
    pub currency: String,
    pub product_url: Option<String>,
    pub image_url: Option<String>,
    pub metadata: String,
    pub status: ProductStatus,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
    pub features: Option<String>,
    pub vectors: Option<ProductVectors>,
}

/// The vectors search compares, all L2-normalised.
#[derive(Debug, Clone, Default)]
pub struct ProductVectors {
    pub model: String,
    pub embedding: Vec<f32>,
    pub silhouette: Vec<f32>,
    pub color: Vec<f32>,
}

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only products after this `pk` (the cursor).
    pub after_pk: i64,
    pub limit: u32,
    pub category: Option<String>,
    pub brand: Option<String>,
    pub status: Option<ProductStatus>,
    pub external_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ProductPage {
    pub products: Vec<ProductRecord>,
    pub has_more: bool,
    pub total: u64,
}

/// A job a worker holds the lease of.
#[derive(Debug, Clone)]
pub struct LeasedJob {
    pub job_id: i64,
    pub product_pk: i64,
    pub account_id: String,
    pub mode: KeyMode,
    pub image_ref: String,
    pub image: ProductImage,
    /// Including this one.
    pub attempts: u32,
}

/// Features extracted for a product.
#[derive(Debug, Clone)]
pub struct ProductFeatures {
    /// JSON: colors, attributes, silhouette summary, models.
    pub features: String,
    pub vectors: ProductVectors,
}

#[derive(Debug, Clone)]
pub enum JobOutcome {
    Ready(ProductFeatures),
    Failed { code: String, message: String },
}

/// One product as the vector index sees it: what to filter on and what to compare.
#[derive(Debug, Clone)]
pub struct IndexRow {
    pub pk: i64,
    pub id: String,
    pub change_seq: i64,
    /// Ready and not deleted: belongs in the index.
    pub live: bool,
    pub category: Option<String>,
    pub brand: Option<String>,
    pub price: Option<f64>,
    pub currency: String,
    pub metadata: String,
    pub vectors: Option<ProductVectors>,
}
