//! The model-backed endpoints over HTTP with real models (u2netp through ONNX Runtime,
//! and the tiny random-weight CLIP export): embed, silhouette, attributes,
//! background-remove and batch; single, batch with a failing item, cache hits, scope
//! denial, bad options, metering, model choice and overload.

use base64::Engine as _;
use dupify_core::{KeyMode, Tier};
use dupify_testkit::*;
use image::{Rgb, RgbImage, Rgba, RgbaImage};
use serde_json::{json, Value};

fn png_rgba(img: &RgbaImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// A striped red/gold product (ellipse with a handle) on a light studio backdrop.
fn product(w: u32, h: u32, seed: u8) -> RgbImage {
    let (cx, cy) = (w as f32 * 0.5, h as f32 * 0.55);
    let (rx, ry) = (w as f32 * 0.28, h as f32 * 0.3);
    RgbImage::from_fn(w, h, |x, y| {
        let (xf, yf) = (x as f32, y as f32);
        if ((xf - cx) / rx).powi(2) + ((yf - cy) / ry).powi(2) <= 1.0 {
            if (y / 9) % 3 == 0 {
                Rgb([220, 170, 60])
            } else {
                Rgb([150, 25u8.wrapping_add(seed), 35])
            }
        } else {
            let g = 236 - (yf / h as f32 * 20.0) as u8;
            Rgb([g, g, g.saturating_sub(4)])
        }
    })
}

fn product_b64(seed: u8) -> String {
    b64(&png(&product(360, 300, seed)))
}

/// A cut-out (transparent background) of `shape` in a `w × h` frame, placed at
/// `(scale, dx, dy)` (size factor and offset from the centre), in a color.
fn cutout(
    shape: &str,
    (w, h): (u32, u32),
    (scale, dx, dy): (f32, f32, f32),
    color: [u8; 3],
    striped: bool,
) -> RgbaImage {
    let (cx, cy) = (w as f32 * 0.5 + dx, h as f32 * 0.5 + dy);
    let s = scale * w.min(h) as f32 * 0.4;
    RgbaImage::from_fn(w, h, |x, y| {
        let (u, v) = ((x as f32 - cx) / s, (y as f32 - cy) / s);
        let inside = match shape {
            // A T-shirt-like outline: body plus two sleeves.
            "shirt" => (u.abs() < 0.5 && v.abs() < 0.9) || (v > -0.9 && v < -0.4 && u.abs() < 1.0),
            "disc" => u * u + v * v < 0.8,
            // A tall bottle: neck and body.
            "bottle" => {
                (u.abs() < 0.35 && v > -0.2 && v < 1.0)
                    || (u.abs() < 0.12 && (-1.0..=-0.2).contains(&v))
            }
            _ => unreachable!(),
        };
        if !inside {
            return Rgba([0, 0, 0, 0]);
        }
        let c = if striped && (y / 6) % 2 == 0 {
            [255 - color[0], 255 - color[1], 255 - color[2]]
        } else {
            color
        };
        Rgba([c[0], c[1], c[2], 255])
    })
}

fn vector(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn assert_unit(v: &[f32]) {
    let n = dot(v, v).sqrt();
    assert!((n - 1.0).abs() < 1e-3, "norm {n}");
}

async fn call(s: &TestServer, key: &str, path: &str, body: Value) -> (u16, Value) {
    let res = post(&client(), &s.url(path), key, body).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

// ------------------------------------------------------------------- embed

#[tokio::test]
async fn embed_default_model_single_cache_and_quality() {
    let s = TestServer::with_models(ModelSet::Segmentation, |_| {}).await;
    let key = s.admin_key().await;
    let img = product_b64(0);
    let (st, first) = call(&s, &key, "/v1/embed", json!({"image_base64": img})).await;
    assert_eq!(st, 200, "{first}");
    assert_eq!(first["model"], "efficientnet-lite0");
    assert_eq!(first["dimensions"], 1280);
    assert_eq!(first["cached"], false);
    assert!(first["processing_time_ms"].is_u64());
    assert!(first.get("quality").is_none());
    let v = vector(&first["embedding"]);
    assert_eq!(first["dimensions"], v.len());
    assert_eq!(v.len(), 1280);
    assert_unit(&v);

    let (_, again) = call(&s, &key, "/v1/embed", json!({"image_base64": img})).await;
    assert_eq!(again["cached"], true);
    assert_eq!(again["embedding"], first["embedding"]);

    // Options are part of the cache key: with quality it is computed anew.
    let (st, q) = call(
        &s,
        &key,
        "/v1/embed",
        json!({"image_base64": img, "include_quality": true}),
    )
    .await;
    assert_eq!(st, 200, "{q}");
    assert_eq!(q["cached"], false);
    for k in ["overall", "sharpness", "brightness", "composition"] {
        let x = q["quality"][k].as_f64().unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&x), "{k} = {x}");
    }
    assert_eq!(q["embedding"], first["embedding"]);

    let e = expect_error(
        post(
            &client(),
            &s.url("/v1/embed"),
            &key,
            json!({"image_base64": img, "include_quality": "yes"}),
        )
        .await,
        400,
        "invalid_parameter",
    )
    .await;
    assert_eq!(e["details"]["parameter"], "include_quality");
}

#[tokio::test]
async fn embed_batch_keeps_order_and_isolates_a_failing_item() {
    let s = TestServer::with_models(ModelSet::Segmentation, |_| {}).await;
    let key = s.admin_key().await;
    let body = json!({"images": [
        {"image_base64": product_b64(1)},
        {"image_base64": "@@not base64@@"},
        {"image_base64": b64(&png(&product(360, 300, 9))[..2000])},
        {"image_base64": product_b64(2)},
    ]});
    let (st, out) = call(&s, &key, "/v1/embed", body).await;
    assert_eq!(st, 200, "{out}");
    let r = out["results"].as_array().unwrap();
    assert_eq!(r.len(), 4);
    assert_eq!(r[0]["model"], "efficientnet-lite0");
    assert_eq!(r[1]["error"]["code"], "invalid_base64");
    assert_eq!(
        r[1]["error"]["details"]["parameter"],
        "images[1].image_base64"
    );
    assert_eq!(r[2]["error"]["code"], "processing_failed", "{}", r[2]);
    assert_eq!(
        r[2]["error"]["details"]["parameter"],
        "images[2].image_base64"
    );
    assert_eq!(r[3]["cached"], false);
    // Different images, different vectors; both unit length.
    let (a, b) = (vector(&r[0]["embedding"]), vector(&r[3]["embedding"]));
    assert_unit(&a);
    assert_unit(&b);
    assert!(dot(&a, &b) < 0.99999);
    assert!(out["processing_time_ms"].is_u64());
}

#[tokio::test]
async fn text_needs_a_clip_model() {
    let s = TestServer::with_models(ModelSet::Segmentation, |_| {}).await;
    let key = s.admin_key().await;
    let e = expect_error(
        post(
            &client(),
            &s.url("/v1/embed"),
            &key,
            json!({"text": "a red dress"}),
        )
        .await,
        400,
        "invalid_parameter",
    )
    .await;
    assert_eq!(e["details"]["parameter"], "text");
    assert!(e["message"].as_str().unwrap().contains("CLIP"));
}

#[tokio::test]
async fn clip_model_embeds_images_and_texts_in_one_space() {
    let s = TestServer::with_models(ModelSet::WithClip, |_| {}).await;
    let key = s.admin_key().await;
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../dupify-models/tests/fixtures/tiny-clip/reference.json"),
        )
        .unwrap(),
    )
    .unwrap();

    let (st, img) = call(
        &s,
        &key,
        "/v1/embed",
        json!({"image_base64": product_b64(3)}),
    )
    .await;
    assert_eq!(st, 200, "{img}");
    assert_eq!(img["model"], "tiny-clip");
    assert_eq!(img["dimensions"], 16);
    assert_unit(&vector(&img["embedding"]));

    let (st, t) = call(
        &s,
        &key,
        "/v1/embed",
        json!({"text": "a photo of a red dress"}),
    )
    .await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["model"], "tiny-clip");
    let want = vector(&reference["texts"][0]["text_embeds_l2"]);
    let got = vector(&t["embedding"]);
    assert!(
        got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-4),
        "{got:?} vs {want:?}"
    );

    let (st, many) = call(
        &s,
        &key,
        "/v1/embed",
        json!({"texts": ["a red dress", "a blue shoe", "a leather bag"]}),
    )
    .await;
    assert_eq!(st, 200, "{many}");
    assert_eq!(many["results"].as_array().unwrap().len(), 3);
    assert_eq!(many["results"][2]["dimensions"], 16);

    // A red image is closer to "red" than to "blue" in the shared space.
    let red = RgbImage::from_pixel(64, 64, Rgb([220, 30, 30]));
    let (_, r) = call(
        &s,
        &key,
        "/v1/embed",
        json!({"image_base64": b64(&png(&red))}),
    )
    .await;
    let (_, words) = call(
        &s,
        &key,
        "/v1/embed",
        json!({"texts": ["a photo of a red dress", "a photo of a blue dress"]}),
    )
    .await;
    let rv = vector(&r["embedding"]);
    assert!(
        dot(&rv, &vector(&words["results"][0]["embedding"]))
            > dot(&rv, &vector(&words["results"][1]["embedding"]))
    );

    for (body, parameter) in [
        (json!({"texts": []}), "texts"),
        (json!({"texts": vec!["x"; 33]}), "texts"),
        (json!({"texts": ["ok", 5]}), "texts[1]"),
        (json!({"text": "   "}), "text"),
        (json!({"text": "x".repeat(1001)}), "text"),
        (
            json!({"text": "a", "image_base64": product_b64(3)}),
            "image_base64",
        ),
    ] {
        expect_invalid(&s, &key, "/v1/embed", body, parameter).await;
    }
}

