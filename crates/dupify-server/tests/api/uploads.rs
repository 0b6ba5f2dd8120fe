//! `multipart/form-data` on every image-taking endpoint (docs/API.md, "File uploads")
//! and binary PNG cutouts: the same answers, validation, parameter names, cache and
//! metering as JSON bodies.

use dupify_core::{KeyMode, Tier};
use dupify_testkit::*;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

/// A striped product on a light backdrop, so the mask has something to find.
fn photo(seed: u8) -> Vec<u8> {
    let (w, h) = (320u32, 280u32);
    png(&image::RgbImage::from_fn(w, h, |x, y| {
        let (u, v) = (x as f32 / w as f32 - 0.5, y as f32 / h as f32 - 0.55);
        if (u / 0.3).powi(2) + (v / 0.32).powi(2) <= 1.0 {
            if (y / 9) % 3 == 0 {
                image::Rgb([220, 170, 60])
            } else {
                image::Rgb([150, 25u8.wrapping_add(seed), 35])
            }
        } else {
            image::Rgb([236, 236, 232])
        }
    }))
}

fn file(bytes: &[u8]) -> Part {
    Part::bytes(bytes.to_vec())
        .file_name("photo.png")
        .mime_str("image/png")
        .unwrap()
}

async fn send_form(s: &TestServer, key: &str, path: &str, form: Form) -> reqwest::Response {
    client()
        .post(s.url(path))
        .header("X-API-Key", key)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn form_json(s: &TestServer, key: &str, path: &str, form: Form) -> (u16, Value) {
    let r = send_form(s, key, path, form).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// The answer without the fields that differ between two equal requests.
fn comparable(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("cached");
                m.remove("processing_time_ms");
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

/// (path, JSON options, the same options as form fields, calls an uncached answer costs)
type EndpointCase = (&'static str, Value, Vec<(&'static str, &'static str)>, u64);

/// What to check of an error body.
type Check = Box<dyn Fn(Value)>;

async fn used(s: &TestServer, key: &str) -> u64 {
    usage_of(s, key).await["used"].as_u64().unwrap()
}

#[tokio::test]
async fn every_image_endpoint_answers_a_file_as_it_answers_base64() {
    let s = TestServer::with_models(ModelSet::Segmentation, |_| {}).await;
    let acct = s.account(Tier::Pro, None, Some(1000)).await;
    let (key, _) = s.key_with(&acct, "", KeyMode::Live, None).await;
    let img = photo(1);
    let cases: Vec<EndpointCase> = vec![
        (
            "/v1/embed",
            json!({"include_quality": true}),
            vec![("include_quality", "true")],
            1,
        ),
        (
            "/v1/colors",
            json!({"max_colors": 3, "foreground_only": false}),
            vec![("max_colors", "3"), ("foreground_only", "false")],
            1,
        ),
        ("/v1/silhouette", json!({}), vec![], 1),
        ("/v1/attributes", json!({}), vec![], 1),
        (
            "/v1/background-remove",
            json!({"output": "mask", "crop": true}),
            vec![("output", "mask"), ("crop", "true")],
            1,
        ),
        (
            "/v1/batch",
            json!({"operations": ["colors", "quality"], "options": {"colors": {"max_colors": 2}}}),
            vec![
                ("operations", "colors"),
                ("operations", "quality"),
                ("options", r#"{"colors": {"max_colors": 2}}"#),
            ],
            2,
        ),
    ];
    let mut expected_used = 0;
    for (path, options, fields, calls) in cases {
        // The file first: it is computed (and billed) once...
        let mut form = Form::new().part("image", file(&img));
        for (k, v) in &fields {
            form = form.text(k.to_string(), v.to_string());
        }
        let (status, from_file) = form_json(&s, &key, path, form).await;
        assert_eq!(status, 200, "{path}: {from_file}");
        expected_used += calls;
        assert_eq!(used(&s, &key).await, expected_used, "{path}");
        // ...and the same bytes as base64 are the same answer, from the cache, free.
        let mut body = options.clone();
        body["image_base64"] = json!(b64(&img));
        let r = post(&client(), &s.url(path), &key, body).await;
        assert_eq!(r.status(), 200, "{path}");
        let from_json: Value = r.json().await.unwrap();
        assert_eq!(
            comparable(from_file.clone()),
            comparable(from_json.clone()),
            "{path}"
        );
        let cached = if path == "/v1/batch" {
            from_json["results"][0]["colors"]["cached"].clone()
        } else {
            from_json["cached"].clone()
        };
        assert_eq!(cached, true, "{path}: {from_json}");
        assert_eq!(used(&s, &key).await, expected_used, "{path}");
    }

    // Several files are a batch, in order; a file that is not an image fails in its slot.
    let form = Form::new()
        .part("images", file(&photo(2)))
        .part(
            "images",
            Part::bytes(b"plain text, not a picture".to_vec()).file_name("notes.txt"),
        )
        .part("images", file(&photo(3)));
    let (status, v) = form_json(&s, &key, "/v1/colors", form).await;
    assert_eq!(status, 200, "{v}");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(results[0]["colors"].is_array());
    assert_eq!(results[1]["error"]["code"], "unsupported_format");
    assert_eq!(results[1]["error"]["details"]["parameter"], "images[1]");
    assert!(results[2]["colors"].is_array());
    expected_used += 2;
    assert_eq!(used(&s, &key).await, expected_used);
    s.stop().await;
}

#[tokio::test]
async fn form_fields_are_validated_and_named_like_json_fields() {
    let s = TestServer::with_models(ModelSet::Segmentation, |_| {}).await;
    let key = s.admin_key().await;
    let img = photo(4);
    let colors = |fields: &[(&str, &str)]| {
        let mut f = Form::new().part("image", file(&img));
        for (k, v) in fields {
            f = f.text(k.to_string(), v.to_string());
        }
        f
    };
    let invalid = |parameter: &'static str| {
        move |e: Value| assert_eq!(e["details"]["parameter"], parameter, "{e}")
    };
    let cases: Vec<(Form, u16, &str, Check)> = vec![
        (
            colors(&[("max_colors", "40")]),
            400,
            "invalid_parameter",
            Box::new(invalid("max_colors")),
        ),
        (
            colors(&[("max_colors", "many")]),
            400,
            "invalid_parameter",
            Box::new(invalid("max_colors")),
        ),
        (
            colors(&[("max_colors", "3"), ("max_colors", "4")]),
            400,
            "invalid_parameter",
            Box::new(invalid("max_colors")),
        ),
        (
            colors(&[("foreground_only", "yes")]),
            400,
            "invalid_parameter",
            Box::new(invalid("foreground_only")),
        ),
        (
            colors(&[("image_url", "https://example.com/a.jpg")]),
            400,
            "invalid_parameter",
            Box::new(|e: Value| {
                assert!(
                    e["message"].as_str().unwrap().contains("exactly one"),
                    "{e}"
                )
            }),
        ),
        (
            Form::new().part("photo", file(&img)),
            400,
            "invalid_parameter",
            Box::new(invalid("photo")),
        ),
        (
            Form::new()
                .part("image", file(&img))
                .part("image", file(&img)),
            400,
            "invalid_parameter",
            Box::new(invalid("image")),
        ),
        (
            Form::new().text("max_colors", "3"),
            400,
            "missing_parameter",
            Box::new(|e: Value| {
                assert_eq!(e["details"]["parameter"], "image_url");
                assert!(e["details"]["alternatives"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("image")));
            }),
        ),
        (
            Form::new().part("image", Part::bytes(b"not an image at all".to_vec())),
            422,
            "unsupported_format",
            Box::new(invalid("image")),
        ),
        (
            Form::new().part("image", Part::bytes(vec![0x89; 11 * 1024 * 1024])),
            422,
            "image_too_large",
            Box::new(invalid("image")),
        ),
        (
            Form::new().part("image", Part::bytes(vec![0; 17 * 1024 * 1024])),
            413,
            "payload_too_large",
            Box::new(|_| {}),
        ),
        (
            Form::new().part("images", Part::bytes(vec![1, 2, 3]).file_name("a.png")),
            200,
            "",
            Box::new(|_| {}),
        ),
    ];
    let before = used(&s, &key).await;
    for (i, (form, status, code, check)) in cases.into_iter().enumerate() {
        let r = send_form(&s, &key, "/v1/colors", form).await;
        if status == 200 {
            // One bad file of a batch is an error in its slot, not in the request.
            assert_eq!(r.status(), 200, "case {i}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["results"][0]["error"]["code"], "unsupported_format");
            continue;
        }
        check(expect_error(r, status, code).await);
    }
    // A form that is not one, and a JSON body that names a file it cannot have.
    let r = client()
        .post(s.url("/v1/colors"))
        .header("X-API-Key", &key)
        .header("Content-Type", "multipart/form-data; boundary=xyz")
        .body("--xyz\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nabc")
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_error(r, 400, "invalid_parameter").await["details"]["parameter"],
        "body"
    );
    let r = client()
        .post(s.url("/v1/colors"))
        .header("X-API-Key", &key)
        .header("Content-Type", "multipart/form-data")
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_error(r, 400, "invalid_parameter").await["details"]["parameter"],
        "Content-Type"
    );
    expect_invalid(
        &s,
        &key,
        "/v1/colors",
        json!({"image_file": 0}),
        "image_file",
    )
    .await;
    let r = client()
        .post(s.url("/v1/colors"))
        .header("X-API-Key", &key)
        .header("Content-Type", "text/plain")
        .body("abc")
        .send()
        .await
        .unwrap();
    let e = expect_error(r, 400, "invalid_parameter").await;
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("multipart/form-data"));
    // Errors cost nothing.
    assert_eq!(used(&s, &key).await, before);
    s.stop().await;
}

#[tokio::test]
async fn background_remove_answers_the_png_itself_when_asked() {
    let s = TestServer::with_models(ModelSet::Segmentation, |_| {}).await;
    let acct = s.account(Tier::Pro, None, Some(1000)).await;
    let (key, _) = s.key_with(&acct, "", KeyMode::Live, None).await;
    let img = photo(5);

    let r = client()
        .post(s.url("/v1/background-remove"))
        .header("X-API-Key", &key)
        .header("Accept", "image/png")
        .multipart(Form::new().part("image", file(&img)).text("crop", "true"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "image/png");
    assert_eq!(h["x-cached"], "false");
    assert_eq!(h["x-output"], "png");
    assert!(h.contains_key("x-ratelimit-remaining"));
    let header_u32 = |name: &str| h[name].to_str().unwrap().parse::<u32>().unwrap();
    let (w, hgt) = (header_u32("x-image-width"), header_u32("x-image-height"));
    let crop: Vec<u32> = h["x-crop-box"]
        .to_str()
        .unwrap()
        .split(',')
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!((crop[2], crop[3]), (w, hgt));
    assert_eq!(header_u32("x-original-width"), 320);
    let png_bytes = r.bytes().await.unwrap();
    let decoded = image::load_from_memory(&png_bytes).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (w, hgt));
    assert_eq!(decoded.color(), image::ColorType::Rgba8);
    assert_eq!(used(&s, &key).await, 1);

    // The same request as JSON is the same PNG, from the cache; `response=binary` in a
    // JSON body asks for the file too; `Accept: */*` keeps JSON.
    let r = post(
        &client(),
        &s.url("/v1/background-remove"),
        &key,
        json!({"image_base64": b64(&img), "crop": true}),
    )
    .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["cached"], true);
    use base64::Engine as _;
    let from_json = base64::engine::general_purpose::STANDARD
        .decode(v["image_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(from_json, png_bytes.to_vec());
    let r = post(
        &client(),
        &s.url("/v1/background-remove"),
        &key,
        json!({"image_base64": b64(&img), "crop": true, "response": "binary"}),
    )
    .await;
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.headers()["x-cached"], "true");
    assert_eq!(r.bytes().await.unwrap(), png_bytes);
    let r = client()
        .post(s.url("/v1/background-remove"))
        .header("X-API-Key", &key)
        .header("Accept", "*/*")
        .multipart(Form::new().part("image", file(&img)).text("crop", "true"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(used(&s, &key).await, 1);

    // A binary answer holds one image; errors stay JSON envelopes.
    let r = client()
        .post(s.url("/v1/background-remove"))
        .header("X-API-Key", &key)
        .header("Accept", "image/png")
        .multipart(
            Form::new()
                .part("images", file(&img))
                .part("images", file(&photo(6))),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_error(r, 400, "invalid_parameter").await["details"]["parameter"],
        "images"
    );
    let r = client()
        .post(s.url("/v1/background-remove"))
        .header("X-API-Key", &key)
        .header("Accept", "image/png")
        .multipart(Form::new().part("image", Part::bytes(b"not an image".to_vec())))
        .send()
        .await
        .unwrap();
    expect_error(r, 422, "unsupported_format").await;
    expect_invalid(
        &s,
        &key,
        "/v1/background-remove",
        json!({"image_base64": b64(&img), "response": "file"}),
        "response",
    )
    .await;
    assert_eq!(used(&s, &key).await, 1);
    s.stop().await;
}

#[tokio::test]
async fn catalog_upload_and_search_take_a_file() {
    let s = TestServer::with_models(ModelSet::Segmentation, |_| {}).await;
    let acct = s.account(Tier::Pro, None, Some(1000)).await;
    let (key, _) = s.key_with(&acct, "", KeyMode::Live, None).await;
    let img = photo(7);
    let form = Form::new()
        .part("image", file(&img))
        .text("title", "1234")
        .text("price", "19.5")
        .text("currency", "eur")
        .text("metadata", r#"{"season": "summer"}"#);
    let (status, v) = form_json(&s, &key, "/v1/catalog/products", form).await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    // A field of the wrong kind, an unknown field, several products: refused by name.
    for (form, parameter) in [
        (
            Form::new()
                .part("image", file(&img))
                .text("title", "x")
                .text("price", "cheap"),
            "price",
        ),
        (
            Form::new()
                .part("image", file(&img))
                .text("title", "x")
                .text("colour", "red"),
            "colour",
        ),
        (
            Form::new().text("products", r#"[{"title": "x"}]"#),
            "products",
        ),
        (Form::new().part("image", file(&img)), "title"),
    ] {
        let r = send_form(&s, &key, "/v1/catalog/products", form).await;
        let status = r.status().as_u16();
        let e: Value = r.json().await.unwrap();
        assert_eq!(status, 400, "{e}");
        assert_eq!(e["error"]["details"]["parameter"], parameter, "{e}");
    }
    // Ready, with the form's typed fields.
    let mut product = Value::Null;
    for _ in 0..600 {
        let r = client()
            .get(s.url(&format!("/v1/catalog/products/{id}")))
            .header("X-API-Key", &key)
            .send()
            .await
            .unwrap();
        product = r.json().await.unwrap();
        if product["embedding_status"] != "processing" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(product["embedding_status"], "ready", "{product}");
    assert_eq!(product["title"], "1234");
    assert_eq!(product["price"], 19.5);
    assert_eq!(product["currency"], "EUR");
    assert_eq!(product["metadata"], json!({"season": "summer"}));

    let form = Form::new()
        .part("image", file(&img))
        .text("top_k", "5")
        .text("filters", r#"{"currency": "EUR"}"#);
    let (status, v) = form_json(&s, &key, "/v1/catalog/search", form).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["results"][0]["product"]["id"], id.as_str());
    assert!(v["results"][0]["score"].as_f64().unwrap() > 0.99, "{v}");
    let r = send_form(
        &s,
        &key,
        "/v1/catalog/search",
        Form::new()
            .part("image", file(&img))
            .text("product_id", id.clone()),
    )
    .await;
    expect_error(r, 400, "invalid_parameter").await;
    // One upload and one search billed.
    assert_eq!(used(&s, &key).await, 2);
    s.stop().await;
}
