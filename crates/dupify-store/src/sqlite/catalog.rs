//! Catalog persistence: products, their features, the durable extraction queue and the
//! change sequence the vector index follows.
//!
//! Every write to a product bumps a global `change_seq` inside the same transaction.
//! SQLite serialises writers, so sequence order is commit order: an index that has
//! applied every change up to `n` is exactly as fresh as the database was at `n`, and a
//! saved index only needs the changes after its watermark replayed at start.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dupify_core::KeyMode;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use crate::*;

pub(super) const MIGRATION: &str = r#"
CREATE TABLE catalog_seq (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL
);
INSERT INTO catalog_seq (id, seq) VALUES (1, 0);
CREATE TABLE products (
    pk              INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    account_id      TEXT NOT NULL REFERENCES accounts(id),
    mode            TEXT NOT NULL,
    external_id     TEXT,
    title           TEXT NOT NULL,
    sku             TEXT,
    description     TEXT,
    brand           TEXT,
    category        TEXT,
    price           REAL,
    currency        TEXT NOT NULL,
    product_url     TEXT,
    image_url       TEXT,
    image_ref       TEXT NOT NULL,
    metadata        TEXT NOT NULL,
    status          TEXT NOT NULL,
    error_code      TEXT,
    error_message   TEXT,
    features        TEXT,
    embedding_model TEXT,
    embedding       BLOB,
    silhouette      BLOB,
    color           BLOB,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    processed_at    INTEGER,
    deleted_at      INTEGER,
    change_seq      INTEGER NOT NULL
);
CREATE UNIQUE INDEX products_external ON products(account_id, mode, external_id)
    WHERE external_id IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX products_live ON products(account_id, mode, deleted_at, pk);
CREATE INDEX products_changes ON products(account_id, mode, change_seq);
CREATE TABLE catalog_jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    product_pk      INTEGER NOT NULL UNIQUE REFERENCES products(pk),
    image_ref       TEXT NOT NULL,
    image_url       TEXT,
    image_bytes     BLOB,
    attempts        INTEGER NOT NULL DEFAULT 0,
    run_after       INTEGER NOT NULL,
    lease_until     INTEGER,
    lease_owner     TEXT,
    last_error      TEXT,
    quota_reserved  INTEGER NOT NULL,
    period          TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX catalog_jobs_due ON catalog_jobs(run_after, id);
"#;

pub(super) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.into())
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    use chrono::TimeZone;
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

