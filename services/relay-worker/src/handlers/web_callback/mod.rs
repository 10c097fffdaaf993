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
use relay_core::config::{AcrobitsSource, WebCallbackConfig};
use relay_core::outcome::DeliveryOutcome;
use relay_core::routing::{self, HandlerRoute};
use relay_store::Store;
use serde_json::{Value, json};

use crate::handler::{Context, Handler, HandlerError, HandlerResult, Output};

/// The handler's name: part of its queue name, its job ids and its outcome routing keys.
pub const NAME: &str = routing::WEB_CALLBACK.name;

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
                metrics::counter!("relay_web_callback_missed_calls_total", "outcome" => "skipped")
                    .increment(1);
                return Ok(Output::none());
            }
        };
        let provider = self.config.provider_of(&request.user);
        let job = origination::job(event, &request, &self.config, &self.public_base, provider)
            .map_err(HandlerError::malformed)?;
        tracing::info!(session = %missed.session, callback = %request.session, "calling back a missed call");
        metrics::counter!("relay_web_callback_missed_calls_total", "outcome" => "called_back")
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
        metrics::counter!("relay_web_callback_originations_total", "provider" => format!("{provider:?}").to_lowercase(), "outcome" => "queued")
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
        let label = if outcome.succeeded {
            "placed"
        } else {
            "failed"
        };
        metrics::counter!("relay_web_callback_originations_total", "provider" => provider.clone(), "outcome" => label)
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
        Ok(Output::none())
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
    })
}

impl Handler for WebCallback {
    fn route(&self) -> HandlerRoute {
        routing::WEB_CALLBACK
    }

    fn prefetch(&self) -> Option<u16> {
        self.config.prefetch
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
