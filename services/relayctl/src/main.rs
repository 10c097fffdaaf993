//! relayctl: the relay operator's command line.
//!
//! `send` posts correctly signed sample callbacks, `sink` runs a local receiver that verifies
//! what delivery sends, `topology` declares the broker topology, `dead` lists and replays dead
//! letters, `bench` measures. Every command reads the same configuration as the services
//! (`--config`, `RELAY_CONFIG`, `relay.toml`, `RELAY__…` overrides), secrets included.

#![allow(clippy::print_stdout)]

mod bench;
mod dead;
mod send;
mod sink;

use clap::{Parser, Subcommand};
use relay_core::config::Config;

/// The relay operator's command line.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (default: `relay.toml` when present).
    #[arg(long, global = true, env = "RELAY_CONFIG")]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Post a correctly signed sample callback to a running relay-ingress.
    Send(send::SendArgs),
    /// Run a local receiver that verifies and prints what delivery sends.
    Sink(sink::SinkArgs),
    /// Declare the RabbitMQ topology (idempotent).
    Topology,
    /// Inspect and replay dead letters.
    #[command(subcommand)]
    Dead(dead::DeadCommand),
    /// Measure the relay on this machine, beside RabbitMQ's own limit.
    Bench(bench::BenchArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    if std::env::var_os("RUST_LOG").is_some() {
        relay_telemetry::init_for_tests();
    }
    match cli.command {
        Command::Send(args) => send::run(&config, args).await,
        Command::Sink(args) => sink::run(&config, args).await,
        Command::Topology => {
            let channel = dead::channel(&config).await?;
            relay_amqp::Topology::from_config(&config.amqp)
                .declare(&channel)
                .await?;
            println!("topology declared");
            Ok(())
        }
        Command::Dead(command) => dead::run(&config, command).await,
        Command::Bench(args) => bench::run(&config, args).await,
    }
}
