//! Logs, traces, metrics, health and shutdown: what every relay service starts with.
//!
//! [`init`] installs the `tracing` subscriber (JSON or pretty logs), the W3C trace-context
//! propagator and an OpenTelemetry tracer provider (exporting over OTLP/HTTP when an endpoint is
//! configured), and the Prometheus recorder. It returns a [`TelemetryGuard`] that flushes spans
//! when dropped. [`admin`] serves `/livez`, `/readyz` and `/metrics` on the admin port;
//! [`shutdown`] turns SIGTERM/SIGINT into a cancellation token; [`propagation`] carries trace
//! context over HTTP headers; [`throttle`] keeps floods of refusals and outage warnings out of
//! the logs.

pub mod admin;
pub mod catalog;
mod memory;
pub mod propagation;
pub mod readiness;
pub mod shutdown;
pub mod throttle;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use relay_core::config::{LogFormat, TelemetryConfig};
use tracing_subscriber::{
    EnvFilter, Layer, filter::LevelFilter, layer::SubscriberExt, util::SubscriberInitExt,
};

pub use readiness::Readiness;

/// Telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The OTLP exporter could not be built.
    #[error("cannot build the OTLP exporter: {0}")]
    Otlp(#[from] opentelemetry_otlp::ExporterBuildError),
    /// A global subscriber was already installed.
    #[error("a tracing subscriber is already installed: {0}")]
    Subscriber(#[from] tracing_subscriber::util::TryInitError),
    /// The log filter does not parse.
    #[error("invalid telemetry.log_filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
}

/// Flushes and shuts down the tracer provider when dropped.
#[must_use = "dropping the guard flushes and stops trace export"]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "trace provider shutdown failed");
        }
    }
}

/// A service process's exit: success, or one line on standard error saying what went wrong
/// (with its causes, `{:#}`) and exit code 1. Never a backtrace: start-up errors (bad
/// configuration, a port in use) are expected, whatever `RUST_BACKTRACE` says.
pub fn exit_code<E: std::fmt::Display>(
    service: &str,
    result: Result<(), E>,
) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{service}: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Installs logging, tracing and metrics for a service process, and turns transparent huge pages
/// off for it (`memory.rs`: they only inflate its resident memory).
pub fn init(service: &'static str, config: &TelemetryConfig) -> Result<TelemetryGuard, Error> {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .or_else(|| config.otlp_endpoint.clone());
    let provider = tracer_provider(service, endpoint.as_deref())?;
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::try_new(directives)?,
        _ => EnvFilter::try_new(&config.log_filter)?,
    };
    let json = match config.log_format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed()
    } else {
        fmt.boxed()
    };
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel_layer(&provider))
        .try_init()?;
    metrics_handle();
    memory::without_huge_pages();
    if let Some(endpoint) = endpoint {
        tracing::info!(%endpoint, "exporting traces over OTLP/HTTP");
    }
    Ok(TelemetryGuard { provider })
}

/// Idempotent set-up for tests in one process: test-captured logs (`RUST_LOG`, default `warn`),
/// trace propagation without export, and the metrics recorder.
pub fn init_for_tests() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let provider = tracer_provider("relay-test", None).expect("no exporter to build");
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
        let fmt = tracing_subscriber::fmt::layer().with_test_writer();
        let _ = tracing_subscriber::registry()
            .with(fmt.with_filter(filter))
            .with(otel_layer(&provider))
            .try_init();
        metrics_handle();
        // The provider must outlive every test; tests never flush an exporter.
        std::mem::forget(provider);
    });
}

fn tracer_provider(
    service: &'static str,
    endpoint: Option<&str>,
) -> Result<SdkTracerProvider, Error> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let mut builder = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service).build());
    if let Some(endpoint) = endpoint {
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
            .build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(provider)
}

fn otel_layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    // Spans at INFO and above are traced whatever the log filter says, so a quiet log level
    // never breaks trace propagation across services.
    //
    // Per span it keeps only what a trace needs: no busy/idle timings (two clock reads per
    // poll of every instrumented future), no thread name (an allocation per span), and no
    // OpenTelemetry context attached on every enter: the relay reads a span's context from
    // the span itself (`OpenTelemetrySpanExt::context`), never from `Context::current()`.
    // Tracing took 7 % of ingress's CPU with all three (BENCHMARKS.md, "Where ingress spends
    // its CPU").
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("relay"))
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_context_activation(false)
        .with_filter(LevelFilter::INFO)
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may be installed already (embedding process); ours then only
            // renders what it sees, which is nothing, and the embedder's is authoritative.
            if metrics::set_global_recorder(recorder).is_ok() {
                catalog::describe();
            }
            handle
        })
        .clone()
}
