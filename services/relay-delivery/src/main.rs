//! relay-delivery binary: load config, start telemetry, deliver until SIGTERM.

use anyhow::Context;
use clap::Parser;

// Requests and messages make many small, short-lived allocations; mimalloc handles them with
// markedly less CPU than the system allocator (BENCHMARKS.md, "allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use relay_core::config::Config;

/// Signs and sends outbound requests, retrying durably.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Configuration file (default: `relay.toml` when present).
    #[arg(long, env = "RELAY_CONFIG")]
    config: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    relay_telemetry::exit_code("relay-delivery", run().await)
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = Config::load(args.config.as_deref())?;
    config
        .validate_delivery()
        .map_err(|error| anyhow::anyhow!(config.explain(&error)))?;
    let _telemetry = relay_telemetry::init("relay-delivery", &config.telemetry)?;
    if let Some(warning) = config.no_file_warning() {
        tracing::warn!("{warning}");
    }
    let stop = relay_telemetry::shutdown::on_signal();
    let service = relay_delivery::DeliveryService::build(config)
        .await
        .context("starting relay-delivery")?;
    tracing::info!(admin = %service.admin_addr(), "relay-delivery consuming");
    service.run_until_stopped(stop).await?;
    Ok(())
}
