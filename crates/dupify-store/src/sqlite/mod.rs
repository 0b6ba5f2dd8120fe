//! Embedded SQLite store: WAL mode, versioned migrations, a small connection pool, and
//! blocking calls moved off the async workers with `spawn_blocking`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use dupify_core::{KeyMode, Scopes, Tier};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::*;

mod accounts;
mod catalog;
mod dashboard;
mod webhooks;

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
    catalog::MIGRATION,
    dashboard::MIGRATION,
    webhooks::MIGRATION,
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

pub(super) fn open_conn(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    // WAL lets the CLI write while the server reads; NORMAL sync is durable across
    // process crashes (only an OS crash can lose the last commits).
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

pub(super) fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
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

pub(super) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

pub(super) fn opt_ms(v: Option<i64>) -> Option<DateTime<Utc>> {
    v.map(from_ms)
}

pub(super) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

pub(super) fn conv_err(col: usize, msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, msg.into())
}

pub(super) const ACCOUNT_COLS: &str =
    "id, email, tier, monthly_limit, rate_limit, created_at, billing_anchor";

pub(super) fn account_from_row(r: &Row<'_>, off: usize) -> rusqlite::Result<Account> {
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

pub(super) const KEY_COLS: &str =
    "k.id, k.account_id, k.name, k.prefix, k.mode, k.scopes, k.created_at, \
                        k.last_used_at, k.expires_at, k.revoked_at";
pub(super) const KEY_NCOLS: usize = 10;

pub(super) fn key_from_row(r: &Row<'_>) -> rusqlite::Result<KeyRecord> {
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

pub(super) const USER_COLS: &str = "u.id, u.account_id, u.email, u.password_hash, u.created_at";

pub(super) fn user_from_row(r: &Row<'_>, off: usize) -> rusqlite::Result<DashboardUser> {
    Ok(DashboardUser {
        id: r.get(off)?,
        account_id: r.get(off + 1)?,
        email: r.get(off + 2)?,
        password_hash: r.get(off + 3)?,
        created_at: from_ms(r.get(off + 4)?),
    })
}

pub(super) fn get_account_tx(c: &Connection, id: &str) -> StoreResult<Account> {
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
pub(super) fn insert_key_tx(
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

pub(super) fn get_key_tx(c: &Connection, id: &str) -> StoreResult<KeyRecord> {
    c.query_row(
        &format!("SELECT {KEY_COLS} FROM api_keys k WHERE k.id = ?1"),
        [id],
        key_from_row,
    )
    .optional()
    .map_err(backend)?
    .ok_or(StoreError::NotFound)
}

pub(super) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.into())
}

pub(super) fn is_unique_violation(e: &rusqlite::Error) -> bool {
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
    pub(super) async fn with<T, F>(&self, f: F) -> StoreResult<T>
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
