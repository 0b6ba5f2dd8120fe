//! The catalog (docs/API.md, "Catalog"): products, search, duplicates.
//!
//! A product belongs to one account and one key mode (live or test). Every query is
//! scoped by both, so another account's id is simply not found.

use std::collections::HashSet;
use std::time::Instant;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use chrono::Utc;
use dupify_api::requests::{
    DuplicatesRequest, Filters, ProductUpload, ProductsUpload, SearchQuery, SearchRequest,
    SearchWeights,
};
use dupify_api::{
    round4, Deleted, DuplicateGroup, DuplicatesAnswer, EmbeddingError, EmbeddingStatus, Product,
    ProductPage, Scores, SearchAnswer, SearchHit, UpsertAnswer, UpsertStatus,
};
use dupify_catalog::{Filter, Query, Weights};
use dupify_core::{ApiError, ErrorCode, Scope};
use dupify_store::{
    ListQuery, ProductImage, ProductInput, ProductRecord, ProductStatus, UpsertContext,
    UpsertRefusal, UpsertResult,
};
use serde_json::{json, Map, Value};

use crate::auth::Caller;
use crate::body::{ImageBody, JsonBody};
use crate::catalog_search::{decode_cursor, encode_cursor, search_index};
use crate::error::{AppError, AppResult};
use crate::images::{load, parse_source, ImageSource};
use crate::state::SharedState;

