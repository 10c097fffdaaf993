//! A RabbitMQ cluster of the test's own: three local nodes with their own ports, cookie and
//! data directories (never the shared broker), started from the machine's `rabbitmq-server`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The rabbitmq programs (Debian's package puts the real scripts here; `/usr/sbin` wraps them
/// in `su rabbitmq`, which would lose our environment).
const BIN: &str = "/usr/lib/rabbitmq/bin";
/// The cookie our nodes share (and the CLI uses): not the shared broker's.
const COOKIE: &str = "relay-fault-suite-cookie";

/// One node of the private cluster.
pub struct Node {
    /// Its Erlang node name, e.g. `relayf1a2b@localhost`.
    pub name: String,
    /// Its AMQP port.
    pub port: u16,
    dist_port: u16,
    dir: PathBuf,
    child: Option<std::process::Child>,
}

/// Three nodes clustered together.
pub struct PrivateCluster {
    /// The nodes, in start order.
    pub nodes: Vec<Node>,
    home: PathBuf,
}

/// A free port outside 35672–35682, where RabbitMQ's command line tools listen.
fn free_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        if !(35_600..=35_700).contains(&port) {
            return port;
        }
    }
}

impl PrivateCluster {
    /// Starts three nodes and clusters them (about 20 s).
    pub async fn start() -> Self {
        let tag = uuid::Uuid::now_v7().simple().to_string();
        let tag = &tag[tag.len() - 8..];
        let root = std::env::temp_dir().join(format!("relay-cluster-{tag}"));
        let home = root.join("home");
        std::fs::create_dir_all(&home).expect("cluster home");
        let cookie = home.join(".erlang.cookie");
        std::fs::write(&cookie, COOKIE).expect("cookie");
        let mut permissions = std::fs::metadata(&cookie).expect("cookie").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o400);
        std::fs::set_permissions(&cookie, permissions).expect("cookie mode");
        let mut cluster = Self {
            nodes: (1..=3)
                .map(|i| Node {
                    name: format!("relayf{tag}n{i}@localhost"),
                    port: free_port(),
                    dist_port: free_port(),
                    dir: root.join(format!("n{i}")),
                    child: None,
                })
                .collect(),
            home,
        };
        for i in 0..3 {
            cluster.launch(i);
        }
        for i in 0..3 {
            cluster.await_node(i).await;
        }
        let first = cluster.nodes[0].name.clone();
        for i in 1..3 {
            cluster.ctl(i, &["stop_app"]).await;
            cluster.ctl(i, &["join_cluster", &first]).await;
            cluster.ctl(i, &["start_app"]).await;
        }
        cluster
    }

    fn launch(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        std::fs::create_dir_all(&node.dir).expect("node dir");
        std::fs::write(node.dir.join("enabled_plugins"), "[].").expect("plugins file");
        std::fs::write(
            node.dir.join("rabbitmq.conf"),
            "queue_leader_locator = balanced\nloopback_users = none\n",
        )
        .expect("node config");
        let log = std::fs::File::create(node.dir.join("out.log")).expect("node log");
        let child = Command::new(format!("{BIN}/rabbitmq-server"))
            // A node killed with -9 may leave a crash dump: in its own folder, not the tests'.
            .current_dir(&node.dir)
            .env("ERL_CRASH_DUMP", node.dir.join("erl_crash.dump"))
            .env("HOME", &self.home)
            .env("RABBITMQ_NODENAME", &node.name)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", node.port.to_string())
            .env("RABBITMQ_DIST_PORT", node.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", node.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", node.dir.join("log"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                node.dir.join("enabled_plugins"),
            )
            .env("RABBITMQ_CONFIG_FILE", node.dir.join("rabbitmq"))
            .env("RABBITMQ_PID_FILE", node.dir.join("pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("node log"))
            .stderr(log)
            .spawn()
            .expect("rabbitmq-server (from the OS packages) runs");
        node.child = Some(child);
    }

    /// Waits until node `i` has booted (its name is known to epmd only a moment after the
    /// process starts, so the first attempts may not reach it).
    async fn await_node(&self, i: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let (ok, out) = self.ctl_raw(i, &["await_startup", "--timeout", "60"]).await;
            if ok {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node {} never started: {out} (see {})",
                self.nodes[i].name,
                self.nodes[i].dir.join("out.log").display()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Runs `rabbitmqctl` against node `i`; panics with its output on failure.
    pub async fn ctl(&self, i: usize, args: &[&str]) -> String {
        let output = self.ctl_raw(i, args).await;
        assert!(
            output.0,
            "rabbitmqctl -n {} {}: {}",
            self.nodes[i].name,
            args.join(" "),
            output.1
        );
        output.1
    }

    /// Runs `rabbitmqctl` against node `i`: (success, output).
    pub async fn ctl_raw(&self, i: usize, args: &[&str]) -> (bool, String) {
        let mut command = tokio::process::Command::new(format!("{BIN}/rabbitmqctl"));
        command
            .current_dir(&self.home)
            .env("ERL_CRASH_DUMP", self.home.join("erl_crash.dump"))
            .env("HOME", &self.home)
            .arg("-n")
            .arg(&self.nodes[i].name)
            .args(args)
            .stdin(Stdio::null());
        match tokio::time::timeout(Duration::from_secs(120), command.output()).await {
            Ok(Ok(out)) => (
                out.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            ),
            Ok(Err(e)) => (false, e.to_string()),
            Err(_) => (false, "timed out".to_owned()),
        }
    }

    /// The node (index) leading quorum queue `queue`, asked of any running node.
    pub async fn leader_of(&self, queue: &str) -> usize {
        for i in 0..self.nodes.len() {
            if !self.is_running(i) {
                continue;
            }
            let (ok, out) = self
                .ctl_raw(
                    i,
                    &["list_queues", "name", "leader", "--no-table-headers", "-s"],
                )
                .await;
            if !ok {
                continue;
            }
            for line in out.lines() {
                let mut words = line.split_whitespace();
                if words.next() == Some(queue)
                    && let Some(leader) = words.next()
                    && let Some(j) = self.nodes.iter().position(|n| n.name == leader)
                {
                    return j;
                }
            }
        }
        panic!("no running node knows the leader of {queue}");
    }

    /// The node (index) holding the connection named `name` (e.g. `relay-ingress`).
    pub async fn node_of_connection(&self, name: &str) -> Option<usize> {
        for i in 0..self.nodes.len() {
            if !self.is_running(i) {
                continue;
            }
            let (ok, out) = self
                .ctl_raw(i, &["list_connections", "pid", "client_properties", "-s"])
                .await;
            if !ok {
                continue;
            }
            // A connection's pid names its node: `<relayf…n2@localhost.1656…>`.
            for line in out.lines().filter(|l| l.contains(name)) {
                let pid = line.split_whitespace().next().unwrap_or_default();
                if let Some(j) = self.nodes.iter().position(|n| pid.contains(&n.name)) {
                    return Some(j);
                }
            }
        }
        None
    }

    /// Whether node `i`'s process is up.
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// `kill -9` node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            // rabbitmq-server runs the VM as a child of its script: kill the VM by its pid file.
            if let Ok(pid) = std::fs::read_to_string(self.nodes[i].dir.join("pid")) {
                let _ = Command::new("kill").args(["-9", pid.trim()]).status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` again (it rejoins with its data) and waits until it runs.
    pub async fn restart(&mut self, i: usize) {
        self.launch(i);
        self.await_node(i).await;
    }

    /// The AMQP addresses of every node.
    pub fn addresses(&self) -> Vec<std::net::SocketAddr> {
        self.nodes
            .iter()
            .map(|n| std::net::SocketAddr::from(([127, 0, 0, 1], n.port)))
            .collect()
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        if let Some(root) = self.home.parent() {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}
