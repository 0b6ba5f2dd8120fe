//! Webhook endpoints and the outbox on SQLite (see `crate::webhooks`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dupify_core::KeyMode;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{backend, conv_err, from_ms, ms, new_id, opt_ms, SqliteStore};
use crate::webhooks::*;
use crate::{StoreResult, WebhookStore};

pub(super) const MIGRATION: &str = r#"
CREATE TABLE webhook_endpoints (
    id                    TEXT PRIMARY KEY,
    account_id            TEXT NOT NULL REFERENCES accounts(id),
    mode                  TEXT NOT NULL,
    url                   TEXT NOT NULL,
    description           TEXT,
    events                TEXT NOT NULL,
    secret                TEXT NOT NULL,
    enabled               INTEGER NOT NULL DEFAULT 1,
    disabled_reason       TEXT,
    consecutive_failures  INTEGER NOT NULL DEFAULT 0,
    created_at            INTEGER NOT NULL
);
CREATE INDEX webhook_endpoints_account ON webhook_endpoints(account_id, mode);
CREATE TABLE webhook_deliveries (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    payload          TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending',
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    lease_until      INTEGER,
    lease_owner      TEXT,
    last_attempt_at  INTEGER,
    last_status      INTEGER,
    last_error       TEXT,
    last_latency_ms  INTEGER,
    delivered_at     INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries(endpoint_id, seq);
"#;

const ENDPOINT_COLS: &str = "id, account_id, mode, url, description, events, secret, enabled, \
     disabled_reason, consecutive_failures, created_at";

fn endpoint_from_row(r: &Row<'_>) -> rusqlite::Result<WebhookEndpoint> {
    let mode: String = r.get(2)?;
    let events: String = r.get(5)?;
    Ok(WebhookEndpoint {
        id: r.get(0)?,
        account_id: r.get(1)?,
        mode: KeyMode::parse(&mode).ok_or_else(|| conv_err(2, format!("mode {mode}")))?,
        url: r.get(3)?,
        description: r.get(4)?,
        events: events
            .split(',')
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect(),
        secret: r.get(6)?,
        enabled: r.get(7)?,
        disabled_reason: r.get(8)?,
        consecutive_failures: r.get(9)?,
        created_at: from_ms(r.get(10)?),
    })
}

const DELIVERY_COLS: &str =
    "d.seq, d.endpoint_id, d.event_id, d.event_type, d.payload, d.created_at, \
     d.status, d.attempts, d.next_attempt_at, d.last_attempt_at, d.last_status, d.last_error, \
     d.last_latency_ms, d.delivered_at";

fn delivery_from_row(r: &Row<'_>) -> rusqlite::Result<WebhookDelivery> {
    let status: String = r.get(6)?;
    Ok(WebhookDelivery {
        seq: r.get(0)?,
        endpoint_id: r.get(1)?,
        event_id: r.get(2)?,
        event_type: r.get(3)?,
        payload: r.get(4)?,
        created_at: from_ms(r.get(5)?),
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| conv_err(6, format!("status {status}")))?,
        attempts: r.get(7)?,
        next_attempt_at: opt_ms(r.get(8)?),
        last_attempt_at: opt_ms(r.get(9)?),
        last_status: r.get(10)?,
        last_error: r.get(11)?,
        last_latency_ms: r.get::<_, Option<i64>>(12)?.map(|v| v.max(0) as u64),
        delivered_at: opt_ms(r.get(13)?),
    })
}

fn get_endpoint(
    c: &Connection,
    account_id: &str,
    mode: KeyMode,
    id: &str,
) -> rusqlite::Result<Option<WebhookEndpoint>> {
    c.query_row(
        &format!(
            "SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE id = ?1 AND account_id = ?2 AND mode = ?3"
        ),
        params![id, account_id, mode.as_str()],
        endpoint_from_row,
    )
    .optional()
}

