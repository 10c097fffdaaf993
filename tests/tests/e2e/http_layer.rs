//! Refusals of the HTTP layer itself are problems with a stable `type` like every other refusal
//! (an unreadable path segment, another method), and on the Acrobits route they come in the
//! app's own format with its `Content-Type`.

use relay_core::config::AcrobitsSource;
use relay_e2e::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_of_the_http_layer_are_problems_with_a_stable_type() {
    let env = TestEnv::new();
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;
    let client = reqwest::Client::new();

    // A path segment that is not UTF-8 once percent-decoded, on every route that reads one.
    for path in ["/v1/hooks/%FF", "/v1/reamaze/%C3%28", "/v1/plivo/%FE"] {
        let response = client
            .post(format!("http://{addr}{path}"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(
            problem["type"], "urn:relay:problem:malformed-request",
            "{path}"
        );
        assert_eq!(problem["status"], 400);
    }

    // Another method: 405 problem, with the methods that are allowed.
    let response = client
        .delete(format!("http://{addr}/v1/voximplant/callbacks"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(response.headers()["allow"], "POST");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:relay:problem:method-not-allowed");
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_of_the_http_layer_on_the_acrobits_route_come_in_the_apps_format() {
    let mut env = TestEnv::new();
    env.config.ingress.acrobits = Some(AcrobitsSource::default());
    env.config.ingress.body_limit_bytes = 64;
    let (ingress, addr) = start_ingress(&env.config).await;
    ingress.wait_ready().await;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/v1/acrobits/web-callback");

    // Another method, as XML because the app asks for XML.
    let response = client
        .put(&url)
        .header("accept", "application/xml")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["content-type"], "application/xml");
    let text = response.text().await.unwrap();
    assert!(
        text.starts_with("<message>") && text.ends_with("</message>"),
        "{text}"
    );

    // Another method, as JSON with the stable type.
    let response = client
        .delete(&url)
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "urn:relay:problem:method-not-allowed");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));

    // Too large, as a form because the app sent one.
    let response = client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("u=alice&p={}", "x".repeat(100)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.headers()["content-type"],
        "application/x-www-form-urlencoded"
    );
    let text = response.text().await.unwrap();
    assert!(
        text.contains("type=urn%3Arelay%3Aproblem%3Apayload-too-large"),
        "{text}"
    );
    ingress.stop().await;
}
