//! deploy/Dockerfile and .dockerignore.

use crate::{SERVICES, finish, read, root};

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
    // Every service's binary, and relayctl, is built and shipped; their ports are exposed.
    let final_stage = dockerfile.rsplit("\nFROM ").next().unwrap_or("");
    let bins = SERVICES.iter().map(|s| s.deployment).chain(["relayctl"]);
    for bin in bins {
        if !final_stage.contains(&format!("/target/release/{bin} ")) {
            errors.push(format!("Dockerfile: the image does not ship {bin}"));
        }
    }
    let exposed: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(str::split_whitespace)
        .collect();
    for port in SERVICES.iter().map(|s| s.admin_port.to_string()) {
        if !exposed.contains(&port.as_str()) {
            errors.push(format!("Dockerfile: port {port} not exposed"));
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
