//! Shared application state handed to every handler.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use dupify_images::{FetchPolicy, Fetcher, IntakeLimits};
use dupify_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::cache::ResultCache;
use crate::config::ServerConfig;
use crate::ratelimit::RateLimiter;

pub struct AppState {
    pub config: ServerConfig,
    pub store: Arc<dyn Store>,
    pub limiter: Arc<dyn RateLimiter>,
    pub cache: Arc<dyn ResultCache>,
    pub fetcher: Fetcher,
    pub fetch_policy: FetchPolicy,
    pub intake: IntakeLimits,
    /// Bounds CPU-heavy work (decode, features) to the cores we have, so a burst queues
    /// instead of oversubscribing the machine.
    pub cpu: Arc<Semaphore>,
    /// Jobs currently waiting for a `cpu` permit.
    pub cpu_waiting: AtomicUsize,
    pub metrics: PrometheusHandle,
    /// `last_used_at` updates coalesced in memory and flushed every few seconds, so
    /// authentication never writes to the database on the hot path.
    pub key_touches: Mutex<HashMap<String, DateTime<Utc>>>,
    /// Recently seen monthly usage per account, keyed by `(account, period)`, for the
    /// `X-Monthly-Remaining` header of requests that reserve nothing (cache hits, errors).
    /// Quota decisions never read it: they are made by the store, atomically.
    pub usage_hint: moka::sync::Cache<(String, String), u64>,
    /// The models loaded at start (and what is missing, for `/ready`).
    pub models: Arc<dupify_models::Models>,
    /// Class embeddings of the attribute taxonomy, built on first use (needs CLIP).
    pub semantic: tokio::sync::OnceCell<Arc<crate::semantic::SemanticIndex>>,
    /// Per-catalog vector indexes.
    pub catalogs: Arc<dupify_catalog::Catalogs>,
    /// Wakes the extraction workers when an upload queued jobs.
    pub jobs_ready: Arc<tokio::sync::Notify>,
}

pub type SharedState = Arc<AppState>;

impl AppState {
    /// A CPU worker slot, or `service_unavailable` when too many jobs already wait.
    pub async fn cpu_slot(&self) -> Result<OwnedSemaphorePermit, dupify_core::ApiError> {
        if let Ok(p) = self.cpu.clone().try_acquire_owned() {
            return Ok(p);
        }
        if self.cpu_waiting.fetch_add(1, Ordering::SeqCst) >= self.config.cpu_queue_limit {
            self.cpu_waiting.fetch_sub(1, Ordering::SeqCst);
            metrics::counter!("dupify_overload_rejections_total", "stage" => "cpu").increment(1);
            return Err(dupify_core::ApiError::unavailable(
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
        let waiting = Waiting(&self.cpu_waiting);
        let permit = self.cpu.clone().acquire_owned().await;
        drop(waiting);
        permit.map_err(|_| dupify_core::ApiError::unavailable("The server is shutting down.", 5))
    }

    /// The zero-shot attribute index, when a CLIP model with a text tower is loaded.
    /// Built once (a failure is logged and retried on the next request).
    pub async fn semantic_index(
        &self,
    ) -> Result<Option<Arc<crate::semantic::SemanticIndex>>, String> {
        let Some(clip) = self.models.clip().cloned() else {
            return Ok(None);
        };
        if !clip.has_text() {
            return Ok(None);
        }
        self.semantic
            .get_or_try_init(|| async {
                let file = (!self.config.taxonomy_file.is_empty())
                    .then(|| std::path::PathBuf::from(&self.config.taxonomy_file));
                let text =
                    crate::semantic::taxonomy_text(file.as_deref(), &self.config.models_dir)?;
                let index = crate::semantic::SemanticIndex::build(&clip, &text).await;
                if let Err(e) = &index {
                    tracing::error!(error = %e, "cannot build the semantic attribute index");
                }
                index.map(Arc::new)
            })
            .await
            .map(|i| Some(i.clone()))
    }

    pub fn touch_key(&self, key_id: &str, at: DateTime<Utc>) {
        let mut t = self.key_touches.lock().unwrap_or_else(|p| p.into_inner());
        t.insert(key_id.to_owned(), at);
    }

    /// Writes pending `last_used_at` updates.
    pub async fn flush_key_touches(&self) {
        let pending: Vec<_> = {
            let mut t = self.key_touches.lock().unwrap_or_else(|p| p.into_inner());
            t.drain().collect()
        };
        if let Err(e) = self.store.touch_keys(pending).await {
            tracing::warn!(error = %e, "could not record key last_used_at");
        }
    }
}
