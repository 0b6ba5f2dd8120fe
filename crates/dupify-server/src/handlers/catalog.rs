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
use chrono::Utc;
use dupify_api::catalog::PRODUCT_FIELDS;
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
use crate::body::{field, int_field, JsonBody};
use crate::catalog_search::{decode_cursor, encode_cursor, search_index};
use crate::error::{AppError, AppResult};
use crate::images::{load, ImageSource, SourceItem};
use crate::state::SharedState;

const MAX_TITLE: usize = 500;
const MAX_SHORT: usize = 256;
const MAX_DESCRIPTION: usize = 10_000;
const MAX_URL: usize = 2_048;
const MAX_METADATA_BYTES: usize = 8 * 1024;
const MAX_EXCLUDE: usize = 1_000;

fn iso(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

// ------------------------------------------------------------------ validation

fn opt_string(
    obj: &Map<String, Value>,
    name: &str,
    prefix: &str,
    max: usize,
) -> Result<Option<String>, ApiError> {
    let parameter = format!("{prefix}{name}");
    match field(obj, name) {
        None => Ok(None),
        Some(Value::String(s)) => {
            let t = s.trim();
            if t.is_empty() {
                return Err(ApiError::invalid(
                    &parameter,
                    format!("{name} must not be empty"),
                ));
            }
            if t.chars().count() > max {
                return Err(ApiError::invalid(
                    &parameter,
                    format!("{name} must be at most {max} characters"),
                ));
            }
            Ok(Some(t.to_owned()))
        }
        Some(v) => Err(
            ApiError::invalid(&parameter, format!("{name} must be a string"))
                .detail("value", v.clone()),
        ),
    }
}

fn opt_number(obj: &Map<String, Value>, name: &str, prefix: &str) -> Result<Option<f64>, ApiError> {
    let parameter = format!("{prefix}{name}");
    match field(obj, name) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(n) if n.is_finite() && n >= 0.0 && v.is_number() => Ok(Some(n)),
            _ => Err(
                ApiError::invalid(&parameter, format!("{name} must be a number ≥ 0"))
                    .detail("value", v.clone()),
            ),
        },
    }
}

fn currency(
    obj: &Map<String, Value>,
    name: &str,
    prefix: &str,
) -> Result<Option<String>, ApiError> {
    let parameter = format!("{prefix}{name}");
    match opt_string(obj, name, prefix, 3)? {
        None => Ok(None),
        Some(c) if c.len() == 3 && c.chars().all(|ch| ch.is_ascii_alphabetic()) => {
            Ok(Some(c.to_ascii_uppercase()))
        }
        Some(c) => Err(ApiError::invalid(
            &parameter,
            "currency must be a three-letter ISO-4217 code such as USD",
        )
        .detail("value", c)),
    }
}

fn http_url(
    obj: &Map<String, Value>,
    name: &str,
    prefix: &str,
) -> Result<Option<String>, ApiError> {
    let parameter = format!("{prefix}{name}");
    let Some(s) = opt_string(obj, name, prefix, MAX_URL)? else {
        return Ok(None);
    };
    match url::Url::parse(&s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(Some(s)),
        _ => Err(
            ApiError::invalid(&parameter, format!("{name} must be an http(s) URL"))
                .detail("value", s),
        ),
    }
}

/// A flat object: string, number, boolean or null values; at most 8 KB as JSON.
fn metadata(obj: &Map<String, Value>, prefix: &str) -> Result<Map<String, Value>, ApiError> {
    let parameter = format!("{prefix}metadata");
    match field(obj, "metadata") {
        None => Ok(Map::new()),
        Some(Value::Object(m)) => {
            if let Some((k, _)) = m
                .iter()
                .find(|(_, v)| matches!(v, Value::Object(_) | Value::Array(_)))
            {
                return Err(ApiError::invalid(
                    &format!("{parameter}.{k}"),
                    "metadata must be a flat object: values are strings, numbers, booleans or null",
                ));
            }
            let size = serde_json::to_string(m).map(|s| s.len()).unwrap_or(0);
            if size > MAX_METADATA_BYTES {
                return Err(ApiError::invalid(
                    &parameter,
                    format!("metadata must be at most {MAX_METADATA_BYTES} bytes as JSON"),
                )
                .detail("size", size));
            }
            Ok(m.clone())
        }
        Some(_) => Err(ApiError::invalid(
            &parameter,
            "metadata must be a JSON object",
        )),
    }
}

