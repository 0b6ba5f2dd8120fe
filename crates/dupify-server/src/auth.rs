//! Authentication, scope checks and the per-request meter.
//!
//! The auth middleware resolves the key to a [`Caller`] and, after the handler has run,
//! settles metering and sets the five rate/quota headers on whatever the response is
//! (errors included).
//!
//! Metering survives a request being dropped half-way (the client disconnected or timed
//! out): quota reservations and settlements run as detached tasks that record their
//! outcome in the meter whatever happens to the request, and a request dropped before
//! its answer settles with nothing used ([`Unanswered`]). So `used` is always the units
//! of results actually returned (docs/API.md, "Quota and rate limits").

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use dupify_core::{
    ApiError, ApiKeySecret, BillingPeriod, ErrorCode, KeyMode, Limits, Scope, Scopes,
};
use dupify_store::{Account, KeyRecord, Reservation, Settlement, Store};

use crate::error::AppError;
use crate::ratelimit::{RateDecision, RateLimiter};
use crate::state::SharedState;

/// The authenticated caller of one request.
#[derive(Clone)]
pub struct Caller {
    pub key: Arc<KeyRecord>,
    pub account: Arc<Account>,
    pub limits: Limits,
    pub period: BillingPeriod,
    pub meter: Arc<Meter>,
}

/// Marker put on responses so the access log can name the account.
#[derive(Clone)]
pub struct AccountId(pub String);

impl Caller {
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.key.scopes.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::InsufficientScope,
                format!("This API key lacks the '{scope}' scope required by this endpoint."),
            )
            .detail("required_scope", scope.as_str()))
        }
    }

    pub fn mode(&self) -> KeyMode {
        self.key.mode
    }
}

#[derive(Default)]
struct MeterState {
    rate: Option<RateDecision>,
    cache_only: bool,
    reserved: u64,
    used: u64,
    period_used: Option<u64>,
}

/// Tracks one request's rate-limit unit and quota units from admission to settlement.
pub struct Meter {
    store: Arc<dyn Store>,
    limiter: Arc<dyn RateLimiter>,
    account_id: String,
    key_id: String,
    mode: KeyMode,
    limits: Limits,
    period_key: String,
    period_end: DateTime<Utc>,
    state: Mutex<MeterState>,
    /// Held by each store operation of this meter (reservation, settlement), so a
    /// settlement sees every reservation that was started before it.
    ops: Arc<tokio::sync::Mutex<()>>,
}

impl Meter {
    fn lock(&self) -> std::sync::MutexGuard<'_, MeterState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes this request's rate-limit unit (once). Call before any real work.
    pub async fn admit(&self) -> Result<(), ApiError> {
        let taken = self.lock().rate;
        if let Some(d) = taken {
            return if d.allowed {
                Ok(())
            } else {
                Err(ApiError::rate_limited(d.retry_after_secs))
            };
        }
        let d = self
            .limiter
            .acquire(&self.account_id, self.limits.rate_per_minute)
            .await;
        self.lock().rate = Some(d);
        if d.allowed {
            Ok(())
        } else {
            Err(ApiError::rate_limited(d.retry_after_secs))
        }
    }

    /// The whole answer came from the cache: no rate or quota units are taken (a rate
    /// unit taken before downloading is given back).
    pub async fn mark_cache_only(&self) {
        let taken = {
            let mut s = self.lock();
            s.cache_only = true;
            s.rate.take()
        };
        if taken.is_some_and(|d| d.allowed) {
            self.limiter
                .release(&self.account_id, self.limits.rate_per_minute)
                .await;
        }
    }

    /// Reserves `n` quota units before doing billable work; all or nothing.
    ///
    /// The store call runs detached and records a granted reservation in the meter
    /// itself, so units reserved for a request dropped meanwhile are still known to its
    /// settlement (which waits for it) and given back.
    pub async fn reserve(self: &Arc<Self>, n: u64) -> Result<(), ApiError> {
        if n == 0 || self.mode == KeyMode::Test {
            return Ok(());
        }
        let ops = self.ops.clone().lock_owned().await;
        let me = self.clone();
        let task = tokio::spawn(async move {
            let _ops = ops;
            let r = me
                .store
                .reserve_quota(&me.account_id, &me.period_key, n, me.limits.monthly_calls)
                .await;
            match &r {
                Ok(Reservation::Granted { used }) => {
                    let mut s = me.lock();
                    s.reserved += n;
                    s.period_used = Some(*used);
                }
                Ok(Reservation::Exceeded { used }) => me.lock().period_used = Some(*used),
                Err(_) => {}
            }
            r
        });
        let reserved = task.await.map_err(|e| {
            tracing::error!(error = %e, "quota reservation task failed");
            ApiError::internal()
        })?;
        match reserved.map_err(ApiError::from)? {
            Reservation::Granted { .. } => Ok(()),
            Reservation::Exceeded { used } => Err(self.quota_error(used)),
        }
    }

