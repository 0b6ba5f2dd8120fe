//! Background feature extraction for catalog products.
//!
//! Jobs live in the store (committed with their product). A worker leases one, runs
//! the pipeline once for all features, and records the outcome, the quota settlement
//! and the job's removal in one transaction. A worker killed mid-job simply lets its
//! lease run out; the job is then taken again. Transient download failures (timeouts,
//! connection errors, HTTP 5xx/408/429) and overload are retried with exponential
//! backoff; everything else fails the product with its error.

use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use dupify_core::{ApiError, ErrorCode};
use dupify_store::{JobOutcome, LeasedJob, ProductFeatures, ProductImage, ProductVectors};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::state::SharedState;

/// What the store keeps of a product's extracted features.
fn stored_features(x: dupify_pipeline::CatalogFeatures) -> Result<ProductFeatures, ApiError> {
    let features = serde_json::to_string(&x.summary()).map_err(|e| {
        tracing::error!(error = %e, "cannot serialise product features");
        ApiError::internal()
    })?;
    Ok(ProductFeatures {
        features,
        vectors: ProductVectors {
            model: x.embed.model,
            embedding: x.embed.embedding,
            silhouette: x.silhouette.embedding,
            color: x.color_signature,
        },
    })
}

/// A download failure worth retrying: the server or the network may recover.
fn is_transient(e: &ApiError) -> bool {
    match e.code {
        ErrorCode::ServiceUnavailable => true,
        ErrorCode::ImageFetchFailed => {
            let status = e
                .details
                .as_ref()
                .and_then(|d| d.get("status"))
                .and_then(Value::as_u64);
            match status {
                Some(s) => s >= 500 || s == 408 || s == 429,
                // No HTTP answer: DNS, connect, timeout, broken connection. Redirect
                // loops will not fix themselves.
                None => !e.message.contains("redirect"),
            }
        }
        _ => false,
    }
}

/// Handles on the background tasks, to stop them at shutdown.
pub struct Workers {
    stop: tokio::sync::watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
    state: SharedState,
}

impl Workers {
    /// Lets running jobs finish (up to the grace period; an unfinished one is simply
    /// retried after its lease), then writes index snapshots.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let grace = Duration::from_secs(self.state.config.shutdown_grace_secs.max(1));
        for h in self.handles {
            let abort = h.abort_handle();
            if tokio::time::timeout(grace, h).await.is_err() {
                abort.abort();
            }
        }
        self.state.catalogs.maintain(true).await;
    }
}