fn iso(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn sha_hex(parts: &[&[u8]]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// One product of an upload, read at `prefix` of the body; base64 images are decoded
/// here so a bad one fails the upload, not the background job.
async fn parse_product(
    state: &SharedState,
    v: &Value,
    prefix: &str,
    files: &[Bytes],
) -> Result<ProductInput, ApiError> {
    let mut p: ProductUpload = dupify_api::requests::parse_under(v, prefix)?;
    let mut image = p.take_image();
    image.parameter = format!("{prefix}{}", image.parameter);
    let item = parse_source(image, &state.fetch_policy, files)?;
    let (image, image_ref) = match &item.source {
        ImageSource::Url(u) => {
            let s = u.to_string();
            let r = sha_hex(&[b"url:", s.as_bytes()]);
            (ProductImage::Url(s), r)
        }
        _ => {
            let loaded = load(state, &item).await?;
            let r = sha_hex(&[b"bytes:", &loaded.sha256]);
            (ProductImage::Bytes(loaded.bytes.to_vec()), r)
        }
    };
    Ok(ProductInput {
        external_id: p.external_id,
        title: p.title.unwrap_or_default(),
        sku: p.sku,
        description: p.description,
        brand: p.brand,
        category: p.category,
        price: p.price,
        currency: p.currency.unwrap_or_else(|| "USD".into()),
        product_url: p.product_url,
        image,
        image_ref,
        metadata: Value::Object(p.metadata.unwrap_or_default()).to_string(),
    })
}

// ------------------------------------------------------------------ rendering

fn status(s: ProductStatus) -> EmbeddingStatus {
    match s {
        ProductStatus::Processing => EmbeddingStatus::Processing,
        ProductStatus::Ready => EmbeddingStatus::Ready,
        ProductStatus::Failed => EmbeddingStatus::Failed,
    }
}

fn product(p: &ProductRecord) -> Product {
    let metadata = match serde_json::from_str(&p.metadata) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    Product {
        id: p.id.clone(),
        external_id: p.external_id.clone(),
        title: p.title.clone(),
        sku: p.sku.clone(),
        description: p.description.clone(),
        brand: p.brand.clone(),
        category: p.category.clone(),
        price: p.price,
        currency: p.currency.clone(),
        image_url: p.image_url.clone(),
        product_url: p.product_url.clone(),
        metadata,
        embedding_status: status(p.status),
        embedding_error: p.error_code.as_ref().map(|code| EmbeddingError {
            code: code.clone(),
            message: p.error_message.clone().unwrap_or_default(),
        }),
        created_at: iso(p.created_at),
        updated_at: iso(p.updated_at),
        processed_at: p.processed_at.map(iso),
        features: None,
    }
}

fn upsert_answer(r: &UpsertResult) -> UpsertAnswer {
    UpsertAnswer {
        id: r.id.clone(),
        external_id: r.external_id.clone(),
        status: if r.created {
            UpsertStatus::Created
        } else {
            UpsertStatus::Updated
        },
        embedding_status: status(r.embedding_status),
    }
}

fn refusal_error(caller: &Caller, r: &UpsertRefusal) -> ApiError {
    match r {
        UpsertRefusal::CatalogLimit {
            limit,
            current_size,
        } => ApiError::new(
            ErrorCode::CatalogLimitExceeded,
            format!(
                "The {} tier allows {limit} products in a catalog; it has {current_size}. Delete products or upgrade.",
                caller.account.tier.as_str()
            ),
        )
        .field("limit", *limit)
        .field("current_size", *current_size),
        UpsertRefusal::Quota { used, .. } => caller.meter.quota_error(*used),
    }
}

// ------------------------------------------------------------------ products

/// `POST /v1/catalog/products`: one product, or `{"products": [...]}`; a multipart
/// upload holds one product, its fields as form fields and its `image` file.
pub async fn upload(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Result<ImageBody, AppError>,
) -> AppResult<Response> {
    caller.require(Scope::Catalog)?;
    let body = body?;
    if body.multipart && body.has("products") {
        return Err(ApiError::invalid(
            "products",
            "a multipart upload holds one product (its fields and an image file); upload several as JSON {\"products\": [...]}",
        )
        .into());
    }
    if body.multipart && body.has("images") {
        return Err(ApiError::invalid(
            "images",
            "a product has one image: send it as the image part",
        )
        .into());
    }
    caller.meter.admit().await?;
    let limit = caller.limits.products_per_upload as usize;
    let (batch, parsed): (bool, Vec<Result<ProductInput, ApiError>>) = if body.has("products") {
        let items = body.parse::<ProductsUpload>()?.products.unwrap_or_default();
        if items.is_empty() || items.len() > limit {
            return Err(ApiError::invalid(
                "products",
                format!(
                    "products must contain 1 to {limit} items on the {} tier",
                    caller.account.tier.as_str()
                ),
            )
            .detail("count", items.len())
            .detail("limit", limit)
            .into());
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(parse_product(&state, item, &format!("products[{i}]."), &[]).await);
        }
        (true, out)
    } else {
        (
            false,
            vec![Ok(
                parse_product(&state, &body.json.0, "", &body.files).await?
            )],
        )
    };
    let ctx = UpsertContext {
        account_id: caller.account.id.clone(),
        mode: caller.mode(),
        key_id: caller.key.id.clone(),
        period: caller.period.key(),
        monthly_limit: caller.limits.monthly_calls,
        catalog_limit: caller.limits.catalog_products,
        now: Utc::now(),
    };
    let valid: Vec<ProductInput> = parsed
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    let mut stored = state.store.upsert_products(ctx, valid).await?.into_iter();
    let results: Vec<Result<UpsertResult, ApiError>> = parsed
        .into_iter()
        .map(|p| match p {
            Err(e) => Err(e),
            Ok(_) => match stored.next() {
                Some(Ok(r)) => Ok(r),
                Some(Err(refusal)) => Err(refusal_error(&caller, &refusal)),
                None => Err(ApiError::internal()),
            },
        })
        .collect();
    if results.iter().any(|r| r.is_ok()) {
        state.jobs_ready.notify_waiters();
        // Field changes (price, category, ...) of ready products reach the filters now.
        if let Err(e) = state.catalogs.sync(&caller.account.id, caller.mode()).await {
            tracing::warn!(error = %e, "catalog index sync after upload failed");
        }
    }
    if !batch {
        let r = results
            .into_iter()
            .next()
            .unwrap_or(Err(ApiError::internal()))?;
        let status = if r.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        return Ok((status, Json(upsert_answer(&r))).into_response());
    }
    let (mut created, mut updated, mut failed) = (0, 0, 0);
    let items: Vec<Value> = results
        .iter()
        .map(|r| match r {
            Ok(r) => {
                if r.created {
                    created += 1;
                } else {
                    updated += 1;
                }
                serde_json::to_value(upsert_answer(r)).unwrap_or_default()
            }
            Err(e) => {
                failed += 1;
                e.to_body(None)
            }
        })
        .collect();
    Ok(Json(json!({
        "results": items,
        "created": created,
        "updated": updated,
        "failed": failed,
    }))
    .into_response())
}

/// `GET /v1/catalog/products`: oldest first, keyset-paginated by an opaque cursor, so
/// concurrent inserts land on later pages and deletes never shift a page.
pub async fn list(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> AppResult<Json<ProductPage>> {
    caller.require(Scope::Catalog)?;
    caller.meter.admit().await?;
    let mut q = ListQuery {
        limit: 20,
        ..ListQuery::default()
    };
    let mut seen = HashSet::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if !seen.insert(k.to_string()) {
            return Err(ApiError::invalid(&k, format!("{k} is given more than once")).into());
        }
        let nonempty = |v: &str| -> Result<String, ApiError> {
            if v.trim().is_empty() {
                Err(ApiError::invalid(&k, format!("{k} must not be empty")))
            } else {
                Ok(v.trim().to_owned())
            }
        };
        match k.as_ref() {
            "limit" => {
                q.limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid("limit", "limit must be an integer between 1 and 100")
                            .detail("value", v.to_string())
                    })?
            }
            "cursor" => {
                q.after_pk = decode_cursor(&v).ok_or_else(|| {
                    ApiError::invalid(
                        "cursor",
                        "cursor is not one this API returned (use next_cursor as given)",
                    )
                })?
            }
            "category" => q.category = Some(nonempty(&v)?),
            "brand" => q.brand = Some(nonempty(&v)?),
            "external_id" => q.external_id = Some(nonempty(&v)?),
            "embedding_status" => {
                q.status = Some(ProductStatus::parse(&v).ok_or_else(|| {
                    ApiError::invalid(
                        "embedding_status",
                        "embedding_status must be processing, ready or failed",
                    )
                    .detail("value", v.to_string())
                })?)
            }
            other => {
                return Err(ApiError::invalid(
                    other,
                    "unknown query parameter; use limit, cursor, category, brand, embedding_status or external_id",
                )
                .into())
            }
        }
    }
    let page = state
        .store
        .list_products(&caller.account.id, caller.mode(), q)
        .await?;
    let next = if page.has_more {
        page.products.last().map(|p| encode_cursor(p.pk))
    } else {
        None
    };
    Ok(Json(ProductPage {
        data: page.products.iter().map(product).collect(),
        has_more: page.has_more,
        next_cursor: next,
        total: page.total,
    }))
}

