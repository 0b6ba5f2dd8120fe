//! `GET /v1/usage`: the account's plan, this period's usage, and calls per key and day.
//! [`report`] is shared with the dashboard's usage page.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::{Extension, Json};
use chrono::Utc;
use dupify_api::usage as wire;
use dupify_core::{BillingPeriod, KeyMode, Limits};
use dupify_store::{Account, KeyRecord, Store, StoreResult};

use crate::auth::Caller;
use crate::error::AppResult;
use crate::state::SharedState;

fn iso(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// One key's calls this period.
pub struct KeyUsage {
    pub key: KeyRecord,
    pub live_calls: u64,
    pub test_calls: u64,
}

/// One day's calls this period.
pub struct DayUsage {
    pub date: chrono::NaiveDate,
    pub live_calls: u64,
    pub test_calls: u64,
    pub by_key: BTreeMap<String, u64>,
}

/// An account's usage in the current billing period.
pub struct UsageReport {
    pub period: BillingPeriod,
    pub limits: Limits,
    pub used: u64,
    pub keys: Vec<KeyUsage>,
    /// Days with calls, oldest first.
    pub days: Vec<DayUsage>,
}

impl UsageReport {
    pub fn remaining(&self) -> Option<u64> {
        self.limits
            .monthly_calls
            .map(|l| l.saturating_sub(self.used))
    }
}

/// The usage of `account` in `period` from the store (what `/v1/usage` answers).
pub async fn report(
    store: &dyn Store,
    account: &Account,
    limits: Limits,
    period: BillingPeriod,
) -> StoreResult<UsageReport> {
    let used = store.period_usage(&account.id, &period.key()).await?;
    let keys = store.list_keys(&account.id).await?;
    let daily = store
        .usage_by_day(
            &account.id,
            period.start.date_naive(),
            period.end.date_naive().min(Utc::now().date_naive()),
        )
        .await?;
    let mut per_key: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut per_day: BTreeMap<chrono::NaiveDate, DayUsage> = BTreeMap::new();
    for d in &daily {
        let (live, test) = per_key.entry(&d.key_id).or_default();
        let e = per_day.entry(d.day).or_insert_with(|| DayUsage {
            date: d.day,
            live_calls: 0,
            test_calls: 0,
            by_key: BTreeMap::new(),
        });
        match d.mode {
            KeyMode::Live => {
                *live += d.calls;
                e.live_calls += d.calls;
            }
            KeyMode::Test => {
                *test += d.calls;
                e.test_calls += d.calls;
            }
        }
        *e.by_key.entry(d.key_id.clone()).or_default() += d.calls;
    }
    let keys = keys
        .into_iter()
        .map(|k| {
            let (live, test) = per_key.get(k.id.as_str()).copied().unwrap_or_default();
            KeyUsage {
                key: k,
                live_calls: live,
                test_calls: test,
            }
        })
        .collect();
    Ok(UsageReport {
        period,
        limits,
        used,
        keys,
        days: per_day.into_values().collect(),
    })
}

pub async fn usage(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
) -> AppResult<Json<wire::Usage>> {
    caller.meter.admit().await?;
    let account = &caller.account;
    let r = report(state.store.as_ref(), account, caller.limits, caller.period).await?;
    let now = Utc::now();
    Ok(Json(wire::Usage {
        account_id: account.id.clone(),
        tier: account.tier.as_str().to_owned(),
        period: wire::Period {
            start: iso(r.period.start),
            end: iso(r.period.end),
        },
        monthly_limit: r.limits.monthly_calls,
        used: r.used,
        remaining: r.remaining(),
        rate_limit: wire::RateLimitInfo {
            per_minute: r.limits.rate_per_minute.into(),
        },
        keys: r
            .keys
            .iter()
            .map(|k| wire::KeyUsage {
                id: k.key.id.clone(),
                name: k.key.name.clone(),
                prefix: k.key.prefix.clone(),
                mode: k.key.mode.as_str().to_owned(),
                state: k.key.state(now).to_owned(),
                calls: k.live_calls + k.test_calls,
            })
            .collect(),
        days: r
            .days
            .iter()
            .map(|d| wire::DayUsage {
                date: d.date.to_string(),
                calls: d.live_calls,
                test_calls: d.test_calls,
                by_key: d.by_key.clone(),
            })
            .collect(),
    }))
}
