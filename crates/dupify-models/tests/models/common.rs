//! Where the tests find the ONNX Runtime library and the model files: the project's
//! models directory, filled by `make models` (scripts/setup-models.py). A missing file
//! fails the test with that instruction: these tests never skip.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use dupify_models::onnx::OnnxLoader;
use dupify_models::EngineLoader;

pub fn models_dir() -> PathBuf {
    std::env::var_os("DUPIFY_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

pub fn installed(file: &str) -> PathBuf {
    let p = models_dir().join(file);
    assert!(
        p.is_file(),
        "{} is missing: run `make models` (scripts/setup-models.py) first",
        p.display()
    );
    p
}

pub fn loader() -> Arc<dyn EngineLoader> {
    Arc::new(OnnxLoader {
        library: installed("libonnxruntime.so"),
    })
}

pub fn tiny_clip_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip")
}

/// One instance on 2 threads, batches of up to 4: what the model tests run with.
pub fn test_pool_options() -> dupify_models::PoolOptions {
    dupify_models::PoolOptions {
        instances: 1,
        queue_limit: 8,
        max_batch: 4,
        threads: 2,
        solo_threads: 0,
    }
}

pub fn no_observer() -> dupify_models::Observer {
    Arc::new(|_: &str, _: usize, _: std::time::Duration| {})
}