pub fn vec_to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn blob_to_vec(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn next_seq(tx: &Transaction<'_>) -> rusqlite::Result<i64> {
    tx.query_row(
        "UPDATE catalog_seq SET seq = seq + 1 WHERE id = 1 RETURNING seq",
        [],
        |r| r.get(0),
    )
}

/// Reserves one quota unit for a live upload; `Err` with the usage when none is left.
fn reserve_one(
    tx: &Transaction<'_>,
    ctx: &UpsertContext,
) -> rusqlite::Result<Result<(), UpsertRefusal>> {
    tx.execute(
        "INSERT OR IGNORE INTO usage_periods (account_id, period_start, used) VALUES (?1, ?2, 0)",
        params![ctx.account_id, ctx.period],
    )?;
    let used: i64 = tx.query_row(
        "SELECT used FROM usage_periods WHERE account_id = ?1 AND period_start = ?2",
        params![ctx.account_id, ctx.period],
        |r| r.get(0),
    )?;
    let used = used.max(0) as u64;
    if let Some(limit) = ctx.monthly_limit {
        if used + 1 > limit {
            return Ok(Err(UpsertRefusal::Quota { used, limit }));
        }
    }
    tx.execute(
        "UPDATE usage_periods SET used = used + 1 WHERE account_id = ?1 AND period_start = ?2",
        params![ctx.account_id, ctx.period],
    )?;
    Ok(Ok(()))
}

fn refund(tx: &Transaction<'_>, account_id: &str, period: &str, n: i64) -> rusqlite::Result<()> {
    if n > 0 {
        tx.execute(
            "UPDATE usage_periods SET used = MAX(used - ?3, 0) WHERE account_id = ?1 AND period_start = ?2",
            params![account_id, period, n],
        )?;
    }
    Ok(())
}

/// All items of one upload in one transaction: each product and its job commit
/// together, so an accepted product always has its extraction queued.
pub(super) fn upsert_products(
    c: &mut Connection,
    ctx: &UpsertContext,
    items: Vec<ProductInput>,
) -> StoreResult<Vec<Result<UpsertResult, UpsertRefusal>>> {
    let tx = c
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)?;
    let mode = ctx.mode.as_str();
    let mut size: u64 = tx
        .query_row(
            "SELECT COUNT(*) FROM products WHERE account_id = ?1 AND mode = ?2 AND deleted_at IS NULL",
            params![ctx.account_id, mode],
            |r| r.get::<_, i64>(0),
        )
        .map_err(backend)? as u64;
    let now = ms(ctx.now);
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let existing: Option<(i64, String, String, String, bool)> = match &item.external_id {
            Some(ext) => tx
                .query_row(
                    "SELECT p.pk, p.id, p.image_ref, p.status, j.id IS NOT NULL
                     FROM products p LEFT JOIN catalog_jobs j ON j.product_pk = p.pk
                     WHERE p.account_id = ?1 AND p.mode = ?2 AND p.external_id = ?3 AND p.deleted_at IS NULL",
                    params![ctx.account_id, mode, ext],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()
                .map_err(backend)?,
            None => None,
        };
        if existing.is_none() {
            if let Some(limit) = ctx.catalog_limit {
                if size >= limit {
                    out.push(Err(UpsertRefusal::CatalogLimit {
                        limit,
                        current_size: size,
                    }));
                    continue;
                }
            }
        }
        // Re-processing: a new product, a changed image, or a retry of a failed one.
        // An unchanged re-upload only updates the fields.
        let needs_job = match &existing {
            None => true,
            Some((_, _, image_ref, status, _)) => {
                *image_ref != item.image_ref || status == ProductStatus::Failed.as_str()
            }
        };
        let has_job = existing.as_ref().is_some_and(|e| e.4);
        // A job already queued keeps its reservation; only a new job reserves a unit.
        let mut reserved = 0;
        if needs_job && !has_job && ctx.mode == KeyMode::Live {
            match reserve_one(&tx, ctx).map_err(backend)? {
                Ok(()) => reserved = 1,
                Err(refusal) => {
                    out.push(Err(refusal));
                    continue;
                }
            }
        }
        let seq = next_seq(&tx).map_err(backend)?;
        let image_url = match &item.image {
            ProductImage::Url(u) => Some(u.clone()),
            ProductImage::Bytes(_) => None,
        };
        let (pk, id, created, status) = match existing {
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                tx.execute(
                    "INSERT INTO products (id, account_id, mode, external_id, title, sku, description, brand,
                         category, price, currency, product_url, image_url, image_ref, metadata, status,
                         created_at, updated_at, change_seq)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, 'processing', ?16, ?16, ?17)",
                    params![
                        id, ctx.account_id, mode, item.external_id, item.title, item.sku,
                        item.description, item.brand, item.category, item.price, item.currency,
                        item.product_url, image_url, item.image_ref, item.metadata, now, seq
                    ],
                )
                .map_err(backend)?;
                size += 1;
                (tx.last_insert_rowid(), id, true, ProductStatus::Processing)
            }
            Some((pk, id, _, status, _)) => {
                let status = if needs_job {
                    ProductStatus::Processing
                } else {
                    ProductStatus::parse(&status).unwrap_or(ProductStatus::Processing)
                };
                tx.execute(
                    "UPDATE products SET title = ?2, sku = ?3, description = ?4, brand = ?5, category = ?6,
                         price = ?7, currency = ?8, product_url = ?9, image_url = ?10, image_ref = ?11,
                         metadata = ?12, status = ?13, updated_at = ?14, change_seq = ?15,
                         error_code = CASE WHEN ?16 THEN NULL ELSE error_code END,
                         error_message = CASE WHEN ?16 THEN NULL ELSE error_message END
                     WHERE pk = ?1",
                    params![
                        pk, item.title, item.sku, item.description, item.brand, item.category,
                        item.price, item.currency, item.product_url, image_url, item.image_ref,
                        item.metadata, status.as_str(), now, seq, needs_job
                    ],
                )
                .map_err(backend)?;
                (pk, id, false, status)
            }
        };
        if needs_job {
            let bytes = match item.image {
                ProductImage::Bytes(b) => Some(b),
                ProductImage::Url(_) => None,
            };
            // A job in flight for an older image is re-targeted: its worker sees the
            // image_ref change when it completes and discards its result.
            tx.execute(
                "INSERT INTO catalog_jobs (product_pk, image_ref, image_url, image_bytes, attempts, run_after,
                     quota_reserved, period, key_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6, ?7, ?8, ?5)
                 ON CONFLICT (product_pk) DO UPDATE SET image_ref = excluded.image_ref,
                     image_url = excluded.image_url, image_bytes = excluded.image_bytes, attempts = 0,
                     run_after = excluded.run_after, lease_until = NULL, lease_owner = NULL,
                     last_error = NULL",
                params![pk, item.image_ref, image_url, bytes, now, reserved, ctx.period, ctx.key_id],
            )
            .map_err(backend)?;
        }
        out.push(Ok(UpsertResult {
            id,
            pk,
            external_id: item.external_id,
            created,
            embedding_status: status,
        }));
    }
    tx.commit().map_err(backend)?;
    Ok(out)
}

