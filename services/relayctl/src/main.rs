//! relayctl: the relay operator's command line.
//!
//! `send` posts correctly signed sample callbacks, `sink` runs a local receiver that verifies
//! what delivery sends, `topology` declares the broker topology, `delivery show` prints a job's
//! record and attempts, `dead` lists, shows, replays and purges parked messages, `bench`
//! measures, `verify` explains why a captured request's signature does or does not verify.
//! Every command reads the same configuration as the services (`--config`, `RELAY_CONFIG`,
//! `relay.toml`, `RELAY__…` overrides), secrets included.

#![allow(clippy::print_stdout)]

mod amqp;
mod bench;
mod dead;
mod delivery;
mod destination;
mod send;
mod sink;
mod verify;

use std::process::ExitCode;

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
    /// Print the argon2 hash of a password read from standard input (for Acrobits accounts).
    HashPassword,
    /// What delivery recorded of a job: status and every attempt.
    #[command(subcommand)]
    Delivery(delivery::DeliveryCommand),
    /// List destinations, and enable one that answered 410 Gone (or disable one by hand).
    #[command(subcommand)]
    Destination(destination::DestinationCommand),
    /// Inspect, replay and purge parked messages (`relay.dead.*`, `relay.unrouted`).
    #[command(subcommand)]
    Dead(dead::DeadCommand),
    /// Measure the relay on this machine, beside RabbitMQ's own limit.
    Bench(bench::BenchArgs),
    /// Explain why a captured request's signature does (or does not) verify for a source.
    ///
    /// Exit code 0 when it verifies, 1 when not, 2 on a usage error.
    Verify(verify::VerifyArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // `verify` tells "does not verify" (1) from a usage error (2), as clap's own errors are.
    let usage_error = if matches!(cli.command, Command::Verify(_)) {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    };
    // An operator tool: one clear line with its causes, never a stack trace.
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            usage_error
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::load(cli.config.as_deref())?;
    if std::env::var_os("RUST_LOG").is_some() {
        relay_telemetry::init_for_tests();
    }
    match cli.command {
        Command::Send(args) => send::run(&config, args).await?,
        Command::Sink(args) => sink::run(&config, args).await?,
        Command::Topology => {
            amqp::declare(&config).await?;
            println!("topology declared");
        }
        Command::HashPassword => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(!password.is_empty(), "no password on standard input");
            println!("{}", relay_signing::password::hash_argon2(password)?);
        }
        Command::Delivery(command) => delivery::run(&config, command).await?,
        Command::Destination(command) => destination::run(&config, command).await?,
        Command::Dead(command) => dead::run(&config, command).await?,
        Command::Bench(args) => bench::run(&config, args).await?,
        Command::Verify(args) => return verify::run(&config, args),
    }
    Ok(ExitCode::SUCCESS)
}