// ------------------------------------------------------------------- silhouette

#[tokio::test]
async fn silhouette_is_shape_only() {
    let s = TestServer::with_models(ModelSet::Segmentation, |_| {}).await;
    let key = s.admin_key().await;
    let mut vectors = Vec::new();
    let variants = [
        ("shirt", 1.0, 0.0, 0.0, [30, 40, 200], false),
        ("shirt", 0.7, 40.0, -20.0, [200, 30, 30], true),
        ("shirt", 1.2, -15.0, 10.0, [20, 200, 90], false),
        ("disc", 1.0, 0.0, 0.0, [30, 40, 200], false),
        ("bottle", 1.0, 0.0, 0.0, [30, 40, 200], false),
    ];
    for (shape, scale, dx, dy, color, striped) in variants {
        let img = cutout(shape, (400, 400), (scale, dx, dy), color, striped);
        let (st, out) = call(
            &s,
            &key,
            "/v1/silhouette",
            json!({"image_base64": b64(&png_rgba(&img))}),
        )
        .await;
        assert_eq!(st, 200, "{out}");
        assert_eq!(out["dimensions"], 128);
        // The image's own alpha is the mask: no model needed for a cut-out.
        assert_eq!(out["foreground"]["source"], "alpha", "{out}");
        let c = out["coverage"].as_f64().unwrap();
        assert!(c > 0.05 && c < 0.9, "coverage {c}");
        assert!(out["aspect_ratio"].as_f64().unwrap() > 0.0);
        let v = vector(&out["embedding"]);
        assert_unit(&v);
        vectors.push(v);
    }
    for i in 1..3 {
        let same = dot(&vectors[0], &vectors[i]);
        assert!(same >= 0.95, "same outline, variant {i}: cosine {same}");
    }
    for i in 3..5 {
        let other = dot(&vectors[0], &vectors[i]);
        assert!(other < 0.85, "different outline {i}: cosine {other}");
    }

    // On an opaque photo the segmentation model draws the outline.
    let (st, out) = call(
        &s,
        &key,
        "/v1/silhouette",
        json!({"image_base64": product_b64(4)}),
    )
    .await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(out["foreground"]["source"], "u2netp");
    assert!(out["model"].as_str().unwrap().contains("u2netp"));
}