const PRODUCT_COLS: &str = "pk, id, external_id, title, sku, description, brand, category, price, \
    currency, product_url, image_url, metadata, status, error_code, error_message, created_at, \
    updated_at, processed_at";

fn product_from_row(r: &Row<'_>) -> rusqlite::Result<ProductRecord> {
    let status: String = r.get(13)?;
    Ok(ProductRecord {
        pk: r.get(0)?,
        id: r.get(1)?,
        external_id: r.get(2)?,
        title: r.get(3)?,
        sku: r.get(4)?,
        description: r.get(5)?,
        brand: r.get(6)?,
        category: r.get(7)?,
        price: r.get(8)?,
        currency: r.get(9)?,
        product_url: r.get(10)?,
        image_url: r.get(11)?,
        metadata: r.get(12)?,
        status: ProductStatus::parse(&status).unwrap_or(ProductStatus::Processing),
        error_code: r.get(14)?,
        error_message: r.get(15)?,
        created_at: from_ms(r.get(16)?),
        updated_at: from_ms(r.get(17)?),
        processed_at: r.get::<_, Option<i64>>(18)?.map(from_ms),
        features: None,
        vectors: None,
    })
}

fn vectors_from(
    model: Option<String>,
    e: Option<Vec<u8>>,
    s: Option<Vec<u8>>,
    c: Option<Vec<u8>>,
) -> Option<ProductVectors> {
    Some(ProductVectors {
        model: model?,
        embedding: blob_to_vec(&e?),
        silhouette: s.map(|b| blob_to_vec(&b)).unwrap_or_default(),
        color: c.map(|b| blob_to_vec(&b)).unwrap_or_default(),
    })
}

pub(super) fn get_product(
    c: &Connection,
    account_id: &str,
    mode: KeyMode,
    id: &str,
    with_vectors: bool,
) -> StoreResult<Option<ProductRecord>> {
    let sql = format!(
        "SELECT {PRODUCT_COLS}, features, embedding_model, embedding, silhouette, color FROM products
         WHERE id = ?1 AND account_id = ?2 AND mode = ?3 AND deleted_at IS NULL"
    );
    c.query_row(&sql, params![id, account_id, mode.as_str()], |r| {
        let mut p = product_from_row(r)?;
        p.features = r.get(19)?;
        if with_vectors {
            p.vectors = vectors_from(r.get(20)?, r.get(21)?, r.get(22)?, r.get(23)?);
        }
        Ok(p)
    })
    .optional()
    .map_err(backend)
}

