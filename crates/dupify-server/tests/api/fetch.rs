//! Image URLs over HTTP: the SSRF policy with the flag off, real downloads with it on,
//! and graceful shutdown draining an in-flight download.

use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use dupify_testkit::*;
use serde_json::{json, Value};

/// A local "image host": serves a PNG, redirects, 404s, and a slow PNG.
async fn image_host() -> std::net::SocketAddr {
    let png_bytes = png(&navy_white(80, 60));
    let slow_png = png_bytes.clone();
    let app = axum::Router::new()
        .route(
            "/img.png",
            get(move || {
                let b = png_bytes.clone();
                async move { ([(header::CONTENT_TYPE, "image/png")], b) }
            }),
        )
        .route(
            "/slow.png",
            get(move || {
                let b = slow_png.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(800)).await;
                    ([(header::CONTENT_TYPE, "image/png")], b)
                }
            }),
        )
        .route(
            "/missing.png",
            get(|| async { StatusCode::NOT_FOUND.into_response() }),
        )
        .route("/to-img", get(|| async { Redirect::temporary("/img.png") }))
        .route("/loop", get(|| async { Redirect::temporary("/loop") }))
        .route(
            "/to-metadata",
            get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data/") }),
        )
        .route(
            "/to-loopback",
            get(|| async { Redirect::temporary("http://127.0.0.2:9/x.png") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn private_and_metadata_hosts_are_refused_by_default() {
    let host = image_host().await;
    let s = TestServer::start().await;
    let key = s.admin_key().await;
    let c = client();
    let port = host.port();
    for url in [
        format!("http://127.0.0.1:{port}/img.png"),
        format!("http://[::1]:{port}/img.png"),
        format!("http://localhost:{port}/img.png"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.1.2.3/a.png".to_owned(),
        "http://192.168.0.10/a.png".to_owned(),
        "http://100.64.0.1/a.png".to_owned(),
        "http://[fd00::1]/a.png".to_owned(),
        "http://[::ffff:127.0.0.1]/a.png".to_owned(),
        "http://2130706433/a.png".to_owned(),
        "http://0x7f.1/a.png".to_owned(),
    ] {
        let res = post(&c, &s.url("/v1/colors"), &key, json!({"image_url": url})).await;
        let e = expect_error(res, 400, "invalid_image_url").await;
        assert_eq!(e["details"]["parameter"], "image_url", "{url}");
    }
}

#[tokio::test]
async fn redirects_into_private_space_are_refused() {
    let host = image_host().await;
    // The image host itself (127.0.0.1) is exempted as a "public" host would be; nothing
    // else private is.
    let s = TestServer::start_with(|c| c.allowed_private_image_ips = vec![host.ip()]).await;
    let key = s.admin_key().await;
    let c = client();
    let u = |p: &str| format!("http://{host}{p}");
    let res = post(
        &c,
        &s.url("/v1/colors"),
        &key,
        json!({"image_url": u("/to-img")}),
    )
    .await;
    assert_eq!(res.status(), 200, "an allowed redirect still works");
    for p in ["/to-metadata", "/to-loopback"] {
        let e = expect_error(
            post(&c, &s.url("/v1/colors"), &key, json!({"image_url": u(p)})).await,
            400,
            "invalid_image_url",
        )
        .await;
        assert_eq!(e["details"]["parameter"], "image_url");
    }
    // A name that resolves to loopback is refused even though 127.0.0.1 is exempt: it
    // also resolves to ::1 (or is refused by name).
    let e = expect_error(
        post(
            &c,
            &s.url("/v1/colors"),
            &key,
            json!({"image_url": format!("http://localhost:{}/img.png", host.port())}),
        )
        .await,
        400,
        "invalid_image_url",
    )
    .await;
    assert_eq!(e["details"]["parameter"], "image_url");
}

#[tokio::test]
async fn downloads_with_the_test_flag_on() {
    let host = image_host().await;
    let s = TestServer::start_with(|c| c.allow_private_image_hosts = true).await;
    let key = s.admin_key().await;
    let c = client();
    let u = |p: &str| format!("http://{host}{p}");

    let res = post(
        &c,
        &s.url("/v1/colors"),
        &key,
        json!({"image_url": u("/img.png"), "foreground_only": false}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["colors"][0]["name"], "navy");

    let res = post(
        &c,
        &s.url("/v1/colors"),
        &key,
        json!({"image_url": u("/to-img")}),
    )
    .await;
    assert_eq!(res.status(), 200);

    let e = expect_error(
        post(
            &c,
            &s.url("/v1/colors"),
            &key,
            json!({"image_url": u("/missing.png")}),
        )
        .await,
        422,
        "image_fetch_failed",
    )
    .await;
    assert_eq!(e["details"]["parameter"], "image_url");
    expect_error(
        post(
            &c,
            &s.url("/v1/colors"),
            &key,
            json!({"image_url": u("/loop")}),
        )
        .await,
        422,
        "image_fetch_failed",
    )
    .await;
    // Nothing listens on port 9 of 127.0.0.2: a connect error.
    expect_error(
        post(
            &c,
            &s.url("/v1/colors"),
            &key,
            json!({"image_url": "http://127.0.0.2:9/x.png"}),
        )
        .await,
        422,
        "image_fetch_failed",
    )
    .await;
}

#[tokio::test]
async fn graceful_shutdown_drains_in_flight_requests() {
    let host = image_host().await;
    let s = TestServer::start_with(|c| c.allow_private_image_hosts = true).await;
    let key = s.admin_key().await;
    let url = s.url("/v1/colors");
    let in_flight = tokio::spawn(async move {
        post(
            &client(),
            &url,
            &key,
            json!({"image_url": format!("http://{host}/slow.png")}),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let base = s.base.clone();
    let stopping = tokio::spawn(async move { s.stop().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // New connections are refused while the old request finishes.
    assert!(client()
        .get(format!("{base}/health"))
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .is_err());
    let res = in_flight.await.unwrap();
    assert_eq!(res.status(), 200);
    stopping.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_url_requests_download_no_more_than_the_rate_limit() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    // An image host that counts its downloads.
    let served = Arc::new(AtomicUsize::new(0));
    let bytes = png(&navy_white(80, 60));
    let counter = served.clone();
    let app = axum::Router::new().route(
        "/counted.png",
        get(move || {
            let (b, n) = (bytes.clone(), counter.clone());
            async move {
                n.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                ([(header::CONTENT_TYPE, "image/png")], b)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let s = TestServer::start_with(|c| c.allow_private_image_hosts = true).await;
    let account = s
        .account(dupify_core::Tier::Free, None, None) // 10 per minute
        .await;
    let (key, _) = s
        .key_with(&account, "", dupify_core::KeyMode::Live, None)
        .await;
    let url = s.url("/v1/colors");
    let body = json!({"image_url": format!("http://{host}/counted.png")});
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let (url, key, body) = (url.clone(), key.clone(), body.clone());
            tokio::spawn(async move { post(&client(), &url, &key, body).await.status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!((ok, limited), (10, 20), "{statuses:?}");
    // Refused requests downloaded nothing: one download per admitted request at most.
    assert!(
        served.load(Ordering::SeqCst) <= 10,
        "{} downloads",
        served.load(Ordering::SeqCst)
    );

    // A URL answered entirely from the cache gives its rate unit back.
    let fresh = s.account(dupify_core::Tier::Free, None, None).await;
    let (k2, _) = s
        .key_with(&fresh, "", dupify_core::KeyMode::Live, None)
        .await;
    let first = post(&client(), &url, &k2, body.clone()).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-ratelimit-remaining"], "9");
    let again = post(&client(), &url, &k2, body.clone()).await;
    assert_eq!(again.status(), 200);
    assert_eq!(
        again.headers()["x-ratelimit-remaining"],
        "9",
        "the unit came back"
    );
    let v: Value = again.json().await.unwrap();
    assert_eq!(v["cached"], true);
}
