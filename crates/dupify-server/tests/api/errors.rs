//! Every error code this server can produce today, over HTTP, with exact status, code,
//! parameter and headers.

use axum::routing::get;
use chrono::{Duration, Utc};
use dupify_core::{KeyMode, Tier};
use dupify_store::prelude::*;
use dupify_testkit::*;
use serde_json::json;

#[tokio::test]
async fn routing_errors_use_the_envelope() {
    let s = TestServer::start().await;
    let c = client();
    let e = expect_error(
        c.get(s.url("/v1/nope")).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    assert!(e.get("details").is_none());
    expect_error(
        c.get(s.url("/nothing/here")).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    // Known route, wrong method: 405 without asking for a key, with Allow.
    let res = c.get(s.url("/v1/colors")).send().await.unwrap();
    assert!(res
        .headers()
        .get("allow")
        .is_some_and(|v| v.to_str().unwrap().contains("POST")));
    expect_error(res, 405, "method_not_allowed").await;
    expect_error(
        c.delete(s.url("/health")).send().await.unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn request_id_is_echoed_or_generated() {
    let s = TestServer::start().await;
    let c = client();
    let res = c
        .get(s.url("/health"))
        .header("X-Request-Id", "my-trace.42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "my-trace.42");
    let res = c
        .get(s.url("/health"))
        .header("X-Request-Id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert!(res.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_"));
    let long = "a".repeat(129);
    let res = c
        .get(s.url("/v1/x"))
        .header("X-Request-Id", &long)
        .send()
        .await
        .unwrap();
    let rid = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(rid, long);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["request_id"], rid.as_str());
}

#[tokio::test]
async fn body_errors() {
    let s = TestServer::start_with(|c| c.body_limit_bytes = 4096).await;
    let key = s.admin_key().await;
    let c = client();
    let url = s.url("/v1/colors");

    let res = c
        .post(&url)
        .header("X-API-Key", &key)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let e = expect_error(res, 400, "invalid_parameter").await;
    assert_eq!(e["details"]["parameter"], "body");

    let res = c
        .post(&url)
        .header("X-API-Key", &key)
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    let e = expect_error(res, 400, "invalid_parameter").await;
    assert_eq!(e["details"]["parameter"], "Content-Type");

    let res = c
        .post(&url)
        .header("X-API-Key", &key)
        .header("Content-Type", "application/json")
        .body("[1,2]")
        .send()
        .await
        .unwrap();
    let e = expect_error(res, 400, "invalid_parameter").await;
    assert_eq!(e["details"]["parameter"], "body");

    // A key given twice is refused (parsers disagree on which one wins), by its path.
    for (body, parameter) in [
        (r#"{"max_colors": 3, "max_colors": 40}"#, "max_colors"),
        (
            r#"{"images": [{"image_base64": "AA", "image_base64": "BB"}]}"#,
            "images[0].image_base64",
        ),
    ] {
        let res = c
            .post(&url)
            .header("X-API-Key", &key)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let e = expect_error(res, 400, "invalid_parameter").await;
        assert_eq!(e["details"]["parameter"], parameter, "{body}");
    }

    let big = json!({"image_base64": "A".repeat(10_000)});
    let res = c
        .post(&url)
        .header("X-API-Key", &key)
        .json(&big)
        .send()
        .await
        .unwrap();
    expect_error(res, 413, "payload_too_large").await;
}

#[tokio::test]
async fn parameter_errors() {
    let s = TestServer::start().await;
    let key = s.admin_key().await;
    let c = client();
    let url = s.url("/v1/colors");
    let img = distinct_png(1);

    let e = expect_error(
        post(&c, &url, &key, json!({})).await,
        400,
        "missing_parameter",
    )
    .await;
    assert_eq!(e["details"]["parameter"], "image_url");

    let e = expect_error(
        post(
            &c,
            &url,
            &key,
            json!({"image_base64": img, "max_colors": 40}),
        )
        .await,
        400,
        "invalid_parameter",
    )
    .await;
    assert_eq!(e["details"]["parameter"], "max_colors");
    assert_eq!(e["details"]["value"], 40);

    for bad in [json!(0), json!("5"), json!(2.5), json!(true)] {
        let e = expect_error(
            post(
                &c,
                &url,
                &key,
                json!({"image_base64": img, "max_colors": bad}),
            )
            .await,
            400,
            "invalid_parameter",
        )
        .await;
        assert_eq!(e["details"]["parameter"], "max_colors");
    }
    let e = expect_error(
        post(
            &c,
            &url,
            &key,
            json!({"image_base64": img, "foreground_only": "yes"}),
        )
        .await,
        400,
        "invalid_parameter",
    )
    .await;
    assert_eq!(e["details"]["parameter"], "foreground_only");

    let e = expect_error(
        post(
            &c,
            &url,
            &key,
            json!({"image_base64": img, "image_url": "https://example.com/a.jpg"}),
        )
        .await,
        400,
        "invalid_parameter",
    )
    .await;
    assert!(
        e["details"]["parameter"] == "image_base64" || e["details"]["parameter"] == "image_url"
    );

    let e = expect_error(
        post(&c, &url, &key, json!({"images": []})).await,
        400,
        "invalid_parameter",
    )
    .await;
    assert_eq!(e["details"]["parameter"], "images");
    let eleven: Vec<_> = (0..11).map(|_| json!({"image_base64": img})).collect();
    let e = expect_error(
        post(&c, &url, &key, json!({"images": eleven})).await,
        400,
        "invalid_parameter",
    )
    .await;
    assert_eq!(e["details"]["parameter"], "images");
    let e = expect_error(
        post(&c, &url, &key, json!({"images": "x"})).await,
        400,
        "invalid_parameter",
    )
    .await;
    assert_eq!(e["details"]["parameter"], "images");
    let e = expect_error(
        post(&c, &url, &key, json!({"image_url": 5})).await,
        400,
        "invalid_parameter",
    )
    .await;
    assert_eq!(e["details"]["parameter"], "image_url");
}

#[tokio::test]
async fn image_errors() {
    let s = TestServer::start().await;
    let key = s.admin_key().await;
    let c = client();
    let url = s.url("/v1/colors");

    for bad_url in [
        "ftp://example.com/a.png",
        "not a url",
        "http://",
        "file:///etc/passwd",
    ] {
        let e = expect_error(
            post(&c, &url, &key, json!({"image_url": bad_url})).await,
            400,
            "invalid_image_url",
        )
        .await;
        assert_eq!(e["details"]["parameter"], "image_url");
    }
    let e = expect_error(
        post(&c, &url, &key, json!({"image_base64": "!!!not base64!!!"})).await,
        400,
        "invalid_base64",
    )
    .await;
    assert_eq!(e["details"]["parameter"], "image_base64");

    // Valid base64 of something that is not an image.
    let e = expect_error(
        post(
            &c,
            &url,
            &key,
            json!({"image_base64": b64(b"%PDF-1.4 definitely not an image")}),
        )
        .await,
        422,
        "unsupported_format",
    )
    .await;
    assert_eq!(e["details"]["parameter"], "image_base64");

    // A truncated PNG: right magic, broken data.
    let full = png(&navy_white(64, 64));
    let truncated = &full[..full.len() / 2];
    let e = expect_error(
        post(&c, &url, &key, json!({"image_base64": b64(truncated)})).await,
        422,
        "processing_failed",
    )
    .await;
    assert_eq!(e["details"]["parameter"], "image_base64");

    // Over the pixel limit (decompression bomb): 8000x7000 of one color compresses to little.
    let bomb = image::GrayImage::new(8000, 7000);
    let mut bytes = Vec::new();
    bomb.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .unwrap();
    assert!(bytes.len() < 1_000_000);
    expect_error(
        post(&c, &url, &key, json!({"image_base64": b64(&bytes)})).await,
        422,
        "image_too_large",
    )
    .await;
}

#[tokio::test]
async fn image_over_byte_limit() {
    let s = TestServer::start_with(|c| c.max_image_bytes = 2000).await;
    let key = s.admin_key().await;
    let img = image::RgbImage::from_fn(64, 64, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 4) as u8, (x ^ y) as u8])
    });
    let bytes = png(&img);
    assert!(bytes.len() > 2000);
    expect_error(
        colors_of(&s, &key, &b64(&bytes)).await,
        422,
        "image_too_large",
    )
    .await;
}