pub(super) fn list_products(
    c: &Connection,
    account_id: &str,
    mode: KeyMode,
    q: &ListQuery,
) -> StoreResult<ProductPage> {
    let mut cond = String::from("account_id = ?1 AND mode = ?2 AND deleted_at IS NULL");
    let mut args: Vec<rusqlite::types::Value> = vec![
        account_id.to_owned().into(),
        mode.as_str().to_owned().into(),
    ];
    let mut push = |cond: &mut String, col: &str, v: String| {
        args.push(v.into());
        cond.push_str(&format!(" AND {col} = ?{}", args.len()));
    };
    // Case-insensitive, as the search filters are.
    if let Some(v) = &q.category {
        push(&mut cond, "category COLLATE NOCASE", v.clone());
    }
    if let Some(v) = &q.brand {
        push(&mut cond, "brand COLLATE NOCASE", v.clone());
    }
    if let Some(v) = q.status {
        push(&mut cond, "status", v.as_str().to_owned());
    }
    if let Some(v) = &q.external_id {
        push(&mut cond, "external_id", v.clone());
    }
    let total: i64 = c
        .query_row(
            &format!("SELECT COUNT(*) FROM products WHERE {cond}"),
            rusqlite::params_from_iter(args.iter()),
            |r| r.get(0),
        )
        .map_err(backend)?;
    args.push(q.after_pk.into());
    let after = args.len();
    args.push((q.limit as i64 + 1).into());
    let lim = args.len();
    let sql = format!(
        "SELECT {PRODUCT_COLS} FROM products WHERE {cond} AND pk > ?{after} ORDER BY pk LIMIT ?{lim}"
    );
    let mut stmt = c.prepare(&sql).map_err(backend)?;
    let mut products = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), product_from_row)
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    let has_more = products.len() > q.limit as usize;
    products.truncate(q.limit as usize);
    Ok(ProductPage {
        products,
        has_more,
        total: total.max(0) as u64,
    })
}

/// Products of this catalog by row id (search results), in no particular order.
pub(super) fn products_by_pk(
    c: &Connection,
    account_id: &str,
    mode: KeyMode,
    pks: &[i64],
) -> StoreResult<Vec<ProductRecord>> {
    if pks.is_empty() {
        return Ok(Vec::new());
    }
    let list = pks
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let sql = format!(
        "SELECT {PRODUCT_COLS} FROM products WHERE account_id = ?1 AND mode = ?2
         AND deleted_at IS NULL AND pk IN ({list})"
    );
    let mut stmt = c.prepare(&sql).map_err(backend)?;
    let rows = stmt
        .query_map(params![account_id, mode.as_str()], product_from_row)
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    Ok(rows)
}

/// Deletes a product (kept as a tombstone so the index sees the change) and drops its
/// queued job, giving back the job's quota reservation.
pub(super) fn delete_product(
    c: &mut Connection,
    account_id: &str,
    mode: KeyMode,
    id: &str,
    now: DateTime<Utc>,
) -> StoreResult<Option<i64>> {
    let tx = c
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)?;
    let pk: Option<i64> = tx
        .query_row(
            "SELECT pk FROM products WHERE id = ?1 AND account_id = ?2 AND mode = ?3 AND deleted_at IS NULL",
            params![id, account_id, mode.as_str()],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    let Some(pk) = pk else {
        return Ok(None);
    };
    drop_job(&tx, pk, account_id)?;
    let seq = next_seq(&tx).map_err(backend)?;
    tx.execute(
        "UPDATE products SET deleted_at = ?2, change_seq = ?3, embedding = NULL, silhouette = NULL,
             color = NULL, features = NULL, metadata = '{}', description = NULL
         WHERE pk = ?1",
        params![pk, ms(now), seq],
    )
    .map_err(backend)?;
    tx.commit().map_err(backend)?;
    Ok(Some(pk))
}

