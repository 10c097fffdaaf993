//! SIGTERM drains the ingress: new connections are refused, a request in flight finishes with
//! its answer, idle kept-alive connections are closed cleanly (EOF, not a reset), and what is
//! still open when the grace ends is closed rather than left behind a stopped service.

use std::net::SocketAddr;
use std::time::Duration;

use relay_e2e::*;

use crate::raw::{Conn, DEADLINE, End, post_head};

const CALLBACKS: &str = "/v1/voximplant/callbacks";

/// Waits until the admin port says the service is draining (`/readyz` no longer 200).
async fn wait_draining(admin: SocketAddr) {
    let url = format!("http://{admin}/readyz");
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match client.get(&url).send().await {
            Ok(r) if r.status() == 200 => {}
            _ => return,
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never started draining"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_request_in_flight_and_closes_idle_connections_cleanly() {
    let mut env = TestEnv::new();
    // Long enough that nothing here ends for lack of time.
    env.config.ingress.shutdown_grace = Duration::from_secs(10);
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;

    // An idle kept-alive connection: one request answered, then nothing.
    let mut idle = Conn::open(addr).await;
    let first = min_balance_body(10);
    idle.send(&post_head(CALLBACKS, first.len(), &[])).await;
    idle.send(&first).await;
    assert_eq!(idle.answer().await.status, 200);

    // A request in flight: its head is in, and the handler is waiting for its body (hyper says
    // "100 Continue" when the handler starts reading it).
    let mut in_flight = Conn::open(addr).await;
    let body = min_balance_body(11);
    in_flight
        .send(&post_head(CALLBACKS, body.len(), &["expect: 100-continue"]))
        .await;
    assert_eq!(in_flight.answer().await.status, 100);

    let admin = ingress.admin;
    let stopping = tokio::spawn(ingress.stop());
    wait_draining(admin).await;

    // The idle connection is closed, cleanly.
    assert_eq!(idle.end().await, End::Eof);
    // New clients are refused.
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
    // The request in flight completes with its answer, then its connection closes.
    in_flight.send(&body).await;
    let answer = in_flight.answer().await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["accepted"], 1);
    assert_eq!(answer.header("connection"), Some("close"));
    assert_eq!(in_flight.end().await, End::Eof);

    tokio::time::timeout(DEADLINE, stopping)
        .await
        .expect("the ingress stops once drained")
        .unwrap();
    let channel = env.channel().await;
    assert_eq!(
        env.queue_len(&channel, "relay.handler.min-balance-alert")
            .await,
        2,
        "both callbacks were published"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_still_busy_when_the_grace_ends_is_closed_and_the_ingress_stops() {
    let mut env = TestEnv::new();
    env.config.ingress.shutdown_grace = Duration::from_millis(500);
    // Far longer than the grace: only the drain's deadline can end this request.
    env.config.ingress.body_read_timeout = Duration::from_secs(60);
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;

    // A client whose body never comes.
    let mut stuck = Conn::open(addr).await;
    stuck
        .send(&post_head(CALLBACKS, 100, &["expect: 100-continue"]))
        .await;
    assert_eq!(stuck.answer().await.status, 100);

    tokio::time::timeout(DEADLINE, ingress.stop())
        .await
        .expect("the ingress stops after its grace");
    // Not left open behind a stopped service: the connection is closed.
    let end = stuck.end().await;
    assert!(matches!(end, End::Eof | End::Reset), "{end:?}");
}
