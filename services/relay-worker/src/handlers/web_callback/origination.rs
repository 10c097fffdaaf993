//! The origination job of one accepted web callback, for the provider of its account. Pure:
//! the request a provider's API gets, built from the event and the configuration.
//!
//! * **Plivo** (`POST /v1/Account/{auth_id}/Call/`, JSON): the user is called first (`to` =
//!   the callback number). Its `answer_url` points at ingress's Plivo answer route with the
//!   session, the target, the caller id and an expiry in its query: Plivo's V3 signature covers
//!   the query, so ingress answers `<Dial>` to exactly that target, and only until the expiry,
//!   without a lookup. `hangup_url` carries the session, so the call log threads both legs.
//! * **Voximplant** (`POST /platform_api/StartScenarios`, form): `rule_id` and
//!   `script_custom_data` (JSON: session, callback, target, caller id, the events URL the
//!   scenario reports to; deploy/voximplant/web-callback.js).
//!
//! Either job asks for its outcome (the provider's call id, or why it failed) and is given up
//! `give_up_after` past the request: a user does not wait for a call minutes later.

use relay_core::config::{PlivoOrigination, Provider, VoximplantOrigination, WebCallbackConfig};
use relay_core::{CloudEvent, DeliveryJob, ids};
use serde_json::json;

use super::NAME;

/// What an accepted web callback asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The relay's session id (`callback:…`): threads the request, both legs and the outcome.
    pub session: String,
    /// The Acrobits username.
    pub user: String,
    /// The user's number (called first).
    pub callback: String,
    /// The number to connect the user to.
    pub target: String,
}

impl Request {
    /// Reads an `acrobits.web_callback` event.
    pub fn from_event(event: &CloudEvent) -> Result<Self, String> {
        let data = event
            .data
            .as_object()
            .ok_or("event data is not an object")?;
        let get = |name: &str| {
            data.get(name)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or(format!("web callback without `{name}`"))
        };
        Ok(Self {
            session: get("session_id")?,
            user: get("username")?,
            callback: get("callback")?,
            target: get("target")?,
        })
    }
}

/// The origination job of `request` (from `event`), for `provider`.
pub fn job(
    event: &CloudEvent,
    request: &Request,
    config: &WebCallbackConfig,
    public_base: &str,
    provider: Provider,
) -> Result<DeliveryJob, String> {
    let id = ids::job_id(&event.id, NAME, 0);
    let mut job = match provider {
        Provider::Plivo => {
            let plivo = config
                .plivo
                .as_ref()
                .ok_or("no [worker.web_callback.plivo] section")?;
            plivo_job(id, event, request, plivo, config, public_base)?
        }
        Provider::Voximplant => {
            let vox = config
                .voximplant
                .as_ref()
                .ok_or("no [worker.web_callback.voximplant] section")?;
            voximplant_job(id, event, request, vox, public_base)
        }
    };
    job.report_outcome = true;
    job.give_up_after = Some(event.time + config.give_up_after);
    job.context
        .insert("session".to_owned(), request.session.clone());
    // Whose callback it is: its slot among the user's callbacks in progress is given back
    // when it fails or its call ends.
    job.context.insert("user".to_owned(), request.user.clone());
    job.context
        .insert("provider".to_owned(), provider.name().to_owned());
    Ok(job)
}

fn plivo_job(
    id: String,
    event: &CloudEvent,
    request: &Request,
    plivo: &PlivoOrigination,
    config: &WebCallbackConfig,
    public_base: &str,
) -> Result<DeliveryJob, String> {
    let base = public_base.trim_end_matches('/');
    let expires = (event.time + config.answer_valid_for).unix_timestamp();
    let mut answer = url::Url::parse(&format!("{base}/v1/plivo/answer"))
        .map_err(|e| format!("ingress.public_base_url: {e}"))?;
    answer
        .query_pairs_mut()
        .append_pair("session", &request.session)
        .append_pair("target", &request.target)
        .append_pair("caller_id", &plivo.caller_id)
        .append_pair("expires", &expires.to_string());
    let mut hangup = url::Url::parse(&format!("{base}/v1/plivo/hangup"))
        .map_err(|e| format!("ingress.public_base_url: {e}"))?;
    hangup
        .query_pairs_mut()
        .append_pair("session", &request.session);
    let body = json!({
        "from": plivo.caller_id,
        "to": request.callback,
        "answer_url": answer.as_str(),
        "answer_method": "POST",
        "hangup_url": hangup.as_str(),
        "hangup_method": "POST",
        "ring_timeout": plivo.ring_timeout,
    });
    let mut job = DeliveryJob::post(
        id,
        &event.id,
        NAME,
        &plivo.destination,
        "application/json",
        body.to_string(),
    );
    job.path = format!("/v1/Account/{}/Call/", plivo.auth_id);
    Ok(job)
}

