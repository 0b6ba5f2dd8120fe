//! JSON request bodies and field validation. Every rejection names the parameter at
//! fault, so clients can fix the request without guessing.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use dupify_core::{ApiError, ErrorCode};
use serde_json::{Map, Value};

use crate::error::AppError;

/// A request body that must be a JSON object.
pub struct JsonBody(pub Map<String, Value>);

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
                ApiError::invalid("body", "the request body could not be read")
            }
        })?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::invalid("body", format!("the body is not valid JSON: {e}")))?;
        match value {
            Value::Object(map) => Ok(JsonBody(map)),
            _ => Err(ApiError::invalid("body", "the body must be a JSON object").into()),
        }
    }
}

/// A field that is absent and a field that is `null` mean the same: not given.
pub fn field<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.get(name).filter(|v| !v.is_null())
}

pub fn bool_field(map: &Map<String, Value>, name: &str, default: bool) -> Result<bool, ApiError> {
    match field(map, name) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(
            ApiError::invalid(name, format!("{name} must be true or false"))
                .detail("value", v.clone()),
        ),
    }
}

/// An integer in `[min, max]`; floats with a fractional part and strings are refused.
pub fn int_field(
    map: &Map<String, Value>,
    name: &str,
    min: i64,
    max: i64,
    default: i64,
) -> Result<i64, ApiError> {
    let Some(v) = field(map, name) else {
        return Ok(default);
    };
    let n = v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
            .map(|f| f as i64)
    });
    match n {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::invalid(
            name,
            format!("{name} must be an integer between {min} and {max}"),
        )
        .detail("value", v.clone())),
    }
}

/// An options object (e.g. `options` in batch); absent means empty.
pub fn object_field<'a>(
    map: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a Map<String, Value>>, ApiError> {
    match field(map, name) {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(ApiError::invalid(
            name,
            format!("{name} must be a JSON object"),
        )),
    }
}
