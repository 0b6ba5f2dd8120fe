//! The catalog over HTTP: upserts, background extraction, listing, filters, search,
//! dupes, duplicates, isolation, deletion, restarts and usage.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use dupify_core::{KeyMode, Tier};
use dupify_store::prelude::*;
use dupify_store::{ProductFeatures, ProductImage, ProductInput, ProductVectors};
use dupify_testkit::*;
use serde_json::{json, Value};

async fn get_json(s: &TestServer, key: &str, path: &str) -> (u16, Value) {
    let r = client()
        .get(s.url(path))
        .header("X-API-Key", key)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn delete(s: &TestServer, key: &str, path: &str) -> reqwest::Response {
    client()
        .delete(s.url(path))
        .header("X-API-Key", key)
        .send()
        .await
        .unwrap()
}

async fn upload(s: &TestServer, key: &str, body: Value) -> (u16, Value) {
    let r = post(&client(), &s.url("/v1/catalog/products"), key, body).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn search(s: &TestServer, key: &str, body: Value) -> Value {
    let r = post(&client(), &s.url("/v1/catalog/search"), key, body).await;
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    v
}

/// Polls until the product has left `processing`; returns it.
async fn wait_done(s: &TestServer, key: &str, id: &str) -> Value {
    let t = Instant::now();
    loop {
        let (st, p) = get_json(s, key, &format!("/v1/catalog/products/{id}")).await;
        assert_eq!(st, 200, "{p}");
        if p["embedding_status"] != "processing" {
            return p;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "still processing: {p}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn result_ids(v: &Value) -> Vec<String> {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["product"]["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A product photo-like image: a colored disc of `seed`'s hue on white.
fn disc_png(seed: u32) -> String {
    let c = [
        (seed * 53 % 200 + 30) as u8,
        (seed * 97 % 200 + 30) as u8,
        (seed * 29 % 200 + 30) as u8,
    ];
    let img = image::RgbImage::from_fn(96, 96, |x, y| {
        let (dx, dy) = (x as f32 - 48.0, y as f32 - 50.0);
        if dx * dx / (30.0 + (seed % 5) as f32 * 3.0).powi(2) + dy * dy / 900.0 <= 1.0 {
            image::Rgb(c)
        } else {
            image::Rgb([250, 250, 250])
        }
    });
    b64(&png(&img))
}

/// Ready products with synthetic vectors, straight into the store (the index at a
/// scale where real images would be slow).
/// title, category, brand, price, currency, metadata, visual vector.
type Seed<'a> = (
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    f64,
    &'a str,
    Value,
    Vec<f32>,
);

async fn seed_products(
    s: &TestServer,
    account: &str,
    mode: KeyMode,
    items: Vec<Seed<'_>>,
) -> Vec<String> {
    let rows = items
        .into_iter()
        .enumerate()
        .map(|(i, (title, cat, brand, price, cur, meta, v))| {
            (
                ProductInput {
                    external_id: Some(format!("seed-{title}-{i}")),
                    title: title.into(),
                    sku: None,
                    description: None,
                    brand: brand.map(Into::into),
                    category: cat.map(Into::into),
                    price: Some(price),
                    currency: cur.into(),
                    product_url: None,
                    image: ProductImage::Url(format!("https://img.example/{i}.jpg")),
                    image_ref: format!("ref-{i}"),
                    metadata: meta.to_string(),
                },
                ProductFeatures {
                    features: json!({"model": "test-4d"}).to_string(),
                    vectors: ProductVectors {
                        model: "test-4d".into(),
                        embedding: v,
                        silhouette: vec![1.0, 0.0],
                        color: vec![0.0, 1.0],
                    },
                },
            )
        })
        .collect();
    s.store
        .insert_ready_products(account, mode, rows)
        .await
        .unwrap()
}

fn unit(v: [f32; 4]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

#[tokio::test]
async fn upsert_processing_and_reprocessing() {
    let s = TestServer::start().await;
    let key = s.admin_key().await;
    let body = json!({"title": "Blue mug", "external_id": "SKU-1", "image_base64": disc_png(1),
                      "price": 12.5, "brand": "Acme", "category": "Mugs", "metadata": {"size": "M"}});
    let (st, created) = upload(&s, &key, body.clone()).await;
    assert_eq!(st, 201, "{created}");
    assert_eq!(created["status"], "created");
    assert_eq!(created["external_id"], "SKU-1");
    assert_eq!(created["embedding_status"], "processing");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID");
    let p = wait_done(&s, &key, &id).await;
    assert_eq!(p["embedding_status"], "ready", "{p}");
    assert_eq!(p["features"]["model"], "dupify-visual-v1");
    assert!(!p["features"]["colors"].as_array().unwrap().is_empty());
    assert!(p["features"]["attributes"].is_object());
    assert!(p["features"]["silhouette"]["aspect_ratio"].is_number());
    assert!(p["features"].get("embedding").is_none());
    let processed_at = p["processed_at"].clone();
    let colors = p["features"]["colors"].clone();
    let (_, with) = get_json(
        &s,
        &key,
        &format!("/v1/catalog/products/{id}?include=embedding"),
    )
    .await;
    assert_eq!(with["features"]["embedding"].as_array().unwrap().len(), 384);
    assert_eq!(
        with["features"]["silhouette"]["embedding"]
            .as_array()
            .unwrap()
            .len(),
        128
    );

    // Unchanged image: updated in place, not re-processed.
    let mut b2 = body.clone();
    b2["price"] = json!(9.99);
    let (st, up) = upload(&s, &key, b2).await;
    assert_eq!(st, 200);
    assert_eq!(up["id"], id.as_str());
    assert_eq!(up["status"], "updated");
    assert_eq!(up["embedding_status"], "ready");
    let (_, p) = get_json(&s, &key, &format!("/v1/catalog/products/{id}")).await;
    assert_eq!(p["price"], 9.99);
    assert_eq!(p["processed_at"], processed_at);

    // A changed image is processed again.
    let mut b3 = body.clone();
    b3["image_base64"] = json!(disc_png(2));
    let (_, up) = upload(&s, &key, b3).await;
    assert_eq!(up["status"], "updated");
    assert_eq!(up["embedding_status"], "processing");
    let p = wait_done(&s, &key, &id).await;
    assert_eq!(p["embedding_status"], "ready");
    assert_ne!(p["features"]["colors"], colors, "features of the new image");
    // Still one product.
    let (_, list) = get_json(&s, &key, "/v1/catalog/products").await;
    assert_eq!(list["total"], 1);
}

#[tokio::test]
async fn batch_upload_with_failures_in_slots() {
    let s = TestServer::start().await;
    let a = s.account(Tier::Free, None, Some(1_000_000)).await;
    let (key, _) = s.key_with(&a, "catalog", KeyMode::Live, None).await;
    let (st, v) = upload(
        &s,
        &key,
        json!({"products": [
            {"title": "A", "external_id": "a", "image_base64": disc_png(3)},
            {"external_id": "b", "image_base64": disc_png(4)},
            {"title": "C", "external_id": "c", "image_base64": disc_png(5), "price": -1},
            {"title": "D", "external_id": "a", "image_base64": disc_png(3), "price": 3},
            {"title": "E", "image_base64": "%%%"},
            {"title": "F", "external_id": "f", "image_base64": b64(b"not an image at all")},
        ]}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (
            v["created"].as_u64(),
            v["updated"].as_u64(),
            v["failed"].as_u64()
        ),
        (Some(2), Some(1), Some(3)),
        "{v}"
    );
    let r = v["results"].as_array().unwrap();
    assert_eq!(r[0]["status"], "created");
    assert_eq!(r[1]["error"]["code"], "missing_parameter");
    assert_eq!(r[1]["error"]["details"]["parameter"], "products[1].title");
    assert_eq!(r[2]["error"]["details"]["parameter"], "products[2].price");
    assert_eq!(r[3]["status"], "updated");
    assert_eq!(r[3]["id"], r[0]["id"]);
    assert_eq!(r[4]["error"]["code"], "invalid_base64");
    // Bytes that are not an image are accepted and fail in the background.
    let bad = r[5]["id"].as_str().unwrap().to_owned();
    let p = wait_done(&s, &key, &bad).await;
    assert_eq!(p["embedding_status"], "failed");
    assert_eq!(p["embedding_error"]["code"], "unsupported_format");
    // Over the free tier's 10 per request.
    let many: Vec<Value> = (0..11)
        .map(|i| json!({"title": format!("p{i}"), "image_base64": disc_png(i)}))
        .collect();
    expect_invalid(
        &s,
        &key,
        "/v1/catalog/products",
        json!({"products": many}),
        "products",
    )
    .await;
    // Re-uploading a failed product retries it, even with the same image.
    let (_, again) = upload(
        &s,
        &key,
        json!({"title": "F", "external_id": "f", "image_base64": b64(b"not an image at all")}),
    )
    .await;
    assert_eq!(again["embedding_status"], "processing");
    assert_eq!(again["id"], bad.as_str());
    assert_eq!(
        wait_done(&s, &key, &bad).await["embedding_status"],
        "failed"
    );
    // An unchanged ready product is left alone.
    let (_, same) = upload(
        &s,
        &key,
        json!({"title": "A", "external_id": "a", "image_base64": disc_png(3)}),
    )
    .await;
    assert_eq!(same["embedding_status"], "ready");
}

#[tokio::test]
async fn field_validation_names_the_parameter() {
    let s = TestServer::start().await;
    let key = s.admin_key().await;
    let img = disc_png(1);
    let path = "/v1/catalog/products";
    for (body, parameter) in [
        (
            json!({"title": "x", "image_base64": img, "price": "12"}),
            "price",
        ),
        (
            json!({"title": "x", "image_base64": img, "currency": "dollars"}),
            "currency",
        ),
        (
            json!({"title": "x", "image_base64": img, "metadata": {"a": {"b": 1}}}),
            "metadata.a",
        ),
        (
            json!({"title": "x", "image_base64": img, "metadata": {"a": "x".repeat(9000)}}),
            "metadata",
        ),
        (
            json!({"title": "x", "image_base64": img, "colour": "red"}),
            "colour",
        ),
        (json!({"title": "", "image_base64": img}), "title"),
        (json!({"title": 5, "image_base64": img}), "title"),
        (
            json!({"title": "x", "image_base64": img, "image_url": "https://a.example/x.png"}),
            "image_base64",
        ),
        (
            json!({"title": "x", "image_base64": img, "product_url": "ftp://a/b"}),
            "product_url",
        ),
        (json!({"products": "no"}), "products"),
        (json!({"products": [], "title": "x"}), "title"),
    ] {
        expect_invalid(&s, &key, path, body, parameter).await;
    }
    let e = expect_error(
        post(&client(), &s.url(path), &key, json!({"title": "x"})).await,
        400,
        "missing_parameter",
    )
    .await;
    assert_eq!(e["details"]["parameter"], "image_url");
    let e = expect_error(
        post(
            &client(),
            &s.url(path),
            &key,
            json!({"title": "x", "image_url": "http://127.0.0.1/a.png"}),
        )
        .await,
        400,
        "invalid_image_url",
    )
    .await;
    assert_eq!(e["details"]["parameter"], "image_url");
    // Query validation on the list.
    for q in [
        "limit=0",
        "limit=101",
        "limit=x",
        "cursor=zzz",
        "embedding_status=done",
        "colour=red",
    ] {
        let (st, v) = get_json(&s, &key, &format!("/v1/catalog/products?{q}")).await;
        assert_eq!(st, 400, "{q}: {v}");
        assert_eq!(v["error"]["code"], "invalid_parameter");
    }
}

#[tokio::test]
async fn catalog_limit_is_enforced() {
    let s = TestServer::start().await;
    let a = s.account(Tier::Free, None, None).await;
    let (key, _) = s.key_with(&a, "", KeyMode::Live, None).await;
    let items = (0..1000)
        .map(|i| {
            (
                "x",
                None,
                None,
                i as f64,
                "USD",
                json!({}),
                unit([1.0, 0.0, 0.0, i as f32]),
            )
        })
        .collect();
    seed_products(&s, &a.id, KeyMode::Live, items).await;
    let r = post(
        &client(),
        &s.url("/v1/catalog/products"),
        &key,
        json!({"title": "one too many", "image_base64": disc_png(1)}),
    )
    .await;
    let e = expect_error(r, 403, "catalog_limit_exceeded").await;
    assert_eq!(e["limit"], 1000);
    assert_eq!(e["current_size"], 1000);
    // Updating an existing product is not growth; test mode has its own catalog.
    let (tkey, _) = s.key_with(&a, "", KeyMode::Test, None).await;
    let (st, _) = upload(
        &s,
        &tkey,
        json!({"title": "t", "image_base64": disc_png(1)}),
    )
    .await;
    assert_eq!(st, 201);
    // Quota was not touched by the refused upload.
    let u = usage_of(&s, &key).await;
    assert_eq!(u["used"], 0, "{u}");
}

#[tokio::test]
async fn pagination_sees_every_product_once_while_inserting() {
    let s = TestServer::start().await;
    let a = s.account(Tier::Unlimited, None, None).await;
    let (key, _) = s.key_with(&a, "", KeyMode::Live, None).await;
    let items = (0..150)
        .map(|i| {
            (
                "p",
                Some(if i % 3 == 0 { "Shoes" } else { "Bags" }),
                None,
                i as f64,
                "USD",
                json!({}),
                unit([1.0, i as f32, 0.0, 0.0]),
            )
        })
        .collect();
    let original: HashSet<String> = seed_products(&s, &a.id, KeyMode::Live, items)
        .await
        .into_iter()
        .collect();
    // Insert 30 more through the API while paging.
    let writer = {
        let (base, key) = (s.base.clone(), key.clone());
        tokio::spawn(async move {
            for i in 0..30 {
                let r = post(
                    &client(),
                    &format!("{base}/v1/catalog/products"),
                    &key,
                    json!({"title": format!("new {i}"), "image_base64": distinct_png(i)}),
                )
                .await;
                assert!(r.status().is_success());
            }
        })
    };
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/catalog/products?limit=7&cursor={c}"),
            None => "/v1/catalog/products?limit=7".to_string(),
        };
        let (st, page) = get_json(&s, &key, &path).await;
        assert_eq!(st, 200, "{page}");
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 7);
        seen.extend(data.iter().map(|p| p["id"].as_str().unwrap().to_owned()));
        if page["has_more"] == false {
            assert!(page["next_cursor"].is_null());
            break;
        }
        cursor = Some(page["next_cursor"].as_str().unwrap().to_owned());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    writer.await.unwrap();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a product appeared twice");
    for id in &original {
        assert!(unique.contains(id), "product {id} missed");
    }
    // Filters on the list, with totals.
    let (_, shoes) = get_json(&s, &key, "/v1/catalog/products?category=shoes&limit=100").await;
    assert_eq!(shoes["total"], 50);
    assert!(shoes["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["category"] == "Shoes"));
    let (_, ready) = get_json(
        &s,
        &key,
        "/v1/catalog/products?embedding_status=ready&limit=1",
    )
    .await;
    assert!(ready["total"].as_u64().unwrap() >= 150);
}

/// A catalog of six products around a query bag: a near twin, a cheap twin, a twin
/// priced in EUR, a shoe and a far one (in this order in the returned ids).
async fn shop() -> (TestServer, String, Vec<String>) {
    let s = TestServer::start().await;
    let a = s.account(Tier::Unlimited, None, None).await;
    let (key, _) = s.key_with(&a, "catalog", KeyMode::Live, None).await;
    let q = unit([1.0, 0.0, 0.0, 0.0]);
    let ids = seed_products(
        &s,
        &a.id,
        KeyMode::Live,
        vec![
            (
                "query",
                Some("Bags"),
                Some("Luxe"),
                300.0,
                "USD",
                json!({"color": "red"}),
                q.clone(),
            ),
            (
                "twin",
                Some("Bags"),
                Some("Luxe"),
                280.0,
                "USD",
                json!({"color": "red"}),
                unit([1.0, 0.05, 0.0, 0.0]),
            ),
            (
                "cheap twin",
                Some("Bags"),
                Some("Budget"),
                40.0,
                "USD",
                json!({"color": "red"}),
                unit([1.0, 0.1, 0.0, 0.0]),
            ),
            (
                "euro twin",
                Some("Bags"),
                Some("Budget"),
                30.0,
                "EUR",
                json!({"color": "blue"}),
                unit([1.0, 0.12, 0.0, 0.0]),
            ),
            (
                "shoe",
                Some("Shoes"),
                Some("Budget"),
                20.0,
                "USD",
                json!({"color": "red"}),
                unit([1.0, 0.2, 0.0, 0.0]),
            ),
            (
                "far",
                Some("Bags"),
                Some("Budget"),
                10.0,
                "USD",
                json!({"color": "red"}),
                unit([0.0, 0.0, 1.0, 0.0]),
            ),
        ],
    )
    .await;
    (s, key, ids)
}

/// Ranking, the query product left out, and the answer's fields.
#[tokio::test]
async fn search_ranks_by_similarity_and_never_returns_the_query() {
    let (s, key, ids) = shop().await;
    let (query, twin, cheap, euro, shoe, far) =
        (&ids[0], &ids[1], &ids[2], &ids[3], &ids[4], &ids[5]);
    let r = search(&s, &key, json!({"product_id": query, "top_k": 10})).await;
    let got = result_ids(&r);
    assert_eq!(
        &got[..5],
        &[
            twin.clone(),
            cheap.clone(),
            euro.clone(),
            shoe.clone(),
            far.clone()
        ],
        "{r}"
    );
    assert!(
        !got.contains(query),
        "the query product is not its own match"
    );
    assert!(r["took_ms"].is_u64());
    assert_eq!(r["model"], "test-4d");
    let first = &r["results"][0];
    assert!(first["score"].as_f64().unwrap() > 0.99);
    assert!(
        first["scores"]["visual"].is_number()
            && first["scores"]["silhouette"].is_number()
            && first["scores"]["color"].is_number()
    );
    assert_eq!(first["product"]["title"], "twin");
}

/// Every filter on its own: category and brand (any case), price range, currency, metadata.
#[tokio::test]
async fn search_filters_each_field() {
    let (s, key, ids) = shop().await;
    let (query, twin, cheap, euro, shoe) = (&ids[0], &ids[1], &ids[2], &ids[3], &ids[4]);
    let ids_of = |v: Value| result_ids(&v);
    // Each filter.
    assert_eq!(
        ids_of(
            search(
                &s,
                &key,
                json!({"product_id": query, "filters": {"category": "SHOES"}})
            )
            .await
        ),
        vec![shoe.clone()]
    );
    assert_eq!(
        ids_of(
            search(
                &s,
                &key,
                json!({"product_id": query, "filters": {"brand": "luxe"}})
            )
            .await
        ),
        vec![twin.clone()]
    );
    assert_eq!(
        ids_of(
            search(
                &s,
                &key,
                json!({"product_id": query, "filters": {"price_min": 25, "price_max": 50}})
            )
            .await
        ),
        vec![cheap.clone(), euro.clone()]
    );
    assert_eq!(
        ids_of(
            search(
                &s,
                &key,
                json!({"product_id": query, "filters": {"currency": "EUR"}})
            )
            .await
        ),
        vec![euro.clone()]
    );
    assert_eq!(
        ids_of(
            search(
                &s,
                &key,
                json!({"product_id": query, "filters": {"metadata": {"color": "blue"}}})
            )
            .await
        ),
        vec![euro.clone()]
    );
}

/// Dupes mode in the query product's currency or a given one, exclusions and the score floor.
#[tokio::test]
async fn search_dupes_mode_exclusions_and_min_score() {
    let (s, key, ids) = shop().await;
    let (query, twin, cheap, euro, shoe, far) =
        (&ids[0], &ids[1], &ids[2], &ids[3], &ids[4], &ids[5]);
    let ids_of = |v: Value| result_ids(&v);
    // Dupes mode: cheaper than 50 in the query product's currency (USD).
    assert_eq!(
        ids_of(search(&s, &key, json!({"product_id": query, "cheaper_than": 50})).await),
        vec![cheap.clone(), shoe.clone(), far.clone()]
    );
    assert_eq!(
        ids_of(
            search(
                &s,
                &key,
                json!({"product_id": query, "cheaper_than": 50, "filters": {"currency": "EUR"}})
            )
            .await
        ),
        vec![euro.clone()]
    );
    assert_eq!(
        ids_of(
            search(
                &s,
                &key,
                json!({"product_id": query, "exclude_ids": [twin, cheap], "top_k": 2})
            )
            .await
        ),
        vec![euro.clone(), shoe.clone()]
    );
    assert_eq!(
        ids_of(search(&s, &key, json!({"product_id": query, "min_score": 0.9})).await).len(),
        4
    );
}

/// Weights: a shape-only search ties (identical silhouettes), a blend averages.
#[tokio::test]
async fn search_weights_blend_the_components() {
    let (s, key, ids) = shop().await;
    let query = &ids[0];
    // Weights: silhouette and color are identical for all, so a pure-shape search ties.
    let r = search(
        &s,
        &key,
        json!({"product_id": query, "weights": {"silhouette": 1}}),
    )
    .await;
    assert_eq!(r["results"].as_array().unwrap().len(), 5);
    assert!(r["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| (x["score"].as_f64().unwrap() - 1.0).abs() < 1e-3));
    let r = search(
        &s,
        &key,
        json!({"product_id": query, "weights": {"visual": 1, "silhouette": 1}, "top_k": 1}),
    )
    .await;
    let sc = &r["results"][0];
    let want = (sc["scores"]["visual"].as_f64().unwrap() + 1.0) / 2.0;
    assert!((sc["score"].as_f64().unwrap() - want).abs() < 1e-3);
}

/// Bad bodies, each naming its parameter; an unknown product is not found.
#[tokio::test]
async fn search_refuses_bad_requests() {
    let (s, key, ids) = shop().await;
    let query = &ids[0];
    // Bad requests.
    let path = "/v1/catalog/search";
    for (body, parameter) in [
        (json!({"product_id": query, "top_k": 0}), "top_k"),
        (json!({"product_id": query, "top_k": 101}), "top_k"),
        (json!({"product_id": query, "min_score": 2}), "min_score"),
        (
            json!({"product_id": query, "weights": {"visual": -1}}),
            "weights.visual",
        ),
        (
            json!({"product_id": query, "weights": {"visual": 0}}),
            "weights",
        ),
        (
            json!({"product_id": query, "weights": {"shape": 1}}),
            "weights.shape",
        ),
        (
            json!({"product_id": query, "filters": {"size": "M"}}),
            "filters.size",
        ),
        (
            json!({"product_id": query, "filters": {"price_min": 5, "price_max": 1}}),
            "filters.price_min",
        ),
        (
            json!({"product_id": query, "cheaper_than": "50"}),
            "cheaper_than",
        ),
        (json!({"product_id": query, "text": "red bag"}), "text"),
        (json!({"text": "red bag"}), "text"),
        (json!({"product_id": query, "limit": 3}), "limit"),
    ] {
        expect_invalid(&s, &key, path, body, parameter).await;
    }
    let e = expect_error(
        post(&client(), &s.url(path), &key, json!({"top_k": 3})).await,
        400,
        "missing_parameter",
    )
    .await;
    assert_eq!(e["details"]["parameter"], "image_url");
    expect_error(
        post(
            &client(),
            &s.url(path),
            &key,
            json!({"product_id": "00000000-0000-0000-0000-000000000000"}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn search_by_image_finds_the_product_and_counts_one_call() {
    let s = TestServer::start().await;
    let a = s.account(Tier::Pro, None, Some(1_000_000)).await;
    let (key, _) = s.key_with(&a, "", KeyMode::Live, None).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let (_, v) = upload(
            &s,
            &key,
            json!({"title": format!("disc {i}"), "image_base64": disc_png(i), "price": 10 + i}),
        )
        .await;
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        assert_eq!(wait_done(&s, &key, id).await["embedding_status"], "ready");
    }
    // Six uploads processed: six calls.
    assert_eq!(usage_of(&s, &key).await["used"], 6);
    let r = search(&s, &key, json!({"image_base64": disc_png(3), "top_k": 3, "weights": {"visual": 1, "color": 0.5, "silhouette": 0.5}})).await;
    assert_eq!(result_ids(&r)[0], ids[3], "{r}");
    assert!(r["results"][0]["score"].as_f64().unwrap() > 0.99);
    assert_eq!(r["model"], "dupify-visual-v1");
    assert_eq!(usage_of(&s, &key).await["used"], 7);
    // A failed search (bad image) costs nothing.
    expect_error(
        post(
            &client(),
            &s.url("/v1/catalog/search"),
            &key,
            json!({"image_base64": b64(b"nope")}),
        )
        .await,
        422,
        "unsupported_format",
    )
    .await;
    assert_eq!(usage_of(&s, &key).await["used"], 7);
    // Duplicates: an exact copy under another external id groups with the original.
    let (_, c) = upload(
        &s,
        &key,
        json!({"title": "copy", "external_id": "copy", "image_base64": disc_png(3)}),
    )
    .await;
    let copy = c["id"].as_str().unwrap().to_owned();
    wait_done(&s, &key, &copy).await;
    let r = post(
        &client(),
        &s.url("/v1/catalog/duplicates"),
        &key,
        json!({"threshold": 0.99}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{v}");
    let members: HashSet<&str> = groups[0]["product_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(members, HashSet::from([ids[3].as_str(), copy.as_str()]));
    assert!(groups[0]["score"].as_f64().unwrap() >= 0.99);
    expect_invalid(
        &s,
        &key,
        "/v1/catalog/duplicates",
        json!({"threshold": 1.5}),
        "threshold",
    )
    .await;
}

#[tokio::test]
async fn tenants_and_modes_are_isolated_on_every_route() {
    let s = TestServer::start().await;
    let a = s.account(Tier::Unlimited, None, None).await;
    let b = s.account(Tier::Unlimited, None, None).await;
    let (a_live, _) = s.key_with(&a, "", KeyMode::Live, None).await;
    let (a_test, _) = s.key_with(&a, "", KeyMode::Test, None).await;
    let (b_live, _) = s.key_with(&b, "", KeyMode::Live, None).await;
    let v = unit([1.0, 0.0, 0.0, 0.0]);
    let mine = seed_products(
        &s,
        &a.id,
        KeyMode::Live,
        vec![
            ("a1", None, None, 1.0, "USD", json!({}), v.clone()),
            ("a2", None, None, 1.0, "USD", json!({}), v.clone()),
        ],
    )
    .await;
    let test_ids = seed_products(
        &s,
        &a.id,
        KeyMode::Test,
        vec![("t1", None, None, 1.0, "USD", json!({}), v.clone())],
    )
    .await;
    seed_products(
        &s,
        &b.id,
        KeyMode::Live,
        vec![("b1", None, None, 1.0, "USD", json!({}), v.clone())],
    )
    .await;
    let id = &mine[0];
    for other in [&a_test, &b_live] {
        let (st, e) = get_json(&s, other, &format!("/v1/catalog/products/{id}")).await;
        assert_eq!((st, e["error"]["code"].as_str()), (404, Some("not_found")));
        expect_error(
            delete(&s, other, &format!("/v1/catalog/products/{id}")).await,
            404,
            "not_found",
        )
        .await;
        expect_error(
            post(
                &client(),
                &s.url("/v1/catalog/search"),
                other,
                json!({"product_id": id}),
            )
            .await,
            404,
            "not_found",
        )
        .await;
        // Excluding or searching never reaches into the other catalog.
        let (_, list) = get_json(&s, other, "/v1/catalog/products").await;
        assert!(list["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| !mine.contains(&p["id"].as_str().unwrap().to_owned())));
        assert_eq!(list["total"], 1);
    }
    // A's test search sees only the test catalog; A's live search only live products.
    let r = search(&s, &a_test, json!({"product_id": test_ids[0]})).await;
    assert!(result_ids(&r).is_empty(), "{r}");
    let r = search(&s, &a_live, json!({"product_id": id})).await;
    assert_eq!(result_ids(&r), vec![mine[1].clone()]);
    // An upsert by the same external id in the other catalog creates a new product.
    let (st, v) = upload(
        &s,
        &b_live,
        json!({"title": "x", "external_id": "seed-a1-0", "image_base64": disc_png(1)}),
    )
    .await;
    assert_eq!((st, v["status"].as_str()), (201, Some("created")));
    // Malformed ids are simply not found.
    let (st, _) = get_json(&s, &a_live, "/v1/catalog/products/not-a-uuid").await;
    assert_eq!(st, 404);
    // Scope: a key without `catalog` cannot use any catalog route.
    let (colors_only, _) = s.key_with(&a, "colors", KeyMode::Live, None).await;
    let e = expect_error(
        post(
            &client(),
            &s.url("/v1/catalog/search"),
            &colors_only,
            json!({"product_id": id}),
        )
        .await,
        403,
        "insufficient_scope",
    )
    .await;
    assert_eq!(e["details"]["required_scope"], "catalog");
    let (st, _) = get_json(&s, &colors_only, "/v1/catalog/products").await;
    assert_eq!(st, 403);
}

#[tokio::test]
async fn deletion_is_visible_at_once_and_survives_restart() {
    let s = TestServer::start_with(|c| c.catalog_snapshot_secs = 1).await;
    let a = s.account(Tier::Unlimited, None, None).await;
    let (key, _) = s.key_with(&a, "", KeyMode::Live, None).await;
    let items = (0..300)
        .map(|i| {
            (
                "p",
                None,
                None,
                i as f64,
                "USD",
                json!({}),
                unit([1.0, (i as f32) / 300.0, ((i * 7) % 13) as f32 / 13.0, 0.0]),
            )
        })
        .collect();
    let ids = seed_products(&s, &a.id, KeyMode::Live, items).await;
    let before = search(&s, &key, json!({"product_id": ids[0], "top_k": 5})).await;
    let top = result_ids(&before);
    let victim = top[0].clone();
    let r = delete(&s, &key, &format!("/v1/catalog/products/{victim}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"id": victim, "deleted": true})
    );
    let after = result_ids(&search(&s, &key, json!({"product_id": ids[0], "top_k": 5})).await);
    assert!(!after.contains(&victim));
    assert_eq!(after[..4], top[1..]);
    let (st, _) = get_json(&s, &key, &format!("/v1/catalog/products/{victim}")).await;
    assert_eq!(st, 404);
    expect_error(
        delete(&s, &key, &format!("/v1/catalog/products/{victim}")).await,
        404,
        "not_found",
    )
    .await;
    // Let a snapshot be written, change more, restart: the same answers.
    tokio::time::sleep(Duration::from_millis(6_500)).await;
    delete(&s, &key, &format!("/v1/catalog/products/{}", after[0])).await;
    let expect = result_ids(&search(&s, &key, json!({"product_id": ids[0], "top_k": 10})).await);
    let dir = s.stop().await;
    assert!(std::fs::read_dir(dir.path().join("index")).unwrap().count() >= 1);
    let s2 = TestServer::start_in(dir, |_| {}).await;
    let again = result_ids(&search(&s2, &key, json!({"product_id": ids[0], "top_k": 10})).await);
    assert_eq!(again, expect);
    let (_, list) = get_json(&s2, &key, "/v1/catalog/products?limit=1").await;
    assert_eq!(list["total"], 298);
}

/// A local image host whose `/flaky.png` fails with 503 twice, then serves.
async fn flaky_host() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let bytes = png(&navy_white(64, 48));
    let h = hits.clone();
    let app = axum::Router::new()
        .route(
            "/flaky.png",
            get(move || {
                let (h, b) = (h.clone(), bytes.clone());
                async move {
                    if h.fetch_add(1, Ordering::SeqCst) < 2 {
                        StatusCode::SERVICE_UNAVAILABLE.into_response()
                    } else {
                        ([(header::CONTENT_TYPE, "image/png")], b).into_response()
                    }
                }
            }),
        )
        .route(
            "/gone.png",
            get(|| async { StatusCode::NOT_FOUND.into_response() }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, hits)
}

#[tokio::test]
async fn transient_fetch_errors_are_retried_permanent_ones_are_not() {
    let (host, hits) = flaky_host().await;
    let s = TestServer::start_with(|c| {
        c.allow_private_image_hosts = true;
        c.catalog_retry_base_secs = 0.05;
    })
    .await;
    let a = s.account(Tier::Starter, None, Some(1_000_000)).await;
    let (key, _) = s.key_with(&a, "", KeyMode::Live, None).await;
    let (_, v) = upload(
        &s,
        &key,
        json!({"title": "flaky", "image_url": format!("http://{host}/flaky.png")}),
    )
    .await;
    let p = wait_done(&s, &key, v["id"].as_str().unwrap()).await;
    assert_eq!(p["embedding_status"], "ready", "{p}");
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    let (_, v) = upload(
        &s,
        &key,
        json!({"title": "gone", "image_url": format!("http://{host}/gone.png")}),
    )
    .await;
    let p = wait_done(&s, &key, v["id"].as_str().unwrap()).await;
    assert_eq!(p["embedding_status"], "failed");
    assert_eq!(p["embedding_error"]["code"], "image_fetch_failed");
    assert!(p["embedding_error"]["message"]
        .as_str()
        .unwrap()
        .contains("404"));
    // One success counted; the failure was refunded.
    assert_eq!(usage_of(&s, &key).await["used"], 1);
    // Re-uploading the unchanged ready product is free and queues nothing.
    upload(
        &s,
        &key,
        json!({"title": "flaky 2", "image_url": format!("http://{host}/flaky.png")}),
    )
    .await;
    let u = usage_of(&s, &key).await;
    assert!(u["used"].as_u64().unwrap() <= 2);
}

#[tokio::test]
async fn quota_is_reserved_at_upload_and_test_keys_are_free() {
    let s = TestServer::start().await;
    let a = s.account(Tier::Free, Some(3), Some(1_000_000)).await;
    let (live, _) = s.key_with(&a, "", KeyMode::Live, None).await;
    let (test, _) = s.key_with(&a, "", KeyMode::Test, None).await;
    let (st, v) = upload(&s, &live, json!({"products": (0..5).map(|i| json!({"title": format!("p{i}"), "image_base64": disc_png(i)})).collect::<Vec<_>>()})).await;
    assert_eq!(st, 200);
    assert_eq!(v["created"], 3, "{v}");
    assert_eq!(v["failed"], 2);
    assert_eq!(v["results"][3]["error"]["code"], "quota_exceeded");
    assert_eq!(v["results"][3]["error"]["limit"], 3);
    for r in v["results"].as_array().unwrap().iter().take(3) {
        wait_done(&s, &live, r["id"].as_str().unwrap()).await;
    }
    assert_eq!(usage_of(&s, &live).await["used"], 3);
    let r = post(
        &client(),
        &s.url("/v1/catalog/products"),
        &live,
        json!({"title": "x", "image_base64": disc_png(9)}),
    )
    .await;
    let e = expect_error(r, 403, "quota_exceeded").await;
    assert_eq!(e["current_usage"], 3);
    // Test keys: their own catalog, no quota.
    for i in 0..4 {
        let (st, _) = upload(
            &s,
            &test,
            json!({"title": format!("t{i}"), "image_base64": disc_png(i)}),
        )
        .await;
        assert_eq!(st, 201);
    }
    assert_eq!(usage_of(&s, &live).await["used"], 3);
    let (_, tl) = get_json(&s, &test, "/v1/catalog/products").await;
    assert_eq!(tl["total"], 4);
}

#[tokio::test]
async fn text_search_with_a_clip_text_tower_and_real_segmentation() {
    let s = TestServer::with_models(ModelSet::WithClip, |_| {}).await;
    let key = s.admin_key().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let (st, v) = upload(
            &s,
            &key,
            json!({"title": format!("p{i}"), "image_base64": disc_png(i + 10)}),
        )
        .await;
        assert_eq!(st, 201, "{v}");
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    let mut model = String::new();
    for id in &ids {
        let p = wait_done(&s, &key, id).await;
        assert_eq!(p["embedding_status"], "ready", "{p}");
        // Products are embedded with the CLIP image tower when one is loaded.
        model = p["features"]["model"].as_str().unwrap().to_owned();
        assert_ne!(model, "dupify-visual-v1");
        assert!(
            p["features"]["foreground"]["source"]
                .as_str()
                .unwrap()
                .contains("u2netp"),
            "{p}"
        );
    }
    let r = search(&s, &key, json!({"text": "a red round product", "top_k": 3})).await;
    assert_eq!(r["model"], model.as_str());
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{r}");
    for x in results {
        assert!(x["scores"]["visual"].is_number());
        assert!(
            x["scores"].get("silhouette").is_none(),
            "text has only visual similarity"
        );
    }
    // Image queries land in the same space.
    let r = search(&s, &key, json!({"image_base64": disc_png(11), "top_k": 1})).await;
    assert_eq!(result_ids(&r), vec![ids[1].clone()]);
    expect_invalid(
        &s,
        &key,
        "/v1/catalog/search",
        json!({"text": "x", "weights": {"color": 1}}),
        "weights",
    )
    .await;
    // A space that does not exist, or whose vectors have other dimensions, is a 400.
    expect_invalid(
        &s,
        &key,
        "/v1/catalog/search",
        json!({"product_id": ids[0], "model": "dupify-visual-v1"}),
        "model",
    )
    .await;
}