#[tokio::test]
async fn auth_errors() {
    let s = TestServer::start().await;
    let c = client();
    let url = s.url("/v1/colors");
    let body = json!({"image_base64": distinct_png(2)});

    let res = c.post(&url).json(&body).send().await.unwrap();
    assert!(res.headers().get("x-ratelimit-limit").is_none());
    expect_error(res, 401, "missing_api_key").await;
    expect_error(
        post(&c, &url, "garbage", body.clone()).await,
        401,
        "invalid_api_key",
    )
    .await;
    expect_error(
        post(
            &c,
            &url,
            "fe_live_0123456789abcdefghijABCDEFGHIJ01",
            body.clone(),
        )
        .await,
        401,
        "invalid_api_key",
    )
    .await;
    let res = c
        .post(&url)
        .header("Authorization", "Basic abc")
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(res, 401, "invalid_api_key").await;

    let account = s.account(Tier::Pro, None, None).await;
    let (expired, _) = s
        .key_with(
            &account,
            "",
            KeyMode::Live,
            Some(Utc::now() - Duration::seconds(1)),
        )
        .await;
    expect_error(
        post(&c, &url, &expired, body.clone()).await,
        401,
        "expired_api_key",
    )
    .await;

    // Bearer works like X-API-Key.
    let (key, key_id) = s.key_with(&account, "", KeyMode::Live, None).await;
    let res = c
        .post(&url)
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Revocation through another handle on the database (as the CLI does) is effective
    // on the very next request.
    s.store.revoke_key(&key_id, Utc::now()).await.unwrap();
    expect_error(
        post(&c, &url, &key, body.clone()).await,
        401,
        "invalid_api_key",
    )
    .await;

    // Scopes.
    let (embed_only, _) = s.key_with(&account, "embed", KeyMode::Live, None).await;
    let res = post(&c, &url, &embed_only, body.clone()).await;
    assert!(res.headers().get("x-ratelimit-remaining").is_some());
    let e = expect_error(res, 403, "insufficient_scope").await;
    assert_eq!(e["details"]["required_scope"], "colors");
    let (colors_key, _) = s
        .key_with(&account, "colors,embed", KeyMode::Live, None)
        .await;
    assert_eq!(post(&c, &url, &colors_key, body).await.status(), 200);
}

