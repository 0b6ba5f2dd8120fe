//! `/v1/colors` on generated images with known colors, single and batch.

use dupify_testkit::*;
use serde_json::{json, Value};

fn hex_rgb(h: &str) -> [u8; 3] {
    let v = u32::from_str_radix(h.trim_start_matches('#'), 16).unwrap();
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

fn delta_e76(a: [u8; 3], b: [u8; 3]) -> f64 {
    let la = dupify_vision::lab::srgb_to_lab(a);
    let lb = dupify_vision::lab::srgb_to_lab(b);
    (((la[0] - lb[0]).powi(2) + (la[1] - lb[1]).powi(2) + (la[2] - lb[2]).powi(2)) as f64).sqrt()
}

#[tokio::test]
async fn two_known_colors() {
    let s = TestServer::start().await;
    let key = s.admin_key().await;
    for format in [image::ImageFormat::Png, image::ImageFormat::Jpeg] {
        let img = navy_white(400, 300);
        let res = post(
            &client(),
            &s.url("/v1/colors"),
            &key,
            json!({"image_base64": b64(&encode(&img, format)), "foreground_only": false}),
        )
        .await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["cached"], false);
        assert!(body["processing_time_ms"].is_u64());
        let colors = body["colors"].as_array().unwrap();
        assert_eq!(colors.len(), 2, "{body}");
        let navy = &colors[0];
        let white = &colors[1];
        assert!(
            delta_e76(hex_rgb(navy["hex"].as_str().unwrap()), [0x1f, 0x2a, 0x44]) < 3.0,
            "{body}"
        );
        assert!(
            delta_e76(hex_rgb(white["hex"].as_str().unwrap()), [255, 255, 255]) < 3.0,
            "{body}"
        );
        assert_eq!(navy["name"], "navy");
        assert!(
            (navy["percentage"].as_f64().unwrap() - 0.7).abs() < 0.02,
            "{body}"
        );
        assert!(
            (white["percentage"].as_f64().unwrap() - 0.3).abs() < 0.02,
            "{body}"
        );
        let sum: f64 = colors
            .iter()
            .map(|c| c["percentage"].as_f64().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-9);
        let rgb: Vec<u8> = navy["rgb"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u8)
            .collect();
        assert_eq!(rgb, hex_rgb(navy["hex"].as_str().unwrap()).to_vec());
    }
}

