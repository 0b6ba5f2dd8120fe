//! Catalog search for Dupify: one in-memory index per account and mode, following the
//! store's change sequence, persisted to the data directory and reloaded at start.
//!
//! The store is the source of truth. Writers (uploads, deletes, finished extraction
//! jobs) commit there first and then call [`Catalogs::sync`], which applies every
//! change after the index's watermark in order; a periodic sync and save catch up
//! with anything a failed sync left behind.

pub mod ann;
mod error;
pub mod index;
pub mod synth;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use dupify_core::KeyMode;
use dupify_store::Store;

pub use error::{CatalogError, Result};
pub use index::{
    CatalogIndex, DuplicateGroup, Entry, Filter, Hit, Plan, Query, SearchConfig, SearchResult,
    Weights,
};

/// Rows read from the store per round of a sync; applied under the write lock in
/// chunks of [`APPLY_CHUNK`] so searches interleave with a large catch-up.
const SYNC_BATCH: u32 = 2_000;
const APPLY_CHUNK: usize = 64;

/// One catalog's index and its bookkeeping.
pub struct Shard {
    pub account_id: String,
    pub mode: KeyMode,
    pub index: RwLock<CatalogIndex>,
    /// One sync at a time per catalog (changes are applied in order anyway).
    sync_lock: tokio::sync::Mutex<()>,
    loaded: tokio::sync::OnceCell<()>,
    /// Watermark of the last snapshot written.
    saved_seq: Mutex<i64>,
}

impl Shard {
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, CatalogIndex> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, CatalogIndex> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Every catalog's index, loaded on first use.
pub struct Catalogs {
    store: Arc<dyn Store>,
    dir: PathBuf,
    pub config: SearchConfig,
    shards: Mutex<HashMap<(String, KeyMode), Arc<Shard>>>,
}

/// What loading one catalog took (logged, and printed by the benchmark).
#[derive(Debug, Clone, Copy)]
pub struct LoadReport {
    pub products: usize,
    pub from_snapshot: bool,
    pub read_ms: u64,
    pub build_ms: u64,
}

impl Catalogs {
    pub fn new(store: Arc<dyn Store>, dir: PathBuf, config: SearchConfig) -> Self {
        Catalogs {
            store,
            dir,
            config,
            shards: Mutex::new(HashMap::new()),
        }
    }

    fn shard_dir(&self, account_id: &str, mode: KeyMode) -> PathBuf {
        // Account ids are generated (`acct_<hex>`), safe as a path component.
        let safe: String = account_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        self.dir.join(format!("{safe}-{}", mode.as_str()))
    }

    /// The catalog's index, loaded (from its snapshot plus the store) if this is
    /// its first use.
    pub async fn shard(&self, account_id: &str, mode: KeyMode) -> Result<Arc<Shard>> {
        let shard = {
            let mut m = self.shards.lock().unwrap_or_else(|p| p.into_inner());
            m.entry((account_id.to_owned(), mode))
                .or_insert_with(|| {
                    Arc::new(Shard {
                        account_id: account_id.to_owned(),
                        mode,
                        index: RwLock::new(CatalogIndex::new(self.config.hnsw)),
                        sync_lock: tokio::sync::Mutex::new(()),
                        loaded: tokio::sync::OnceCell::new(),
                        saved_seq: Mutex::new(0),
                    })
                })
                .clone()
        };
        shard
            .loaded
            .get_or_try_init(|| async {
                let report = self.load(&shard).await?;
                tracing::info!(
                    account = %shard.account_id,
                    mode = shard.mode.as_str(),
                    products = report.products,
                    from_snapshot = report.from_snapshot,
                    read_ms = report.read_ms,
                    build_ms = report.build_ms,
                    "catalog index loaded"
                );
                Ok::<(), CatalogError>(())
            })
            .await?;
        Ok(shard)
    }

