//! The API keys page: create, list, revoke (after a confirmation), regenerate. Keys are
//! made and replaced through the same store functions as `dupify keys`, so they work
//! against the API at once, and a revoked key is refused on its next request.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{Duration, Utc};
use dupify_core::{ApiKeySecret, KeyMode, Scope, Scopes};
use dupify_store::{KeyRecord, StoreError};
use maud::{html, Markup, PreEscaped};

use super::page::{csrf_field, fmt_time, html_response, layout, DashError, DashResult, Nav};
use super::session::{Session, SignedForm};
use crate::state::SharedState;

const MAX_NAME_CHARS: usize = 100;
const MAX_EXPIRY_DAYS: i64 = 3650;

/// The key `id` if it belongs to the session's account; any other is "not found".
async fn owned_key(state: &SharedState, s: &Session, id: &str) -> DashResult<KeyRecord> {
    match state.store.get_key(id).await {
        Ok(k) if k.account_id == s.account.id => Ok(k),
        Ok(_) | Err(StoreError::NotFound) => Err(DashError::not_found()),
        Err(e) => Err(e.into()),
    }
}

fn scopes_text(s: &Scopes) -> String {
    if s.is_unrestricted() {
        "all".into()
    } else {
        s.iter().map(Scope::as_str).collect::<Vec<_>>().join(", ")
    }
}

const COPY_JS: &str = r#"
document.querySelectorAll('[data-copy]').forEach(function(b){
  b.addEventListener('click',function(){
    var t=document.getElementById(b.getAttribute('data-copy')).textContent;
    var done=function(){var s=document.getElementById('copy-status');if(s){s.textContent='Copied to the clipboard.';}};
    if(navigator.clipboard){navigator.clipboard.writeText(t).then(done);}else{
      var r=document.createRange();r.selectNodeContents(document.getElementById(b.getAttribute('data-copy')));
      var sel=window.getSelection();sel.removeAllRanges();sel.addRange(r);document.execCommand('copy');done();}
  });
});
"#;

/// The once-only display of a new secret.
fn secret_box(secret: &ApiKeySecret, rec: &KeyRecord, what: &str) -> Markup {
    html! {
        section aria-labelledby="secret-title" id="secret-box" data-testid="secret-box" {
            h2 id="secret-title" { (what) }
            p.notice.ok role="status" {
                "Copy the key for " strong { (rec.name) } " now: it is shown only this once. Dupify keeps only its hash."
            }
            div.secret {
                code id="new-secret" data-testid="new-secret" { (secret.expose()) }
                button type="button" id="copy-secret" data-testid="copy-secret" data-copy="new-secret" { "Copy" }
                span id="copy-status" role="status" aria-live="polite" {}
            }
        }
        script { (PreEscaped(COPY_JS)) }
    }
}

fn create_form(s: &Session, error: Option<&str>) -> Markup {
    html! {
        section aria-labelledby="create-title" {
            h2 id="create-title" { "Create a key" }
            @if let Some(e) = error {
                p.notice.error role="alert" id="form-error" data-testid="form-error" { (e) }
            }
            form method="post" action="/dashboard/keys" id="create-key-form" data-testid="create-key-form" {
                (csrf_field(&s.csrf))
                input type="hidden" name="nonce" value=(form_nonce());
                label for="key-name" { "Name" }
                input type="text" id="key-name" name="name" required maxlength=(MAX_NAME_CHARS) data-testid="key-name";
                fieldset {
                    legend { "Scopes (none checked: every endpoint)" }
                    @for sc in Scope::ALL {
                        label for=(format!("scope-{}", sc.as_str())) {
                            input type="checkbox" name="scope" value=(sc.as_str())
                                id=(format!("scope-{}", sc.as_str())) data-testid=(format!("scope-{}", sc.as_str()));
                            (sc.as_str())
                        }
                    }
                }
                fieldset {
                    legend { "Mode" }
                    label for="mode-live" {
                        input type="radio" name="mode" value="live" id="mode-live" checked data-testid="mode-live";
                        "Live (counts against the monthly quota)"
                    }
                    label for="mode-test" {
                        input type="radio" name="mode" value="test" id="mode-test" data-testid="mode-test";
                        "Test (never uses quota, own catalog)"
                    }
                }
                label for="expires-days" { "Expires after (days, optional)" }
                input type="number" id="expires-days" name="expires_days" min="1" max=(MAX_EXPIRY_DAYS)
                    inputmode="numeric" data-testid="expires-days";
                div { button type="submit" id="create-key" data-testid="create-key" { "Create key" } }
            }
        }
    }
}