    /// Gives back reserved units not returned as results and records the returned ones
    /// for the key's daily statistics. Runs detached (a dropped request still settles)
    /// and at most once per unit: what it settles is taken out of the meter.
    pub async fn settle(self: &Arc<Self>) {
        let me = self.clone();
        let task = tokio::spawn(async move {
            let _ops = me.ops.clone().lock_owned().await;
            let (reserved, used) = {
                let mut s = me.lock();
                (std::mem::take(&mut s.reserved), std::mem::take(&mut s.used))
            };
            if reserved == 0 && used == 0 {
                return;
            }
            let settled = me
                .store
                .settle_usage(Settlement {
                    account_id: me.account_id.clone(),
                    key_id: me.key_id.clone(),
                    mode: me.mode,
                    period: me.period_key.clone(),
                    reserved,
                    used,
                    day: Utc::now().date_naive(),
                })
                .await;
            match settled {
                Ok(u) if me.mode == KeyMode::Live => me.lock().period_used = Some(u),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, account_id = %me.account_id, reserved, used, "usage settlement failed")
                }
            }
        });
        if let Err(e) = task.await {
            tracing::error!(error = %e, "usage settlement task failed");
        }
    }

    /// Records `n` billable results returned to the client.
    pub fn consumed(&self, n: u64) {
        self.lock().used += n;
    }

    pub(crate) fn quota_error(&self, used: u64) -> ApiError {
        let limit = self.limits.monthly_calls.unwrap_or(0);
        ApiError::new(
            ErrorCode::QuotaExceeded,
            format!(
                "Monthly quota of {limit} calls used up. It resets at the next billing period."
            ),
        )
        .field("current_usage", used)
        .field("limit", limit)
        .field(
            "resets_at",
            self.period_end.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
    }
}

fn extract_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    if let Some(v) = headers.get("x-api-key") {
        let s = v
            .to_str()
            .map_err(|_| ApiError::from_code(ErrorCode::InvalidApiKey))?;
        return Ok(Some(s.trim().to_owned()));
    }
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
        let s = v
            .to_str()
            .map_err(|_| ApiError::from_code(ErrorCode::InvalidApiKey))?;
        let mut parts = s.trim().splitn(2, ' ');
        let scheme = parts.next().unwrap_or_default();
        let token = parts.next().unwrap_or_default().trim();
        if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() {
            return Ok(Some(token.to_owned()));
        }
        return Err(ApiError::new(
            ErrorCode::InvalidApiKey,
            "The Authorization header must be 'Bearer <key>'.",
        ));
    }
    Ok(None)
}

async fn authenticate(state: &SharedState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let raw = extract_key(headers)?.ok_or_else(|| ApiError::from_code(ErrorCode::MissingApiKey))?;
    let secret =
        ApiKeySecret::parse(&raw).ok_or_else(|| ApiError::from_code(ErrorCode::InvalidApiKey))?;
    // The lookup is by SHA-256 of the whole key, never by the key itself: whatever the
    // index comparison's timing reveals is about hashes, which cannot be steered byte by
    // byte towards a valid key. (In-process `KeyHash` equality is constant-time.)
    let hash = secret.hash();
    let (key, account) = state
        .store
        .find_key_by_hash(&hash)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| ApiError::from_code(ErrorCode::InvalidApiKey))?;
    let now = Utc::now();
    if key.revoked_at.is_some() {
        return Err(ApiError::new(
            ErrorCode::InvalidApiKey,
            "This API key has been revoked.",
        ));
    }
    if key.expires_at.is_some_and(|e| e <= now) {
        return Err(ApiError::from_code(ErrorCode::ExpiredApiKey));
    }
    state.touch_key(&key.id, now);
    Ok(Caller::new(state, key, account, now))
}

impl Caller {
    fn new(state: &SharedState, key: KeyRecord, account: Account, now: DateTime<Utc>) -> Caller {
        let limits = account.limits();
        let period = BillingPeriod::containing(account.billing_anchor, now);
        let meter = Arc::new(Meter {
            store: state.store.clone(),
            limiter: state.limiter.clone(),
            account_id: account.id.clone(),
            key_id: key.id.clone(),
            mode: key.mode,
            limits,
            period_key: period.key(),
            period_end: period.end,
            state: Mutex::new(MeterState::default()),
            ops: Arc::default(),
        });
        Caller {
            key: Arc::new(key),
            account: Arc::new(account),
            limits,
            period,
            meter,
        }
    }

