//! The client against a real server on an ephemeral port (no models: the weight-free
//! embedding and the model-free foreground estimate), including a forced 429 and a
//! forced 503 to observe the retry policy.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dupify_client::{
    AuthScheme, BackgroundRemoveOptions, BatchOptions, Client, ColorsOptions, DuplicatesRequest,
    EmbedOptions, EmbeddingStatus, Error, Filters, ImageSource, ListProducts, NewProduct,
    Operation, RetryEvent, RetryPolicy, SearchQuery, SearchRequest, SegmentationOptions,
};
use dupify_core::{KeyMode, Tier};
use dupify_server::ServerConfig;
use dupify_store::prelude::*;
use dupify_store::NewAccount;
use dupify_testkit::TestServer;

async fn start(f: impl FnOnce(&mut ServerConfig)) -> TestServer {
    TestServer::start_with(|c| {
        c.shutdown_grace_secs = 2;
        f(c)
    })
    .await
}

/// What these tests need of a server beyond the shared harness.
trait SdkServer {
    async fn key(&self, tier: Tier, rate: Option<u32>, mode: KeyMode) -> String;
    fn client(&self, key: &str, policy: RetryPolicy) -> (Client, Arc<Mutex<Vec<RetryEvent>>>);
}

impl SdkServer for TestServer {
    async fn key(&self, tier: Tier, rate: Option<u32>, mode: KeyMode) -> String {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos();
        let account = self
            .store
            .create_account(NewAccount {
                email: format!("sdk-{n}@test.local"),
                tier,
                monthly_limit: None,
                rate_limit: rate,
            })
            .await
            .expect("account");
        self.key_with(&account, "", mode, None).await.0
    }

    fn client(&self, key: &str, policy: RetryPolicy) -> (Client, Arc<Mutex<Vec<RetryEvent>>>) {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let c = Client::builder(&self.base)
            .api_key(key)
            .retry_policy(policy)
            .on_retry(move |e| sink.lock().expect("lock").push(e.clone()))
            .build()
            .expect("client");
        (c, events)
    }
}

/// A product photo: a colored ellipse on a light backdrop, different for every seed.
fn photo(seed: u32) -> Vec<u8> {
    let (w, h) = (160u32, 200u32);
    let c = [
        (40 + seed * 53 % 180) as u8,
        (30 + seed * 97 % 190) as u8,
        (60 + seed * 31 % 170) as u8,
    ];
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let dx = (x as f32 - 80.0) / (40.0 + (seed % 5) as f32 * 6.0);
        let dy = (y as f32 - 100.0) / 70.0;
        if dx * dx + dy * dy <= 1.0 {
            image::Rgb(c)
        } else {
            image::Rgb([236, 236, 232])
        }
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("png");
    out
}

fn quick() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(400),
        max_retry_after: Duration::from_secs(10),
        deadline: Some(Duration::from_secs(30)),
    }
}