fn key_table(keys: &[KeyRecord]) -> Markup {
    let now = Utc::now();
    html! {
        section aria-labelledby="keys-title" {
            h2 id="keys-title" { "Your keys" }
            @if keys.is_empty() {
                p id="no-keys" { "No keys yet." }
            } @else {
                div.table-wrap {
                    table id="keys-table" data-testid="keys-table" {
                        caption.visually-hidden { "API keys of this account" }
                        thead { tr {
                            th scope="col" { "Prefix" } th scope="col" { "Name" } th scope="col" { "Scopes" }
                            th scope="col" { "Mode" } th scope="col" { "Created" } th scope="col" { "Last used" }
                            th scope="col" { "Expires" } th scope="col" { "State" } th scope="col" { "Actions" }
                        } }
                        tbody {
                            @for k in keys {
                                @let state = k.state(now);
                                tr id=(format!("key-{}", k.id)) data-testid="key-row" data-key-id=(k.id) {
                                    td { code { (k.prefix) "…" } }
                                    td { (k.name) }
                                    td { (scopes_text(&k.scopes)) }
                                    td { (k.mode.as_str()) }
                                    td { (fmt_time(k.created_at)) }
                                    td { (k.last_used_at.map(fmt_time).unwrap_or_else(|| "never".into())) }
                                    td { (k.expires_at.map(fmt_time).unwrap_or_else(|| "never".into())) }
                                    td class=(format!("state-{state}")) data-testid="key-state" { (state) }
                                    td {
                                        @if k.revoked_at.is_none() {
                                            a href=(format!("/dashboard/keys/{}/regenerate", k.id))
                                                data-testid="regenerate-link" aria-label=(format!("Regenerate key {}", k.name)) { "Regenerate" }
                                            " · "
                                            a href=(format!("/dashboard/keys/{}/revoke", k.id))
                                                data-testid="revoke-link" aria-label=(format!("Revoke key {}", k.name)) { "Revoke" }
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

async fn keys_page(
    state: &SharedState,
    s: &Session,
    status: StatusCode,
    top: Markup,
    error: Option<&str>,
) -> DashResult {
    let keys = state.store.list_keys(&s.account.id).await?;
    Ok(html_response(
        status,
        layout(
            "API keys",
            Some(s),
            Nav::Keys,
            html! { (top) (create_form(s, error)) (key_table(&keys)) },
        ),
    ))
}

pub async fn list(State(state): State<SharedState>, s: Session) -> DashResult {
    keys_page(&state, &s, StatusCode::OK, html! {}, None).await
}

pub async fn create(
    State(state): State<SharedState>,
    SignedForm { session: s, form }: SignedForm,
) -> DashResult {
    let name = form.get("name").unwrap_or_default().trim().to_owned();
    let invalid = |msg: &str| {
        let msg = msg.to_owned();
        let (state, s) = (&state, &s);
        async move {
            keys_page(
                state,
                s,
                StatusCode::UNPROCESSABLE_ENTITY,
                html! {},
                Some(&msg),
            )
            .await
        }
    };
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return invalid("Give the key a name of 1 to 100 characters.").await;
    }
    let mut scopes = Vec::new();
    for v in form.get_all("scope") {
        match Scope::parse(v) {
            Some(sc) => scopes.push(sc),
            None => return invalid("Unknown scope.").await,
        }
    }
    let mode = match form.get("mode").unwrap_or("live") {
        "live" => KeyMode::Live,
        "test" => KeyMode::Test,
        _ => return invalid("The mode must be live or test.").await,
    };
    let expires_at = match form
        .get("expires_days")
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(d) if (1..=MAX_EXPIRY_DAYS).contains(&d) => Some(Utc::now() + Duration::days(d)),
            _ => return invalid("The expiry must be a whole number of days from 1 to 3650.").await,
        },
    };
    // A reloaded result page re-sends the form: each rendered form creates one key at
    // most, so a reload cannot mint (and show) a second secret behind the user's back.
    let fresh = form
        .get("nonce")
        .filter(|n| n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        // Hex is case-blind: one token, one key, however it is spelt.
        .map(|n| {
            used_nonces()
                .entry(n.to_ascii_lowercase())
                .or_insert(())
                .is_fresh()
        });
    match fresh {
        None => return invalid("The form is incomplete; reload the page and try again.").await,
        Some(false) => {
            return keys_page(
                &state,
                &s,
                StatusCode::CONFLICT,
                html! {},
                Some("This form was already sent and its key created; its secret was shown once. Revoke it below if it is lost, and create a new one."),
            )
            .await
        }
        Some(true) => {}
    }
    let (secret, rec) = dupify_store::issue_key(
        state.store.as_ref(),
        &s.account.id,
        &name,
        mode,
        Scopes::new(scopes),
        expires_at,
    )
    .await?;
    keys_page(
        &state,
        &s,
        StatusCode::OK,
        secret_box(&secret, &rec, "Key created"),
        None,
    )
    .await
}

/// A random token per rendered create form.
pub(super) fn form_nonce() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Create-form tokens already used (process-local; a day is longer than any reload).
pub(super) fn used_nonces() -> &'static moka::sync::Cache<String, ()> {
    static USED: std::sync::OnceLock<moka::sync::Cache<String, ()>> = std::sync::OnceLock::new();
    USED.get_or_init(|| {
        moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(std::time::Duration::from_secs(86_400))
            .build()
    })
}

fn confirm_page(s: &Session, k: &KeyRecord, action: &str) -> Markup {
    let (title, text, button, class) = if action == "revoke" {
        (
            "Revoke key",
            "Requests with this key are refused from now on. This cannot be undone.",
            "Revoke key",
            "danger",
        )
    } else {
        (
            "Regenerate key",
            "A new secret with the same name, scopes, mode and expiry replaces this key; the current secret stops working at once.",
            "Regenerate key",
            "",
        )
    };
    layout(
        title,
        Some(s),
        Nav::Keys,
        html! {
            section {
                p { "Key " strong { (k.name) } " (" code { (k.prefix) "…" } ", " (k.mode.as_str()) ")." }
                p { (text) }
                form method="post" action=(format!("/dashboard/keys/{}/{action}", k.id))
                    id=(format!("{action}-form")) data-testid=(format!("{action}-form")) {
                    (csrf_field(&s.csrf))
                    button class=(class) type="submit" id=(format!("confirm-{action}")) data-testid=(format!("confirm-{action}")) { (button) }
                    " "
                    a href="/dashboard/keys" { "Cancel" }
                }
            }
        },
    )
}

pub async fn revoke_confirm(
    State(state): State<SharedState>,
    s: Session,
    Path(id): Path<String>,
) -> DashResult {
    let k = owned_key(&state, &s, &id).await?;
    Ok(html_response(
        StatusCode::OK,
        confirm_page(&s, &k, "revoke"),
    ))
}

pub async fn regenerate_confirm(
    State(state): State<SharedState>,
    s: Session,
    Path(id): Path<String>,
) -> DashResult {
    let k = owned_key(&state, &s, &id).await?;
    if k.revoked_at.is_some() {
        return Err(DashError::bad_request(
            "This key is revoked; create a new key instead.",
        ));
    }
    Ok(html_response(
        StatusCode::OK,
        confirm_page(&s, &k, "regenerate"),
    ))
}

pub async fn revoke(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    SignedForm { session: s, .. }: SignedForm,
) -> DashResult {
    let k = owned_key(&state, &s, &id).await?;
    let k = state.store.revoke_key(&k.id, Utc::now()).await?;
    let top = html! {
        p.notice.ok role="status" id="revoked-notice" data-testid="revoked-notice" {
            "Key " strong { (k.name) } " (" code { (k.prefix) "…" } ") is revoked."
        }
    };
    keys_page(&state, &s, StatusCode::OK, top, None).await
}

pub async fn regenerate(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    SignedForm { session: s, .. }: SignedForm,
) -> DashResult {
    let old = owned_key(&state, &s, &id).await?;
    match dupify_store::reissue_key(state.store.as_ref(), &old, Utc::now()).await {
        Ok((secret, rec)) => {
            keys_page(
                &state,
                &s,
                StatusCode::OK,
                secret_box(&secret, &rec, "Key regenerated"),
                None,
            )
            .await
        }
        Err(StoreError::Conflict(_)) => Err(DashError::bad_request(
            "This key is revoked; create a new key instead.",
        )),
        Err(e) => Err(e.into()),
    }
}