// ------------------------------------------------------------------- attributes

#[tokio::test]
async fn attributes_from_pixels_only_without_clip() {
    let s = TestServer::with_models(ModelSet::Segmentation, |_| {}).await;
    let key = s.admin_key().await;
    let (st, out) = call(
        &s,
        &key,
        "/v1/attributes",
        json!({"image_base64": product_b64(5)}),
    )
    .await;
    assert_eq!(st, 200, "{out}");
    let a = out["attributes"].as_object().unwrap();
    for k in [
        "color_family",
        "tone",
        "pattern",
        "orientation",
        "has_transparency",
    ] {
        let v = &a[k];
        assert_eq!(v["source"], "pixels", "{k}: {v}");
        assert!(v["value"].is_string(), "{k}");
        let c = v["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&c), "{k}: {c}");
    }
    // Never guessed without a CLIP model; the category comes from the ImageNet classifier.
    for k in ["material", "style"] {
        assert!(!a.contains_key(k), "{k} present without CLIP: {out}");
    }
    assert_eq!(a["category"]["source"], "classifier", "{out}");
    assert_eq!(a["has_transparency"]["value"], "false");
    assert_eq!(a["pattern"]["value"], "striped", "{out}");
    assert!(out["model"]
        .as_str()
        .unwrap()
        .starts_with("dupify-attributes-v1"));

    // A tall blue bottle cut out on transparency.
    let bottle = cutout("bottle", (300, 400), (1.0, 0.0, 0.0), [30, 40, 200], false);
    let (st, out) = call(
        &s,
        &key,
        "/v1/attributes",
        json!({"image_base64": b64(&png_rgba(&bottle))}),
    )
    .await;
    assert_eq!(st, 200, "{out}");
    let a = &out["attributes"];
    assert_eq!(a["orientation"]["value"], "portrait", "{out}");
    assert_eq!(a["has_transparency"]["value"], "true");
    assert_eq!(a["color_family"]["value"], "blue", "{out}");
    assert_eq!(a["pattern"]["value"], "solid", "{out}");
}

#[tokio::test]
async fn attributes_add_zero_shot_classes_with_clip() {
    let s = TestServer::with_models(ModelSet::WithClip, |_| {}).await;
    let key = s.admin_key().await;
    let (st, out) = call(
        &s,
        &key,
        "/v1/attributes",
        json!({"image_base64": product_b64(6)}),
    )
    .await;
    assert_eq!(st, 200, "{out}");
    let a = out["attributes"].as_object().unwrap();
    assert_eq!(a["color_family"]["source"], "pixels");
    let cat = &a["category"];
    assert_eq!(cat["source"], "clip", "{out}");
    assert!(cat["value"].is_string());
    let c = cat["confidence"].as_f64().unwrap();
    assert!(c > 0.0 && c <= 1.0);
    assert!(a.contains_key("style"), "{out}");
    assert!(
        out["model"].as_str().unwrap().ends_with("+tiny-clip"),
        "{out}"
    );
    let (_, again) = call(
        &s,
        &key,
        "/v1/attributes",
        json!({"image_base64": product_b64(6)}),
    )
    .await;
    assert_eq!(again["cached"], true);
    assert_eq!(again["attributes"], out["attributes"]);
}

// ------------------------------------------------------------------- background removal

fn decode(b64_png: &Value) -> image::DynamicImage {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64_png.as_str().unwrap())
        .unwrap();
    image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).unwrap()
}

