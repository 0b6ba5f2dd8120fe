//! Catalog wire types (docs/API.md, "Catalog").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::results::{Attribute, Color, Foreground};

/// The shape summary of a product's silhouette (the vector itself is only sent with
/// `include=embedding`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SilhouetteSummary {
    pub aspect_ratio: f32,
    pub coverage: f32,
    pub dimensions: usize,
    pub model: String,
}

/// A product's `features`, as extracted in the background and stored with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
