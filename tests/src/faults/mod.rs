//! The fault suite's tools: a private RabbitMQ cluster, a balancer in front of it, a steady
//! load, a destination the test controls, and the bookkeeping of what was lost.

mod balancer;
mod cluster;
mod load;

pub use balancer::Balancer;
pub use cluster::PrivateCluster;
pub use load::{FaultSink, Load, Outcome, event_id, settle, table};

use std::process::Stdio;

/// Runs the shared broker's `rabbitmqctl` (`RELAY_RABBITMQCTL` names another command line,
/// e.g. `sudo rabbitmqctl`); returns whether it succeeded and what it printed.
pub async fn rabbitmqctl(args: &[&str]) -> (bool, String) {
    let command = std::env::var("RELAY_RABBITMQCTL").unwrap_or_else(|_| "rabbitmqctl".to_owned());
    let mut words = command.split_whitespace();
    let program = words.next().unwrap_or("rabbitmqctl").to_owned();
    let out = tokio::process::Command::new(program)
        .args(words)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("rabbitmqctl runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Closes every connection the shared broker holds on `vhost` (the relay's, not other
/// tests'): a broker restart as the services see it.
pub async fn close_connections(vhost: &str) -> usize {
    let (_, listed) = rabbitmqctl(&[
        "list_connections",
        "pid",
        "vhost",
        "--no-table-headers",
        "-s",
    ])
    .await;
    let mut closed = 0;
    for line in listed.lines() {
        let mut cols = line.split('\t');
        let (Some(pid), Some(on)) = (cols.next(), cols.next()) else {
            continue;
        };
        if on.trim() == vhost {
            rabbitmqctl(&["close_connection", pid.trim(), "fault injection"]).await;
            closed += 1;
        }
    }
    closed
}
