//! No secret in a ConfigMap or relay.toml, every secret the configuration names provided by
//! relay-secrets or a read-only Secret mount, and placeholders only in git.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::kustomize::{containers, load, pod_spec, relay_toml};
use crate::{finish, kind, name, s};

fn looks_secret_name(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "passwd", "token", "secret", "key", "credential"]
        .iter()
        .any(|w| key.contains(w))
}

/// A secret-looking value: a URL with a password, a signing secret, an argon2 hash, a PEM key.
fn looks_secret_value(value: &str) -> bool {
    let with_password = url::Url::parse(value)
        .ok()
        .is_some_and(|u| u.password().is_some());
    with_password
        || value.contains("whsec_")
        || value.contains("$argon2")
        || value.contains("PRIVATE KEY")
}

/// Fields of relay.toml that may contain the words above without holding a secret: references
/// to a secret (`*_env`, `*_file`) and settings about secrets.
fn allowed_config_field(field: &str) -> bool {
    field.ends_with("_env")
        || field.ends_with("_file")
        || field.ends_with("_params")
        || matches!(
            field,
            "key_prefix" | "password_scheme" | "secret_check_interval"
        )
}

/// Walks relay.toml: secret-looking fields and values, and every `*_env` / `secret_file` named.
fn walk_config(
    table: &toml::Table,
    path: &str,
    errors: &mut Vec<String>,
    env_refs: &mut BTreeSet<String>,
    files: &mut BTreeSet<String>,
) {
    for (field, value) in table {
        let here = format!("{path}{field}");
        match value {
            toml::Value::Table(t) => walk_config(t, &format!("{here}."), errors, env_refs, files),
            toml::Value::Array(items) => {
                for item in items {
                    if let toml::Value::Table(t) = item {
                        walk_config(t, &format!("{here}[]."), errors, env_refs, files);
                    }
                }
            }
            toml::Value::String(text) => {
                if looks_secret_name(field) && !allowed_config_field(field) {
                    errors.push(format!(
                        "ConfigMap relay-config: {here} looks like a secret"
                    ));
                }
                if looks_secret_value(text) {
                    errors.push(format!(
                        "ConfigMap relay-config: {here} holds a secret-looking value"
                    ));
                }
                if field.ends_with("_env") {
                    env_refs.insert(text.clone());
                }
                if field == "secret_file" {
                    files.insert(text.clone());
                }
            }
            _ => {}
        }
    }
}

#[test]
fn configmaps_hold_no_secrets_and_secrets_cover_the_config() {
    let deploy = load();
    let mut errors = Vec::new();
    for (overlay, tree) in
        std::iter::once(("base", &deploy.base)).chain(deploy.overlays.iter().map(|(o, t)| (*o, t)))
    {
        for (path, doc) in tree.docs.iter().filter(|(_, d)| kind(d) == "ConfigMap") {
            for (key, value) in doc["data"].as_object().into_iter().flatten() {
                if looks_secret_name(key) {
                    errors.push(format!(
                        "{overlay}: ConfigMap {} ({}) has a secret-looking key {key}",
                        name(doc),
                        path.display()
                    ));
                }
                let text = value.as_str().unwrap_or("");
                if !key.ends_with(".toml") && looks_secret_value(text) {
                    errors.push(format!(
                        "{overlay}: ConfigMap {} holds a secret-looking value under {key}",
                        name(doc)
                    ));
                }
                for line in text.lines() {
                    let lower = line.to_ascii_lowercase();
                    if lower.contains("amqp://") || lower.contains("amqps://") {
                        let has_credentials =
                            line.split('"').any(|part| looks_secret_value(part.trim()));
                        if has_credentials {
                            errors.push(format!(
                                "{overlay}: ConfigMap {} has an AMQP URL with credentials",
                                name(doc)
                            ));
                        }
                    }
                }
            }
        }
        // relay.toml: no secret, every `*_env` a key of relay-secrets, every secret_file on a
        // mounted Secret of delivery.
        let config = relay_toml(tree);
        let mut env_refs = BTreeSet::new();
        let mut files = BTreeSet::new();
        walk_config(&config, "", &mut errors, &mut env_refs, &mut files);
        for section in ["amqp", "redis"] {
            if config.get(section).and_then(|s| s.get("url")).is_some() {
                errors.push(format!(
                    "{overlay}: relay.toml sets {section}.url: it comes from relay-secrets \
                     (RELAY__{}__URL)",
                    section.to_ascii_uppercase()
                ));
            }
        }
        let secret_keys: BTreeSet<String> = tree
            .generated_secret_keys
            .get("relay-secrets")
            .cloned()
            .unwrap_or_else(|| {
                tree.docs
                    .iter()
                    .find(|(_, d)| kind(d) == "Secret" && name(d) == "relay-secrets")
                    .map(|(_, d)| {
                        let data = if d["stringData"].is_object() {
                            &d["stringData"]
                        } else {
                            &d["data"]
                        };
                        data.as_object()
                            .into_iter()
                            .flatten()
                            .map(|(k, _)| k.clone())
                            .collect()
                    })
                    .unwrap_or_default()
            });
        for wanted in env_refs
            .iter()
            .map(String::as_str)
            .chain(["RELAY__AMQP__URL", "RELAY__REDIS__URL"])
        {
            if !secret_keys.contains(wanted) {
                errors.push(format!("{overlay}: Secret relay-secrets lacks {wanted}"));
            }
        }
        if let Some((_, delivery)) = tree
            .docs
            .iter()
            .find(|(_, d)| kind(d) == "Deployment" && name(d) == "relay-delivery")
        {
            let spec = pod_spec(delivery);
            let secret_volumes: BTreeSet<&str> = spec["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["secret"].is_object())
                .map(|v| s(v, "/name"))
                .collect();
            let mounts: Vec<(&str, &Value)> = containers(delivery)
                .flat_map(|c| c["volumeMounts"].as_array().into_iter().flatten())
                .filter(|m| secret_volumes.contains(s(m, "/name")))
                .map(|m| (s(m, "/mountPath"), m))
                .collect();
            for file in &files {
                let mounted = mounts.iter().any(|(at, m)| {
                    file.starts_with(&format!("{}/", at.trim_end_matches('/')))
                        && m["readOnly"] == Value::Bool(true)
                });
                if !mounted {
                    errors.push(format!(
                        "{overlay}: secret_file {file} is on no read-only Secret mount of delivery"
                    ));
                }
            }
        }
        // Secrets carry placeholders in git, never real-looking values.
        for (path, doc) in tree.docs.iter().filter(|(_, d)| kind(d) == "Secret") {
            for (key, value) in doc["stringData"].as_object().into_iter().flatten() {
                if !value.as_str().unwrap_or("").contains("CHANGE-ME") {
                    errors.push(format!(
                        "{overlay}: Secret {} ({}) key {key} is not a CHANGE-ME placeholder",
                        name(doc),
                        path.display()
                    ));
                }
            }
        }
    }
    finish("secrets", errors);
}
