//! OpenTelemetry export: the three services, as processes of their own, export over OTLP/HTTP
//! to a receiver in the test, and one callback makes one trace across them: every span of it
//! hangs from the caller's `traceparent` or from another span of the trace.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use relay_e2e::*;

const WAIT: Duration = Duration::from_secs(20);

/// One exported span, as the receiver saw it.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Vec<u8>,
}

/// An OTLP/HTTP trace receiver (`POST /v1/traces`, protobuf).
async fn receiver() -> (String, Arc<Mutex<Vec<Span>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post({
            let spans = spans.clone();
            move |body: Bytes| {
                let spans = spans.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    let mut seen = spans.lock().unwrap();
                    for resource in request.resource_spans {
                        let service = resource
                            .resource
                            .iter()
                            .flat_map(|r| &r.attributes)
                            .find(|a| a.key == "service.name")
                            .and_then(|a| a.value.as_ref()?.value.as_ref())
                            .map(|v| match v {
                                AnyValue::StringValue(s) => s.clone(),
                                other => format!("{other:?}"),
                            })
                            .unwrap_or_default();
                        for scope in resource.scope_spans {
                            for span in scope.spans {
                                seen.push(Span {
                                    service: service.clone(),
                                    name: span.name,
                                    trace_id: span.trace_id,
                                    span_id: span.span_id,
                                    parent: span.parent_span_id,
                                });
                            }
                        }
                    }
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), spans)
}

fn hex(bytes: &str) -> Vec<u8> {
    (0..bytes.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&bytes[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_callback_is_one_trace_across_the_three_services() {
    let (endpoint, spans) = receiver().await;
    let mut sink = Sink::start(&[]).await;
    let mut env = TestEnv::new();
    env.alerts_to(&sink.url);
    env.config.telemetry.otlp_endpoint = Some(endpoint);
    // Export every 100 ms instead of every 5 s (read by the SDK's batch processor).
    env.secret("OTEL_BSP_SCHEDULE_DELAY", "100");
    // The public port of the ingress process: a free one, chosen here.
    let public = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    env.config.ingress.listen = public;
    let ingress = env.spawn("relay-ingress").await;
    let worker = env.spawn("relay-worker").await;
    let delivery = env.spawn("relay-delivery").await;

    let trace_id = uuid::Uuid::now_v7().simple().to_string();
    let caller_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{caller_span}-01");
    let response = post_callbacks(
        public,
        min_balance_body(7001),
        &[("traceparent", &traceparent)],
    )
    .await;
    assert_eq!(response.status(), 200);
    let received = sink.next(WAIT).await.expect("the alert reaches the sink");
    assert!(
        received
            .header("traceparent")
            .is_some_and(|t| t.contains(&trace_id)),
        "the outbound request carries the trace"
    );

    // Each service exports its part (a clean stop flushes whatever is left).
    let wanted = hex(&trace_id);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let services: HashSet<String> = spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace_id == wanted)
            .map(|s| s.service.clone())
            .collect();
        if ["relay-ingress", "relay-worker", "relay-delivery"]
            .iter()
            .all(|s| services.contains(*s))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "services that exported spans of the trace: {services:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ingress.terminate();
    worker.terminate();
    delivery.terminate();

    let trace: Vec<Span> = spans
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.trace_id == wanted)
        .cloned()
        .collect();
    let ids: HashSet<Vec<u8>> = trace.iter().map(|s| s.span_id.clone()).collect();
    let caller = hex(caller_span);
    for span in &trace {
        assert!(
            span.parent == caller || ids.contains(&span.parent),
            "{} of {} hangs from a span outside the trace: {trace:?}",
            span.name,
            span.service
        );
    }
    // Ingress's span is a child of the caller; the worker's and delivery's hang from spans of
    // the service before them (through the AMQP headers).
    let service_of: HashMap<Vec<u8>, String> = trace
        .iter()
        .map(|s| (s.span_id.clone(), s.service.clone()))
        .collect();
    assert!(
        trace
            .iter()
            .any(|s| s.service == "relay-ingress" && s.parent == caller),
        "{trace:?}"
    );
    for (service, before) in [
        ("relay-worker", "relay-ingress"),
        ("relay-delivery", "relay-worker"),
    ] {
        assert!(
            trace.iter().any(|s| s.service == service
                && service_of.get(&s.parent).map(String::as_str) == Some(before)),
            "a {service} span whose parent is a {before} span: {trace:?}"
        );
    }
}
