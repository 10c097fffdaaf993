//! What every handler shares.

use std::sync::Arc;

use relay_amqp::Broker;
use relay_core::config::Config;
use relay_store::Store;
use tokio_util::sync::CancellationToken;

use crate::auth::Users;
use crate::pages::parked::Replays;
use crate::rates::Rates;

/// The console's shared state.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Inner>);

pub(crate) struct Inner {
    config: Config,
    store: Store,
    broker: Broker,
    users: Users,
    rates: Rates,
    replays: Replays,
}

impl AppState {
    pub(crate) fn new(
        config: Config,
        store: Store,
        broker: Broker,
        users: Users,
        rates: Rates,
    ) -> Self {
        Self(Arc::new(Inner {
            config,
            store,
            broker,
            users,
            rates,
            replays: Replays::default(),
        }))
    }

    /// Starts what runs beside the pages: the parked-message indexer.
    pub(crate) fn start_background(&self, stop: CancellationToken) {
        crate::pages::parked::start_indexer(self.clone(), stop);
    }

    pub(crate) fn config(&self) -> &Config {
        &self.0.config
    }

    pub(crate) fn store(&self) -> &Store {
        &self.0.store
    }

    pub(crate) fn broker(&self) -> &Broker {
        &self.0.broker
    }

    pub(crate) fn users(&self) -> &Users {
        &self.0.users
    }

    pub(crate) fn rates(&self) -> &Rates {
        &self.0.rates
    }

    pub(crate) fn replays(&self) -> &Replays {
        &self.0.replays
    }

    /// Whether phone numbers are shown masked.
    pub(crate) fn masked(&self) -> bool {
        self.0.config.console.mask_numbers
    }
}
