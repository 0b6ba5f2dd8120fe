//! The error catalogue: every code a client can receive, its HTTP status and default
//! message, defined once. Every layer of the server renders failures through [`ApiError`].

use serde_json::{Map, Value};

/// Declares the code table once; the match arms below are generated from it.
macro_rules! error_codes {
    ($($variant:ident => ($code:literal, $status:literal, $message:literal),)*) => {
        /// A machine-readable error code from the public catalogue (docs/API.md, "Errors").
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $($variant,)* }

        impl ErrorCode {
            /// Every code, in table order (used by docs and tests).
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The wire name, e.g. `invalid_parameter`.
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The HTTP status this code is always answered with.
            pub const fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// A generic human-readable message, used when no specific one is given.
            pub const fn default_message(self) -> &'static str {
                match self { $(ErrorCode::$variant => $message,)* }
            }
        }
    };
}

error_codes! {
    MissingParameter => ("missing_parameter", 400, "A required parameter is missing."),
    InvalidParameter => ("invalid_parameter", 400, "A parameter has an invalid value."),
    InvalidImageUrl => ("invalid_image_url", 400, "The image URL is malformed or points at a host this server does not fetch from."),
    InvalidBase64 => ("invalid_base64", 400, "The image_base64 value is not valid base64."),
    MissingApiKey => ("missing_api_key", 401, "No API key was sent. Pass it in the X-API-Key header or as Authorization: Bearer <key>."),
    InvalidApiKey => ("invalid_api_key", 401, "The API key is unknown, malformed or revoked."),
    ExpiredApiKey => ("expired_api_key", 401, "The API key has expired. Create or regenerate a key."),
    InsufficientScope => ("insufficient_scope", 403, "The API key's scopes do not cover this endpoint."),
    QuotaExceeded => ("quota_exceeded", 403, "The monthly call quota of this account is used up."),
    CatalogLimitExceeded => ("catalog_limit_exceeded", 403, "The catalog size allowed by this account's tier would be exceeded."),
    NotFound => ("not_found", 404, "No such route or resource."),
    MethodNotAllowed => ("method_not_allowed", 405, "This route does not accept that HTTP method."),
    PayloadTooLarge => ("payload_too_large", 413, "The request body is larger than this server accepts."),
    ImageFetchFailed => ("image_fetch_failed", 422, "The image could not be downloaded from the given URL."),
    UnsupportedFormat => ("unsupported_format", 422, "The image is not JPEG, PNG, WebP or GIF."),
    ImageTooLarge => ("image_too_large", 422, "The image is over the size or pixel limit."),
    ProcessingFailed => ("processing_failed", 422, "The image could not be processed."),
    RateLimitExceeded => ("rate_limit_exceeded", 429, "Too many requests: the per-minute rate limit was reached."),
    InternalError => ("internal_error", 500, "An internal error occurred. It has been logged with the request id."),
    ServiceUnavailable => ("service_unavailable", 503, "The service is temporarily unable to handle this request."),
}

