//! Dashboard users, sessions and failed sign-ins on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::*;

pub(crate) const MIGRATION: &str = r#"
CREATE TABLE dashboard_users (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL UNIQUE REFERENCES accounts(id),
    email          TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);
CREATE TABLE dashboard_sessions (
    token_hash    TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES dashboard_users(id) ON DELETE CASCADE,
    csrf_token    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
CREATE INDEX dashboard_sessions_user ON dashboard_sessions(user_id);
CREATE TABLE dashboard_login_failures (
    subject  TEXT NOT NULL,
    at       INTEGER NOT NULL
);
CREATE INDEX dashboard_login_failures_subject ON dashboard_login_failures(subject, at);
"#;

#[async_trait]
impl DashboardStore for SqliteStore {
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

    async fn begin_login_attempt(
        &self,
        subjects: Vec<(String, u64)>,
        at: DateTime<Utc>,
        since: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> StoreResult<LoginAttempt> {
        self.with(move |c| {
            // IMMEDIATE: the counts and the insert are one step, also across processes.
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            tx.execute(
                "DELETE FROM dashboard_login_failures WHERE at < ?1",
                params![ms(forget_before)],
            )
            .map_err(backend)?;
            let mut refused = false;
            let mut latest: Option<DateTime<Utc>> = None;
            for (subject, limit) in &subjects {
                let (n, last): (i64, Option<i64>) = tx
                    .query_row(
                        "SELECT COUNT(*), MAX(at) FROM dashboard_login_failures WHERE subject = ?1 AND at >= ?2",
                        params![subject, ms(since)],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(backend)?;
                if n.max(0) as u64 >= *limit {
                    refused = true;
                    latest = latest.max(opt_ms(last));
                }
            }
            if refused {
                tx.commit().map_err(backend)?;
                return Ok(LoginAttempt::Refused { latest });
            }
            for (subject, _) in &subjects {
                tx.execute(
                    "INSERT INTO dashboard_login_failures (subject, at) VALUES (?1, ?2)",
                    params![subject, ms(at)],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(LoginAttempt::Counted)
        })
        .await
    }

    async fn forgive_login_attempt(
        &self,
        subjects: Vec<String>,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.with(move |c| {
            let tx = c.transaction().map_err(backend)?;
            for subject in &subjects {
                // One row: attempts of a subject at the same instant are alike.
                tx.execute(
                    "DELETE FROM dashboard_login_failures WHERE rowid IN
                     (SELECT rowid FROM dashboard_login_failures WHERE subject = ?1 AND at = ?2 LIMIT 1)",
                    params![subject, ms(at)],
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
