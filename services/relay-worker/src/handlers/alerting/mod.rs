//! min-balance-alert: the low-balance alert of each Voximplant account, with a lifecycle.
//!
//! * [`state`] is the pure lifecycle of one account's alert (firing, throttled, re-sent,
//!   resolved);
//! * [`notify`] renders what each notifier gets (Alertmanager, Slack, webhook);
//! * this module reads events, keeps each account's record in Redis (`alert:<account>`,
//!   compare-and-set) and turns the effects into delivery jobs and timers.
//!
//! A `min_balance` callback fires the alert (`critical` on `is_min_credit`). While it fires,
//! a durable timer (`relay.timer.min-balance-alert.<resend_interval>`) brings a re-send tick
//! back every `resend_interval`: Alertmanager gets the alert again (it resolves alerts that
//! are not re-sent), and a tick that finds no `min_balance` callback for `quiet_period`
//! resolves it. Any other account callback whose `balance` is at or above the recovery level
//! resolves it too. Job ids derive from (account, firing, notice or tick, notifier), so a
//! redelivered event or a duplicate timer never notifies twice.

mod ledger;
pub mod notify;
pub mod state;

use futures_util::future::BoxFuture;
use relay_core::config::{AlertFormat, MinBalanceAlertConfig, NotifierConfig};
use relay_core::routing::{self, HandlerRoute};
use relay_core::{CloudEvent, DeliveryJob, ids};
use relay_store::Store;
use serde_json::{Value, json};
use std::time::Duration;
use time::OffsetDateTime;

use crate::handler::{Context, Handler, HandlerError, HandlerResult, Output, Timer};
use ledger::Ledger;
use notify::Render;
use state::{Effects, Facts, Firing, Input, Notice, NoticeKind, Rules, Severity};

/// The handler's name: part of its queue name, timer queue and job ids.
pub const NAME: &str = routing::MIN_BALANCE_ALERT.name;
/// CloudEvent type of the re-send timer.
pub const RESEND_TIMER_TYPE: &str = "relay.timer.min-balance-alert.resend";
/// The routing key of the callbacks that fire the alert.
const MIN_BALANCE_KEY: &str = "voximplant.min_balance";

/// The min-balance alert handler.
pub struct MinBalanceAlert {
    config: MinBalanceAlertConfig,
    notifiers: Vec<NotifierConfig>,
    ledger: Ledger,
    store: Store,
}

impl MinBalanceAlert {
    /// The handler for its `[worker.min_balance_alert]` section.
    pub fn new(config: &MinBalanceAlertConfig, store: Store) -> Self {
        // Kept well past the quiet period, so a firing's record (and its epoch) outlives it.
        let ttl = config.quiet_period * 2 + config.throttle + Duration::from_secs(86_400);
        Self {
            notifiers: config.effective_notifiers(),
            config: config.clone(),
            ledger: Ledger::new(store.clone(), ttl),
            store,
        }
    }

    /// The timer delays this handler uses (one TTL queue each).
    pub fn timer_delays(config: &MinBalanceAlertConfig) -> Vec<Duration> {
        vec![config.resend_interval]
    }

    fn rules(&self, account: &str) -> Rules {
        Rules {
            throttle: self.config.throttle,
            quiet_period: self.config.quiet_period,
            recovery: self.config.recovery_balance_of(account),
        }
    }

    /// The jobs and timer of `effects` for `account`.
    fn output(&self, account: &str, event: &CloudEvent, effects: &Effects) -> Output {
        let mut output = Output::none();
        let (Some(firing), Some(at)) = (&effects.alert, effects.at) else {
            return output;
        };
        let render = Render {
            account,
            resend_interval: self.config.resend_interval,
            generator_url: self.config.generator_url.as_deref(),
            now: OffsetDateTime::now_utc(),
            event_id: &event.id,
        };
        // Job ids derive from (event, notifier): an event makes one notice or one re-send at
        // most, so the same event again, however the record changed meanwhile, repeats the
        // same ids and delivery skips what it already sent (invariant 3). Timer ids derive
        // from (account, firing, tick).
        if let Some(notice) = &effects.notice {
            for (n, notifier) in self.notifiers.iter().enumerate() {
                // Alertmanager has the alert already, and gets it again on every tick.
                if notifier.format == AlertFormat::Alertmanager
                    && notice.kind == NoticeKind::Reminder
                {
                    continue;
                }
                let body = notify::body(notifier.format, &render, firing, notice, at);
                output.jobs.push(notifier_job(n, event, notifier, &body));
            }
        }
        if effects.resend.is_some() {
            for (n, notifier) in self.notifiers.iter().enumerate() {
                if notifier.format == AlertFormat::Alertmanager {
                    let body = notify::alertmanager(&render, firing, None, at);
                    output.jobs.push(notifier_job(n, event, notifier, &body));
                }
            }
        }
        if let Some(tick) = effects.timer {
            output.timers.push(self.timer(account, firing, tick, at));
        }
        output
    }

