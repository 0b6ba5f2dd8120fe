//! Catalog search as a service, shared by `POST /v1/catalog/search` and the
//! dashboard's "find similar": the index search with its products loaded from the
//! store, and the opaque list cursor.

use base64::Engine as _;
use dupify_catalog::{Plan, Query};
use dupify_core::ApiError;
use dupify_store::ProductRecord;

use crate::state::SharedState;

pub fn encode_cursor(pk: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("p1:{pk}"))
}

pub fn decode_cursor(s: &str) -> Option<i64> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    text.strip_prefix("p1:")?
        .parse()
        .ok()
        .filter(|&n: &i64| n >= 0)
}

/// What [`search_index`] found: hits with their products, best first.
pub struct SearchOutcome {
    pub hits: Vec<(dupify_catalog::Hit, ProductRecord)>,
    pub plan: Plan,
    pub candidates: usize,
}

/// Runs `query` on the (account, mode) catalog's index in `model`'s space and loads the
/// hits' products. Shared by `POST /v1/catalog/search` and the dashboard.
///
/// The index first catches up with the store, so a product whose `embedding_status`
/// a client has read as `ready` (or whose deletion was answered) is searched as such:
/// the worker commits before it syncs, and a search may fall in between.
pub async fn search_index(
    state: &SharedState,
    account_id: &str,
    mode: dupify_core::KeyMode,
    model: &str,
    query: Query,
    explicit_model: bool,
) -> Result<SearchOutcome, ApiError> {
    let shard = state.catalogs.sync(account_id, mode).await.map_err(|e| {
        tracing::error!(error = %e, "catalog index unavailable");
        ApiError::unavailable("The catalog index is loading. Retry shortly.", 5)
    })?;
    let m = model.to_owned();
    let result = state
        .catalogs
        .with_index(shard, move |idx, cfg| {
            idx.space(&m).map(|s| s.search(&query, cfg))
        })
        .await?;
    let (hits, plan, candidates) = match result.transpose()? {
        None if explicit_model => {
            return Err(ApiError::invalid(
                "model",
                format!("no product of this catalog is embedded with {model}"),
            ))
        }
        None => (Vec::new(), Plan::Exact, 0),
        Some(r) => (r.hits, r.plan, r.candidates),
    };
    let products = state
        .store
        .products_by_pk(account_id, mode, hits.iter().map(|h| h.pk).collect())
        .await
        .map_err(ApiError::from)?;
    let mut by_pk: std::collections::HashMap<i64, ProductRecord> =
        products.into_iter().map(|p| (p.pk, p)).collect();
    let hits = hits
        .into_iter()
        .filter_map(|h| {
            let p = by_pk.remove(&h.pk)?;
            Some((h, p))
        })
        .collect();
    Ok(SearchOutcome {
        hits,
        plan,
        candidates,
    })
}
