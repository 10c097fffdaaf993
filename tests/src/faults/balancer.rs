//! One address in front of several broker nodes, the way a Kubernetes Service fronts a
//! RabbitMQ cluster: each new connection goes to the next node that accepts it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A round-robin TCP balancer on loopback.
pub struct Balancer {
    /// Where clients connect.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Balancer {
    /// Balances over `upstreams`.
    pub async fn start(upstreams: Vec<SocketAddr>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind balancer");
        let addr = listener.local_addr().expect("balancer addr");
        let next = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstreams = upstreams.clone();
                let next = next.clone();
                tokio::spawn(async move {
                    let start = next.fetch_add(1, Ordering::Relaxed);
                    for k in 0..upstreams.len() {
                        let upstream = upstreams[(start + k) % upstreams.len()];
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            return;
                        }
                    }
                });
            }
        });
        Self { addr, task }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
