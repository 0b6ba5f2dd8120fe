//! Receiving Dupify webhooks: check a delivery's signature before trusting its body.
//!
//! ```
//! use dupify_client::webhook;
//!
//! # fn handle(secret: &str, signature_header: &str, raw_body: &[u8]) -> Result<(), webhook::VerifyError> {
//! // `signature_header` is the `Dupify-Signature` header, `raw_body` the bytes as received.
//! let event = webhook::verify_event(secret, signature_header, raw_body)?;
//! if event.event_type == "product.ready" {
//!     // Deduplicate by `event.id`: a delivery can arrive more than once.
//! }
//! # Ok(()) }
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

pub use dupify_api::webhook::{
    sign, verify, VerifyError, WebhookDelivery, WebhookDeliveryList, WebhookEndpoint, WebhookEvent,
    WebhookList, DEFAULT_TOLERANCE_SECS, EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER,
};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Verifies a delivery with the default tolerance (5 minutes) against this machine's
/// clock, then reads its event. A body that verifies but is not an event is
/// [`VerifyError::Malformed`].
pub fn verify_event(
    secret: &str,
    signature_header: &str,
    body: &[u8],
) -> Result<WebhookEvent, VerifyError> {
    verify(
        secret,
        signature_header,
        body,
        now(),
        DEFAULT_TOLERANCE_SECS,
    )?;
    serde_json::from_slice(body).map_err(|_| VerifyError::Malformed)
}

/// What to register (`POST /v1/webhooks`).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct NewWebhook {
    pub url: String,
    /// Absent: every event type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}
