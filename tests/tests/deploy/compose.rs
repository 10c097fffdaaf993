//! docker-compose.yml (every service of the relay, the console on loopback only) and its
//! traces override against relay.example.toml.

use crate::{SERVICES, finish, read, root, s, strs, yaml_file};

#[test]
fn compose_runs_every_service_healthy_against_the_sink() {
    let path = root().join("docker-compose.yml");
    let docs = yaml_file(&path);
    let mut errors = Vec::new();
    let services = &docs[0]["services"];
    let relay_services: Vec<&str> = SERVICES.iter().map(|s| s.compose).collect();
    for wanted in relay_services
        .iter()
        .copied()
        .chain(["rabbitmq", "redis", "sink"])
    {
        if services[wanted].is_null() {
            errors.push(format!("compose: no service {wanted}"));
        }
    }
    let example: toml::Table = toml::from_str(&read(&root().join("relay.example.toml"))).unwrap();
    let destinations: Vec<String> = example["destinations"]
        .as_table()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for relay in SERVICES {
        let service = relay.compose;
        let svc = &services[service];
        if strs(&svc["command"]).first().map(String::as_str) != Some(relay.deployment) {
            errors.push(format!(
                "compose: {service} does not run {}",
                relay.deployment
            ));
        }
        for dependency in ["rabbitmq", "redis"] {
            if s(svc, &format!("/depends_on/{dependency}/condition")) != "service_healthy" {
                errors.push(format!(
                    "compose: {service} does not wait for a healthy {dependency}"
                ));
            }
        }
        let test = serde_json::to_string(&svc["healthcheck"]["test"]).unwrap();
        let port = relay.admin_port;
        if !test.contains("/readyz") || !test.contains(&format!("/dev/tcp/127.0.0.1/{port}")) {
            errors.push(format!(
                "compose: {service} has no /readyz healthcheck on its admin port {port}"
            ));
        }
        // Listening on the compose network at its admin port, as the healthcheck asks.
        let listen = format!(
            "RELAY__{}__{}",
            relay.section.to_ascii_uppercase(),
            relay.listen.to_ascii_uppercase()
        );
        if s(svc, &format!("/environment/{listen}")) != format!("0.0.0.0:{port}") {
            errors.push(format!(
                "compose: {service} does not set {listen}=0.0.0.0:{port}"
            ));
        }
        // The console's port (pages and admin endpoints) is published on loopback only.
        if relay.deployment == "relay-console" {
            let published = strs(&svc["ports"]);
            if published.is_empty() {
                errors.push(format!("compose: {service} publishes no port"));
            }
            for mapping in published {
                if !mapping.starts_with("127.0.0.1:") {
                    errors.push(format!(
                        "compose: {service} publishes {mapping} beyond the host's loopback"
                    ));
                }
            }
        }
        // Every destination goes to the sink (the console sends to none).
        if !relay.calls_out {
            continue;
        }
        for destination in &destinations {
            let var = format!(
                "RELAY__DESTINATIONS__{}__URL",
                destination.to_ascii_uppercase()
            );
            if !s(svc, &format!("/environment/{var}")).starts_with("http://sink:9999/") {
                errors.push(format!(
                    "compose: {service} does not point {var} at the sink"
                ));
            }
        }
    }
    for infra in ["rabbitmq", "redis"] {
        if services[infra]["healthcheck"]["test"].is_null() {
            errors.push(format!("compose: {infra} has no healthcheck"));
        }
    }
    for (service, svc) in services.as_object().into_iter().flatten() {
        if s(svc, "/image").ends_with(":latest") {
            errors.push(format!("compose: {service} uses :latest"));
        }
        for volume in strs(&svc["volumes"]) {
            if let Some(host) = volume.strip_prefix("./") {
                let host = host.split(':').next().unwrap_or(host);
                if !root().join(host).exists() {
                    errors.push(format!("compose: {service} mounts missing {host}"));
                }
            }
        }
    }
    for observability in ["otel-collector", "jaeger", "prometheus"] {
        if strs(&services[observability]["profiles"]) != ["observability"] {
            errors.push(format!(
                "compose: {observability} not in the observability profile"
            ));
        }
    }
    // The traces override names only services that exist.
    let traces = yaml_file(&root().join("deploy/observability/compose.traces.yml"));
    for service in traces[0]["services"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        if services[service.as_str()].is_null() {
            errors.push(format!("compose.traces.yml: unknown service {service}"));
        }
    }
    finish("compose", errors);
}