/// `GET /v1/catalog/products/{id}` (`?include=embedding` adds the vectors).
pub async fn get(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> AppResult<Json<Product>> {
    caller.require(Scope::Catalog)?;
    caller.meter.admit().await?;
    let mut include_embedding = false;
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "include" => match v.as_ref() {
                "embedding" => include_embedding = true,
                other => {
                    return Err(ApiError::invalid("include", "include takes embedding")
                        .detail("value", other.to_string())
                        .into())
                }
            },
            other => {
                return Err(ApiError::invalid(other, "unknown query parameter; use include").into())
            }
        }
    }
    let p = state
        .store
        .get_product(&caller.account.id, caller.mode(), &id, include_embedding)
        .await?
        .ok_or_else(|| product_not_found(&id))?;
    let mut out = product(&p);
    let mut features: Value = p
        .features
        .as_deref()
        .and_then(|f| serde_json::from_str(f).ok())
        .unwrap_or(Value::Null);
    if let (Some(v), Value::Object(f)) = (&p.vectors, &mut features) {
        f.insert("embedding".into(), json!(v.embedding));
        if let Some(Value::Object(s)) = f.get_mut("silhouette") {
            s.insert("embedding".into(), json!(v.silhouette));
        }
        f.insert("color_signature".into(), json!(v.color));
    }
    out.features = Some(features);
    Ok(Json(out))
}

fn product_not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        "No product with this id in this catalog.",
    )
    .detail("id", id)
}

/// `DELETE /v1/catalog/products/{id}`: gone from listings and search at once.
pub async fn delete(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> AppResult<Json<Deleted>> {
    caller.require(Scope::Catalog)?;
    caller.meter.admit().await?;
    state
        .store
        .delete_product(&caller.account.id, caller.mode(), &id, Utc::now())
        .await?
        .ok_or_else(|| product_not_found(&id))?;
    // Awaited: a search right after this answer must not return the product.
    state
        .catalogs
        .sync(&caller.account.id, caller.mode())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "catalog index sync after delete failed");
            ApiError::internal()
        })?;
    Ok(Json(Deleted { id, deleted: true }))
}

