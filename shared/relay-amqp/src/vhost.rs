//! Throwaway vhosts on a local broker, for the end-to-end tests and `relayctl bench`.
//!
//! They isolate a run (every topology name lives in its vhost) and vanish afterwards. Created
//! with `rabbitmqctl`, so the broker must be local; `RELAY_RABBITMQCTL` names another command
//! line (e.g. `sudo rabbitmqctl` for a user without the Erlang cookie). Services never call this.

use std::process::Command;

/// `rabbitmqctl` failed.
#[derive(Debug, thiserror::Error)]
#[error("rabbitmqctl {args}: {message}")]
pub struct VhostError {
    args: String,
    message: String,
}

fn rabbitmqctl(args: &[&str]) -> Result<(), VhostError> {
    let command = std::env::var("RELAY_RABBITMQCTL").unwrap_or_else(|_| "rabbitmqctl".to_owned());
    let mut words = command.split_whitespace();
    let program = words.next().unwrap_or("rabbitmqctl");
    let failed = |message: String| VhostError {
        args: args.join(" "),
        message,
    };
    let out = Command::new(program)
        .args(words)
        .args(args)
        .output()
        .map_err(|e| {
            failed(format!(
                "cannot run it ({e}); a local RabbitMQ is needed, see RELAY_RABBITMQCTL"
            ))
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

/// Creates `name` and gives `user` full permissions on it.
pub fn create(name: &str, user: &str) -> Result<(), VhostError> {
    rabbitmqctl(&["add_vhost", name])?;
    rabbitmqctl(&["set_permissions", "-p", name, user, ".*", ".*", ".*"])
}

/// Deletes `name` and everything in it.
pub fn delete(name: &str) -> Result<(), VhostError> {
    rabbitmqctl(&["delete_vhost", name])
}
