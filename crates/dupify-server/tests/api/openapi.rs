//! The OpenAPI document and the reference page say what the server does: every
//! documented route is routed, the error codes are the table's, and every documented
//! option of the image endpoints is validated under its documented name.

use dupify_testkit::*;
use serde_json::{json, Value};

async fn document(s: &TestServer) -> Value {
    let res = client()
        .get(s.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    res.json().await.unwrap()
}

#[tokio::test]
async fn the_document_matches_the_router_and_the_error_table() {
    let s = TestServer::start().await;
    let doc = document(&s).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let codes: Vec<&str> = doc["components"]["schemas"]["Error"]["properties"]["error"]
        ["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let table: Vec<&str> = dupify_core::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    assert_eq!(codes, table);

    let paths = doc["paths"].as_object().unwrap();
    let mut documented: Vec<&str> = paths.keys().map(String::as_str).collect();
    documented.sort();
    assert_eq!(
        documented,
        [
            "/docs",
            "/health",
            "/metrics",
            "/ready",
            "/v1/attributes",
            "/v1/background-remove",
            "/v1/batch",
            "/v1/catalog/duplicates",
            "/v1/catalog/products",
            "/v1/catalog/products/{id}",
            "/v1/catalog/search",
            "/v1/colors",
            "/v1/embed",
            "/v1/openapi.json",
            "/v1/silhouette",
            "/v1/usage",
            "/v1/webhooks",
            "/v1/webhooks/{id}",
            "/v1/webhooks/{id}/deliveries",
            "/v1/webhooks/{id}/enable",
            "/v1/webhooks/{id}/rotate-secret",
        ]
    );
    // Every documented operation exists with that method: without a key, protected
    // ones answer 401 (never 404 or 405), public ones answer.
    for (path, methods) in paths {
        for (method, op) in methods.as_object().unwrap() {
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let res = client().request(m, s.url(path)).send().await.unwrap();
            let status = res.status().as_u16();
            let secured = !op["security"].as_array().unwrap().is_empty();
            if secured {
                assert_eq!(status, 401, "{method} {path}");
                for (status, r) in op["responses"].as_object().unwrap() {
                    assert!(r["description"].is_string(), "{path} {status}");
                }
                assert!(op["responses"]["401"].is_object(), "{path} documents 401");
            } else {
                assert_eq!(status, 200, "{method} {path}");
            }
        }
    }
}

#[tokio::test]
async fn the_reference_page_renders_every_route_and_code() {
    let s = TestServer::start().await;
    let res = client().get(s.url("/docs")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = res.text().await.unwrap();
    let doc = document(&s).await;
    for path in doc["paths"].as_object().unwrap().keys() {
        assert!(page.contains(&format!("<code>{path}</code>")), "{path}");
    }
    for c in dupify_core::ErrorCode::ALL {
        assert!(page.contains(c.as_str()), "{}", c.as_str());
    }
    assert!(page.contains("max_colors"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing fetched from elsewhere"
    );
}

/// A value of the wrong kind for a documented option.
fn wrong_value(schema: &Value) -> Value {
    // Optional options are nullable (`["string", "null"]`): the first type is the one.
    let ty = match &schema["type"] {
        Value::Array(ts) => ts.iter().find_map(|t| t.as_str().filter(|t| *t != "null")),
        t => t.as_str(),
    };
    match ty {
        Some("boolean") => json!("yes"),
        Some("integer") => json!("ten"),
        Some("string") => json!(42),
        Some("array") => json!("not a list"),
        Some("object") => json!(7),
        Some("number") => json!("ten"),
        other => panic!("no wrong value for {other:?}"),
    }
}

#[tokio::test]
async fn every_documented_option_is_checked_under_its_name() {
    let s = TestServer::with_models(ModelSet::Segmentation, |_| {}).await;
    let key = s.admin_key().await;
    let doc = document(&s).await;
    let image = distinct_png(5);
    let mut checked = 0;
    for (path, methods) in doc["paths"].as_object().unwrap() {
        let Some(op) = methods.get("post") else {
            continue;
        };
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        // Image endpoints: ImageInput plus options. Catalog query endpoints: their
        // properties, checked next to a well-formed query (the query forms themselves
        // are covered by tests/catalog.rs).
        let (options, base) = match schema["allOf"][1]["properties"].as_object() {
            Some(o) => (o, json!({"image_base64": image})),
            None if path.starts_with("/v1/catalog/") && schema["properties"].is_object() => (
                schema["properties"].as_object().unwrap(),
                if path.ends_with("/search") {
                    json!({"product_id": "00000000-0000-0000-0000-000000000000"})
                } else {
                    json!({})
                },
            ),
            None => continue,
        };
        for (name, schema) in options {
            if ["image_url", "image_base64", "product_id", "text"].contains(&name.as_str())
                && base.get("product_id").is_some()
            {
                continue;
            }
            let mut body = base.clone();
            if path == "/v1/batch" && name != "operations" {
                body["operations"] = json!(["colors"]);
            }
            body[name] = wrong_value(schema);
            let res = post(&client(), &s.url(path), &key, body.clone()).await;
            let e = expect_error(res, 400, "invalid_parameter").await;
            let parameter = e["details"]["parameter"].as_str().unwrap();
            // A wrong text form is reported as the conflicting image form or itself.
            assert!(
                parameter == name || (name.starts_with("text") && parameter == "image_base64"),
                "{path} {name}: {e}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 15, "checked {checked}");
}

/// Every image-taking endpoint documents a multipart form with the JSON body's fields,
/// and each field's documented type is the kind the server reads its text as
/// (`dupify_api::requests::form::field_kind`): the two cannot drift apart.
#[tokio::test]
async fn multipart_forms_are_documented_as_the_server_reads_them() {
    use dupify_api::requests::form::{field_kind, FieldKind, FILE_FIELDS};
    let s = TestServer::start().await;
    let doc = document(&s).await;
    for path in dupify_server::openapi::MULTIPART_PATHS {
        let content = &doc["paths"][path]["post"]["requestBody"]["content"];
        let form = &content["multipart/form-data"];
        let props = form["schema"]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{path} has no multipart form"));
        assert!(props.contains_key("image"), "{path}");
        assert!(content["application/json"].is_object(), "{path}");
        for (name, schema) in props {
            if FILE_FIELDS.contains(&name.as_str()) {
                continue;
            }
            let ty = match &schema["type"] {
                Value::Array(ts) => ts.iter().find(|t| *t != "null").cloned().unwrap(),
                t => t.clone(),
            };
            let expected = match ty.as_str() {
                Some("string") => FieldKind::Text,
                Some("array") => FieldKind::List,
                _ => FieldKind::Json,
            };
            assert_eq!(field_kind(name), expected, "{path} field {name}: {schema}");
            if ty == "object" {
                assert_eq!(
                    form["encoding"][name]["contentType"], "application/json",
                    "{path} {name}"
                );
            }
        }
    }
    let png =
        &doc["paths"]["/v1/background-remove"]["post"]["responses"]["200"]["content"]["image/png"];
    assert!(png.is_object());
    s.stop().await;
}