    /// Re-send tick `tick` of `firing`, due `resend_interval` after `at`.
    fn timer(&self, account: &str, firing: &Firing, tick: u32, at: OffsetDateTime) -> Timer {
        let delay = self.config.resend_interval;
        let mut event = CloudEvent::new(
            ids::derived_event_id(
                "min-balance-alert-timer",
                &[account, &firing.epoch.to_string(), &tick.to_string()],
            ),
            format!("relay/{NAME}"),
            RESEND_TIMER_TYPE.to_owned(),
            json!({ "account": account, "epoch": firing.epoch, "tick": tick }),
        )
        .with_subject(account);
        event.time = at + delay;
        Timer { delay, event }
    }

    async fn on_input(
        &self,
        account: &str,
        event: &CloudEvent,
        input: Input,
        context: &Context,
    ) -> HandlerResult {
        let rules = self.rules(account);
        let step = self
            .ledger
            .update(account, |alert| {
                Some(state::apply(
                    &alert.unwrap_or_default(),
                    &event.id,
                    &input,
                    &rules,
                ))
            })
            .await?;
        let Some(step) = step else {
            return Ok(Output::none());
        };
        let mut output = self.output(account, event, &step.effects);
        // After a crash the broker redelivers what was being handled: an alert it started may
        // be written while its first tick was never set, and later events have overwritten
        // what it produced. Set the firing's pending tick again: a tick that arrives twice
        // finds the alert moved on the second time and does nothing.
        if context.redelivered
            && output.timers.is_empty()
            && let Some(firing) = &step.alert.firing
        {
            let now = OffsetDateTime::now_utc().max(event.time);
            output
                .timers
                .push(self.timer(account, firing, firing.tick, now));
        }
        if let Some(notice) = &step.effects.notice {
            tracing::info!(account, kind = ?notice.kind, severity = ?step.effects.alert.as_ref().map(|f| f.severity), "min-balance alert notice");
            metrics::counter!("relay_min_balance_alert_notices_total", "kind" => kind_label(notice.kind)).increment(1);
            self.record(account, notice, &step).await;
        }
        Ok(output)
    }
}

impl MinBalanceAlert {
    /// Records a notice for the console's Alerts page. Best effort: Redis trouble is logged,
    /// and the notifiers are told all the same.
    async fn record(&self, account: &str, notice: &Notice, step: &state::Step) {
        let firing = step.effects.alert.as_ref().or(step.alert.firing.as_ref());
        let Some(firing) = firing else { return };
        let now = OffsetDateTime::now_utc();
        let render = Render {
            account,
            resend_interval: self.config.resend_interval,
            generator_url: self.config.generator_url.as_deref(),
            now,
            event_id: "",
        };
        let severity = firing.severity;
        let note = relay_store::AlertNote {
            key: format!("min-balance:{account}"),
            name: notify::ALERTNAME.to_owned(),
            subject: account.to_owned(),
            notice: kind_label(notice.kind).to_owned(),
            severity: Some(format!("{severity:?}").to_lowercase()),
            summary: notify::summary(&render, firing, severity),
            at: now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            notifiers: self
                .notifiers
                .iter()
                .map(|n| n.destination.clone())
                .collect(),
            ends_at: None,
        };
        if let Err(error) = self.store.record_alert(&note).await {
            tracing::warn!(%error, account, "the alert notice was not recorded for the console");
        }
    }
}

/// Every notice kind (the `kind` label of `relay_min_balance_alert_notices_total`, by
/// [`kind_label`]).
const NOTICE_KINDS: [NoticeKind; 4] = [
    NoticeKind::Firing,
    NoticeKind::SeverityChanged,
    NoticeKind::Reminder,
    NoticeKind::Resolved,
];

fn kind_label(kind: NoticeKind) -> &'static str {
    match kind {
        NoticeKind::Firing => "firing",
        NoticeKind::SeverityChanged => "severity_changed",
        NoticeKind::Reminder => "reminder",
        NoticeKind::Resolved => "resolved",
    }
}

/// The job for notifier `n` of `event`'s notice or re-send.
fn notifier_job(
    n: usize,
    event: &CloudEvent,
    notifier: &NotifierConfig,
    body: &Value,
) -> DeliveryJob {
    DeliveryJob::post(
        ids::job_id(&event.id, NAME, n as u32),
        &event.id,
        NAME,
        &notifier.destination,
        "application/json",
        body.to_string(),
    )
}

