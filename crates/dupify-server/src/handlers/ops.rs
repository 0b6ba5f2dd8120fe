//! Operations routes: liveness, readiness, metrics. No key needed.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::state::SharedState;

pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready once every dependency a request needs is usable; lists what is missing.
pub async fn ready(State(state): State<SharedState>) -> Response {
    let mut missing = Vec::new();
    let database = match state.store.ping().await {
        Ok(()) => "ok".to_owned(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database check failed");
            missing.push("database");
            "unavailable".to_owned()
        }
    };
    let models = state.models().status();
    for m in models.iter().filter(|m| !m.ready) {
        missing.push(m.name.as_str());
    }
    let body = json!({
        "status": if missing.is_empty() { "ready" } else { "not_ready" },
        "checks": {"database": database},
        "models": models,
        "missing": missing,
    });
    let status = if missing.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut res = (status, Json(body)).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        res.headers_mut().insert(header::RETRY_AFTER, 5.into());
    }
    res
}

pub async fn metrics(State(state): State<SharedState>) -> Response {
    metrics::gauge!("dupify_cache_entries").set(state.cache.entry_count() as f64);
    metrics::gauge!("dupify_cpu_workers_idle").set(state.pipeline.cpu.available() as f64);
    for (model, depth) in state.models().queue_depths() {
        metrics::gauge!("dupify_model_queue_depth", "model" => model).set(depth as f64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// `GET /v1/openapi.json`: the OpenAPI 3.1 document (no key needed).
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(crate::openapi::document()).unwrap_or_default(),
    )
        .into_response()
}

/// `GET /docs`: the reference page rendered from the same document.
pub async fn docs() -> axum::response::Html<&'static str> {
    axum::response::Html(crate::openapi::html())
}