#[tokio::test]
async fn every_image_endpoint_typed() {
    let s = start(|_| {}).await;
    let key = s.key(Tier::Unlimited, None, KeyMode::Live).await;
    let (c, events) = s.client(&key, quick());
    let img = ImageSource::bytes(photo(1));

    let e = c
        .embed(
            &img,
            &EmbedOptions {
                include_quality: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("embed");
    assert_eq!(e.model, "dupify-visual-v1");
    assert_eq!(e.embedding.len(), e.dimensions);
    let norm: f32 = e.embedding.iter().map(|x| x * x).sum();
    assert!((norm - 1.0).abs() < 1e-3);
    assert!(e.quality.is_some() && !e.cached && e.attempts == 1);
    assert!(e
        .request_id
        .as_deref()
        .is_some_and(|id| id.starts_with("req_")));
    assert_eq!(e.rate_limit.limit, Some(1000), "unlimited tier: 1000/min");
    assert_eq!(
        e.rate_limit.monthly_limit, None,
        "no monthly headers when unlimited"
    );

    let again = c
        .embed(
            &img,
            &EmbedOptions {
                include_quality: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("embed again");
    assert!(again.cached);

    let colors = c
        .colors(
            &img,
            &ColorsOptions {
                max_colors: Some(3),
                ..Default::default()
            },
        )
        .await
        .expect("colors");
    assert!(!colors.colors.is_empty() && colors.colors.len() <= 3);
    assert!(colors.colors[0].hex.starts_with('#'));
    assert!(colors.foreground.is_some());

    let sil = c
        .silhouette(&img, &SegmentationOptions::default())
        .await
        .expect("silhouette");
    assert_eq!(sil.embedding.len(), 128);
    assert!(sil.coverage > 0.0 && sil.aspect_ratio > 0.0);

    let attrs = c
        .attributes(&img, &SegmentationOptions::default())
        .await
        .expect("attributes");
    assert_eq!(attrs.attributes["has_transparency"].value, "false");
    assert!(attrs.attributes.values().all(|a| a.source == "pixels"));

    // A batch with a failing item in the middle keeps both neighbours.
    let items = [
        ImageSource::bytes(photo(2)),
        ImageSource::bytes(b"not an image".to_vec()),
        ImageSource::bytes(photo(3)),
    ];
    let b = c
        .colors_batch(&items, &ColorsOptions::default())
        .await
        .expect("batch");
    assert_eq!(b.results.len(), 3);
    assert!(b.results[0].is_ok() && b.results[2].is_ok());
    let err = b.results[1].as_ref().expect_err("middle item fails");
    assert_eq!(err.code, "unsupported_format");

    let multi = c
        .batch(
            &items[..1],
            &BatchOptions {
                operations: vec![Operation::Embed, Operation::Colors, Operation::Silhouette],
                ..Default::default()
            },
        )
        .await
        .expect("multi-op batch");
    let first = multi.results[0].as_ref().expect("ok");
    assert!(first.embed.is_some() && first.colors.is_some() && first.silhouette.is_some());

    // Bearer auth reaches the same account.
    let bearer = Client::builder(&s.base)
        .api_key(&key)
        .auth_scheme(AuthScheme::Bearer)
        .build()
        .expect("client");
    let usage = bearer.usage().await.expect("usage");
    assert_eq!(usage.tier, "unlimited");
    assert!(usage.days.iter().map(|d| d.calls).sum::<u64>() >= 5);
    assert!(
        events.lock().expect("lock").is_empty(),
        "nothing was retried"
    );
}

#[tokio::test]
async fn client_errors_are_typed_and_never_retried() {
    let s = start(|_| {}).await;
    let key = s.key(Tier::Unlimited, None, KeyMode::Live).await;
    let (c, events) = s.client(&key, quick());

    let err = c
        .colors(
            &ImageSource::bytes(photo(1)),
            &ColorsOptions {
                max_colors: Some(40),
                ..Default::default()
            },
        )
        .await
        .expect_err("out of range");
    let api = err.api().expect("an API answer");
    assert_eq!((api.status, api.code.as_str()), (400, "invalid_parameter"));
    assert_eq!(api.parameter(), Some("max_colors"));
    assert!(api
        .request_id
        .as_deref()
        .is_some_and(|r| r.starts_with("req_")));
    assert_eq!(api.attempts, 1);
    assert!(
        api.rate_limit.remaining.is_some(),
        "metering headers on errors too"
    );

    let err = c
        .embed(
            &ImageSource::url("http://127.0.0.1:1/x.png"),
            &EmbedOptions::default(),
        )
        .await
        .expect_err("private host");
    assert_eq!(err.code(), Some("invalid_image_url"));

    let err = c
        .get_product("00000000-0000-0000-0000-000000000000", false)
        .await
        .expect_err("unknown product");
    assert_eq!((err.status(), err.code()), (Some(404), Some("not_found")));

    let (bad, _) = s.client("fe_live_00000000000000000000000000000000", quick());
    let err = bad.usage().await.expect_err("unknown key");
    assert_eq!(
        (err.status(), err.code()),
        (Some(401), Some("invalid_api_key"))
    );
    assert!(
        events.lock().expect("lock").is_empty(),
        "4xx are never retried"
    );
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after_then_succeeds() {
    let s = start(|_| {}).await;
    // 60 per minute: a burst of 60, then one every second.
    let key = s.key(Tier::Starter, Some(60), KeyMode::Test).await;
    let (plain, _) = s.client(&key, RetryPolicy::none());
    let mut refused = None;
    for _ in 0..80 {
        match plain.usage().await {
            Ok(_) => {}
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let e = refused.expect("the burst runs out");
    let api = e.api().expect("API error");
    assert_eq!(
        (api.status, api.code.as_str()),
        (429, "rate_limit_exceeded")
    );
    assert!(api.retry_after.is_some_and(|d| d >= Duration::from_secs(1)));
    assert_eq!(api.rate_limit.remaining, Some(0));

    let (c, events) = s.client(&key, quick());
    let t = Instant::now();
    let usage = c.usage().await.expect("succeeds after waiting");
    let took = t.elapsed();
    let ev = events.lock().expect("lock").clone();
    assert!(!ev.is_empty(), "it was throttled first");
    assert!(ev
        .iter()
        .all(|e| e.status == Some(429) && e.wait >= Duration::from_secs(1)));
    assert_eq!(usage.attempts as usize, ev.len() + 1);
    assert!(
        took >= Duration::from_secs(1),
        "waited Retry-After: {took:?}"
    );
    eprintln!(
        "429: waits {:?}, succeeded after {took:?} on attempt {}",
        ev.iter().map(|e| e.wait).collect::<Vec<_>>(),
        usage.attempts
    );
}

#[tokio::test]
async fn overload_is_retried_with_backoff_until_capacity_returns() {
    // One CPU slot and no queue: while the test holds the slot, image work is refused
    // with 503 service_unavailable and Retry-After: 1.
    let s = start(|c| {
        c.cpu_workers = 1;
        c.cpu_queue_limit = 0;
    })
    .await;
    let key = s.key(Tier::Unlimited, None, KeyMode::Live).await;
    let slot = s.state.pipeline.cpu.acquire().await.expect("the only slot");
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        drop(slot);
    });
    let (c, events) = s.client(&key, quick());
    let t = Instant::now();
    let colors = c
        .colors(&ImageSource::bytes(photo(7)), &ColorsOptions::default())
        .await
        .expect("succeeds once the slot is free");
    let took = t.elapsed();
    release.await.expect("release");
    let ev = events.lock().expect("lock").clone();
    assert!(!ev.is_empty());
    for e in &ev {
        assert_eq!(e.status, Some(503));
        assert_eq!(e.code.as_deref(), Some("service_unavailable"));
        assert!(
            e.wait >= Duration::from_secs(1),
            "Retry-After is a floor: {:?}",
            e.wait
        );
    }
    assert!(took >= Duration::from_millis(1500));
    assert_eq!(colors.attempts as usize, ev.len() + 1);
    eprintln!(
        "503: waits {:?}, succeeded after {took:?} on attempt {}",
        ev.iter().map(|e| e.wait).collect::<Vec<_>>(),
        colors.attempts
    );

    // Without the release, retries run out and the typed 503 comes back.
    let _held = s.state.pipeline.cpu.acquire().await.expect("slot");
    let (c, events) = s.client(
        &key,
        RetryPolicy {
            max_retries: 2,
            ..quick()
        },
    );
    let err = c
        .colors(&ImageSource::bytes(photo(8)), &ColorsOptions::default())
        .await
        .expect_err("still overloaded");
    let api = err.api().expect("API error");
    assert_eq!((api.status, api.attempts), (503, 3));
    assert_eq!(events.lock().expect("lock").len(), 2);

    // A deadline shorter than Retry-After stops at once instead of sleeping past it.
    let (c, events) = s.client(
        &key,
        RetryPolicy {
            deadline: Some(Duration::from_millis(500)),
            ..quick()
        },
    );
    let t = Instant::now();
    let err = c
        .colors(&ImageSource::bytes(photo(9)), &ColorsOptions::default())
        .await
        .expect_err("deadline");
    assert!(matches!(err, Error::DeadlineExceeded { .. }), "{err}");
    assert_eq!(err.code(), Some("service_unavailable"));
    assert!(t.elapsed() < Duration::from_millis(500));
    assert!(events.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn model_missing_503_with_a_long_retry_after_is_returned() {
    let s = start(|_| {}).await;
    let key = s.key(Tier::Unlimited, None, KeyMode::Live).await;
    let (c, events) = s.client(&key, quick());
    // No segmentation model here: Retry-After 30 s is over the policy's 10 s ceiling.
    let err = c
        .background_remove(
            &ImageSource::bytes(photo(1)),
            &BackgroundRemoveOptions::default(),
        )
        .await
        .expect_err("no model");
    let api = err.api().expect("API error");
    assert_eq!(
        (api.status, api.code.as_str()),
        (503, "service_unavailable")
    );
    assert_eq!(api.retry_after, Some(Duration::from_secs(30)));
    assert!(events.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn unreachable_server_is_a_transport_error_after_retries() {
    // A port nothing listens on.
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", l.local_addr().expect("addr"));
    drop(l);
    let events = Arc::new(Mutex::new(Vec::<RetryEvent>::new()));
    let sink = events.clone();
    let c = Client::builder(base)
        .api_key("fe_test_00000000000000000000000000000000")
        .retry_policy(RetryPolicy {
            max_retries: 2,
            ..quick()
        })
        .on_retry(move |e| sink.lock().expect("lock").push(e.clone()))
        .build()
        .expect("client");
    let err = c.usage().await.expect_err("nothing listens");
    assert!(matches!(err, Error::Transport { attempts: 3, .. }), "{err}");
    let ev = events.lock().expect("lock").clone();
    assert_eq!(ev.len(), 2);
    assert!(ev.iter().all(|e| e.status.is_none()));
    // Exponential with jitter: the second wait's range is twice the first's.
    assert!(ev[0].wait <= Duration::from_millis(50) && ev[1].wait <= Duration::from_millis(100));
}

#[tokio::test]
async fn catalog_round_trip() {
    let s = start(|_| {}).await;
    let key = s.key(Tier::Unlimited, None, KeyMode::Live).await;
    let (c, _) = s.client(&key, quick());

    let mut products = Vec::new();
    for i in 0..6u32 {
        let mut p = NewProduct::new(format!("Dress {i}"), &ImageSource::bytes(photo(i)));
        p.external_id = Some(format!("SKU-{i}"));
        p.price = Some(20.0 + 10.0 * i as f64);
        p.category = Some(if i % 2 == 0 { "dresses" } else { "tops" }.into());
        products.push(p);
    }
    let up = c.upload_products(&products).await.expect("upload");
    assert_eq!((up.created, up.updated, up.failed), (6, 0, 0));
    assert!(up.results.results.iter().all(|r| r.is_ok()));

    // Wait for the background workers.
    let t = Instant::now();
    loop {
        let page = c
            .list_products(&ListProducts {
                embedding_status: Some(EmbeddingStatus::Ready),
                limit: Some(100),
                ..Default::default()
            })
            .await
            .expect("list");
        if page.total == 6 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "products not ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Paging with the cursor sees every product once.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = c
            .list_products(&ListProducts {
                limit: Some(4),
                cursor: cursor.clone(),
                ..Default::default()
            })
            .await
            .expect("page");
        seen.extend(
            page.data
                .iter()
                .map(|p| p.external_id.clone().unwrap_or_default()),
        );
        if !page.has_more {
            break;
        }
        cursor = page.next_cursor.clone();
    }
    assert_eq!(seen, (0..6).map(|i| format!("SKU-{i}")).collect::<Vec<_>>());

    let first = c
        .list_products(&ListProducts {
            external_id: Some("SKU-4".into()),
            ..Default::default()
        })
        .await
        .expect("by external id");
    let id = first.data[0].id.clone();
    let full = c.get_product(&id, true).await.expect("get");
    assert!(full
        .features
        .as_ref()
        .is_some_and(|f| f["embedding"].is_array()));

    // Dupes mode: cheaper dresses than SKU-4 (price 60).
    let mut q = SearchRequest::new(SearchQuery::ProductId(id.clone()));
    q.cheaper_than = Some(60.0);
    q.filters = Some(Filters {
        category: Some("dresses".into()),
        ..Default::default()
    });
    let hits = c.search(&q).await.expect("search");
    assert_eq!(hits.results.len(), 2, "SKU-0 and SKU-2");
    assert!(hits
        .results
        .iter()
        .all(|h| h.product.price.is_some_and(|p| p < 60.0)));
    assert!(hits.results.iter().all(|h| h.scores.visual.is_some()));

    let mut q = SearchRequest::new(SearchQuery::Image(ImageSource::bytes(photo(4))));
    q.top_k = Some(1);
    let hits = c.search(&q).await.expect("search by image");
    assert_eq!(
        hits.results[0].product.id, id,
        "the same photo finds its product"
    );

    let d = c
        .duplicates(&DuplicatesRequest {
            threshold: Some(0.999),
            ..Default::default()
        })
        .await
        .expect("duplicates");
    assert_eq!(d.total_groups, d.groups.len() as u64);

    let gone = c.delete_product(&id).await.expect("delete");
    assert!(gone.deleted);
    let err = c.get_product(&id, false).await.expect_err("deleted");
    assert_eq!(err.code(), Some("not_found"));
    assert!(matches!(
        c.get_product("..", false).await,
        Err(Error::Invalid(_))
    ));
}

/// Bytes go up as files by default; the same image as base64 (`file_uploads(false)`)
/// is the same call, answered from the cache. Cutouts can come back as the PNG itself.
#[tokio::test]
async fn files_and_base64_are_one_call_and_cutouts_come_as_png() {
    let s = TestServer::with_models(dupify_testkit::ModelSet::Segmentation, |c| {
        c.shutdown_grace_secs = 2
    })
    .await;
    let key = s.key(Tier::Pro, Some(1000), KeyMode::Live).await;
    let (files, _) = s.client(&key, quick());
    let base64 = Client::builder(&s.base)
        .api_key(&key)
        .retry_policy(quick())
        .file_uploads(false)
        .build()
        .expect("client");
    let img = ImageSource::bytes(photo(11));
    let opts = ColorsOptions {
        max_colors: Some(3),
        foreground_only: Some(false),
        ..Default::default()
    };
    let a = files.colors(&img, &opts).await.expect("colors as a file");
    assert!(!a.cached);
    assert!((1..=3).contains(&a.colors.len()));
    let b = base64.colors(&img, &opts).await.expect("colors as base64");
    assert!(b.cached, "same bytes, same cache entry");
    assert_eq!(a.colors, b.colors);

    let batch = files
        .embed_batch(
            &[img.clone(), ImageSource::bytes(b"not an image".to_vec())],
            &EmbedOptions::default(),
        )
        .await
        .expect("batch of files");
    assert_eq!(batch.results.len(), 2);
    assert!(batch.results[0].is_ok());
    let e = batch.results[1].as_ref().expect_err("not an image");
    assert_eq!(e.code, "unsupported_format");

    let opts = BackgroundRemoveOptions {
        crop: Some(true),
        ..Default::default()
    };
    let png = files
        .background_remove_png(&img, &opts)
        .await
        .expect("cutout as png");
    assert!(!png.cached);
    let decoded = image::load_from_memory(&png.png).expect("a PNG");
    assert_eq!((decoded.width(), decoded.height()), (png.width, png.height));
    assert_eq!((png.original_width, png.original_height), (160, 200));
    let crop = png.crop_box.expect("crop asked").expect("a product found");
    assert_eq!((crop.width, crop.height), (png.width, png.height));
    let json = base64
        .background_remove(&img, &opts)
        .await
        .expect("cutout as JSON");
    assert!(json.cached);
    assert_eq!(json.image_base64.0, png.png);
    assert_eq!(json.foreground_ratio, png.foreground_ratio);

    // Search by a file.
    let up = files
        .upload_product(&NewProduct::new("Bag", &img))
        .await
        .expect("upload");
    let t = Instant::now();
    while files
        .get_product(&up.id, false)
        .await
        .expect("get")
        .embedding_status
        != EmbeddingStatus::Ready
    {
        assert!(t.elapsed() < Duration::from_secs(60), "product not ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut q = SearchRequest::new(SearchQuery::Image(img.clone()));
    q.top_k = Some(3);
    let hits = files.search(&q).await.expect("search by file");
    assert_eq!(hits.results[0].product.id, up.id);
    // colors, embed (1 image), background-remove, upload, search.
    assert_eq!(files.usage().await.expect("usage").used, 5);
    s.stop().await;
}

/// Webhook endpoints through the SDK, and `webhook::verify_event` on a signed body.
#[tokio::test]
async fn webhook_endpoints_and_signature_checks() {
    use dupify_client::webhook::{self, NewWebhook};
    let s = start(|_| {}).await;
    let key = s.key(Tier::Pro, Some(1000), KeyMode::Live).await;
    let (c, _) = s.client(&key, quick());
    let created = c
        .create_webhook(&NewWebhook {
            url: "https://hooks.example.com/dupify".into(),
            events: Some(vec!["product.ready".into()]),
            description: Some("shop backend".into()),
        })
        .await
        .expect("create");
    assert_eq!(created.status, 201);
    let secret = created.secret.clone().expect("secret shown at creation");
    assert_eq!(created.events, ["product.ready"]);
    let listed = c.list_webhooks().await.expect("list");
    assert_eq!(listed.data.len(), 1);
    assert!(listed.data[0].secret.is_none());
    let rotated = c.rotate_webhook_secret(&created.id).await.expect("rotate");
    let new_secret = rotated.secret.clone().expect("new secret");
    assert_ne!(new_secret, secret);
    assert!(c
        .webhook_deliveries(&created.id)
        .await
        .expect("log")
        .data
        .is_empty());
    let err = c
        .create_webhook(&NewWebhook {
            url: "http://127.0.0.1:9/hook".into(),
            ..Default::default()
        })
        .await
        .expect_err("a loopback URL");
    assert_eq!(err.api().expect("API error").code, "invalid_parameter");
    assert!(c.delete_webhook(&created.id).await.expect("delete").deleted);

    // A body signed now verifies with its secret, not with another or once altered.
    let body = br#"{"id":"evt_1","type":"product.ready","created_at":"2026-12-03T00:00:00Z","livemode":true,"data":{}}"#;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let header = webhook::sign(&new_secret, now, body);
    let event = webhook::verify_event(&new_secret, &header, body).expect("verifies");
    assert_eq!(
        (event.id.as_str(), event.event_type.as_str()),
        ("evt_1", "product.ready")
    );
    assert!(webhook::verify_event(&secret, &header, body).is_err());
    assert!(webhook::verify_event(&new_secret, &header, b"{}").is_err());
    let old = webhook::sign(&new_secret, now - 3600, body);
    assert!(matches!(
        webhook::verify_event(&new_secret, &old, body),
        Err(webhook::VerifyError::Expired { .. })
    ));
    s.stop().await;
}
