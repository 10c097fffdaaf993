//! Checks of the deployment files, with nothing but Rust: the Kubernetes manifests of
//! deploy/k8s (kustomize base and overlays), docker-compose.yml, deploy/Dockerfile and
//! deploy/observability. Each test collects every violation and fails listing them all.
//! With `kubectl` on PATH the overlays are also rendered (`kubectl kustomize`).

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// The Deployments of the three services, with their config section and admin port.
const SERVICES: &[(&str, &str, u16)] = &[
    ("relay-ingress", "ingress", 9090),
    ("relay-worker", "worker", 9091),
    ("relay-delivery", "delivery", 9092),
];

/// The image every relay container runs (deploy/Dockerfile), before kustomize's `images:`.
const RELAY_IMAGE: &str = "relay";

/// The kustomizations that are applied (`kubectl apply -k`).
const OVERLAYS: &[&str] = &["overlays/dev", "overlays/production"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn k8s() -> PathBuf {
    root().join("deploy/k8s").canonicalize().unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a (multi-document) YAML text, merge keys (`<<`) applied, as JSON values.
/// Documents are split at `---` lines in column 0 (a document marker there ends any block
/// scalar too, so the split is exact for these files).
fn yaml_documents(text: &str, what: &str) -> Vec<Value> {
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

fn yaml_file(path: &Path) -> Vec<Value> {
    yaml_documents(&read(path), &path.display().to_string())
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
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

fn strs(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn s<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn kind(doc: &Value) -> &str {
    s(doc, "/kind")
}

fn name(doc: &Value) -> &str {
    s(doc, "/metadata/name")
}

/// One kustomization with what it brings in: the documents of its resources (its own files
/// and, recursively, those of the directories it lists) and the `images:` entries on the way.
#[derive(Default)]
struct Tree {
    docs: Vec<(PathBuf, Value)>,
    images: BTreeMap<String, Value>,
    /// Every `images:` entry on the way, each with the kustomization.yaml it is in.
    image_entries: Vec<(PathBuf, Value)>,
    generated_secret_keys: BTreeMap<String, BTreeSet<String>>,
    /// The env files of secret generators.
    generated_secret_files: Vec<PathBuf>,
    /// The documents of strategic-merge patch files.
    patch_docs: Vec<Value>,
}

/// Every file a kustomization.yaml names, checked to exist, and its resources loaded.
fn load_tree(dir: &Path, errors: &mut Vec<String>, referenced: &mut BTreeSet<PathBuf>) -> Tree {
    let dir = &dir.canonicalize().unwrap();
    let file = dir.join("kustomization.yaml");
    referenced.insert(file.clone());
    let docs = yaml_file(&file);
    let k = &docs[0];
    let mut tree = Tree::default();
    for resource in strs(&k["resources"]) {
        let path = dir.join(&resource);
        if path.is_dir() {
            if !path.join("kustomization.yaml").is_file() {
                errors.push(format!(
                    "{}: resource {resource} is a directory without kustomization.yaml",
                    file.display()
                ));
                continue;
            }
            let sub = load_tree(&path, errors, referenced);
            tree.docs.extend(sub.docs);
            tree.images.extend(sub.images);
            tree.image_entries.extend(sub.image_entries);
            tree.generated_secret_keys.extend(sub.generated_secret_keys);
        } else if path.is_file() {
            referenced.insert(path.clone());
            for doc in yaml_file(&path) {
                tree.docs.push((path.clone(), doc));
            }
        } else {
            errors.push(format!(
                "{}: resource {resource} does not exist",
                file.display()
            ));
        }
    }
    for patch in k["patches"].as_array().into_iter().flatten() {
        if let Some(p) = patch["path"].as_str() {
            let path = dir.join(p);
            if path.is_file() {
                tree.patch_docs.extend(yaml_file(&path));
                referenced.insert(path);
            } else {
                errors.push(format!("{}: patch {p} does not exist", file.display()));
            }
        }
    }
    for generator in ["secretGenerator", "configMapGenerator"] {
        for g in k[generator].as_array().into_iter().flatten() {
            let mut keys = BTreeSet::new();
            for f in strs(&g["envs"]).into_iter().chain(strs(&g["files"])) {
                let f = f.rsplit('=').next().unwrap_or(&f).to_owned();
                let path = dir.join(&f);
                if !path.is_file() {
                    errors.push(format!(
                        "{}: {generator} file {f} does not exist",
                        file.display()
                    ));
                    continue;
                }
                referenced.insert(path.clone());
                if strs(&g["envs"]).contains(&f) {
                    if generator == "secretGenerator" {
                        tree.generated_secret_files.push(path.clone());
                    }
                    keys.extend(
                        read(&path)
                            .lines()
                            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                            .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_owned())),
                    );
                }
            }
            if generator == "configMapGenerator" {
                errors.push(format!(
                    "{}: use a ConfigMap resource (checked for secrets here), not a generator",
                    file.display()
                ));
            }
            if generator == "secretGenerator" {
                tree.generated_secret_keys
                    .insert(s(g, "/name").to_owned(), keys);
            }
        }
    }
    for image in k["images"].as_array().into_iter().flatten() {
        tree.images
            .insert(s(image, "/name").to_owned(), image.clone());
        tree.image_entries.push((file.clone(), image.clone()));
    }
    tree
}

struct Deploy {
    errors: Vec<String>,
    base: Tree,
    overlays: Vec<(&'static str, Tree)>,
}

fn load() -> Deploy {
    let mut errors = Vec::new();
    let mut referenced = BTreeSet::new();
    let base = load_tree(&k8s().join("base"), &mut errors, &mut referenced);
    let overlays = OVERLAYS
        .iter()
        .map(|o| (*o, load_tree(&k8s().join(o), &mut errors, &mut referenced)))
        .collect();
    // Every YAML file parses, and none lies around unused.
    for path in files_under(&k8s()) {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if matches!(ext, "yaml" | "yml") {
            yaml_file(&path);
        }
        if !referenced.contains(&path) {
            errors.push(format!(
                "{} is named by no kustomization.yaml",
                path.display()
            ));
        }
    }
    Deploy {
        errors,
        base,
        overlays,
    }
}

fn finish(what: &str, errors: Vec<String>) {
    assert!(
        errors.is_empty(),
        "{what}: {} problem(s):\n  - {}",
        errors.len(),
        errors.join("\n  - ")
    );
}

fn workspace_version() -> String {
    let cargo: toml::Table = toml::from_str(&read(&root().join("Cargo.toml"))).unwrap();
    cargo["workspace"]["package"]["version"]
        .as_str()
        .unwrap()
        .to_owned()
}

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

/// The relay.toml of the ConfigMap `relay-config`.
fn relay_toml(tree: &Tree) -> toml::Table {
    let (_, map) = tree
        .docs
        .iter()
        .find(|(_, d)| kind(d) == "ConfigMap" && name(d) == "relay-config")
        .expect("a ConfigMap relay-config");
    toml::from_str(s(map, "/data/relay.toml")).expect("relay-config's relay.toml parses")
}

fn pod_spec(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]
}

fn containers(deployment: &Value) -> impl Iterator<Item = &Value> {
    let spec = pod_spec(deployment);
    spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(spec["initContainers"].as_array().into_iter().flatten())
}

fn image_name(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    match without_digest.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name,
        _ => without_digest,
    }
}

fn image_tag(image: &str) -> Option<&str> {
    let without_digest = image.split('@').next().unwrap_or(image);
    match without_digest.rsplit_once(':') {
        Some((_, tag)) if !tag.contains('/') => Some(tag),
        _ => None,
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
fn every_kustomization_names_existing_files_and_every_yaml_parses() {
    let deploy = load();
    let mut errors = deploy.errors;
    if deploy.base.docs.is_empty() {
        errors.push("deploy/k8s/base has no resources".to_owned());
    }
    if root().join("deploy/k8s/relay.yaml").exists() {
        errors.push("deploy/k8s/relay.yaml is replaced by the kustomize layout".to_owned());
    }
    finish("kustomizations", errors);
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
        for (deployment_name, section, _) in SERVICES {
            let Some((_, deployment)) = tree
                .docs
                .iter()
                .find(|(_, d)| kind(d) == "Deployment" && name(d) == *deployment_name)
            else {
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
                .filter(|p| kind(p) == "Deployment" && name(p) == *deployment_name)
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
            let checked = loaded.and_then(|config| match *section {
                "ingress" => config.validate_ingress(),
                "worker" => config.validate_worker(),
                _ => config.validate_delivery(),
            });
            if let Err(e) = checked {
                errors.push(format!(
                    "{overlay}: {deployment_name} refuses relay.toml: {e}"
                ));
            }
        }
    }
    finish("configuration", errors);
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

        for (deployment_name, section, admin_port) in SERVICES {
            let who = format!("{overlay}: {deployment_name}");
            let Some(deployment) = of_kind("Deployment").find(|d| name(d) == *deployment_name)
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
            let configured = config
                .get(*section)
                .and_then(|t| t.get("admin_listen"))
                .and_then(|v| v.as_str())
                .unwrap_or("");
            if !configured.ends_with(&format!(":{admin_port}")) || configured.starts_with("127.") {
                errors.push(format!(
                    "{who}: {section}.admin_listen {configured:?} is not 0.0.0.0:{admin_port}"
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
            // Grace: SIGTERM drains for shutdown_grace; the pod must outlast it.
            let grace = env(&format!(
                "RELAY__{}__SHUTDOWN_GRACE",
                section.to_ascii_uppercase()
            ))
            .or_else(|| {
                config
                    .get(*section)
                    .and_then(|t| t.get("shutdown_grace"))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            });
            match (grace, pod["terminationGracePeriodSeconds"].as_u64()) {
                (Some(grace), Some(period)) if Duration::from_secs(period) > duration(&grace) => {}
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
            check_network_policy(
                &who,
                &policies,
                *admin_port,
                section == &"ingress",
                &mut errors,
            );
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
        for port in [8080, 9090, 9091, 9092] {
            if !exposes(port) {
                errors.push(format!("{overlay}: no Service for port {port}"));
            }
        }
        for svc in &services {
            let admin = svc["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| matches!(p["port"].as_u64(), Some(9090..=9092)));
            if admin && matches!(s(svc, "/spec/type"), "LoadBalancer" | "NodePort") {
                errors.push(format!("{overlay}: admin Service {} is public", name(svc)));
            }
        }
        for ingress in of_kind("Ingress") {
            if serde_json::to_string(ingress).unwrap().contains("-admin") {
                errors.push(format!(
                    "{overlay}: Ingress {} exposes an admin port",
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

/// Ingress only on the public port (ingress) and the admin port from the monitoring namespace;
/// egress only to the broker, Redis, DNS and HTTPS (more policies may add to it in an overlay).
fn check_network_policy(
    who: &str,
    policies: &[&Value],
    admin_port: u16,
    public: bool,
    errors: &mut Vec<String>,
) {
    let allowed_egress: BTreeSet<(String, u64)> = [
        ("TCP", 5672),
        ("TCP", 6379),
        ("UDP", 53),
        ("TCP", 53),
        ("TCP", 443),
    ]
    .iter()
    .map(|(p, n)| ((*p).to_owned(), *n))
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

#[test]
fn kubectl_kustomize_renders_every_overlay() {
    let found = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("note: kubectl is not on PATH; the overlays were checked but not rendered");
        return;
    }
    let mut errors = Vec::new();
    for dir in std::iter::once("base").chain(OVERLAYS.iter().copied()) {
        let out = std::process::Command::new("kubectl")
            .arg("kustomize")
            .arg(k8s().join(dir))
            .output()
            .unwrap();
        if !out.status.success() {
            errors.push(format!(
                "kubectl kustomize {dir}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
            continue;
        }
        let rendered = String::from_utf8(out.stdout).unwrap();
        let docs = yaml_documents(&rendered, dir);
        for doc in &docs {
            for c in containers(doc) {
                let image = s(c, "/image");
                if image_tag(image).is_none_or(|t| t == "latest") {
                    errors.push(format!(
                        "{dir}: rendered image {image} is untagged or :latest"
                    ));
                }
            }
        }
        if dir == "overlays/dev"
            && docs
                .iter()
                .any(|d| s(d, "/apiVersion").starts_with("keda.sh/"))
        {
            errors.push("dev: KEDA objects left after the overlay's delete patches".to_owned());
        }
        if dir == "overlays/production"
            && docs.iter().filter(|d| kind(d) == "ScaledObject").count() != 2
        {
            errors.push("production: rendered without both ScaledObjects".to_owned());
        }
    }
    finish("kubectl kustomize", errors);
}

#[test]
fn compose_runs_every_service_healthy_against_the_sink() {
    let path = root().join("docker-compose.yml");
    let docs = yaml_file(&path);
    let mut errors = Vec::new();
    let services = &docs[0]["services"];
    for wanted in ["ingress", "worker", "delivery", "rabbitmq", "redis", "sink"] {
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
    for service in ["ingress", "worker", "delivery"] {
        let svc = &services[service];
        for dependency in ["rabbitmq", "redis"] {
            if s(svc, &format!("/depends_on/{dependency}/condition")) != "service_healthy" {
                errors.push(format!(
                    "compose: {service} does not wait for a healthy {dependency}"
                ));
            }
        }
        let test = serde_json::to_string(&svc["healthcheck"]["test"]).unwrap();
        if !test.contains("/readyz") {
            errors.push(format!("compose: {service} has no /readyz healthcheck"));
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
    for target in ["ingress:9090", "worker:9091", "delivery:9092"] {
        if !targets.contains(target) {
            errors.push(format!("prometheus.yml: does not scrape {target}"));
        }
    }
    yaml_file(&dir.join("otel-collector.yaml"));
    finish("observability", errors);
}

#[test]
fn the_image_caches_dependencies_and_runs_unprivileged() {
    let dockerfile = read(&root().join("deploy/Dockerfile"));
    let mut errors = Vec::new();
    for wanted in [
        "cargo chef prepare",
        "cargo chef cook",
        "USER 65532",
        "COPY relay.example.toml",
        "COPY deploy/dev",
    ] {
        if !dockerfile.contains(wanted) {
            errors.push(format!("Dockerfile: no `{wanted}`"));
        }
    }
    for line in dockerfile.lines().filter(|l| l.starts_with("FROM ")) {
        if line.contains(":latest") {
            errors.push(format!("Dockerfile: {line}"));
        }
    }
    let ignore = read(&root().join(".dockerignore"));
    for wanted in ["target/", ".git/", "bench-results/", "*.log"] {
        if !ignore.lines().any(|l| l.trim() == wanted) {
            errors.push(format!(".dockerignore: no {wanted}"));
        }
    }
    finish("image", errors);
}
