//! One catalog's searchable state: per embedding model a "space" holding every ready
//! product's filter fields and exact vectors, plus an HNSW graph over the visual
//! vectors. Searches pick a plan per query (see [`Plan`]) so filters never cost recall.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use dupify_store::IndexRow;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ann::{AnnIndex, HnswParams, UsearchIndex};

/// A product as search sees it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub pk: i64,
    pub id: String,
    /// Lower-cased: filters on category and brand ignore case.
    pub category: Option<String>,
    pub brand: Option<String>,
    pub price: Option<f64>,
    pub currency: String,
    pub metadata: Map<String, Value>,
    pub visual: Vec<f32>,
    pub silhouette: Vec<f32>,
    pub color: Vec<f32>,
}

impl Entry {
    /// The entry of a live row and the model space it belongs to.
    pub fn from_row(row: IndexRow) -> Option<(String, Entry)> {
        if !row.live {
            return None;
        }
        let v = row.vectors?;
        if v.embedding.is_empty() {
            return None;
        }
        let metadata = match serde_json::from_str::<Value>(&row.metadata) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        Some((
            v.model,
            Entry {
                pk: row.pk,
                id: row.id,
                category: row.category.map(|s| s.to_lowercase()),
                brand: row.brand.map(|s| s.to_lowercase()),
                price: row.price,
                currency: row.currency,
                metadata,
                visual: v.embedding,
                silhouette: v.silhouette,
                color: v.color,
            },
        ))
    }
}

/// Which products a search may return.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub category: Option<String>,
    pub brand: Option<String>,
    pub price_min: Option<f64>,
    pub price_max: Option<f64>,
    pub currency: Option<String>,
    pub metadata: Map<String, Value>,
    /// Dupes mode: only products priced strictly below this.
    pub cheaper_than: Option<f64>,
    pub exclude: HashSet<i64>,
}

impl Filter {
    /// Whether anything besides exclusions narrows the result set.
    pub fn narrows(&self) -> bool {
        self.category.is_some()
            || self.brand.is_some()
            || self.price_min.is_some()
            || self.price_max.is_some()
            || self.currency.is_some()
            || !self.metadata.is_empty()
            || self.cheaper_than.is_some()
    }

    pub fn matches(&self, e: &Entry) -> bool {
        if let Some(c) = &self.category {
            if e.category.as_deref() != Some(c.as_str()) {
                return false;
            }
        }
        if let Some(b) = &self.brand {
            if e.brand.as_deref() != Some(b.as_str()) {
                return false;
            }
        }
        if let Some(c) = &self.currency {
            if !e.currency.eq_ignore_ascii_case(c) {
                return false;
            }
        }
        if self.price_min.is_some() || self.price_max.is_some() || self.cheaper_than.is_some() {
            let Some(p) = e.price else {
                return false;
            };
            if self.price_min.is_some_and(|m| p < m)
                || self.price_max.is_some_and(|m| p > m)
                || self.cheaper_than.is_some_and(|m| p >= m)
            {
                return false;
            }
        }
        self.metadata
            .iter()
            .all(|(k, v)| e.metadata.get(k).is_some_and(|have| json_eq(have, v)))
            && (self.exclude.is_empty() || !self.exclude.contains(&e.pk))
    }
}

/// Numbers compare by value (`1` equals `1.0`), everything else structurally.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// The blend of the three similarities (non-negative; normalised by their sum).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    pub visual: f32,
    pub silhouette: f32,
    pub color: f32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            visual: 1.0,
            silhouette: 0.0,
            color: 0.0,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Query {
    pub visual: Option<Vec<f32>>,
    pub silhouette: Option<Vec<f32>>,
    pub color: Option<Vec<f32>>,
    pub weights: Weights,
    pub top_k: usize,
    pub min_score: f32,
    pub filter: Filter,
}

#[derive(Debug, Clone)]
pub struct Hit {
    pub pk: i64,
    pub id: String,
    pub score: f32,
    pub visual: Option<f32>,
    pub silhouette: Option<f32>,
    pub color: Option<f32>,
}

