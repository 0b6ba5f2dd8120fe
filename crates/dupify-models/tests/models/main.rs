//! The model runtime with real ONNX Runtime: segmentation and the CLIP loader (one
//! test binary).

mod clip;
mod common;
mod imagenet;
mod segment;
