//! The outermost layer: request ids, panic containment, the error envelope for every
//! response that needs one, the access log line and HTTP metrics.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use dupify_core::ApiError;
use futures::FutureExt;

use crate::auth::AccountId;
use crate::error::{code_for_status, render, PendingError};

/// The id of the current request, available to handlers as an extension.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// A caller-supplied id is kept when it is a short token of safe characters; otherwise
/// a fresh one is made.
fn pick_request_id(headers: &HeaderMap) -> String {
    if let Some(v) = headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if !v.is_empty()
            && v.len() <= 128
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            return v.to_owned();
        }
    }
    format!("req_{}", uuid::Uuid::new_v4().simple())
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Bodies that are already meant for their reader: our JSON, and the dashboard's HTML
/// error pages (browsers get a page, not the API envelope).
fn is_rendered(res: &Response) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"))
}

pub async fn edge(mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let request_id = pick_request_id(req.headers());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());

    let mut res = match AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(res) => res,
        Err(panic) => {
            tracing::error!(
                request_id = %request_id,
                route = %route,
                panic = %panic_message(panic.as_ref()),
                "handler panicked"
            );
            render(&ApiError::internal(), &request_id)
        }
    };

    // Render pending errors, and give bare framework errors (404/405/413/...) our envelope.
    let pending = res.extensions_mut().remove::<PendingError>().map(|p| p.0);
    let err = pending.or_else(|| {
        let status = res.status();
        (status.as_u16() >= 400 && !is_rendered(&res))
            .then(|| ApiError::from_code(code_for_status(status)))
    });
    if let Some(err) = err {
        if err.code == dupify_core::ErrorCode::InternalError {
            tracing::error!(request_id = %request_id, route = %route, "internal error");
        }
        let mut rendered = render(&err, &request_id);
        for (name, value) in res.headers() {
            if name != header::CONTENT_TYPE
                && name != header::CONTENT_LENGTH
                && !rendered.headers().contains_key(name)
            {
                rendered.headers_mut().insert(name.clone(), value.clone());
            }
        }
        let account = res.extensions_mut().remove::<AccountId>();
        res = rendered;
        if let Some(a) = account {
            res.extensions_mut().insert(a);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert("x-request-id", v);
    }

    let status = res.status().as_u16();
    let elapsed = start.elapsed();
    let account_id = res
        .extensions()
        .get::<AccountId>()
        .map(|a| a.0.as_str())
        .unwrap_or("-");
    tracing::info!(
        target: "dupify::access",
        request_id = %request_id,
        method = %method,
        route = %route,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        account_id = %account_id,
        "request"
    );
    let labels = [
        ("route", route),
        ("method", method.to_string()),
        ("status", status.to_string()),
    ];
    metrics::counter!("dupify_http_requests_total", &labels).increment(1);
    metrics::histogram!("dupify_http_request_duration_seconds", &labels[..2])
        .record(elapsed.as_secs_f64());
    res
}
