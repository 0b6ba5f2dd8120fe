//! Typed errors: what the API answered, or why no answer arrived.

use std::time::Duration;

use serde_json::{Map, Value};

/// The metering headers of a response (docs/API.md, "Keys, scopes and tiers"). Every authenticated answer carries
/// them, errors included; the two monthly ones are absent for the unlimited tier.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// `X-RateLimit-Limit`: requests per minute.
    pub limit: Option<u64>,
    /// `X-RateLimit-Remaining`.
    pub remaining: Option<u64>,
    /// `X-RateLimit-Reset`: Unix seconds when the full burst is available again.
    pub reset: Option<u64>,
    /// `X-Monthly-Limit`.
    pub monthly_limit: Option<u64>,
    /// `X-Monthly-Remaining`.
    pub monthly_remaining: Option<u64>,
}

impl RateLimit {
    pub(crate) fn from_headers(h: &reqwest::header::HeaderMap) -> Self {
        let num = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        RateLimit {
            limit: num("x-ratelimit-limit"),
            remaining: num("x-ratelimit-remaining"),
            reset: num("x-ratelimit-reset"),
            monthly_limit: num("x-monthly-limit"),
            monthly_remaining: num("x-monthly-remaining"),
        }
    }
}

/// An error answer of the API: the envelope `{"error": {...}}` plus what the headers said.
#[derive(Clone, Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Machine-readable code, e.g. `invalid_parameter` (`http_<status>` if the body had none).
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// `details`, when the server gave context (`parameter`, `required_scope`, ...).
    pub details: Option<Value>,
    /// The request id from the body, else from the `X-Request-Id` header.
    pub request_id: Option<String>,
    /// `Retry-After` (header, or `error.retry_after`), for 429 and 503.
    pub retry_after: Option<Duration>,
    /// The metering headers of this answer.
    pub rate_limit: RateLimit,
    /// Other fields the server put inside `error` (`current_usage`, `limit`,
    /// `resets_at` for `quota_exceeded`; `limit`, `current_size` for
    /// `catalog_limit_exceeded`).
    pub extra: Map<String, Value>,
    /// How many requests were made before giving up (1 when not retried).
    pub attempts: u32,
}

impl ApiError {
    /// The parameter a `missing_parameter` / `invalid_parameter` error names.
    pub fn parameter(&self) -> Option<&str> {
        self.details.as_ref()?.get("parameter")?.as_str()
    }

    /// Whether the retry guidance of the API says this answer may be retried:
    /// 429 after `Retry-After`, 5xx with backoff; never 4xx otherwise.
    pub fn is_retryable(&self) -> bool {
        self.status == 429 || (500..600).contains(&self.status)
    }

    pub(crate) fn from_parts(
        status: u16,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
        attempts: u32,
    ) -> Self {
        let parsed: Option<Map<String, Value>> = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| match v {
                Value::Object(mut m) => match m.remove("error") {
                    Some(Value::Object(e)) => Some(e),
                    _ => None,
                },
                _ => None,
            });
        let header_id = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let header_retry = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let rate_limit = RateLimit::from_headers(headers);
        match parsed {
            Some(mut e) => {
                let text = |e: &mut Map<String, Value>, k: &str| match e.remove(k) {
                    Some(Value::String(s)) => Some(s),
                    _ => None,
                };
                let code = text(&mut e, "code").unwrap_or_else(|| format!("http_{status}"));
                let message = text(&mut e, "message").unwrap_or_default();
                let request_id = text(&mut e, "request_id").or(header_id);
                let details = e.remove("details");
                let body_retry = e
                    .get("retry_after")
                    .and_then(Value::as_f64)
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(|s| Duration::from_secs_f64(s.min(86_400.0)));
                ApiError {
                    status,
                    code,
                    message,
                    details,
                    request_id,
                    retry_after: header_retry.or(body_retry),
                    rate_limit,
                    extra: e,
                    attempts,
                }
            }
            None => ApiError {
                status,
                code: format!("http_{status}"),
                message: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
                details: None,
                request_id: header_id,
                retry_after: header_retry,
                rate_limit,
                extra: Map::new(),
                attempts,
            },
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {} {}: {}", self.status, self.code, self.message)?;
        if let Some(p) = self.parameter() {
            write!(f, " (parameter {p})")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " [request {id}]")?;
        }
        Ok(())
    }
}

/// `Retry-After` in delta-seconds (the form this API sends); HTTP dates are not used by it.
pub(crate) fn parse_retry_after(v: &str) -> Option<Duration> {
    let s: f64 = v.trim().parse().ok()?;
    (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(86_400.0)))
}

/// Everything a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API answered with an error envelope (after any retries the policy allowed).
    #[error("{0}")]
    Api(Box<ApiError>),
    /// No answer: connection refused, TLS, timeout, broken transfer (after retries).
    #[error("request failed after {attempts} attempt(s): {source}")]
    Transport {
        #[source]
        source: reqwest::Error,
        attempts: u32,
    },
    /// The overall deadline passed before a usable answer; holds the last failure.
    #[error("deadline of {deadline:?} exceeded after {attempts} attempt(s); last: {last}")]
    DeadlineExceeded {
        deadline: Duration,
        attempts: u32,
        last: Box<Error>,
    },
    /// A 2xx answer whose body is not what this client expects.
    #[error("unexpected response body: {0}")]
    Decode(#[source] serde_json::Error),
    /// A local problem before anything was sent (bad base URL, unreadable image file).
    #[error("{0}")]
    Invalid(String),
    /// Reading an image file failed.
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The API error, if the server answered with one (also inside `DeadlineExceeded`).
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            Error::DeadlineExceeded { last, .. } => last.api(),
            _ => None,
        }
    }

    /// The API's error code (`invalid_parameter`, `rate_limit_exceeded`, ...).
    pub fn code(&self) -> Option<&str> {
        self.api().map(|e| e.code.as_str())
    }

    /// The HTTP status of the API's answer.
    pub fn status(&self) -> Option<u16> {
        self.api().map(|e| e.status)
    }

    /// The request id to quote to support.
    pub fn request_id(&self) -> Option<&str> {
        self.api().and_then(|e| e.request_id.as_deref())
    }
}