#[tokio::test]
async fn background_remove_cutout_mask_and_crop() {
    let s = TestServer::with_models(ModelSet::Segmentation, |_| {}).await;
    let key = s.admin_key().await;
    // 800×640 JPEG: the answer is at the original size, not the working size.
    let img = product(800, 640, 7);
    let jpeg = b64(&encode(&img, image::ImageFormat::Jpeg));

    let (st, out) = call(
        &s,
        &key,
        "/v1/background-remove",
        json!({"image_base64": jpeg}),
    )
    .await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(out["format"], "png");
    assert_eq!(
        (out["width"].as_u64(), out["height"].as_u64()),
        (Some(800), Some(640))
    );
    assert_eq!(out["model"], "u2netp");
    let cut = decode(&out["image_base64"]).to_rgba8();
    assert_eq!(cut.dimensions(), (800, 640));
    // The backdrop corner is transparent, the product's centre opaque.
    assert!(
        cut.get_pixel(10, 10).0[3] < 20,
        "{:?}",
        cut.get_pixel(10, 10)
    );
    assert!(
        cut.get_pixel(400, 352).0[3] > 235,
        "{:?}",
        cut.get_pixel(400, 352)
    );
    // The ellipse is π·0.28·0.3 ≈ 26 % of the frame.
    let ratio = out["foreground_ratio"].as_f64().unwrap();
    assert!((ratio - 0.264).abs() < 0.06, "foreground_ratio {ratio}");

    let (st, m) = call(
        &s,
        &key,
        "/v1/background-remove",
        json!({"image_base64": jpeg, "output": "mask", "crop": true}),
    )
    .await;
    assert_eq!(st, 200, "{m}");
    let mask = decode(&m["image_base64"]);
    assert_eq!(mask.color(), image::ColorType::L8);
    let (w, h) = (m["width"].as_u64().unwrap(), m["height"].as_u64().unwrap());
    assert_eq!((mask.width() as u64, mask.height() as u64), (w, h));
    // Cropped to the ellipse: about 0.56 × 0.6 of the frame.
    assert!((w as f64 / 800.0 - 0.56).abs() < 0.08, "width {w}");
    assert!((h as f64 / 640.0 - 0.6).abs() < 0.08, "height {h}");
    let b = &m["crop_box"];
    assert!(
        b["x"].as_u64().unwrap() > 100 && b["y"].as_u64().unwrap() > 50,
        "{b}"
    );
    assert_eq!(m["foreground_ratio"], out["foreground_ratio"]);

    // Cached per options.
    let (_, again) = call(
        &s,
        &key,
        "/v1/background-remove",
        json!({"image_base64": jpeg}),
    )
    .await;
    assert_eq!(again["cached"], true);
    assert_eq!(again["image_base64"], out["image_base64"]);

    // An image that is already a cut-out keeps its own alpha.
    let c = cutout("disc", (200, 200), (1.0, 0.0, 0.0), [10, 200, 10], false);
    let (st, own) = call(
        &s,
        &key,
        "/v1/background-remove",
        json!({"image_base64": b64(&png_rgba(&c))}),
    )
    .await;
    assert_eq!(st, 200, "{own}");
    assert_eq!(own["model"], "alpha");
    let back = decode(&own["image_base64"]).to_rgba8();
    assert_eq!(back.as_raw(), c.as_raw());
}

#[tokio::test]
async fn background_remove_options_and_model_choice() {
    let s = TestServer::with_models(ModelSet::Segmentation, |_| {}).await;
    let key = s.admin_key().await;
    let img = product_b64(8);
    let path = "/v1/background-remove";
    for (body, parameter) in [
        (json!({"image_base64": img, "output": "jpeg"}), "output"),
        (json!({"image_base64": img, "output": 3}), "output"),
        (json!({"image_base64": img, "crop": "yes"}), "crop"),
        (json!({"image_base64": img, "model": "isnet"}), "model"),
        (
            json!({"image_base64": img, "model": "u2netp", "segmentation_model": "u2netp"}),
            "model",
        ),
    ] {
        expect_invalid(&s, &key, path, body, parameter).await;
    }
    // Known model, but this server did not load it: 503 with Retry-After.
    let res = post(
        &client(),
        &s.url(path),
        &key,
        json!({"image_base64": img, "model": "u2net"}),
    )
    .await;
    assert!(res.headers().get("retry-after").is_some());
    expect_error(res, 503, "service_unavailable").await;
    let (st, ok) = call(
        &s,
        &key,
        path,
        json!({"image_base64": img, "segmentation_model": "u2netp"}),
    )
    .await;
    assert_eq!(st, 200, "{ok}");
    assert_eq!(ok["model"], "u2netp");
    expect_error(
        post(&client(), &s.url(path), &key, json!({})).await,
        400,
        "missing_parameter",
    )
    .await;
}