/// Writes one event for every endpoint of the catalog subscribed to its type (a
/// disabled one too: its events wait until it is enabled again), inside the caller's
/// transaction (the change it reports commits with it, or neither).
pub(super) fn enqueue_event(
    tx: &Connection,
    account_id: &str,
    mode: KeyMode,
    event_type: &str,
    data: serde_json::Value,
    now: DateTime<Utc>,
) -> rusqlite::Result<usize> {
    let event_id = new_id("evt");
    let payload = serde_json::json!({
        "id": event_id,
        "type": event_type,
        "created_at": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "livemode": mode == KeyMode::Live,
        "data": data,
    })
    .to_string();
    tx.execute(
        "INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, payload, created_at, next_attempt_at)
         SELECT id, ?4, ?3, ?5, ?6, ?6 FROM webhook_endpoints
         WHERE account_id = ?1 AND mode = ?2
           AND instr(',' || events || ',', ',' || ?3 || ',') > 0",
        params![account_id, mode.as_str(), event_type, event_id, payload, ms(now)],
    )
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn create_webhook(
        &self,
        new: NewWebhookEndpoint,
        max: usize,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(backend)?;
            let n: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM webhook_endpoints WHERE account_id = ?1 AND mode = ?2",
                    params![new.account_id, new.mode.as_str()],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if n.max(0) as usize >= max {
                return Ok(None);
            }
            let id = new_id("wh");
            tx.execute(
                "INSERT INTO webhook_endpoints (id, account_id, mode, url, description, events, secret, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    id,
                    new.account_id,
                    new.mode.as_str(),
                    new.url,
                    new.description,
                    new.events.join(","),
                    new.secret,
                    ms(new.at)
                ],
            )
            .map_err(backend)?;
            let e = get_endpoint(&tx, &new.account_id, new.mode, &id).map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(e)
        })
        .await
    }

    async fn list_webhooks(
        &self,
        account_id: &str,
        mode: KeyMode,
    ) -> StoreResult<Vec<WebhookEndpoint>> {
        let account_id = account_id.to_owned();
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE account_id = ?1 AND mode = ?2 ORDER BY created_at, id"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![account_id, mode.as_str()], endpoint_from_row)
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn get_webhook(
        &self,
        account_id: &str,
        mode: KeyMode,
        id: &str,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        let (account_id, id) = (account_id.to_owned(), id.to_owned());
        self.with(move |c| get_endpoint(c, &account_id, mode, &id).map_err(backend))
            .await
    }

    async fn delete_webhook(&self, account_id: &str, mode: KeyMode, id: &str) -> StoreResult<bool> {
        let (account_id, id) = (account_id.to_owned(), id.to_owned());
        self.with(move |c| {
            let tx = c.transaction().map_err(backend)?;
            let n = tx
                .execute(
                    "DELETE FROM webhook_endpoints WHERE id = ?1 AND account_id = ?2 AND mode = ?3",
                    params![id, account_id, mode.as_str()],
                )
                .map_err(backend)?;
            if n > 0 {
                tx.execute(
                    "DELETE FROM webhook_deliveries WHERE endpoint_id = ?1",
                    params![id],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn rotate_webhook_secret(
        &self,
        account_id: &str,
        mode: KeyMode,
        id: &str,
        secret: String,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        let (account_id, id) = (account_id.to_owned(), id.to_owned());
        self.with(move |c| {
            c.execute(
                "UPDATE webhook_endpoints SET secret = ?4 WHERE id = ?1 AND account_id = ?2 AND mode = ?3",
                params![id, account_id, mode.as_str(), secret],
            )
            .map_err(backend)?;
            get_endpoint(c, &account_id, mode, &id).map_err(backend)
        })
        .await
    }

    async fn set_webhook_enabled(
        &self,
        account_id: &str,
        mode: KeyMode,
        id: &str,
        enabled: bool,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        let (account_id, id) = (account_id.to_owned(), id.to_owned());
        self.with(move |c| {
            c.execute(
                "UPDATE webhook_endpoints SET enabled = ?4, disabled_reason = NULL, consecutive_failures = 0
                 WHERE id = ?1 AND account_id = ?2 AND mode = ?3",
                params![id, account_id, mode.as_str(), enabled],
            )
            .map_err(backend)?;
            get_endpoint(c, &account_id, mode, &id).map_err(backend)
        })
        .await
    }

    async fn webhook_deliveries(
        &self,
        account_id: &str,
        mode: KeyMode,
        endpoint_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let (account_id, endpoint_id) = (account_id.to_owned(), endpoint_id.to_owned());
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLS} FROM webhook_deliveries d
                     JOIN webhook_endpoints e ON e.id = d.endpoint_id
                     WHERE d.endpoint_id = ?1 AND e.account_id = ?2 AND e.mode = ?3
                     ORDER BY d.seq DESC LIMIT ?4"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(
                    params![endpoint_id, account_id, mode.as_str(), limit as i64],
                    delivery_from_row,
                )
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn lease_deliveries(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_ms: i64,
        limit: u32,
        per_account: u32,
    ) -> StoreResult<Vec<LeasedDelivery>> {
        let owner = owner.to_owned();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(backend)?;
            let t = ms(now);
            // The oldest due delivery of each enabled endpoint that has none in flight,
            // with its account and how many of that account's are in flight.
            let candidates: Vec<(i64, String, i64)> = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT MIN(d.seq), e.account_id,
                             (SELECT COUNT(*) FROM webhook_deliveries x
                              JOIN webhook_endpoints xe ON xe.id = x.endpoint_id
                              WHERE xe.account_id = e.account_id AND x.status = 'pending'
                                AND x.lease_until IS NOT NULL AND x.lease_until > ?1)
                         FROM webhook_deliveries d
                         JOIN webhook_endpoints e ON e.id = d.endpoint_id
                         WHERE d.status = 'pending' AND e.enabled = 1 AND d.next_attempt_at <= ?1
                           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries x
                               WHERE x.endpoint_id = d.endpoint_id AND x.status = 'pending'
                                 AND x.lease_until IS NOT NULL AND x.lease_until > ?1)
                         GROUP BY d.endpoint_id ORDER BY MIN(d.seq)",
                    )
                    .map_err(backend)?;
                let rows = stmt
                    .query_map(params![t], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(backend)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)?
            };
            let mut taken: std::collections::HashMap<String, i64> = Default::default();
            let mut seqs = Vec::new();
            for (seq, account, in_flight) in candidates {
                if seqs.len() >= limit as usize {
                    break;
                }
                let n = taken.entry(account).or_insert(in_flight);
                if *n < i64::from(per_account.max(1)) {
                    *n += 1;
                    seqs.push(seq);
                }
            }
            let mut out = Vec::with_capacity(seqs.len());
            for seq in seqs {
                tx.execute(
                    "UPDATE webhook_deliveries SET lease_until = ?2, lease_owner = ?3 WHERE seq = ?1",
                    params![seq, t + lease_ms, owner],
                )
                .map_err(backend)?;
                let leased = tx
                    .query_row(
                        &format!(
                            "SELECT {DELIVERY_COLS}, e.url, e.secret FROM webhook_deliveries d
                             JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE d.seq = ?1"
                        ),
                        params![seq],
                        |r| {
                            Ok(LeasedDelivery {
                                delivery: delivery_from_row(r)?,
                                url: r.get(14)?,
                                secret: r.get(15)?,
                            })
                        },
                    )
                    .map_err(backend)?;
                out.push(leased);
            }
            tx.commit().map_err(backend)?;
            Ok(out)
        })
        .await
    }

    async fn record_delivery_attempt(
        &self,
        seq: i64,
        owner: &str,
        attempt: DeliveryAttempt,
    ) -> StoreResult<bool> {
        let owner = owner.to_owned();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(backend)?;
            let endpoint: Option<String> = tx
                .query_row(
                    "SELECT endpoint_id FROM webhook_deliveries
                     WHERE seq = ?1 AND status = 'pending' AND lease_owner = ?2",
                    params![seq, owner],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            // Settled, deleted, or leased by another sender since: not ours to record.
            let Some(endpoint) = endpoint else {
                return Ok(false);
            };
            let t = ms(attempt.at);
            let status = if attempt.delivered {
                DeliveryStatus::Delivered
            } else if attempt.retry_at.is_some() {
                DeliveryStatus::Pending
            } else {
                DeliveryStatus::Failed
            };
            tx.execute(
                "UPDATE webhook_deliveries SET status = ?2, attempts = attempts + 1,
                     next_attempt_at = ?3, lease_until = NULL, lease_owner = NULL,
                     last_attempt_at = ?4, last_status = ?5, last_error = ?6, last_latency_ms = ?7,
                     delivered_at = ?8
                 WHERE seq = ?1",
                params![
                    seq,
                    status.as_str(),
                    attempt.retry_at.map(ms),
                    t,
                    attempt.status,
                    attempt.error,
                    attempt.latency_ms as i64,
                    attempt.delivered.then_some(t)
                ],
            )
            .map_err(backend)?;
            if attempt.delivered {
                tx.execute(
                    "UPDATE webhook_endpoints SET consecutive_failures = 0 WHERE id = ?1",
                    params![endpoint],
                )
                .map_err(backend)?;
            } else {
                tx.execute(
                    "UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1,
                         enabled = CASE WHEN consecutive_failures + 1 >= ?2 THEN 0 ELSE enabled END,
                         disabled_reason = CASE WHEN consecutive_failures + 1 >= ?2
                             THEN 'disabled after ' || (consecutive_failures + 1) || ' consecutive failed deliveries'
                             ELSE disabled_reason END
                     WHERE id = ?1",
                    params![endpoint, attempt.disable_after],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn pending_deliveries(&self) -> StoreResult<u64> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(backend)
        })
        .await
    }

    async fn prune_deliveries(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.with(move |c| {
            c.execute(
                "DELETE FROM webhook_deliveries
                 WHERE (status <> 'pending' AND COALESCE(delivered_at, last_attempt_at, created_at) < ?1)
                    OR (status = 'pending' AND created_at < ?1)",
                params![ms(before)],
            )
            .map(|n| n as u64)
            .map_err(backend)
        })
        .await
    }
}
