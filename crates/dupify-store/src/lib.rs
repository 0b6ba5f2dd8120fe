//! Storage for Dupify: the [`Store`] trait every layer talks to, its embedded SQLite
//! implementation ([`SqliteStore`]), and the [`conformance`] checks any implementation
//! (the PostgreSQL store of the scale-out plan included) must pass.

pub mod catalog;
pub mod conformance;
pub mod dashboard;
mod model;
mod sqlite;
pub mod webhooks;

pub use catalog::{
    IndexRow, JobOutcome, LeasedJob, ListQuery, ProductFeatures, ProductImage, ProductInput,
    ProductPage, ProductRecord, ProductStatus, ProductVectors, UpsertContext, UpsertRefusal,
    UpsertResult,
};
pub use dashboard::{issue_key, reissue_key, DashboardSession, DashboardUser, NewDashboardUser};
pub use model::*;
pub use sqlite::SqliteStore;
pub use webhooks::{
    DeliveryAttempt, DeliveryStatus, LeasedDelivery, NewWebhookEndpoint, WebhookDelivery,
    WebhookEndpoint,
};

/// Every store trait, for code that calls store methods on a concrete store type.
pub mod prelude {
    pub use crate::{
        AccountStore, CatalogStore, DashboardStore, JobStore, KeyStore, Store, UsageStore,
        WebhookStore,
    };
}

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

/// Outcome of [`DashboardStore::begin_login_attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginAttempt {
    /// Counted as a failure of every subject until forgiven: go on and check the password.
    Counted,
    /// A subject already has its limit of failures in the window; `latest` is the most
    /// recent of the failures that caused it.
    Refused { latest: Option<DateTime<Utc>> },
}

/// Accounts: who calls, on which tier and limits.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    async fn create_account(&self, new: NewAccount) -> StoreResult<Account>;

    async fn update_account(&self, id: &str, update: AccountUpdate) -> StoreResult<Account>;

    async fn get_account(&self, id: &str) -> StoreResult<Account>;

    async fn list_accounts(&self) -> StoreResult<Vec<Account>>;
}

/// API keys: only hashes and display prefixes are stored.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    async fn create_key(&self, new: NewKey) -> StoreResult<KeyRecord>;

    async fn list_keys(&self, account_id: &str) -> StoreResult<Vec<KeyRecord>>;

    async fn get_key(&self, id: &str) -> StoreResult<KeyRecord>;

    async fn find_key_by_hash(&self, hash: &KeyHash) -> StoreResult<Option<(KeyRecord, Account)>>;

    async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<KeyRecord>;

    async fn regenerate_key(
        &self,
        id: &str,
        new_hash: KeyHash,
        new_prefix: String,
        at: DateTime<Utc>,
    ) -> StoreResult<KeyRecord>;

    async fn touch_keys(&self, touches: Vec<(String, DateTime<Utc>)>) -> StoreResult<()>;
}

/// Metering: monthly quota reservations and settlements, daily calls per key.
#[async_trait]
pub trait UsageStore: Send + Sync + 'static {
    async fn reserve_quota(
        &self,
        account_id: &str,
        period: &str,
        n: u64,
        limit: Option<u64>,
    ) -> StoreResult<Reservation>;

    async fn settle_usage(&self, settle: Settlement) -> StoreResult<u64>;

    async fn period_usage(&self, account_id: &str, period: &str) -> StoreResult<u64>;

    async fn usage_by_day(
        &self,
        account_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<Vec<DailyUsage>>;
}

/// Catalog products, their features and the change sequence the vector index follows.
#[async_trait]
pub trait CatalogStore: Send + Sync + 'static {
    async fn upsert_products(
        &self,
        ctx: UpsertContext,
        items: Vec<ProductInput>,
    ) -> StoreResult<Vec<Result<UpsertResult, UpsertRefusal>>>;

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

    async fn products_by_pk(
        &self,
        account_id: &str,
        mode: KeyMode,
        pks: Vec<i64>,
    ) -> StoreResult<Vec<ProductRecord>>;

    async fn index_rows(
        &self,
        account_id: &str,
        mode: KeyMode,
        since: i64,
        limit: u32,
        live_only: bool,
    ) -> StoreResult<Vec<IndexRow>>;

    async fn catalogs(&self) -> StoreResult<Vec<(String, KeyMode)>>;

    async fn insert_ready_products(
        &self,
        account_id: &str,
        mode: KeyMode,
        items: Vec<(ProductInput, ProductFeatures)>,
    ) -> StoreResult<Vec<String>>;
}

/// The durable extraction queue: leases, retries, outcomes.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
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

    async fn complete_job(
        &self,
        job: &LeasedJob,
        outcome: JobOutcome,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    async fn pending_jobs(&self) -> StoreResult<u64>;

    async fn lease_owners(&self) -> StoreResult<Vec<String>>;

    async fn release_leases(&self, owner: &str) -> StoreResult<u64>;
}

