//! `POST /v1/webhooks` (docs/API.md, "Webhooks"). Unknown fields are refused.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{check, Rejection, Request};

/// Event types an endpoint can subscribe to.
/// (Sorted: an endpoint lists its events in this order.)
pub const WEBHOOK_EVENT_TYPES: [&str; 2] = ["product.failed", "product.ready"];

/// A new webhook endpoint.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(expecting = "a JSON object")]
pub struct WebhookCreate {
    pub url: Option<String>,
    /// Absent: every event type.
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    #[serde(flatten)]
    unknown: Map<String, Value>,
}

impl Request for WebhookCreate {
    fn validate(&mut self) -> Result<(), Rejection> {
        check::no_unknown(&self.unknown, "", |_| {
            "unknown field; a webhook takes url, events and description".into()
        })?;
        if self.url.is_none() {
            return Err(Rejection::missing("url"));
        }
        check::http_url(&mut self.url, "url", 2_048)?;
        check::text(&mut self.description, "description", 256)?;
        match &mut self.events {
            None => self.events = Some(WEBHOOK_EVENT_TYPES.iter().map(|e| e.to_string()).collect()),
            Some(events) => {
                if events.is_empty() {
                    return Err(Rejection::invalid(
                        "events",
                        "events must list at least one event type",
                    ));
                }
                for (i, e) in events.iter().enumerate() {
                    if !WEBHOOK_EVENT_TYPES.contains(&e.as_str()) {
                        return Err(Rejection::invalid(
                            format!("events[{i}]"),
                            format!(
                                "unknown event type {e:?}; known: {}",
                                WEBHOOK_EVENT_TYPES.join(", ")
                            ),
                        ));
                    }
                }
                events.sort();
                events.dedup();
            }
        }
        Ok(())
    }
}
