//! The web dashboard under `/dashboard`: server-rendered HTML (maud), cookie sessions,
//! CSRF tokens on every form. It never goes through the API-key layer; its failures are
//! HTML pages, not the JSON envelope.
//!
//! - `session`: sign up, sign in (argon2id, throttling), sign out, the session cookie
//! - `keys`: create, list, revoke and regenerate API keys
//! - `usage`: this period's usage with a server-rendered SVG chart
//! - `catalog`: product counts, a paged product list, find similar
//! - `webhooks`: add, rotate, enable and delete webhook endpoints; their delivery log
//! - `playground`: upload a photo, see colors, attributes, silhouette and cutout

mod catalog;
mod keys;
mod page;
mod playground;
mod session;
mod usage;
mod webhooks;

use axum::http::{header, HeaderValue};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::state::SharedState;

pub use session::Session;

/// The dashboard's routes, to be nested under `/dashboard`.
pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/", get(home))
        .route("/signup", get(session::signup_page).post(session::signup))
        .route("/signin", get(session::signin_page).post(session::signin))
        .route("/signout", post(session::signout))
        .route("/keys", get(keys::list).post(keys::create))
        .route(
            "/keys/{id}/revoke",
            get(keys::revoke_confirm).post(keys::revoke),
        )
        .route(
            "/keys/{id}/regenerate",
            get(keys::regenerate_confirm).post(keys::regenerate),
        )
        .route("/usage", get(usage::page))
        .route("/catalog", get(catalog::list))
        .route("/catalog/{id}/similar", get(catalog::similar))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/webhooks/{id}", get(webhooks::deliveries))
        .route("/webhooks/{id}/rotate", post(webhooks::rotate))
        .route("/webhooks/{id}/enable", post(webhooks::enable))
        .route("/webhooks/{id}/delete", post(webhooks::delete))
        .route(
            "/playground",
            get(playground::page).post(playground::analyse),
        )
        .layer(map_response(security_headers))
}

async fn home(
    axum::extract::State(state): axum::extract::State<SharedState>,
    headers: axum::http::HeaderMap,
) -> Response {
    match session::current(&state, &headers).await {
        Ok(Some(_)) => Redirect::to("/dashboard/keys").into_response(),
        Ok(None) => Redirect::to("/dashboard/signin").into_response(),
        Err(e) => e.into_response(),
    }
}

/// Pages hold secrets and per-session tokens: never cached, never framed.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; img-src * data:; style-src 'unsafe-inline'; \
             script-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    res
}
