//! Rate limits, monthly quota, cache accounting — exact under concurrency and durable
//! across a restart.

use std::time::{Duration, Instant};

use dupify_core::{KeyMode, Tier};
use dupify_store::prelude::*;
use dupify_testkit::*;
use serde_json::{json, Value};

fn header_u64(res: &reqwest::Response, name: &str) -> Option<u64> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limit_is_exact_under_concurrency() {
    let s = TestServer::start().await;
    let account = s.account(Tier::Free, None, None).await; // 10 / minute
    let (key, _) = s.key_with(&account, "", KeyMode::Test, None).await; // test key: no quota
    let bodies = (0..30)
        .map(|i| json!({"image_base64": distinct_png(1000 + i)}))
        .collect();
    let mut ok = 0;
    let mut limited = 0;
    for res in parallel_colors(&s, &key, bodies).await {
        assert_eq!(header_u64(&res, "x-ratelimit-limit"), Some(10));
        assert!(header_u64(&res, "x-ratelimit-reset").is_some());
        assert!(header_u64(&res, "x-monthly-limit").is_some());
        match res.status().as_u16() {
            200 => ok += 1,
            429 => {
                let ra = header_u64(&res, "retry-after").unwrap();
                assert!(ra >= 1);
                assert_eq!(header_u64(&res, "x-ratelimit-remaining"), Some(0));
                let e = expect_error(res, 429, "rate_limit_exceeded").await;
                assert_eq!(e["retry_after"].as_u64(), Some(ra));
                limited += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((ok, limited), (10, 20));
    // Test keys never consume quota.
    let usage = usage_of(&s, &key).await;
    // (/v1/usage itself is throttled now: it answers 429, which is the point.)
    assert_eq!(usage["error"]["code"], "rate_limit_exceeded");
    assert_eq!(
        s.store
            .period_usage(
                &account.id,
                &dupify_core::BillingPeriod::containing(account.billing_anchor, chrono::Utc::now())
                    .key()
            )
            .await
            .unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_is_exact_under_concurrency_and_survives_restart() {
    let s = TestServer::start().await;
    let account = s.account(Tier::Starter, Some(5), Some(1000)).await;
    let (key, key_id) = s.key_with(&account, "", KeyMode::Live, None).await;
    let bodies = (0..20)
        .map(|i| json!({"image_base64": distinct_png(2000 + i)}))
        .collect();
    let mut ok = 0;
    let mut over = 0;
    for res in parallel_colors(&s, &key, bodies).await {
        assert_eq!(header_u64(&res, "x-monthly-limit"), Some(5));
        match res.status().as_u16() {
            200 => ok += 1,
            403 => {
                assert_eq!(header_u64(&res, "x-monthly-remaining"), Some(0));
                let e = expect_error(res, 403, "quota_exceeded").await;
                assert_eq!(e["limit"], 5);
                assert_eq!(e["current_usage"], 5);
                let resets = e["resets_at"].as_str().unwrap();
                assert!(chrono::DateTime::parse_from_rfc3339(resets).unwrap() > chrono::Utc::now());
                over += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((ok, over), (5, 15));

    let u = usage_of(&s, &key).await;
    assert_eq!(u["used"], 5);
    assert_eq!(u["remaining"], 0);
    assert_eq!(u["monthly_limit"], 5);
    let per_key = u["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == key_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(per_key["calls"], 5);
    assert_eq!(u["days"][0]["calls"], 5);

    // Restart on the same data dir: the usage is still there and still enforced.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, |_| {}).await;
    let u = usage_of(&s, &key).await;
    assert_eq!(u["used"], 5);
    let res = post(
        &client(),
        &s.url("/v1/colors"),
        &key,
        json!({"image_base64": distinct_png(2999)}),
    )
    .await;
    expect_error(res, 403, "quota_exceeded").await;
}

#[tokio::test]
async fn errors_and_cache_hits_cost_no_quota() {
    let s = TestServer::start().await;
    // 10/min refills one unit every 6 s, so "a hit leaves the rate untouched" is not
    // blurred by a refill on a loaded machine (at 1000/min one came every 60 ms).
    let account = s.account(Tier::Free, Some(3), Some(10)).await;
    let (key, _) = s.key_with(&account, "", KeyMode::Live, None).await;
    let img = distinct_png(7);

    // Errors consume no quota.
    for _ in 0..5 {
        let res = colors_of(&s, &key, &b64(b"GIF89a broken")).await;
        assert_eq!(res.status(), 422);
        assert_eq!(header_u64(&res, "x-monthly-remaining"), Some(3));
    }
    let first = colors_of(&s, &key, &img).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header_u64(&first, "x-monthly-remaining"), Some(2));
    let rate_after_first = header_u64(&first, "x-ratelimit-remaining").unwrap();
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["cached"], false);

    // The same image again: cached, free of quota and of rate limit.
    for _ in 0..3 {
        let res = colors_of(&s, &key, &img).await;
        assert_eq!(res.status(), 200);
        assert_eq!(header_u64(&res, "x-monthly-remaining"), Some(2));
        assert_eq!(
            header_u64(&res, "x-ratelimit-remaining"),
            Some(rate_after_first)
        );
        let b: Value = res.json().await.unwrap();
        assert_eq!(b["cached"], true);
        assert_eq!(b["colors"], body["colors"]);
    }
    // Different options are a different result.
    let res = post(
        &client(),
        &s.url("/v1/colors"),
        &key,
        json!({"image_base64": img, "max_colors": 2}),
    )
    .await;
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["cached"], false);
}

#[tokio::test]
async fn bad_requests_are_still_rate_limited() {
    let s = TestServer::start().await;
    let account = s.account(Tier::Free, None, Some(3)).await;
    let (key, _) = s.key_with(&account, "", KeyMode::Live, None).await;
    let c = client();
    for _ in 0..3 {
        let res = post(&c, &s.url("/v1/colors"), &key, json!({})).await;
        assert_eq!(res.status(), 400);
    }
    let res = post(&c, &s.url("/v1/colors"), &key, json!({})).await;
    expect_error(res, 429, "rate_limit_exceeded").await;
}

/// A client following the seed's retry strategy: wait `Retry-After` on 429, back off
/// exponentially on 5xx, never retry other 4xx.
async fn retrying_post(
    c: &reqwest::Client,
    url: &str,
    key: &str,
    body: &Value,
    max_retries: u32,
) -> (reqwest::Response, Vec<Duration>) {
    let mut waits = Vec::new();
    let mut attempt = 0;
    loop {
        let res = post(c, url, key, body.clone()).await;
        let status = res.status().as_u16();
        let retryable = status == 429 || status >= 500;
        if !retryable || attempt >= max_retries {
            return (res, waits);
        }
        let wait = match res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        {
            Some(secs) => Duration::from_secs(secs),
            None => Duration::from_millis(100 * 2u64.pow(attempt)),
        };
        waits.push(wait);
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

#[tokio::test]
async fn retrying_client_waits_as_advertised() {
    let s = TestServer::start().await;
    // 60/minute: a burst of 60, then one per second.
    let account = s.account(Tier::Starter, None, Some(60)).await;
    let (key, _) = s.key_with(&account, "", KeyMode::Test, None).await;
    let c = client();
    let url = s.url("/v1/colors");
    // Exhaust the burst with cheap requests (bad requests count too).
    let mut n = 0;
    loop {
        let res = post(&c, &url, &key, json!({})).await;
        n += 1;
        if res.status() == 429 {
            break;
        }
        assert!(n <= 61, "never throttled");
    }
    // Throttled first (one advertised wait), then the 400 is final: never retried.
    let (res, waits) = retrying_post(&c, &url, &key, &json!({"image_base64": "%%%"}), 3).await;
    assert_eq!(waits, vec![Duration::from_secs(1)]);
    expect_error(res, 400, "invalid_base64").await;

    // Right after being throttled, a retrying client gets a 429, waits what it was told, then succeeds.
    let mut n = 0;
    loop {
        let res = post(&c, &url, &key, json!({})).await;
        n += 1;
        if res.status() == 429 {
            break;
        }
        assert!(n <= 5);
    }
    let body = json!({"image_base64": distinct_png(4242)});
    let t0 = Instant::now();
    let (res, waits) = retrying_post(&c, &url, &key, &body, 3).await;
    let elapsed = t0.elapsed();
    assert_eq!(res.status(), 200, "waits {waits:?}");
    assert_eq!(waits, vec![Duration::from_secs(1)]);
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_millis(1900),
        "{elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overload_answers_503_and_costs_no_quota() {
    // One worker and no waiting room: concurrent uncached work beyond one job is refused.
    let s = TestServer::start_with(|c| {
        c.cpu_workers = 1;
        c.cpu_queue_limit = 0;
    })
    .await;
    let account = s.account(Tier::Pro, None, None).await;
    let (key, _) = s.key_with(&account, "", KeyMode::Live, None).await;
    // Big enough that decoding takes a while.
    let img = image::RgbImage::from_fn(1600, 1200, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x * y) % 239) as u8])
    });
    let jpegs: Vec<String> = (0..8)
        .map(|i| {
            let mut im = img.clone();
            // A bold block per image, so no two JPEGs come out identical (and cached).
            for y in 0..32 {
                for x in 0..32 {
                    im.put_pixel(x + 40 * i, y, image::Rgb([255, (i * 30) as u8, 0]));
                }
            }
            b64(&encode(&im, image::ImageFormat::Jpeg))
        })
        .collect();
    let bodies = jpegs
        .into_iter()
        .map(|j| json!({"image_base64": j}))
        .collect();
    let (mut ok, mut busy) = (0u64, 0u64);
    for res in parallel_colors(&s, &key, bodies).await {
        match res.status().as_u16() {
            200 => ok += 1,
            503 => {
                // Estimated from the queue ahead and the measured service time.
                let wait: u64 = res.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=300).contains(&wait), "{wait}");
                expect_error(res, 503, "service_unavailable").await;
                busy += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(ok >= 1 && busy >= 1, "ok {ok} busy {busy}");
    let period =
        dupify_core::BillingPeriod::containing(account.billing_anchor, chrono::Utc::now()).key();
    assert_eq!(
        s.store.period_usage(&account.id, &period).await.unwrap(),
        ok,
        "only successes are billed"
    );
}

/// Distinct 1600×1200 JPEGs, slow enough to decode that a batch of them is still being
/// worked on when the test drops it.
fn slow_jpegs(n: u32, seed: u32) -> Vec<String> {
    let img = image::RgbImage::from_fn(1600, 1200, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x * y) % 239) as u8])
    });
    (0..n)
        .map(|i| {
            let mut im = img.clone();
            for y in 0..32 {
                for x in 0..32 {
                    im.put_pixel(x + 40 * i, y, image::Rgb([255, seed as u8, (i * 20) as u8]));
                }
            }
            b64(&encode(&im, image::ImageFormat::Jpeg))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_dropped_before_its_answer_costs_no_quota() {
    // One CPU slot: ten big images take a while, so the request is dropped mid-work.
    let s = TestServer::start_with(|c| c.cpu_workers = 1).await;
    let account = s.account(Tier::Pro, None, None).await;
    let (key, _) = s.key_with(&account, "", KeyMode::Live, None).await;
    let period =
        dupify_core::BillingPeriod::containing(account.billing_anchor, chrono::Utc::now()).key();
    let images: Vec<Value> = slow_jpegs(10, 1)
        .into_iter()
        .map(|j| json!({"image_base64": j}))
        .collect();
    let body = json!({"images": images, "max_colors": 3});

    let url = s.url("/v1/colors");
    let (k, b) = (key.clone(), body.clone());
    let request = tokio::spawn(async move { post(&client(), &url, &k, b).await });
    // The ten units are reserved while the images are being worked on ...
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.store.period_usage(&account.id, &period).await.unwrap() < 10 {
        assert!(
            !request.is_finished(),
            "answered before it could be dropped"
        );
        assert!(Instant::now() < deadline, "the units were never reserved");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // ... then the client goes away (its connection is closed).
    request.abort();
    assert!(request.await.unwrap_err().is_cancelled());

    // Nothing reached the client, so nothing is billed: the reservation is given back.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.store.period_usage(&account.id, &period).await.unwrap() != 0 {
        assert!(
            Instant::now() < deadline,
            "the dropped request kept its units"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = metrics_text(&s).await;
    assert!(
        metrics.contains("dupify_requests_abandoned_total 1"),
        "the abandoned request is counted"
    );

    // The same batch answered in full costs exactly the results it returns, and the
    // usage report adds up: used = the sum of the days' calls.
    let res = post(&client(), &s.url("/v1/colors"), &key, body).await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    let returned = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["cached"] == false)
        .count() as u64;
    let u = usage_of(&s, &key).await;
    assert_eq!(u["used"], returned);
    let days: u64 = u["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["calls"].as_u64().unwrap())
        .sum();
    assert_eq!(days, returned);
}

#[tokio::test]
async fn the_same_image_twice_in_one_request_is_computed_and_billed_once() {
    let s = TestServer::start().await;
    let account = s.account(Tier::Pro, None, None).await;
    let (key, _) = s.key_with(&account, "", KeyMode::Live, None).await;
    let (a, b) = (distinct_png(7001), distinct_png(7002));
    let res = post(
        &client(),
        &s.url("/v1/colors"),
        &key,
        json!({"images": [{"image_base64": a}, {"image_base64": a}, {"image_base64": b}]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    let r = v["results"].as_array().unwrap();
    assert_eq!(r.len(), 3);
    assert_eq!(r[0]["cached"], false);
    assert_eq!(r[1]["cached"], true, "the copy is answered from the first");
    assert_eq!(r[1]["colors"], r[0]["colors"]);
    assert_eq!(r[2]["cached"], false);
    assert_eq!(usage_of(&s, &key).await["used"], 2);
}
