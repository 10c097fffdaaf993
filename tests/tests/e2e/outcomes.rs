//! Delivery outcome events as a handler sees them: one per job that asked for its outcome, one
//! per dead-lettered job whether it asked or not (with the reason), none for a quiet success.

use std::collections::HashMap;
use std::time::Duration;

use relay_core::config::{DestinationConfig, Signing};
use relay_e2e::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcome_events_reach_a_consumer_once_per_job_and_failures_carry_their_reason() {
    let ok = Sink::start(&[]).await;
    let bad = Sink::start(&[400; 10]).await;
    let mut env = TestEnv::new();
    for (name, sink) in [("outcome-ok", &ok), ("outcome-bad", &bad)] {
        env.config.destinations.insert(
            name.to_owned(),
            DestinationConfig::new(&sink.url, Signing::None, None),
        );
    }
    let channel = env.channel().await;
    let outcomes = env.outcome_queue(&channel).await;

    let mut reporting_ok = jobs_for("outcome-ok", 10);
    let quiet_ok = jobs_for("outcome-ok", 5);
    let mut reporting_bad = jobs_for("outcome-bad", 6);
    let quiet_bad = jobs_for("outcome-bad", 4);
    for job in reporting_ok.iter_mut().chain(reporting_bad.iter_mut()) {
        job.report_outcome = true;
    }
    let all: Vec<_> = [&reporting_ok, &quiet_ok, &reporting_bad, &quiet_bad]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    publish_jobs(&env, &all).await;
    let delivery = start_delivery(&env.config).await;
    for job in reporting_ok.iter().chain(&quiet_ok) {
        env.wait_for_record(&job.id, "delivered").await;
    }
    for job in reporting_bad.iter().chain(&quiet_bad) {
        env.wait_for_record(&job.id, "dead").await;
    }
    // Stopped, delivery has settled (and reported) everything it took.
    delivery.stop().await;

    let mut events: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    while let Some(message) = env
        .next_message(&channel, &outcomes, Duration::from_millis(500))
        .await
    {
        let event: serde_json::Value = serde_json::from_slice(&message.delivery.data).unwrap();
        let data = event["data"].clone();
        events
            .entry(data["job_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(data);
    }
    for job in &reporting_ok {
        let seen = &events[&job.id];
        assert_eq!(seen.len(), 1, "once: {}", job.id);
        assert_eq!(seen[0]["succeeded"], true);
        assert_eq!(seen[0]["event_id"], job.event_id.as_str());
        assert_eq!(seen[0]["destination"], "outcome-ok");
    }
    for job in &quiet_ok {
        assert!(
            !events.contains_key(&job.id),
            "a quiet success reports nothing"
        );
    }
    for job in reporting_bad.iter().chain(&quiet_bad) {
        let seen = &events[&job.id];
        assert_eq!(seen.len(), 1, "once, asked for or not: {}", job.id);
        assert_eq!(seen[0]["succeeded"], false);
        assert_eq!(seen[0]["reason"], "http_status");
        assert_eq!(seen[0]["status"], 400);
        assert_eq!(seen[0]["response_excerpt"], "sink answered 400");
    }
    assert_eq!(events.len(), reporting_ok.len() + 10, "nothing else");
    assert_eq!(bad.count(), 10, "a 4xx is never retried");
}
