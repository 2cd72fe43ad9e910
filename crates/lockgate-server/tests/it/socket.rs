//! The server on a real socket: a connection that sends nothing, half a request's
//! headers, or half its body is closed after the request timeout (not minutes later);
//! a body trickled too slowly to average the minimum rate is cut off after the grace;
//! whole requests are answered; stopping ends the server.

use crate::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Connects, sends `bytes`, then reads until the server closes the connection: what
/// came back and how long the server took to close it.
async fn until_closed(addr: std::net::SocketAddr, bytes: &[u8]) -> (Vec<u8>, Duration) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    s.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server kept the connection open for 20 s after {:?}",
        String::from_utf8_lossy(bytes)
    );
    (got, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_requests_are_closed_after_the_request_timeout() {
    let demo = Demo::new().await;
    let mut cfg = demo.cfg.clone();
    cfg.request_timeout = Duration::from_secs(1);
    let served = Served::start(cfg).await;
    let addr = served.addr;
    let host = format!("Host: {addr}\r\n");
    let quick = |d: Duration| d >= Duration::from_millis(900) && d < Duration::from_secs(6);

    // Nothing at all.
    let (got, took) = until_closed(addr, b"").await;
    assert!(quick(took), "an idle connection stayed {took:?}");
    assert!(!String::from_utf8_lossy(&got).contains("200 OK"));
    // Half the headers.
    let (got, took) = until_closed(addr, format!("GET /api/jobs HTTP/1.1\r\n{host}").as_bytes()).await;
    assert!(quick(took), "half the headers held the connection {took:?}");
    assert!(!String::from_utf8_lossy(&got).contains("200 OK"));
    // The headers, then half the body: refused, and the connection closed.
    let (got, took) = until_closed(
        addr,
        format!(
            "POST /migrations/run HTTP/1.1\r\n{host}Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 100\r\n\r\ncsrf=abc"
        )
        .as_bytes(),
    )
    .await;
    let text = String::from_utf8_lossy(&got);
    assert!(quick(took), "half the body held the connection {took:?}: {text}");
    assert!(text.starts_with("HTTP/1.1 4"), "{text}");
    // A whole request is answered; the kept-alive connection is closed once idle.
    let (got, took) = until_closed(addr, format!("GET /api/jobs HTTP/1.1\r\n{host}\r\n").as_bytes()).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK") && text.ends_with("[]"), "{text}");
    assert!(quick(took), "{took:?}");
    // A slow but steady upload is not cut off: each piece comes within the timeout.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = "csrf=abc&dry_run=true";
    s.write_all(
        format!(
            "POST /migrations/run HTTP/1.1\r\n{host}Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    for piece in body.as_bytes().chunks(7) {
        tokio::time::sleep(Duration::from_millis(600)).await;
        s.write_all(piece).await.unwrap();
    }
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    // The whole form arrived: its (wrong) token is what is refused.
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("security token"), "{answer}");

    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickled_under_the_minimum_rate_is_cut_off_after_the_grace() {
    let demo = Demo::new().await;
    let mut cfg = demo.cfg.clone();
    cfg.request_timeout = Duration::from_secs(2);
    cfg.body_grace = Duration::from_secs(3);
    let served = Served::start(cfg).await;
    let addr = served.addr;
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = s.into_split();
    let started = Instant::now();
    write
        .write_all(
            format!(
                "POST /migrations/run HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: 100000\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // A byte every 500 ms: never idle for the request timeout, for ever if allowed.
    let trickle = tokio::spawn(async move {
        for _ in 0..60 {
            if write.write_all(b"a").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let mut got = Vec::new();
    let read_all = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 4096];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let took = started.elapsed();
    trickle.abort();
    assert!(read_all.is_ok(), "a trickled body held the connection for 20 s");
    let text = String::from_utf8_lossy(&got);
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(8),
        "cut off after the grace of 3 s, not {took:?}: {text}"
    );
    assert!(text.starts_with("HTTP/1.1 4"), "{text}");

    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let demo = Demo::new().await;
    let mut cfg = demo.cfg.clone();
    cfg.request_timeout = Duration::from_secs(2);
    cfg.max_connections = 1;
    let served = Served::start(cfg).await;
    let addr = served.addr;
    // The first connection sends nothing: it holds the only slot until the header
    // read timeout closes it.
    let _idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (got, took) = until_closed(
        addr,
        format!("GET /api/jobs HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 200 OK"),
        "answered once the slot is free: {text}"
    );
    assert!(
        took >= Duration::from_millis(1500),
        "answered after {took:?}, before the first connection let go of the only slot"
    );

    served.stop().await;
}
