//! Sign up, sign in, sign out and the session cookie.
//!
//! The session token is 256 random bits, sent only in the `dupify_session` cookie;
//! the store keeps its SHA-256. Each session carries its own CSRF token, put in a
//! hidden field of every form and checked on every POST. The sign-in and sign-up forms
//! (no session yet) use a double-submit cookie instead.

use std::net::SocketAddr;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use chrono::{DateTime, Duration, Utc};
use dupify_core::Tier;
use dupify_store::{
    Account, DashboardSession, DashboardUser, LoginAttempt, NewDashboardUser, StoreError,
};
use maud::{html, Markup};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::page::{csrf_field, html_response, layout, DashError, DashResult, FormData, Nav};
use crate::state::SharedState;

pub const SESSION_COOKIE: &str = "dupify_session";
const PRE_CSRF_COOKIE: &str = "dupify_csrf";
/// A session ends after this long without a request...
const IDLE: Duration = Duration::days(7);
/// ...and in any case this long after sign-in.
const ABSOLUTE: Duration = Duration::days(30);
/// Failed sign-ins counted over this window.
const FAILURE_WINDOW: Duration = Duration::minutes(15);
/// Failures per (email, address) pair: guessing one account from one place stops here,
/// while its owner, signing in from elsewhere, is not locked out by it.
const MAX_FAILURES_PER_EMAIL_AND_IP: u64 = 5;
/// Failures per email from all addresses together: a guess spread over many addresses.
const MAX_FAILURES_PER_EMAIL: u64 = 50;
const MAX_FAILURES_PER_IP: u64 = 20;
/// Sign-ups from one address per [`SIGNUP_WINDOW`] (a shop's team signs up a few
/// people; a script signing up hundreds of free accounts is refused).
const MAX_SIGNUPS_PER_IP: u64 = 10;
const SIGNUP_WINDOW: Duration = Duration::hours(1);
pub const MIN_PASSWORD_CHARS: usize = 10;
const MAX_PASSWORD_BYTES: usize = 1024;

/// The signed-in user of one request.
pub struct Session {
    pub user: DashboardUser,
    pub account: Account,
    pub csrf: String,
}

impl Session {
    /// Checks the form's CSRF token against this session's.
    pub fn check_csrf(&self, form: &FormData) -> Result<(), DashError> {
        match form.get("csrf") {
            Some(t) if bool::from(t.as_bytes().ct_eq(self.csrf.as_bytes())) => Ok(()),
            _ => Err(DashError::csrf()),
        }
    }
}

/// A signed-in request: the session, or a redirect to sign in.
impl FromRequestParts<SharedState> for Session {
    type Rejection = DashError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> DashResult<Self> {
        require(state, &parts.headers).await
    }
}

/// A signed-in form post: the session and the urlencoded body, whose CSRF token has
/// been checked against the session's.
pub struct SignedForm {
    pub session: Session,
    pub form: FormData,
}

impl FromRequest<SharedState> for SignedForm {
    type Rejection = DashError;

    async fn from_request(req: Request, state: &SharedState) -> DashResult<Self> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|rej| DashError::Page {
                status: rej.status(),
                title: "The form could not be read",
                message: rej.body_text(),
            })?;
        let form = FormData::parse(&bytes);
        session.check_csrf(&form)?;
        Ok(SignedForm { session, form })
    }
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn sha_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
}

fn is_tls(state: &SharedState, headers: &HeaderMap) -> bool {
    state.config.dashboard_secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

fn set_cookie(
    state: &SharedState,
    headers: &HeaderMap,
    name: &str,
    value: &str,
    max_age: i64,
    same_site: &str,
) -> Option<HeaderValue> {
    let secure = if is_tls(state, headers) {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/dashboard; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}"
    ))
    .ok()
}

