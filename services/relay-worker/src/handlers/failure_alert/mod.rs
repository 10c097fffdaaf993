//! failure-alert: tells operators when the relay itself fails (docs/ARCHITECTURE.md, "Failure
//! alerts").
//!
//! * Every `relay.delivery.failed.<handler>` outcome counts against its destination
//!   ([`state::Failures`], Redis `failure-alert:delivery:<destination>`): the first failure of
//!   a window sets a `group_wait` timer, whose tick sends one alert naming the destination,
//!   what failed, the last status, a response excerpt, how many failed, and the command that
//!   lists them. Later failures of the window are counted, not alerted.
//! * The worker's [`watch`] looks at breakers and queue depths every `check_interval` and
//!   publishes what it sees as `relay.condition.<kind>` events; each condition
//!   ([`state::Condition`], `failure-alert:condition:<kind>:<subject>`) fires, is re-sent to
//!   Alertmanager while active, and resolves once clear.
//! * No loop: a failed delivery made by this handler, or to one of its notifiers' destinations,
//!   is logged and counted (`relay_failure_alerts_suppressed_total`), never alerted about.
//!
//! Job ids derive from the event (outcome, timer or observation) and the notifier, and those
//! event ids are deterministic, so a redelivered event never notifies twice.

pub mod notify;
pub mod state;
#[cfg(test)]
mod tests;
pub mod watch;

use std::time::Duration;

use futures_util::future::BoxFuture;
use relay_core::config::{AlertFormat, FailureAlertConfig};
use relay_core::outcome::DeliveryOutcome;
use relay_core::routing::{self, HandlerRoute};
use relay_core::{CloudEvent, DeliveryJob, ids};
use relay_store::{Change, Store};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use time::OffsetDateTime;

use crate::handler::{Context, Handler, HandlerError, HandlerResult, Output, Timer};
use state::{ConditionNotice, Failure, Grouping, Observation};

/// The handler's name.
pub const NAME: &str = routing::FAILURE_ALERT.name;
/// CloudEvent type of a window's `group_wait` tick.
pub const WINDOW_TIMER_TYPE: &str = "relay.timer.failure-alert.window";
/// CloudEvent type of an observation of the relay's state.
pub const CONDITION_TYPE: &str = "relay.condition";

/// Conflicting updates retried before the event is retried durably.
const MAX_CONFLICTS: u32 = 128;

/// The failure-alert handler.
pub struct FailureAlert {
    config: FailureAlertConfig,
    store: Store,
    ttl: Duration,
}

impl FailureAlert {
    /// The handler for its `[worker.failure_alert]` section.
    pub fn new(config: &FailureAlertConfig, store: Store) -> Self {
        Self {
            ttl: config.window * 2 + Duration::from_secs(86_400),
            config: config.clone(),
            store,
        }
    }

    /// The timer delays this handler uses (one TTL queue each).
    pub fn timer_delays(config: &FailureAlertConfig) -> Vec<Duration> {
        if config.group_wait.is_zero() {
            Vec::new()
        } else {
            vec![config.group_wait]
        }
    }

    /// Applies a pure step to the record under `key`.
    async fn update<T, S>(
        &self,
        key: &str,
        step: impl Fn(&T) -> (S, bool, T),
    ) -> Result<S, HandlerError>
    where
        T: Serialize + DeserializeOwned + Clone + Default,
    {
        let updated = self
            .store
            .update_json(
                key,
                self.ttl,
                MAX_CONFLICTS,
                || metrics::counter!("relay_failure_alert_ledger_conflicts_total").increment(1),
                |before: Option<T>| {
                    let (result, changed, after) = step(&before.unwrap_or_default());
                    if changed {
                        Change::Write(after, result)
                    } else {
                        Change::Keep(result)
                    }
                },
            )
            .await
            .map_err(|error| {
                HandlerError::Transient(format!("failure-alert record {key}: {error}"))
            })?;
        Ok(updated.note)
    }

