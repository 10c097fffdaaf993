//! deploy/observability: Prometheus alert rules, the Grafana dashboard, the scrape and
//! collector configurations, and the metrics they name.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::{SERVICES, finish, read, root, s, yaml_file};

/// Every `relay_…` metric an expression names is one the relay exports.
fn check_metric_names(what: &str, expr: &str, errors: &mut Vec<String>) {
    let known: BTreeSet<&str> = relay_telemetry::catalog::METRICS
        .iter()
        .map(|m| m.name)
        .collect();
    let mut rest = expr;
    while let Some(at) = rest.find("relay_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let metric = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| metric.strip_suffix(suffix).filter(|b| known.contains(b)))
            .unwrap_or(metric);
        if !known.contains(base) {
            errors.push(format!("{what}: unknown metric {metric} in {expr}"));
        }
        rest = &tail[end..];
    }
}

#[test]
fn observability_files_parse_and_name_real_metrics() {
    let dir = root().join("deploy/observability");
    let mut errors = Vec::new();
    let rules = yaml_file(&dir.join("alerts.yml"));
    let mut alerted = String::new();
    for group in rules[0]["groups"].as_array().into_iter().flatten() {
        for rule in group["rules"].as_array().into_iter().flatten() {
            let expr = s(rule, "/expr");
            if s(rule, "/alert").is_empty() || expr.is_empty() {
                errors.push(format!("alerts.yml: rule without alert or expr: {rule}"));
            }
            check_metric_names(&format!("alert {}", s(rule, "/alert")), expr, &mut errors);
            alerted.push_str(expr);
            alerted.push('\n');
        }
    }
    for wanted in [
        "relay_queue_messages",
        "relay_dead_letters_total",
        "relay_destination_breaker{state=\"open\"}",
        "relay_amqp_publish_total{outcome!=\"confirmed\"}",
        "relay_redis_breaker_open",
    ] {
        if !alerted.contains(wanted) {
            errors.push(format!("alerts.yml: no rule on {wanted}"));
        }
    }
    let dashboard: Value =
        serde_json::from_str(&read(&dir.join("grafana-dashboard.json"))).expect("dashboard JSON");
    let panels = dashboard["panels"].as_array().cloned().unwrap_or_default();
    if panels.is_empty() || s(&dashboard, "/title").is_empty() {
        errors.push("grafana-dashboard.json: no title or no panels".to_owned());
    }
    for panel in &panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            check_metric_names(
                &format!("dashboard panel {}", s(panel, "/title")),
                s(target, "/expr"),
                &mut errors,
            );
        }
    }
    let prometheus = yaml_file(&dir.join("prometheus.yml"));
    let targets = serde_json::to_string(&prometheus[0]["scrape_configs"]).unwrap();
    for target in SERVICES
        .iter()
        .map(|s| format!("{}:{}", s.compose, s.admin_port))
    {
        if !targets.contains(&target) {
            errors.push(format!("prometheus.yml: does not scrape {target}"));
        }
    }
    yaml_file(&dir.join("otel-collector.yaml"));
    finish("observability", errors);
}
