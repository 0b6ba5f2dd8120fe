//! Shared application state handed to every handler.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use dupify_images::{FetchPolicy, Fetcher};
use dupify_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;

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
    /// The application layer: models, intake limits, CPU slots (no HTTP in it).
    pub pipeline: Arc<dupify_pipeline::Context>,
    pub metrics: PrometheusHandle,
    /// `last_used_at` updates coalesced in memory and flushed every few seconds, so
    /// authentication never writes to the database on the hot path.
    pub key_touches: Mutex<HashMap<String, DateTime<Utc>>>,
    /// Recently seen monthly usage per account, keyed by `(account, period)`, for the
    /// `X-Monthly-Remaining` header of requests that reserve nothing (cache hits, errors).
    /// Quota decisions never read it: they are made by the store, atomically.
    pub usage_hint: moka::sync::Cache<(String, String), u64>,
    /// Per-catalog vector indexes.
    pub catalogs: Arc<dupify_catalog::Catalogs>,
    /// Wakes the extraction workers when an upload queued jobs.
    pub jobs_ready: Arc<tokio::sync::Notify>,
    /// Wakes the webhook sender when events may be due (a job settled, an endpoint
    /// came back on).
    pub webhooks_ready: Arc<tokio::sync::Notify>,
}

pub type SharedState = Arc<AppState>;

impl AppState {
    /// The models loaded at start (and what is missing, for `/ready`).
    pub fn models(&self) -> &dupify_models::Models {
        &self.pipeline.models
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