    async fn load(&self, shard: &Arc<Shard>) -> Result<LoadReport> {
        let t = Instant::now();
        let mut rows = Vec::new();
        let mut since = 0;
        loop {
            let batch = self
                .store
                .index_rows(&shard.account_id, shard.mode, since, 20_000, true)
                .await?;
            let done = batch.len() < 20_000;
            if let Some(last) = batch.last() {
                since = last.change_seq;
            }
            rows.extend(batch);
            if done {
                break;
            }
        }
        let read_ms = t.elapsed().as_millis() as u64;
        let products = rows.len();
        let dir = self.shard_dir(&shard.account_id, shard.mode);
        let params = self.config.hnsw;
        let t = Instant::now();
        let (idx, from_snapshot) =
            tokio::task::spawn_blocking(move || CatalogIndex::load(&dir, rows, params)).await??;
        let build_ms = t.elapsed().as_millis() as u64;
        let seq = idx.applied_seq;
        *shard.write() = idx;
        if from_snapshot {
            *shard.saved_seq.lock().unwrap_or_else(|p| p.into_inner()) = seq;
        }
        // Tombstones and failures after the newest live row.
        self.sync_loaded(shard).await?;
        Ok(LoadReport {
            products,
            from_snapshot,
            read_ms,
            build_ms,
        })
    }

    /// Applies every change the store has after the index's watermark.
    pub async fn sync(&self, account_id: &str, mode: KeyMode) -> Result<Arc<Shard>> {
        let shard = self.shard(account_id, mode).await?;
        self.sync_loaded(&shard).await?;
        Ok(shard)
    }

    async fn sync_loaded(&self, shard: &Arc<Shard>) -> Result<()> {
        let _one = shard.sync_lock.lock().await;
        loop {
            let since = shard.read().applied_seq;
            let rows = self
                .store
                .index_rows(&shard.account_id, shard.mode, since, SYNC_BATCH, false)
                .await?;
            let done = rows.len() < SYNC_BATCH as usize;
            if rows.is_empty() {
                break;
            }
            let s = shard.clone();
            tokio::task::spawn_blocking(move || -> Result<()> {
                let mut rows = rows.into_iter().peekable();
                while rows.peek().is_some() {
                    let mut idx = s.write();
                    for row in rows.by_ref().take(APPLY_CHUNK) {
                        idx.apply(row)?;
                    }
                }
                Ok(())
            })
            .await??;
            if done {
                break;
            }
        }
        Ok(())
    }

    /// Loads every catalog that has products (at start, in the background).
    pub async fn load_all(&self) -> Result<usize> {
        let catalogs = self.store.catalogs().await?;
        let n = catalogs.len();
        for (account, mode) in catalogs {
            if let Err(e) = self.shard(&account, mode).await {
                tracing::error!(account = %account, error = %e, "cannot load catalog index");
            }
        }
        Ok(n)
    }

    /// Catches up every loaded catalog with the store and writes snapshots of those
    /// that changed since their last one.
    pub async fn maintain(&self, save: bool) {
        let shards: Vec<Arc<Shard>> = {
            let m = self.shards.lock().unwrap_or_else(|p| p.into_inner());
            m.values().cloned().collect()
        };
        for shard in shards {
            if shard.loaded.get().is_none() {
                continue;
            }
            if let Err(e) = self.sync_loaded(&shard).await {
                tracing::warn!(account = %shard.account_id, error = %e, "catalog sync failed");
                continue;
            }
            if save {
                if let Err(e) = self.save(&shard).await {
                    tracing::warn!(account = %shard.account_id, error = %e, "catalog snapshot failed");
                }
            }
        }
    }

    /// Writes a snapshot when the index moved since the last one.
    pub async fn save(&self, shard: &Arc<Shard>) -> Result<bool> {
        let seq = shard.read().applied_seq;
        if *shard.saved_seq.lock().unwrap_or_else(|p| p.into_inner()) == seq {
            return Ok(false);
        }
        let dir = self.shard_dir(&shard.account_id, shard.mode);
        let s = shard.clone();
        let saved = tokio::task::spawn_blocking(move || -> Result<i64> {
            let idx = s.read();
            idx.save(&dir)?;
            Ok(idx.applied_seq)
        })
        .await??;
        *shard.saved_seq.lock().unwrap_or_else(|p| p.into_inner()) = saved;
        Ok(true)
    }

    /// Runs a read-only closure on a catalog's index off the async workers.
    pub async fn with_index<T, F>(&self, shard: Arc<Shard>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&CatalogIndex, &SearchConfig) -> T + Send + 'static,
    {
        let cfg = self.config;
        Ok(tokio::task::spawn_blocking(move || f(&shard.read(), &cfg)).await?)
    }
}