/// Dashboard users, sessions (token hashes only) and failed sign-ins.
#[async_trait]
pub trait DashboardStore: Send + Sync + 'static {
    async fn create_dashboard_user(
        &self,
        new: NewDashboardUser,
    ) -> StoreResult<(DashboardUser, Account)>;

    async fn find_dashboard_user(&self, email: &str) -> StoreResult<Option<DashboardUser>>;

    async fn create_session(&self, session: DashboardSession) -> StoreResult<()>;

    async fn find_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(DashboardSession, DashboardUser)>>;

    async fn touch_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()>;

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;

    /// A sign-in attempt, counted *before* its password is checked so that parallel
    /// guesses cannot all pass the check. In one atomic step: refused when any subject
    /// (`(subject, limit)`) already has `limit` failures at or after `since`; otherwise
    /// recorded at `at` as a failure of every subject. Failures older than
    /// `forget_before` are dropped on the way.
    async fn begin_login_attempt(
        &self,
        subjects: Vec<(String, u64)>,
        at: DateTime<Utc>,
        since: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> StoreResult<LoginAttempt>;

    /// Takes back one attempt counted at `at` for each subject (the password was right).
    async fn forgive_login_attempt(
        &self,
        subjects: Vec<String>,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    async fn login_failures(
        &self,
        subject: &str,
        since: DateTime<Utc>,
    ) -> StoreResult<(u64, Option<DateTime<Utc>>)>;

    async fn clear_login_failures(&self, subject: &str) -> StoreResult<()>;
}

/// Webhook endpoints (per account and mode) and the outbox of their deliveries.
#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// Registers an endpoint unless its catalog already has `max` (`None` then): the
    /// count and the insert are one step, so parallel requests cannot pass the limit.
    async fn create_webhook(
        &self,
        new: NewWebhookEndpoint,
        max: usize,
    ) -> StoreResult<Option<WebhookEndpoint>>;

    async fn list_webhooks(
        &self,
        account_id: &str,
        mode: KeyMode,
    ) -> StoreResult<Vec<WebhookEndpoint>>;

    async fn get_webhook(
        &self,
        account_id: &str,
        mode: KeyMode,
        id: &str,
    ) -> StoreResult<Option<WebhookEndpoint>>;

    /// Removes the endpoint and its undelivered events; `false` when there was none.
    async fn delete_webhook(&self, account_id: &str, mode: KeyMode, id: &str) -> StoreResult<bool>;

    /// A new signing secret, used from the next attempt on.
    async fn rotate_webhook_secret(
        &self,
        account_id: &str,
        mode: KeyMode,
        id: &str,
        secret: String,
    ) -> StoreResult<Option<WebhookEndpoint>>;

    /// Turns an endpoint on (clearing its failure count) or off.
    async fn set_webhook_enabled(
        &self,
        account_id: &str,
        mode: KeyMode,
        id: &str,
        enabled: bool,
    ) -> StoreResult<Option<WebhookEndpoint>>;

    /// The endpoint's deliveries, newest first.
    async fn webhook_deliveries(
        &self,
        account_id: &str,
        mode: KeyMode,
        endpoint_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>>;

    /// Up to `limit` due deliveries of enabled endpoints, the oldest of each endpoint
    /// and at most one per endpoint at a time, leased to `owner` until `now + lease_ms`;
    /// at most `per_account` in flight per account (across owners), so one account's
    /// slow receivers cannot hold every sender.
    async fn lease_deliveries(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_ms: i64,
        limit: u32,
        per_account: u32,
    ) -> StoreResult<Vec<LeasedDelivery>>;

    /// Records an attempt of a delivery leased by `owner` (and the endpoint's failure
    /// count). `false`, recording nothing, when the lease is no longer `owner`'s (it
    /// ran out and another sender took it) or the delivery is settled.
    async fn record_delivery_attempt(
        &self,
        seq: i64,
        owner: &str,
        attempt: DeliveryAttempt,
    ) -> StoreResult<bool>;

    /// Deliveries not yet delivered nor given up, across every endpoint.
    async fn pending_deliveries(&self) -> StoreResult<u64>;

    /// Drops the log of deliveries settled (delivered or given up) before `before`, and
    /// pending deliveries created before it (long past any retry window: their endpoint
    /// stayed disabled). Answers how many went.
    async fn prune_deliveries(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

/// The whole persistence seam: every aggregate's trait, plus a liveness check. Each
/// method is small and atomic on its own; [`conformance`] states the contract an
/// implementation meets.
#[async_trait]
pub trait Store:
    AccountStore + KeyStore + UsageStore + CatalogStore + JobStore + DashboardStore + WebhookStore
{
    async fn ping(&self) -> StoreResult<()>;
}
