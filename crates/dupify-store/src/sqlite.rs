//! Embedded SQLite store: WAL mode, versioned migrations, a small connection pool, and
//! blocking calls moved off the async workers with `spawn_blocking`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use dupify_core::{KeyHash, KeyMode, Scopes, Tier};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::catalog;
use crate::*;

/// Each entry is applied once, in order; `PRAGMA user_version` records how many ran.
/// Never edit a shipped migration: append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE accounts (
    id              TEXT PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,
    tier            TEXT NOT NULL,
    monthly_limit   INTEGER,
    rate_limit      INTEGER,
    created_at      INTEGER NOT NULL,
    billing_anchor  INTEGER NOT NULL
);
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts(id),
    name          TEXT NOT NULL,
    key_hash      TEXT NOT NULL UNIQUE,
    prefix        TEXT NOT NULL,
    mode          TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    expires_at    INTEGER,
    revoked_at    INTEGER
);
CREATE INDEX api_keys_account ON api_keys(account_id);
CREATE TABLE usage_periods (
    account_id    TEXT NOT NULL REFERENCES accounts(id),
    period_start  TEXT NOT NULL,
    used          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, period_start)
);
CREATE TABLE usage_daily (
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    key_id      TEXT NOT NULL,
    day         TEXT NOT NULL,
    mode        TEXT NOT NULL,
    calls       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, key_id, day)
);
"#,
    crate::catalog::MIGRATION,
    dashboard::MIGRATION,
];

const POOL_SIZE: usize = 4;

struct Pool {
    conns: Mutex<Vec<Connection>>,
    available: Condvar,
}

/// The embedded default store: one SQLite file in the data directory.
#[derive(Clone)]
pub struct SqliteStore {
    pool: Arc<Pool>,
    path: PathBuf,
}

fn open_conn(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    // WAL lets the CLI write while the server reads; NORMAL sync is durable across
    // process crashes (only an OS crash can lose the last commits).
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
    let version: usize = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > MIGRATIONS.len() {
        anyhow::bail!(
            "database schema version {version} is newer than this binary knows ({}); upgrade dupify",
            MIGRATIONS.len()
        );
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(m)
            .with_context(|| format!("migration {}", i + 1))?;
        tx.pragma_update(None, "user_version", i + 1)?;
    }
    tx.commit()?;
    Ok(())
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

fn opt_ms(v: Option<i64>) -> Option<DateTime<Utc>> {
    v.map(from_ms)
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

fn conv_err(col: usize, msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, msg.into())
}

const ACCOUNT_COLS: &str = "id, email, tier, monthly_limit, rate_limit, created_at, billing_anchor";

fn account_from_row(r: &Row<'_>, off: usize) -> rusqlite::Result<Account> {
    let tier: String = r.get(off + 2)?;
    Ok(Account {
        id: r.get(off)?,
        email: r.get(off + 1)?,
        tier: Tier::parse(&tier).ok_or_else(|| conv_err(off + 2, format!("tier {tier}")))?,
        monthly_limit: r.get::<_, Option<i64>>(off + 3)?.map(|v| v as u64),
        rate_limit: r.get::<_, Option<i64>>(off + 4)?.map(|v| v as u32),
        created_at: from_ms(r.get(off + 5)?),
        billing_anchor: from_ms(r.get(off + 6)?),
    })
}

const KEY_COLS: &str = "k.id, k.account_id, k.name, k.prefix, k.mode, k.scopes, k.created_at, \
                        k.last_used_at, k.expires_at, k.revoked_at";
const KEY_NCOLS: usize = 10;

fn key_from_row(r: &Row<'_>) -> rusqlite::Result<KeyRecord> {
    let mode: String = r.get(4)?;
    let scopes: String = r.get(5)?;
    Ok(KeyRecord {
        id: r.get(0)?,
        account_id: r.get(1)?,
        name: r.get(2)?,
        prefix: r.get(3)?,
        mode: KeyMode::parse(&mode).ok_or_else(|| conv_err(4, format!("mode {mode}")))?,
        scopes: Scopes::parse_list(&scopes).map_err(|e| conv_err(5, e))?,
        created_at: from_ms(r.get(6)?),
        last_used_at: opt_ms(r.get(7)?),
        expires_at: opt_ms(r.get(8)?),
        revoked_at: opt_ms(r.get(9)?),
    })
}

const USER_COLS: &str = "u.id, u.account_id, u.email, u.password_hash, u.created_at";

fn user_from_row(r: &Row<'_>, off: usize) -> rusqlite::Result<DashboardUser> {
    Ok(DashboardUser {
        id: r.get(off)?,
        account_id: r.get(off + 1)?,
        email: r.get(off + 2)?,
        password_hash: r.get(off + 3)?,
        created_at: from_ms(r.get(off + 4)?),
    })
}

fn get_account_tx(c: &Connection, id: &str) -> StoreResult<Account> {
    c.query_row(
        &format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE id = ?1"),
        [id],
        |r| account_from_row(r, 0),
    )
    .optional()
    .map_err(backend)?
    .ok_or(StoreError::NotFound)
}

/// Inserts a key row and returns the stored record.
fn insert_key_tx(
    c: &Connection,
    new: &NewKey,
    created_at: DateTime<Utc>,
) -> StoreResult<KeyRecord> {
    let id = new_id("key");
    c.execute(
        "INSERT INTO api_keys (id, account_id, name, key_hash, prefix, mode, scopes, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            id,
            new.account_id,
            new.name,
            new.hash.to_hex(),
            new.prefix,
            new.mode.as_str(),
            new.scopes.to_list(),
            ms(created_at),
            new.expires_at.map(ms)
        ],
    )
    .map_err(backend)?;
    get_key_tx(c, &id)
}

