//! `relayctl bench`: measurements on this machine, printed as a Markdown row for BENCHMARKS.md.
//!
//! Speed is proven here, never by timing assertions in tests. Everything targets loopback and
//! stops by itself after a bounded number of requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use relay_core::config::Config;

#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// Signed Voximplant min-balance callbacks (unique ids) against a running relay-ingress:
    /// each request is verified, deduped and confirmed by RabbitMQ before it is answered.
    Ingress(IngressArgs),
}

#[derive(Args)]
pub(crate) struct IngressArgs {
    /// relay-ingress base URL (default: `ingress.public_base_url`).
    #[arg(long)]
    url: Option<String>,
    /// Requests to send (bounded: the run stops by itself).
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

pub(crate) async fn run(config: &Config, command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Ingress(args) => ingress(config, args).await,
    }
}

async fn ingress(config: &Config, args: IngressArgs) -> anyhow::Result<()> {
    if args.requests == 0 || args.concurrency == 0 {
        bail!("--requests and --concurrency must be positive");
    }
    let vox = &config.ingress.voximplant;
    let account = vox
        .accounts
        .first()
        .context("no Voximplant account configured")?;
    let key = account
        .api_key_env
        .require("ingress.voximplant.accounts.api_key_env")?;
    let salt = vox
        .salt_env
        .as_ref()
        .map_or(Ok(""), |s| s.require("ingress.voximplant.salt_env"))?;
    let base = args
        .url
        .clone()
        .unwrap_or_else(|| config.ingress.public_base_url.clone());
    let url = format!("{}/v1/voximplant/callbacks", base.trim_end_matches('/'));

    // Unique callback ids across runs, bodies built before the clock starts.
    let first_id =
        u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0) * 1_000_000;
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..args.requests as u64)
            .map(|i| {
                let v = relay_ingress::voximplant::sample_min_balance(
                    account.account_id,
                    first_id + i,
                    key,
                    salt,
                    0.5,
                    false,
                );
                serde_json::to_vec(&v).expect("json")
            })
            .collect(),
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    // Warm the connections and check the target answers before measuring.
    let probe = client
        .get(format!("{}/livez", base.trim_end_matches('/')))
        .send()
        .await;
    if probe.is_err() {
        bail!("relay-ingress does not answer at {base}");
    }

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let (client, url, bodies, next) =
            (client.clone(), url.clone(), bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut histogram =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            let mut failures = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let sent = Instant::now();
                let result = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                let ok = matches!(&result, Ok(r) if r.status().is_success());
                if let Ok(r) = result {
                    let _ = r.bytes().await;
                }
                histogram.saturating_record(
                    u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX),
                );
                if !ok {
                    failures += 1;
                }
            }
            (histogram, failures)
        }));
    }
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut failures = 0;
    for task in tasks {
        let (h, f) = task.await?;
        histogram.add(h)?;
        failures += f;
    }
    let elapsed = started.elapsed();
    let ms = |q: f64| Duration::from_micros(histogram.value_at_quantile(q)).as_secs_f64() * 1000.0;
    let rate = args.requests as f64 / elapsed.as_secs_f64();
    println!(
        "ingress: {} requests, concurrency {}, {:.2} s, {rate:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms, failures {failures}",
        args.requests,
        args.concurrency,
        elapsed.as_secs_f64(),
        ms(0.5),
        ms(0.99),
        ms(0.999),
        histogram.max() as f64 / 1000.0,
    );
    println!(
        "| ingress | {} | {} | {rate:.0} | {:.2} | {:.2} | {:.2} | {failures} |",
        args.requests,
        args.concurrency,
        ms(0.5),
        ms(0.99),
        ms(0.999)
    );
    if failures > 0 {
        bail!("{failures} request(s) failed");
    }
    Ok(())
}