/// How a search was answered (reported in responses and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    /// Every (matching) product scored: small catalogs, selective filters, or a blend
    /// without the visual component.
    Exact,
    /// HNSW over the visual vectors, then exact re-scoring of the candidates.
    Hnsw,
    /// HNSW with the filter applied during traversal (a broad filter).
    HnswFiltered,
}

#[derive(Debug, Clone)]
pub struct SearchResult {
    pub hits: Vec<Hit>,
    pub plan: Plan,
    /// Products the filter lets through (when it was evaluated), else the space size.
    pub candidates: usize,
}

/// Tunables, with defaults chosen from the measurements in docs/BENCHMARKS.md.
#[derive(Debug, Clone, Copy)]
pub struct SearchConfig {
    /// Up to this many (matching) products, exact scoring is used instead of HNSW.
    pub exact_threshold: usize,
    /// HNSW beam width at search time.
    pub ef: usize,
    /// Visual candidates re-scored when silhouette or color weights are set.
    pub rerank_candidates: usize,
    pub hnsw: HnswParams,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            exact_threshold: 5_000,
            ef: 128,
            rerank_candidates: 200,
            hnsw: HnswParams::default(),
        }
    }
}

/// All products embedded with one model.
pub struct Space {
    pub model: String,
    pub dims: usize,
    entries: Vec<Entry>,
    by_pk: HashMap<i64, usize>,
    /// Products per (is_brand, lower-cased value): a category or brand filter starts
    /// from its posting list instead of scanning the whole space.
    postings: HashMap<(bool, String), HashSet<i64>>,
    ann: UsearchIndex,
}

/// When a filter leaves `m` of `n` products, exact scoring costs ≈ m·c_exact and a
/// filtered graph search ≈ c_graph·n/m (the traversal visits ~1/selectivity as many
/// nodes to find enough matches). Measured here at 768 dims: c_exact ≈ 0.2 µs per
/// product, c_graph ≈ 0.6 ms, so exact wins while m² ≤ 3000·n (m ≤ 17k at n = 100k).
const FILTERED_EXACT_RATIO: f64 = 3000.0;

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    // Eight independent accumulators over exact chunks: no bounds checks in the loop,
    // so it compiles to SIMD multiply-adds.
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

struct Scorer<'a> {
    q: &'a Query,
    wv: f32,
    ws: f32,
    wc: f32,
}

impl<'a> Scorer<'a> {
    fn new(q: &'a Query) -> Self {
        let w = q.weights;
        let wv = if q.visual.is_some() { w.visual } else { 0.0 };
        let ws = if q.silhouette.is_some() {
            w.silhouette
        } else {
            0.0
        };
        let wc = if q.color.is_some() { w.color } else { 0.0 };
        let sum = wv + ws + wc;
        let sum = if sum > 0.0 { sum } else { 1.0 };
        Scorer {
            q,
            wv: wv / sum,
            ws: ws / sum,
            wc: wc / sum,
        }
    }

    fn blended(&self, e: &Entry) -> f32 {
        let mut s = 0.0;
        if self.wv > 0.0 {
            s += self.wv * dot(self.q.visual.as_deref().unwrap_or(&[]), &e.visual);
        }
        if self.ws > 0.0 {
            s += self.ws * dot(self.q.silhouette.as_deref().unwrap_or(&[]), &e.silhouette);
        }
        if self.wc > 0.0 {
            s += self.wc * dot(self.q.color.as_deref().unwrap_or(&[]), &e.color);
        }
        s
    }

    fn hit(&self, e: &Entry) -> Hit {
        let part = |v: &Option<Vec<f32>>, ev: &[f32]| {
            v.as_deref()
                .filter(|_| !ev.is_empty())
                .map(|q| dot(q, ev).clamp(0.0, 1.0))
        };
        Hit {
            pk: e.pk,
            id: e.id.clone(),
            score: self.blended(e).clamp(0.0, 1.0),
            visual: part(&self.q.visual, &e.visual),
            silhouette: part(&self.q.silhouette, &e.silhouette),
            color: part(&self.q.color, &e.color),
        }
    }
}

