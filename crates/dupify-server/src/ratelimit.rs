//! Per-account, per-minute rate limiting behind a small trait, so a shared (Redis)
//! limiter can replace the in-process one when several replicas serve one database.
//!
//! The in-process limiter is GCRA (a leaky bucket tracked by one timestamp per account):
//! a limit of N/minute allows a burst of N and then one request every 60/N seconds.
//! Compared to fixed minute windows it never lets 2N through around a window edge, and
//! its `Retry-After` is the exact time until one more request fits.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

/// The limiter's answer, with what the `X-RateLimit-*` headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Unix seconds at which the full limit is available again.
    pub reset_unix: u64,
    /// Whole seconds (≥ 1) until the next request would be allowed; 0 when allowed.
    pub retry_after_secs: u64,
}

#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Takes one unit if the account has one left.
    async fn acquire(&self, account_id: &str, limit_per_minute: u32) -> RateDecision;
    /// Reports the state without taking anything (for cache hits).
    async fn peek(&self, account_id: &str, limit_per_minute: u32) -> RateDecision;
    /// Gives back one unit taken by [`RateLimiter::acquire`] (a request that turned out
    /// to be answered from the cache after all).
    async fn release(&self, account_id: &str, limit_per_minute: u32);
}

/// GCRA in this process's memory.
#[derive(Default)]
pub struct LocalRateLimiter {
    /// Theoretical arrival time per account, in microseconds since the epoch.
    tat: Mutex<HashMap<String, u64>>,
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

const MINUTE_US: u64 = 60_000_000;

impl LocalRateLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// One interval off the account's arrival time, never below `now` (the bucket cannot
    /// hold more than full).
    fn give_back(&self, account_id: &str, limit: u32, now: u64) {
        let interval = MINUTE_US / limit.max(1) as u64;
        let mut map = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = map.get_mut(account_id) {
            *t = t.saturating_sub(interval).max(now);
        }
    }

    fn decide(&self, account_id: &str, limit: u32, take: bool, now: u64) -> RateDecision {
        let limit = limit.max(1);
        let interval = MINUTE_US / limit as u64;
        // A full bucket is `limit` intervals; tolerance is how far ahead TAT may run.
        let tolerance = interval * (limit as u64 - 1);
        let mut map = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            // Accounts whose bucket has refilled carry no state worth keeping.
            map.retain(|_, t| *t > now);
        }
        let tat = map.get(account_id).copied().unwrap_or(now).max(now);
        let backlog = tat - now; // time already "owed"
        let allowed = backlog <= tolerance;
        let (new_tat, retry_after_secs) = if allowed {
            (tat + interval, 0)
        } else {
            let wait = backlog - tolerance;
            (tat, wait.div_ceil(1_000_000).max(1))
        };
        if allowed && take {
            map.insert(account_id.to_owned(), new_tat);
        }
        let effective = if take && allowed { new_tat } else { tat };
        let used = (effective - now).div_ceil(interval) as u32;
        RateDecision {
            allowed,
            limit,
            remaining: limit.saturating_sub(used),
            reset_unix: effective.div_ceil(1_000_000),
            retry_after_secs,
        }
    }
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn acquire(&self, account_id: &str, limit_per_minute: u32) -> RateDecision {
        self.decide(account_id, limit_per_minute, true, now_micros())
    }

    async fn peek(&self, account_id: &str, limit_per_minute: u32) -> RateDecision {
        self.decide(account_id, limit_per_minute, false, now_micros())
    }

    async fn release(&self, account_id: &str, limit_per_minute: u32) {
        self.give_back(account_id, limit_per_minute, now_micros());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate() {
        let l = LocalRateLimiter::new();
        let t0 = 1_000_000_000_000u64;
        for i in 0..10 {
            let d = l.decide("a", 10, true, t0);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 9 - i);
        }
        let d = l.decide("a", 10, true, t0);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs, 6);
        assert_eq!(d.remaining, 0);
        // 6 s later exactly one more fits.
        let t1 = t0 + 6_000_000;
        assert!(l.decide("a", 10, true, t1).allowed);
        assert!(!l.decide("a", 10, true, t1).allowed);
        // Other accounts are independent.
        assert!(l.decide("b", 10, true, t1).allowed);
        // A peek takes nothing.
        let p = l.decide("c", 1, false, t1);
        assert!(p.allowed);
        assert!(l.decide("c", 1, true, t1).allowed);
        // A unit given back can be taken again, but the bucket never exceeds full.
        assert!(!l.decide("c", 1, true, t1).allowed);
        l.give_back("c", 1, t1);
        assert!(l.decide("c", 1, true, t1).allowed);
        l.give_back("c", 1, t1);
        l.give_back("c", 1, t1);
        assert!(l.decide("c", 1, true, t1).allowed);
        assert!(!l.decide("c", 1, true, t1).allowed);
    }
}
