//! Checks of the deployment files, with nothing but Rust: the Kubernetes manifests of
//! deploy/k8s (kustomize base and overlays), docker-compose.yml, deploy/Dockerfile and
//! deploy/observability, for every service of [`SERVICES`]. Each test collects every violation and fails listing them all.
//! With `kubectl` on PATH the overlays are also rendered (`kubectl kustomize`).

#![allow(clippy::unwrap_used)]

mod compose;
mod config;
mod docker;
mod kustomize;
mod network_policy;
mod observability;
mod scaling;
mod secrets;
mod workloads;

use std::path::{Path, PathBuf};

use serde_json::Value;

/// One service of the relay as it is deployed.
pub(crate) struct Service {
    /// Its Deployment (and binary).
    pub(crate) deployment: &'static str,
    /// Its docker-compose service.
    pub(crate) compose: &'static str,
    /// Its section of relay.toml.
    pub(crate) section: &'static str,
    /// The key of that section naming its admin listener (`/livez`, `/readyz`, `/metrics`).
    pub(crate) listen: &'static str,
    /// The admin port.
    pub(crate) admin_port: u16,
    /// Whether SIGTERM drains for `<section>.shutdown_grace` (else it stops at once).
    pub(crate) drains: bool,
    /// Whether it has the public port 8080 (ingress).
    pub(crate) public: bool,
    /// Whether it calls out over HTTPS (destinations, provider APIs).
    pub(crate) calls_out: bool,
}

/// Every service: the three of the data path and the operator console (whose one port, pages
/// and admin endpoints, is treated as an admin port: never public).
pub(crate) const SERVICES: &[Service] = &[
    Service {
        deployment: "relay-ingress",
        compose: "ingress",
        section: "ingress",
        listen: "admin_listen",
        admin_port: 9090,
        drains: true,
        public: true,
        calls_out: true,
    },
    Service {
        deployment: "relay-worker",
        compose: "worker",
        section: "worker",
        listen: "admin_listen",
        admin_port: 9091,
        drains: true,
        public: false,
        calls_out: true,
    },
    Service {
        deployment: "relay-delivery",
        compose: "delivery",
        section: "delivery",
        listen: "admin_listen",
        admin_port: 9092,
        drains: true,
        public: false,
        calls_out: true,
    },
    Service {
        deployment: "relay-console",
        compose: "console",
        section: "console",
        listen: "listen",
        admin_port: 9093,
        drains: false,
        public: false,
        calls_out: false,
    },
];

/// Whether `port` is the admin port of a service.
pub(crate) fn is_admin_port(port: u64) -> bool {
    SERVICES.iter().any(|s| u64::from(s.admin_port) == port)
}

/// The image every relay container runs (deploy/Dockerfile), before kustomize's `images:`.
pub(crate) const RELAY_IMAGE: &str = "relay";

/// The kustomizations that are applied (`kubectl apply -k`).
pub(crate) const OVERLAYS: &[&str] = &["overlays/dev", "overlays/production"];

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub(crate) fn k8s() -> PathBuf {
    root().join("deploy/k8s").canonicalize().unwrap()
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a (multi-document) YAML text, merge keys (`<<`) applied, as JSON values.
/// Documents are split at `---` lines in column 0 (a document marker there ends any block
/// scalar too, so the split is exact for these files).
pub(crate) fn yaml_documents(text: &str, what: &str) -> Vec<Value> {
    let mut chunks = vec![String::new()];
    for line in text.lines() {
        if line == "---" || line.starts_with("--- ") {
            chunks.push(String::new());
        } else {
            let last = chunks.last_mut().unwrap();
            last.push_str(line);
            last.push('\n');
        }
    }
    let mut docs = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut value: serde_norway::Value = serde_norway::from_str(chunk)
            .unwrap_or_else(|e| panic!("{what}: document {i} is not valid YAML: {e}"));
        value
            .apply_merge()
            .unwrap_or_else(|e| panic!("{what}: document {i}: bad merge key: {e}"));
        if value.is_null() {
            continue;
        }
        docs.push(
            serde_json::to_value(&value)
                .unwrap_or_else(|e| panic!("{what}: document {i} is not JSON-like: {e}")),
        );
    }
    docs
}

pub(crate) fn yaml_file(path: &Path) -> Vec<Value> {
    yaml_documents(&read(path), &path.display().to_string())
}

/// Every file under `dir`, recursively.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

pub(crate) fn strs(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn s<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn kind(doc: &Value) -> &str {
    s(doc, "/kind")
}

pub(crate) fn name(doc: &Value) -> &str {
    s(doc, "/metadata/name")
}

pub(crate) fn finish(what: &str, errors: Vec<String>) {
    assert!(
        errors.is_empty(),
        "{what}: {} problem(s):\n  - {}",
        errors.len(),
        errors.join("\n  - ")
    );
}

pub(crate) fn workspace_version() -> String {
    let cargo: toml::Table = toml::from_str(&read(&root().join("Cargo.toml"))).unwrap();
    cargo["workspace"]["package"]["version"]
        .as_str()
        .unwrap()
        .to_owned()
}
