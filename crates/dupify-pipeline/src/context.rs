//! What the pipeline needs to run: models, intake limits, CPU slots, the attribute index.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use dupify_core::ApiError;
use dupify_images::IntakeLimits;
use dupify_models::Models;
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

use crate::category::{category_text, CategoryTaxonomy};
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
    workers: usize,
    waiting: AtomicUsize,
    queue_limit: usize,
    /// How long a job holds its slot, in microseconds (moving average), for the
    /// `Retry-After` of a refusal.
    service_us: Arc<AtomicU64>,
}

/// A held CPU slot; its hold time feeds the service-time average when it is released.
pub struct CpuSlot {
    _permit: OwnedSemaphorePermit,
    since: std::time::Instant,
    service_us: Arc<AtomicU64>,
}

impl Drop for CpuSlot {
    fn drop(&mut self) {
        let took = self.since.elapsed().as_micros().min(u64::MAX as u128) as u64;
        // An average over roughly the last 16 jobs; races between releases only lose
        // a sample.
        let old = self.service_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            took
        } else {
            (old * 15 + took) / 16
        };
        self.service_us.store(new, Ordering::Relaxed);
    }
}

impl CpuSlots {
    pub fn new(workers: usize, queue_limit: usize) -> Self {
        CpuSlots {
            slots: Arc::new(Semaphore::new(workers.max(1))),
            workers: workers.max(1),
            waiting: AtomicUsize::new(0),
            queue_limit,
            service_us: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Seconds until a job sent now would likely get a slot: the jobs ahead of it
    /// (those running and those waiting) times the measured service time, shared by
    /// the workers; at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let ahead = (self.waiting.load(Ordering::Relaxed) + self.workers) as u64;
        let us = self.service_us.load(Ordering::Relaxed);
        (ahead * us / self.workers as u64)
            .div_ceil(1_000_000)
            .clamp(1, 300)
    }

    fn slot(&self, permit: OwnedSemaphorePermit) -> CpuSlot {
        CpuSlot {
            _permit: permit,
            since: std::time::Instant::now(),
            service_us: self.service_us.clone(),
        }
    }

    /// Slots free right now (for metrics).
    pub fn available(&self) -> usize {
        self.slots.available_permits()
    }

    /// A CPU slot, or `service_unavailable` when too many jobs already wait.
    pub async fn acquire(&self) -> Result<CpuSlot, ApiError> {
        if let Ok(p) = self.slots.clone().try_acquire_owned() {
            return Ok(self.slot(p));
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue_limit {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            metrics::counter!("dupify_overload_rejections_total", "stage" => "cpu").increment(1);
            return Err(ApiError::unavailable(
                "The server is busy processing other images. Retry shortly.",
                self.retry_after_secs(),
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
        permit
            .map(|p| self.slot(p))
            .map_err(|_| ApiError::unavailable("The server is shutting down.", 5))
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
    /// The ImageNet category taxonomy, read on first use (needs the classifier).
    categories: std::sync::OnceLock<Result<Arc<CategoryTaxonomy>, String>>,
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
            categories: std::sync::OnceLock::new(),
        }
    }

    /// The category taxonomy resolved against the ImageNet model's class names, when
    /// that model is loaded. Read once; a broken file is reported on every request
    /// that needs it (and logged once) until the server restarts.
    pub fn category_taxonomy(&self) -> Result<Option<Arc<CategoryTaxonomy>>, String> {
        let Some(model) = self.models.imagenet() else {
            return Ok(None);
        };
        self.categories
            .get_or_init(|| {
                let parsed = category_text(&self.models_dir)
                    .and_then(|text| CategoryTaxonomy::parse(&text, model.labels()));
                if let Err(e) = &parsed {
                    tracing::error!(error = %e, "cannot read the category taxonomy");
                }
                parsed.map(Arc::new)
            })
            .clone()
            .map(Some)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refusals_advise_waiting_for_the_queue_ahead() {
        let cpu = CpuSlots::new(1, 0);
        assert_eq!(cpu.retry_after_secs(), 1, "nothing measured yet");
        // Held slots feed the service-time average.
        let slot = cpu.acquire().await.map_err(|e| e.message).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        drop(slot);
        assert!(cpu.service_us.load(Ordering::Relaxed) >= 30_000);
        // Jobs of ~1.2 s: with one running and none waiting, retry in 2 s.
        cpu.service_us.store(1_200_000, Ordering::Relaxed);
        let held = cpu.acquire().await.map_err(|e| e.message).unwrap();
        let refused = match cpu.acquire().await {
            Err(e) => e,
            Ok(_) => panic!("no slot and no waiting room: refused"),
        };
        assert_eq!(refused.code, dupify_core::ErrorCode::ServiceUnavailable);
        assert_eq!(refused.retry_after, Some(2), "one job ahead of ~1.2 s");
        drop(held);
    }
}
