//! relay-console binary: load config, start telemetry, serve the console until SIGTERM.

use anyhow::Context;
use clap::Parser;
use relay_core::config::Config;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The operator console: calls, deliveries, parked messages, destinations and alerts.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Configuration file (default: `relay.toml` when present).
    #[arg(long, env = "RELAY_CONFIG")]
    config: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    relay_telemetry::exit_code("relay-console", run().await)
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = Config::load(args.config.as_deref())?;
    config
        .validate_console()
        .map_err(|error| anyhow::anyhow!(config.explain(&error)))?;
    let _telemetry = relay_telemetry::init("relay-console", &config.telemetry)?;
    if let Some(warning) = config.no_file_warning() {
        tracing::warn!("{warning}");
    }
    let stop = relay_telemetry::shutdown::on_signal();
    let console = relay_console::Console::build(config)
        .await
        .context("starting relay-console")?;
    tracing::info!(url = %format!("http://{}/", console.local_addr()), "relay-console serving");
    console.run_until_stopped(stop).await
}
