//! The labelled series ingress records: the `source` label of each configured route, and every
//! series created at zero at start-up.

use relay_core::config::Config;

use crate::problem::Problem;
use crate::{acrobits, hooks, plivo, publish, respond, server, voximplant};

/// The `source` label of every route `config` configures: `voximplant` (callbacks),
/// `voximplant-events`, `reamaze`, `plivo`, `acrobits`, and each generic source's name. The
/// same name labels a route's requests and the events it publishes.
pub fn sources(config: &Config) -> Vec<String> {
    let ingress = &config.ingress;
    let vox = &ingress.voximplant;
    let builtin = [
        (
            vox.salt_env.is_some() || !vox.accounts.is_empty(),
            voximplant::SOURCE,
        ),
        (vox.events_secret_env.is_some(), hooks::VOXIMPLANT_EVENTS),
        (ingress.reamaze.is_some(), hooks::REAMAZE),
        (ingress.plivo.is_some(), plivo::SOURCE),
        (ingress.acrobits.is_some(), acrobits::SOURCE),
    ];
    builtin
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, source)| source.to_owned())
        .chain(ingress.sources.keys().cloned())
        .collect()
}

/// Creates every labelled series ingress records for `config` at zero, so that dashboards and
/// alert rules see zeros from start-up rather than gaps: each configured source's requests (by
/// every outcome it can have) and events, the refusals of unknown sources and unmatched
/// routes, the Voximplant batches' and the Acrobits route's own reasons when configured, and
/// the connection errors.
pub(crate) fn register_metrics(config: &Config) {
    let answers: Vec<&'static str> = std::iter::once(respond::ACCEPTED)
        .chain(Problem::OUTCOMES.iter().copied())
        .collect();
    let sources = sources(config);
    for source in &sources {
        if source == acrobits::SOURCE {
            let acrobits: Vec<&'static str> =
                answers.iter().chain(acrobits::OUTCOMES).copied().collect();
            respond::register(source, &acrobits);
            acrobits::register_metrics();
        } else {
            respond::register(source, &answers);
        }
        if source == voximplant::SOURCE {
            voximplant::register_metrics();
        }
        publish::register(source);
    }
    respond::register(
        respond::UNMATCHED,
        &[
            Problem::NotFound.outcome(),
            Problem::MethodNotAllowed.outcome(),
        ],
    );
    respond::register(
        hooks::UNKNOWN,
        &[
            Problem::UnknownSource.outcome(),
            Problem::MalformedRequest(String::new()).outcome(),
        ],
    );
    server::register_metrics();
}