    /// A caller that is not an API key (the dashboard's playground): every scope, and
    /// metered exactly like a live key of `account`, its calls recorded under `key_id`.
    /// Settle it with [`settle`] once the work is answered.
    pub fn pseudo(state: &SharedState, account: Account, key_id: &str) -> Caller {
        let now = Utc::now();
        let key = KeyRecord {
            id: key_id.to_owned(),
            account_id: account.id.clone(),
            name: key_id.to_owned(),
            prefix: String::new(),
            mode: KeyMode::Live,
            scopes: Scopes::all(),
            created_at: now,
            last_used_at: None,
            expires_at: None,
            revoked_at: None,
        };
        Caller::new(state, key, account, now)
    }
}

/// Middleware for every `/v1` route that needs a key.
pub async fn require_key(
    State(state): State<SharedState>,
    mut req: Request,
    next: Next,
) -> Response {
    let caller = match authenticate(&state, req.headers()).await {
        Ok(c) => c,
        Err(e) => return AppError(e).into_response(),
    };
    req.extensions_mut().insert(caller.clone());
    let unanswered = Unanswered::new(&caller, req.uri().path());
    let mut res = next.run(req).await;
    finish_metering(&state, &caller, &mut res).await;
    unanswered.answered();
    res.extensions_mut()
        .insert(AccountId(caller.account.id.clone()));
    res
}

/// Settles the request's quota: units reserved but not returned as results are given
/// back, the returned ones recorded for the key's daily statistics.
pub async fn settle(caller: &Caller) {
    caller.meter.settle().await;
}

/// Armed while a request is being answered; dropped armed (the request future was
/// dropped: the client disconnected or timed out), it settles the meter with nothing
/// used, since no result reached the client, and logs and counts the request.
pub struct Unanswered {
    meter: Option<Arc<Meter>>,
    route: String,
}

impl Unanswered {
    pub fn new(caller: &Caller, route: &str) -> Self {
        Unanswered {
            meter: Some(caller.meter.clone()),
            route: route.to_owned(),
        }
    }

    /// The answer is ready: nothing to do on drop.
    pub fn answered(mut self) {
        self.meter = None;
    }
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        let Some(meter) = self.meter.take() else {
            return;
        };
        let reserved = {
            let mut s = meter.lock();
            s.used = 0;
            s.reserved
        };
        metrics::counter!("dupify_requests_abandoned_total").increment(1);
        tracing::warn!(
            account_id = %meter.account_id,
            route = %self.route,
            reserved,
            "request ended by the client before its answer; its quota units are given back"
        );
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move { meter.settle().await });
            }
            Err(_) => tracing::error!("no runtime to settle an abandoned request"),
        }
    }
}

async fn finish_metering(state: &SharedState, caller: &Caller, res: &mut Response) {
    let meter = &caller.meter;
    let (admitted, cache_only) = {
        let s = meter.lock();
        (s.rate.is_some(), s.cache_only)
    };
    // Every authenticated request not answered entirely from the cache costs a rate
    // unit, failures included, so a client looping on bad requests is still throttled.
    if !admitted && !cache_only {
        if let Err(e) = meter.admit().await {
            *res = AppError(e).into_response();
        }
    }
    meter.settle().await;

    // Headers.
    let taken = meter.lock().rate;
    let rate = match taken {
        Some(d) => d,
        None => {
            state
                .limiter
                .peek(&caller.account.id, caller.limits.rate_per_minute)
                .await
        }
    };
    let h = res.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(rate.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(rate.remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(rate.reset_unix));
    if let Some(limit) = caller.limits.monthly_calls {
        let hint_key = (caller.account.id.clone(), meter.period_key.clone());
        let known = meter.lock().period_used;
        let used = match known.or_else(|| state.usage_hint.get(&hint_key)) {
            Some(u) => u,
            None => state
                .store
                .period_usage(&caller.account.id, &meter.period_key)
                .await
                .unwrap_or(0),
        };
        state.usage_hint.insert(hint_key, used);
        let h = res.headers_mut();
        h.insert("x-monthly-limit", HeaderValue::from(limit));
        h.insert(
            "x-monthly-remaining",
            HeaderValue::from(limit.saturating_sub(used)),
        );
    }
}