    /// One job per notifier (Alertmanager only, when `only_alertmanager`).
    fn jobs(&self, event: &CloudEvent, alert: &notify::Alert, only_alertmanager: bool) -> Output {
        let mut output = Output::none();
        for (n, notifier) in self.config.notifiers.iter().enumerate() {
            if only_alertmanager && notifier.format != AlertFormat::Alertmanager {
                continue;
            }
            let body = notify::body(notifier.format, alert, &event.id);
            let mut job = DeliveryJob::post(
                ids::job_id(&event.id, NAME, n as u32),
                &event.id,
                NAME,
                &notifier.destination,
                "application/json",
                body.to_string(),
            );
            job.event_type = Some(format!("relay.failure_alert.{}", alert.name));
            output.jobs.push(job);
        }
        output
    }

    async fn on_failure(&self, event: &CloudEvent) -> HandlerResult {
        let outcome = DeliveryOutcome::from_event(event)
            .map_err(|e| HandlerError::malformed(format!("not a delivery outcome: {e}")))?;
        if outcome.succeeded {
            return Ok(Output::none());
        }
        let destination = outcome.destination.clone();
        if outcome.handler == NAME || self.config.notifies(&destination) {
            // An alert about the alert's own failure would fail the same way, and feed on itself.
            tracing::warn!(
                destination,
                handler = outcome.handler,
                job_id = outcome.job_id,
                status = outcome.status,
                reason = outcome.reason,
                "a failure-alert destination failed; logged and counted, not alerted about"
            );
            metrics::counter!("relay_failure_alerts_suppressed_total", "destination" => destination)
                .increment(1);
            return Ok(Output::none());
        }
        let failure = Failure {
            id: event.id.clone(),
            job_id: outcome.job_id,
            handler: outcome.handler,
            event_type: outcome.event_type,
            status: outcome.status,
            reason: outcome.reason,
            detail: outcome.detail,
            excerpt: outcome.response_excerpt,
            attempts: outcome.attempts,
            at: event.time,
        };
        let rules = Grouping {
            group_wait: self.config.group_wait,
            window: self.config.window,
        };
        let key = format!("failure-alert:delivery:{destination}");
        let step = self
            .update(&key, |record| {
                let step = state::failed(record, failure.clone(), &rules);
                (step.clone(), step.changed, step.record)
            })
            .await?;
        let mut output = Output::none();
        let Some(window) = &step.record.window else {
            return Ok(output);
        };
        if step.effects.alert {
            output = self.window_alert(event, &destination, window).await;
        }
        if let Some(epoch) = step.effects.timer {
            output
                .timers
                .push(self.window_timer(&destination, epoch, event.time));
        }
        Ok(output)
    }

    async fn window_alert(
        &self,
        event: &CloudEvent,
        destination: &str,
        window: &state::Window,
    ) -> Output {
        let alert = notify::delivery_failed(destination, window, self.config.window);
        tracing::warn!(
            destination,
            failed = window.count,
            status = window.last.status,
            "deliveries are failing; alerting"
        );
        metrics::counter!("relay_failure_alerts_total", "alertname" => notify::DELIVERY_FAILED)
            .increment(1);
        self.record(
            &format!("delivery-failed:{destination}"),
            destination,
            "firing",
            &alert,
        )
        .await;
        self.jobs(event, &alert, false)
    }

    /// Records a notice for the console's Alerts page (`relay_store::AlertNote`). Best effort:
    /// Redis trouble is logged, and the notifiers are told all the same.
    async fn record(&self, key: &str, subject: &str, notice: &str, alert: &notify::Alert) {
        let rfc3339 = |t: OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        let note = relay_store::AlertNote {
            key: key.to_owned(),
            name: alert.name.to_owned(),
            subject: subject.to_owned(),
            notice: notice.to_owned(),
            severity: None,
            summary: alert.summary.clone(),
            at: rfc3339(OffsetDateTime::now_utc()),
            notifiers: self
                .config
                .notifiers
                .iter()
                .map(|n| n.destination.clone())
                .collect(),
            ends_at: (!alert.resolved).then(|| rfc3339(alert.ends_at)),
        };
        if let Err(error) = self.store.record_alert(&note).await {
            tracing::warn!(%error, alert = key, "the alert notice was not recorded for the console");
        }
    }

