//! The fault suite's tools: a private RabbitMQ cluster, a balancer in front of it, a steady
//! load, a destination the test controls, and the bookkeeping of what was lost.

mod balancer;
mod cluster;
mod load;

pub use balancer::Balancer;
pub use cluster::PrivateCluster;
pub use load::{FaultSink, Load, Outcome, event_id, settle, table};

use std::process::Stdio;

/// Closes every connection the shared broker holds on `vhost` (the relay's, not other
/// tests'): a broker restart as the services see it.
pub async fn close_connections(vhost: &str) -> usize {
    let command = std::env::var("RELAY_RABBITMQCTL").unwrap_or_else(|_| "rabbitmqctl".to_owned());
    let mut words = command.split_whitespace();
    let program = words.next().unwrap_or("rabbitmqctl").to_owned();
    let prefix: Vec<String> = words.map(str::to_owned).collect();
    let run = |args: Vec<String>| {
        let mut command = tokio::process::Command::new(&program);
        command.args(&prefix).args(args).stdin(Stdio::null());
        async move { command.output().await.expect("rabbitmqctl runs") }
    };
    let listed = run([
        "list_connections",
        "pid",
        "vhost",
        "--no-table-headers",
        "-s",
    ]
    .map(str::to_owned)
    .to_vec())
    .await;
    let text = String::from_utf8_lossy(&listed.stdout).into_owned();
    let mut closed = 0;
    for line in text.lines() {
        let mut cols = line.split('\t');
        let (Some(pid), Some(on)) = (cols.next(), cols.next()) else {
            continue;
        };
        if on.trim() == vhost {
            run(vec![
                "close_connection".to_owned(),
                pid.trim().to_owned(),
                "fault injection".to_owned(),
            ])
            .await;
            closed += 1;
        }
    }
    closed
}
