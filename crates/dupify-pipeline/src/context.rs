//! What the pipeline needs to run: models, intake limits, CPU slots, the attribute index.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dupify_core::ApiError;
use dupify_images::IntakeLimits;
use dupify_models::Models;
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

use crate::semantic::{taxonomy_text, SemanticIndex};

/// The settings a [`Context`] is built from (a subset of the server's configuration).
#[derive(Debug, Clone)]
pub struct ContextConfig {
    pub intake: IntakeLimits,
    /// CPU-heavy jobs (decode, features) that run at once: the cores we have.
    pub cpu_workers: usize,
    /// Jobs allowed to wait for a CPU slot; beyond that a job is refused with 503.
    pub cpu_queue_limit: usize,
    /// Longest side of a background-removal answer.
    pub cutout_max_side: u32,
    /// The attribute taxonomy file, if the operator set one.
    pub taxonomy_file: Option<PathBuf>,
    /// Where `taxonomy.toml` is looked for when no file is set.
    pub models_dir: PathBuf,
}

/// Bounds CPU-heavy work to the cores we have, so a burst queues instead of
/// oversubscribing the machine, and refuses at once when too many jobs already wait.
pub struct CpuSlots {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue_limit: usize,
}

impl CpuSlots {
    pub fn new(workers: usize, queue_limit: usize) -> Self {
        CpuSlots {
            slots: Arc::new(Semaphore::new(workers.max(1))),
            waiting: AtomicUsize::new(0),
            queue_limit,
        }
    }

    /// Slots free right now (for metrics).
    pub fn available(&self) -> usize {
        self.slots.available_permits()
    }

    /// A CPU slot, or `service_unavailable` when too many jobs already wait.
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Ok(p) = self.slots.clone().try_acquire_owned() {
            return Ok(p);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue_limit {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            metrics::counter!("dupify_overload_rejections_total", "stage" => "cpu").increment(1);
            return Err(ApiError::unavailable(
                "The server is busy processing other images. Retry shortly.",
                1,
            ));
        }
        // Decrements even when the waiting request is cancelled (client went away).
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
                metrics::gauge!("dupify_cpu_queue_depth").decrement(1.0);
            }
        }
        metrics::gauge!("dupify_cpu_queue_depth").increment(1.0);
        let waiting = Waiting(&self.waiting);
        let permit = self.slots.clone().acquire_owned().await;
        drop(waiting);
        permit.map_err(|_| ApiError::unavailable("The server is shutting down.", 5))
    }
}

/// Everything an image operation needs, and nothing of HTTP or storage.
pub struct Context {
    pub models: Arc<Models>,
    pub intake: IntakeLimits,
    pub cpu: CpuSlots,
    pub cutout_max_side: u32,
    taxonomy_file: Option<PathBuf>,
    models_dir: PathBuf,
    /// Class embeddings of the attribute taxonomy, built on first use (needs CLIP).
    semantic: OnceCell<Arc<SemanticIndex>>,
}

impl Context {
    pub fn new(models: Arc<Models>, config: ContextConfig) -> Self {
        Context {
            models,
            intake: config.intake,
            cpu: CpuSlots::new(config.cpu_workers, config.cpu_queue_limit),
            cutout_max_side: config.cutout_max_side,
            taxonomy_file: config.taxonomy_file,
            models_dir: config.models_dir,
            semantic: OnceCell::new(),
        }
    }

    /// The zero-shot attribute index, when a CLIP model with a text tower is loaded.
    /// Built once; a failure is logged and retried on the next request.
    pub async fn semantic_index(&self) -> Result<Option<Arc<SemanticIndex>>, String> {
        let Some(clip) = self.models.clip().cloned() else {
            return Ok(None);
        };
        if !clip.has_text() {
            return Ok(None);
        }
        self.semantic
            .get_or_try_init(|| async {
                let text = taxonomy_text(self.taxonomy_file.as_deref(), &self.models_dir)?;
                let index = SemanticIndex::build(&clip, &text).await;
                if let Err(e) = &index {
                    tracing::error!(error = %e, "cannot build the semantic attribute index");
                }
                index.map(Arc::new)
            })
            .await
            .map(|i| Some(i.clone()))
    }
}
