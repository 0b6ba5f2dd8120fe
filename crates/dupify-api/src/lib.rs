//! Dupify's wire contract: the types that cross the network, shared by the server (which
//! serialises them), the SDK (which deserialises them) and the API documentation.
//!
//! This crate depends on nothing of the server, so a client can use it on its own.
//! Field names and shapes are those documented in `docs/API.md`.

pub mod catalog;
pub mod limits;
pub mod operation;
pub mod requests;
pub mod results;
pub mod usage;
pub mod webhook;

pub use catalog::{
    Deleted, DuplicateGroup, DuplicatesAnswer, EmbeddingError, EmbeddingStatus, FeatureSummary,
    Product, ProductPage, Scores, SearchAnswer, SearchHit, SilhouetteSummary, UpsertAnswer,
    UpsertStatus,
};
pub use operation::OperationKind;
pub use usage::{DayUsage, KeyUsage, Period, RateLimitInfo, Usage};

pub use results::{
    Answer, Attribute, AttributeSource, AttributesResult, Base64Bytes, BatchItem, Color,
    ColorsResult, CropBox, CutoutFormat, CutoutResult, EmbedResult, Foreground, ForegroundMethod,
    QualityScores, Results, SilhouetteResult,
};

/// Rounds to 4 decimals: the precision every ratio and score is documented with.
/// Embedding components are never rounded.
pub fn round4(v: f32) -> f32 {
    ((f64::from(v) * 10_000.0).round() / 10_000.0) as f32
}

#[cfg(feature = "schema")]
pub mod schema;
