//! `GET /v1/usage` (docs/API.md, "`GET /v1/usage`").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The billing period, ISO-8601 UTC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Period {
    pub start: String,
    pub end: String,
}

/// Calls of one key this period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct KeyUsage {
    pub id: String,
    pub name: String,
    pub prefix: String,
    /// `live` or `test`.
    pub mode: String,
    /// `active`, `revoked` or `expired`.
    pub state: String,
    pub calls: u64,
}

/// Calls of one day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DayUsage {
    pub date: String,
    pub calls: u64,
    pub test_calls: u64,
    #[serde(default)]
    pub by_key: BTreeMap<String, u64>,
}

/// The per-minute limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RateLimitInfo {
    pub per_minute: u64,
}

/// `GET /v1/usage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Usage {
    pub account_id: String,
    /// `free`, `starter`, `pro` or `unlimited`.
    pub tier: String,
    pub period: Period,
    /// `None` (null) for the unlimited tier.
    pub monthly_limit: Option<u64>,
    pub used: u64,
    pub remaining: Option<u64>,
    pub rate_limit: RateLimitInfo,
    pub keys: Vec<KeyUsage>,
    pub days: Vec<DayUsage>,
}
