//! The Deployments of every overlay: pinned images, locked-down containers, probes, config
//! mounts, shutdown grace, PodDisruptionBudgets, NetworkPolicies, Services and autoscaling.

use std::time::Duration;

use serde_json::Value;

use crate::kustomize::{containers, image_name, image_tag, load, pod_spec, relay_toml};
use crate::network_policy::check_network_policy;
use crate::{RELAY_IMAGE, SERVICES, finish, is_admin_port, kind, name, s, strs, workspace_version};

/// `20s`, `1m`, `500ms` (the relay's duration format, enough of it for shutdown graces).
fn duration(text: &str) -> Duration {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap());
    let n: u64 = number.parse().unwrap();
    match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        other => panic!("unknown duration unit {other:?} in {text:?}"),
    }
}

/// Whether `selector` (matchLabels) selects pods labelled `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let Some(wanted) = selector["matchLabels"].as_object() else {
        return false;
    };
    !wanted.is_empty() && wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// A setting of the container's securityContext, or else the pod's.
fn security<'a>(pod: &'a Value, container: &'a Value, field: &str) -> &'a Value {
    let own = &container["securityContext"][field];
    if own.is_null() {
        &pod["securityContext"][field]
    } else {
        own
    }
}

#[test]
fn deployments_are_locked_down_probed_budgeted_and_fenced() {
    let deploy = load();
    let mut errors = Vec::new();
    let version = workspace_version();
    for (overlay, tree) in &deploy.overlays {
        let config = relay_toml(tree);
        let docs: Vec<&Value> = tree.docs.iter().map(|(_, d)| d).collect();
        let of_kind = |k: &'static str| docs.iter().copied().filter(move |d| kind(d) == k);

        // Images: a version everywhere, the workspace version for the relay's.
        for (file, entry) in &tree.image_entries {
            let (image, tag) = (s(entry, "/name"), s(entry, "/newTag"));
            if tag.is_empty() || tag == "latest" {
                errors.push(format!(
                    "{overlay}: images entry {image} of {} has tag {tag:?}",
                    file.display()
                ));
            }
            if image == RELAY_IMAGE && tag != version {
                errors.push(format!(
                    "{overlay}: relay image tag {tag} in {} is not the workspace version {version}",
                    file.display()
                ));
            }
        }
        for workload in docs
            .iter()
            .filter(|d| matches!(kind(d), "Deployment" | "StatefulSet" | "DaemonSet" | "Job"))
        {
            let pod = pod_spec(workload);
            for c in containers(workload) {
                let image = s(c, "/image");
                let tag = image_tag(image).map(str::to_owned).or_else(|| {
                    tree.images
                        .get(image_name(image))
                        .map(|e| s(e, "/newTag").to_owned())
                });
                match tag.as_deref() {
                    None | Some("") => errors.push(format!(
                        "{overlay}: {} container {} image {image} has no tag",
                        name(workload),
                        s(c, "/name")
                    )),
                    Some("latest") => errors.push(format!(
                        "{overlay}: {} container {} uses :latest",
                        name(workload),
                        s(c, "/name")
                    )),
                    Some(_) => {}
                }
                if image_name(image) != RELAY_IMAGE {
                    continue;
                }
                let who = format!("{overlay}: {} container {}", name(workload), s(c, "/name"));
                if security(pod, c, "runAsNonRoot") != &Value::Bool(true) {
                    errors.push(format!("{who}: not runAsNonRoot"));
                }
                if security(pod, c, "runAsUser") != &Value::from(65532) {
                    errors.push(format!("{who}: runAsUser is not 65532"));
                }
                if c["securityContext"]["readOnlyRootFilesystem"] != Value::Bool(true) {
                    errors.push(format!("{who}: root file system not read-only"));
                }
                if c["securityContext"]["allowPrivilegeEscalation"] != Value::Bool(false) {
                    errors.push(format!("{who}: allowPrivilegeEscalation not false"));
                }
                if !strs(&c["securityContext"]["capabilities"]["drop"]).contains(&"ALL".to_owned())
                    || c["securityContext"]["capabilities"]["add"].is_array()
                {
                    errors.push(format!("{who}: capabilities not all dropped"));
                }
                if s(security(pod, c, "seccompProfile"), "/type") != "RuntimeDefault" {
                    errors.push(format!("{who}: seccompProfile not RuntimeDefault"));
                }
            }
        }

        for service in SERVICES {
            let (deployment_name, section, admin_port) =
                (service.deployment, service.section, &service.admin_port);
            let who = format!("{overlay}: {deployment_name}");
            let Some(deployment) = of_kind("Deployment").find(|d| name(d) == deployment_name)
            else {
                errors.push(format!("{who}: no Deployment"));
                continue;
            };
            let pod = pod_spec(deployment);
            let labels = &deployment["spec"]["template"]["metadata"]["labels"];
            let Some(c) = containers(deployment).next() else {
                errors.push(format!("{who}: no container"));
                continue;
            };
            if image_name(s(c, "/image")) != RELAY_IMAGE {
                errors.push(format!("{who}: does not run the relay image"));
            }
            // Probes on the admin port, which must be the configured one.
            let admin = c["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| s(p, "/name") == "admin");
            if admin.and_then(|p| p["containerPort"].as_u64()) != Some(u64::from(*admin_port)) {
                errors.push(format!("{who}: no container port `admin` {admin_port}"));
            }
            let listen = service.listen;
            let configured = config
                .get(section)
                .and_then(|t| t.get(listen))
                .and_then(|v| v.as_str())
                .unwrap_or("");
            if !configured.ends_with(&format!(":{admin_port}")) || configured.starts_with("127.") {
                errors.push(format!(
                    "{who}: {section}.{listen} {configured:?} is not 0.0.0.0:{admin_port}"
                ));
            }
            for (probe, path) in [("livenessProbe", "/livez"), ("readinessProbe", "/readyz")] {
                let get = &c[probe]["httpGet"];
                let port_ok = get["port"] == "admin" || get["port"] == *admin_port;
                if s(get, "/path") != path || !port_ok {
                    errors.push(format!(
                        "{who}: {probe} is not GET {path} on the admin port"
                    ));
                }
            }
            for bound in ["requests", "limits"] {
                let r = &c["resources"][bound];
                if r["memory"].is_null() || (bound == "requests" && r["cpu"].is_null()) {
                    errors.push(format!("{who}: resources.{bound} incomplete"));
                }
            }
            // Config from the ConfigMap, read-only, RELAY_CONFIG pointing into it.
            let env = |n: &str| {
                c["env"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|e| s(e, "/name") == n)
                    .map(|e| s(e, "/value").to_owned())
            };
            let config_mount = c["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| {
                    pod["volumes"].as_array().into_iter().flatten().any(|v| {
                        s(v, "/name") == s(m, "/name") && s(v, "/configMap/name") == "relay-config"
                    })
                });
            match (env("RELAY_CONFIG"), config_mount) {
                (Some(path), Some(m))
                    if path == format!("{}/relay.toml", s(m, "/mountPath"))
                        && m["readOnly"] == Value::Bool(true) => {}
                _ => errors.push(format!(
                    "{who}: RELAY_CONFIG does not name relay.toml of a read-only relay-config mount"
                )),
            }
            let secret_from_env = c["envFrom"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| s(e, "/secretRef/name") == "relay-secrets");
            if !secret_from_env {
                errors.push(format!("{who}: no envFrom relay-secrets"));
            }
            // Grace: SIGTERM drains for shutdown_grace; the pod must outlast it. A service that
            // stops at once (the console) still states its grace explicitly.
            let grace = env(&format!(
                "RELAY__{}__SHUTDOWN_GRACE",
                section.to_ascii_uppercase()
            ))
            .or_else(|| {
                config
                    .get(section)
                    .and_then(|t| t.get("shutdown_grace"))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            });
            match (grace, pod["terminationGracePeriodSeconds"].as_u64()) {
                (Some(grace), Some(period)) if Duration::from_secs(period) > duration(&grace) => {}
                (None, Some(_)) if !service.drains => {}
                (grace, period) => errors.push(format!(
                    "{who}: terminationGracePeriodSeconds {period:?} is not above the \
                     configured shutdown_grace {grace:?} (set it explicitly)"
                )),
            }
            // A PodDisruptionBudget and a NetworkPolicy select its pods.
            if !of_kind("PodDisruptionBudget").any(|p| selects(&p["spec"]["selector"], labels)) {
                errors.push(format!("{who}: no PodDisruptionBudget"));
            }
            let policies: Vec<&Value> = of_kind("NetworkPolicy")
                .filter(|p| selects(&p["spec"]["podSelector"], labels))
                .collect();
            if policies.is_empty() {
                errors.push(format!("{who}: no NetworkPolicy"));
            }
            check_network_policy(&who, &policies, service, &mut errors);
        }

        // The console: one replica that nothing scales (its lockouts and replay jobs live in
        // the process), behind a cluster-internal Service only.
        if let Some(console) = of_kind("Deployment").find(|d| name(d) == "relay-console")
            && console["spec"]["replicas"].as_u64() != Some(1)
        {
            errors.push(format!(
                "{overlay}: relay-console does not run exactly 1 replica"
            ));
        }
        for scaler in of_kind("HorizontalPodAutoscaler").chain(of_kind("ScaledObject")) {
            if s(scaler, "/spec/scaleTargetRef/name") == "relay-console" {
                errors.push(format!("{overlay}: {} scales relay-console", name(scaler)));
            }
        }
        let console_services: Vec<&Value> = of_kind("Service")
            .filter(|svc| s(svc, "/spec/selector/app") == "relay-console")
            .collect();
        if console_services.is_empty() {
            errors.push(format!("{overlay}: no Service for relay-console"));
        }
        for svc in console_services {
            if !matches!(s(svc, "/spec/type"), "" | "ClusterIP") {
                errors.push(format!(
                    "{overlay}: relay-console Service {} is not ClusterIP",
                    name(svc)
                ));
            }
        }

        // Services: ingress's public port; admin ports only as cluster-internal Services.
        let services: Vec<&Value> = of_kind("Service").collect();
        let exposes = |port: u64| {
            services.iter().any(|svc| {
                svc["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["port"].as_u64() == Some(port))
            })
        };
        let ports = std::iter::once(8080).chain(SERVICES.iter().map(|s| u64::from(s.admin_port)));
        for port in ports {
            if !exposes(port) {
                errors.push(format!("{overlay}: no Service for port {port}"));
            }
        }
        for svc in &services {
            let admin = svc["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["port"].as_u64().is_some_and(is_admin_port));
            if admin && matches!(s(svc, "/spec/type"), "LoadBalancer" | "NodePort") {
                errors.push(format!("{overlay}: admin Service {} is public", name(svc)));
            }
        }
        for ingress in of_kind("Ingress") {
            let text = serde_json::to_string(ingress).unwrap();
            if text.contains("-admin") || text.contains("relay-console") {
                errors.push(format!(
                    "{overlay}: Ingress {} exposes an admin port or the console",
                    name(ingress)
                ));
            }
        }
        // Ingress autoscales on CPU.
        let hpa = of_kind("HorizontalPodAutoscaler")
            .find(|h| s(h, "/spec/scaleTargetRef/name") == "relay-ingress");
        let on_cpu = hpa.is_some_and(|h| {
            s(h, "/apiVersion") == "autoscaling/v2"
                && h["spec"]["metrics"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|m| s(m, "/resource/name") == "cpu")
        });
        if !on_cpu {
            errors.push(format!(
                "{overlay}: no autoscaling/v2 HPA on CPU for relay-ingress"
            ));
        }
    }
    finish("deployments", errors);
}
