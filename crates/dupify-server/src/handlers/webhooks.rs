//! `/v1/webhooks` (docs/API.md, "Webhooks"): endpoints of the caller's catalog (account
//! and mode), their delivery log, secret rotation and re-enabling. Scope `catalog`.
//! Another account's endpoint id answers 404, as if it did not exist.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use dupify_api::requests::WebhookCreate;
use dupify_api::webhook::{WebhookDelivery, WebhookDeliveryList, WebhookEndpoint, WebhookList};
use dupify_core::{ApiError, ErrorCode, KeyMode, Scope};
use dupify_store::NewWebhookEndpoint;
use rand::Rng;

use crate::auth::Caller;
use crate::body::JsonBody;
use crate::error::{AppError, AppResult};
use crate::state::SharedState;

/// Most endpoints one catalog may register.
pub const MAX_ENDPOINTS: usize = 16;

fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `whsec_` and 32 base62 characters from the OS CSPRNG.
pub fn new_secret() -> String {
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    let mut s = String::from("whsec_");
    for _ in 0..32 {
        s.push(BASE62[rng.gen_range(0..BASE62.len())] as char);
    }
    s
}

fn endpoint(e: &dupify_store::WebhookEndpoint, with_secret: bool) -> WebhookEndpoint {
    WebhookEndpoint {
        id: e.id.clone(),
        url: e.url.clone(),
        description: e.description.clone(),
        events: e.events.clone(),
        enabled: e.enabled,
        disabled_reason: e.disabled_reason.clone(),
        consecutive_failures: e.consecutive_failures,
        livemode: e.mode == KeyMode::Live,
        created_at: iso(e.created_at),
        secret: with_secret.then(|| e.secret.clone()),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::NotFound, "No webhook endpoint with this id.").detail("id", id)
}

/// Registers an endpoint of a catalog (the API and the dashboard): the URL under the
/// image URL policy, at most [`MAX_ENDPOINTS`], a fresh secret.
pub async fn register(
    state: &SharedState,
    account_id: &str,
    mode: KeyMode,
    req: WebhookCreate,
) -> Result<dupify_store::WebhookEndpoint, ApiError> {
    let raw = req.url.unwrap_or_default();
    let url = dupify_images::parse_image_url(&raw, "url", &state.fetch_policy).map_err(|e| {
        // The image policy's reason, as a parameter error of this endpoint.
        ApiError::invalid("url", format!("url: {}", e.message)).detail("value", raw.clone())
    })?;
    state
        .store
        .create_webhook(
            NewWebhookEndpoint {
                account_id: account_id.to_owned(),
                mode,
                url: url.to_string(),
                description: req.description,
                events: req.events.unwrap_or_default(),
                secret: new_secret(),
                at: Utc::now(),
            },
            MAX_ENDPOINTS,
        )
        .await?
        .ok_or_else(|| {
            ApiError::invalid(
                "url",
                format!(
                    "a catalog has at most {MAX_ENDPOINTS} webhook endpoints; delete one first"
                ),
            )
            .detail("limit", MAX_ENDPOINTS)
        })
}

/// `POST /v1/webhooks`: 201 with the endpoint and its secret (shown only here and when
/// rotated). The URL obeys the image URL policy (no private, loopback or metadata
/// hosts unless the operator allows them), checked again at every delivery.
pub async fn create(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Result<JsonBody, AppError>,
) -> AppResult<Response> {
    caller.require(Scope::Catalog)?;
    caller.meter.admit().await?;
    let req: WebhookCreate = body?.parse()?;
    let e = register(&state, &caller.account.id, caller.mode(), req).await?;
    Ok((StatusCode::CREATED, Json(endpoint(&e, true))).into_response())
}

/// `GET /v1/webhooks`.
pub async fn list(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
) -> AppResult<Json<WebhookList>> {
    caller.require(Scope::Catalog)?;
    caller.meter.admit().await?;
    let all = state
        .store
        .list_webhooks(&caller.account.id, caller.mode())
        .await?;
    Ok(Json(WebhookList {
        data: all.iter().map(|e| endpoint(e, false)).collect(),
    }))
}