/// The account an account callback is about.
fn account_of(event: &CloudEvent) -> Result<String, HandlerError> {
    let data = event
        .data
        .as_object()
        .ok_or_else(|| HandlerError::malformed("event data is not an object"))?;
    match data.get("account_id") {
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::String(s)) => Ok(s.clone()),
        _ => event
            .subject
            .clone()
            .ok_or_else(|| HandlerError::malformed("event has no account id")),
    }
}

/// What a `min_balance` callback says.
fn low(event: &CloudEvent) -> (Facts, bool) {
    let data = &event.data;
    let facts = Facts {
        account_name: data["account_name"].as_str().map(str::to_owned),
        balance: data.get("balance").cloned().unwrap_or(Value::Null),
        currency: data["currency"].as_str().map(str::to_owned),
    };
    let critical = data["min_balance"]["is_min_credit"]
        .as_bool()
        .unwrap_or(false);
    (facts, critical)
}

/// A balance as a number (Voximplant sends a number; a decimal string is read too).
fn balance_of(event: &CloudEvent) -> Option<f64> {
    match event.data.get("balance")? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl Handler for MinBalanceAlert {
    fn route(&self) -> HandlerRoute {
        routing::MIN_BALANCE_ALERT
    }

    fn prefetch(&self) -> Option<u16> {
        self.config.prefetch
    }

    fn register_metrics(&self) {
        for kind in NOTICE_KINDS {
            metrics::counter!("relay_min_balance_alert_notices_total", "kind" => kind_label(kind))
                .increment(0);
        }
    }

    fn handle<'a>(
        &'a self,
        event: &'a CloudEvent,
        context: &'a Context,
    ) -> BoxFuture<'a, HandlerResult> {
        Box::pin(async move {
            if event.ty == RESEND_TIMER_TYPE {
                let data = &event.data;
                let (Some(account), Some(epoch), Some(tick)) = (
                    data["account"].as_str(),
                    data["epoch"].as_i64(),
                    data["tick"].as_u64().and_then(|t| u32::try_from(t).ok()),
                ) else {
                    return Err(HandlerError::malformed(
                        "re-send timer without account, epoch, tick",
                    ));
                };
                // A tick is about now: it may arrive late (the worker was down), and its
                // quiet-period check and the next tick count from when it is handled.
                let input = Input::Resend {
                    at: event.time.max(OffsetDateTime::now_utc()),
                    epoch,
                    tick,
                };
                return self.on_input(account, event, input, context).await;
            }
            if context.routing_key == MIN_BALANCE_KEY {
                let account = account_of(event)?;
                let (facts, critical) = low(event);
                let input = Input::Low {
                    at: event.time,
                    critical,
                    facts,
                };
                return self.on_input(&account, event, input, context).await;
            }
            // Any other account callback: only its balance matters, and only where a recovery
            // level is set; the rest is ignored without touching Redis.
            if !self.config.recovers_by_balance() {
                return Ok(Output::none());
            }
            let (Ok(account), Some(balance)) = (account_of(event), balance_of(event)) else {
                return Ok(Output::none());
            };
            if self.config.recovery_balance_of(&account).is_none() {
                return Ok(Output::none());
            }
            let input = Input::Balance {
                at: event.time,
                balance,
            };
            self.on_input(&account, event, input, context).await
        })
    }
}

/// A one-off "firing" job for `event` (a `min_balance` event) to `destination` in `format`,
/// with id `job_id(event id, handler, 0)`: the request the handler makes when an account's
/// alert fires, for tools and tests that need a realistic alert job without the lifecycle.
pub fn job(
    event: &CloudEvent,
    destination: &str,
    format: AlertFormat,
) -> Result<DeliveryJob, String> {
    let account = account_of(event).map_err(|e| e.to_string())?;
    let (facts, critical) = low(event);
    let firing = Firing {
        epoch: 0,
        severity: if critical {
            Severity::Critical
        } else {
            Severity::Warning
        },
        since: event.time,
        last_notified: event.time,
        last_seen: event.time,
        facts,
        notices: 1,
        tick: 1,
    };
    let notice = Notice {
        kind: NoticeKind::Firing,
        seq: 0,
        previous: None,
    };
    let render = Render {
        account: &account,
        resend_interval: MinBalanceAlertConfig::default().resend_interval,
        generator_url: None,
        now: event.time,
        event_id: &event.id,
    };
    let body = notify::body(format, &render, &firing, &notice, event.time);
    Ok(DeliveryJob::post(
        ids::job_id(&event.id, NAME, 0),
        &event.id,
        NAME,
        destination,
        "application/json",
        body.to_string(),
    ))
}

#[cfg(test)]
mod state_tests;
#[cfg(test)]
pub(crate) mod tests;
