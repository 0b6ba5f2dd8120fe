//! Webhook endpoints and their durable outbox (docs/API.md, "Webhooks"). Events are
//! written to the outbox in the same transaction as the change they report (a product
//! settling in [`crate::JobStore::complete_job`]), one delivery row per subscribed
//! endpoint, so a crash can neither lose an event nor report a change that did not
//! commit. Delivery is at least once: a delivery leased by a process that died is
//! leased again when its lease runs out.

use chrono::{DateTime, Utc};
use dupify_core::KeyMode;

/// A registered endpoint. `secret` signs deliveries; it is shown to the API client only
/// when created or rotated.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEndpoint {
    pub id: String,
    pub account_id: String,
    pub mode: KeyMode,
    pub url: String,
    pub description: Option<String>,
    pub events: Vec<String>,
    pub secret: String,
    pub enabled: bool,
    /// Why the server turned the endpoint off (sustained failures), if it did.
    pub disabled_reason: Option<String>,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewWebhookEndpoint {
    pub account_id: String,
    pub mode: KeyMode,
    pub url: String,
    pub description: Option<String>,
    pub events: Vec<String>,
    pub secret: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not yet delivered; retried until it is or until it is too old.
    Pending,
    Delivered,
    /// Given up: still failing when its retry window closed.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => DeliveryStatus::Pending,
            "delivered" => DeliveryStatus::Delivered,
            "failed" => DeliveryStatus::Failed,
            _ => return None,
        })
    }
}

/// One event for one endpoint, with its delivery log.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    /// Increases with every event written: the order events happened in.
    pub seq: i64,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    /// The JSON body sent (the same bytes on every attempt).
    pub payload: String,
    pub created_at: DateTime<Utc>,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The receiver's HTTP status on the last attempt (none: no answer).
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<u64>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A delivery leased for sending, with what sending needs.
#[derive(Debug, Clone)]
pub struct LeasedDelivery {
    pub delivery: WebhookDelivery,
    pub url: String,
    pub secret: String,
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct DeliveryAttempt {
    pub at: DateTime<Utc>,
    /// A 2xx answer.
    pub delivered: bool,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    /// When to try again after a failure; `None` gives up (the delivery fails).
    pub retry_at: Option<DateTime<Utc>>,
    /// Consecutive failures after which the endpoint is disabled.
    pub disable_after: u32,
}
