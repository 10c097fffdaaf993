//! Slow and greedy clients cannot hold the ingress's sockets or memory: a head that trickles in
//! is cut at `header_read_timeout`, a body that stops at `body_read_timeout` (408), an idle
//! kept-alive connection at `keep_alive_timeout`, and connections past `max_connections` wait
//! until one closes.

use std::time::Duration;

use relay_core::config::AcrobitsSource;
use relay_e2e::*;

use crate::raw::{Conn, End, nowhere, post_head};

const CALLBACKS: &str = "/v1/voximplant/callbacks";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_its_head_byte_by_byte_is_disconnected() {
    let mut env = TestEnv::new();
    env.config.ingress.header_read_timeout = Duration::from_millis(300);
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;

    let body = min_balance_body(1);
    let head = post_head(CALLBACKS, body.len(), &[]);
    let mut conn = Conn::open(addr).await;
    // One byte every 50 ms: the whole head would take seconds, many times the timeout.
    let mut pace = tokio::time::interval(Duration::from_millis(50));
    let mut sent = 0;
    while sent < head.len() {
        pace.tick().await;
        if conn.ended_now() || !conn.try_send(&head[sent..=sent]).await {
            break;
        }
        sent += 1;
    }
    assert!(
        sent < head.len(),
        "the server waited for the whole {}-byte head",
        head.len()
    );
    // Cut without an answer (`ended_now` fails the test on any byte): there was no request.
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_mid_body_gets_408_and_is_cut_off() {
    let mut env = TestEnv::new();
    env.config.ingress.body_read_timeout = Duration::from_millis(300);
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;

    let body = min_balance_body(2);
    let mut conn = Conn::open(addr).await;
    conn.send(&post_head(CALLBACKS, body.len(), &[])).await;
    conn.send(&body[..10]).await;
    // ...and nothing more.
    let answer = conn.answer().await;
    assert_eq!(answer.status, 408);
    assert_eq!(
        answer.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(answer.header("connection"), Some("close"));
    assert_eq!(answer.json()["type"], "urn:relay:problem:request-timeout");
    assert_eq!(conn.end().await, End::Eof, "the connection is closed");

    let channel = env.channel().await;
    assert_eq!(
        env.queue_len(&channel, "relay.handler.min-balance-alert")
            .await,
        0
    );
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_on_the_acrobits_route_gets_408_in_the_apps_format() {
    let mut env = TestEnv::new();
    env.config.ingress.body_read_timeout = Duration::from_millis(300);
    env.config.ingress.acrobits = Some(AcrobitsSource::default());
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;

    let mut conn = Conn::open(addr).await;
    conn.send(
        b"POST /v1/acrobits/web-callback HTTP/1.1\r\nhost: relay.test\r\n\
          content-type: application/x-www-form-urlencoded\r\ncontent-length: 80\r\n\r\nu=al",
    )
    .await;
    let answer = conn.answer().await;
    assert_eq!(answer.status, 408);
    assert_eq!(
        answer.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let fields: Vec<(String, String)> = form_urlencoded::parse(&answer.body).into_owned().collect();
    assert!(
        fields.contains(&(
            "type".to_owned(),
            "urn:relay:problem:request-timeout".to_owned()
        )),
        "{fields:?}"
    );
    assert!(fields.iter().any(|(k, v)| k == "message" && !v.is_empty()));
    assert_eq!(conn.end().await, End::Eof);
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout() {
    let mut env = TestEnv::new();
    env.config.ingress.keep_alive_timeout = Duration::from_millis(300);
    // Far longer: what closes the connection is the keep-alive timeout, not this one.
    env.config.ingress.header_read_timeout = Duration::from_secs(60);
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;

    let mut conn = Conn::open(addr).await;
    let body = min_balance_body(3);
    conn.send(&post_head(CALLBACKS, body.len(), &[])).await;
    conn.send(&body).await;
    let answer = conn.answer().await;
    assert_eq!(answer.status, 200);
    assert_ne!(answer.header("connection"), Some("close"), "kept alive");
    assert_eq!(conn.end().await, End::Eof, "closed cleanly once idle");
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let mut env = TestEnv::new();
    env.config.ingress.max_connections = 1;
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;

    // The one connection allowed, kept alive.
    let mut first = Conn::open(addr).await;
    first.send(&nowhere()).await;
    assert_eq!(first.answer().await.status, 404);
    // A second client connects (the kernel's backlog takes it) and asks.
    let mut second = Conn::open(addr).await;
    second.send(&nowhere()).await;
    let waiting = tokio::spawn(async move { second.answer().await.status });
    // Many round trips on the first connection: uncapped, the second would have been answered
    // long before the last of them.
    for _ in 0..50 {
        first.send(&nowhere()).await;
        assert_eq!(first.answer().await.status, 404);
    }
    assert!(
        !waiting.is_finished(),
        "the second connection was served beside the first"
    );
    drop(first);
    assert_eq!(
        tokio::time::timeout(crate::raw::DEADLINE, waiting)
            .await
            .expect("served once the first closed")
            .unwrap(),
        404
    );
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_max_in_flight_wait_their_turn_with_their_body_unread() {
    let mut env = TestEnv::new();
    env.config.ingress.max_in_flight = 1;
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;

    // The one request allowed in flight: its head and half its body, the rest held back.
    let body = min_balance_body(7);
    let mut first = Conn::open(addr).await;
    first.send(&post_head(CALLBACKS, body.len(), &[])).await;
    first.send(&body[..10]).await;
    // A second client's whole request waits for the first to finish.
    let mut second = Conn::open(addr).await;
    second.send(&nowhere()).await;
    let mut waiting = tokio::spawn(async move { second.answer().await.status });
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut waiting)
            .await
            .is_err(),
        "answered while the only request in flight was still reading its body"
    );
    first.send(&body[10..]).await;
    assert_eq!(first.answer().await.status, 200);
    assert_eq!(waiting.await.unwrap(), 404, "its turn came");
    ingress.stop().await;
}