fn get_key_tx(c: &Connection, id: &str) -> StoreResult<KeyRecord> {
    c.query_row(
        &format!("SELECT {KEY_COLS} FROM api_keys k WHERE k.id = ?1"),
        [id],
        key_from_row,
    )
    .optional()
    .map_err(backend)?
    .ok_or(StoreError::NotFound)
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.into())
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

impl SqliteStore {
    /// Opens (creating if needed) `dupify.db` in `data_dir` and applies pending migrations.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data dir {}", data_dir.display()))?;
        let path = data_dir.join("dupify.db");
        let mut first = open_conn(&path)?;
        migrate(&mut first)?;
        let mut conns = vec![first];
        for _ in 1..POOL_SIZE {
            conns.push(open_conn(&path)?);
        }
        Ok(SqliteStore {
            pool: Arc::new(Pool {
                conns: Mutex::new(conns),
                available: Condvar::new(),
            }),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with a pooled connection on the blocking thread pool.
    async fn with<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = {
                let mut guard = pool.conns.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    if let Some(c) = guard.pop() {
                        break c;
                    }
                    guard = pool
                        .available
                        .wait(guard)
                        .unwrap_or_else(|p| p.into_inner());
                }
            };
            let out = f(&mut conn);
            pool.conns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
            pool.available.notify_one();
            out
        })
        .await
        .map_err(|e| StoreError::Backend(anyhow::anyhow!("store task failed: {e}")))?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.with(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(backend))
            .await
    }

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

    async fn upsert_products(
        &self,
        ctx: UpsertContext,
        items: Vec<ProductInput>,
    ) -> StoreResult<Vec<Result<UpsertResult, UpsertRefusal>>> {
        self.with(move |c| catalog::upsert_products(c, &ctx, items))
            .await
    }

    async fn get_product(
        &self,
        account_id: &str,
        mode: KeyMode,
        id: &str,
        with_vectors: bool,
    ) -> StoreResult<Option<ProductRecord>> {
        let (a, id) = (account_id.to_owned(), id.to_owned());
        self.with(move |c| catalog::get_product(c, &a, mode, &id, with_vectors))
            .await
    }

    async fn list_products(
        &self,
        account_id: &str,
        mode: KeyMode,
        query: ListQuery,
    ) -> StoreResult<ProductPage> {
        let a = account_id.to_owned();
        self.with(move |c| catalog::list_products(c, &a, mode, &query))
            .await
    }

    async fn delete_product(
        &self,
        account_id: &str,
        mode: KeyMode,
        id: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<i64>> {
        let (a, id) = (account_id.to_owned(), id.to_owned());
        self.with(move |c| catalog::delete_product(c, &a, mode, &id, at))
            .await
    }

    async fn catalog_status_counts(
        &self,
        account_id: &str,
        mode: KeyMode,
    ) -> StoreResult<Vec<(ProductStatus, u64)>> {
        let a = account_id.to_owned();
        self.with(move |c| catalog::status_counts(c, &a, mode))
            .await
    }

    async fn lease_job(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_ms: i64,
    ) -> StoreResult<Option<LeasedJob>> {
        let owner = owner.to_owned();
        self.with(move |c| catalog::lease_job(c, &owner, now, lease_ms))
            .await
    }

    async fn retry_job(
        &self,
        job: &LeasedJob,
        run_after: DateTime<Utc>,
        error: &str,
        keep_attempt: bool,
    ) -> StoreResult<()> {
        let (job, error) = (job.clone(), error.to_owned());
        self.with(move |c| catalog::retry_job(c, &job, run_after, &error, keep_attempt))
            .await
    }

    async fn products_by_pk(
        &self,
        account_id: &str,
        mode: KeyMode,
        pks: Vec<i64>,
    ) -> StoreResult<Vec<ProductRecord>> {
        let a = account_id.to_owned();
        self.with(move |c| catalog::products_by_pk(c, &a, mode, &pks))
            .await
    }

    async fn complete_job(
        &self,
        job: &LeasedJob,
        outcome: JobOutcome,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let job = job.clone();
        self.with(move |c| catalog::complete_job(c, &job, &outcome, now))
            .await
    }

    async fn pending_jobs(&self) -> StoreResult<u64> {
        self.with(|c| catalog::pending_jobs(c)).await
    }

    async fn lease_owners(&self) -> StoreResult<Vec<String>> {
        self.with(|c| catalog::lease_owners(c)).await
    }

    async fn release_leases(&self, owner: &str) -> StoreResult<u64> {
        let owner = owner.to_owned();
        self.with(move |c| catalog::release_leases(c, &owner)).await
    }

    async fn index_rows(
        &self,
        account_id: &str,
        mode: KeyMode,
        since: i64,
        limit: u32,
        live_only: bool,
    ) -> StoreResult<Vec<IndexRow>> {
        let a = account_id.to_owned();
        self.with(move |c| catalog::index_rows(c, &a, mode, since, limit, live_only))
            .await
    }

    async fn catalogs(&self) -> StoreResult<Vec<(String, KeyMode)>> {
        self.with(|c| catalog::catalogs(c)).await
    }

    async fn insert_ready_products(
        &self,
        account_id: &str,
        mode: KeyMode,
        items: Vec<(ProductInput, ProductFeatures)>,
    ) -> StoreResult<Vec<String>> {
        let a = account_id.to_owned();
        self.with(move |c| catalog::insert_ready_products(c, &a, mode, items, Utc::now()))
            .await
    }

    async fn create_dashboard_user(
        &self,
        new: NewDashboardUser,
    ) -> StoreResult<(DashboardUser, Account)> {
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let now = Utc::now();
            let account_id = new_id("acct");
            let user_id = new_id("user");
            let conflict = |e: rusqlite::Error| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("the email {} is already registered", new.email))
                } else {
                    backend(e)
                }
            };
            tx.execute(
                "INSERT INTO accounts (id, email, tier, created_at, billing_anchor)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
                params![account_id, new.email, new.tier.as_str(), ms(now)],
            )
            .map_err(conflict)?;
            tx.execute(
                "INSERT INTO dashboard_users (id, account_id, email, password_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![user_id, account_id, new.email, new.password_hash, ms(now)],
            )
            .map_err(conflict)?;
            let account = get_account_tx(&tx, &account_id)?;
            tx.commit().map_err(backend)?;
            Ok((
                DashboardUser {
                    id: user_id,
                    account_id,
                    email: new.email.clone(),
                    password_hash: new.password_hash.clone(),
                    created_at: from_ms(ms(now)),
                },
                account,
            ))
        })
        .await
    }

    async fn find_dashboard_user(&self, email: &str) -> StoreResult<Option<DashboardUser>> {
        let email = email.to_owned();
        self.with(move |c| {
            c.query_row(
                &format!("SELECT {USER_COLS} FROM dashboard_users u WHERE u.email = ?1"),
                [&email],
                |r| user_from_row(r, 0),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn create_session(&self, s: DashboardSession) -> StoreResult<()> {
        self.with(move |c| {
            c.execute(
                "INSERT INTO dashboard_sessions
                 (token_hash, user_id, csrf_token, created_at, last_seen_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    s.token_hash,
                    s.user_id,
                    s.csrf_token,
                    ms(s.created_at),
                    ms(s.last_seen_at),
                    ms(s.expires_at)
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn find_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(DashboardSession, DashboardUser)>> {
        let token_hash = token_hash.to_owned();
        self.with(move |c| {
            c.query_row(
                &format!(
                    "SELECT s.token_hash, s.user_id, s.csrf_token, s.created_at, s.last_seen_at,
                            s.expires_at, {USER_COLS}
                     FROM dashboard_sessions s JOIN dashboard_users u ON u.id = s.user_id
                     WHERE s.token_hash = ?1 AND s.expires_at > ?2"
                ),
                params![token_hash, ms(now)],
                |r| {
                    Ok((
                        DashboardSession {
                            token_hash: r.get(0)?,
                            user_id: r.get(1)?,
                            csrf_token: r.get(2)?,
                            created_at: from_ms(r.get(3)?),
                            last_seen_at: from_ms(r.get(4)?),
                            expires_at: from_ms(r.get(5)?),
                        },
                        user_from_row(r, 6)?,
                    ))
                },
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn touch_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let token_hash = token_hash.to_owned();
        self.with(move |c| {
            c.execute(
                "UPDATE dashboard_sessions SET last_seen_at = ?2, expires_at = ?3 WHERE token_hash = ?1",
                params![token_hash, ms(now), ms(expires_at)],
            )
            .map_err(backend)?;
            // Expired sessions are of no use to anyone; drop them on the way.
            c.execute(
                "DELETE FROM dashboard_sessions WHERE expires_at <= ?1",
                params![ms(now)],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        let token_hash = token_hash.to_owned();
        self.with(move |c| {
            c.execute(
                "DELETE FROM dashboard_sessions WHERE token_hash = ?1",
                [&token_hash],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn record_login_failure(
        &self,
        subjects: Vec<String>,
        at: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.with(move |c| {
            let tx = c.transaction().map_err(backend)?;
            tx.execute(
                "DELETE FROM dashboard_login_failures WHERE at < ?1",
                params![ms(forget_before)],
            )
            .map_err(backend)?;
            for s in &subjects {
                tx.execute(
                    "INSERT INTO dashboard_login_failures (subject, at) VALUES (?1, ?2)",
                    params![s, ms(at)],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn login_failures(
        &self,
        subject: &str,
        since: DateTime<Utc>,
    ) -> StoreResult<(u64, Option<DateTime<Utc>>)> {
        let subject = subject.to_owned();
        self.with(move |c| {
            c.query_row(
                "SELECT COUNT(*), MAX(at) FROM dashboard_login_failures WHERE subject = ?1 AND at >= ?2",
                params![subject, ms(since)],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?.max(0) as u64,
                        opt_ms(r.get::<_, Option<i64>>(1)?),
                    ))
                },
            )
            .map_err(backend)
        })
        .await
    }

    async fn clear_login_failures(&self, subject: &str) -> StoreResult<()> {
        let subject = subject.to_owned();
        self.with(move |c| {
            c.execute(
                "DELETE FROM dashboard_login_failures WHERE subject = ?1",
                [&subject],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dupify_core::ApiKeySecret;

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        (dir, s)
    }

    fn new_key(account: &str, secret: &ApiKeySecret) -> NewKey {
        NewKey {
            account_id: account.into(),
            name: "k".into(),
            hash: secret.hash(),
            prefix: secret.display_prefix(),
            mode: secret.mode(),
            scopes: Scopes::parse_list("colors").unwrap(),
            expires_at: None,
        }
    }

    #[tokio::test]
    async fn accounts_keys_lifecycle() {
        let (dir, s) = store().await;
        let a = s
            .create_account(NewAccount {
                email: "a@x.test".into(),
                tier: Tier::Free,
                monthly_limit: None,
                rate_limit: Some(3),
            })
            .await
            .unwrap();
        assert_eq!(a.limits().rate_per_minute, 3);
        assert!(matches!(
            s.create_account(NewAccount {
                email: "a@x.test".into(),
                tier: Tier::Pro,
                monthly_limit: None,
                rate_limit: None
            })
            .await,
            Err(StoreError::Conflict(_))
        ));
        let secret = ApiKeySecret::generate(KeyMode::Live);
        let k = s.create_key(new_key(&a.id, &secret)).await.unwrap();
        let (found, acct) = s.find_key_by_hash(&secret.hash()).await.unwrap().unwrap();
        assert_eq!(found.id, k.id);
        assert_eq!(acct.id, a.id);
        let fresh = ApiKeySecret::generate(KeyMode::Live);
        let k2 = s
            .regenerate_key(&k.id, fresh.hash(), fresh.display_prefix(), Utc::now())
            .await
            .unwrap();
        assert_eq!(k2.name, k.name);
        assert_eq!(k2.scopes, k.scopes);
        let (old, _) = s.find_key_by_hash(&secret.hash()).await.unwrap().unwrap();
        assert!(old.revoked_at.is_some());
        // Survives reopening (migrations are idempotent).
        drop(s);
        let s = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(s.list_keys(&a.id).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn quota_reservation_is_exact_under_concurrency() {
        let (_dir, s) = store().await;
        let a = s
            .create_account(NewAccount {
                email: "q@x.test".into(),
                tier: Tier::Free,
                monthly_limit: Some(7),
                rate_limit: None,
            })
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let s = s.clone();
            let id = a.id.clone();
            tasks.push(tokio::spawn(async move {
                s.reserve_quota(&id, "p1", 1, Some(7)).await.unwrap()
            }));
        }
        let mut granted = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Reservation::Granted { .. }) {
                granted += 1;
            }
        }
        assert_eq!(granted, 7);
        assert_eq!(s.period_usage(&a.id, "p1").await.unwrap(), 7);
        let after = s
            .settle_usage(Settlement {
                account_id: a.id.clone(),
                key_id: "key_x".into(),
                mode: KeyMode::Live,
                period: "p1".into(),
                reserved: 2,
                used: 1,
                day: Utc::now().date_naive(),
            })
            .await
            .unwrap();
        assert_eq!(after, 6);
    }
}
