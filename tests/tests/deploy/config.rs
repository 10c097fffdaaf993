//! Every service (the console too) loads and validates the ConfigMap's relay.toml with the
//! overrides and secrets its Deployment gives it.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::kustomize::{containers, load};
use crate::{SERVICES, finish, kind, name, read, root, s};

/// `NAME=value` lines (quotes around the value removed), as deploy/local.env.
fn env_file(path: &Path) -> BTreeMap<String, String> {
    read(path)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v);
            (k.trim().to_owned(), v.to_owned())
        })
        .collect()
}

/// The `RELAY__…` overrides a container sets with plain values.
fn relay_overrides(container: &Value) -> Vec<(String, String)> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| s(e, "/name").starts_with("RELAY__") && e["value"].is_string())
        .map(|e| (s(e, "/name").to_owned(), s(e, "/value").to_owned()))
        .collect()
}

#[test]
fn every_service_accepts_the_configmap_as_its_configuration() {
    let deploy = load();
    let mut errors = Vec::new();
    let local = env_file(&root().join("deploy/local.env"));
    for (overlay, tree) in &deploy.overlays {
        let (_, map) = tree
            .docs
            .iter()
            .find(|(_, d)| kind(d) == "ConfigMap" && name(d) == "relay-config")
            .unwrap();
        let text = s(map, "/data/relay.toml");
        let own = tree
            .generated_secret_files
            .iter()
            .map(|f| env_file(f))
            .fold(BTreeMap::new(), |mut all, one| {
                all.extend(one);
                all
            });
        for service in SERVICES {
            let deployment_name = service.deployment;
            let Some((_, deployment)) = tree
                .docs
                .iter()
                .find(|(_, d)| kind(d) == "Deployment" && name(d) == deployment_name)
            else {
                errors.push(format!("{overlay}: no Deployment {deployment_name}"));
                continue;
            };
            // The URLs come from relay-secrets; any value that parses stands in for them.
            let mut vars = vec![
                (
                    "RELAY__AMQP__URL".to_owned(),
                    "amqp://u:p@rabbitmq:5672/%2f".to_owned(),
                ),
                (
                    "RELAY__REDIS__URL".to_owned(),
                    "redis://redis:6379".to_owned(),
                ),
            ];
            vars.extend(containers(deployment).flat_map(relay_overrides));
            // The overlay's patches of it (env added by strategic merge) apply on top.
            for patch in tree
                .patch_docs
                .iter()
                .filter(|p| kind(p) == "Deployment" && name(p) == deployment_name)
            {
                vars.extend(containers(patch).flat_map(relay_overrides));
            }
            // Secrets: the overlay's own values where it has them (dev), else the development
            // values of deploy/local.env standing in for the CHANGE-ME placeholders.
            let secret = |n: &str| {
                own.get(n)
                    .or_else(|| local.get(n))
                    .cloned()
                    .or_else(|| Some("whsec_Y2hhbmdlLW1lLWNoYW5nZS1tZS1jaGFuZ2UtbWU=".to_owned()))
            };
            let loaded = relay_core::config::Config::from_toml(text, &vars, &secret);
            let checked = loaded.and_then(|config| match service.section {
                "ingress" => config.validate_ingress(),
                "worker" => config.validate_worker(),
                "delivery" => config.validate_delivery(),
                "console" => config.validate_console(),
                other => panic!("no validation known for the section {other}"),
            });
            if let Err(e) = checked {
                errors.push(format!(
                    "{overlay}: {deployment_name} refuses relay.toml: {e}"
                ));
            }
            // The console also refuses to start on a password hash that is not argon2.
            if service.section == "console"
                && let Ok(config) = relay_core::config::Config::from_toml(text, &vars, &secret)
            {
                for user in &config.console.users {
                    let hash = user.password_hash_env.value().unwrap_or_default();
                    if !relay_signing::password::is_argon2_phc(hash) {
                        errors.push(format!(
                            "{overlay}: console user {}: ${} is not an argon2 hash",
                            user.name,
                            user.password_hash_env.var()
                        ));
                    }
                }
            }
        }
    }
    finish("configuration", errors);
}
