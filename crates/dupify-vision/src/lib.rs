//! Features computed from pixels: CIELAB conversion, the named-color palette, dominant
//! colors, a model-free foreground estimate and quality scores.
//!
//! Every function takes an already downscaled `image::RgbaImage` (the server works at a
//! longer side ≤ 512) and, where it makes sense, an optional foreground mask of the same
//! size (`GrayImage`, ≥ 128 = foreground). They are pure and deterministic: the same
//! pixels give bit-identical results, with no randomness and no hash-order dependence.
//! The formulas are documented on each item and summarised in FEATURES.md.

pub mod attributes;
pub mod clip_preprocess;
pub mod colors;
pub mod embedding;
pub mod foreground;
pub mod imagenet_input;
pub mod lab;
pub mod palette;
pub mod quality;
pub mod silhouette;

pub use attributes::{pixel_attributes, Attribute};
pub use clip_preprocess::ClipPreprocess;
pub use colors::{
    color_signature, color_signature_of, dominant_colors, ColorEntry, COLOR_SIGNATURE,
};
pub use embedding::{visual_embedding, VISUAL_DIMS, VISUAL_MODEL};
pub use foreground::{border_estimate, ForegroundEstimate, ForegroundMethod};
pub use imagenet_input::{imagenet_input, IMAGENET_SIDE};
pub use palette::{color_family, nearest_name};
pub use quality::{quality, Quality};
pub use silhouette::{silhouette, Silhouette, SILHOUETTE_DIMS};
