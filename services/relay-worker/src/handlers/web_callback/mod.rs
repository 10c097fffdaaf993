//! web-callback: the call an Acrobits web callback asked for, originated through Plivo or
//! Voximplant ([`origination`]), and what became of it.
//!
//! An accepted `acrobits.web_callback` (ingress has authenticated it and passed the toll-fraud
//! guard) becomes one origination job for the provider of its account. Delivery sends it with
//! the provider's profile (`basic` for Plivo, `voximplant-jwt`) and reports the outcome
//! (`relay.delivery.*.web-callback`): a success is recorded on the session with the provider's
//! call id (`origination:{session}` in Redis), a failure too, and the call log writes
//! "Callback failed: <reason>" into the session's thread from the same failure event.

pub mod missed;
pub mod origination;

use futures_util::future::BoxFuture;
use relay_core::CloudEvent;
use relay_core::config::{AcrobitsSource, Provider, WebCallbackConfig};
use relay_core::outcome::DeliveryOutcome;
use relay_core::routing::{self, HandlerRoute};
use relay_store::Store;
use serde_json::{Value, json};

use crate::handler::{Context, Handler, HandlerError, HandlerResult, Output};

/// The handler's name: part of its queue name, its job ids and its outcome routing keys.
pub const NAME: &str = routing::WEB_CALLBACK.name;

// The `outcome` labels of `relay_web_callback_originations_total` (by provider, its `source`)
// and of `relay_web_callback_missed_calls_total`.
const QUEUED: &str = "queued";
const PLACED: &str = "placed";
const FAILED: &str = "failed";
const ORIGINATION_OUTCOMES: [&str; 3] = [QUEUED, PLACED, FAILED];
const CALLED_BACK: &str = "called_back";
const SKIPPED: &str = "skipped";
const MISSED_CALL_OUTCOMES: [&str; 2] = [CALLED_BACK, SKIPPED];

/// The web-callback handler.
pub struct WebCallback {
    config: WebCallbackConfig,
    public_base: String,
    store: Store,
    /// The numbers policy of the web callback route (its allowed and denied prefixes), which
    /// missed-call callbacks follow too.
    numbers: AcrobitsSource,
}

impl WebCallback {
    /// The handler for its `[worker.web_callback]` section; `public_base` is ingress's public
    /// URL (`ingress.public_base_url`), where the providers call back.
    pub fn new(
        config: &WebCallbackConfig,
        public_base: &str,
        numbers: Option<&AcrobitsSource>,
        store: Store,
    ) -> Self {
        Self {
            config: config.clone(),
            public_base: public_base.to_owned(),
            store,
            numbers: numbers.cloned().unwrap_or_default(),
        }
    }

    /// A missed call: call its caller back when the policy says so.
    async fn on_missed(&self, event: &CloudEvent) -> HandlerResult {
        let Some(policy) = &self.config.missed_calls else {
            return Ok(Output::none());
        };
        let missed = missed::Missed::from_event(event).map_err(HandlerError::malformed)?;
        let decision =
            missed::decide(&missed, policy, &self.numbers, event.time, &self.store).await?;
        let request = match decision {
            missed::Decision::CallBack(request) => request,
            other => {
                tracing::info!(session = %missed.session, decision = ?other, "missed call not called back");
                metrics::counter!("relay_web_callback_missed_calls_total", "outcome" => SKIPPED)
                    .increment(1);
                return Ok(Output::none());
            }
        };
        let provider = self.config.provider_of(&request.user);
        let job = origination::job(event, &request, &self.config, &self.public_base, provider)
            .map_err(HandlerError::malformed)?;
        tracing::info!(session = %missed.session, callback = %request.session, "calling back a missed call");
        metrics::counter!("relay_web_callback_missed_calls_total", "outcome" => CALLED_BACK)
            .increment(1);
        let mut output = Output::job(job);
        output
            .events
            .push(missed::requested(&request, &missed, event));
        Ok(output)
    }

    fn originate(&self, event: &CloudEvent) -> HandlerResult {
        let request = origination::Request::from_event(event).map_err(HandlerError::malformed)?;
        let provider = self.config.provider_of(&request.user);
        let job = origination::job(event, &request, &self.config, &self.public_base, provider)
            .map_err(HandlerError::malformed)?;
        tracing::info!(session = %request.session, ?provider, "originating a web callback");
        metrics::counter!("relay_web_callback_originations_total", "source" => provider.name(), "outcome" => QUEUED)
            .increment(1);
        Ok(Output::job(job))
    }

    async fn record(&self, event: &CloudEvent) -> HandlerResult {
        let outcome = DeliveryOutcome::from_event(event)
            .map_err(|e| HandlerError::malformed(format!("not a delivery outcome: {e}")))?;
        let Some(session) = outcome.context.get("session") else {
            return Err(HandlerError::malformed("outcome without its session"));
        };
        let provider = outcome.context.get("provider").cloned().unwrap_or_default();
        let record = summary(&outcome, &provider);
        let label = if outcome.succeeded { PLACED } else { FAILED };
        metrics::counter!("relay_web_callback_originations_total", "source" => provider.clone(), "outcome" => label)
            .increment(1);
        if outcome.succeeded {
            tracing::info!(%session, call_id = %record["call_id"], "web callback placed");
        } else {
            tracing::warn!(%session, reason = %record["reason"], "web callback failed");
        }
        // First outcome wins: a repeated report (a redelivered outcome event) changes nothing.
        self.store
            .compare_and_set(
                &format!("origination:{session}"),
                None,
                &record.to_string(),
                self.config.outcome_ttl,
            )
            .await
            .map_err(|e| HandlerError::Transient(format!("recording the origination: {e}")))?;
        if !outcome.succeeded {
            self.release(&record).await?;
        }
        Ok(Output::none())
    }

