//! Start-up and lifecycle: [`Ingress::build`] validates the configuration, binds both listeners
//! and starts connecting to RabbitMQ and Redis; [`Ingress::run_until_stopped`] serves, then
//! drains.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use relay_amqp::{Broker, BrokerSettings};
use relay_core::config::Config;
use relay_store::Store;
use relay_telemetry::Readiness;
use relay_telemetry::admin::{AdminServer, StartError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::routes::router;
use crate::series::register_metrics;
use crate::server;
use crate::state::Shared;

/// A built, bound, not yet serving relay-ingress.
pub struct Ingress {
    listener: TcpListener,
    admin: AdminServer,
    router: Router,
    readiness: Readiness,
    background: CancellationToken,
    grace: Duration,
    limits: server::Limits,
}

impl Ingress {
    /// Validates `config`, binds both listeners and starts connecting to RabbitMQ and Redis in
    /// the background (the service serves 503 until the broker is there).
    pub async fn build(config: Config) -> Result<Self, StartError> {
        config.validate_ingress()?;
        let readiness = Readiness::new();
        let background = CancellationToken::new();
        let broker = Broker::start(
            BrokerSettings::from_config(&config, "relay-ingress"),
            &readiness,
            background.clone(),
        );
        let store = Store::start(&config.redis, &readiness, background.clone());
        let shared = Arc::new(Shared::new(&config, broker, store)?);
        register_metrics(&config);
        let ingress = &config.ingress;
        let listener = TcpListener::bind(ingress.listen)
            .await
            .map_err(StartError::bind(ingress.listen))?;
        let admin = AdminServer::bind(ingress.admin_listen, readiness.clone())
            .await
            .map_err(StartError::bind(ingress.admin_listen))?;
        Ok(Self {
            listener,
            admin,
            router: router(shared),
            readiness,
            background,
            grace: ingress.shutdown_grace,
            limits: server::Limits::from_config(ingress),
        })
    }

    /// The public listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves until `stop`, then drains: not ready at once, no new connections, idle ones
    /// closed, in-flight requests get the grace budget; then the broker connection closes.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> std::io::Result<()> {
        let admin = self.admin.spawn();
        server::serve(
            self.listener,
            self.router,
            self.limits,
            &self.readiness,
            &stop,
            self.grace,
        )
        .await;
        self.background.cancel();
        admin.stop().await;
        tracing::info!("relay-ingress stopped");
        Ok(())
    }
}
