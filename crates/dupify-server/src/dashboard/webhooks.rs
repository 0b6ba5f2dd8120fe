//! The webhooks page (docs/API.md, "Webhooks"): register an endpoint of the live
//! catalog (its secret shown once), list them with their state, rotate a secret,
//! enable a disabled endpoint, delete one, and read an endpoint's delivery log. It
//! registers through the same function as `POST /v1/webhooks`, so the URL policy and
//! the limits are the API's.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use dupify_api::requests::{WebhookCreate, WEBHOOK_EVENT_TYPES};
use dupify_core::KeyMode;
use dupify_store::WebhookEndpoint;
use maud::{html, Markup};

use super::keys::{form_nonce, used_nonces};
use super::page::{csrf_field, fmt_time, html_response, layout, DashError, DashResult, Nav};
use super::session::{Session, SignedForm};
use crate::handlers::webhooks::{new_secret, register};
use crate::state::SharedState;

/// The session account's live endpoint `id`; any other is "not found".
async fn owned(state: &SharedState, s: &Session, id: &str) -> DashResult<WebhookEndpoint> {
    state
        .store
        .get_webhook(&s.account.id, KeyMode::Live, id)
        .await?
        .ok_or_else(DashError::not_found)
}

fn create_form(s: &Session, error: Option<&str>) -> Markup {
    html! {
        section aria-labelledby="create-hook-title" {
            h2 id="create-hook-title" { "Add an endpoint" }
            @if let Some(e) = error {
                p.notice.error role="alert" id="form-error" data-testid="form-error" { (e) }
            }
            form method="post" action="/dashboard/webhooks" id="create-hook-form" data-testid="create-hook-form" {
                (csrf_field(&s.csrf))
                input type="hidden" name="nonce" value=(form_nonce());
                label for="hook-url" { "URL (public http or https)" }
                input type="url" id="hook-url" name="url" required maxlength="2048" data-testid="hook-url";
                fieldset {
                    legend { "Events" }
                    @for e in WEBHOOK_EVENT_TYPES {
                        label for=(format!("event-{e}")) {
                            input type="checkbox" name="event" value=(e) id=(format!("event-{e}")) checked
                                data-testid=(format!("event-{e}"));
                            (e)
                        }
                    }
                }
                label for="hook-description" { "Description (optional)" }
                input type="text" id="hook-description" name="description" maxlength="256" data-testid="hook-description";
                div { button type="submit" id="create-hook" data-testid="create-hook" { "Add endpoint" } }
            }
        }
    }
}

fn secret_box(e: &WebhookEndpoint, what: &str) -> Markup {
    html! {
        section aria-labelledby="secret-title" id="secret-box" data-testid="secret-box" {
            h2 id="secret-title" { (what) }
            p.notice.ok role="status" {
                "Copy the signing secret of " code { (e.url) } " now: it is shown only this once."
            }
            div.secret { code id="new-secret" data-testid="new-secret" { (e.secret) } }
        }
    }
}