fn drop_job(tx: &Transaction<'_>, pk: i64, account_id: &str) -> StoreResult<()> {
    let job: Option<(i64, String)> = tx
        .query_row(
            "DELETE FROM catalog_jobs WHERE product_pk = ?1 RETURNING quota_reserved, period",
            params![pk],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(backend)?;
    if let Some((reserved, period)) = job {
        refund(tx, account_id, &period, reserved).map_err(backend)?;
    }
    Ok(())
}

/// Takes the lease of the oldest due job (none leased, or its lease expired: the
/// worker that held it died).
pub(super) fn lease_job(
    c: &mut Connection,
    owner: &str,
    now: DateTime<Utc>,
    lease_ms: i64,
) -> StoreResult<Option<LeasedJob>> {
    let tx = c
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)?;
    let now = ms(now);
    let row = tx
        .query_row(
            "UPDATE catalog_jobs SET lease_until = ?1 + ?2, lease_owner = ?3, attempts = attempts + 1
             WHERE id = (SELECT id FROM catalog_jobs WHERE run_after <= ?1
                         AND (lease_until IS NULL OR lease_until <= ?1) ORDER BY run_after, id LIMIT 1)
             RETURNING id, product_pk, image_ref, image_url, image_bytes, attempts",
            params![now, lease_ms, owner],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<Vec<u8>>>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            },
        )
        .optional()
        .map_err(backend)?;
    let Some((job_id, product_pk, image_ref, url, bytes, attempts)) = row else {
        return Ok(None);
    };
    let (account_id, mode): (String, String) = tx
        .query_row(
            "SELECT account_id, mode FROM products WHERE pk = ?1",
            params![product_pk],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(backend)?;
    tx.commit().map_err(backend)?;
    let image = match (url, bytes) {
        (_, Some(b)) => ProductImage::Bytes(b),
        (Some(u), None) => ProductImage::Url(u),
        (None, None) => ProductImage::Bytes(Vec::new()),
    };
    Ok(Some(LeasedJob {
        job_id,
        product_pk,
        account_id,
        mode: KeyMode::parse(&mode).unwrap_or(KeyMode::Live),
        image_ref,
        image,
        attempts: attempts.max(0) as u32,
    }))
}

/// Puts a job back for a later attempt (a transient failure). Ignored when the job was
/// re-targeted or finished meanwhile.
/// `keep_attempt`: the attempt does not count (the server was overloaded, not the
/// image at fault).
pub(super) fn retry_job(
    c: &Connection,
    job: &LeasedJob,
    run_after: DateTime<Utc>,
    error: &str,
    keep_attempt: bool,
) -> StoreResult<()> {
    c.execute(
        "UPDATE catalog_jobs SET lease_until = NULL, lease_owner = NULL, run_after = ?3, last_error = ?4,
             attempts = MAX(attempts - ?5, 0)
         WHERE id = ?1 AND image_ref = ?2",
        params![job.job_id, job.image_ref, ms(run_after), error, keep_attempt as i64],
    )
    .map_err(backend)?;
    Ok(())
}