/// The `k` best of `(score, index)` pairs, best first.
fn top_k(mut v: Vec<(f32, usize)>, k: usize) -> Vec<(f32, usize)> {
    let cmp = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0);
    if v.len() > k {
        v.select_nth_unstable_by(k, cmp);
        v.truncate(k);
    }
    v.sort_unstable_by(cmp);
    v
}

impl Space {
    pub fn new(model: &str, dims: usize, params: HnswParams) -> crate::Result<Self> {
        Ok(Space {
            model: model.to_owned(),
            dims,
            entries: Vec::new(),
            by_pk: HashMap::new(),
            postings: HashMap::new(),
            ann: UsearchIndex::new(dims, params)?,
        })
    }

    fn post(&mut self, pk: i64, category: &Option<String>, brand: &Option<String>, add: bool) {
        for key in [
            category.clone().map(|c| (false, c)),
            brand.clone().map(|b| (true, b)),
        ]
        .into_iter()
        .flatten()
        {
            if add {
                self.postings.entry(key).or_default().insert(pk);
            } else if let Some(set) = self.postings.get_mut(&key) {
                set.remove(&pk);
                if set.is_empty() {
                    self.postings.remove(&key);
                }
            }
        }
    }

    /// The slots a filter can match, from the smallest posting list it names; `None`
    /// when it names neither category nor brand (every product is a candidate).
    fn candidates(&self, f: &Filter) -> Option<Vec<usize>> {
        let keys: Vec<(bool, String)> = [
            f.category.clone().map(|c| (false, c)),
            f.brand.clone().map(|b| (true, b)),
        ]
        .into_iter()
        .flatten()
        .collect();
        if keys.is_empty() {
            return None;
        }
        let mut best: Option<&HashSet<i64>> = None;
        for k in &keys {
            match self.postings.get(k) {
                // A value no product has: nothing can match.
                None => return Some(Vec::new()),
                Some(set) => {
                    if best.is_none_or(|b| set.len() < b.len()) {
                        best = Some(set);
                    }
                }
            }
        }
        Some(
            best?
                .iter()
                .filter_map(|pk| self.by_pk.get(pk).copied())
                .collect(),
        )
    }

