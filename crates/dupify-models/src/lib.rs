//! Model runtime for the vision pipeline: an inference-engine seam ([`engine`]), the
//! ONNX Runtime implementation ([`onnx`]), a bounded, batching worker pool per model
//! ([`pool`]), U²-Net segmentation ([`segment`]), the ImageNet embedding model ([`imagenet`]), CLIP exports ([`clip`]) and the
//! installed-assets listing ([`assets`]). [`Models`] holds what a server loaded.

pub mod assets;
pub mod clip;
pub mod engine;
pub mod imagenet;
pub mod onnx;
pub mod pool;
pub mod pull;
mod registry;
pub mod segment;

pub use engine::{Engine, EngineError, EngineLoader, IoSpec, ModelSpec, TensorData};
pub use imagenet::{ImageNet, ImageNetOutput, IMAGENET_MODEL};
pub use pool::{ModelPool, Observer, PoolOptions};
pub use registry::{Embedder, EmbedderError, ModelStatus, Models, ModelsConfig, SegmenterError};
pub use segment::{Segmenter, SEGMENTATION_MODELS, SEG_SIDE};