async fn boom() -> &'static str {
    panic!("secret internal detail")
}

#[tokio::test]
async fn panics_become_internal_errors() {
    // The production edge layer around a route that panics.
    let app = axum::Router::new()
        .route("/boom", get(boom))
        .layer(axum::middleware::from_fn(dupify_server::edge::edge));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let res = client()
        .get(format!("http://{addr}/boom"))
        .send()
        .await
        .unwrap();
    let text_rid = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "internal_error");
    assert_eq!(body["error"]["request_id"], text_rid.as_str());
    assert!(!body.to_string().contains("secret internal detail"));
    // And the server keeps serving.
    let res = client()
        .get(format!("http://{addr}/boom"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
}

#[tokio::test]
async fn ops_routes() {
    let s = TestServer::start().await;
    let c = client();
    let res = c.get(s.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["status"],
        "ok"
    );
    let res = c.get(s.url("/ready")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["checks"]["database"],
        "ok"
    );
    let key = s.admin_key().await;
    assert_eq!(colors_of(&s, &key, &distinct_png(3)).await.status(), 200);
    let text = metrics_text(&s).await;
    assert!(text.contains("dupify_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/v1/colors\""), "{text}");
    assert!(
        text.contains("dupify_http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn a_body_of_millions_of_tiny_values_is_refused_as_it_is_read() {
    let s = TestServer::start().await;
    let key = s.admin_key().await;
    // ~4 MB of zeros: 2 million values, over the 1.5 million a body may hold.
    let body = format!("{{\"texts\": [{}0]}}", "0,".repeat(2_000_000));
    let res = client()
        .post(s.url("/v1/embed"))
        .header("X-API-Key", &key)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let e = expect_error(res, 400, "invalid_parameter").await;
    assert_eq!(e["details"]["parameter"], "body");
    assert!(
        e["message"].as_str().unwrap().contains("JSON values"),
        "{e}"
    );
}
