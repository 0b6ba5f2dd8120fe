//! HTTP helpers, image fixtures and error assertions.

use base64::Engine;
use serde_json::{json, Value};

use crate::TestServer;

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn encode(img: &image::RgbImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), format)
        .unwrap();
    out
}

pub fn png(img: &image::RgbImage) -> Vec<u8> {
    encode(img, image::ImageFormat::Png)
}

/// A solid image in a color derived from `seed`, so every seed gives different bytes.
pub fn distinct_png(seed: u32) -> String {
    let c = [
        (seed * 37 % 256) as u8,
        (seed * 91 % 256) as u8,
        (seed * 151 % 256) as u8,
    ];
    let img = image::RgbImage::from_fn(16, 16, |x, y| {
        if (x + y) % 7 == 0 {
            image::Rgb([c[0] ^ 0x55, c[1], c[2]])
        } else {
            image::Rgb(c)
        }
    });
    b64(&png(&img))
}

/// 70% #1f2a44 on the left, 30% white on the right.
pub fn navy_white(width: u32, height: u32) -> image::RgbImage {
    let split = width * 7 / 10;
    image::RgbImage::from_fn(width, height, |x, _| {
        if x < split {
            image::Rgb([0x1f, 0x2a, 0x44])
        } else {
            image::Rgb([255, 255, 255])
        }
    })
}

pub async fn post(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    body: Value,
) -> reqwest::Response {
    client
        .post(url)
        .header("X-API-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

pub async fn colors_of(server: &TestServer, key: &str, b64_img: &str) -> reqwest::Response {
    post(
        &client(),
        &server.url("/v1/colors"),
        key,
        json!({"image_base64": b64_img}),
    )
    .await
}

/// Asserts the envelope and returns the `error` object.
pub async fn expect_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    let got = res.status().as_u16();
    let rid = res
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = res.json().await.unwrap();
    assert_eq!(got, status, "status for {code}: body {body}");
    assert_eq!(body["error"]["code"], code, "body {body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    let rid = rid.expect("X-Request-Id header");
    assert_eq!(body["error"]["request_id"], rid.as_str());
    body["error"].clone()
}

/// Sends every body to `/v1/colors` at once and returns the responses in order.
pub async fn parallel_colors(
    server: &TestServer,
    key: &str,
    bodies: Vec<Value>,
) -> Vec<reqwest::Response> {
    let c = client();
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let (c, url, key) = (c.clone(), server.url("/v1/colors"), key.to_owned());
            tokio::spawn(async move { post(&c, &url, &key, body).await })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// `GET /v1/usage` with `key`, as JSON (whatever the status).
pub async fn usage_of(s: &TestServer, key: &str) -> Value {
    client()
        .get(s.url("/v1/usage"))
        .header("X-API-Key", key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `GET /metrics` (no key), as Prometheus text.
pub async fn metrics_text(s: &TestServer) -> String {
    client()
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Posts `body` to `path` and asserts a 400 `invalid_parameter` naming `parameter`.
pub async fn expect_invalid(s: &TestServer, key: &str, path: &str, body: Value, parameter: &str) {
    let e = expect_error(
        post(&client(), &s.url(path), key, body.clone()).await,
        400,
        "invalid_parameter",
    )
    .await;
    assert_eq!(e["details"]["parameter"], parameter, "{body}");
}
