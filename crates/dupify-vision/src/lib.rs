//! Features computed from pixels: CIELAB conversion, the named-color palette, dominant
//! colors, a model-free foreground estimate and quality scores. Pure functions of an
//! RGBA image (and an optional foreground mask); deterministic. Formulas: FEATURES.md.

pub mod colors;
pub mod foreground;
pub mod lab;
pub mod palette;
pub mod quality;

pub use colors::{dominant_colors, ColorEntry};
pub use foreground::{border_estimate, ForegroundEstimate, ForegroundMethod};
pub use quality::{quality, Quality};
