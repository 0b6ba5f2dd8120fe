//! The router: which path goes to which handler, and the layers around them.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;

use crate::auth::require_key;
use crate::edge::edge;
use crate::error::AppError;
use crate::handlers::{catalog, ops, usage, vision};
use crate::state::SharedState;

async fn not_found() -> AppError {
    AppError(dupify_core::ApiError::from_code(
        dupify_core::ErrorCode::NotFound,
    ))
}

async fn method_not_allowed() -> AppError {
    AppError(dupify_core::ApiError::from_code(
        dupify_core::ErrorCode::MethodNotAllowed,
    ))
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
        .nest("/dashboard", crate::dashboard::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(from_fn(edge))
        .with_state(Arc::clone(&state))
}
