//! The approximate-nearest-neighbour seam, and its HNSW implementation on `usearch`.
//!
//! Why usearch: it supports everything the catalog needs in one well-kept crate —
//! incremental add and remove, a filter predicate evaluated during graph traversal,
//! save/load, concurrent readers, f16 storage — and it measured fastest here
//! (docs/BENCHMARKS.md, "Vector index: crate comparison").

use std::path::Path;

/// Keys are product row ids. Scores are inner products of L2-normalised vectors.
pub trait AnnIndex: Send + Sync {
    fn dimensions(&self) -> usize;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn add(&self, key: u64, vector: &[f32]) -> crate::Result<()>;
    fn remove(&self, key: u64) -> crate::Result<()>;
    /// Up to `k` nearest keys with their similarity, best first; `filter` is applied
    /// while the graph is traversed, so a selective filter still returns `k` results
    /// when that many exist.
    fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&(dyn Fn(u64) -> bool + Sync)>,
    ) -> crate::Result<Vec<(u64, f32)>>;
    fn contains(&self, key: u64) -> bool;
    /// Makes room for `n` vectors in all, so that [`AnnIndex::add_reserved`] can be
    /// called from several threads at once.
    fn reserve(&self, n: usize) -> crate::Result<()>;
    /// Adds a new key without growing the index (see `reserve`); thread-safe.
    fn add_reserved(&self, key: u64, vector: &[f32]) -> crate::Result<()>;
    fn save(&self, path: &Path) -> crate::Result<()>;
    fn memory_bytes(&self) -> usize;
}

/// Graph parameters (documented with their measurements in docs/BENCHMARKS.md).
#[derive(Debug, Clone, Copy)]
pub struct HnswParams {
    /// Links per node (HNSW `M`).
    pub connectivity: usize,
    /// Candidate list while inserting (`ef_construction`).
    pub expansion_add: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            connectivity: 16,
            expansion_add: 128,
        }
    }
}

/// Concurrent operations one index allows. usearch keeps one search context per
/// reserved thread and does not wait for a free one (a call beyond the reserve
/// corrupts its bookkeeping and deadlocks), so calls are admitted by [`Slots`] first.
const CONTEXTS: usize = 16;

/// A counting semaphore over the index's thread contexts.
struct Slots {
    free: std::sync::Mutex<usize>,
    cv: std::sync::Condvar,
}

struct Slot<'a>(&'a Slots);

impl Slots {
    fn take(&self) -> Slot<'_> {
        let mut n = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *n == 0 {
            n = self.cv.wait(n).unwrap_or_else(|p| p.into_inner());
        }
        *n -= 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.0.cv.notify_one();
    }
}

pub struct UsearchIndex {
    index: usearch::Index,
    slots: Slots,
}

fn options(dims: usize, p: HnswParams) -> usearch::IndexOptions {
    usearch::IndexOptions {
        dimensions: dims,
        metric: usearch::MetricKind::IP,
        // Half precision halves the graph's vector memory; results are re-scored with
        // the exact f32 vectors the catalog keeps, so ranking does not suffer.
        quantization: usearch::ScalarKind::F16,
        connectivity: p.connectivity,
        expansion_add: p.expansion_add,
        expansion_search: 64,
        multi: false,
    }
}

fn err(e: impl std::fmt::Display) -> crate::CatalogError {
    crate::CatalogError::Index(format!("usearch: {e}"))
}

impl UsearchIndex {
    pub fn new(dims: usize, params: HnswParams) -> crate::Result<Self> {
        let index = usearch::Index::new(&options(dims, params)).map_err(err)?;
        index
            .reserve_capacity_and_threads(1024, CONTEXTS)
            .map_err(err)?;
        Ok(Self::wrap(index))
    }

    /// Loads a saved index; refuses one of other dimensions.
    pub fn load(path: &Path, dims: usize, params: HnswParams) -> crate::Result<Self> {
        let index = usearch::Index::new(&options(dims, params)).map_err(err)?;
        let p = path
            .to_str()
            .ok_or_else(|| err("index path is not UTF-8"))?;
        index.load(p).map_err(err)?;
        if index.dimensions() != dims {
            return Err(err(format!(
                "saved index has {} dimensions, expected {dims}",
                index.dimensions()
            )));
        }
        index
            .reserve_capacity_and_threads(index.capacity().max(1024), CONTEXTS)
            .map_err(err)?;
        Ok(Self::wrap(index))
    }

    fn wrap(index: usearch::Index) -> Self {
        UsearchIndex {
            index,
            slots: Slots {
                free: std::sync::Mutex::new(CONTEXTS),
                cv: std::sync::Condvar::new(),
            },
        }
    }
}

impl AnnIndex for UsearchIndex {
    fn dimensions(&self) -> usize {
        self.index.dimensions()
    }
    fn len(&self) -> usize {
        self.index.size()
    }
    fn add(&self, key: u64, vector: &[f32]) -> crate::Result<()> {
        if self.index.size() + 1 > self.index.capacity() {
            let cap = (self.index.capacity() * 2).max(1024);
            self.index
                .reserve_capacity_and_threads(cap, CONTEXTS)
                .map_err(err)?;
        }
        if self.index.contains(key) {
            self.index.remove(key).map_err(err)?;
        }
        let _slot = self.slots.take();
        self.index.add(key, vector).map_err(err)
    }
    fn remove(&self, key: u64) -> crate::Result<()> {
        if self.index.contains(key) {
            self.index.remove(key).map_err(err)?;
        }
        Ok(())
    }
    fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&(dyn Fn(u64) -> bool + Sync)>,
    ) -> crate::Result<Vec<(u64, f32)>> {
        if k == 0 || self.index.size() == 0 {
            return Ok(Vec::new());
        }
        // The index-wide expansion setting is shared state; asking for `max(k, ef)`
        // results widens the beam per query instead (usearch searches with at least
        // `count` candidates), so concurrent searches need no lock.
        let count = k.max(ef);
        let _slot = self.slots.take();
        let m = match filter {
            Some(f) => self.index.filtered_search(query, count, f),
            None => self.index.search(query, count),
        }
        .map_err(err)?;
        Ok(m.keys
            .into_iter()
            .zip(m.distances)
            .take(k)
            .map(|(k, d)| (k, 1.0 - d))
            .collect())
    }
    fn contains(&self, key: u64) -> bool {
        self.index.contains(key)
    }
    fn reserve(&self, n: usize) -> crate::Result<()> {
        if n > self.index.capacity() {
            self.index
                .reserve_capacity_and_threads(n, CONTEXTS)
                .map_err(err)?;
        }
        Ok(())
    }
    fn add_reserved(&self, key: u64, vector: &[f32]) -> crate::Result<()> {
        let _slot = self.slots.take();
        self.index.add(key, vector).map_err(err)
    }
    fn save(&self, path: &Path) -> crate::Result<()> {
        let p = path
            .to_str()
            .ok_or_else(|| err("index path is not UTF-8"))?;
        self.index.save(p).map_err(err)
    }
    fn memory_bytes(&self) -> usize {
        self.index.memory_usage()
    }
}