fn voximplant_job(
    id: String,
    event: &CloudEvent,
    request: &Request,
    vox: &VoximplantOrigination,
    public_base: &str,
) -> DeliveryJob {
    let custom = json!({
        "session": request.session,
        "callback": request.callback,
        "target": request.target,
        "caller_id": vox.caller_id,
        "events_url": format!("{}/v1/voximplant/events", public_base.trim_end_matches('/')),
    });
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("rule_id", &vox.rule_id.to_string())
        .append_pair("script_custom_data", &custom.to_string())
        .finish();
    let mut job = DeliveryJob::post(
        id,
        &event.id,
        NAME,
        &vox.destination,
        "application/x-www-form-urlencoded",
        body,
    );
    job.path = "/platform_api/StartScenarios".to_owned();
    job
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn event() -> CloudEvent {
        CloudEvent::new(
            "0190e1e0-0000-7000-8000-000000000001".to_owned(),
            "acrobits/web-callback".to_owned(),
            "com.acrobits.web_callback".to_owned(),
            json!({
                "username": "alice",
                "target": "+15557654321",
                "callback": "+15551230000",
                "session_id": "callback:0190e1e0",
            }),
        )
    }

    fn config() -> WebCallbackConfig {
        WebCallbackConfig {
            plivo: Some(PlivoOrigination {
                destination: "plivo-api".into(),
                auth_id: "MA123".into(),
                caller_id: "+15550001111".into(),
                ring_timeout: 25,
            }),
            voximplant: Some(VoximplantOrigination {
                destination: "voximplant-api".into(),
                rule_id: 42,
                caller_id: "+15550002222".into(),
            }),
            ..WebCallbackConfig::default()
        }
    }

    #[test]
    fn a_plivo_job_calls_the_user_first_and_signs_the_target_into_the_answer_url() {
        let event = event();
        let request = Request::from_event(&event).unwrap();
        let job = job(
            &event,
            &request,
            &config(),
            "https://relay.example/",
            Provider::Plivo,
        )
        .unwrap();
        assert_eq!(job.destination, "plivo-api");
        assert_eq!(job.path, "/v1/Account/MA123/Call/");
        assert!(job.report_outcome);
        assert_eq!(job.context["session"], "callback:0190e1e0");
        assert_eq!(
            job.give_up_after,
            Some(event.time + Duration::from_secs(120))
        );
        let body: serde_json::Value = serde_json::from_str(&job.body).unwrap();
        assert_eq!(body["from"], "+15550001111");
        assert_eq!(body["to"], "+15551230000");
        assert_eq!(body["ring_timeout"], 25);
        let answer = url::Url::parse(body["answer_url"].as_str().unwrap()).unwrap();
        assert_eq!(answer.path(), "/v1/plivo/answer");
        let query: Vec<(String, String)> = answer.query_pairs().into_owned().collect();
        let expires = (event.time + Duration::from_secs(600))
            .unix_timestamp()
            .to_string();
        assert_eq!(
            query,
            [
                ("session".into(), "callback:0190e1e0".into()),
                ("target".into(), "+15557654321".into()),
                ("caller_id".into(), "+15550001111".into()),
                ("expires".into(), expires),
            ]
        );
        assert_eq!(
            body["hangup_url"],
            "https://relay.example/v1/plivo/hangup?session=callback%3A0190e1e0"
        );
        // Deterministic: the same event makes the same job (a redelivery repeats harmlessly).
        let again = super::job(
            &event,
            &request,
            &config(),
            "https://relay.example",
            Provider::Plivo,
        )
        .unwrap();
        assert_eq!(again.id, job.id);
    }

    #[test]
    fn a_voximplant_job_starts_the_scenario_with_its_custom_data() {
        let event = event();
        let request = Request::from_event(&event).unwrap();
        let job = job(
            &event,
            &request,
            &config(),
            "https://relay.example",
            Provider::Voximplant,
        )
        .unwrap();
        assert_eq!(job.path, "/platform_api/StartScenarios");
        assert_eq!(job.content_type, "application/x-www-form-urlencoded");
        let form: Vec<(String, String)> = form_urlencoded::parse(job.body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(form[0], ("rule_id".into(), "42".into()));
        let custom: serde_json::Value = serde_json::from_str(&form[1].1).unwrap();
        assert_eq!(
            custom,
            json!({
                "session": "callback:0190e1e0",
                "callback": "+15551230000",
                "target": "+15557654321",
                "caller_id": "+15550002222",
                "events_url": "https://relay.example/v1/voximplant/events",
            })
        );
    }

    #[test]
    fn an_event_without_its_numbers_is_refused_by_name() {
        let mut event = event();
        event.data["callback"] = json!("");
        assert_eq!(
            Request::from_event(&event).unwrap_err(),
            "web callback without `callback`"
        );
    }
}
