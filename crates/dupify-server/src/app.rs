//! The router: which path goes to which handler, and the layers around them.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;
use dupify_core::{ApiError, ErrorCode};

use crate::auth::require_key;
use crate::edge::edge;
use crate::error::AppError;
use crate::handlers::{catalog, ops, usage, vision, webhooks};
use crate::state::SharedState;

async fn not_found() -> AppError {
    AppError(ApiError::from_code(ErrorCode::NotFound))
}

async fn method_not_allowed() -> AppError {
    AppError(ApiError::from_code(ErrorCode::MethodNotAllowed))
}

/// Wraps a route's handlers in key authentication; a wrong method still answers 405
/// without asking for a key (the layer only runs for matched methods).
fn authed(state: &SharedState, r: MethodRouter<SharedState>) -> MethodRouter<SharedState> {
    r.route_layer(from_fn_with_state(state.clone(), require_key))
}

pub fn router(state: SharedState) -> Router {
    let body_limit = state.config.body_limit_bytes;
    Router::new()
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/v1/openapi.json", get(ops::openapi))
        .route("/docs", get(ops::docs))
        .route("/v1/colors", authed(&state, post(vision::colors)))
        .route("/v1/embed", authed(&state, post(vision::embed)))
        .route("/v1/silhouette", authed(&state, post(vision::silhouette)))
        .route("/v1/attributes", authed(&state, post(vision::attributes)))
        .route(
            "/v1/background-remove",
            authed(&state, post(vision::background_remove)),
        )
        .route("/v1/batch", authed(&state, post(vision::batch)))
        .route("/v1/usage", authed(&state, get(usage::usage)))
        .route(
            "/v1/catalog/products",
            authed(&state, post(catalog::upload).get(catalog::list)),
        )
        .route(
            "/v1/catalog/products/{id}",
            authed(&state, get(catalog::get).merge(delete(catalog::delete))),
        )
        .route("/v1/catalog/search", authed(&state, post(catalog::search)))
        .route(
            "/v1/catalog/duplicates",
            authed(&state, post(catalog::duplicates)),
        )
        .route(
            "/v1/webhooks",
            authed(&state, post(webhooks::create).get(webhooks::list)),
        )
        .route(
            "/v1/webhooks/{id}",
            authed(&state, get(webhooks::get).merge(delete(webhooks::delete))),
        )
        .route(
            "/v1/webhooks/{id}/deliveries",
            authed(&state, get(webhooks::deliveries)),
        )
        .route(
            "/v1/webhooks/{id}/rotate-secret",
            authed(&state, post(webhooks::rotate_secret)),
        )
        .route(
            "/v1/webhooks/{id}/enable",
            authed(&state, post(webhooks::enable)),
        )
        .nest("/dashboard", crate::dashboard::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(from_fn(move |req: Request, next: Next| {
            refuse_declared_oversize(body_limit, req, next)
        }))
        .layer(from_fn(edge))
        .with_state(Arc::clone(&state))
}

/// A body declared (`Content-Length`) larger than the limit is refused before anything
/// reads it, and the connection is closed rather than drained: waiting for 100 GB that
/// will be refused anyway would hold the connection for nothing.
async fn refuse_declared_oversize(limit: usize, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        let mut res = AppError(ApiError::from_code(ErrorCode::PayloadTooLarge)).into_response();
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return res;
    }
    next.run(req).await
}
