//! The retry policy of the API's guidance ("Retry Strategies"):
//!
//! | answer | retried? | wait |
//! |---|---|---|
//! | 400, 401, 403, 404, 405, 413, 422 | never | — |
//! | 429 | yes | `Retry-After` (header, else `error.retry_after`), else backoff |
//! | 500, 502, 503, 504 | yes | exponential backoff with jitter, at least `Retry-After` when sent |
//! | connection failure | yes | backoff (only for requests that are safe to resend) |
//!
//! Bounded by `max_retries` and by an overall `deadline`: a wait that would end past
//! the deadline is not started; the last error is returned at once instead.

use std::time::Duration;

/// How a [`crate::Client`] retries.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: u32,
    /// Backoff before the first retry of a 5xx or a transport error; doubles each time.
    pub base_delay: Duration,
    /// Ceiling of one backoff wait (not of a server's `Retry-After`).
    pub max_delay: Duration,
    /// Longest `Retry-After` the client is willing to honour; a longer one is returned
    /// to the caller as the error (e.g. a quota-like wait of minutes).
    pub max_retry_after: Duration,
    /// Budget for the whole call, attempts and waits included. `None`: no deadline.
    pub deadline: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            deadline: Some(Duration::from_secs(300)),
        }
    }
}

impl RetryPolicy {
    /// No retries at all: every answer goes straight to the caller.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// Backoff before retry number `retry` (0-based): full-range jitter between half
    /// and all of `base · 2^retry`, capped at `max_delay`. Jitter spreads out clients
    /// that failed together so they do not come back together.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.min(20)));
        let cap = exp.min(self.max_delay);
        cap.mul_f64(0.5 + 0.5 * rand::random::<f64>())
    }

    /// The wait before the next attempt after an answer with this status, or `None`
    /// when the guidance says not to retry it.
    pub fn wait_for_status(
        &self,
        status: u16,
        retry_after: Option<Duration>,
        retry: u32,
    ) -> Option<Duration> {
        match status {
            429 => Some(match retry_after {
                Some(d) if d > self.max_retry_after => return None,
                Some(d) => d,
                None => self.backoff(retry),
            }),
            500 | 502 | 503 | 504 => {
                let b = self.backoff(retry);
                Some(match retry_after {
                    Some(d) if d > self.max_retry_after => return None,
                    Some(d) => b.max(d),
                    None => b,
                })
            }
            _ => None,
        }
    }
}

/// One retry about to happen, for [`crate::ClientBuilder::on_retry`] (logging, metrics).
#[derive(Clone, Debug)]
pub struct RetryEvent {
    /// HTTP method and path of the call.
    pub method: String,
    pub path: String,
    /// The attempt that just failed (1-based).
    pub attempt: u32,
    /// HTTP status of that attempt, `None` for a transport failure.
    pub status: Option<u16>,
    /// The API's error code, when it sent one.
    pub code: Option<String>,
    /// How long the client waits before the next attempt.
    pub wait: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_retries_client_errors() {
        let p = RetryPolicy::default();
        for s in [400, 401, 403, 404, 405, 413, 422] {
            assert_eq!(p.wait_for_status(s, None, 0), None, "{s}");
            assert_eq!(p.wait_for_status(s, Some(Duration::from_secs(1)), 0), None);
        }
    }

    #[test]
    fn rate_limit_waits_exactly_retry_after() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.wait_for_status(429, Some(Duration::from_secs(7)), 2),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            p.wait_for_status(429, Some(Duration::from_secs(600)), 0),
            None
        );
    }

    #[test]
    fn server_errors_back_off_exponentially_with_jitter() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        for retry in 0..6 {
            let full = Duration::from_millis(100 * (1 << retry)).min(Duration::from_secs(1));
            for _ in 0..50 {
                let w = p.wait_for_status(500, None, retry).expect("retried");
                assert!(w >= full / 2 && w <= full, "retry {retry}: {w:?}");
            }
        }
        // A 503's Retry-After is a floor under the backoff.
        let w = p
            .wait_for_status(503, Some(Duration::from_secs(2)), 0)
            .expect("retried");
        assert!(w >= Duration::from_secs(2));
        let samples: std::collections::HashSet<u128> =
            (0..20).map(|_| p.backoff(3).as_micros()).collect();
        assert!(samples.len() > 1, "jitter varies the waits");
    }
}
