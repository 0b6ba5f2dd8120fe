//! Features from pixels, black-box (one test binary).

mod clip_preprocess;
mod pipeline;
mod silhouette;