/// Stores the outcome of a job, removes the job and settles its quota unit, in one
/// transaction. Returns false (and changes nothing) when the job is no longer current:
/// the product's image changed, or it was deleted, or another worker finished it.
pub(super) fn complete_job(
    c: &mut Connection,
    job: &LeasedJob,
    outcome: &JobOutcome,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let tx = c
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)?;
    let current: Option<(i64, String, String)> = tx
        .query_row(
            "SELECT quota_reserved, period, key_id FROM catalog_jobs WHERE id = ?1 AND image_ref = ?2",
            params![job.job_id, job.image_ref],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(backend)?;
    let Some((reserved, period, key_id)) = current else {
        return Ok(false);
    };
    tx.execute(
        "DELETE FROM catalog_jobs WHERE id = ?1",
        params![job.job_id],
    )
    .map_err(backend)?;
    let seq = next_seq(&tx).map_err(backend)?;
    let t = ms(now);
    match outcome {
        JobOutcome::Ready(f) => {
            tx.execute(
                "UPDATE products SET status = 'ready', error_code = NULL, error_message = NULL,
                     features = ?2, embedding_model = ?3, embedding = ?4, silhouette = ?5, color = ?6,
                     processed_at = ?7, change_seq = ?8
                 WHERE pk = ?1",
                params![
                    job.product_pk,
                    f.features,
                    f.vectors.model,
                    vec_to_blob(&f.vectors.embedding),
                    vec_to_blob(&f.vectors.silhouette),
                    vec_to_blob(&f.vectors.color),
                    t,
                    seq
                ],
            )
            .map_err(backend)?;
            // One call per successfully processed upload (docs/API.md, "Keys, scopes and tiers"), on the uploading key.
            let day = now.date_naive().to_string();
            tx.execute(
                "INSERT INTO usage_daily (account_id, key_id, day, mode, calls) VALUES (?1, ?2, ?3, ?4, 1)
                 ON CONFLICT (account_id, key_id, day) DO UPDATE SET calls = calls + 1",
                params![job.account_id, key_id, day, job.mode.as_str()],
            )
            .map_err(backend)?;
        }
        JobOutcome::Failed { code, message } => {
            tx.execute(
                "UPDATE products SET status = 'failed', error_code = ?2, error_message = ?3,
                     features = NULL, embedding_model = NULL, embedding = NULL, silhouette = NULL,
                     color = NULL, processed_at = ?4, change_seq = ?5
                 WHERE pk = ?1",
                params![job.product_pk, code, message, t, seq],
            )
            .map_err(backend)?;
            refund(&tx, &job.account_id, &period, reserved).map_err(backend)?;
        }
    }
    // The outcome's webhook event commits with it (docs/API.md, "Webhooks").
    let (id, external_id, title): (String, Option<String>, String) = tx
        .query_row(
            "SELECT id, external_id, title FROM products WHERE pk = ?1",
            params![job.product_pk],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map_err(backend)?;
    let (event, mut product) = (
        match outcome {
            JobOutcome::Ready(_) => "product.ready",
            JobOutcome::Failed { .. } => "product.failed",
        },
        serde_json::json!({"id": id, "external_id": external_id, "title": title}),
    );
    match outcome {
        JobOutcome::Ready(f) => {
            product["embedding_status"] = "ready".into();
            product["embedding_model"] = f.vectors.model.clone().into();
        }
        JobOutcome::Failed { code, message } => {
            product["embedding_status"] = "failed".into();
            product["embedding_error"] = serde_json::json!({"code": code, "message": message});
        }
    }
    super::webhooks::enqueue_event(
        &tx,
        &job.account_id,
        job.mode,
        event,
        serde_json::json!({ "product": product }),
        now,
    )
    .map_err(backend)?;
    tx.commit().map_err(backend)?;
    Ok(true)
}

/// Changes to the index rows of one catalog after `since`, oldest first. With
/// `live_only` (a full load), tombstones and unprocessed products are skipped.
pub(super) fn index_rows(
    c: &Connection,
    account_id: &str,
    mode: KeyMode,
    since: i64,
    limit: u32,
    live_only: bool,
) -> StoreResult<Vec<IndexRow>> {
    let extra = if live_only {
        " AND deleted_at IS NULL AND status = 'ready'"
    } else {
        ""
    };
    let sql = format!(
        "SELECT pk, id, change_seq, deleted_at IS NULL AND status = 'ready', category, brand, price,
                currency, metadata, embedding_model, embedding, silhouette, color
         FROM products WHERE account_id = ?1 AND mode = ?2 AND change_seq > ?3{extra}
         ORDER BY change_seq LIMIT ?4"
    );
    let mut stmt = c.prepare_cached(&sql).map_err(backend)?;
    let rows = stmt
        .query_map(
            params![account_id, mode.as_str(), since, limit as i64],
            |r| {
                let live: bool = r.get(3)?;
                Ok(IndexRow {
                    pk: r.get(0)?,
                    id: r.get(1)?,
                    change_seq: r.get(2)?,
                    live,
                    category: r.get(4)?,
                    brand: r.get(5)?,
                    price: r.get(6)?,
                    currency: r.get(7)?,
                    metadata: r.get(8)?,
                    vectors: if live {
                        vectors_from(r.get(9)?, r.get(10)?, r.get(11)?, r.get(12)?)
                    } else {
                        None
                    },
                })
            },
        )
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    Ok(rows)
}

/// Every (account, mode) that has products, for loading indexes at start.
pub(super) fn catalogs(c: &Connection) -> StoreResult<Vec<(String, KeyMode)>> {
    let mut stmt = c
        .prepare("SELECT DISTINCT account_id, mode FROM products WHERE deleted_at IS NULL")
        .map_err(backend)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    Ok(rows
        .into_iter()
        .filter_map(|(a, m)| KeyMode::parse(&m).map(|m| (a, m)))
        .collect())
}

/// Products per status in one catalog (and jobs waiting).
pub(super) fn status_counts(
    c: &Connection,
    account_id: &str,
    mode: KeyMode,
) -> StoreResult<Vec<(ProductStatus, u64)>> {
    let mut stmt = c
        .prepare(
            "SELECT status, COUNT(*) FROM products WHERE account_id = ?1 AND mode = ?2
             AND deleted_at IS NULL GROUP BY status",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![account_id, mode.as_str()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    Ok(rows
        .into_iter()
        .filter_map(|(s, n)| ProductStatus::parse(&s).map(|s| (s, n.max(0) as u64)))
        .collect())
}

/// Owners of the leases currently held (to recognise those of dead processes).
pub(super) fn lease_owners(c: &Connection) -> StoreResult<Vec<String>> {
    let mut stmt = c
        .prepare("SELECT DISTINCT lease_owner FROM catalog_jobs WHERE lease_owner IS NOT NULL")
        .map_err(backend)?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    Ok(rows)
}

/// Makes the jobs leased by `owner` available again at once; returns how many.
pub(super) fn release_leases(c: &Connection, owner: &str) -> StoreResult<u64> {
    let n = c
        .execute(
            "UPDATE catalog_jobs SET lease_until = NULL, lease_owner = NULL WHERE lease_owner = ?1",
            params![owner],
        )
        .map_err(backend)?;
    Ok(n as u64)
}

/// Jobs not finished yet (for `/ready` and metrics).
pub(super) fn pending_jobs(c: &Connection) -> StoreResult<u64> {
    let n: i64 = c
        .query_row("SELECT COUNT(*) FROM catalog_jobs", [], |r| r.get(0))
        .map_err(backend)?;
    Ok(n.max(0) as u64)
}

/// Bulk insert of ready products with precomputed vectors (benchmarks and tests of
/// the index at scale, which would otherwise need 100k real images).
pub(super) fn insert_ready_products(
    c: &mut Connection,
    account_id: &str,
    mode: KeyMode,
    items: Vec<(ProductInput, ProductFeatures)>,
    now: DateTime<Utc>,
) -> StoreResult<Vec<String>> {
    let tx = c
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)?;
    let mut ids = Vec::with_capacity(items.len());
    {
        for (p, f) in items {
            let id = uuid::Uuid::new_v4().to_string();
            let seq = next_seq(&tx).map_err(backend)?;
            let url = match &p.image {
                ProductImage::Url(u) => Some(u.clone()),
                ProductImage::Bytes(_) => None,
            };
            tx.execute(
                "INSERT INTO products (id, account_id, mode, external_id, title, sku, description, brand,
                     category, price, currency, product_url, image_url, image_ref, metadata, status,
                     features, embedding_model, embedding, silhouette, color, created_at, updated_at,
                     processed_at, change_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, 'ready', ?16,
                     ?17, ?18, ?19, ?20, ?21, ?21, ?21, ?22)",
                params![
                    id, account_id, mode.as_str(), p.external_id, p.title, p.sku, p.description,
                    p.brand, p.category, p.price, p.currency, p.product_url, url, p.image_ref,
                    p.metadata, f.features, f.vectors.model, vec_to_blob(&f.vectors.embedding),
                    vec_to_blob(&f.vectors.silhouette), vec_to_blob(&f.vectors.color), ms(now), seq
                ],
            )
            .map_err(backend)?;
            ids.push(id);
        }
    }
    tx.commit().map_err(backend)?;
    Ok(ids)
}

