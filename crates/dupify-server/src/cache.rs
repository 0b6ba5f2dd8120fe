//! The result cache (docs/API.md, "Cache"): results keyed by the image's SHA-256, the operation, its
//! options and the feature version, bounded by bytes and expiring after the TTL.
//!
//! Keys also include the account id: a shared cache would let one customer learn, from
//! `cached: true`, that another customer had sent the same picture.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};

pub type CacheKey = [u8; 32];

/// Builds a cache key from its parts; `options` must be canonical (fixed field order).
pub fn cache_key(
    account_id: &str,
    image_sha256: &[u8; 32],
    operation: &str,
    options: &str,
    version: &str,
) -> CacheKey {
    let mut h = Sha256::new();
    for part in [
        account_id.as_bytes(),
        image_sha256,
        operation.as_bytes(),
        options.as_bytes(),
        version.as_bytes(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// The cache seam: in-memory by default; a shared cache can implement it for replicas.
/// Values are the serialized JSON result without the `cached`/timing fields.
#[async_trait]
pub trait ResultCache: Send + Sync + 'static {
    async fn get(&self, key: &CacheKey) -> Option<Bytes>;
    async fn put(&self, key: CacheKey, value: Bytes);
    fn entry_count(&self) -> u64;
}

/// Bounded in-process cache (moka: TinyLFU admission, byte-weighted).
pub struct MemoryCache {
    inner: moka::sync::Cache<CacheKey, Bytes>,
}

impl MemoryCache {
    pub fn new(max_bytes: u64, ttl: Duration) -> Self {
        MemoryCache {
            inner: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_k: &CacheKey, v: &Bytes| (v.len() + 64).min(u32::MAX as usize) as u32)
                .time_to_live(ttl)
                .build(),
        }
    }
}

#[async_trait]
impl ResultCache for MemoryCache {
    async fn get(&self, key: &CacheKey) -> Option<Bytes> {
        self.inner.get(key)
    }
    async fn put(&self, key: CacheKey, value: Bytes) {
        self.inner.insert(key, value);
    }
    fn entry_count(&self) -> u64 {
        self.inner.entry_count()
    }
}

/// Used when the operator sets the cache budget to 0.
pub struct NoCache;

#[async_trait]
impl ResultCache for NoCache {
    async fn get(&self, _key: &CacheKey) -> Option<Bytes> {
        None
    }
    async fn put(&self, _key: CacheKey, _value: Bytes) {}
    fn entry_count(&self) -> u64 {
        0
    }
}

pub fn build(max_mib: u64, ttl: Duration) -> Arc<dyn ResultCache> {
    if max_mib == 0 {
        Arc::new(NoCache)
    } else {
        Arc::new(MemoryCache::new(max_mib * 1024 * 1024, ttl))
    }
}