impl ErrorCode {
    /// Whether a well-behaved client should retry (docs/API.md, "Errors": retry guidance).
    pub const fn is_retryable(self) -> bool {
        matches!(self.status(), 429 | 500 | 503)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failure as the client sees it. `details` is optional context; `extra` holds the
/// fields some codes carry directly inside `error` (e.g. `retry_after`, `limit`).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    // Boxed: errors travel in every `Result` of the request path, so the type stays
    // small (two pointers) and the maps are only allocated when used.
    pub details: Option<Box<Map<String, Value>>>,
    pub extra: Option<Box<Map<String, Value>>>,
    /// Seconds for the `Retry-After` header (429 and 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            details: None,
            extra: None,
            retry_after: None,
        }
    }

    /// The code with its table message.
    pub fn from_code(code: ErrorCode) -> Self {
        Self::new(code, code.default_message())
    }

    pub fn missing(parameter: &str) -> Self {
        Self::new(
            ErrorCode::MissingParameter,
            format!("{parameter} is required"),
        )
        .detail("parameter", parameter)
    }

    /// `invalid_parameter` naming the parameter (always, per docs/API.md, "Errors").
    pub fn invalid(parameter: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameter, message).detail("parameter", parameter)
    }

    pub fn internal() -> Self {
        Self::from_code(ErrorCode::InternalError)
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let secs = retry_after_secs.max(1);
        let mut e = Self::new(
            ErrorCode::RateLimitExceeded,
            format!("Rate limit exceeded. Retry in {secs} seconds."),
        )
        .field("retry_after", secs);
        e.retry_after = Some(secs);
        e
    }

    pub fn unavailable(message: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut e = Self::new(ErrorCode::ServiceUnavailable, message);
        e.retry_after = Some(retry_after_secs.max(1));
        e
    }

    /// Replaces the message, keeping code and context.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// Adds a `details` entry.
    /// Adds context under `details`. Echoed client values are bounded: a string over
    /// [`MAX_ECHO_CHARS`] is cut (with `…`), and an array or object echoed whole is
    /// replaced by its size, so an error is never as large as the request that caused it.
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        let value = match value.into() {
            Value::String(s) if s.chars().count() > MAX_ECHO_CHARS => {
                let mut cut: String = s.chars().take(MAX_ECHO_CHARS).collect();
                cut.push('…');
                Value::String(cut)
            }
            Value::Array(a) if a.len() > MAX_ECHO_ITEMS => {
                Value::String(format!("(an array of {} items)", a.len()))
            }
            Value::Object(o) if o.len() > MAX_ECHO_ITEMS => {
                Value::String(format!("(an object of {} fields)", o.len()))
            }
            v => v,
        };
        self.details
            .get_or_insert_with(Default::default)
            .insert(key.to_owned(), value);
        self
    }

    /// Adds a field directly inside `error`.
    pub fn field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra
            .get_or_insert_with(Default::default)
            .insert(key.to_owned(), value.into());
        self
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The `{"error": {...}}` envelope.
    pub fn to_body(&self, request_id: Option<&str>) -> Value {
        let mut inner = Map::new();
        inner.insert("code".into(), Value::from(self.code.as_str()));
        inner.insert("message".into(), Value::from(self.message.clone()));
        if let Some(d) = &self.details {
            inner.insert("details".into(), Value::Object((**d).clone()));
        }
        for (k, v) in self.extra.iter().flat_map(|m| m.iter()) {
            inner.insert(k.clone(), v.clone());
        }
        if let Some(id) = request_id {
            inner.insert("request_id".into(), Value::from(id));
        }
        let mut outer = Map::new();
        outer.insert("error".into(), Value::Object(inner));
        Value::Object(outer)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// A request the wire contract refused (docs/API.md, "Errors": the parameter is always named).
/// Longest client string echoed back in `details`.
pub const MAX_ECHO_CHARS: usize = 200;
/// Most items of a client array or object echoed back in `details`.
pub const MAX_ECHO_ITEMS: usize = 20;

impl From<dupify_api::requests::Rejection> for ApiError {
    fn from(r: dupify_api::requests::Rejection) -> Self {
        use dupify_api::requests::RejectionKind;
        let code = match r.kind {
            RejectionKind::Missing => ErrorCode::MissingParameter,
            RejectionKind::Invalid => ErrorCode::InvalidParameter,
        };
        let mut e = ApiError::new(code, r.message).detail("parameter", r.parameter);
        for (k, v) in r.details.into_iter().flat_map(|d| *d) {
            e = e.detail(&k, v);
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_values_are_bounded() {
        let long = "x".repeat(5_000);
        let e = ApiError::invalid("limit", "bad").detail("value", long);
        let v = e.details.as_ref().unwrap()["value"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(v.chars().count(), MAX_ECHO_CHARS + 1);
        assert!(v.ends_with('…'));
        let many: Vec<u32> = (0..2_000_000).collect();
        let e = ApiError::invalid("texts", "bad").detail("value", many);
        assert_eq!(e.details.unwrap()["value"], "(an array of 2000000 items)");
        let e = ApiError::invalid("top_k", "bad").detail("value", 40);
        assert_eq!(e.details.unwrap()["value"], 40);
    }

    #[test]
    fn codes_are_unique_and_statuses_match_spec_classes() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {c}");
            assert!((400..600).contains(&c.status()));
        }
        assert_eq!(ErrorCode::ALL.len(), 20);
        assert_eq!(ErrorCode::QuotaExceeded.status(), 403);
        assert_eq!(ErrorCode::ImageTooLarge.status(), 422);
    }

    #[test]
    fn stays_small() {
        assert!(size_of::<ApiError>() <= 64, "{}", size_of::<ApiError>());
    }

    #[test]
    fn envelope_shape() {
        let e = ApiError::invalid("max_colors", "max_colors must be between 1 and 12")
            .detail("value", 40);
        let body = e.to_body(Some("req_x"));
        assert_eq!(body["error"]["code"], "invalid_parameter");
        assert_eq!(body["error"]["details"]["parameter"], "max_colors");
        assert_eq!(body["error"]["details"]["value"], 40);
        assert_eq!(body["error"]["request_id"], "req_x");
        let r = ApiError::rate_limited(0);
        assert_eq!(r.retry_after, Some(1));
        assert_eq!(r.to_body(None)["error"]["retry_after"], 1);
    }
}