#[tokio::test]
async fn without_a_segmentation_model_background_removal_is_unavailable_and_ready_says_why() {
    // The default models configured, but no models directory: nothing loads.
    let s = TestServer::start_with(|c| {
        c.models_dir = "/nonexistent/models".into();
        c.segmentation_models = vec!["u2net".into(), "u2netp".into()];
    })
    .await;
    let key = s.admin_key().await;
    let res = post(
        &client(),
        &s.url("/v1/background-remove"),
        &key,
        json!({"image_base64": product_b64(9)}),
    )
    .await;
    assert!(res.headers().get("retry-after").is_some());
    expect_error(res, 503, "service_unavailable").await;
    // Features that only need a foreground estimate still work, and name their method.
    let (st, sil) = call(
        &s,
        &key,
        "/v1/silhouette",
        json!({"image_base64": product_b64(9)}),
    )
    .await;
    assert_eq!(st, 200, "{sil}");
    assert_ne!(sil["foreground"]["source"], "u2net");
    let ready = client().get(s.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    let missing: Vec<&str> = body["missing"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        missing.contains(&"u2net") && missing.contains(&"u2netp"),
        "{body}"
    );
    assert!(
        body["models"][0]["error"]
            .as_str()
            .unwrap()
            .contains("not found"),
        "{body}"
    );
}

#[tokio::test]
async fn ready_lists_loaded_models() {
    let s = TestServer::with_models(ModelSet::WithClip, |_| {}).await;
    let res = client().get(s.url("/ready")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let models = body["models"].as_array().unwrap();
    let names: Vec<&str> = models.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["u2netp", "tiny-clip", "efficientnet-lite0"],
        "{body}"
    );
    assert!(models.iter().all(|m| m["ready"] == true));
    assert_eq!(models[0]["max_batch"], 1);
    assert_eq!(models[1]["max_batch"], 16);
}

// ------------------------------------------------------------------- scopes

#[tokio::test]
async fn each_endpoint_checks_its_scope() {
    let s = TestServer::with_models(ModelSet::Segmentation, |_| {}).await;
    let account = s.account(Tier::Unlimited, None, None).await;
    let (colors_only, _) = s.key_with(&account, "colors", KeyMode::Live, None).await;
    for (path, scope) in [
        ("/v1/embed", "embed"),
        ("/v1/silhouette", "silhouette"),
        ("/v1/attributes", "attributes"),
        ("/v1/background-remove", "background_remove"),
        ("/v1/batch", "batch"),
    ] {
        let e = expect_error(
            post(
                &client(),
                &s.url(path),
                &colors_only,
                json!({"image_base64": product_b64(1), "operations": ["colors"]}),
            )
            .await,
            403,
            "insufficient_scope",
        )
        .await;
        assert_eq!(e["details"]["required_scope"], scope, "{path}");
    }
    // batch needs its own scope and that of every operation it runs.
    let (batch_colors, _) = s
        .key_with(&account, "batch,colors", KeyMode::Live, None)
        .await;
    let (st, ok) = call(
        &s,
        &batch_colors,
        "/v1/batch",
        json!({"image_base64": product_b64(1), "operations": ["colors"]}),
    )
    .await;
    assert_eq!(st, 200, "{ok}");
    for (op, scope) in [
        ("background_remove", "background_remove"),
        ("quality", "embed"),
        ("silhouette", "silhouette"),
    ] {
        let e = expect_error(
            post(
                &client(),
                &s.url("/v1/batch"),
                &batch_colors,
                json!({"image_base64": product_b64(1), "operations": ["colors", op]}),
            )
            .await,
            403,
            "insufficient_scope",
        )
        .await;
        assert_eq!(e["details"]["required_scope"], scope, "{op}");
    }
}

// ------------------------------------------------------------------- batch

#[tokio::test]
async fn batch_runs_every_operation_once_per_image() {
    let s = TestServer::with_models(ModelSet::Segmentation, |_| {}).await;
    let account = s.account(Tier::Pro, None, None).await;
    let (key, _) = s.key_with(&account, "", KeyMode::Live, None).await;
    let body = json!({
        "images": [{"image_base64": product_b64(10)}, {"image_base64": "%%%"}, {"image_base64": product_b64(11)}],
        "operations": ["embed", "colors", "silhouette", "attributes", "quality", "background_remove"],
        "options": {"colors": {"max_colors": 2}, "background_remove": {"output": "mask"}, "embed": {"include_quality": true}},
    });
    let (st, out) = call(&s, &key, "/v1/batch", body.clone()).await;
    assert_eq!(st, 200, "{out}");
    let r = out["results"].as_array().unwrap();
    assert_eq!(r.len(), 3);
    assert_eq!(r[1]["error"]["code"], "invalid_base64");
    for item in [&r[0], &r[2]] {
        assert_eq!(item["embed"]["model"], "efficientnet-lite0");
        assert!(item["embed"]["quality"]["overall"].is_number());
        assert!(item["colors"]["colors"].as_array().unwrap().len() <= 2);
        assert_eq!(item["silhouette"]["dimensions"], 128);
        assert!(item["attributes"]["attributes"]["pattern"].is_object());
        assert!(item["quality"]["composition"].is_number());
        assert_eq!(
            decode(&item["background_remove"]["image_base64"]).color(),
            image::ColorType::L8
        );
        // One mask for all operations: the same model named everywhere it shows.
        assert_eq!(item["colors"]["foreground"]["source"], "u2netp");
        assert_eq!(item["silhouette"]["foreground"]["source"], "u2netp");
        assert_eq!(item["background_remove"]["model"], "u2netp");
        assert_eq!(item["embed"]["cached"], false);
    }
    // 2 good images × 6 operations.
    let usage = usage_of(&s, &key).await;
    assert_eq!(usage["used"], 12, "{usage}");

    // The same batch again: all from the cache, nothing counted.
    let (_, again) = call(&s, &key, "/v1/batch", body).await;
    assert_eq!(again["results"][0]["silhouette"]["cached"], true);
    assert_eq!(again["results"][2]["background_remove"]["cached"], true);
    let usage = usage_of(&s, &key).await;
    assert_eq!(usage["used"], 12, "{usage}");

    // Single-image form of batch: same layout, one result.
    let (st, single) = call(
        &s,
        &key,
        "/v1/batch",
        json!({"image_base64": product_b64(12), "operations": ["silhouette"]}),
    )
    .await;
    assert_eq!(st, 200, "{single}");
    assert_eq!(single["results"][0]["silhouette"]["dimensions"], 128);
}

#[tokio::test]
async fn batch_validates_operations_and_options() {
    let s = TestServer::with_models(ModelSet::Segmentation, |_| {}).await;
    let key = s.admin_key().await;
    let img = product_b64(13);
    let e = expect_error(
        post(
            &client(),
            &s.url("/v1/batch"),
            &key,
            json!({"image_base64": img}),
        )
        .await,
        400,
        "missing_parameter",
    )
    .await;
    assert_eq!(e["details"]["parameter"], "operations");
    for (body, parameter) in [
        (json!({"image_base64": img, "operations": []}), "operations"),
        (
            json!({"image_base64": img, "operations": "embed"}),
            "operations",
        ),
        (
            json!({"image_base64": img, "operations": ["embed", "teleport"]}),
            "operations[1]",
        ),
        (
            json!({"image_base64": img, "operations": ["embed", "embed"]}),
            "operations",
        ),
        (
            json!({"image_base64": img, "operations": ["embed"], "options": {"colors": {}}}),
            "options.colors",
        ),
        (
            json!({"image_base64": img, "operations": ["colors"], "options": {"colors": 3}}),
            "options.colors",
        ),
        (
            json!({"image_base64": img, "operations": ["colors"], "options": {"colors": {"max_colors": 40}}}),
            "options.colors.max_colors",
        ),
        (
            json!({"image_base64": img, "operations": ["background_remove"], "options": {"background_remove": {"output": "gif"}}}),
            "options.background_remove.output",
        ),
        (
            json!({"image_base64": img, "operations": ["background_remove"], "options": {"background_remove": {"model": "u2net"}}}),
            "options.background_remove.model",
        ),
    ] {
        expect_invalid(&s, &key, "/v1/batch", body, parameter).await;
    }
}

// ------------------------------------------------------------------- overload

#[tokio::test]
async fn a_full_model_queue_answers_503_with_retry_after() {
    // One instance, one waiting slot: a burst of distinct images must overflow it.
    let s = TestServer::start_with(|c| {
        c.models_dir = project_models_dir();
        c.segmentation_models = vec!["u2netp".into()];
        c.model_instances = 1;
        c.model_queue_limit = 1;
    })
    .await;
    let key = s.admin_key().await;
    let c = client();
    let tasks: Vec<_> = (0..16u8)
        .map(|i| {
            let (c, url, key) = (c.clone(), s.url("/v1/background-remove"), key.clone());
            let body = json!({"image_base64": b64(&png(&product(320, 320, i)))});
            tokio::spawn(async move { post(&c, &url, &key, body).await })
        })
        .collect();
    let (mut ok, mut busy) = (0, 0);
    for t in tasks {
        let res = t.await.unwrap();
        match res.status().as_u16() {
            200 => ok += 1,
            503 => {
                let retry: u64 = res.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(retry >= 1);
                expect_error(res, 503, "service_unavailable").await;
                busy += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(ok >= 2, "ok {ok}");
    assert!(busy >= 1, "no request was refused (ok {ok})");
    // Refused requests cost no quota: the account's usage equals the successes.
    let usage = usage_of(&s, &key).await;
    assert_eq!(usage["used"], ok, "{usage}");
}

// ------------------------------------------------------------------- every endpoint

#[tokio::test]
async fn every_image_endpoint_batches_caches_and_isolates_a_failing_item() {
    let s = TestServer::with_models(ModelSet::Segmentation, |_| {}).await;
    let key = s.admin_key().await;
    let (good_a, good_b) = (product_b64(20), product_b64(21));
    for path in [
        "/v1/colors",
        "/v1/embed",
        "/v1/silhouette",
        "/v1/attributes",
        "/v1/background-remove",
    ] {
        let body = json!({"images": [
            {"image_base64": good_a},
            {"image_url": "http://127.0.0.1/private.jpg"},
            {"image_base64": good_b},
        ]});
        let (st, out) = call(&s, &key, path, body.clone()).await;
        assert_eq!(st, 200, "{path}: {out}");
        let r = out["results"].as_array().unwrap();
        assert_eq!(r.len(), 3, "{path}");
        assert_eq!(
            r[1]["error"]["code"], "invalid_image_url",
            "{path}: {}",
            r[1]
        );
        assert_eq!(
            r[1]["error"]["details"]["parameter"], "images[1].image_url",
            "{path}"
        );
        for i in [0, 2] {
            assert_eq!(r[i]["cached"], false, "{path}[{i}]");
            assert!(r[i].get("error").is_none(), "{path}[{i}]: {}", r[i]);
        }
        // The same images again: both good ones from the cache, identical answers.
        let (_, again) = call(&s, &key, path, body).await;
        for i in [0, 2] {
            assert_eq!(again["results"][i]["cached"], true, "{path}[{i}]");
            let strip = |v: &Value| {
                let mut v = v.clone();
                v.as_object_mut().unwrap().remove("cached");
                v
            };
            assert_eq!(strip(&again["results"][i]), strip(&r[i]), "{path}[{i}]");
        }
        assert_eq!(again["results"][1]["error"]["code"], "invalid_image_url");
    }
}

#[tokio::test]
async fn an_operator_taxonomy_replaces_the_built_in_one() {
    let dir = tempfile::tempdir().unwrap();
    let taxonomy = dir.path().join("taxonomy.toml");
    // The tiny CLIP fixture puts colour words and mean image colour in one subspace,
    // so a colour attribute is a real zero-shot test of the prompt ensemble.
    std::fs::write(
        &taxonomy,
        r#"
templates = ["a photo of a {} dress", "a {} dress"]
[attributes.colour.classes]
red = ["red"]
blue = ["blue"]
green = ["green"]
"#,
    )
    .unwrap();
    let file = taxonomy.to_str().unwrap().to_string();
    let s = TestServer::with_models(ModelSet::WithClip, move |c| c.taxonomy_file = file).await;
    let key = s.admin_key().await;
    for (rgb, want) in [
        ([220, 30, 30], "red"),
        ([30, 60, 210], "blue"),
        ([40, 160, 60], "green"),
    ] {
        let img = RgbImage::from_pixel(64, 64, Rgb(rgb));
        let (st, out) = call(
            &s,
            &key,
            "/v1/attributes",
            json!({"image_base64": b64(&png(&img))}),
        )
        .await;
        assert_eq!(st, 200, "{out}");
        let a = &out["attributes"];
        assert_eq!(a["colour"]["value"], want, "{out}");
        assert_eq!(a["colour"]["source"], "clip");
        // Only the operator's attributes: the built-in CLIP category is gone (the
        // classifier's stays).
        assert_eq!(a["category"]["source"], "classifier", "{out}");
    }
    // A broken taxonomy is a clear 503 on the endpoint that needs it, not a guess.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "templates = [\"no placeholder\"]\n[attributes.x.classes]\na = [\"a\"]\nb = [\"b\"]\n",
    )
    .unwrap();
    let file = bad.to_str().unwrap().to_string();
    let s = TestServer::with_models(ModelSet::WithClip, move |c| c.taxonomy_file = file).await;
    let key = s.admin_key().await;
    let res = post(
        &client(),
        &s.url("/v1/attributes"),
        &key,
        json!({"image_base64": product_b64(1)}),
    )
    .await;
    let e = expect_error(res, 503, "service_unavailable").await;
    assert!(e["message"].as_str().unwrap().contains("template"), "{e}");
}

#[tokio::test]
async fn a_clip_model_that_does_not_load_is_refused_not_replaced() {
    // A models directory with the runtime, u2netp and a CLIP export whose manifest
    // disagrees with its files.
    let dir = tempfile::tempdir().unwrap();
    let src = project_models_dir();
    for f in ["libonnxruntime.so", "u2netp.onnx"] {
        std::os::unix::fs::symlink(src.join(f), dir.path().join(f)).unwrap();
    }
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../dupify-models/tests/fixtures/tiny-clip");
    let clip = dir.path().join("tiny-clip");
    std::fs::create_dir(&clip).unwrap();
    for f in ["vision.onnx", "text.onnx", "tokenizer.json"] {
        std::fs::copy(fixture.join(f), clip.join(f)).unwrap();
    }
    let manifest = std::fs::read_to_string(fixture.join("manifest.toml")).unwrap();
    std::fs::write(
        clip.join("manifest.toml"),
        manifest.replace("dimensions = 16", "dimensions = 768"),
    )
    .unwrap();
    let models = dir.path().to_owned();
    let s = TestServer::start_with(move |c| {
        c.models_dir = models;
        c.segmentation_models = vec!["u2netp".into()];
        c.model_instances = 1;
        // The automatic choice: an installed CLIP export is the default.
        c.embedding_model = String::new();
    })
    .await;
    let key = s.admin_key().await;
    for body in [
        json!({"image_base64": product_b64(1)}),
        json!({"text": "a red dress"}),
    ] {
        let res = post(&client(), &s.url("/v1/embed"), &key, body).await;
        assert!(res.headers().get("retry-after").is_some());
        let e = expect_error(res, 503, "service_unavailable").await;
        assert!(
            e["message"].as_str().unwrap().contains("manifest says 768"),
            "{e}"
        );
    }
    expect_error(
        post(
            &client(),
            &s.url("/v1/attributes"),
            &key,
            json!({"image_base64": product_b64(1)}),
        )
        .await,
        503,
        "service_unavailable",
    )
    .await;
    // What does not need CLIP still works.
    let (st, _) = call(
        &s,
        &key,
        "/v1/silhouette",
        json!({"image_base64": product_b64(1)}),
    )
    .await;
    assert_eq!(st, 200);
    let ready = client().get(s.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert!(
        body["missing"]
            .as_array()
            .unwrap()
            .contains(&json!("tiny-clip")),
        "{body}"
    );
}

#[tokio::test]
async fn large_images_are_cut_out_at_the_configured_size_and_small_transparency_is_not_a_cutout() {
    let s = TestServer::with_models(ModelSet::Segmentation, |c| c.cutout_max_side = 600).await;
    let key = s.admin_key().await;
    let jpeg = b64(&encode(&product(800, 640, 3), image::ImageFormat::Jpeg));
    let (st, out) = call(
        &s,
        &key,
        "/v1/background-remove",
        json!({"image_base64": jpeg}),
    )
    .await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(
        (out["width"].as_u64(), out["height"].as_u64()),
        (Some(600), Some(480))
    );
    assert_eq!(
        (
            out["original_width"].as_u64(),
            out["original_height"].as_u64()
        ),
        (Some(800), Some(640))
    );
    assert_eq!(decode(&out["image_base64"]).width(), 600);

    // A product photo whose only transparency is its rounded corners is segmented.
    let photo = product(400, 400, 4);
    let rounded = RgbaImage::from_fn(400, 400, |x, y| {
        let p = photo.get_pixel(x, y).0;
        let (dx, dy) = ((x as i32 - 200).abs() - 180, (y as i32 - 200).abs() - 180);
        let outside = dx > 0 && dy > 0 && dx * dx + dy * dy > 400;
        Rgba([p[0], p[1], p[2], if outside { 0 } else { 255 }])
    });
    let (st, out) = call(
        &s,
        &key,
        "/v1/background-remove",
        json!({"image_base64": b64(&png_rgba(&rounded)), "output": "mask"}),
    )
    .await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(out["model"], "u2netp", "{out}");
}

// ------------------------------------------------- embedding models and categories

#[tokio::test]
async fn embed_model_option_picks_the_model_and_unknown_names_are_refused() {
    let s = TestServer::with_models(ModelSet::Segmentation, |_| {}).await;
    let key = s.admin_key().await;
    let img = product_b64(4);
    let (st, lite) = call(&s, &key, "/v1/embed", json!({"image_base64": img})).await;
    assert_eq!(st, 200, "{lite}");
    assert_eq!(lite["model"], "efficientnet-lite0");
    assert_eq!(vector(&lite["embedding"]).len(), 1280);
    // The weight-free descriptor by name: its own vector, cached apart from the default's.
    let body = json!({"image_base64": img, "model": "dupify-visual-v1"});
    let (st, visual) = call(&s, &key, "/v1/embed", body.clone()).await;
    assert_eq!(st, 200, "{visual}");
    assert_eq!(visual["model"], "dupify-visual-v1");
    assert_eq!(visual["cached"], false);
    assert_eq!(vector(&visual["embedding"]).len(), visual["dimensions"]);
    assert_ne!(visual["dimensions"], 1280);
    let (_, again) = call(&s, &key, "/v1/embed", body).await;
    assert_eq!(
        (again["cached"].clone(), again["model"].clone()),
        (json!(true), json!("dupify-visual-v1"))
    );
    let (_, again) = call(
        &s,
        &key,
        "/v1/embed",
        json!({"image_base64": img, "model": "efficientnet-lite0"}),
    )
    .await;
    assert_eq!(
        again["cached"], true,
        "the default named explicitly is the same result"
    );
    assert_eq!(again["embedding"], lite["embedding"]);

    // Unknown or mistyped names are a 400 naming the option, listing what exists.
    let e = expect_error(
        post(
            &client(),
            &s.url("/v1/embed"),
            &key,
            json!({"image_base64": img, "model": "clip-vit-h-99"}),
        )
        .await,
        400,
        "invalid_parameter",
    )
    .await;
    assert_eq!(e["details"]["parameter"], "model");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("efficientnet-lite0") && message.contains("dupify-visual-v1"),
        "{message}"
    );
    expect_invalid(
        &s,
        &key,
        "/v1/embed",
        json!({"image_base64": img, "model": 7}),
        "model",
    )
    .await;
    let batch = json!({"images": [{"image_base64": img}], "operations": ["embed"], "options": {"embed": {"model": "nope"}}});
    expect_invalid(&s, &key, "/v1/batch", batch, "options.embed.model").await;
    let batch = json!({"images": [{"image_base64": img}], "operations": ["embed", "colors"], "options": {"embed": {"model": "dupify-visual-v1"}}});
    let (st, out) = call(&s, &key, "/v1/batch", batch).await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(out["results"][0]["embed"]["model"], "dupify-visual-v1");

    // A server that does not load the model says so with a 503, never another space.
    let bare = TestServer::start().await;
    let key = bare.admin_key().await;
    let e = expect_error(
        post(
            &client(),
            &bare.url("/v1/embed"),
            &key,
            json!({"image_base64": img, "model": "efficientnet-lite0"}),
        )
        .await,
        503,
        "service_unavailable",
    )
    .await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("efficientnet-lite0"),
        "{e}"
    );
}

/// A scratch models directory with the shared set's files and an edited taxonomy.
fn models_dir_with_taxonomy(taxonomy: &str) -> std::path::PathBuf {
    let src = project_models_dir();
    let dir = tempfile::tempdir().unwrap().keep();
    for f in [
        "libonnxruntime.so",
        "u2netp.onnx",
        "efficientnet-lite0.onnx",
        "imagenet-classes.json",
    ] {
        std::os::unix::fs::symlink(src.join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("imagenet-taxonomy.toml"), taxonomy).unwrap();
    dir
}

fn photo_b64(file: &str) -> String {
    let bytes = std::fs::read(project_models_dir().join("testdata").join(file))
        .expect("test photos are installed by `make models`");
    b64(&bytes)
}

#[tokio::test]
async fn attributes_carry_the_classifiers_category_and_never_force_one() {
    let s = TestServer::with_models(ModelSet::Segmentation, |_| {}).await;
    let key = s.admin_key().await;
    // An espresso is in no category of the built-in taxonomy: `other`, and what it is.
    let (st, out) = call(
        &s,
        &key,
        "/v1/attributes",
        json!({"image_base64": photo_b64("coffee.png")}),
    )
    .await;
    assert_eq!(st, 200, "{out}");
    let a = &out["attributes"];
    assert_eq!(a["imagenet_class"]["value"], "espresso", "{out}");
    assert_eq!(a["imagenet_class"]["source"], "classifier");
    assert_eq!(a["imagenet_class"]["model"], "efficientnet-lite0");
    assert_eq!(a["category"]["value"], "other", "{out}");
    assert!(a.get("product_type").is_none());
    assert!(
        a["color_family"]["model"].is_null(),
        "pixel attributes name no model"
    );
    assert!(out["model"]
        .as_str()
        .unwrap()
        .ends_with("+efficientnet-lite0"));

    // The operator's taxonomy decides: espresso cups sold as kitchenware.
    let dir = models_dir_with_taxonomy(
        "[categories]\nkitchenware = [\"espresso\", 968, 504]\n[product_types]\nhome = [\"kitchenware\"]\n",
    );
    let edited = TestServer::with_models(ModelSet::Segmentation, |c| c.models_dir = dir).await;
    let key = edited.admin_key().await;
    let (st, out) = call(
        &edited,
        &key,
        "/v1/attributes",
        json!({"image_base64": photo_b64("coffee.png")}),
    )
    .await;
    assert_eq!(st, 200, "{out}");
    let a = &out["attributes"];
    assert_eq!(a["category"]["value"], "kitchenware", "{out}");
    let p = a["category"]["confidence"].as_f64().unwrap();
    assert!(p > 0.5 && p <= 1.0, "{out}");
    assert_eq!(a["product_type"]["value"], "home");

    // A broken taxonomy is a 503 that says why, not a silent absence.
    let dir = models_dir_with_taxonomy("[categories]\nshoes = [\"no such class\"]\n");
    let broken = TestServer::with_models(ModelSet::Segmentation, |c| c.models_dir = dir).await;
    let key = broken.admin_key().await;
    let e = expect_error(
        post(
            &client(),
            &broken.url("/v1/attributes"),
            &key,
            json!({"image_base64": photo_b64("coffee.png")}),
        )
        .await,
        503,
        "service_unavailable",
    )
    .await;
    assert!(
        e["message"].as_str().unwrap().contains("no such class"),
        "{e}"
    );
}
