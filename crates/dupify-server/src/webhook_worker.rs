//! Sends webhook deliveries from the store's outbox (docs/API.md, "Webhooks").
//!
//! The sender leases due deliveries (the oldest of each endpoint, one per endpoint at a
//! time, so a healthy endpoint gets events in the order they happened), signs each with
//! its endpoint's current secret, POSTs it under the image URL policy (checked DNS, no
//! redirects, no proxies), and records the attempt. A failure (no answer, or a non-2xx
//! status) is retried with exponential backoff until the event is older than the retry
//! window; an endpoint failing too many times in a row is disabled. A process killed
//! mid-send loses nothing: the lease runs out and the delivery is sent again, with the
//! same event id (delivery is at least once).

use std::time::{Duration, Instant};

use chrono::Utc;
use dupify_api::webhook::{sign, EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER};
use dupify_store::{DeliveryAttempt, LeasedDelivery};
use tokio::task::JoinHandle;

use crate::state::SharedState;

/// Deliveries sent at once (each to a different endpoint).
const PARALLEL: usize = 8;

/// Of those, at most this many for one account: one account's slow receivers cannot
/// hold every sender.
const PER_ACCOUNT: u32 = 4;

/// How long the log of a settled delivery is kept.
const LOG_RETENTION_DAYS: i64 = 30;

/// The delay before attempt `n + 1` after `n` failed attempts.
pub fn backoff(base_secs: f64, max_secs: f64, failed_attempts: u32) -> Duration {
    let exp = 2f64.powi(failed_attempts.saturating_sub(1).min(30) as i32);
    Duration::from_secs_f64((base_secs * exp).min(max_secs).max(0.0))
}

/// Starts the sender; it stops when `stop` turns true.
pub fn start(state: SharedState, mut stop: tokio::sync::watch::Receiver<bool>) -> JoinHandle<()> {
    let owner = format!(
        "{}:{}:webhooks:{}",
        crate::catalog_worker::hostname(),
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    tokio::spawn(async move {
        let timeout = Duration::from_secs_f64(state.config.webhook_timeout_secs.max(0.1));
        // A lease outlives one attempt, so no two processes send the same delivery at
        // once unless one of them died.
        let lease_ms = timeout.as_millis() as i64 + 5_000;
        let mut pruned_at: Option<Instant> = None;
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(PARALLEL));
        while !*stop.borrow() {
            // The log of settled deliveries is kept for 30 days, pruned hourly.
            if pruned_at.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
                pruned_at = Some(Instant::now());
                let before = Utc::now() - chrono::Duration::days(LOG_RETENTION_DAYS);
                match state.store.prune_deliveries(before).await {
                    Ok(n) if n > 0 => tracing::info!(pruned = n, "old webhook deliveries pruned"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot prune webhook deliveries"),
                }
            }
            // Sends run side by side; each free slot is refilled as soon as it frees,
            // so a slow receiver holds only its own slot.
            let free = slots.available_permits();
            if free == 0 {
                tokio::select! {
                    _ = slots.clone().acquire_owned() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let leased = match state
                .store
                .lease_deliveries(&owner, Utc::now(), lease_ms, free as u32, PER_ACCOUNT)
                .await
            {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "cannot lease webhook deliveries");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if leased.is_empty() {
                tokio::select! {
                    _ = state.webhooks_ready.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            for d in leased {
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    break; // cannot happen: no more were leased than were free
                };
                let (state, owner) = (state.clone(), owner.clone());
                tokio::spawn(async move {
                    send(&state, &owner, d, timeout).await;
                    drop(permit);
                    // A slot is free: the loop may lease again at once.
                    state.webhooks_ready.notify_waiters();
                });
            }
        }
        // Let sends in flight finish (each is bounded by the timeout).
        let _ = slots.acquire_many(PARALLEL as u32).await;
    })
}

async fn send(state: &SharedState, owner: &str, d: LeasedDelivery, timeout: Duration) {
    let now = Utc::now();
    let body = d.delivery.payload.clone().into_bytes();
    let signature = sign(&d.secret, now.timestamp(), &body);
    let headers = [
        (SIGNATURE_HEADER, signature),
        (EVENT_ID_HEADER, d.delivery.event_id.clone()),
        (EVENT_TYPE_HEADER, d.delivery.event_type.clone()),
    ];
    let started = Instant::now();
    // The URL was checked when registered; the address policy is applied again by the
    // resolver on every connection (a name may have been re-pointed since).
    let result = match url::Url::parse(&d.url) {
        Ok(url) => state.fetcher.post_json(&url, &headers, body, timeout).await,
        Err(_) => Err("the endpoint URL is not valid".to_owned()),
    };
    let latency_ms = started.elapsed().as_millis() as u64;
    let (delivered, status, error) = match result {
        Ok(s) if (200..300).contains(&s) => (true, Some(s), None),
        Ok(s) => (
            false,
            Some(s),
            Some(format!("the receiver answered HTTP {s}")),
        ),
        Err(reason) => (false, None, Some(reason)),
    };
    let at = Utc::now();
    let retry_at = (!delivered)
        .then(|| {
            let wait = backoff(
                state.config.webhook_retry_base_secs,
                state.config.webhook_retry_max_secs,
                d.delivery.attempts + 1,
            );
            let next = at + chrono::Duration::from_std(wait).unwrap_or_default();
            let window = chrono::Duration::seconds(state.config.webhook_retry_window_secs as i64);
            (next <= d.delivery.created_at + window).then_some(next)
        })
        .flatten();
    let outcome = if delivered {
        "delivered"
    } else if retry_at.is_some() {
        "retry"
    } else {
        "failed"
    };
    metrics::counter!("dupify_webhook_attempts_total", "outcome" => outcome).increment(1);
    metrics::histogram!("dupify_webhook_latency_seconds").record(latency_ms as f64 / 1000.0);
    if !delivered {
        tracing::info!(
            endpoint = %d.delivery.endpoint_id,
            event = %d.delivery.event_id,
            error = error.as_deref().unwrap_or_default(),
            "webhook delivery failed"
        );
    }
    let attempt = DeliveryAttempt {
        at,
        delivered,
        status,
        error,
        latency_ms,
        retry_at,
        disable_after: state.config.webhook_disable_after.max(1),
    };
    match state
        .store
        .record_delivery_attempt(d.delivery.seq, owner, attempt)
        .await
    {
        Ok(true) => {}
        // Our lease ran out meanwhile and another sender owns the delivery now.
        Ok(false) => {
            tracing::info!(event = %d.delivery.event_id, "webhook attempt outlived its lease")
        }
        // The lease runs out and the delivery is sent again: at least once.
        Err(e) => tracing::error!(error = %e, "cannot record a webhook attempt"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let s = |n| backoff(30.0, 3600.0, n).as_secs();
        assert_eq!([s(1), s(2), s(3), s(4)], [30, 60, 120, 240]);
        assert_eq!(s(8), 3600);
        assert_eq!(s(u32::MAX), 3600);
    }
}
