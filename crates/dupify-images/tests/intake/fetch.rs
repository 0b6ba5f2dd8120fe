//! The fetcher against a local HTTP server: the address policy (literal IPs, names,
//! redirects), caps, timeouts, redirect limits, statuses and error shapes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Query;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use bytes::Bytes;
use dupify_core::{ApiError, ErrorCode};
use dupify_images::{parse_image_url, FetchPolicy, Fetcher};

const CAP: usize = 4096;
const TIMEOUT: Duration = Duration::from_millis(500);

/// A body that sends one byte, then one more every second: slower than any test timeout.
fn trickle() -> Body {
    let s = futures::stream::unfold(0u32, |i| async move {
        if i > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        (i < 10).then(|| (Ok::<_, std::io::Error>(Bytes::from_static(b"x")), i + 1))
    });
    Body::from_stream(s)
}

async fn server() -> SocketAddr {
    let app = axum::Router::new()
        .route("/ok", get(|| async { vec![7u8; 1000] }))
        .route("/exact", get(|| async { vec![1u8; CAP] }))
        .route("/big", get(|| async { vec![1u8; CAP + 1] }))
        .route(
            "/big-chunked",
            get(|| async {
                let chunks = (0..10).map(|_| Ok::<_, std::io::Error>(vec![2u8; 1000]));
                Body::from_stream(futures::stream::iter(chunks)).into_response()
            }),
        )
        .route(
            "/claims-huge",
            get(|| async {
                Response::builder()
                    .header(header::CONTENT_LENGTH, "100000000")
                    .body(trickle())
                    .unwrap()
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route("/slow-body", get(|| async { trickle().into_response() }))
        .route("/r0", get(|| async { Redirect::temporary("/r1") }))
        .route("/r1", get(|| async { Redirect::temporary("/r2") }))
        .route("/r2", get(|| async { Redirect::permanent("/r3") }))
        .route("/r3", get(|| async { Redirect::to("/ok") }))
        .route("/loop", get(|| async { Redirect::temporary("/loop") }))
        .route(
            "/to",
            get(|q: Query<Vec<(String, String)>>| async move {
                let u = q.0.into_iter().find(|(k, _)| k == "u").map(|(_, v)| v);
                Redirect::temporary(&u.unwrap_or_default())
            }),
        )
        .route("/no-location", get(|| async { StatusCode::FOUND }))
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/broken",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route("/empty", get(|| async { "" }))
        .route(
            "/headers",
            get(|h: HeaderMap| async move {
                let get = |k: header::HeaderName| {
                    h.get(k)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_owned()
                };
                format!("{}|{}", get(header::USER_AGENT), get(header::ACCEPT))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn small_policy() -> FetchPolicy {
    FetchPolicy {
        max_bytes: CAP,
        total_timeout: TIMEOUT,
        connect_timeout: TIMEOUT,
        ..FetchPolicy::default()
    }
}

/// Fetches anything, private addresses included (the `allow_private_hosts` test mode).
fn open() -> Fetcher {
    Fetcher::new(FetchPolicy {
        allow_private_hosts: true,
        ..small_policy()
    })
}

/// The production policy, except that exactly the test server's `ip:port` is allowed
/// and `internal.test` is pinned to loopback.
fn strict_but(addr: SocketAddr) -> Fetcher {
    Fetcher::with_static_hosts(
        FetchPolicy {
            allowed_test_addrs: vec![addr],
            ..small_policy()
        },
        [("internal.test".to_owned(), vec![addr.ip()])],
    )
}

async fn fetch(f: &Fetcher, url: &str) -> Result<Bytes, ApiError> {
    let u = parse_image_url(url, "image_url", f.policy())?;
    f.fetch(&u, "image_url").await
}

/// Skips `parse_image_url`: what `fetch` alone enforces.
async fn fetch_unchecked(f: &Fetcher, url: &str) -> Result<Bytes, ApiError> {
    f.fetch(&url::Url::parse(url).unwrap(), "image_url").await
}

fn code<T>(r: Result<T, ApiError>) -> ErrorCode {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.code,
    }
}

fn redirect_to(addr: SocketAddr, target: &str) -> String {
    let mut u = url::Url::parse(&format!("http://{addr}/to")).unwrap();
    u.query_pairs_mut().append_pair("u", target);
    u.into()
}

#[tokio::test]
async fn private_hosts_are_refused_by_default() {
    let addr = server().await;
    let port = addr.port();
    let strict = Fetcher::new(small_policy());
    for url in [
        format!("http://127.0.0.1:{port}/ok"),
        format!("http://[::1]:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/ok"),
        format!("http://2130706433:{port}/ok"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://[fd00:ec2::254]/".to_owned(),
        format!("http://localhost:{port}/ok"),
    ] {
        let e = fetch(&strict, &url).await.expect_err(&url);
        assert_eq!(e.code, ErrorCode::InvalidImageUrl, "{url}");
        assert_eq!(e.status(), 400);
        assert_eq!(e.details.as_ref().unwrap()["parameter"], "image_url");
        assert!(e.message.contains("does not fetch from"), "{}", e.message);
        // Defence in depth: the fetcher refuses even a URL that skipped validation.
        let e = fetch_unchecked(&strict, &url).await.expect_err(&url);
        assert_eq!(e.code, ErrorCode::InvalidImageUrl, "unchecked {url}");
    }
}

#[tokio::test]
async fn names_are_checked_after_resolution() {
    let addr = server().await;
    let port = addr.port();
    // A name that resolves to loopback is refused at connect time, not only `localhost`.
    let strict = Fetcher::with_static_hosts(
        small_policy(),
        [
            ("images.test".to_owned(), vec![addr.ip()]),
            (
                "mixed.test".to_owned(),
                vec!["93.184.216.34".parse().unwrap(), addr.ip()],
            ),
        ],
    );
    for host in ["images.test", "mixed.test", "IMAGES.TEST."] {
        let e = fetch(&strict, &format!("http://{host}:{port}/ok"))
            .await
            .expect_err(host);
        assert_eq!(e.code, ErrorCode::InvalidImageUrl, "{host}: {e}");
        assert!(e.message.contains("private or reserved"), "{}", e.message);
    }
    // The exact-IP exemption covers names too.
    let exempt = Fetcher::with_static_hosts(
        FetchPolicy {
            allowed_private_ips: vec![addr.ip()],
            ..small_policy()
        },
        [("images.test".to_owned(), vec![addr.ip()])],
    );
    let body = fetch(&exempt, &format!("http://images.test:{port}/ok"))
        .await
        .unwrap();
    assert_eq!(body.len(), 1000);
    // Unknown names are a download failure, not a policy refusal.
    let e = fetch(&strict, "http://no-such-host.invalid/x.png")
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ImageFetchFailed);
    assert!(e.message.contains("could not be found"), "{}", e.message);
}

#[tokio::test]
async fn allowed_private_hosts_fetch_normally() {
    let addr = server().await;
    let f = open();
    let body = fetch(&f, &format!("http://{addr}/ok")).await.unwrap();
    assert_eq!(&body[..], &[7u8; 1000][..]);
    let body = fetch(&f, &format!("http://localhost:{}/ok", addr.port()))
        .await
        .unwrap();
    assert_eq!(body.len(), 1000);
    // The exact test address works under the otherwise strict policy.
    let pinned = strict_but(addr);
    assert_eq!(
        fetch(&pinned, &format!("http://{addr}/ok"))
            .await
            .unwrap()
            .len(),
        1000
    );
    // Headers identify the fetcher and ask for images.
    let echo = fetch(&f, &format!("http://{addr}/headers")).await.unwrap();
    let echo = String::from_utf8(echo.to_vec()).unwrap();
    assert!(echo.starts_with("Dupify/"), "{echo}");
    assert!(echo.ends_with("|image/*"), "{echo}");
}

#[tokio::test]
async fn redirects_are_rechecked_against_the_policy() {
    let addr = server().await;
    let f = strict_but(addr);
    // A redirect within the allowed test server is followed.
    let ok = redirect_to(addr, &format!("http://{addr}/ok"));
    assert_eq!(fetch(&f, &ok).await.unwrap().len(), 1000);
    for target in [
        "http://127.0.0.2/ok".to_owned(),
        "http://10.1.2.3/ok".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[::1]/".to_owned(),
        format!("http://127.0.0.1:{}/ok", addr.port().wrapping_add(1).max(1)),
        format!("http://localhost:{}/ok", addr.port()),
        // Pinned to the test server's IP, but names get no port-exact exemption.
        format!("http://internal.test:{}/ok", addr.port()),
        "ftp://example.com/a.png".to_owned(),
        "file:///etc/passwd".to_owned(),
        "http://user:secret@example.com/a.png".to_owned(),
    ] {
        let e = fetch(&f, &redirect_to(addr, &target))
            .await
            .expect_err(&target);
        assert_eq!(e.code, ErrorCode::InvalidImageUrl, "{target}: {e}");
        assert!(e.message.contains("redirected to"), "{}", e.message);
        assert_eq!(e.details.as_ref().unwrap()["parameter"], "image_url");
    }
}

#[tokio::test]
async fn redirect_limits() {
    let addr = server().await;
    let f = open();
    let u = |p: &str| format!("http://{addr}{p}");
    // Three redirects are fine, four are not.
    assert_eq!(fetch(&f, &u("/r1")).await.unwrap().len(), 1000);
    let e = fetch(&f, &u("/r0")).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ImageFetchFailed);
    assert!(e.message.contains("too many redirects"), "{}", e.message);
    assert_eq!(
        code(fetch(&f, &u("/loop")).await),
        ErrorCode::ImageFetchFailed
    );
    let e = fetch(&f, &u("/no-location")).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ImageFetchFailed);
    assert_eq!(e.details.unwrap()["status"], 302);
    // With redirects disabled, even one is too many.
    let none = Fetcher::new(FetchPolicy {
        allow_private_hosts: true,
        max_redirects: 0,
        ..small_policy()
    });
    assert_eq!(
        code(fetch(&none, &u("/r3")).await),
        ErrorCode::ImageFetchFailed
    );
}

#[tokio::test]
async fn error_statuses_are_reported() {
    let addr = server().await;
    let f = open();
    for (path, status) in [("/missing", 404), ("/broken", 500), ("/nope", 404)] {
        let url = parse_image_url(
            &format!("http://{addr}{path}"),
            "images[3].image_url",
            f.policy(),
        )
        .unwrap();
        let e = f.fetch(&url, "images[3].image_url").await.unwrap_err();
        assert_eq!(e.code, ErrorCode::ImageFetchFailed, "{path}");
        assert_eq!(e.status(), 422);
        let d = e.details.as_ref().unwrap();
        assert_eq!(d["status"], status);
        assert_eq!(d["parameter"], "images[3].image_url");
        assert!(
            e.message.contains(&format!("HTTP {status}")),
            "{}",
            e.message
        );
    }
    let e = fetch(&f, &format!("http://{addr}/empty"))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::UnsupportedFormat);
}

#[tokio::test]
async fn body_cap_is_enforced() {
    let addr = server().await;
    let f = open();
    let u = |p: &str| format!("http://{addr}{p}");
    assert_eq!(fetch(&f, &u("/exact")).await.unwrap().len(), CAP);
    for path in ["/big", "/big-chunked"] {
        let e = fetch(&f, &u(path)).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::ImageTooLarge, "{path}");
        assert_eq!(e.details.as_ref().unwrap()["max_bytes"], CAP);
    }
    // A declared length over the cap fails at once, without waiting for the body.
    let t = Instant::now();
    assert_eq!(
        code(fetch(&f, &u("/claims-huge")).await),
        ErrorCode::ImageTooLarge
    );
    assert!(
        t.elapsed() < Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn timeouts_and_connection_failures() {
    let addr = server().await;
    let f = open();
    for path in ["/slow", "/slow-body"] {
        let t = Instant::now();
        let e = fetch(&f, &format!("http://{addr}{path}"))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::ImageFetchFailed, "{path}");
        assert!(e.message.contains("timed out after 500ms"), "{}", e.message);
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t.elapsed()
        );
    }
    // Nothing listens on a port that was just released.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let e = fetch(&f, &format!("http://{closed}/x.png"))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ImageFetchFailed);
    assert!(e.message.contains("connection refused"), "{}", e.message);
    assert!(!e.message.contains("reqwest"), "{}", e.message);
}
