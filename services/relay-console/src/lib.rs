//! relay-console: the operator's web console, on an admin-side port.
//!
//! Server-rendered pages (askama templates, no JavaScript build chain) over what the relay
//! already keeps: call sessions, delivery records and their index, the parked-message index,
//! destinations and their breakers, alert notices (Redis, through `relay-store` and
//! `relay-worker`'s call log), queue depths (RabbitMQ, passive declares) and the other
//! services' `/metrics`.
//!
//! * [`auth`]: users, argon2 password checks, bounded and locked out after repeated failures.
//! * [`session`]: the session cookie (`HttpOnly`, `SameSite=Strict`, `Secure` when configured),
//!   sessions in Redis under the hash of their token, and CSRF tokens on every form.
//! * [`pages`]: one module per page.
//! * [`rates`]: events in and deliveries out per second, from the services' counters.

pub mod auth;
mod mask;
mod pages;
mod rates;
pub mod session;
mod state;
mod web;

use std::net::SocketAddr;
use std::time::Duration;

use relay_amqp::{Broker, BrokerSettings};
use relay_core::config::Config;
use relay_store::Store;
use relay_telemetry::Readiness;
use relay_telemetry::admin::AdminServer;
use tokio_util::sync::CancellationToken;

pub use mask::mask_number;

/// A built, not yet serving, console.
pub struct Console {
    admin: AdminServer,
    addr: SocketAddr,
    background: CancellationToken,
}

impl Console {
    /// Validates `config`, binds the console's port and starts connecting to RabbitMQ and Redis.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config
            .validate_console()
            .map_err(|error| anyhow::anyhow!(config.explain(&error)))?;
        let users = auth::Users::from_config(&config.console)?;
        let readiness = Readiness::new();
        let background = CancellationToken::new();
        let store = Store::start(&config.redis, &readiness, background.clone());
        let broker = Broker::start(
            BrokerSettings::from_config(&config, "relay-console"),
            &readiness,
            background.clone(),
        );
        let rates = rates::Rates::start(&config, background.clone());
        let state = state::AppState::new(config.clone(), store, broker, users, rates);
        let routes = pages::routes(state.clone());
        let admin = AdminServer::bind_with(config.console.listen, readiness, routes)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on console.listen {}: {e}",
                    config.console.listen
                )
            })?;
        let addr = admin.local_addr()?;
        state.start_background(background.clone());
        Ok(Self {
            admin,
            addr,
            background,
        })
    }

    /// The address the console serves on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `stop`, then ends its background work.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> anyhow::Result<()> {
        let served = self.admin.serve(stop).await;
        self.background.cancel();
        // Replays under way stop between two messages; what they held goes back to its queue.
        tokio::time::sleep(Duration::from_millis(50)).await;
        served.map_err(Into::into)
    }
}
