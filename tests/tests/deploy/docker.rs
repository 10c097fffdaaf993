//! deploy/Dockerfile and .dockerignore.

use crate::{finish, read, root};

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
