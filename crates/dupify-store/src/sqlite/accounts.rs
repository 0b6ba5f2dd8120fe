//! Accounts, keys and metering on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use dupify_core::{KeyHash, KeyMode};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::*;

#[async_trait]
impl AccountStore for SqliteStore {
    async fn create_account(&self, new: NewAccount) -> StoreResult<Account> {
        self.with(move |c| {
            let now = Utc::now();
            let id = new_id("acct");
            c.execute(
                "INSERT INTO accounts (id, email, tier, monthly_limit, rate_limit, created_at, billing_anchor)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                params![
                    id,
                    new.email,
                    new.tier.as_str(),
                    new.monthly_limit.map(|v| v as i64),
                    new.rate_limit.map(|v| v as i64),
                    ms(now)
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("an account with email {} exists", new.email))
                } else {
                    backend(e)
                }
            })?;
            get_account_tx(c, &id)
        })
        .await
    }

    async fn update_account(&self, id: &str, u: AccountUpdate) -> StoreResult<Account> {
        let id = id.to_owned();
        self.with(move |c| {
            let tx = c.transaction().map_err(backend)?;
            get_account_tx(&tx, &id)?;
            if let Some(email) = &u.email {
                tx.execute(
                    "UPDATE accounts SET email = ?2 WHERE id = ?1",
                    params![id, email],
                )
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        StoreError::Conflict(format!("an account with email {email} exists"))
                    } else {
                        backend(e)
                    }
                })?;
            }
            if let Some(t) = u.tier {
                tx.execute(
                    "UPDATE accounts SET tier = ?2 WHERE id = ?1",
                    params![id, t.as_str()],
                )
                .map_err(backend)?;
            }
            if let Some(m) = u.monthly_limit {
                tx.execute(
                    "UPDATE accounts SET monthly_limit = ?2 WHERE id = ?1",
                    params![id, m.map(|v| v as i64)],
                )
                .map_err(backend)?;
            }
            if let Some(r) = u.rate_limit {
                tx.execute(
                    "UPDATE accounts SET rate_limit = ?2 WHERE id = ?1",
                    params![id, r.map(|v| v as i64)],
                )
                .map_err(backend)?;
            }
            let a = get_account_tx(&tx, &id)?;
            tx.commit().map_err(backend)?;
            Ok(a)
        })
        .await
    }

    async fn get_account(&self, id: &str) -> StoreResult<Account> {
        let id = id.to_owned();
        self.with(move |c| get_account_tx(c, &id)).await
    }

    async fn list_accounts(&self) -> StoreResult<Vec<Account>> {
        self.with(|c| {
            let mut st = c
                .prepare(&format!(
                    "SELECT {ACCOUNT_COLS} FROM accounts ORDER BY created_at, id"
                ))
                .map_err(backend)?;
            let rows = st
                .query_map([], |r| account_from_row(r, 0))
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn create_key(&self, new: NewKey) -> StoreResult<KeyRecord> {
        self.with(move |c| {
            get_account_tx(c, &new.account_id)?;
            insert_key_tx(c, &new, Utc::now())
        })
        .await
    }

    async fn list_keys(&self, account_id: &str) -> StoreResult<Vec<KeyRecord>> {
        let account_id = account_id.to_owned();
        self.with(move |c| {
            get_account_tx(c, &account_id)?;
            let mut st = c
                .prepare(&format!(
                    "SELECT {KEY_COLS} FROM api_keys k WHERE k.account_id = ?1 ORDER BY k.created_at, k.id"
                ))
                .map_err(backend)?;
            let rows = st.query_map([&account_id], key_from_row).map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn get_key(&self, id: &str) -> StoreResult<KeyRecord> {
        let id = id.to_owned();
        self.with(move |c| get_key_tx(c, &id)).await
    }

    async fn find_key_by_hash(&self, hash: &KeyHash) -> StoreResult<Option<(KeyRecord, Account)>> {
        let hex = hash.to_hex();
        self.with(move |c| {
            let sql = format!(
                "SELECT {KEY_COLS}, {} FROM api_keys k JOIN accounts a ON a.id = k.account_id \
                 WHERE k.key_hash = ?1",
                ACCOUNT_COLS
                    .split(", ")
                    .map(|col| format!("a.{col}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut st = c.prepare_cached(&sql).map_err(backend)?;
            st.query_row([&hex], |r| {
                Ok((key_from_row(r)?, account_from_row(r, KEY_NCOLS)?))
            })
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<KeyRecord> {
        let id = id.to_owned();
        self.with(move |c| {
            let n = c
                .execute(
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
                    params![id, ms(at)],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            get_key_tx(c, &id)
        })
        .await
    }

    async fn regenerate_key(
        &self,
        id: &str,
        new_hash: KeyHash,
        new_prefix: String,
        at: DateTime<Utc>,
    ) -> StoreResult<KeyRecord> {
        let id = id.to_owned();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let old = get_key_tx(&tx, &id)?;
            if old.revoked_at.is_some() {
                return Err(StoreError::Conflict(
                    "the key is revoked; create a new key instead".into(),
                ));
            }
            let k = insert_key_tx(
                &tx,
                &NewKey {
                    account_id: old.account_id.clone(),
                    name: old.name.clone(),
                    hash: new_hash,
                    prefix: new_prefix,
                    mode: old.mode,
                    scopes: old.scopes.clone(),
                    expires_at: old.expires_at,
                },
                at,
            )?;
            tx.execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1",
                params![id, ms(at)],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(k)
        })
        .await
    }

    async fn touch_keys(&self, touches: Vec<(String, DateTime<Utc>)>) -> StoreResult<()> {
        if touches.is_empty() {
            return Ok(());
        }
        self.with(move |c| {
            let tx = c.transaction().map_err(backend)?;
            {
                let mut st = tx
                    .prepare_cached(
                        "UPDATE api_keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?2) WHERE id = ?1",
                    )
                    .map_err(backend)?;
                for (id, at) in &touches {
                    st.execute(params![id, ms(*at)]).map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)
        })
        .await
    }
}

#[async_trait]
impl UsageStore for SqliteStore {
    async fn reserve_quota(
        &self,
        account_id: &str,
        period: &str,
        n: u64,
        limit: Option<u64>,
    ) -> StoreResult<Reservation> {
        let (account_id, period) = (account_id.to_owned(), period.to_owned());
        self.with(move |c| {
            // IMMEDIATE takes the write lock up front, so the check and the increment are
            // one atomic step even against other processes on the same file.
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            tx.execute(
                "INSERT OR IGNORE INTO usage_periods (account_id, period_start, used) VALUES (?1, ?2, 0)",
                params![account_id, period],
            )
            .map_err(backend)?;
            let used: i64 = tx
                .query_row(
                    "SELECT used FROM usage_periods WHERE account_id = ?1 AND period_start = ?2",
                    params![account_id, period],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            let used = used.max(0) as u64;
            if limit.is_some_and(|l| used + n > l) {
                return Ok(Reservation::Exceeded { used });
            }
            tx.execute(
                "UPDATE usage_periods SET used = used + ?3 WHERE account_id = ?1 AND period_start = ?2",
                params![account_id, period, n as i64],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(Reservation::Granted { used: used + n })
        })
        .await
    }

    async fn settle_usage(&self, s: Settlement) -> StoreResult<u64> {
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            if s.mode == KeyMode::Live {
                let delta = s.used as i64 - s.reserved as i64;
                if delta != 0 {
                    tx.execute(
                        "INSERT INTO usage_periods (account_id, period_start, used) VALUES (?1, ?2, MAX(?3, 0))
                         ON CONFLICT (account_id, period_start) DO UPDATE SET used = MAX(used + ?3, 0)",
                        params![s.account_id, s.period, delta],
                    )
                    .map_err(backend)?;
                }
            }
            if s.used > 0 {
                tx.execute(
                    "INSERT INTO usage_daily (account_id, key_id, day, mode, calls) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (account_id, key_id, day) DO UPDATE SET calls = calls + ?5",
                    params![
                        s.account_id,
                        s.key_id,
                        s.day.to_string(),
                        s.mode.as_str(),
                        s.used as i64
                    ],
                )
                .map_err(backend)?;
            }
            let used: i64 = tx
                .query_row(
                    "SELECT COALESCE((SELECT used FROM usage_periods WHERE account_id = ?1 AND period_start = ?2), 0)",
                    params![s.account_id, s.period],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(used.max(0) as u64)
        })
        .await
    }

    async fn period_usage(&self, account_id: &str, period: &str) -> StoreResult<u64> {
        let (account_id, period) = (account_id.to_owned(), period.to_owned());
        self.with(move |c| {
            let used: Option<i64> = c
                .query_row(
                    "SELECT used FROM usage_periods WHERE account_id = ?1 AND period_start = ?2",
                    params![account_id, period],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            Ok(used.unwrap_or(0).max(0) as u64)
        })
        .await
    }

    async fn usage_by_day(
        &self,
        account_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<Vec<DailyUsage>> {
        let account_id = account_id.to_owned();
        self.with(move |c| {
            let mut st = c
                .prepare(
                    "SELECT key_id, day, mode, calls FROM usage_daily
                     WHERE account_id = ?1 AND day >= ?2 AND day <= ?3 ORDER BY day, key_id",
                )
                .map_err(backend)?;
            let rows = st
                .query_map(params![account_id, from.to_string(), to.to_string()], |r| {
                    let day: String = r.get(1)?;
                    let mode: String = r.get(2)?;
                    Ok(DailyUsage {
                        key_id: r.get(0)?,
                        day: day.parse().map_err(|_| conv_err(1, day.clone()))?,
                        mode: KeyMode::parse(&mode).unwrap_or(KeyMode::Live),
                        calls: r.get::<_, i64>(3)?.max(0) as u64,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }
}
