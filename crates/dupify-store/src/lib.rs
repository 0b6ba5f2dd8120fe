//! Storage for Dupify: the [`Store`] trait every layer talks to, its embedded SQLite
//! implementation ([`SqliteStore`]), and the [`conformance`] checks any implementation
//! (the PostgreSQL store of the scale-out plan included) must pass.

pub mod catalog;
pub mod conformance;
pub mod dashboard;
mod model;
mod sqlite;

pub use catalog::{
    IndexRow, JobOutcome, LeasedJob, ListQuery, ProductFeatures, ProductImage, ProductInput,
    ProductPage, ProductRecord, ProductStatus, ProductVectors, UpsertContext, UpsertRefusal,
    UpsertResult,
};
pub use dashboard::{issue_key, reissue_key, DashboardSession, DashboardUser, NewDashboardUser};
pub use model::*;
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use dupify_core::{KeyHash, KeyMode};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Backend(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A missing row is the API's `not_found` (another account's resource looks the same
/// as one that does not exist); every other store failure is ours: logged with its
/// cause, answered as `internal_error`.
impl From<StoreError> for dupify_core::ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => {
                dupify_core::ApiError::from_code(dupify_core::ErrorCode::NotFound)
            }
            other => {
                tracing::error!(error = %other, "store failure");
                dupify_core::ApiError::internal()
            }
        }
    }
}

/// Outcome of an attempt to reserve monthly quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Reserved; `used` is the period's usage including this reservation.
    Granted { used: u64 },
    /// Not reserved: granting would pass the limit. `used` is the usage as it stands.
    Exceeded { used: u64 },
}

