use chrono::{DateTime, NaiveDate, Utc};
use dupify_core::{KeyMode, Limits, Scopes, Tier};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub id: String,
    pub email: String,
    pub tier: Tier,
    /// Per-account overrides of the tier's limits (custom plans).
    pub monthly_limit: Option<u64>,
    pub rate_limit: Option<u32>,
    pub created_at: DateTime<Utc>,
    /// Billing periods start on this instant's day and time each month.
    pub billing_anchor: DateTime<Utc>,
}

impl Account {
    pub fn limits(&self) -> Limits {
        self.tier.limits_with(self.monthly_limit, self.rate_limit)
    }
}

#[derive(Debug, Clone)]
pub struct NewAccount {
    pub email: String,
    pub tier: Tier,
    pub monthly_limit: Option<u64>,
    pub rate_limit: Option<u32>,
}

/// `Some(None)` clears an override; `None` leaves the field as it is.
#[derive(Debug, Clone, Default)]
pub struct AccountUpdate {
    pub email: Option<String>,
    pub tier: Option<Tier>,
    pub monthly_limit: Option<Option<u64>>,
    pub rate_limit: Option<Option<u32>>,
}

#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub prefix: String,
    pub mode: KeyMode,
    pub scopes: Scopes,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl KeyRecord {
    pub fn state(&self, now: DateTime<Utc>) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewKey {
    pub account_id: String,
    pub name: String,
    pub hash: dupify_core::KeyHash,
    pub prefix: String,
    pub mode: KeyMode,
    pub scopes: Scopes,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct Settlement {
    pub account_id: String,
    pub key_id: String,
    pub mode: KeyMode,
    pub period: String,
    /// Units reserved earlier with `reserve_quota` (0 for test keys and unlimited accounts).
    pub reserved: u64,
    /// Units the request actually used (successful uncached results).
    pub used: u64,
    pub day: NaiveDate,
}

#[derive(Debug, Clone, Serialize)]
pub struct DailyUsage {
    pub key_id: String,
    pub day: NaiveDate,
    pub mode: KeyMode,
    pub calls: u64,
}
