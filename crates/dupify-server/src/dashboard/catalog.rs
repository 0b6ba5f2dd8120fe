//! The catalog page: product counts by status, a cursor-paged list with thumbnails, and
//! "find similar" for a product, answered by the same index search as
//! `POST /v1/catalog/search` with `product_id` ([`crate::catalog_search::search_index`]).
//! The dashboard shows the account's live catalog.
//!
//! Browsing here is not metered: it is the account owner looking at their own catalog,
//! one search per click, and it is not an API call (no key is involved).

use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::StatusCode;
use dupify_catalog::Query;
use dupify_core::KeyMode;
use dupify_store::{ListQuery, ProductRecord, ProductStatus};
use maud::{html, Markup};

use super::page::{html_response, layout, DashError, DashResult, Nav};
use super::session::Session;
use crate::catalog_search::{decode_cursor, encode_cursor, search_index};
use crate::state::SharedState;

const PAGE_SIZE: u32 = 24;
const SIMILAR: usize = 12;

#[derive(serde::Deserialize)]
pub struct ListParams {
    cursor: Option<String>,
}

fn thumb(p: &ProductRecord) -> Markup {
    html! {
        @match &p.image_url {
            Some(url) => img src=(url) alt=(p.title) loading="lazy" width="120" height="120" class="thumb";
            None => div.thumb.noimg role="img" aria-label=(format!("{} (uploaded image, not shown)", p.title)) { "no preview" }
        }
    }
}

fn price(p: &ProductRecord) -> String {
    p.price
        .map(|v| format!("{v:.2} {}", p.currency))
        .unwrap_or_default()
}

pub async fn list(
    State(state): State<SharedState>,
    s: Session,
    UrlQuery(params): UrlQuery<ListParams>,
) -> DashResult {
    let after_pk = match params.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => decode_cursor(c)
            .ok_or_else(|| DashError::bad_request("This page link is not valid any more."))?,
    };
    let counts = state
        .store
        .catalog_status_counts(&s.account.id, KeyMode::Live)
        .await?;
    let count = |st: ProductStatus| counts.iter().find(|(x, _)| *x == st).map_or(0, |(_, n)| *n);
    let page = state
        .store
        .list_products(
            &s.account.id,
            KeyMode::Live,
            ListQuery {
                after_pk,
                limit: PAGE_SIZE,
                ..ListQuery::default()
            },
        )
        .await?;
    let next = page
        .has_more
        .then(|| page.products.last().map(|p| encode_cursor(p.pk)))
        .flatten();
    let body = html! {
        dl.stats {
            div { dt { "Products" } dd id="catalog-total" data-testid="catalog-total" { (page.total) } }
            div { dt { "Ready" } dd id="catalog-ready" data-testid="catalog-ready" { (count(ProductStatus::Ready)) } }
            div { dt { "Processing" } dd id="catalog-processing" data-testid="catalog-processing" { (count(ProductStatus::Processing)) } }
            div { dt { "Failed" } dd id="catalog-failed" data-testid="catalog-failed" { (count(ProductStatus::Failed)) } }
        }
        section aria-labelledby="products-heading" {
            h2 id="products-heading" { "Products (live catalog)" }
            @if page.products.is_empty() {
                p id="no-products" { "No products yet. Upload some with POST /v1/catalog/products or " code { "dupify catalog import" } "." }
            } @else {
                ul.grid id="product-list" data-testid="product-list" {
                    @for p in &page.products {
                        li.card data-testid="product" data-product-id=(p.id) {
                            (thumb(p))
                            div.title { (p.title) }
                            div.meta {
                                (p.status.as_str())
                                @if let Some(b) = &p.brand { " · " (b) }
                                @if let Some(c) = &p.category { " · " (c) }
                            }
                            div.meta { (price(p)) }
                            @if p.status == ProductStatus::Ready {
                                a href=(format!("/dashboard/catalog/{}/similar", p.id)) data-testid="find-similar"
                                    aria-label=(format!("Find products similar to {}", p.title)) { "Find similar" }
                            }
                        }
                    }
                }
            }
            @if let Some(c) = next {
                p { a id="next-page" data-testid="next-page" rel="next" href=(format!("/dashboard/catalog?cursor={c}")) { "Next page" } }
            }
            @if after_pk > 0 {
                p { a href="/dashboard/catalog" id="first-page" { "First page" } }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout("Catalog", Some(&s), Nav::Catalog, body),
    ))
}

pub async fn similar(
    State(state): State<SharedState>,
    s: Session,
    Path(id): Path<String>,
) -> DashResult {
    let p = state
        .store
        .get_product(&s.account.id, KeyMode::Live, &id, true)
        .await?
        .ok_or_else(DashError::not_found)?;
    let Some(v) = p
        .vectors
        .clone()
        .filter(|_| p.status == ProductStatus::Ready)
    else {
        return Err(DashError::Page {
            status: StatusCode::CONFLICT,
            title: "No features yet",
            message: format!(
                "This product's features are not ready (status {}), so it cannot be compared yet.",
                p.status.as_str()
            ),
        });
    };
    let mut query = Query {
        top_k: SIMILAR,
        visual: Some(v.embedding),
        silhouette: (!v.silhouette.is_empty()).then_some(v.silhouette),
        color: (!v.color.is_empty()).then_some(v.color),
        ..Query::default()
    };
    query.filter.exclude.insert(p.pk);
    let found = search_index(&state, &s.account.id, KeyMode::Live, &v.model, query, false)
        .await
        .map_err(|e| DashError::Page {
            status: StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            title: "Search failed",
            message: e.message.clone(),
        })?;
    let body = html! {
        section aria-labelledby="query-heading" {
            h2 id="query-heading" { "Compared with" }
            div.card.query data-testid="query-product" data-product-id=(p.id) {
                (thumb(&p))
                div.title { (p.title) }
                div.meta { (price(&p)) }
            }
        }
        section aria-labelledby="matches-heading" {
            h2 id="matches-heading" { "Top matches" }
            @if found.hits.is_empty() {
                p id="no-matches" { "No other product of this catalog is comparable yet." }
            } @else {
                ol.grid id="similar-list" data-testid="similar-list" {
                    @for (h, m) in &found.hits {
                        li.card data-testid="similar-product" data-product-id=(m.id) data-score=(format!("{:.4}", h.score)) {
                            (thumb(m))
                            div.title { (m.title) }
                            div.meta { "score " strong data-testid="similar-score" { (format!("{:.3}", h.score)) } }
                            div.meta { (price(m)) }
                            a href=(format!("/dashboard/catalog/{}/similar", m.id)) { "Similar to this" }
                        }
                    }
                }
            }
            p { a href="/dashboard/catalog" { "Back to the catalog" } }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout("Find similar", Some(&s), Nav::Catalog, body),
    ))
}
