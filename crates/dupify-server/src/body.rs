//! JSON request bodies. The body is checked to be a JSON object with no repeated key
//! here; its fields are read by the wire contract's request types
//! (`dupify_api::requests`), whose rejections name the parameter at fault, so clients
//! can fix the request without guessing.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use dupify_api::requests::Request as WireRequest;
use dupify_core::{ApiError, ErrorCode};
use serde_json::Value;

use crate::error::AppError;

/// Bodies up to this size are parsed where they arrive (well under a millisecond).
const INLINE_PARSE_BYTES: usize = 64 * 1024;

/// A request body that must be a JSON object.
pub struct JsonBody(pub Value);

impl JsonBody {
    /// The body read as a request type (see `dupify_api::requests`).
    pub fn parse<T: WireRequest>(&self) -> Result<T, ApiError> {
        Ok(dupify_api::requests::parse(&self.0)?)
    }

    /// True when the body has this field (even `null`).
    pub fn has(&self, name: &str) -> bool {
        self.0.get(name).is_some()
    }
}

fn is_json_content_type(v: &str) -> bool {
    let mime = v
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match ct.as_deref() {
            Some(v) if is_json_content_type(v) => {}
            Some(v) => {
                return Err(ApiError::invalid(
                    "Content-Type",
                    format!("Content-Type must be application/json, not '{v}'"),
                )
                .into())
            }
            None => {
                return Err(ApiError::invalid(
                    "Content-Type",
                    "Content-Type must be application/json",
                )
                .into())
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status().as_u16() == 413 {
                ApiError::from_code(ErrorCode::PayloadTooLarge)
            } else {
                // A body that stopped arriving (the body read timeout) or a broken connection.
                ApiError::invalid(
                    "body",
                    "the request body could not be read whole: it did not arrive in time, or the connection broke",
                )
            }
        })?;
        // Valid JSON, an object, no key given twice (a repeated key names its path).
        // Large bodies are parsed on the blocking pool, not on the threads serving
        // every other connection.
        let parsed = if bytes.len() <= INLINE_PARSE_BYTES {
            dupify_api::requests::json_object(&bytes)
        } else {
            tokio::task::spawn_blocking(move || dupify_api::requests::json_object(&bytes))
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "body parsing task failed");
                    ApiError::internal()
                })?
        };
        Ok(JsonBody(parsed.map_err(ApiError::from)?))
    }
}
