//! `GET /v1/usage`: the account's plan, this period's usage, and calls per key and day.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::{Extension, Json};
use chrono::Utc;
use dupify_core::KeyMode;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::AppResult;
use crate::state::SharedState;

fn iso(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub async fn usage(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
) -> AppResult<Json<Value>> {
    caller.meter.admit().await?;
    let account = &caller.account;
    let period = caller.period;
    let used = state.store.period_usage(&account.id, &period.key()).await?;
    let keys = state.store.list_keys(&account.id).await?;
    let daily = state
        .store
        .usage_by_day(
            &account.id,
            period.start.date_naive(),
            period.end.date_naive().min(Utc::now().date_naive()),
        )
        .await?;

    let mut per_key: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut per_day: BTreeMap<String, (u64, u64, BTreeMap<&str, u64>)> = BTreeMap::new();
    for d in &daily {
        let (live, test) = per_key.entry(&d.key_id).or_default();
        let e = per_day.entry(d.day.to_string()).or_default();
        match d.mode {
            KeyMode::Live => {
                *live += d.calls;
                e.0 += d.calls;
            }
            KeyMode::Test => {
                *test += d.calls;
                e.1 += d.calls;
            }
        }
        *e.2.entry(&d.key_id).or_default() += d.calls;
    }
    let limit = caller.limits.monthly_calls;
    Ok(Json(json!({
        "account_id": account.id,
        "tier": account.tier,
        "period": {"start": iso(period.start), "end": iso(period.end)},
        "monthly_limit": limit,
        "used": used,
        "remaining": limit.map(|l| l.saturating_sub(used)),
        "rate_limit": {"per_minute": caller.limits.rate_per_minute},
        "keys": keys.iter().map(|k| {
            let (live, test) = per_key.get(k.id.as_str()).copied().unwrap_or_default();
            json!({
                "id": k.id, "name": k.name, "prefix": k.prefix, "mode": k.mode,
                "state": k.state(Utc::now()), "calls": live + test,
            })
        }).collect::<Vec<_>>(),
        "days": per_day.into_iter().map(|(day, (live, test, by_key))| json!({
            "date": day, "calls": live, "test_calls": test, "by_key": by_key,
        })).collect::<Vec<_>>(),
    })))
}
