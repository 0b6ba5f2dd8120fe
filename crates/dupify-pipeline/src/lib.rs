//! The application layer: what Dupify does with an image, without HTTP.
//!
//! HTTP handlers, the dashboard's playground, the CLI's local commands and the catalog
//! workers all call this crate. A request's image work reads top to bottom here:
//!
//! 1. the caller turns its input into [`Operation`]s (typed options, validated);
//! 2. [`Context::plan`] binds each to the models in use ([`ModelChoice`]) as a [`Task`],
//!    refusing what this server cannot answer (no segmentation model, CLIP expected but
//!    not loaded, semantic attributes not ready);
//! 3. [`process_image`] decodes the image once, runs the segmentation and CLIP models
//!    side by side on their pools, the ImageNet model on the foreground crop once the
//!    mask is known, then every task on a CPU slot, giving typed
//!    [`Output`]s (the wire types of `dupify-api`);
//! 4. catalog products get all their features at once through [`extract_features`].
//!
//! The [`Context`] holds only what that needs: the loaded models, the intake limits, the
//! CPU slots and the zero-shot attribute index.

pub mod category;
mod choice;
mod context;
mod cutout;
mod features;
mod operation;
mod prepare;
mod process;
pub mod semantic;

pub use choice::{require_clip_if_expected, ModelChoice};
pub use context::{Context, ContextConfig, CpuSlots};
pub use features::{extract_features, CatalogFeatures};
pub use operation::{
    ColorsOptions, CutoutOptions, MaxColors, Operation, OperationKind, Output, RequiredScope, Task,
};
pub use prepare::{
    prepare, Needs, Prepared, CUTOUT_MIN_TRANSPARENT, DECODE_MIN_SIDE, FEATURE_VERSION,
    MIN_MODEL_FOREGROUND, WORKING_SIDE,
};
pub use process::process_image;