// ------------------------------------------------------------------ search

/// The catalog filter a request's `filters` and `cheaper_than` describe.
fn filter(filters: Option<Filters>, cheaper_than: Option<f64>) -> Filter {
    let f = filters.unwrap_or_default();
    Filter {
        category: f.category,
        brand: f.brand,
        price_min: f.price_min,
        price_max: f.price_max,
        currency: f.currency,
        metadata: f.metadata.unwrap_or_default(),
        cheaper_than,
        exclude: HashSet::new(),
    }
}

fn weights(w: Option<SearchWeights>) -> Weights {
    match w {
        None => Weights::default(),
        Some(w) => Weights {
            visual: w.visual.unwrap_or(0.0) as f32,
            silhouette: w.silhouette.unwrap_or(0.0) as f32,
            color: w.color.unwrap_or(0.0) as f32,
        },
    }
}

/// The embedding model new products are processed with (and image/text queries use).
pub fn current_model(state: &SharedState) -> String {
    state.models().default_embedding_name()
}

/// Resolves `exclude_ids` (product ids of this catalog) to row ids; unknown ids are
/// ignored, as they cannot appear in results anyway.
async fn exclusions(
    state: &SharedState,
    caller: &Caller,
    ids: &[String],
) -> Result<HashSet<i64>, ApiError> {
    let mut out = HashSet::new();
    for id in ids {
        if let Some(p) = state
            .store
            .get_product(&caller.account.id, caller.mode(), id, false)
            .await?
        {
            out.insert(p.pk);
        }
    }
    Ok(out)
}