/// `GET /v1/webhooks/{id}`.
pub async fn get(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> AppResult<Json<WebhookEndpoint>> {
    caller.require(Scope::Catalog)?;
    caller.meter.admit().await?;
    let e = state
        .store
        .get_webhook(&caller.account.id, caller.mode(), &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(endpoint(&e, false)))
}

/// `DELETE /v1/webhooks/{id}`: the endpoint and its undelivered events.
pub async fn delete(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> AppResult<Json<dupify_api::Deleted>> {
    caller.require(Scope::Catalog)?;
    caller.meter.admit().await?;
    if !state
        .store
        .delete_webhook(&caller.account.id, caller.mode(), &id)
        .await?
    {
        return Err(not_found(&id).into());
    }
    Ok(Json(dupify_api::Deleted { id, deleted: true }))
}

/// `POST /v1/webhooks/{id}/rotate-secret`: a new secret, signing every attempt from now
/// on (the old one signs nothing more); shown once.
pub async fn rotate_secret(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> AppResult<Json<WebhookEndpoint>> {
    caller.require(Scope::Catalog)?;
    caller.meter.admit().await?;
    let e = state
        .store
        .rotate_webhook_secret(&caller.account.id, caller.mode(), &id, new_secret())
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(endpoint(&e, true)))
}

/// `POST /v1/webhooks/{id}/enable`: back on after the server disabled it; its failure
/// count starts again from zero and its pending events are retried.
pub async fn enable(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> AppResult<Json<WebhookEndpoint>> {
    caller.require(Scope::Catalog)?;
    caller.meter.admit().await?;
    let e = state
        .store
        .set_webhook_enabled(&caller.account.id, caller.mode(), &id, true)
        .await?
        .ok_or_else(|| not_found(&id))?;
    state.webhooks_ready.notify_waiters();
    Ok(Json(endpoint(&e, false)))
}

/// `GET /v1/webhooks/{id}/deliveries?limit=50`: newest first.
pub async fn deliveries(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> AppResult<Json<WebhookDeliveryList>> {
    caller.require(Scope::Catalog)?;
    caller.meter.admit().await?;
    let mut limit_text = None;
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "limit" if limit_text.is_none() => limit_text = Some(v.into_owned()),
            "limit" => {
                return Err(ApiError::invalid("limit", "limit is given more than once").into())
            }
            other => {
                return Err(ApiError::invalid(
                    other,
                    format!("unknown query parameter {other:?}; deliveries take limit"),
                )
                .into())
            }
        }
    }
    let limit = match limit_text {
        None => 50,
        Some(s) => match s.parse::<u32>() {
            Ok(n @ 1..=200) => n,
            _ => {
                return Err(
                    ApiError::invalid("limit", "limit must be an integer from 1 to 200")
                        .detail("value", s)
                        .into(),
                )
            }
        },
    };
    state
        .store
        .get_webhook(&caller.account.id, caller.mode(), &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let rows = state
        .store
        .webhook_deliveries(&caller.account.id, caller.mode(), &id, limit)
        .await?;
    Ok(Json(WebhookDeliveryList {
        data: rows
            .into_iter()
            .map(|d| WebhookDelivery {
                event_id: d.event_id,
                event_type: d.event_type,
                status: d.status.as_str().to_owned(),
                attempts: d.attempts,
                created_at: iso(d.created_at),
                next_attempt_at: d
                    .next_attempt_at
                    .filter(|_| d.status == dupify_store::DeliveryStatus::Pending)
                    .map(iso),
                last_attempt_at: d.last_attempt_at.map(iso),
                last_status: d.last_status,
                last_error: d.last_error,
                last_latency_ms: d.last_latency_ms,
                delivered_at: d.delivered_at.map(iso),
            })
            .collect(),
    }))
}
