//! Webhooks (docs/API.md, "Webhooks"): endpoints under the URL policy, signed
//! deliveries from the durable outbox, retries through failures and timeouts until the
//! receiver recovers, ordering, secret rotation, auto-disabling, and tenant isolation.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use dupify_api::webhook::verify;
use dupify_core::{KeyMode, Tier};
use dupify_testkit::*;
use serde_json::{json, Value};

/// How the receiver answers.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Ok,
    Fail,
    Hang,
}

#[derive(Clone)]
struct Receiver {
    mode: Arc<Mutex<Mode>>,
    /// Every request that got a 200: (signature header, event id header, body).
    received: Arc<Mutex<Vec<(String, String, Bytes)>>>,
    attempts: Arc<Mutex<usize>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    *r.attempts.lock().unwrap() += 1;
    let mode = *r.mode.lock().unwrap();
    match mode {
        Mode::Fail => StatusCode::INTERNAL_SERVER_ERROR,
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            StatusCode::OK
        }
        Mode::Ok => {
            let h = |n: &str| {
                headers
                    .get(n)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default()
            };
            r.received
                .lock()
                .unwrap()
                .push((h("dupify-signature"), h("dupify-event-id"), body));
            StatusCode::OK
        }
    }
}

/// A loopback receiver; its URL and its controls.
async fn receiver(mode: Mode) -> (String, Receiver) {
    let r = Receiver {
        mode: Arc::new(Mutex::new(mode)),
        received: Arc::default(),
        attempts: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), r)
}

async fn quick_server(disable_after: u32) -> TestServer {
    TestServer::start_with(|c| {
        c.allow_private_image_hosts = true;
        c.webhook_timeout_secs = 1.0;
        c.webhook_retry_base_secs = 0.2;
        c.webhook_retry_max_secs = 0.4;
        c.webhook_disable_after = disable_after;
    })
    .await
}