/// Starts the extraction workers, the index loader and the index maintenance loop.
pub fn start(state: SharedState) -> Workers {
    let (stop, rx) = tokio::sync::watch::channel(false);
    let mut handles = Vec::new();
    {
        let state = state.clone();
        handles.push(tokio::spawn(async move {
            if let Err(e) = state.catalogs.load_all().await {
                tracing::error!(error = %e, "cannot list catalogs to load");
            }
        }));
    }
    let owner = format!(
        "{}:{}:{}",
        hostname(),
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    {
        let (state, owner) = (state.clone(), owner.clone());
        tokio::spawn(async move { reclaim_dead_leases(&state, &owner).await });
    }
    for n in 0..state.config.catalog_workers {
        let (state, mut rx, owner) = (state.clone(), rx.clone(), format!("{owner}-{n}"));
        handles.push(tokio::spawn(async move {
            while !*rx.borrow() {
                match state
                    .store
                    .lease_job(
                        &owner,
                        Utc::now(),
                        state.config.catalog_job_lease_secs as i64 * 1000,
                    )
                    .await
                {
                    Ok(Some(job)) => run_job(&state, job).await,
                    Ok(None) => {
                        tokio::select! {
                            _ = state.jobs_ready.notified() => {}
                            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                            _ = rx.changed() => {}
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot lease a catalog job");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }));
    }
    {
        let (state, mut rx) = (state.clone(), rx.clone());
        handles.push(tokio::spawn(async move {
            let every = Duration::from_secs(state.config.catalog_snapshot_secs.max(1));
            let mut last_save = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = rx.changed() => return,
                }
                let save = last_save.elapsed() >= every;
                state.catalogs.maintain(save).await;
                if save {
                    last_save = tokio::time::Instant::now();
                }
                if let Ok(n) = state.store.pending_jobs().await {
                    metrics::gauge!("dupify_catalog_jobs_pending").set(n as f64);
                }
            }
        }));
    }
    Workers {
        stop,
        handles,
        state,
    }
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// Leases held by a process of this host that no longer runs (killed, crashed) are
/// released at start, so its jobs resume now rather than when the lease runs out.
/// Other hosts' leases (a shared database) are left to expire.
async fn reclaim_dead_leases(state: &SharedState, mine: &str) {
    let Ok(owners) = state.store.lease_owners().await else {
        return;
    };
    let me = hostname();
    // Our workers' names are `mine-N`.
    for owner in owners.into_iter().filter(|o| !o.starts_with(mine)) {
        let mut parts = owner.splitn(3, ':');
        let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let alive =
            pid != std::process::id() && std::path::Path::new(&format!("/proc/{pid}")).exists();
        if host == me && !alive {
            match state.store.release_leases(&owner).await {
                Ok(n) if n > 0 => {
                    tracing::info!(owner = %owner, jobs = n, "released the leases of a process that is gone")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot release stale leases"),
            }
        }
    }
}

async fn run_job(state: &SharedState, job: LeasedJob) {
    let max = state.config.catalog_max_attempts.max(1);
    let outcome = if job.attempts > max {
        // Leased this often without an outcome: the runs were interrupted (a crash on
        // this image, or shutdowns). Stop before it takes the process down again.
        Err(ApiError::new(
            ErrorCode::ProcessingFailed,
            format!("feature extraction was interrupted {max} times"),
        ))
    } else {
        let bytes = match &job.image {
            ProductImage::Url(u) => match url::Url::parse(u) {
                Ok(url) => state.fetcher.fetch(&url, "image_url").await,
                Err(_) => Err(ApiError::invalid("image_url", "the stored URL is invalid")),
            },
            ProductImage::Bytes(b) => Ok(Bytes::from(b.clone())),
        };
        let parameter = match &job.image {
            ProductImage::Url(_) => "image_url",
            ProductImage::Bytes(_) => "image_base64",
        };
        match bytes {
            Ok(b) => dupify_pipeline::extract_features(&state.pipeline, b, parameter, true)
                .await
                .and_then(stored_features),
            Err(e) => Err(e),
        }
    };
    let outcome = match outcome {
        Ok(features) => JobOutcome::Ready(features),
        Err(e) if is_transient(&e) && job.attempts < max => {
            let base = state.config.catalog_retry_base_secs.max(0.01);
            let delay = if e.code == ErrorCode::ServiceUnavailable {
                e.retry_after.unwrap_or(1) as f64
            } else {
                (base * 2f64.powi(job.attempts as i32 - 1)).min(600.0)
            };
            tracing::info!(product = job.product_pk, attempt = job.attempts, delay_secs = delay, error = %e, "catalog job will be retried");
            let at = Utc::now() + chrono::Duration::milliseconds((delay * 1000.0) as i64);
            let overload = e.code == ErrorCode::ServiceUnavailable;
            if let Err(e) = state
                .store
                .retry_job(&job, at, &e.to_string(), overload)
                .await
            {
                tracing::error!(error = %e, "cannot reschedule a catalog job");
            }
            metrics::counter!("dupify_catalog_jobs_total", "outcome" => "retried").increment(1);
            return;
        }
        Err(e) => {
            let message = if e.code == ErrorCode::InternalError {
                "internal error while extracting features".to_owned()
            } else {
                e.message.clone()
            };
            JobOutcome::Failed {
                code: e.code.as_str().to_owned(),
                message,
            }
        }
    };
    let label = match &outcome {
        JobOutcome::Ready(_) => "ready",
        JobOutcome::Failed { .. } => "failed",
    };
    match state.store.complete_job(&job, outcome, Utc::now()).await {
        Ok(true) => {
            metrics::counter!("dupify_catalog_jobs_total", "outcome" => label).increment(1);
            // Its webhook events committed with it.
            state.webhooks_ready.notify_waiters();
            if let Err(e) = state.catalogs.sync(&job.account_id, job.mode).await {
                tracing::warn!(error = %e, "catalog index sync failed (retried by maintenance)");
            }
        }
        Ok(false) => {
            metrics::counter!("dupify_catalog_jobs_total", "outcome" => "superseded").increment(1);
        }
        Err(e) => tracing::error!(error = %e, "cannot record a catalog job's outcome"),
    }
}