/// The persistence seam. Methods are small and each is atomic on its own.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap liveness query for `/ready`.
    async fn ping(&self) -> StoreResult<()>;

    async fn create_account(&self, new: NewAccount) -> StoreResult<Account>;
    async fn update_account(&self, id: &str, update: AccountUpdate) -> StoreResult<Account>;
    async fn get_account(&self, id: &str) -> StoreResult<Account>;
    async fn list_accounts(&self) -> StoreResult<Vec<Account>>;

    /// Stores a key whose secret the caller generated (only the hash and prefix arrive here).
    async fn create_key(&self, new: NewKey) -> StoreResult<KeyRecord>;
    async fn list_keys(&self, account_id: &str) -> StoreResult<Vec<KeyRecord>>;
    async fn get_key(&self, id: &str) -> StoreResult<KeyRecord>;
    /// The key with this hash (revoked and expired ones included) and its account.
    async fn find_key_by_hash(&self, hash: &KeyHash) -> StoreResult<Option<(KeyRecord, Account)>>;
    /// Revokes the key; revoking twice keeps the first time.
    async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<KeyRecord>;
    /// In one transaction: a new key with the old one's name, scopes, mode and expiry,
    /// and the old one revoked.
    async fn regenerate_key(
        &self,
        id: &str,
        new_hash: KeyHash,
        new_prefix: String,
        at: DateTime<Utc>,
    ) -> StoreResult<KeyRecord>;
    /// Batched `last_used_at` updates (the server coalesces them).
    async fn touch_keys(&self, touches: Vec<(String, DateTime<Utc>)>) -> StoreResult<()>;

    /// Atomically adds `n` to the period's usage unless that passes `limit`.
    async fn reserve_quota(
        &self,
        account_id: &str,
        period: &str,
        n: u64,
        limit: Option<u64>,
    ) -> StoreResult<Reservation>;
    /// Settles a request: gives back `reserved - used` quota units and records `calls`
    /// for the key's daily statistics. Returns the period usage afterwards.
    async fn settle_usage(&self, settle: Settlement) -> StoreResult<u64>;
    async fn period_usage(&self, account_id: &str, period: &str) -> StoreResult<u64>;
    /// Daily calls per key between two days (inclusive).
    async fn usage_by_day(
        &self,
        account_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<Vec<DailyUsage>>;

    // ------------------------------------------------------------------ catalog

    /// Upserts the products of one upload (by `external_id`) with their extraction
    /// jobs, in one transaction. One result per item, in order.
    async fn upsert_products(
        &self,
        ctx: UpsertContext,
        items: Vec<ProductInput>,
    ) -> StoreResult<Vec<Result<UpsertResult, UpsertRefusal>>>;
    /// A product of this catalog, `None` for any other account's or mode's.
    async fn get_product(
        &self,
        account_id: &str,
        mode: KeyMode,
        id: &str,
        with_vectors: bool,
    ) -> StoreResult<Option<ProductRecord>>;
    async fn list_products(
        &self,
        account_id: &str,
        mode: KeyMode,
        query: ListQuery,
    ) -> StoreResult<ProductPage>;
    /// Deletes a product; `None` when there is no such product in this catalog.
    async fn delete_product(
        &self,
        account_id: &str,
        mode: KeyMode,
        id: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<i64>>;
    async fn catalog_status_counts(
        &self,
        account_id: &str,
        mode: KeyMode,
    ) -> StoreResult<Vec<(ProductStatus, u64)>>;
    /// Leases the oldest due extraction job for `lease_ms`.
    async fn lease_job(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_ms: i64,
    ) -> StoreResult<Option<LeasedJob>>;
    async fn retry_job(
        &self,
        job: &LeasedJob,
        run_after: DateTime<Utc>,
        error: &str,
        keep_attempt: bool,
    ) -> StoreResult<()>;
    async fn products_by_pk(
        &self,
        account_id: &str,
        mode: KeyMode,
        pks: Vec<i64>,
    ) -> StoreResult<Vec<ProductRecord>>;
    /// Records the job's outcome; false when the job was superseded meanwhile.
    async fn complete_job(
        &self,
        job: &LeasedJob,
        outcome: JobOutcome,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    async fn pending_jobs(&self) -> StoreResult<u64>;
    async fn lease_owners(&self) -> StoreResult<Vec<String>>;
    async fn release_leases(&self, owner: &str) -> StoreResult<u64>;
    /// Index rows changed after `since` (see [`catalog`]).
    async fn index_rows(
        &self,
        account_id: &str,
        mode: KeyMode,
        since: i64,
        limit: u32,
        live_only: bool,
    ) -> StoreResult<Vec<IndexRow>>;
    async fn catalogs(&self) -> StoreResult<Vec<(String, KeyMode)>>;
    /// Ready products with precomputed features (benchmarks, index tests at scale).
    async fn insert_ready_products(
        &self,
        account_id: &str,
        mode: KeyMode,
        items: Vec<(ProductInput, ProductFeatures)>,
    ) -> StoreResult<Vec<String>>;

    // ---------------------------------------------------------------- dashboard

    /// In one transaction: a new account on `tier` and a dashboard user bound to it.
    /// An email already used by an account or user is a [`StoreError::Conflict`].
    async fn create_dashboard_user(
        &self,
        new: NewDashboardUser,
    ) -> StoreResult<(DashboardUser, Account)>;
    async fn find_dashboard_user(&self, email: &str) -> StoreResult<Option<DashboardUser>>;
    async fn create_session(&self, session: DashboardSession) -> StoreResult<()>;
    /// The session with this token hash and its user, unless it has expired at `now`.
    async fn find_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(DashboardSession, DashboardUser)>>;
    /// Slides a session's idle expiry.
    async fn touch_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()>;
    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;
    /// Records one failed sign-in for each subject (e.g. `email:...`, `ip:...`) and
    /// forgets failures older than `forget_before`.
    async fn record_login_failure(
        &self,
        subjects: Vec<String>,
        at: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Failures of `subject` at or after `since`, and the latest of them.
    async fn login_failures(
        &self,
        subject: &str,
        since: DateTime<Utc>,
    ) -> StoreResult<(u64, Option<DateTime<Utc>>)>;
    async fn clear_login_failures(&self, subject: &str) -> StoreResult<()>;
}