    /// The callback's call ended: it no longer counts among its user's callbacks in progress.
    async fn on_ended(&self, event: &CloudEvent) -> HandlerResult {
        let Some(session) = event.data["session"].as_str() else {
            return Err(HandlerError::malformed(
                "relay.callback.ended without a session",
            ));
        };
        let record = self
            .store
            .get_text(&format!("origination:{session}"))
            .await
            .map_err(|e| HandlerError::Transient(format!("reading the origination: {e}")))?;
        match record.as_deref().map(serde_json::from_str::<Value>) {
            Some(Ok(record)) => self.release(&record).await?,
            // No outcome recorded (yet, or long expired): the window frees the slot.
            _ => tracing::debug!(session, "callback ended without a recorded origination"),
        }
        Ok(Output::none())
    }

    /// Gives back the callback's slot among its user's callbacks in progress (ingress counted
    /// it under the request's event id). Taking back a slot twice changes nothing.
    async fn release(&self, record: &Value) -> Result<(), HandlerError> {
        let (Some(user), Some(event_id)) = (record["user"].as_str(), record["event_id"].as_str())
        else {
            return Ok(());
        };
        let counter = AcrobitsSource::in_progress_counter(user);
        let slot = relay_store::Limit::sliding(counter, 1, std::time::Duration::from_secs(1));
        self.store
            .refund(&[slot], event_id)
            .await
            .map_err(|e| HandlerError::Transient(format!("releasing the callback's slot: {e}")))?;
        tracing::info!(user, session = %record["session"], "callback no longer in progress");
        Ok(())
    }
}

/// What is kept of an origination's outcome: the provider's call id (Plivo `request_uuid`,
/// Voximplant `call_session_history_id`) or why it failed.
pub fn summary(outcome: &DeliveryOutcome, provider: &str) -> Value {
    let answer: Value = outcome
        .response_excerpt
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null);
    let call_id = ["request_uuid", "call_session_history_id"]
        .iter()
        .find_map(|k| answer.get(*k))
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    json!({
        "provider": provider,
        "succeeded": outcome.succeeded,
        "call_id": call_id,
        "media_session_access_url": answer.get("media_session_access_url"),
        "reason": outcome.detail.clone().or(outcome.reason.clone()),
        "status": outcome.status,
        "job_id": outcome.job_id,
        "event_id": outcome.event_id,
        "user": outcome.context.get("user"),
        "session": outcome.context.get("session"),
    })
}

impl Handler for WebCallback {
    fn route(&self) -> HandlerRoute {
        routing::WEB_CALLBACK
    }

    fn prefetch(&self) -> Option<u16> {
        self.config.prefetch
    }

    fn register_metrics(&self) {
        let config = &self.config;
        let used = |p: &Provider| config.provider == *p || config.accounts.values().any(|a| a == p);
        for provider in Provider::ALL.iter().filter(|p| used(p)) {
            for outcome in ORIGINATION_OUTCOMES {
                metrics::counter!("relay_web_callback_originations_total", "source" => provider.name(), "outcome" => outcome)
                    .increment(0);
            }
        }
        if config.missed_calls.is_some() {
            for outcome in MISSED_CALL_OUTCOMES {
                metrics::counter!("relay_web_callback_missed_calls_total", "outcome" => outcome)
                    .increment(0);
            }
        }
    }

    fn handle<'a>(
        &'a self,
        event: &'a CloudEvent,
        context: &'a Context,
    ) -> BoxFuture<'a, HandlerResult> {
        Box::pin(async move {
            if context.routing_key.starts_with("relay.delivery.") {
                self.record(event).await
            } else if context.routing_key == routing::CALL_MISSED {
                self.on_missed(event).await
            } else if context.routing_key == routing::CALLBACK_ENDED {
                self.on_ended(event).await
            } else {
                self.originate(event)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(succeeded: bool, excerpt: Option<&str>) -> DeliveryOutcome {
        let job = relay_core::DeliveryJob::post(
            "job-1".into(),
            "event-1",
            NAME,
            "plivo-api",
            "application/json",
            "{}".into(),
        );
        let mut outcome = DeliveryOutcome::of(&job, succeeded, 1);
        outcome.response_excerpt = excerpt.map(str::to_owned);
        outcome
    }

    #[test]
    fn the_providers_call_id_is_kept() {
        let plivo = summary(
            &outcome(
                true,
                Some(
                    r#"{"message": "call fired", "request_uuid": "9834029e-58b6", "api_id": "97ceeb52"}"#,
                ),
            ),
            "plivo",
        );
        assert_eq!(plivo["call_id"], "9834029e-58b6");
        let vox = summary(
            &outcome(
                true,
                Some(
                    r#"{"result": 1, "media_session_access_url": "https://m/1", "call_session_history_id": 1234}"#,
                ),
            ),
            "voximplant",
        );
        assert_eq!(vox["call_id"], "1234");
        assert_eq!(vox["media_session_access_url"], "https://m/1");
        let cut = summary(&outcome(true, Some(r#"{"request_uu"#)), "plivo");
        assert_eq!(cut["call_id"], Value::Null, "an excerpt cut short is no id");
    }

    #[test]
    fn a_failure_keeps_its_reason() {
        let mut failed = outcome(false, Some(r#"{"error": "insufficient balance"}"#));
        failed.reason = Some("http_status".into());
        failed.detail = Some("status 402".into());
        let s = summary(&failed, "plivo");
        assert_eq!(s["succeeded"], false);
        assert_eq!(s["reason"], "status 402");
    }
}
