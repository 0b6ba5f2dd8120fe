//! Dupify's HTTP surface: routing, the edge layer, authentication and metering, the
//! result cache, thin handlers over the application layer (`dupify-pipeline`), the
//! catalog workers and the web dashboard. [`build_state`] wires the pieces and [`serve`]
//! runs them; the `dupify` binary and the tests start it.

pub mod app;
pub mod auth;
pub mod body;
pub mod cache;
pub mod catalog_search;
pub mod catalog_worker;
pub mod config;
pub mod connections;
pub mod dashboard;
pub mod edge;
pub mod error;
pub mod handlers;
pub mod image_request;
pub mod images;
pub mod openapi;
pub mod ratelimit;
pub mod state;
pub mod webhook_worker;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context;
use dupify_images::{FetchPolicy, Fetcher};
use dupify_store::Store;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

pub use config::ServerConfig;
pub use state::{AppState, SharedState};

/// The process-wide metrics recorder (installed once, shared by every server in the
/// process, which matters for tests that start several).
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets(&buckets)
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Another recorder may already be installed (embedding); ours then just renders empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Builds the shared state from a config and a store, loading the configured models
/// (a missing model is reported by `/ready`, not fatal).
pub fn build_state(config: ServerConfig, store: Arc<dyn Store>) -> SharedState {
    let observe: dupify_models::Observer = Arc::new(|model: &str, batch: usize, took: Duration| {
        metrics::histogram!("dupify_inference_seconds", "model" => model.to_string())
            .record(took.as_secs_f64());
        metrics::histogram!("dupify_inference_batch_size", "model" => model.to_string())
            .record(batch as f64);
    });
    let models = Arc::new(dupify_models::Models::load(
        &config.models_config(),
        observe,
    ));
    build_state_with_models(config, store, models)
}

/// [`build_state`] with models loaded elsewhere (shared between servers in one process).
pub fn build_state_with_models(
    config: ServerConfig,
    store: Arc<dyn Store>,
    models: Arc<dupify_models::Models>,
) -> SharedState {
    let fetch_policy = FetchPolicy {
        allow_private_hosts: config.allow_private_image_hosts,
        allowed_private_ips: config.allowed_private_image_ips.clone(),
        connect_timeout: config.fetch_connect_timeout(),
        total_timeout: config.fetch_timeout(),
        max_bytes: config.max_image_bytes,
        ..FetchPolicy::default()
    };
    let pipeline = Arc::new(dupify_pipeline::Context::new(
        models,
        config.pipeline_config(),
    ));
    Arc::new(AppState {
        limiter: Arc::new(ratelimit::LocalRateLimiter::new()),
        cache: cache::build(
            config.cache_max_mib,
            Duration::from_secs(config.cache_ttl_secs),
        ),
        fetcher: Fetcher::new(fetch_policy.clone()),
        fetch_policy,
        pipeline,
        metrics: metrics_handle(),
        key_touches: Mutex::new(HashMap::new()),
        // Short-lived so usage recorded by another replica shows up within a second.
        usage_hint: moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(Duration::from_secs(1))
            .build(),
        catalogs: Arc::new(dupify_catalog::Catalogs::new(
            store.clone(),
            config.data_dir.join("index"),
            config.catalog_search_config(),
        )),
        jobs_ready: Arc::new(tokio::sync::Notify::new()),
        webhooks_ready: Arc::new(tokio::sync::Notify::new()),
        store,
        config,
    })
}

/// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests
/// finish (up to the configured grace period) and flushes pending writes.
pub async fn serve(
    listener: TcpListener,
    state: SharedState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if state.config.allow_private_image_hosts {
        tracing::warn!(
            "allow_private_image_hosts is ON: image URLs may point at private and loopback addresses. \
             Never enable this on a server reachable by customers."
        );
    }
    let flusher = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                state.flush_key_touches().await;
            }
        })
    };
    let workers = catalog_worker::start(state.clone());
    let (stop_webhooks, stop_rx) = tokio::sync::watch::channel(false);
    let webhook_sender = webhook_worker::start(state.clone(), stop_rx);
    let app = app::router(state.clone());
    let grace = Duration::from_secs(state.config.shutdown_grace_secs);
    let result = connections::serve(listener, app, &state.config, grace, shutdown)
        .await
        .context("server error");
    flusher.abort();
    let _ = stop_webhooks.send(true);
    // An attempt cut short here is sent again after its lease (at least once).
    if tokio::time::timeout(grace, webhook_sender).await.is_err() {
        tracing::warn!("webhook sender still busy at shutdown");
    }
    workers.stop().await;
    state.flush_key_touches().await;
    result
}
