//! Dashboard users, their sessions and failed sign-in attempts (migration 3).
//!
//! A dashboard user is bound to exactly one account. Sessions are stored by the SHA-256
//! of their token only; the token itself lives in the browser's cookie.

use chrono::{DateTime, Utc};
use dupify_core::{ApiKeySecret, KeyMode, Scopes};

use crate::{KeyRecord, NewKey, Store, StoreError, StoreResult};

#[derive(Debug, Clone)]
pub struct DashboardUser {
    pub id: String,
    pub account_id: String,
    pub email: String,
    /// PHC string (argon2id).
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewDashboardUser {
    /// Normalised by the caller (trimmed, lower case).
    pub email: String,
    pub password_hash: String,
    pub tier: dupify_core::Tier,
}

#[derive(Debug, Clone)]
pub struct DashboardSession {
    pub token_hash: String,
    pub user_id: String,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Creates a key whose secret is generated here; the secret is returned once and only
/// its hash and display prefix are stored. The CLI and the dashboard both use this.
pub async fn issue_key(
    store: &dyn Store,
    account_id: &str,
    name: &str,
    mode: KeyMode,
    scopes: Scopes,
    expires_at: Option<DateTime<Utc>>,
) -> StoreResult<(ApiKeySecret, KeyRecord)> {
    let secret = ApiKeySecret::generate(mode);
    let rec = store
        .create_key(NewKey {
            account_id: account_id.to_owned(),
            name: name.to_owned(),
            hash: secret.hash(),
            prefix: secret.display_prefix(),
            mode,
            scopes,
            expires_at,
        })
        .await?;
    Ok((secret, rec))
}

/// A new secret for `old` (same name, scopes, mode, expiry); `old` is revoked in the
/// same transaction. A revoked key gives [`StoreError::Conflict`].
pub async fn reissue_key(
    store: &dyn Store,
    old: &KeyRecord,
    at: DateTime<Utc>,
) -> StoreResult<(ApiKeySecret, KeyRecord)> {
    if old.revoked_at.is_some() {
        return Err(StoreError::Conflict(
            "the key is revoked; create a new key instead".into(),
        ));
    }
    let secret = ApiKeySecret::generate(old.mode);
    let rec = store
        .regenerate_key(&old.id, secret.hash(), secret.display_prefix(), at)
        .await?;
    Ok((secret, rec))
}
