//! Webhook signatures (docs/API.md, "Webhooks"): every delivery carries
//! `Dupify-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` made with
//! the endpoint's secret. Receivers recompute it over the raw body and refuse old
//! timestamps, so a captured delivery cannot be replayed later.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// A webhook endpoint as the API shows it. `secret` only in the answers that create or
/// rotate it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct WebhookEndpoint {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    pub events: Vec<String>,
    pub enabled: bool,
    /// Why the server disabled it (sustained failed deliveries), if it did.
    pub disabled_reason: Option<String>,
    /// Failed delivery attempts since the last success.
    pub consecutive_failures: u32,
    /// Live-mode (or test-mode) events, as the key that made it.
    pub livemode: bool,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// `GET /v1/webhooks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct WebhookList {
    pub data: Vec<WebhookEndpoint>,
}

/// One event sent (or being sent) to an endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct WebhookDelivery {
    pub event_id: String,
    pub event_type: String,
    /// `pending` (retried until delivered or too old), `delivered` or `failed`.
    pub status: String,
    pub attempts: u32,
    pub created_at: String,
    pub next_attempt_at: Option<String>,
    pub last_attempt_at: Option<String>,
    /// The receiver's HTTP status on the last attempt.
    pub last_status: Option<u16>,
    /// Why the last attempt had no answer (timeout, refused connection, ...).
    pub last_error: Option<String>,
    pub last_latency_ms: Option<u64>,
    pub delivered_at: Option<String>,
}

/// `GET /v1/webhooks/{id}/deliveries`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct WebhookDeliveryList {
    pub data: Vec<WebhookDelivery>,
}

/// The JSON body of a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// The same on every retry: receivers deduplicate by it.
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created_at: String,
    pub livemode: bool,
    pub data: serde_json::Value,
}

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Dupify-Signature";
/// The header carrying the event id (the same on every retry: deduplicate by it).
pub const EVENT_ID_HEADER: &str = "Dupify-Event-Id";
/// The header carrying the event type.
pub const EVENT_TYPE_HEADER: &str = "Dupify-Event-Type";
/// How old a signature [`verify`] accepts by default.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `Dupify-Signature` value for `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// The header is not `t=...,v1=...`.
    Malformed,
    /// The timestamp is further than the tolerance from now.
    Expired { age_secs: i64 },
    /// No `v1` signature matches the body and secret.
    Mismatch,
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::Malformed => f.write_str("the signature header is malformed"),
            VerifyError::Expired { age_secs } => {
                write!(
                    f,
                    "the signature is {age_secs} s from now, outside the tolerance"
                )
            }
            VerifyError::Mismatch => f.write_str("no signature matches the body and secret"),
        }
    }
}

impl std::error::Error for VerifyError {}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Checks a delivery: `header` is the `Dupify-Signature` value, `body` the raw request
/// body, `now` the receiver's clock (Unix seconds). Several `v1` entries may appear (one
/// per secret while a rotation settles); one match is enough. Comparison is in
/// constant time.
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => {
                timestamp = Some(v.parse::<i64>().map_err(|_| VerifyError::Malformed)?)
            }
            Some(("v1", v)) => signatures.push(unhex(v).ok_or(VerifyError::Malformed)?),
            Some(_) => {}
            None => return Err(VerifyError::Malformed),
        }
    }
    let t = timestamp.ok_or(VerifyError::Malformed)?;
    if signatures.is_empty() {
        return Err(VerifyError::Malformed);
    }
    // A forged timestamp must not overflow the subtraction.
    let age = now.saturating_sub(t);
    if age.unsigned_abs() > tolerance_secs.unsigned_abs() {
        return Err(VerifyError::Expired { age_secs: age });
    }
    let expected = mac(secret, t, body);
    if signatures
        .iter()
        .any(|s| expected.clone().verify_slice(s).is_ok())
    {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_every_change_breaks_it() {
        let body = br#"{"id":"evt_1","type":"product.ready"}"#;
        let h = sign("whsec_abc", 1_700_000_000, body);
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(verify("whsec_abc", &h, body, 1_700_000_010, 300), Ok(()));
        assert_eq!(
            verify("whsec_abd", &h, body, 1_700_000_010, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify("whsec_abc", &h, b"{}", 1_700_000_010, 300),
            Err(VerifyError::Mismatch)
        );
        assert!(matches!(
            verify("whsec_abc", &h, body, 1_700_001_000, 300),
            Err(VerifyError::Expired { .. })
        ));
        // A replayed body under a new timestamp does not match.
        let forged = h.replace("t=1700000000", "t=1700000900");
        assert_eq!(
            verify("whsec_abc", &forged, body, 1_700_000_900, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify("whsec_abc", "v1=zz", body, 0, 300),
            Err(VerifyError::Malformed)
        );
        assert!(matches!(
            verify(
                "whsec_abc",
                &format!("t={},v1=00", i64::MIN),
                body,
                i64::MAX,
                300
            ),
            Err(VerifyError::Expired { .. })
        ));
        // One of several signatures is enough.
        let two = format!("{h},v1={}", "00".repeat(32));
        assert_eq!(verify("whsec_abc", &two, body, 1_700_000_000, 300), Ok(()));
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently (Python's hmac module) over b'1700000000.{"id":"evt_1"}'.
        assert_eq!(
            sign("whsec_test", 1_700_000_000, br#"{"id":"evt_1"}"#),
            "t=1700000000,v1=c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925"
        );
    }
}
