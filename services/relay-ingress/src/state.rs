//! What every route shares: the broker, the store, and each configured source's settings,
//! built once from the validated configuration.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use relay_amqp::Broker;
use relay_core::config::{Config, EnvSecret};
use relay_store::Store;
use relay_telemetry::admin::StartError;

use crate::{acrobits, hooks, plivo};

pub(crate) struct Shared {
    pub(crate) broker: Broker,
    pub(crate) store: Store,
    pub(crate) salt: Option<EnvSecret>,
    pub(crate) accounts: HashMap<u64, EnvSecret>,
    pub(crate) body_limit: usize,
    pub(crate) retry_after_secs: u64,
    pub(crate) dedup_ttl: Duration,
    /// Generic sources by name.
    pub(crate) hooks: HashMap<String, hooks::HookSource>,
    /// The Re:amaze route, when configured.
    pub(crate) reamaze: Option<hooks::HookSource>,
    /// The Voximplant scenario events route, when configured.
    pub(crate) voximplant_events: Option<hooks::HookSource>,
    /// The Plivo routes, when configured.
    pub(crate) plivo: Option<plivo::PlivoRoutes>,
    /// The Acrobits web callback, when configured.
    pub(crate) acrobits: Option<acrobits::AcrobitsRoute>,
    /// `ingress.public_base_url`: signed-URL schemes verify against it.
    pub(crate) public_base_url: String,
}

pub(crate) type AppState = Arc<Shared>;

impl Shared {
    /// Every route's state from `config` (already validated), over `broker` and `store`.
    pub(crate) fn new(config: &Config, broker: Broker, store: Store) -> Result<Self, StartError> {
        let ingress = &config.ingress;
        let mut sources = HashMap::new();
        for (name, source) in &ingress.sources {
            sources.insert(name.clone(), hooks::HookSource::from_config(name, source)?);
        }
        let voximplant_events = match &ingress.voximplant.events_secret_env {
            Some(secret) => Some(hooks::HookSource::voximplant_events(secret)?),
            None => None,
        };
        let acrobits = match &ingress.acrobits {
            Some(route) => Some(acrobits::AcrobitsRoute::new(route)?),
            None => None,
        };
        Ok(Self {
            hooks: sources,
            reamaze: ingress
                .reamaze
                .as_ref()
                .map(|r| hooks::HookSource::reamaze(r.secret_env.clone())),
            voximplant_events,
            plivo: ingress.plivo.as_ref().map(plivo::PlivoRoutes::new),
            acrobits,
            public_base_url: ingress.public_base_url.clone(),
            broker,
            store,
            salt: ingress.voximplant.salt_env.clone(),
            accounts: ingress
                .voximplant
                .accounts
                .iter()
                .map(|a| (a.account_id, a.api_key_env.clone()))
                .collect(),
            body_limit: ingress.body_limit_bytes,
            retry_after_secs: ingress.retry_after.as_secs().max(1),
            dedup_ttl: config.redis.dedup_ttl,
        })
    }
}