    /// Slots of every product the filter lets through.
    fn matching(&self, f: &Filter) -> Vec<usize> {
        match self.candidates(f) {
            Some(c) => c
                .into_iter()
                .filter(|&i| f.matches(&self.entries[i]))
                .collect(),
            None => (0..self.entries.len())
                .filter(|&i| f.matches(&self.entries[i]))
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, pk: i64) -> Option<&Entry> {
        self.by_pk.get(&pk).map(|&i| &self.entries[i])
    }

    pub fn ann_memory_bytes(&self) -> usize {
        self.ann.memory_bytes()
    }

    /// Adds or replaces an entry (its graph node is re-inserted).
    pub fn upsert(&mut self, e: Entry) -> crate::Result<()> {
        if e.visual.len() != self.dims {
            return Err(crate::CatalogError::Dimensions {
                model: self.model.clone(),
                expected: self.dims,
                got: e.visual.len(),
            });
        }
        self.ann.add(e.pk as u64, &e.visual)?;
        self.put_entry(e);
        Ok(())
    }

    fn put_entry(&mut self, e: Entry) {
        let (pk, category, brand) = (e.pk, e.category.clone(), e.brand.clone());
        match self.by_pk.get(&e.pk) {
            Some(&i) => {
                let old = std::mem::replace(&mut self.entries[i], e);
                self.post(old.pk, &old.category, &old.brand, false);
            }
            None => {
                self.by_pk.insert(e.pk, self.entries.len());
                self.entries.push(e);
            }
        }
        self.post(pk, &category, &brand, true);
    }

    pub fn remove(&mut self, pk: i64) -> crate::Result<bool> {
        let Some(i) = self.by_pk.remove(&pk) else {
            return Ok(false);
        };
        let gone = self.entries.swap_remove(i);
        self.post(gone.pk, &gone.category, &gone.brand, false);
        if i < self.entries.len() {
            let moved = self.entries[i].pk;
            self.by_pk.insert(moved, i);
        }
        self.ann.remove(pk as u64)?;
        Ok(true)
    }

    fn exact(&self, q: &Query, idx: impl Iterator<Item = usize>, k: usize) -> Vec<(f32, usize)> {
        let s = Scorer::new(q);
        let scored: Vec<(f32, usize)> = idx.map(|i| (s.blended(&self.entries[i]), i)).collect();
        top_k(scored, k)
    }

    /// Searches this space; a query vector of other dimensions (another model's) is
    /// refused with [`crate::CatalogError::Dimensions`].
    pub fn search(&self, q: &Query, cfg: &SearchConfig) -> crate::Result<SearchResult> {
        if let Some(v) = q.visual.as_ref().filter(|v| v.len() != self.dims) {
            return Err(crate::CatalogError::Dimensions {
                model: self.model.clone(),
                expected: self.dims,
                got: v.len(),
            });
        }
        let k = q.top_k.max(1);
        let scorer = Scorer::new(q);
        let visual_led = scorer.wv > 0.0;
        let narrows = q.filter.narrows();
        let mut candidates = self.entries.len();
        let (plan, ranked): (Plan, Vec<(f32, usize)>) =
            if !visual_led || self.entries.len() <= cfg.exact_threshold {
                let f = &q.filter;
                let idx = (0..self.entries.len()).filter(|&i| f.matches(&self.entries[i]));
                (Plan::Exact, self.exact(q, idx, k))
            } else if narrows {
                let matching = self.matching(&q.filter);
                candidates = matching.len();
                let (m, n) = (matching.len() as f64, self.entries.len() as f64);
                if matching.len() <= cfg.exact_threshold || m * m <= FILTERED_EXACT_RATIO * n {
                    (Plan::Exact, self.exact(q, matching.into_iter(), k))
                } else {
                    let fetch = self.fetch_size(&scorer, k, cfg);
                    let pred = |key: u64| {
                        self.by_pk
                            .get(&(key as i64))
                            .is_some_and(|&i| q.filter.matches(&self.entries[i]))
                    };
                    let found = self.ann.search(
                        q.visual.as_deref().unwrap_or(&[]),
                        fetch,
                        cfg.ef,
                        Some(&pred),
                    )?;
                    (Plan::HnswFiltered, self.rescore(q, found, k))
                }
            } else {
                let fetch = self.fetch_size(&scorer, k, cfg);
                let excl = &q.filter.exclude;
                let pred = |key: u64| !excl.contains(&(key as i64));
                let found = self.ann.search(
                    q.visual.as_deref().unwrap_or(&[]),
                    fetch,
                    cfg.ef,
                    if excl.is_empty() { None } else { Some(&pred) },
                )?;
                (Plan::Hnsw, self.rescore(q, found, k))
            };
        let hits = ranked
            .into_iter()
            .map(|(_, i)| scorer.hit(&self.entries[i]))
            .filter(|h| h.score >= q.min_score)
            .collect();
        Ok(SearchResult {
            hits,
            plan,
            candidates,
        })
    }

    /// With silhouette or color in the blend, more visual candidates are re-scored
    /// than are returned, so the blend can reorder them.
    fn fetch_size(&self, s: &Scorer<'_>, k: usize, cfg: &SearchConfig) -> usize {
        if s.ws > 0.0 || s.wc > 0.0 {
            (k * 10).max(cfg.rerank_candidates)
        } else {
            k
        }
    }

    fn rescore(&self, q: &Query, found: Vec<(u64, f32)>, k: usize) -> Vec<(f32, usize)> {
        let s = Scorer::new(q);
        let scored = found
            .into_iter()
            .filter_map(|(key, _)| self.by_pk.get(&(key as i64)).copied())
            .filter(|&i| q.filter.matches(&self.entries[i]))
            .map(|i| (s.blended(&self.entries[i]), i))
            .collect();
        top_k(scored, k)
    }

    /// Visual near-neighbours of one entry at or above `threshold` (exact scores).
    fn neighbours(
        &self,
        i: usize,
        threshold: f32,
        k: usize,
        filter: &Filter,
        cfg: &SearchConfig,
    ) -> Vec<(usize, f32)> {
        let e = &self.entries[i];
        let pred = |key: u64| {
            self.by_pk
                .get(&(key as i64))
                .is_some_and(|&j| filter.matches(&self.entries[j]))
        };
        let found = self
            .ann
            .search(
                &e.visual,
                k + 1,
                cfg.ef,
                if filter.narrows() || !filter.exclude.is_empty() {
                    Some(&pred)
                } else {
                    None
                },
            )
            .unwrap_or_default();
        found
            .into_iter()
            .filter_map(|(key, _)| self.by_pk.get(&(key as i64)).copied())
            .filter(|&j| j != i)
            .map(|j| (j, dot(&e.visual, &self.entries[j].visual)))
            .filter(|&(_, s)| s >= threshold)
            .collect()
    }

    /// Groups of products whose visual similarity chains at or above `threshold`
    /// (single linkage), each with its weakest link. One HNSW query per product,
    /// spread over `threads` threads: O(n log n), not O(n²).
    pub fn duplicates(
        &self,
        threshold: f32,
        filter: &Filter,
        neighbours: usize,
        threads: usize,
        cfg: &SearchConfig,
    ) -> Vec<DuplicateGroup> {
        let members = self.matching(filter);
        let threads = threads.max(1);
        let chunk = members.len().div_ceil(threads).max(1);
        let mut edges: Vec<(f32, usize, usize)> = std::thread::scope(|sc| {
            let handles: Vec<_> = members
                .chunks(chunk)
                .map(|part| {
                    sc.spawn(move || {
                        let mut out = Vec::new();
                        for &i in part {
                            for (j, s) in self.neighbours(i, threshold, neighbours, filter, cfg) {
                                if i < j {
                                    out.push((s, i, j));
                                } else {
                                    out.push((s, j, i));
                                }
                            }
                        }
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        edges.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        edges.dedup_by(|a, b| a.1 == b.1 && a.2 == b.2);
        // Kruskal-style union-find: edges strongest first, so a group's score is the
        // weakest edge that was needed to connect it.
        let n = self.entries.len();
        let mut parent: Vec<usize> = (0..n).collect();
        let mut weakest = vec![1.0f32; n];
        fn find(p: &mut [usize], x: usize) -> usize {
            let mut r = x;
            while p[r] != r {
                r = p[r];
            }
            let mut c = x;
            while p[c] != r {
                let next = p[c];
                p[c] = r;
                c = next;
            }
            r
        }
        let mut linked = Vec::new();
        for (s, a, b) in edges {
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            if ra == rb {
                continue;
            }
            parent[ra] = rb;
            weakest[rb] = s.min(weakest[ra]).min(weakest[rb]);
            linked.push(a);
            linked.push(b);
        }
        linked.sort_unstable();
        linked.dedup();
        let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
        for x in linked {
            let r = find(&mut parent, x);
            groups.entry(r).or_default().push(x);
        }
        let mut out: Vec<DuplicateGroup> = groups
            .into_iter()
            .filter(|(_, m)| m.len() > 1)
            .map(|(r, mut m)| {
                m.sort_unstable_by_key(|&i| self.entries[i].pk);
                DuplicateGroup {
                    ids: m.iter().map(|&i| self.entries[i].id.clone()).collect(),
                    score: weakest[r].clamp(0.0, 1.0),
                }
            })
            .collect();
        out.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(b.ids.len().cmp(&a.ids.len()))
                .then(a.ids.cmp(&b.ids))
        });
        out
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DuplicateGroup {
    pub ids: Vec<String>,
    pub score: f32,
}

/// One catalog (account × mode): its spaces and how far it has followed the store.
pub struct CatalogIndex {
    spaces: HashMap<String, Space>,
    /// Which space each product is in.
    location: HashMap<i64, String>,
    /// Every change up to this sequence number has been applied.
    pub applied_seq: i64,
    params: HnswParams,
}

#[derive(Serialize, Deserialize)]
struct SavedMeta {
    version: u32,
    applied_seq: i64,
    spaces: Vec<SavedSpace>,
}

#[derive(Serialize, Deserialize)]
struct SavedSpace {
    model: String,
    dims: usize,
    file: String,
    keys_file: String,
}

const META: &str = "meta.json";

impl CatalogIndex {
    pub fn new(params: HnswParams) -> Self {
        CatalogIndex {
            spaces: HashMap::new(),
            location: HashMap::new(),
            applied_seq: 0,
            params,
        }
    }

    pub fn space(&self, model: &str) -> Option<&Space> {
        self.spaces.get(model)
    }

    pub fn len(&self) -> usize {
        self.location.len()
    }

    pub fn is_empty(&self) -> bool {
        self.location.is_empty()
    }

    pub fn memory_bytes(&self) -> usize {
        self.spaces
            .values()
            .map(|s| {
                s.ann_memory_bytes()
                    + s.entries.len()
                        * (size_of::<Entry>()
                            + 4 * (s.dims
                                + s.entries
                                    .first()
                                    .map_or(0, |e| e.silhouette.len() + e.color.len())))
            })
            .sum()
    }

    fn remove_pk(&mut self, pk: i64) -> crate::Result<()> {
        if let Some(model) = self.location.remove(&pk) {
            if let Some(space) = self.spaces.get_mut(&model) {
                space.remove(pk)?;
            }
        }
        Ok(())
    }

    /// Applies one change from the store; changes at or below the watermark are
    /// already in (a replay after a concurrent sync) and skipped.
    pub fn apply(&mut self, row: IndexRow) -> crate::Result<()> {
        if row.change_seq <= self.applied_seq {
            return Ok(());
        }
        let seq = row.change_seq;
        let pk = row.pk;
        match Entry::from_row(row) {
            Some((model, entry)) => {
                if self.location.get(&pk).is_some_and(|m| *m != model) {
                    self.remove_pk(pk)?;
                }
                let params = self.params;
                let dims = entry.visual.len();
                let space = match self.spaces.entry(model.clone()) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(Space::new(&model, dims, params)?)
                    }
                };
                if let Err(e) = space.upsert(entry) {
                    tracing::warn!(pk, error = %e, "product left out of the index");
                    self.remove_pk(pk)?;
                } else {
                    self.location.insert(pk, model);
                }
            }
            None => self.remove_pk(pk)?,
        }
        self.applied_seq = seq;
        Ok(())
    }

    /// Writes the graphs and the watermark; the metadata goes last, so a crash
    /// mid-save leaves the previous snapshot (or none) in force, never a mix.
    pub fn save(&self, dir: &Path) -> crate::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut spaces = Vec::new();
        for (n, s) in self.spaces.values().enumerate() {
            let file = format!("space-{n}-{}.usearch", self.applied_seq);
            let keys_file = format!("space-{n}-{}.keys", self.applied_seq);
            s.ann.save(&dir.join(&file))?;
            let keys: Vec<u8> = s.entries.iter().flat_map(|e| e.pk.to_le_bytes()).collect();
            std::fs::write(dir.join(&keys_file), keys)?;
            spaces.push(SavedSpace {
                model: s.model.clone(),
                dims: s.dims,
                file,
                keys_file,
            });
        }
        let meta = SavedMeta {
            version: 1,
            applied_seq: self.applied_seq,
            spaces,
        };
        let tmp = dir.join("meta.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&meta)?)?;
        let f = std::fs::File::open(&tmp)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(META))?;
        // Older snapshots' files are no longer referenced.
        let keep: HashSet<String> = meta
            .spaces
            .iter()
            .flat_map(|s| [s.file.clone(), s.keys_file.clone()])
            .collect();
        for f in std::fs::read_dir(dir)?.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.starts_with("space-") && !keep.contains(&name) {
                let _ = std::fs::remove_file(f.path());
            }
        }
        Ok(())
    }

    /// Rebuilds the catalog from the store's live rows, reusing a saved graph where
    /// there is one: only products changed after its watermark are re-inserted.
    /// Returns the index and whether a snapshot was used.
    pub fn load(
        dir: &Path,
        rows: Vec<IndexRow>,
        params: HnswParams,
    ) -> crate::Result<(CatalogIndex, bool)> {
        let saved = std::fs::read(dir.join(META))
            .ok()
            .and_then(|b| serde_json::from_slice::<SavedMeta>(&b).ok());
        let mut idx = CatalogIndex::new(params);
        let mut watermark = 0;
        let mut used_snapshot = false;
        let mut saved_keys: HashMap<String, Vec<i64>> = HashMap::new();
        if let Some(meta) = saved {
            for s in &meta.spaces {
                let loaded = UsearchIndex::load(&dir.join(&s.file), s.dims, params).and_then(|a| {
                    let keys = std::fs::read(dir.join(&s.keys_file))?;
                    Ok((a, keys))
                });
                match loaded {
                    Ok((ann, keys)) => {
                        let keys = keys
                            .chunks_exact(8)
                            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                            .collect();
                        saved_keys.insert(s.model.clone(), keys);
                        idx.spaces.insert(
                            s.model.clone(),
                            Space {
                                model: s.model.clone(),
                                dims: s.dims,
                                entries: Vec::new(),
                                by_pk: HashMap::new(),
                                postings: HashMap::new(),
                                ann,
                            },
                        );
                    }
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), error = %e, "saved index unusable; rebuilding");
                        idx.spaces.clear();
                        saved_keys.clear();
                        break;
                    }
                }
            }
            if !idx.spaces.is_empty() || meta.spaces.is_empty() {
                watermark = meta.applied_seq;
                used_snapshot = true;
            }
        }
        let mut max_seq = watermark;
        // Graph insertions are collected per space and done in parallel below: a cold
        // build of 100k vectors is the slow part of a start without a snapshot.
        let mut pending: HashMap<String, Vec<i64>> = HashMap::new();
        for row in rows {
            max_seq = max_seq.max(row.change_seq);
            let seq = row.change_seq;
            let Some((model, entry)) = Entry::from_row(row) else {
                continue;
            };
            let pk = entry.pk;
            let dims = entry.visual.len();
            let space = match idx.spaces.entry(model.clone()) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(Space::new(&model, dims, params)?)
                }
            };
            if entry.visual.len() != space.dims {
                continue;
            }
            // Unchanged since the snapshot and in its graph: only the entry is needed.
            let in_graph = seq <= watermark && space.ann.contains(pk as u64);
            if !in_graph {
                if space.ann.contains(pk as u64) {
                    space.ann.remove(pk as u64)?;
                }
                pending.entry(model.clone()).or_default().push(pk);
            }
            space.put_entry(entry);
            idx.location.insert(pk, model);
        }
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        for (model, pks) in pending {
            let Some(space) = idx.spaces.get(&model) else {
                continue;
            };
            space.ann.reserve(space.ann.len() + pks.len() + 1024)?;
            let chunk = pks.len().div_ceil(threads).max(1);
            std::thread::scope(|sc| -> crate::Result<()> {
                let handles: Vec<_> = pks
                    .chunks(chunk)
                    .map(|part| {
                        sc.spawn(move || -> crate::Result<()> {
                            for &pk in part {
                                if let Some(e) = space.get(pk) {
                                    space.ann.add_reserved(pk as u64, &e.visual)?;
                                }
                            }
                            Ok(())
                        })
                    })
                    .collect();
                for h in handles {
                    h.join().map_err(|_| {
                        crate::CatalogError::Task("index build thread panicked".into())
                    })??;
                }
                Ok(())
            })?;
        }
        // Graph nodes of products that left the space after the snapshot.
        for (model, keys) in saved_keys {
            if let Some(space) = idx.spaces.get_mut(&model) {
                for pk in keys {
                    if !space.by_pk.contains_key(&pk) {
                        space.ann.remove(pk as u64)?;
                    }
                }
            }
        }
        idx.spaces.retain(|_, s| !s.is_empty());
        idx.applied_seq = max_seq;
        Ok((idx, used_snapshot))
    }
}