fn table(s: &Session, hooks: &[WebhookEndpoint]) -> Markup {
    html! {
        section aria-labelledby="hooks-title" {
            h2 id="hooks-title" { "Endpoints" }
            @if hooks.is_empty() {
                p id="no-hooks" { "No endpoints yet." }
            } @else {
                div.table-wrap {
                    table id="hooks-table" data-testid="hooks-table" {
                        caption.visually-hidden { "Webhook endpoints of the live catalog" }
                        thead { tr {
                            th scope="col" { "URL" } th scope="col" { "Events" } th scope="col" { "State" }
                            th scope="col" { "Failures in a row" } th scope="col" { "Created" } th scope="col" { "Actions" }
                        } }
                        tbody {
                            @for h in hooks {
                                tr data-testid="hook-row" data-hook-id=(h.id) {
                                    td { code { (h.url) } @if let Some(d) = &h.description { br; (d) } }
                                    td { (h.events.join(", ")) }
                                    td data-testid="hook-state" {
                                        @if h.enabled { "enabled" } @else {
                                            "disabled" @if let Some(r) = &h.disabled_reason { ": " (r) }
                                        }
                                    }
                                    td { (h.consecutive_failures) }
                                    td { (fmt_time(h.created_at)) }
                                    td {
                                        a href=(format!("/dashboard/webhooks/{}", h.id)) data-testid="deliveries-link" { "Deliveries" }
                                        @for (action, label) in [("rotate", "Rotate secret"), ("enable", "Enable"), ("delete", "Delete")] {
                                            @if action != "enable" || !h.enabled {
                                                form.inline method="post" action=(format!("/dashboard/webhooks/{}/{action}", h.id)) {
                                                    (csrf_field(&s.csrf))
                                                    button.secondary type="submit" data-testid=(format!("{action}-hook")) { (label) }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn page(
    state: &SharedState,
    s: &Session,
    status: StatusCode,
    top: Markup,
    error: Option<&str>,
) -> DashResult {
    let hooks = state
        .store
        .list_webhooks(&s.account.id, KeyMode::Live)
        .await?;
    Ok(html_response(
        status,
        layout(
            "Webhooks",
            Some(s),
            Nav::Webhooks,
            html! {
                p { "Dupify posts a signed JSON event to each endpoint when a product of the live catalog is processed (" code { "product.ready" } ") or fails (" code { "product.failed" } "), and retries for a day until it answers 2xx." }
                (top) (create_form(s, error)) (table(s, &hooks))
            },
        ),
    ))
}

pub async fn list(State(state): State<SharedState>, s: Session) -> DashResult {
    page(&state, &s, StatusCode::OK, html! {}, None).await
}

pub async fn create(
    State(state): State<SharedState>,
    SignedForm { session: s, form }: SignedForm,
) -> DashResult {
    // One endpoint per rendered form: a reloaded result page cannot register another.
    let fresh = form
        .get("nonce")
        .filter(|n| n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|n| {
            used_nonces()
                .entry(format!("webhook:{}", n.to_ascii_lowercase()))
                .or_insert(())
                .is_fresh()
        });
    match fresh {
        None => {
            let msg = "The form is incomplete; reload the page and try again.";
            return page(
                &state,
                &s,
                StatusCode::UNPROCESSABLE_ENTITY,
                html! {},
                Some(msg),
            )
            .await;
        }
        Some(false) => {
            let msg = "This form was already sent and its endpoint added; its secret was shown once. Rotate it below if it is lost.";
            return page(&state, &s, StatusCode::CONFLICT, html! {}, Some(msg)).await;
        }
        Some(true) => {}
    }
    let events: Vec<&str> = form.get_all("event").collect();
    let mut body =
        serde_json::json!({"url": form.get("url").unwrap_or_default().trim(), "events": events});
    if let Some(d) = form
        .get("description")
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        body["description"] = d.into();
    }
    let created = match dupify_api::requests::parse::<WebhookCreate>(&body) {
        Ok(req) => register(&state, &s.account.id, KeyMode::Live, req).await,
        Err(r) => Err(r.into()),
    };
    match created {
        Ok(e) => {
            page(
                &state,
                &s,
                StatusCode::OK,
                secret_box(&e, "Endpoint added"),
                None,
            )
            .await
        }
        Err(e) if e.code.status() < 500 => {
            page(
                &state,
                &s,
                StatusCode::UNPROCESSABLE_ENTITY,
                html! {},
                Some(&e.message),
            )
            .await
        }
        Err(e) => {
            tracing::error!(error = %e.message, "webhook registration failed");
            Err(DashError::bad_request(
                "The endpoint could not be added; try again.",
            ))
        }
    }
}

pub async fn rotate(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    SignedForm { session: s, .. }: SignedForm,
) -> DashResult {
    owned(&state, &s, &id).await?;
    let e = state
        .store
        .rotate_webhook_secret(&s.account.id, KeyMode::Live, &id, new_secret())
        .await?
        .ok_or_else(DashError::not_found)?;
    page(
        &state,
        &s,
        StatusCode::OK,
        secret_box(&e, "Secret rotated"),
        None,
    )
    .await
}

pub async fn enable(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    SignedForm { session: s, .. }: SignedForm,
) -> DashResult {
    owned(&state, &s, &id).await?;
    state
        .store
        .set_webhook_enabled(&s.account.id, KeyMode::Live, &id, true)
        .await?;
    state.webhooks_ready.notify_waiters();
    let top = html! { p.notice.ok role="status" data-testid="enabled-notice" { "The endpoint is enabled again; its waiting events are being sent." } };
    page(&state, &s, StatusCode::OK, top, None).await
}

pub async fn delete(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    SignedForm { session: s, .. }: SignedForm,
) -> DashResult {
    let e = owned(&state, &s, &id).await?;
    state
        .store
        .delete_webhook(&s.account.id, KeyMode::Live, &id)
        .await?;
    let top = html! { p.notice.ok role="status" data-testid="deleted-notice" { "Deleted the endpoint " code { (e.url) } "." } };
    page(&state, &s, StatusCode::OK, top, None).await
}

/// An endpoint's delivery log, newest first.
pub async fn deliveries(
    State(state): State<SharedState>,
    s: Session,
    Path(id): Path<String>,
) -> DashResult {
    let e = owned(&state, &s, &id).await?;
    let rows = state
        .store
        .webhook_deliveries(&s.account.id, KeyMode::Live, &id, 100)
        .await?;
    let body = html! {
        p { "Endpoint " code { (e.url) } ". " a href="/dashboard/webhooks" { "All endpoints" } }
        @if rows.is_empty() {
            p id="no-deliveries" { "No events sent yet." }
        } @else {
            div.table-wrap {
                table id="deliveries-table" data-testid="deliveries-table" {
                    caption.visually-hidden { "Deliveries, newest first" }
                    thead { tr {
                        th scope="col" { "Event" } th scope="col" { "Type" } th scope="col" { "Status" }
                        th scope="col" { "Attempts" } th scope="col" { "Last answer" } th scope="col" { "Latency" }
                        th scope="col" { "Created" } th scope="col" { "Next attempt" }
                    } }
                    tbody {
                        @for d in &rows {
                            tr data-testid="delivery-row" {
                                td { code { (d.event_id) } }
                                td { (d.event_type) }
                                td data-testid="delivery-status" { (d.status.as_str()) }
                                td { (d.attempts) }
                                td {
                                    @if let Some(st) = d.last_status { "HTTP " (st) }
                                    @if let Some(err) = &d.last_error { " " (err) }
                                }
                                td { @if let Some(ms) = d.last_latency_ms { (ms) " ms" } }
                                td { (fmt_time(d.created_at)) }
                                td {
                                    @if d.status == dupify_store::DeliveryStatus::Pending {
                                        @if let Some(t) = d.next_attempt_at { (fmt_time(t)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout("Webhook deliveries", Some(&s), Nav::Webhooks, body),
    ))
}