/// `POST /v1/catalog/search`.
pub async fn search(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Result<ImageBody, AppError>,
) -> AppResult<Json<SearchAnswer>> {
    caller.require(Scope::Catalog)?;
    let body = body?;
    if body.multipart && body.has("images") {
        return Err(ApiError::invalid(
            "images",
            "a search has one query image: send it as the image part",
        )
        .into());
    }
    let mut req: SearchRequest = body.parse()?;
    let top_k = req.top_k()?;
    let min_score = req.min_score.unwrap_or(0.0) as f32;
    let weights = weights(req.weights.take());
    let mut filter = filter(req.filters.take(), req.cheaper_than);
    let model_opt = req.model.take();
    caller.meter.admit().await?;
    let excluded = req.exclude_ids.take().unwrap_or_default();
    filter.exclude = exclusions(&state, &caller, &excluded).await?;
    caller.meter.reserve(1).await?;
    let started = Instant::now();

    let mut query = Query {
        weights,
        top_k,
        min_score,
        ..Query::default()
    };
    let model = match req.take_query() {
        SearchQuery::Product(id) => {
            let id = id.as_str();
            let p = state
                .store
                .get_product(&caller.account.id, caller.mode(), id, true)
                .await?
                .ok_or_else(|| product_not_found(id).detail("parameter", "product_id"))?;
            let Some(v) = p.vectors.filter(|_| p.status == ProductStatus::Ready) else {
                return Err(ApiError::invalid(
                    "product_id",
                    format!(
                        "this product has no features to search with (embedding_status {})",
                        p.status.as_str()
                    ),
                )
                .detail("embedding_status", p.status.as_str())
                .into());
            };
            filter.exclude.insert(p.pk);
            // Dupes of a product are compared in its own currency unless told otherwise.
            if filter.cheaper_than.is_some() && filter.currency.is_none() {
                filter.currency = Some(p.currency.clone());
            }
            query.visual = Some(v.embedding);
            query.silhouette = (!v.silhouette.is_empty()).then_some(v.silhouette);
            query.color = (!v.color.is_empty()).then_some(v.color);
            v.model
        }
        SearchQuery::Text(text) => {
            if weights.silhouette > 0.0 || weights.color > 0.0 {
                return Err(ApiError::invalid(
                    "weights",
                    "a text query has only visual similarity; silhouette and color weights need an image or product_id query",
                )
                .into());
            }
            let clip = match state.models().clip() {
                Some(c) if c.has_text() => c.clone(),
                _ => {
                    return Err(ApiError::invalid(
                        "text",
                        format!(
                            "text search needs a CLIP model with a text tower; this server's embedding models ({}) are for images only",
                            state.models().embedding_names().join(", ")
                        ),
                    )
                    .into())
                }
            };
            let v = clip.embed_texts(&[text]).await.map_err(ApiError::from)?;
            query.visual = v.into_iter().next();
            clip.name().to_owned()
        }
        SearchQuery::Image(image) => {
            let item = parse_source(image, &state.fetch_policy, &body.files)?;
            let loaded = load(&state, &item).await?;
            let x = dupify_pipeline::extract_features(
                &state.pipeline,
                loaded.bytes,
                &item.parameter,
                false,
            )
            .await?;
            query.visual = Some(x.embed.embedding);
            query.silhouette = Some(x.silhouette.embedding);
            query.color = Some(x.color_signature);
            x.embed.model
        }
    };
    let explicit_model = model_opt.is_some();
    let model = model_opt.unwrap_or(model);
    let feature_ms = started.elapsed().as_secs_f64() * 1000.0;
    if filter.cheaper_than.is_some() && filter.currency.is_none() {
        filter.currency = Some("USD".into());
    }
    query.filter = filter;

    let t = Instant::now();
    let found = search_index(
        &state,
        &caller.account.id,
        caller.mode(),
        &model,
        query,
        explicit_model,
    )
    .await?;
    let (plan, candidates) = (found.plan, found.candidates);
    let results: Vec<SearchHit> = found
        .hits
        .iter()
        .map(|(h, p)| SearchHit {
            product: product(p),
            score: round4(h.score),
            scores: Scores {
                visual: h.visual.map(round4),
                silhouette: h.silhouette.map(round4),
                color: h.color.map(round4),
            },
        })
        .collect();
    let search_ms = t.elapsed().as_secs_f64() * 1000.0;
    metrics::histogram!("dupify_catalog_search_seconds", "plan" => format!("{plan:?}"))
        .record(search_ms / 1000.0);
    caller.meter.consumed(1);
    Ok(Json(SearchAnswer {
        results,
        took_ms: search_ms.round() as u64,
        model: Some(model),
        plan: serde_json::to_value(plan)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned)),
        candidates: Some(candidates as u64),
        query_features_ms: Some((feature_ms * 100.0).round() / 100.0),
        search_ms: Some((search_ms * 1000.0).round() / 1000.0),
    }))
}

/// `POST /v1/catalog/duplicates`: groups of near-identical products.
pub async fn duplicates(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Result<JsonBody, AppError>,
) -> AppResult<Json<DuplicatesAnswer>> {
    caller.require(Scope::Catalog)?;
    let req: DuplicatesRequest = body?.parse()?;
    let threshold = req.threshold();
    let limit = req.limit()?;
    let model = req.model.clone().unwrap_or_else(|| current_model(&state));
    let filter = filter(req.filters, req.cheaper_than);
    caller.meter.admit().await?;
    caller.meter.reserve(1).await?;
    let t = Instant::now();
    let shard = state
        .catalogs
        // Caught up with the store first, as for search (catalog_search::search_index).
        .sync(&caller.account.id, caller.mode())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "catalog index unavailable");
            ApiError::unavailable("The catalog index is loading. Retry shortly.", 5)
        })?;
    let threads = state.config.effective_cpu_workers();
    let m = model.clone();
    let groups = state
        .catalogs
        .with_index(shard, move |idx, cfg| {
            idx.space(&m)
                .map(|s| s.duplicates(threshold, &filter, 10, threads, cfg))
                .unwrap_or_default()
        })
        .await?;
    caller.meter.consumed(1);
    let total = groups.len();
    Ok(Json(DuplicatesAnswer {
        groups: groups
            .iter()
            .take(limit)
            .map(|g| DuplicateGroup {
                product_ids: g.ids.clone(),
                score: round4(g.score),
            })
            .collect(),
        total_groups: total as u64,
        threshold: Some(threshold.into()),
        model: Some(model),
        took_ms: Some(t.elapsed().as_millis() as u64),
    }))
}
