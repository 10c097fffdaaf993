//! Services as child processes, for what an in-process service cannot show: `kill -9`.
//!
//! The binaries are the workspace's own (`target/<profile>/relay-*`, next to the test binary's
//! `deps/` folder); `scripts/test` builds them before the tests run. Each child gets the test
//! environment's configuration in a file of its own and its secrets in its environment, and
//! logs to a file named in any failure message.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::TestEnv;

/// A relay service running as a child process.
pub struct Child {
    name: &'static str,
    child: std::process::Child,
    /// Its admin address.
    pub admin: SocketAddr,
    /// Its log file.
    pub log: PathBuf,
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (cargo build --bins), as scripts/test does",
        path.display()
    );
    path
}

impl TestEnv {
    /// Starts `name` (`relay-worker`, …) as a child process on this environment's
    /// configuration, and waits until it is ready.
    pub async fn spawn(&self, name: &'static str) -> Child {
        let mut config = self.config.clone();
        let admin = free_port();
        config.worker.admin_listen = admin;
        config.delivery.admin_listen = admin;
        config.ingress.admin_listen = admin;
        config.console.listen = admin;
        config.telemetry.log_format = relay_core::config::LogFormat::Json;
        let dir = std::env::temp_dir().join("relay-e2e");
        std::fs::create_dir_all(&dir).expect("temp dir");
        let stem = format!(
            "{}-{name}-{}",
            self.vhost.replace('/', "_"),
            uuid::Uuid::now_v7().simple()
        );
        let config_path = dir.join(format!("{stem}.toml"));
        std::fs::write(
            &config_path,
            toml::to_string(&config).expect("config as TOML"),
        )
        .expect("write the config");
        let log = dir.join(format!("{stem}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(binary(name));
        command
            .env("RELAY_CONFIG", &config_path)
            .env("RUST_LOG", "info")
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        for (var, value) in &self.secrets {
            command.env(var, value);
        }
        let child = command.spawn().expect("start the service");
        let child = Child {
            name,
            child,
            admin,
            log,
        };
        crate::wait_ready(admin).await;
        child
    }
}

impl Child {
    /// `kill -9`: no drain, no goodbye to the broker.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the drain.
    pub fn terminate(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// SIGHUP: a service reads its secret files again.
    pub fn hangup(&self) {
        let _ = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status();
    }

    /// The service's `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        crate::admin_metrics(self.admin).await
    }

    /// The value of one series of the service's metrics, 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        crate::series_value(&self.metrics_text().await, series)
    }

    /// The service's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // A test that fails midway must not leave a service running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestEnv {
    /// Runs `relayctl` with this environment's configuration and secrets; returns whether it
    /// succeeded and what it printed.
    pub async fn relayctl(&self, args: &[&str]) -> (bool, String) {
        let dir = std::env::temp_dir().join("relay-e2e");
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(format!(
            "{}-relayctl-{}.toml",
            self.vhost.replace('/', "_"),
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::write(
            &path,
            toml::to_string(&self.config).expect("config as TOML"),
        )
        .expect("write the config");
        let mut command = tokio::process::Command::new(binary("relayctl"));
        command
            .env("RELAY_CONFIG", &path)
            .env_remove("RUST_LOG")
            .args(args)
            .stdin(Stdio::null());
        for (var, value) in &self.secrets {
            command.env(var, value);
        }
        let out = command.output().await.expect("relayctl runs");
        let _ = std::fs::remove_file(&path);
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}
