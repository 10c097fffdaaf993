//! OpenTelemetry export: the three services, as processes of their own, export over OTLP/HTTP
//! to a receiver in the test, and one callback makes one trace across them: every span of it
//! hangs from the caller's `traceparent` or from another span of the trace. The spans follow
//! OpenTelemetry's semantic conventions: an HTTP server span at ingress, a producer span per
//! publish, a consumer span per message processed, an HTTP client span per outbound attempt,
//! each with its name, kind and attributes, and no secret of the destination's URL.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use relay_e2e::*;

const WAIT: Duration = Duration::from_secs(20);

/// OTLP `SpanKind` numbers.
const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;
/// OTLP `Status.code` numbers.
const UNSET: i32 = 0;
const ERROR: i32 = 2;

/// One exported span, as the receiver saw it.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    kind: i32,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Vec<u8>,
    /// Status code (`UNSET`, `OK`, `ERROR`).
    status: i32,
    /// Attributes, their values as text.
    attributes: HashMap<String, String>,
}

impl Span {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

fn text(value: &AnyValue) -> String {
    match value {
        AnyValue::StringValue(s) => s.clone(),
        AnyValue::IntValue(i) => i.to_string(),
        AnyValue::BoolValue(b) => b.to_string(),
        AnyValue::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    }
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
                            .map(text)
                            .unwrap_or_default();
                        for scope in resource.scope_spans {
                            for span in scope.spans {
                                let attributes = span
                                    .attributes
                                    .iter()
                                    .filter_map(|a| {
                                        Some((
                                            a.key.clone(),
                                            text(a.value.as_ref()?.value.as_ref()?),
                                        ))
                                    })
                                    .collect();
                                seen.push(Span {
                                    service: service.clone(),
                                    name: span.name,
                                    kind: span.kind,
                                    trace_id: span.trace_id,
                                    span_id: span.span_id,
                                    parent: span.parent_span_id,
                                    status: span.status.map_or(UNSET, |s| s.code),
                                    attributes,
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
    // The first attempt is answered 503, so the job is sent twice.
    let mut sink = Sink::start(&[503]).await;
    let mut env = TestEnv::new();
    // Credentials and a query in the destination's URL: neither may reach a span.
    let secret_url = format!(
        "{}?token=s3cret-query",
        sink.url
            .replacen("http://", "http://relay:s3cret-password@", 1)
    );
    env.alerts_to(&secret_url);
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
    let mut requests = Vec::new();
    for _ in 0..2 {
        let received = sink.next(WAIT).await.expect("the alert reaches the sink");
        assert!(
            received
                .header("traceparent")
                .is_some_and(|t| t.contains(&trace_id)),
            "the outbound request carries the trace"
        );
        requests.push(received);
    }

    // Each service exports its part (a clean stop flushes whatever is left); both attempts'
    // consumer spans end after their client spans.
    let wanted = hex(&trace_id);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (services, clients, processed) = {
            let seen = spans.lock().unwrap();
            let trace: Vec<&Span> = seen.iter().filter(|s| s.trace_id == wanted).collect();
            let services: HashSet<String> = trace.iter().map(|s| s.service.clone()).collect();
            let clients = trace.iter().filter(|s| s.kind == CLIENT).count();
            let processed = trace
                .iter()
                .filter(|s| s.service == "relay-delivery" && s.kind == CONSUMER)
                .count();
            (services, clients, processed)
        };
        if ["relay-ingress", "relay-worker", "relay-delivery"]
            .iter()
            .all(|s| services.contains(*s))
            && clients >= 2
            && processed >= 2
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "services that exported spans of the trace: {services:?}, client spans {clients}, delivery consumer spans {processed}"
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

    let one = |service: &str, name: &str| -> Span {
        let found: Vec<&Span> = trace
            .iter()
            .filter(|s| s.service == service && s.name == name)
            .collect();
        assert!(
            !found.is_empty(),
            "no span `{name}` of {service}; the trace has {:?}",
            trace
                .iter()
                .map(|s| (&s.service, &s.name))
                .collect::<Vec<_>>()
        );
        found[0].clone()
    };
    let attr = |span: &Span, key: &str| -> String {
        span.attr(key)
            .unwrap_or_else(|| panic!("`{}` has no `{key}`: {span:?}", span.name))
            .to_owned()
    };

    // HTTP server: `{method} {route}`, a child of the caller.
    let server = one("relay-ingress", "POST /v1/voximplant/callbacks");
    assert_eq!(server.kind, SERVER);
    assert_eq!(server.parent, caller);
    assert_eq!(server.status, UNSET, "a 200 is no error");
    for (key, value) in [
        ("http.request.method", "POST"),
        ("http.route", "/v1/voximplant/callbacks"),
        ("url.path", "/v1/voximplant/callbacks"),
        ("url.scheme", "http"),
        ("http.response.status_code", "200"),
        ("network.protocol.version", "1.1"),
    ] {
        assert_eq!(attr(&server, key), value, "{key} of {server:?}");
    }
    assert_eq!(attr(&server, "server.port"), public.port().to_string());

    // Ingress publishes the event: a producer span under the request.
    let routing_key = "voximplant.min_balance";
    let published = one("relay-ingress", "publish relay.events");
    assert_eq!(published.kind, PRODUCER);
    assert_eq!(published.parent, server.span_id);
    for (key, value) in [
        ("messaging.system", "rabbitmq"),
        ("messaging.operation.type", "send"),
        ("messaging.operation.name", "publish"),
        (
            "messaging.destination.name",
            "relay.events:voximplant.min_balance",
        ),
        ("messaging.rabbitmq.destination.routing_key", routing_key),
    ] {
        assert_eq!(attr(&published, key), value, "{key} of {published:?}");
    }
    let event_id = attr(&published, "messaging.message.id");

    // The worker processes it from the handler's queue: a consumer span under that publish.
    let handled = one("relay-worker", "process relay.handler.min-balance-alert");
    assert_eq!(handled.kind, CONSUMER);
    assert_eq!(handled.parent, published.span_id);
    for (key, value) in [
        ("messaging.system", "rabbitmq"),
        ("messaging.operation.type", "process"),
        (
            "messaging.destination.name",
            "relay.events:voximplant.min_balance:relay.handler.min-balance-alert",
        ),
        ("messaging.rabbitmq.destination.routing_key", routing_key),
        ("messaging.message.id", &event_id),
        ("handler", "min-balance-alert"),
        ("event_id", &event_id),
    ] {
        assert_eq!(attr(&handled, key), value, "{key} of {handled:?}");
    }

    // It queues the job: a producer span under its own.
    let queued = one("relay-worker", "publish relay.deliveries");
    assert_eq!(queued.kind, PRODUCER);
    assert_eq!(queued.parent, handled.span_id);
    assert_eq!(
        attr(&queued, "messaging.destination.name"),
        "relay.deliveries"
    );
    assert_eq!(attr(&queued, "messaging.operation.type"), "send");
    let job_id = attr(&queued, "messaging.message.id");

    // Delivery processes the job twice (503, then 200), each time a consumer span with one
    // client span under it; the first is a child of the worker's publish.
    let processes: Vec<&Span> = trace
        .iter()
        .filter(|s| s.service == "relay-delivery" && s.name == "process relay.deliveries")
        .collect();
    assert!(processes.len() >= 2, "{processes:?}");
    for process in &processes {
        assert_eq!(process.kind, CONSUMER);
        assert_eq!(attr(process, "messaging.operation.type"), "process");
        assert_eq!(attr(process, "messaging.system"), "rabbitmq");
        assert_eq!(attr(process, "messaging.message.id"), job_id);
        assert_eq!(attr(process, "job_id"), job_id);
        assert!(
            attr(process, "messaging.destination.name").ends_with("relay.deliveries"),
            "{process:?}"
        );
    }
    assert!(
        processes.iter().any(|p| p.parent == queued.span_id),
        "a delivery consumer span under the worker's publish: {processes:?}"
    );

    let mut clients: Vec<&Span> = trace
        .iter()
        .filter(|s| s.service == "relay-delivery" && s.kind == CLIENT)
        .collect();
    clients.sort_by_key(|s| {
        s.attr("http.request.resend_count")
            .unwrap_or("0")
            .to_owned()
    });
    assert_eq!(clients.len(), 2, "{clients:?}");
    let sink_port = sink
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    for client in &clients {
        assert_eq!(client.name, "POST");
        assert!(
            processes.iter().any(|p| p.span_id == client.parent),
            "a client span under a consumer span: {client:?}"
        );
        assert_eq!(attr(client, "http.request.method"), "POST");
        assert_eq!(attr(client, "server.address"), "127.0.0.1");
        assert_eq!(attr(client, "server.port"), sink_port);
        let url = attr(client, "url.full");
        assert_eq!(url, sink.url, "url.full has neither credentials nor query");
        assert!(
            !url.contains('?') && !url.contains('@') && !url.contains("s3cret"),
            "{url}"
        );
        assert!(
            client.attributes.values().all(|v| !v.contains("s3cret")),
            "no secret of the URL in any attribute: {client:?}"
        );
    }
    let (first, second) = (clients[0], clients[1]);
    assert_eq!(attr(first, "http.response.status_code"), "503");
    assert_eq!(first.status, ERROR);
    assert_eq!(attr(first, "error.type"), "503");
    assert_eq!(first.attr("http.request.resend_count"), None);
    assert_eq!(attr(second, "http.response.status_code"), "200");
    assert_eq!(second.status, UNSET);
    assert_eq!(attr(second, "http.request.resend_count"), "1");
    // Each request carries its own client span's context.
    for (request, client) in requests.iter().zip([first, second]) {
        let parent_id = request
            .header("traceparent")
            .and_then(|t| t.split('-').nth(2))
            .map(hex);
        assert_eq!(parent_id.as_ref(), Some(&client.span_id), "{request:?}");
    }
}