fn sha_hex(parts: &[&[u8]]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// One product of an upload, validated; base64 images are decoded here so a bad one
/// fails the upload, not the background job.
async fn parse_product(
    state: &SharedState,
    v: &Value,
    prefix: &str,
) -> Result<ProductInput, ApiError> {
    let Value::Object(obj) = v else {
        return Err(ApiError::invalid(
            prefix.trim_end_matches('.'),
            "each product must be a JSON object",
        ));
    };
    if let Some(k) = obj.keys().find(|k| !PRODUCT_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            &format!("{prefix}{k}"),
            format!(
                "unknown product field {k:?}; put custom fields in metadata (known: {})",
                PRODUCT_FIELDS.join(", ")
            ),
        ));
    }
    let title = opt_string(obj, "title", prefix, MAX_TITLE)?
        .ok_or_else(|| ApiError::missing(&format!("{prefix}title")))?;
    let url = field(obj, "image_url");
    let b64 = field(obj, "image_base64");
    let (image, image_ref) = match (url, b64) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                &format!("{prefix}image_base64"),
                "send either image_url or image_base64, not both",
            ))
        }
        (None, None) => {
            return Err(ApiError::missing(&format!("{prefix}image_url")).detail(
                "alternatives",
                vec![
                    format!("{prefix}image_url"),
                    format!("{prefix}image_base64"),
                ],
            ))
        }
        (Some(v), None) => {
            let parameter = format!("{prefix}image_url");
            let s = v
                .as_str()
                .ok_or_else(|| ApiError::invalid(&parameter, "image_url must be a string"))?;
            let u = dupify_images::parse_image_url(s, &parameter, &state.fetch_policy)?;
            let s = u.to_string();
            let r = sha_hex(&[b"url:", s.as_bytes()]);
            (ProductImage::Url(s), r)
        }
        (None, Some(v)) => {
            let parameter = format!("{prefix}image_base64");
            let s = v
                .as_str()
                .ok_or_else(|| ApiError::invalid(&parameter, "image_base64 must be a string"))?;
            let item = SourceItem {
                source: ImageSource::Base64(s.to_owned()),
                parameter,
            };
            let loaded = load(state, &item).await?;
            let r = sha_hex(&[b"bytes:", &loaded.sha256]);
            (ProductImage::Bytes(loaded.bytes.to_vec()), r)
        }
    };
    Ok(ProductInput {
        external_id: opt_string(obj, "external_id", prefix, MAX_SHORT)?,
        title,
        sku: opt_string(obj, "sku", prefix, MAX_SHORT)?,
        description: opt_string(obj, "description", prefix, MAX_DESCRIPTION)?,
        brand: opt_string(obj, "brand", prefix, MAX_SHORT)?,
        category: opt_string(obj, "category", prefix, MAX_SHORT)?,
        price: opt_number(obj, "price", prefix)?,
        currency: currency(obj, "currency", prefix)?.unwrap_or_else(|| "USD".into()),
        product_url: http_url(obj, "product_url", prefix)?,
        image,
        image_ref,
        metadata: Value::Object(metadata(obj, prefix)?).to_string(),
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

/// `POST /v1/catalog/products`: one product, or `{"products": [...]}`.
pub async fn upload(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    body: Result<JsonBody, AppError>,
) -> AppResult<Response> {
    caller.require(Scope::Catalog)?;
    let JsonBody(body) = body?;
    caller.meter.admit().await?;
    let limit = caller.limits.products_per_upload as usize;
    let (batch, parsed): (bool, Vec<Result<ProductInput, ApiError>>) =
        if body.contains_key("products") {
            if let Some(k) = body.keys().find(|k| *k != "products") {
                return Err(ApiError::invalid(
                k,
                "a batch upload has only the products field; put product fields inside each item",
            )
            .into());
            }
            let Some(Value::Array(items)) = field(&body, "products") else {
                return Err(ApiError::invalid("products", "products must be an array").into());
            };
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
                out.push(parse_product(&state, item, &format!("products[{i}].")).await);
            }
            (true, out)
        } else {
            let p = parse_product(&state, &Value::Object(body), "").await?;
            (false, vec![Ok(p)])
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

fn unit_number(
    obj: &Map<String, Value>,
    name: &str,
    parameter: &str,
    default: f64,
) -> Result<f64, ApiError> {
    match field(obj, name) {
        None => Ok(default),
        Some(v) => match v.as_f64() {
            Some(n) if v.is_number() && (0.0..=1.0).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid(
                parameter,
                format!("{name} must be a number between 0 and 1"),
            )
            .detail("value", v.clone())),
        },
    }
}

fn parse_filters(body: &Map<String, Value>) -> Result<Filter, ApiError> {
    let mut f = Filter::default();
    if let Some(v) = field(body, "filters") {
        let Value::Object(o) = v else {
            return Err(ApiError::invalid(
                "filters",
                "filters must be a JSON object",
            ));
        };
        const KNOWN: [&str; 6] = [
            "category",
            "brand",
            "price_min",
            "price_max",
            "currency",
            "metadata",
        ];
        if let Some(k) = o.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(ApiError::invalid(
                &format!("filters.{k}"),
                format!("unknown filter; use {}", KNOWN.join(", ")),
            ));
        }
        f.category = opt_string(o, "category", "filters.", MAX_SHORT)?.map(|s| s.to_lowercase());
        f.brand = opt_string(o, "brand", "filters.", MAX_SHORT)?.map(|s| s.to_lowercase());
        f.price_min = opt_number(o, "price_min", "filters.")?;
        f.price_max = opt_number(o, "price_max", "filters.")?;
        if let (Some(a), Some(b)) = (f.price_min, f.price_max) {
            if a > b {
                return Err(ApiError::invalid(
                    "filters.price_min",
                    "price_min must not be above price_max",
                ));
            }
        }
        f.currency = currency(o, "currency", "filters.")?;
        f.metadata = metadata(o, "filters.")?;
    }
    if let Some(v) = field(body, "cheaper_than") {
        match v.as_f64() {
            Some(n) if v.is_number() && n.is_finite() && n > 0.0 => f.cheaper_than = Some(n),
            _ => {
                return Err(
                    ApiError::invalid("cheaper_than", "cheaper_than must be a number > 0")
                        .detail("value", v.clone()),
                )
            }
        }
    }
    Ok(f)
}

fn parse_weights(body: &Map<String, Value>) -> Result<Weights, ApiError> {
    let Some(v) = field(body, "weights") else {
        return Ok(Weights::default());
    };
    let Value::Object(o) = v else {
        return Err(ApiError::invalid(
            "weights",
            "weights must be a JSON object",
        ));
    };
    if let Some(k) = o
        .keys()
        .find(|k| !["visual", "silhouette", "color"].contains(&k.as_str()))
    {
        return Err(ApiError::invalid(
            &format!("weights.{k}"),
            "unknown weight; use visual, silhouette, color",
        ));
    }
    let w = |name: &str, default: f32| -> Result<f32, ApiError> {
        match field(o, name) {
            None => Ok(default),
            Some(v) => match v.as_f64() {
                Some(n) if v.is_number() && n.is_finite() && (0.0..=100.0).contains(&n) => {
                    Ok(n as f32)
                }
                _ => Err(ApiError::invalid(
                    &format!("weights.{name}"),
                    "a weight must be a number between 0 and 100",
                )
                .detail("value", v.clone())),
            },
        }
    };
    // Weights not given are 0 once any weight is given: {"silhouette": 1} is a pure
    // shape search.
    let weights = Weights {
        visual: w("visual", 0.0)?,
        silhouette: w("silhouette", 0.0)?,
        color: w("color", 0.0)?,
    };
    if weights.visual + weights.silhouette + weights.color <= 0.0 {
        return Err(ApiError::invalid(
            "weights",
            "at least one weight must be above 0",
        ));
    }
    Ok(weights)
}

/// The embedding model new products are processed with (and image/text queries use).
pub fn current_model(state: &SharedState) -> String {
    state
        .models()
        .clip()
        .map(|c| c.name().to_owned())
        .unwrap_or_else(|| dupify_vision::VISUAL_MODEL.to_owned())
}

const SEARCH_FIELDS: [&str; 11] = [
    "image_url",
    "image_base64",
    "product_id",
    "text",
    "top_k",
    "min_score",
    "filters",
    "cheaper_than",
    "weights",
    "exclude_ids",
    "model",
];

/// Resolves `exclude_ids` (product ids of this catalog) to row ids; unknown ids are
/// ignored, as they cannot appear in results anyway.
async fn exclusions(
    state: &SharedState,
    caller: &Caller,
    body: &Map<String, Value>,
) -> Result<HashSet<i64>, ApiError> {
    let Some(v) = field(body, "exclude_ids") else {
        return Ok(HashSet::new());
    };
    let Value::Array(items) = v else {
        return Err(ApiError::invalid(
            "exclude_ids",
            "exclude_ids must be an array of product ids",
        ));
    };
    if items.len() > MAX_EXCLUDE {
        return Err(ApiError::invalid(
            "exclude_ids",
            format!("exclude_ids takes at most {MAX_EXCLUDE} ids"),
        ));
    }
    let mut out = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let Some(id) = item.as_str() else {
            return Err(ApiError::invalid(
                &format!("exclude_ids[{i}]"),
                "each id must be a string",
            ));
        };
        if let Some(p) = state
            .store
            .get_product(&caller.account.id, caller.mode(), id, false)
            .await
            .map_err(ApiError::from)?
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
    body: Result<JsonBody, AppError>,
) -> AppResult<Json<SearchAnswer>> {
    caller.require(Scope::Catalog)?;
    let JsonBody(body) = body?;
    if let Some(k) = body.keys().find(|k| !SEARCH_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            k,
            format!("unknown field; search takes {}", SEARCH_FIELDS.join(", ")),
        )
        .into());
    }
    let forms: Vec<&str> = ["image_url", "image_base64", "product_id", "text"]
        .into_iter()
        .filter(|k| field(&body, k).is_some())
        .collect();
    match forms.as_slice() {
        [] => {
            return Err(ApiError::missing("image_url")
                .with_message("one of image_url, image_base64, product_id or text is required")
                .detail(
                    "alternatives",
                    vec!["image_url", "image_base64", "product_id", "text"],
                )
                .into())
        }
        [_, second, ..] => {
            return Err(ApiError::invalid(
                second,
                "send exactly one of image_url, image_base64, product_id or text",
            )
            .into())
        }
        _ => {}
    }
    let top_k = int_field(&body, "top_k", 1, 100, 10)? as usize;
    let min_score = unit_number(&body, "min_score", "min_score", 0.0)? as f32;
    let weights = parse_weights(&body)?;
    let mut filter = parse_filters(&body)?;
    let model_opt = field(&body, "model")
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| ApiError::invalid("model", "model must be a string"))
        })
        .transpose()?;
    caller.meter.admit().await?;
    filter.exclude = exclusions(&state, &caller, &body).await?;
    caller.meter.reserve(1).await?;
    let started = Instant::now();

    let mut query = Query {
        weights,
        top_k,
        min_score,
        ..Query::default()
    };
    let model = match forms[0] {
        "product_id" => {
            let id = field(&body, "product_id")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::invalid("product_id", "product_id must be a string"))?;
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
        "text" => {
            let text = crate::handlers::vision::text_item(
                field(&body, "text").unwrap_or(&Value::Null),
                "text",
            )?;
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
                        "text search needs a CLIP model with a text tower; this server's embed model is dupify-visual-v1 (images only)",
                    )
                    .into())
                }
            };
            let v = clip.embed_texts(&[text]).await.map_err(ApiError::from)?;
            query.visual = v.into_iter().next();
            clip.name().to_owned()
        }
        form => {
            let parameter = form.to_owned();
            let images = crate::images::parse_images(&body, &state.fetch_policy)?;
            let crate::images::ImagesRequest::Single(item) = images else {
                return Err(ApiError::invalid(&parameter, "one image per search").into());
            };
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
    let JsonBody(body) = body?;
    const FIELDS: [&str; 5] = ["threshold", "filters", "limit", "model", "cheaper_than"];
    if let Some(k) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            k,
            "unknown field; duplicates takes threshold, filters, limit, model",
        )
        .into());
    }
    let threshold = unit_number(&body, "threshold", "threshold", 0.95)? as f32;
    let limit = int_field(&body, "limit", 1, 1000, 100)? as usize;
    let filter = parse_filters(&body)?;
    let model = match field(&body, "model") {
        None => current_model(&state),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::invalid("model", "model must be a string").into()),
    };
    caller.meter.admit().await?;
    caller.meter.reserve(1).await?;
    let t = Instant::now();
    let shard = state
        .catalogs
        .shard(&caller.account.id, caller.mode())
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
