//! The kustomize tree of deploy/k8s (base and overlays) loaded with every file it names,
//! accessors of its workloads, and the checks that it is complete and renders.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{
    OVERLAYS, files_under, finish, k8s, kind, name, read, root, s, strs, yaml_documents, yaml_file,
};

/// One kustomization with what it brings in: the documents of its resources (its own files
/// and, recursively, those of the directories it lists) and the `images:` entries on the way.
#[derive(Default)]
pub(crate) struct Tree {
    pub(crate) docs: Vec<(PathBuf, Value)>,
    pub(crate) images: BTreeMap<String, Value>,
    /// Every `images:` entry on the way, each with the kustomization.yaml it is in.
    pub(crate) image_entries: Vec<(PathBuf, Value)>,
    pub(crate) generated_secret_keys: BTreeMap<String, BTreeSet<String>>,
    /// The env files of secret generators.
    pub(crate) generated_secret_files: Vec<PathBuf>,
    /// The documents of strategic-merge patch files.
    pub(crate) patch_docs: Vec<Value>,
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

pub(crate) struct Deploy {
    pub(crate) errors: Vec<String>,
    pub(crate) base: Tree,
    pub(crate) overlays: Vec<(&'static str, Tree)>,
}

pub(crate) fn load() -> Deploy {
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

/// The relay.toml of the ConfigMap `relay-config`.
pub(crate) fn relay_toml(tree: &Tree) -> toml::Table {
    let (_, map) = tree
        .docs
        .iter()
        .find(|(_, d)| kind(d) == "ConfigMap" && name(d) == "relay-config")
        .expect("a ConfigMap relay-config");
    toml::from_str(s(map, "/data/relay.toml")).expect("relay-config's relay.toml parses")
}

pub(crate) fn pod_spec(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]
}

pub(crate) fn containers(deployment: &Value) -> impl Iterator<Item = &Value> {
    let spec = pod_spec(deployment);
    spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(spec["initContainers"].as_array().into_iter().flatten())
}

pub(crate) fn image_name(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    match without_digest.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name,
        _ => without_digest,
    }
}

pub(crate) fn image_tag(image: &str) -> Option<&str> {
    let without_digest = image.split('@').next().unwrap_or(image);
    match without_digest.rsplit_once(':') {
        Some((_, tag)) if !tag.contains('/') => Some(tag),
        _ => None,
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
