//! What the NetworkPolicies selecting one relay Deployment allow, in and out.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::{Service, name, s, strs};

/// Ingress only on the public port (ingress) and the admin port from the monitoring namespace;
/// egress only to the broker, Redis, DNS and, for a service that calls out, HTTPS (more
/// policies may add to it in an overlay).
pub(crate) fn check_network_policy(
    who: &str,
    policies: &[&Value],
    service: &Service,
    errors: &mut Vec<String>,
) {
    let (admin_port, public) = (service.admin_port, service.public);
    let https = service.calls_out.then_some(("TCP", 443));
    let allowed_egress: BTreeSet<(String, u64)> =
        [("TCP", 5672), ("TCP", 6379), ("UDP", 53), ("TCP", 53)]
            .into_iter()
            .chain(https)
            .map(|(p, n)| (p.to_owned(), n))
            .collect();
    let mut egress_ports = BTreeSet::new();
    let mut admin_from_monitoring = false;
    let mut public_open = false;
    for policy in policies {
        let types = strs(&policy["spec"]["policyTypes"]);
        let base_policy = types.contains(&"Ingress".to_owned());
        if base_policy && !types.contains(&"Egress".to_owned()) {
            errors.push(format!(
                "{who}: NetworkPolicy {} does not limit egress",
                name(policy)
            ));
        }
        for rule in policy["spec"]["ingress"].as_array().into_iter().flatten() {
            let ports: Vec<u64> = rule["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["port"].as_u64())
                .collect();
            if ports.is_empty() {
                errors.push(format!(
                    "{who}: an ingress rule of {} opens every port",
                    name(policy)
                ));
            }
            let from = rule["from"].as_array().cloned().unwrap_or_default();
            for port in ports {
                if port == u64::from(admin_port) {
                    let only_monitoring = !from.is_empty()
                        && from.iter().all(|f| {
                            s(
                                f,
                                "/namespaceSelector/matchLabels/kubernetes.io~1metadata.name",
                            ) == "monitoring"
                                && f["ipBlock"].is_null()
                        });
                    if only_monitoring {
                        admin_from_monitoring = true;
                    } else {
                        errors.push(format!(
                            "{who}: admin port {port} open to more than the monitoring namespace"
                        ));
                    }
                } else if public && port == 8080 {
                    public_open = true;
                } else if base_policy {
                    errors.push(format!(
                        "{who}: ingress port {port} is neither public nor admin"
                    ));
                }
            }
        }
        if base_policy {
            for rule in policy["spec"]["egress"].as_array().into_iter().flatten() {
                let ports = rule["ports"].as_array().cloned().unwrap_or_default();
                if ports.is_empty() {
                    errors.push(format!(
                        "{who}: an egress rule of {} allows every port",
                        name(policy)
                    ));
                }
                for p in ports {
                    let protocol = p["protocol"].as_str().unwrap_or("TCP").to_owned();
                    egress_ports.insert((protocol, p["port"].as_u64().unwrap_or(0)));
                }
            }
        }
    }
    if !admin_from_monitoring {
        errors.push(format!(
            "{who}: admin port {admin_port} not open to the monitoring namespace"
        ));
    }
    if public && !public_open {
        errors.push(format!("{who}: public port 8080 not open"));
    }
    if egress_ports != allowed_egress {
        errors.push(format!(
            "{who}: egress ports {egress_ports:?}, expected exactly {allowed_egress:?}"
        ));
    }
}