/// The session of this request, if its cookie names a live one (its idle expiry slides).
pub async fn current(state: &SharedState, headers: &HeaderMap) -> DashResult<Option<Session>> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let hash = sha_hex(&token);
    let now = Utc::now();
    let Some((s, user)) = state.store.find_session(&hash, now).await? else {
        return Ok(None);
    };
    if now - s.last_seen_at > Duration::seconds(60) {
        let expires = (now + IDLE).min(s.created_at + ABSOLUTE);
        state.store.touch_session(&hash, now, expires).await?;
    }
    let account = state.store.get_account(&user.account_id).await?;
    Ok(Some(Session {
        user,
        account,
        csrf: s.csrf_token,
    }))
}

/// The session, or a redirect to the sign-in page.
async fn require(state: &SharedState, headers: &HeaderMap) -> DashResult<Session> {
    current(state, headers)
        .await?
        .ok_or(DashError::Redirect("/dashboard/signin"))
}

/// Starts a session for `user` and redirects to the keys page.
async fn start_session(
    state: &SharedState,
    headers: &HeaderMap,
    user: &DashboardUser,
) -> DashResult {
    let token = random_hex();
    let now = Utc::now();
    state
        .store
        .create_session(DashboardSession {
            token_hash: sha_hex(&token),
            user_id: user.id.clone(),
            csrf_token: random_hex(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + IDLE,
        })
        .await?;
    let mut res = Redirect::to("/dashboard/keys").into_response();
    if let Some(v) = set_cookie(
        state,
        headers,
        SESSION_COOKIE,
        &token,
        ABSOLUTE.num_seconds(),
        "Lax",
    ) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    // The pre-session CSRF cookie has done its job.
    if let Some(v) = set_cookie(state, headers, PRE_CSRF_COOKIE, "", 0, "Strict") {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

// ------------------------------------------------------------------ passwords

fn hash_password(password: &str) -> Result<String, DashError> {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|_| DashError::internal())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| DashError::internal())
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash nobody's password matches, verified for unknown emails so that they take
/// about as long as known ones.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password(&random_hex()).unwrap_or_default())
}

/// Runs a password hash or check on the blocking pool, at most one per core at a time:
/// each argon2id run takes ~19 MiB, so a burst of sign-ups or sign-ins waits its turn
/// instead of growing the process by a gigabyte.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> DashResult<T> {
    static HASHING: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    let slots = HASHING.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    });
    let _slot = slots.acquire().await.map_err(|_| DashError::internal())?;
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "password hashing task failed");
        DashError::internal()
    })
}

fn normalise_email(s: &str) -> String {
    s.trim().to_lowercase()
}

fn valid_email(s: &str) -> bool {
    s.len() <= 254
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && s.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'))
}

// ------------------------------------------------------------------ forms

/// The pre-session CSRF token: the cookie's, or a new one to set.
fn pre_csrf(headers: &HeaderMap) -> (String, bool) {
    match cookie(headers, PRE_CSRF_COOKIE) {
        Some(t) if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) => (t, false),
        _ => (random_hex(), true),
    }
}

