//! How failures become HTTP responses. Handlers return [`AppError`]; its response carries
//! the [`ApiError`] in an extension and the outermost middleware renders the envelope
//! (it alone knows the request id). Responses from lower layers that are not ours
//! (framework rejections) are mapped through [`code_for_status`] so every error a client
//! sees has the same shape.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dupify_core::{ApiError, ErrorCode};

/// A handler-level failure; renders through the one error table.
#[derive(Debug)]
pub struct AppError(pub ApiError);

impl From<ApiError> for AppError {
    fn from(e: ApiError) -> Self {
        AppError(e)
    }
}

/// Failures of the layers below convert by type, through their `ApiError` mapping
/// (defined next to each error type), so handlers just use `?`.
macro_rules! via_api_error {
    ($($t:ty),*) => {$(
        impl From<$t> for AppError {
            fn from(e: $t) -> Self {
                AppError(ApiError::from(e))
            }
        }
    )*};
}

via_api_error!(
    dupify_store::StoreError,
    dupify_catalog::CatalogError,
    dupify_models::EngineError,
    dupify_api::requests::Rejection
);

/// A blocking task that panicked or was cancelled: a bug, logged with its cause.
pub fn task_failed(e: tokio::task::JoinError) -> ApiError {
    tracing::error!(error = %e, "a blocking task failed");
    ApiError::internal()
}

/// Marker extension: this response is an error still to be rendered with its request id.
#[derive(Clone, Debug)]
pub struct PendingError(pub ApiError);

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = status.into_response();
        res.extensions_mut().insert(PendingError(self.0));
        res
    }
}

/// Which code a bare status from a lower layer stands for.
pub fn code_for_status(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        400 | 411 | 415 | 422 => ErrorCode::InvalidParameter,
        401 => ErrorCode::InvalidApiKey,
        404 => ErrorCode::NotFound,
        405 => ErrorCode::MethodNotAllowed,
        413 => ErrorCode::PayloadTooLarge,
        429 => ErrorCode::RateLimitExceeded,
        503 => ErrorCode::ServiceUnavailable,
        _ => ErrorCode::InternalError,
    }
}

/// Builds the final error response: status from the table, JSON envelope, and the
/// `Retry-After` header where the code carries one.
pub fn render(err: &ApiError, request_id: &str) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(&err.to_body(Some(request_id))).unwrap_or_default();
    let mut res = (status, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(secs) = err.retry_after {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

pub type AppResult<T> = Result<T, AppError>;
