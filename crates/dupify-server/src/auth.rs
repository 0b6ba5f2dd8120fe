//! Authentication, scope checks and the per-request meter.
//!
//! The auth middleware resolves the key to a [`Caller`] and, after the handler has run,
//! settles metering and sets the five rate/quota headers on whatever the response is
//! (errors included).

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
    mode: KeyMode,
    limits: Limits,
    period_key: String,
    period_end: DateTime<Utc>,
    state: Mutex<MeterState>,
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

    /// True when the account is out of rate-limit units right now (nothing is taken).
    pub async fn is_throttled(&self) -> bool {
        !self
            .limiter
            .peek(&self.account_id, self.limits.rate_per_minute)
            .await
            .allowed
    }

    /// The whole answer came from the cache: no rate or quota units are taken.
    pub fn mark_cache_only(&self) {
        self.lock().cache_only = true;
    }

    /// Reserves `n` quota units before doing billable work; all or nothing.
    pub async fn reserve(&self, n: u64) -> Result<(), ApiError> {
        if n == 0 || self.mode == KeyMode::Test {
            return Ok(());
        }
        match self
            .store
            .reserve_quota(
                &self.account_id,
                &self.period_key,
                n,
                self.limits.monthly_calls,
            )
            .await
            .map_err(ApiError::from)?
        {
            Reservation::Granted { used } => {
                let mut s = self.lock();
                s.reserved += n;
                s.period_used = Some(used);
                Ok(())
            }
            Reservation::Exceeded { used } => {
                self.lock().period_used = Some(used);
                Err(self.quota_error(used))
            }
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
            mode: key.mode,
            limits,
            period_key: period.key(),
            period_end: period.end,
            state: Mutex::new(MeterState::default()),
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
    let mut res = next.run(req).await;
    finish_metering(&state, &caller, &mut res).await;
    res.extensions_mut()
        .insert(AccountId(caller.account.id.clone()));
    res
}

/// Settles the request's quota: units reserved but not returned as results are given
/// back, the returned ones recorded for the key's daily statistics.
pub async fn settle(state: &SharedState, caller: &Caller) {
    let meter = &caller.meter;
    let (reserved, used) = {
        let s = meter.lock();
        (s.reserved, s.used)
    };
    if reserved > 0 || used > 0 {
        let settled = state
            .store
            .settle_usage(Settlement {
                account_id: caller.account.id.clone(),
                key_id: caller.key.id.clone(),
                mode: caller.key.mode,
                period: meter.period_key.clone(),
                reserved,
                used,
                day: Utc::now().date_naive(),
            })
            .await;
        match settled {
            Ok(u) if caller.key.mode == KeyMode::Live => meter.lock().period_used = Some(u),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, account_id = %caller.account.id, "usage settlement failed")
            }
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
    settle(state, caller).await;

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