fn check_pre_csrf(headers: &HeaderMap, form: &FormData) -> Result<(), DashError> {
    match (cookie(headers, PRE_CSRF_COOKIE), form.get("csrf")) {
        (Some(c), Some(f)) if !c.is_empty() && bool::from(c.as_bytes().ct_eq(f.as_bytes())) => {
            Ok(())
        }
        _ => Err(DashError::csrf()),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum AuthForm {
    SignIn,
    SignUp,
}

fn auth_page(
    state: &SharedState,
    headers: &HeaderMap,
    which: AuthForm,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
) -> Response {
    let (token, fresh) = pre_csrf(headers);
    let signup_open = state.config.dashboard_signup;
    let (title, action, button, other) = match which {
        AuthForm::SignIn => (
            "Sign in",
            "/dashboard/signin",
            "Sign in",
            signup_open.then_some(("/dashboard/signup", "Create an account")),
        ),
        AuthForm::SignUp => (
            "Create an account",
            "/dashboard/signup",
            "Create account",
            Some(("/dashboard/signin", "Already have an account? Sign in")),
        ),
    };
    let body: Markup = html! {
        div.auth {
            @if let Some(e) = error {
                p.notice.error role="alert" id="form-error" data-testid="form-error" { (e) }
            }
            section {
                form method="post" action=(action) id="auth-form" data-testid="auth-form" {
                    (csrf_field(&token))
                    label for="email" { "Email" }
                    input type="email" id="email" name="email" autocomplete="email" required
                        value=(email) data-testid="email";
                    label for="password" { "Password" }
                    input type="password" id="password" name="password" required
                        minlength=[(which == AuthForm::SignUp).then_some(MIN_PASSWORD_CHARS)]
                        autocomplete=(if which == AuthForm::SignUp { "new-password" } else { "current-password" })
                        aria-describedby=[(which == AuthForm::SignUp).then_some("password-help")]
                        data-testid="password";
                    @if which == AuthForm::SignUp {
                        p id="password-help" { "At least " (MIN_PASSWORD_CHARS) " characters. The account starts on the free tier." }
                    }
                    button type="submit" id="submit" data-testid="submit" { (button) }
                }
            }
            @if let Some((href, label)) = other {
                p { a href=(href) { (label) } }
            }
        }
    };
    let mut res = html_response(status, layout(title, None, Nav::None, body));
    if fresh {
        if let Some(v) = set_cookie(state, headers, PRE_CSRF_COOKIE, &token, 3600, "Strict") {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

fn signup_closed() -> DashError {
    DashError::Page {
        status: StatusCode::FORBIDDEN,
        title: "Sign-up is closed",
        message: "This server does not accept new sign-ups. Ask its operator for an account."
            .into(),
    }
}

pub async fn signup_page(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    if !state.config.dashboard_signup {
        return signup_closed().into_response();
    }
    auth_page(&state, &headers, AuthForm::SignUp, StatusCode::OK, "", None)
}

pub async fn signin_page(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    auth_page(&state, &headers, AuthForm::SignIn, StatusCode::OK, "", None)
}

pub async fn signup(
    State(state): State<SharedState>,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Bytes,
) -> DashResult {
    if !state.config.dashboard_signup {
        return Err(signup_closed());
    }
    let form = FormData::parse(&body);
    check_pre_csrf(&headers, &form)?;
    let email = normalise_email(form.get("email").unwrap_or_default());
    let password = form.get("password").unwrap_or_default().to_owned();
    let refuse = |msg: &str| {
        Ok(auth_page(
            &state,
            &headers,
            AuthForm::SignUp,
            StatusCode::UNPROCESSABLE_ENTITY,
            &email,
            Some(msg),
        ))
    };
    if !valid_email(&email) {
        return refuse("Enter a valid email address.");
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return refuse("The password must be at least 10 characters long.");
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return refuse("The password is too long (at most 1024 bytes).");
    }
    // Counted (atomically with the check) before the slow hash, like sign-in attempts.
    if let Some(Extension(ConnectInfo(addr))) = peer {
        let ip = state.config.client_ip(addr.ip(), &headers);
        let now = Utc::now();
        let attempt = state
            .store
            .begin_login_attempt(
                vec![(format!("signup:{ip}"), MAX_SIGNUPS_PER_IP)],
                now,
                now - SIGNUP_WINDOW,
                now - SIGNUP_WINDOW,
            )
            .await?;
        if let LoginAttempt::Refused { latest } = attempt {
            let minutes = minutes_left(latest, now, SIGNUP_WINDOW);
            let msg =
                format!("Too many sign-ups from this address. Try again in {minutes} minute(s).");
            return Ok(too_many(
                &state,
                &headers,
                AuthForm::SignUp,
                &email,
                &msg,
                minutes,
            ));
        }
    }
    let hash = blocking(move || hash_password(&password)).await??;
    let created = state
        .store
        .create_dashboard_user(NewDashboardUser {
            email: email.clone(),
            password_hash: hash,
            tier: Tier::Free,
        })
        .await;
    match created {
        Ok((user, _)) => start_session(&state, &headers, &user).await,
        Err(StoreError::Conflict(_)) => {
            refuse("An account with this email already exists. Sign in instead.")
        }
        Err(e) => Err(e.into()),
    }
}

/// Whole minutes until the latest counted attempt leaves its `window` (at least 1).
fn minutes_left(latest: Option<DateTime<Utc>>, now: DateTime<Utc>, window: Duration) -> i64 {
    latest
        .map_or(window.num_minutes(), |l| {
            ((l + window - now).num_seconds() + 59) / 60
        })
        .max(1)
}

/// The form again with 429, `message` and a `Retry-After` of `minutes`.
fn too_many(
    state: &SharedState,
    headers: &HeaderMap,
    form: AuthForm,
    email: &str,
    message: &str,
    minutes: i64,
) -> Response {
    let mut res = auth_page(
        state,
        headers,
        form,
        StatusCode::TOO_MANY_REQUESTS,
        email,
        Some(message),
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(minutes * 60));
    res
}

pub async fn signin(
    State(state): State<SharedState>,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Bytes,
) -> DashResult {
    let form = FormData::parse(&body);
    check_pre_csrf(&headers, &form)?;
    let email = normalise_email(form.get("email").unwrap_or_default());
    let password = form.get("password").unwrap_or_default().to_owned();
    let now = Utc::now();
    let since = now - FAILURE_WINDOW;
    let email_subject = format!("email:{email}");
    let ip = peer.map(|Extension(ConnectInfo(a))| state.config.client_ip(a.ip(), &headers));
    let ip_subject = ip.map(|ip| format!("ip:{ip}"));
    let pair_subject = format!(
        "email+ip:{email}|{}",
        ip.map(|i| i.to_string()).unwrap_or_default()
    );

    // The attempt counts as a failure before the (slow) password check, in one atomic
    // step with the limit check: however many guesses arrive at once, at most the limit
    // get to the check. A right password takes its attempt back.
    let mut subjects = vec![
        (pair_subject.clone(), MAX_FAILURES_PER_EMAIL_AND_IP),
        (email_subject.clone(), MAX_FAILURES_PER_EMAIL),
    ];
    subjects.extend(ip_subject.iter().map(|s| (s.clone(), MAX_FAILURES_PER_IP)));
    let attempt = state
        .store
        .begin_login_attempt(subjects, now, since, now - FAILURE_WINDOW * 4)
        .await?;
    if let LoginAttempt::Refused { latest } = attempt {
        let minutes = minutes_left(latest, now, FAILURE_WINDOW);
        let msg = format!("Too many failed sign-in attempts. Try again in {minutes} minute(s).");
        return Ok(too_many(
            &state,
            &headers,
            AuthForm::SignIn,
            &email,
            &msg,
            minutes,
        ));
    }

    let user = if password.len() <= MAX_PASSWORD_BYTES {
        state.store.find_dashboard_user(&email).await?
    } else {
        None
    };
    let phc = user
        .as_ref()
        .map_or_else(|| decoy_hash().to_owned(), |u| u.password_hash.clone());
    let ok = blocking(move || verify_password(&password, &phc)).await? && user.is_some();
    match user {
        Some(user) if ok => {
            // The owner got in: their email's failures are forgotten; the address keeps
            // its earlier failures but not this attempt.
            state.store.clear_login_failures(&email_subject).await?;
            state.store.clear_login_failures(&pair_subject).await?;
            if let Some(ip) = ip_subject {
                state.store.forgive_login_attempt(vec![ip], now).await?;
            }
            start_session(&state, &headers, &user).await
        }
        _ => {
            // Already counted by begin_login_attempt.
            Ok(auth_page(
                &state,
                &headers,
                AuthForm::SignIn,
                StatusCode::UNAUTHORIZED,
                &email,
                Some("The email or password is not correct."),
            ))
        }
    }
}

pub async fn signout(
    State(state): State<SharedState>,
    headers: HeaderMap,
    _: SignedForm,
) -> DashResult {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        state.store.delete_session(&sha_hex(&token)).await?;
    }
    let mut res = Redirect::to("/dashboard/signin").into_response();
    if let Some(v) = set_cookie(&state, &headers, SESSION_COOKIE, "", 0, "Lax") {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}