#[async_trait]
impl CatalogStore for SqliteStore {
    async fn upsert_products(
        &self,
        ctx: UpsertContext,
        items: Vec<ProductInput>,
    ) -> StoreResult<Vec<Result<UpsertResult, UpsertRefusal>>> {
        self.with(move |c| upsert_products(c, &ctx, items)).await
    }

    async fn get_product(
        &self,
        account_id: &str,
        mode: KeyMode,
        id: &str,
        with_vectors: bool,
    ) -> StoreResult<Option<ProductRecord>> {
        let (a, id) = (account_id.to_owned(), id.to_owned());
        self.with(move |c| get_product(c, &a, mode, &id, with_vectors))
            .await
    }

    async fn list_products(
        &self,
        account_id: &str,
        mode: KeyMode,
        query: ListQuery,
    ) -> StoreResult<ProductPage> {
        let a = account_id.to_owned();
        self.with(move |c| list_products(c, &a, mode, &query)).await
    }

    async fn delete_product(
        &self,
        account_id: &str,
        mode: KeyMode,
        id: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<i64>> {
        let (a, id) = (account_id.to_owned(), id.to_owned());
        self.with(move |c| delete_product(c, &a, mode, &id, at))
            .await
    }

    async fn catalog_status_counts(
        &self,
        account_id: &str,
        mode: KeyMode,
    ) -> StoreResult<Vec<(ProductStatus, u64)>> {
        let a = account_id.to_owned();
        self.with(move |c| status_counts(c, &a, mode)).await
    }

    async fn products_by_pk(
        &self,
        account_id: &str,
        mode: KeyMode,
        pks: Vec<i64>,
    ) -> StoreResult<Vec<ProductRecord>> {
        let a = account_id.to_owned();
        self.with(move |c| products_by_pk(c, &a, mode, &pks)).await
    }

    async fn index_rows(
        &self,
        account_id: &str,
        mode: KeyMode,
        since: i64,
        limit: u32,
        live_only: bool,
    ) -> StoreResult<Vec<IndexRow>> {
        let a = account_id.to_owned();
        self.with(move |c| index_rows(c, &a, mode, since, limit, live_only))
            .await
    }

    async fn catalogs(&self) -> StoreResult<Vec<(String, KeyMode)>> {
        self.with(|c| catalogs(c)).await
    }

    async fn insert_ready_products(
        &self,
        account_id: &str,
        mode: KeyMode,
        items: Vec<(ProductInput, ProductFeatures)>,
    ) -> StoreResult<Vec<String>> {
        let a = account_id.to_owned();
        self.with(move |c| insert_ready_products(c, &a, mode, items, Utc::now()))
            .await
    }
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn lease_job(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_ms: i64,
    ) -> StoreResult<Option<LeasedJob>> {
        let owner = owner.to_owned();
        self.with(move |c| lease_job(c, &owner, now, lease_ms))
            .await
    }

    async fn retry_job(
        &self,
        job: &LeasedJob,
        run_after: DateTime<Utc>,
        error: &str,
        keep_attempt: bool,
    ) -> StoreResult<()> {
        let (job, error) = (job.clone(), error.to_owned());
        self.with(move |c| retry_job(c, &job, run_after, &error, keep_attempt))
            .await
    }

    async fn complete_job(
        &self,
        job: &LeasedJob,
        outcome: JobOutcome,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let job = job.clone();
        self.with(move |c| complete_job(c, &job, &outcome, now))
            .await
    }

    async fn pending_jobs(&self) -> StoreResult<u64> {
        self.with(|c| pending_jobs(c)).await
    }

    async fn lease_owners(&self) -> StoreResult<Vec<String>> {
        self.with(|c| lease_owners(c)).await
    }

    async fn release_leases(&self, owner: &str) -> StoreResult<u64> {
        let owner = owner.to_owned();
        self.with(move |c| release_leases(c, &owner)).await
    }
}
