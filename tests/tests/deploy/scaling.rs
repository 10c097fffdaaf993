//! Production: KEDA scaling on queue depth, a three-node RabbitMQ cluster and an external
//! Redis; dev: both in the cluster.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::kustomize::load;
use crate::{finish, kind, name, s};

#[test]
fn production_scales_on_queue_depth_and_runs_a_three_node_broker() {
    let deploy = load();
    let mut errors = Vec::new();
    let (_, tree) = deploy
        .overlays
        .iter()
        .find(|(o, _)| *o == "overlays/production")
        .unwrap();
    let docs: Vec<&Value> = tree.docs.iter().map(|(_, d)| d).collect();
    let auths: BTreeMap<&str, &Value> = docs
        .iter()
        .filter(|d| kind(d) == "TriggerAuthentication" && s(d, "/apiVersion") == "keda.sh/v1alpha1")
        .map(|d| (name(d), *d))
        .collect();
    let secrets: Vec<&Value> = docs
        .iter()
        .copied()
        .filter(|d| kind(d) == "Secret")
        .collect();
    for (auth_name, auth) in &auths {
        for reference in auth["spec"]["secretTargetRef"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let found = secrets.iter().any(|secret| {
                name(secret) == s(reference, "/name")
                    && (secret["stringData"].get(s(reference, "/key")).is_some()
                        || secret["data"].get(s(reference, "/key")).is_some())
            });
            if !found {
                errors.push(format!(
                    "TriggerAuthentication {auth_name}: no Secret {} with key {}",
                    s(reference, "/name"),
                    s(reference, "/key")
                ));
            }
        }
    }
    let worker_queues: BTreeSet<String> = relay_core::routing::HANDLERS
        .iter()
        .map(|h| h.queue())
        .collect();
    for (deployment, queues) in [
        ("relay-worker", worker_queues),
        (
            "relay-delivery",
            BTreeSet::from(["relay.deliveries".to_owned()]),
        ),
    ] {
        let scaled: Vec<&Value> = docs
            .iter()
            .copied()
            .filter(|d| {
                kind(d) == "ScaledObject"
                    && s(d, "/apiVersion") == "keda.sh/v1alpha1"
                    && s(d, "/spec/scaleTargetRef/name") == deployment
            })
            .collect();
        if scaled.len() != 1 {
            errors.push(format!(
                "{deployment}: {} ScaledObjects, want 1",
                scaled.len()
            ));
            continue;
        }
        let mut seen = BTreeSet::new();
        for trigger in scaled[0]["spec"]["triggers"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let ok = s(trigger, "/type") == "rabbitmq"
                && s(trigger, "/metadata/mode") == "QueueLength"
                && !s(trigger, "/metadata/value").is_empty()
                && auths.contains_key(s(trigger, "/authenticationRef/name"))
                && trigger["metadata"]["host"].is_null();
            if !ok {
                errors.push(format!(
                    "{deployment}: trigger {trigger} is not rabbitmq QueueLength with a \
                     TriggerAuthentication"
                ));
            }
            seen.insert(s(trigger, "/metadata/queueName").to_owned());
        }
        if seen != queues {
            errors.push(format!("{deployment}: scales on {seen:?}, want {queues:?}"));
        }
        let min = scaled[0]["spec"]["minReplicaCount"].as_u64().unwrap_or(0);
        if min < 2 {
            errors.push(format!(
                "{deployment}: minReplicaCount {min}: at least 2 to survive a drain under its PDB"
            ));
        }
    }
    let broker = docs
        .iter()
        .find(|d| kind(d) == "RabbitmqCluster" && s(d, "/apiVersion") == "rabbitmq.com/v1beta1");
    match broker {
        None => errors.push("no RabbitmqCluster".to_owned()),
        Some(b) => {
            if b["spec"]["replicas"].as_u64() != Some(3) {
                errors.push("RabbitmqCluster: replicas is not 3".to_owned());
            }
            let additional = s(b, "/spec/rabbitmq/additionalConfig");
            if !additional.lines().any(|l| {
                l.split_whitespace().collect::<Vec<_>>()
                    == ["queue_leader_locator", "=", "balanced"]
            }) {
                errors.push("RabbitmqCluster: no queue_leader_locator = balanced".to_owned());
            }
        }
    }
    let redis = docs
        .iter()
        .find(|d| kind(d) == "Service" && name(d) == "redis");
    if redis.is_none_or(|r| {
        s(r, "/spec/type") != "ExternalName" || s(r, "/spec/externalName").is_empty()
    }) {
        errors.push("production: Redis is not an ExternalName Service `redis`".to_owned());
    }
    if docs.iter().any(|d| {
        matches!(kind(d), "Deployment" | "StatefulSet") && matches!(name(d), "redis" | "rabbitmq")
    }) {
        errors.push("production: runs its own single-node broker or Redis".to_owned());
    }
    // Dev: both inside the cluster, as Services the relay's URLs name.
    let (_, dev) = deploy
        .overlays
        .iter()
        .find(|(o, _)| *o == "overlays/dev")
        .unwrap();
    for wanted in ["rabbitmq", "redis"] {
        let has = |k: &str| {
            dev.docs
                .iter()
                .any(|(_, d)| kind(d) == k && name(d) == wanted)
        };
        if !has("Service") || !(has("Deployment") || has("StatefulSet")) {
            errors.push(format!(
                "dev: no in-cluster {wanted} (workload and Service)"
            ));
        }
    }
    finish("production", errors);
}
