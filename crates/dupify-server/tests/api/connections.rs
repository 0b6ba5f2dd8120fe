//! Connections that stall, idle or announce too much are closed or refused, and the
//! server keeps answering others (docs/API.md, "Connections and timeouts").

use std::time::Duration;

use dupify_core::{KeyMode, Tier};
use dupify_testkit::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous: these bound how long a test may wait, they are not speed goals.
const PATIENCE: Duration = Duration::from_secs(20);

async fn short_timeouts() -> TestServer {
    TestServer::start_with(|c| {
        c.header_read_timeout_secs = 0.5;
        c.body_read_timeout_secs = 0.5;
    })
    .await
}

/// Reads until the server closes the connection; what it sent before closing.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "the server kept the connection open: {:?}",
                String::from_utf8_lossy(&all)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&all).into_owned(),
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn silent_and_half_sent_headers_are_closed() {
    let s = short_timeouts().await;
    let mut silent = TcpStream::connect(s.addr).await.unwrap();
    let mut partial = TcpStream::connect(s.addr).await.unwrap();
    partial
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    assert!(!read_until_closed(&mut silent).await.contains("200 OK"));
    assert!(!read_until_closed(&mut partial).await.contains("200 OK"));
    // Others are still served.
    let res = client().get(s.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_its_answer() {
    let s = short_timeouts().await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let seen = read_until_closed(&mut c).await;
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(seen.contains("\"ok\""), "{seen}");
}

#[tokio::test]
async fn a_half_sent_body_is_refused_in_the_envelope() {
    let s = short_timeouts().await;
    let account = s.account(Tier::Pro, None, None).await;
    let (key, _) = s.key_with(&account, "", KeyMode::Live, None).await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /v1/colors HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"image_"
    );
    c.write_all(head.as_bytes()).await.unwrap();
    let seen = read_until_closed(&mut c).await;
    assert!(seen.starts_with("HTTP/1.1 400"), "{seen}");
    assert!(seen.contains("\"invalid_parameter\""), "{seen}");
    assert!(seen.contains("\"parameter\":\"body\""), "{seen}");
}

#[tokio::test]
async fn a_declared_oversize_body_is_refused_before_it_is_sent() {
    // Default timeouts: the answer must not wait for the body.
    let s = TestServer::start().await;
    let account = s.account(Tier::Pro, None, None).await;
    let (key, _) = s.key_with(&account, "", KeyMode::Live, None).await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /v1/colors HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n"
    );
    c.write_all(head.as_bytes()).await.unwrap();
    let seen = read_until_closed(&mut c).await;
    assert!(seen.starts_with("HTTP/1.1 413"), "{seen}");
    assert!(seen.contains("\"payload_too_large\""), "{seen}");
    assert!(
        seen.to_ascii_lowercase().contains("connection: close"),
        "{seen}"
    );
}

#[tokio::test]
async fn beyond_the_connection_cap_new_connections_are_closed_and_the_cap_frees_up() {
    let s = TestServer::start_with(|c| {
        c.max_connections = 8;
        c.header_read_timeout_secs = 60.0;
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(s.addr).await.unwrap());
    }
    // Give the accept loop time to take all eight.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ninth = TcpStream::connect(s.addr).await.unwrap();
    ninth
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .ok();
    assert!(!read_until_closed(&mut ninth).await.contains("200 OK"));
    drop(idle);
    // Once the idle ones are gone, connections are served again.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(r) = client().get(s.url("/health")).send().await {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cap never freed up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = metrics_text(&s).await;
    assert!(
        metrics.contains("dupify_connections_refused_total"),
        "counted"
    );
}

#[tokio::test]
async fn many_idle_sockets_do_not_stop_the_service() {
    let s = TestServer::start().await;
    let mut idle = Vec::new();
    for _ in 0..500 {
        idle.push(TcpStream::connect(s.addr).await.unwrap());
    }
    let res = tokio::time::timeout(PATIENCE, client().get(s.url("/health")).send())
        .await
        .expect("health answers beside 500 idle sockets")
        .unwrap();
    assert_eq!(res.status(), 200);
}