async fn send(
    s: &TestServer,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client()
        .request(method, s.url(path))
        .header("X-API-Key", key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn create_hook(s: &TestServer, key: &str, url: &str) -> (String, String) {
    let (status, v) = send(
        s,
        key,
        reqwest::Method::POST,
        "/v1/webhooks",
        Some(json!({"url": url, "description": "test"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let secret = v["secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 38,
        "{secret}"
    );
    assert_eq!(v["events"], json!(["product.failed", "product.ready"]));
    (v["id"].as_str().unwrap().to_owned(), secret)
}

async fn upload(s: &TestServer, key: &str, external_id: &str, image_b64: &str) {
    let (status, v) = send(
        s,
        key,
        reqwest::Method::POST,
        "/v1/catalog/products",
        Some(json!({"external_id": external_id, "title": external_id, "image_base64": image_b64})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
}

/// Waits until `f` holds (or fails the test after 60 s).
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn events(r: &Receiver) -> Vec<(String, String, Value)> {
    r.received
        .lock()
        .unwrap()
        .iter()
        .map(|(sig, id, body)| {
            (
                sig.clone(),
                id.clone(),
                serde_json::from_slice(body).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn events_survive_failures_and_timeouts_and_arrive_signed_once_recovered() {
    let s = quick_server(1000).await;
    let key = s.admin_key().await;
    let (url, r) = receiver(Mode::Fail).await;
    let (hook, secret) = create_hook(&s, &key, &url).await;

    upload(&s, &key, "A", &distinct_png(1)).await;
    upload(&s, &key, "B", &distinct_png(2)).await;
    // Base64 of bytes that are no image: accepted, then failed in the background.
    upload(&s, &key, "C", &b64(b"this is not an image")).await;
    let r2 = r.clone();
    eventually("failed attempts", move || *r2.attempts.lock().unwrap() >= 6).await;
    // Timeouts next (the receiver takes 5 s, the server waits 1 s).
    *r.mode.lock().unwrap() = Mode::Hang;
    let (r2, seen) = (r.clone(), *r.attempts.lock().unwrap());
    eventually("timed-out attempts", move || {
        *r2.attempts.lock().unwrap() >= seen + 2
    })
    .await;
    let (_, log) = send(
        &s,
        &key,
        reqwest::Method::GET,
        &format!("/v1/webhooks/{hook}/deliveries"),
        None,
    )
    .await;
    let log = log["data"].as_array().unwrap().clone();
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(log.iter().all(|d| d["status"] == "pending"), "{log:?}");
    assert!(log.iter().any(|d| d["last_status"] == 500), "{log:?}");
    assert!(received_none(&r));

    *r.mode.lock().unwrap() = Mode::Ok;
    let r2 = r.clone();
    eventually("every event", move || events(&r2).len() >= 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = events(&r);
    let now = chrono::Utc::now().timestamp();
    let raw = r.received.lock().unwrap().clone();
    let mut by_product = std::collections::BTreeMap::new();
    for ((sig, id, bytes), (_, _, body)) in raw.iter().zip(&got) {
        // Over the exact bytes received, with the endpoint's secret.
        verify(&secret, sig, bytes, now, 300).expect("signature verifies");
        assert_eq!(&body["id"], id, "the header names the body's event");
        assert_eq!(body["livemode"], true);
        by_product.insert(
            body["data"]["product"]["external_id"]
                .as_str()
                .unwrap()
                .to_owned(),
            body["type"].as_str().unwrap().to_owned(),
        );
    }
    // At least once, and here exactly once each: no event lost, none doubled.
    let ids: std::collections::HashSet<_> = got.iter().map(|(_, id, _)| id.clone()).collect();
    assert_eq!(ids.len(), 3, "{got:?}");
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(by_product["A"], "product.ready");
    assert_eq!(by_product["B"], "product.ready");
    assert_eq!(by_product["C"], "product.failed");
    let (_, log) = send(
        &s,
        &key,
        reqwest::Method::GET,
        &format!("/v1/webhooks/{hook}/deliveries"),
        None,
    )
    .await;
    for d in log["data"].as_array().unwrap() {
        assert_eq!(d["status"], "delivered", "{d}");
        assert_eq!(d["last_status"], 200);
        assert!(d["attempts"].as_u64().unwrap() >= 2, "{d}");
        assert!(d["delivered_at"].is_string());
    }
    s.stop().await;
}

fn received_none(r: &Receiver) -> bool {
    r.received.lock().unwrap().is_empty()
}

#[tokio::test]
async fn a_healthy_endpoint_gets_events_in_order_and_a_rotated_secret_signs_what_follows() {
    let s = quick_server(1000).await;
    let key = s.admin_key().await;
    let (url, r) = receiver(Mode::Ok).await;
    let (hook, old_secret) = create_hook(&s, &key, &url).await;
    for i in 0..4 {
        upload(&s, &key, &format!("P{i}"), &distinct_png(10 + i)).await;
    }
    let r2 = r.clone();
    eventually("four events", move || events(&r2).len() >= 4).await;
    // In the order the outbox holds them (its log is newest first).
    let (_, log) = send(
        &s,
        &key,
        reqwest::Method::GET,
        &format!("/v1/webhooks/{hook}/deliveries"),
        None,
    )
    .await;
    let mut logged: Vec<String> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event_id"].as_str().unwrap().to_owned())
        .collect();
    logged.reverse();
    let arrived: Vec<String> = events(&r).iter().map(|(_, id, _)| id.clone()).collect();
    assert_eq!(arrived, logged);

    let (status, rotated) = send(
        &s,
        &key,
        reqwest::Method::POST,
        &format!("/v1/webhooks/{hook}/rotate-secret"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, old_secret);
    // The secret is never listed.
    let (_, listed) = send(&s, &key, reqwest::Method::GET, "/v1/webhooks", None).await;
    assert!(listed["data"][0].get("secret").is_none(), "{listed}");
    upload(&s, &key, "after-rotation", &distinct_png(99)).await;
    let r2 = r.clone();
    eventually("the fifth event", move || events(&r2).len() >= 5).await;
    let now = chrono::Utc::now().timestamp();
    let raw = r.received.lock().unwrap().clone();
    let (sig, _, body) = raw.last().unwrap();
    assert!(verify(&new_secret, sig, body, now, 300).is_ok());
    assert!(verify(&old_secret, sig, body, now, 300).is_err());
    let (sig0, _, body0) = &raw[0];
    assert!(verify(&old_secret, sig0, body0, now, 300).is_ok());
    s.stop().await;
}

#[tokio::test]
async fn sustained_failures_disable_an_endpoint_until_it_is_enabled_again() {
    let s = quick_server(3).await;
    let key = s.admin_key().await;
    let (url, r) = receiver(Mode::Fail).await;
    let (hook, _) = create_hook(&s, &key, &url).await;
    upload(&s, &key, "X", &distinct_png(3)).await;
    let t = Instant::now();
    loop {
        let (_, e) = send(
            &s,
            &key,
            reqwest::Method::GET,
            &format!("/v1/webhooks/{hook}"),
            None,
        )
        .await;
        if e["enabled"] == false {
            assert_eq!(e["consecutive_failures"], 3, "{e}");
            assert!(e["disabled_reason"].as_str().unwrap().contains("3"), "{e}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "never disabled: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Disabled: nothing more is attempted, the event waits, and new events are still
    // written (they wait too).
    let seen = *r.attempts.lock().unwrap();
    upload(&s, &key, "Y", &distinct_png(4)).await;
    let t = Instant::now();
    loop {
        let path = format!("/v1/webhooks/{hook}/deliveries");
        let (_, log) = send(&s, &key, reqwest::Method::GET, &path, None).await;
        if log["data"].as_array().unwrap().len() == 2 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the new event was not written: {log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(*r.attempts.lock().unwrap(), seen);
    *r.mode.lock().unwrap() = Mode::Ok;
    let (status, e) = send(
        &s,
        &key,
        reqwest::Method::POST,
        &format!("/v1/webhooks/{hook}/enable"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(e["enabled"], true);
    let r2 = r.clone();
    eventually("both waiting events", move || events(&r2).len() == 2).await;
    let products: std::collections::BTreeSet<String> = events(&r)
        .iter()
        .map(|(_, _, b)| {
            b["data"]["product"]["external_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(products, ["X".to_owned(), "Y".to_owned()].into());
    s.stop().await;
}

#[tokio::test]
async fn endpoints_obey_the_url_policy_scopes_and_tenants() {
    let s = TestServer::start().await;
    let admin = s.account(Tier::Unlimited, None, None).await;
    let (key, _) = s.key_with(&admin, "", KeyMode::Live, None).await;
    for (body, parameter) in [
        (json!({"url": "http://127.0.0.1:9/hook"}), "url"),
        (json!({"url": "http://169.254.169.254/latest"}), "url"),
        (json!({"url": "http://10.1.2.3/hook"}), "url"),
        (json!({"url": "ftp://example.com/hook"}), "url"),
        (
            json!({"url": "https://example.com/hook", "events": ["product.deleted"]}),
            "events[0]",
        ),
        (
            json!({"url": "https://example.com/hook", "events": []}),
            "events",
        ),
        (
            json!({"url": "https://example.com/hook", "secret": "mine"}),
            "secret",
        ),
    ] {
        expect_invalid(&s, &key, "/v1/webhooks", body, parameter).await;
    }
    let r = dupify_testkit::post(&client(), &s.url("/v1/webhooks"), &key, json!({})).await;
    assert_eq!(
        expect_error(r, 400, "missing_parameter").await["details"]["parameter"],
        "url"
    );

    let (status, v) = send(&s, &key, reqwest::Method::POST, "/v1/webhooks",
        Some(json!({"url": "https://example.com/hook", "events": ["product.ready", "product.ready"]}))).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["events"], json!(["product.ready"]));
    let id = v["id"].as_str().unwrap().to_owned();

    // Another account, a test key of the same account, and a key without `catalog`.
    let other = s.account(Tier::Pro, None, None).await;
    let (other_key, _) = s.key_with(&other, "", KeyMode::Live, None).await;
    let (test_key, _) = s.key_with(&admin, "", KeyMode::Test, None).await;
    for k in [&other_key, &test_key] {
        for (method, path) in [
            (reqwest::Method::GET, format!("/v1/webhooks/{id}")),
            (reqwest::Method::DELETE, format!("/v1/webhooks/{id}")),
            (
                reqwest::Method::GET,
                format!("/v1/webhooks/{id}/deliveries"),
            ),
            (
                reqwest::Method::POST,
                format!("/v1/webhooks/{id}/rotate-secret"),
            ),
            (reqwest::Method::POST, format!("/v1/webhooks/{id}/enable")),
        ] {
            let r = client()
                .request(method, s.url(&path))
                .header("X-API-Key", k.as_str())
                .send()
                .await
                .unwrap();
            expect_error(r, 404, "not_found").await;
        }
        let (_, listed) = send(&s, k, reqwest::Method::GET, "/v1/webhooks", None).await;
        assert_eq!(listed["data"], json!([]));
    }
    let (colors_key, _) = s.key_with(&admin, "colors", KeyMode::Live, None).await;
    let r = client()
        .get(s.url("/v1/webhooks"))
        .header("X-API-Key", &colors_key)
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "insufficient_scope").await;
    let r = client()
        .get(s.url(&format!("/v1/webhooks/{id}/deliveries?limit=0")))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "invalid_parameter").await;

    // The limit holds under parallel requests: 15 more fit beside this one.
    let tries = (0..20).map(|i| {
        let (s, key) = (&s, &key);
        async move {
            let body = json!({"url": format!("https://example.com/hook/{i}")});
            send(s, key, reqwest::Method::POST, "/v1/webhooks", Some(body)).await
        }
    });
    let answers = futures::future::join_all(tries).await;
    let created = answers.iter().filter(|(st, _)| *st == 201).count();
    let refused: Vec<_> = answers.iter().filter(|(st, _)| *st == 400).collect();
    assert_eq!((created, refused.len()), (15, 5), "{answers:?}");
    assert!(refused
        .iter()
        .all(|(_, v)| v["error"]["details"]["limit"] == 16));
    let (_, listed) = send(&s, &key, reqwest::Method::GET, "/v1/webhooks", None).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 16);

    let (status, _) = send(
        &s,
        &key,
        reqwest::Method::DELETE,
        &format!("/v1/webhooks/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(
        &s,
        &key,
        reqwest::Method::GET,
        &format!("/v1/webhooks/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    s.stop().await;
}