    /// The tick of `destination`'s window `epoch`, due `group_wait` after `at`.
    fn window_timer(&self, destination: &str, epoch: u64, at: OffsetDateTime) -> Timer {
        let delay = self.config.group_wait;
        let mut event = CloudEvent::new(
            ids::derived_event_id("failure-alert-window", &[destination, &epoch.to_string()]),
            format!("relay/{NAME}"),
            WINDOW_TIMER_TYPE.to_owned(),
            json!({ "destination": destination, "epoch": epoch }),
        )
        .with_subject(destination);
        event.time = at + delay;
        Timer { delay, event }
    }

    async fn on_tick(&self, event: &CloudEvent) -> HandlerResult {
        let (Some(destination), Some(epoch)) = (
            event.data["destination"].as_str(),
            event.data["epoch"].as_u64(),
        ) else {
            return Err(HandlerError::malformed(
                "window timer without destination, epoch",
            ));
        };
        let key = format!("failure-alert:delivery:{destination}");
        let step = self
            .update(&key, |record| {
                let step = state::tick(record, epoch);
                (step.clone(), step.changed, step.record)
            })
            .await?;
        match (&step.record.window, step.effects.alert) {
            (Some(window), true) => Ok(self.window_alert(event, destination, window).await),
            _ => Ok(Output::none()),
        }
    }

    async fn on_condition(&self, event: &CloudEvent) -> HandlerResult {
        let observation: Observation = serde_json::from_value(event.data.clone())
            .map_err(|e| HandlerError::malformed(format!("not an observation: {e}")))?;
        if !routing::is_key_word(&observation.kind) {
            return Err(HandlerError::malformed("observation kind is not a word"));
        }
        let key = format!(
            "failure-alert:condition:{}:{}",
            observation.kind, observation.subject
        );
        let step = self
            .update(&key, |record| {
                let step = state::observe(record, observation.clone());
                (step.clone(), step.changed, step.record)
            })
            .await?;
        let Some((notice, firing)) = &step.notice else {
            return Ok(Output::none());
        };
        let alert = notify::condition(
            *notice,
            firing,
            self.config.check_interval,
            OffsetDateTime::now_utc(),
        );
        if *notice != ConditionNotice::Resend {
            tracing::warn!(
                kind = firing.last.kind,
                subject = firing.last.subject,
                value = firing.last.value,
                threshold = firing.last.threshold,
                resolved = alert.resolved,
                "{}",
                alert.summary
            );
            metrics::counter!("relay_failure_alerts_total", "alertname" => alert.name).increment(1);
            let notice = if alert.resolved { "resolved" } else { "firing" };
            let subject = format!("{} {}", firing.last.kind, firing.last.subject);
            self.record(
                &format!("condition:{}:{}", firing.last.kind, firing.last.subject),
                &subject,
                notice,
                &alert,
            )
            .await;
        }
        Ok(self.jobs(event, &alert, *notice == ConditionNotice::Resend))
    }
}

impl Handler for FailureAlert {
    fn route(&self) -> HandlerRoute {
        routing::FAILURE_ALERT
    }

    fn prefetch(&self) -> Option<u16> {
        self.config.prefetch
    }

    fn register_metrics(&self) {
        for name in notify::ALERTNAMES {
            metrics::counter!("relay_failure_alerts_total", "alertname" => name).increment(0);
        }
        for notifier in &self.config.notifiers {
            metrics::counter!("relay_failure_alerts_suppressed_total", "destination" => notifier.destination.clone())
                .increment(0);
        }
    }

    fn handle<'a>(
        &'a self,
        event: &'a CloudEvent,
        context: &'a Context,
    ) -> BoxFuture<'a, HandlerResult> {
        Box::pin(async move {
            if event.ty == WINDOW_TIMER_TYPE {
                return self.on_tick(event).await;
            }
            if event.ty == CONDITION_TYPE {
                return self.on_condition(event).await;
            }
            if context.routing_key.starts_with("relay.delivery.failed.") {
                return self.on_failure(event).await;
            }
            Ok(Output::none())
        })
    }
}
