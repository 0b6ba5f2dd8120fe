//! The fetcher against a local server: caps, timeouts, redirects, statuses.

use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use dupify_core::ErrorCode;
use dupify_images::{parse_image_url, FetchPolicy, Fetcher};

async fn server() -> std::net::SocketAddr {
    let app = axum::Router::new()
        .route("/ok", get(|| async { vec![7u8; 1000] }))
        .route("/big", get(|| async { vec![1u8; 5000] }))
        .route(
            "/big-chunked",
            get(|| async {
                let chunks = (0..10).map(|_| Ok::<_, std::io::Error>(vec![2u8; 1000]));
                Body::from_stream(futures::stream::iter(chunks)).into_response()
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route("/r1", get(|| async { Redirect::temporary("/r2") }))
        .route("/r2", get(|| async { Redirect::temporary("/r3") }))
        .route("/r3", get(|| async { Redirect::temporary("/ok") }))
        .route("/r0", get(|| async { Redirect::temporary("/r1") }))
        .route(
            "/teapot",
            get(|| async { (axum::http::StatusCode::IM_A_TEAPOT, "no") }),
        )
        .route("/empty", get(|| async { "" }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    addr
}

fn fetcher() -> Fetcher {
    Fetcher::new(FetchPolicy {
        allow_private_hosts: true,
        max_bytes: 4096,
        total_timeout: Duration::from_millis(700),
        ..FetchPolicy::default()
    })
}

async fn get_code(f: &Fetcher, url: String) -> Result<usize, ErrorCode> {
    let u = parse_image_url(&url, "image_url", f.policy()).map_err(|e| e.code)?;
    f.fetch(&u, "image_url")
        .await
        .map(|b| b.len())
        .map_err(|e| e.code)
}

#[tokio::test]
async fn caps_timeouts_redirects() {
    let a = server().await;
    let f = fetcher();
    let u = |p: &str| format!("http://{a}{p}");
    assert_eq!(get_code(&f, u("/ok")).await, Ok(1000));
    assert_eq!(get_code(&f, u("/big")).await, Err(ErrorCode::ImageTooLarge));
    assert_eq!(
        get_code(&f, u("/big-chunked")).await,
        Err(ErrorCode::ImageTooLarge)
    );
    assert_eq!(
        get_code(&f, u("/slow")).await,
        Err(ErrorCode::ImageFetchFailed)
    );
    // Three redirects are fine, four are not.
    assert_eq!(get_code(&f, u("/r1")).await, Ok(1000));
    assert_eq!(
        get_code(&f, u("/r0")).await,
        Err(ErrorCode::ImageFetchFailed)
    );
    assert_eq!(
        get_code(&f, u("/teapot")).await,
        Err(ErrorCode::ImageFetchFailed)
    );
    assert_eq!(
        get_code(&f, u("/empty")).await,
        Err(ErrorCode::UnsupportedFormat)
    );
    assert_eq!(
        get_code(&f, "http://no-such-host.invalid/x.png".into()).await,
        Err(ErrorCode::ImageFetchFailed)
    );
}

#[tokio::test]
async fn status_is_in_details_and_private_hosts_refused_by_default() {
    let a = server().await;
    let f = fetcher();
    let url = parse_image_url(
        &format!("http://{a}/teapot"),
        "images[2].image_url",
        f.policy(),
    )
    .unwrap();
    let e = f.fetch(&url, "images[2].image_url").await.unwrap_err();
    let d = e.details.unwrap();
    assert_eq!(d["status"], 418);
    assert_eq!(d["parameter"], "images[2].image_url");

    let strict = Fetcher::new(FetchPolicy::default());
    let e = parse_image_url(&format!("http://{a}/ok"), "image_url", strict.policy()).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidImageUrl);
    // Even a URL that skipped validation is refused at connect time.
    let raw = url::Url::parse(&format!("http://{a}/ok")).unwrap();
    assert_eq!(
        strict.fetch(&raw, "image_url").await.unwrap_err().code,
        ErrorCode::InvalidImageUrl
    );
}