#[tokio::test]
async fn foreground_only_is_honest_about_its_method() {
    let s = TestServer::start().await;
    let key = s.admin_key().await;
    // A red product centred on a white background.
    let img = image::RgbImage::from_fn(300, 300, |x, y| {
        if (80..220).contains(&x) && (60..240).contains(&y) {
            image::Rgb([200, 30, 40])
        } else {
            image::Rgb([255, 255, 255])
        }
    });
    let res = post(
        &client(),
        &s.url("/v1/colors"),
        &key,
        json!({"image_base64": b64(&png(&img))}),
    )
    .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["foreground"]["method"], "border_color", "{body}");
    let colors = body["colors"].as_array().unwrap();
    assert_eq!(colors.len(), 1, "background ignored: {body}");
    assert_eq!(colors[0]["name"], "red");

    let res = post(
        &client(),
        &s.url("/v1/colors"),
        &key,
        json!({"image_base64": b64(&png(&img)), "foreground_only": false}),
    )
    .await;
    let body: Value = res.json().await.unwrap();
    assert!(body.get("foreground").is_none());
    assert_eq!(body["colors"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn batch_keeps_failures_in_their_slot() {
    let s = TestServer::start().await;
    let account = s.account(dupify_core::Tier::Starter, Some(100), None).await;
    let (key, _) = s
        .key_with(&account, "colors", dupify_core::KeyMode::Live, None)
        .await;
    let good = b64(&png(&navy_white(100, 50)));
    let body = json!({"images": [
        {"image_base64": good},
        {"image_base64": "***"},
        {"image_url": "ftp://x/y.png"},
        {"image_base64": distinct_png(9)},
        {"nothing": 1},
    ], "max_colors": 3});
    let res = post(&client(), &s.url("/v1/colors"), &key, body.clone()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-monthly-remaining"], "98");
    let b: Value = res.json().await.unwrap();
    let r = b["results"].as_array().unwrap();
    assert_eq!(r.len(), 5);
    assert_eq!(r[0]["colors"].as_array().unwrap().len(), 2);
    assert_eq!(r[0]["cached"], false);
    assert_eq!(r[1]["error"]["code"], "invalid_base64");
    assert_eq!(
        r[1]["error"]["details"]["parameter"],
        "images[1].image_base64"
    );
    assert_eq!(r[2]["error"]["code"], "invalid_image_url");
    assert!(r[3]["colors"].is_array());
    assert_eq!(r[4]["error"]["code"], "missing_parameter");
    assert_eq!(r[4]["error"]["details"]["parameter"], "images[4].image_url");
    assert!(b["processing_time_ms"].is_u64());

    // Again: the good ones are cached now; failures stay failures; no quota used.
    let res = post(&client(), &s.url("/v1/colors"), &key, body).await;
    assert_eq!(res.headers()["x-monthly-remaining"], "98");
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["results"][0]["cached"], true);
    assert_eq!(b["results"][3]["cached"], true);
}

#[tokio::test]
async fn formats_and_orientation() {
    let s = TestServer::start().await;
    let key = s.admin_key().await;
    let img = navy_white(120, 80);
    for format in [
        image::ImageFormat::Png,
        image::ImageFormat::Jpeg,
        image::ImageFormat::Gif,
        image::ImageFormat::WebP,
    ] {
        let res = post(
            &client(),
            &s.url("/v1/colors"),
            &key,
            json!({"image_base64": b64(&encode(&img, format)), "foreground_only": false}),
        )
        .await;
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert_eq!(status, 200, "{format:?}: {body}");
        assert_eq!(body["colors"][0]["name"], "navy", "{format:?}: {body}");
    }
    // data URI and URL-safe alphabet, no padding.
    let raw = png(&img);
    let uri = format!("data:image/png;base64,{}", b64(&raw));
    let res = post(
        &client(),
        &s.url("/v1/colors"),
        &key,
        json!({"image_base64": uri}),
    )
    .await;
    assert_eq!(res.status(), 200);
    use base64::Engine;
    let urlsafe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw);
    let res = post(
        &client(),
        &s.url("/v1/colors"),
        &key,
        json!({"image_base64": urlsafe}),
    )
    .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn quality_block_on_request() {
    let s = TestServer::start().await;
    let key = s.admin_key().await;
    // A textured product centred on white: sharp, well placed.
    let img = image::RgbImage::from_fn(400, 300, |x, y| {
        if (120..280).contains(&x) && (70..230).contains(&y) {
            if ((x / 5) + (y / 5)) % 2 == 0 {
                image::Rgb([40, 60, 150])
            } else {
                image::Rgb([180, 60, 40])
            }
        } else {
            image::Rgb([252, 252, 252])
        }
    });
    let res = post(
        &client(),
        &s.url("/v1/colors"),
        &key,
        json!({"image_base64": b64(&png(&img)), "include_quality": true}),
    )
    .await;
    let b: Value = res.json().await.unwrap();
    let q = &b["quality"];
    for k in ["overall", "sharpness", "brightness", "composition"] {
        let v = q[k].as_f64().unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&v), "{k}: {b}");
    }
    assert!(q["sharpness"].as_f64().unwrap() > 0.8, "{b}");
    assert!(q["composition"].as_f64().unwrap() > 0.8, "{b}");
    // Blurred, the same picture scores lower on sharpness.
    let blurred = image::imageops::blur(&img, 3.0);
    let res = post(
        &client(),
        &s.url("/v1/colors"),
        &key,
        json!({"image_base64": b64(&png(&blurred)), "include_quality": true}),
    )
    .await;
    let b2: Value = res.json().await.unwrap();
    assert!(
        b2["quality"]["sharpness"].as_f64().unwrap() < q["sharpness"].as_f64().unwrap() - 0.3,
        "{b2}"
    );
    // Not asked, not given.
    let res = post(
        &client(),
        &s.url("/v1/colors"),
        &key,
        json!({"image_base64": b64(&png(&img))}),
    )
    .await;
    let b3: Value = res.json().await.unwrap();
    assert!(b3.get("quality").is_none());
}
