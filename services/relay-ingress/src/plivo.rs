//! Plivo call callbacks: `/v1/plivo/{answer,hangup,status}`, GET or POST.
//!
//! Each request is verified with `X-Plivo-Signature-V3` over the public URL Plivo called
//! (`public_base_url` + path + query) and the form parameters exactly as sent; `-Ma-V3` with the
//! main account's token where one is configured; V2 where enabled. Every callback becomes
//! `plivo.call.<status>` (`in-progress` is `answered`), deduplicated on CallUUID + Event +
//! CallStatus (+ the Dial and recording ids, when present), since Plivo retries whatever it did
//! not get a 200 for.
//!
//! `answer` must return Plivo XML. A web-callback leg is originated with an answer URL that
//! carries the number to bridge to (`target`, and optionally `caller_id`) in its query; that
//! query is part of what Plivo signs, so nobody can change the target without the auth token.
//! Such a request gets `<Dial>` to the target; any other gets the configured default XML. The
//! event is published and confirmed before the XML is returned (invariant 1): while the broker is
//! down an answer gets 503, and Plivo falls back to the application's fallback answer URL.

use axum::body::Body;
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use relay_core::config::{EnvSecret, PlivoSource};
use relay_core::{CloudEvent, ids, phone};
use relay_signing::plivo as sig;

use crate::hooks::form_to_json;
use crate::problem::Problem;
use crate::{Outgoing, Shared, publish_all, read_body};

/// Dedup namespace and routing-key source.
pub const SOURCE: &str = "plivo";

/// Parameters that, with `CallUUID`, tell one callback from another.
const UNIQUE_PARAMS: [&str; 6] = [
    "Event",
    "CallStatus",
    "DialAction",
    "DialBLegUUID",
    "DialStatus",
    "RecordingID",
];

/// The configured Plivo routes.
pub(crate) struct PlivoRoutes {
    auth_token: EnvSecret,
    main_auth_token: Option<EnvSecret>,
    accept_v2: bool,
    default_answer_xml: String,
}

impl PlivoRoutes {
    pub(crate) fn new(config: &PlivoSource) -> Self {
        Self {
            auth_token: config.auth_token_env.clone(),
            main_auth_token: config.main_auth_token_env.clone(),
            accept_v2: config.accept_v2,
            default_answer_xml: config.default_answer_xml.clone(),
        }
    }

    /// Accepts the request when any enabled signature verifies.
    fn verify(
        &self,
        headers: &HeaderMap,
        url: &str,
        method: sig::Method,
        params: &[(String, String)],
    ) -> Result<(), Problem> {
        let text = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let token = self.auth_token.value().unwrap_or_default();
        let nonce = text(sig::NONCE_V3);
        let v3 = sig::verify_v3(token, url, method, params, nonce, text(sig::SIGNATURE_V3));
        if v3.is_ok() {
            return Ok(());
        }
        if let (Some(main), Some(ma)) = (&self.main_auth_token, text(sig::SIGNATURE_MA_V3))
            && sig::verify_v3(
                main.value().unwrap_or_default(),
                url,
                method,
                params,
                nonce,
                Some(ma),
            )
            .is_ok()
        {
            return Ok(());
        }
        if self.accept_v2
            && sig::verify_v2(token, url, text(sig::NONCE_V2), text(sig::SIGNATURE_V2)).is_ok()
        {
            return Ok(());
        }
        Err(Problem::BadSignature(
            v3.err()
                .map_or_else(String::new, |e| format!("X-Plivo-Signature-V3: {e}")),
        ))
    }
}

/// The event status of a callback: Plivo's `CallStatus`, with `in-progress` as `answered`;
/// without one, what the route implies.
fn status(params: &[(String, String)], kind: &str) -> String {
    let call_status = params
        .iter()
        .rev()
        .find(|(k, _)| k == "CallStatus")
        .map(|(_, v)| v.to_ascii_lowercase());
    match call_status.as_deref() {
        Some("in-progress") => "answered".to_owned(),
        Some(s) if !s.is_empty() && relay_core::routing::is_key_word(s) => s.to_owned(),
        _ => match kind {
            "answer" => "answered".to_owned(),
            "hangup" => "completed".to_owned(),
            _ => "status".to_owned(),
        },
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The answer XML: `<Dial>` to a web-callback leg's target, or the default.
pub(crate) fn answer_xml(query: &[(String, String)], default: &str) -> String {
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match get("target").and_then(phone::normalize_e164) {
        Some(target) => {
            let caller = get("caller_id")
                .and_then(phone::normalize_e164)
                .map(|c| format!(" callerId=\"{}\"", xml_escape(&c)))
                .unwrap_or_default();
            format!(
                "<Response><Dial{caller}><Number>{}</Number></Dial></Response>",
                xml_escape(&target)
            )
        }
        None => default.to_owned(),
    }
}

/// Handles one Plivo callback.
pub(crate) async fn handle(
    app: &Shared,
    kind: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let routes = app.plivo.as_ref().ok_or(Problem::UnknownSource)?;
    if !matches!(kind, "answer" | "hangup" | "status") {
        return Err(Problem::NotFound);
    }
    if method != Method::GET
        && headers.contains_key(header::CONTENT_TYPE)
        && !crate::is_form(headers)
    {
        return Err(Problem::UnsupportedMediaType(
            "Plivo callbacks are form-encoded".to_owned(),
        ));
    }
    let bytes = read_body(body, app.body_limit).await?;
    let (sig_method, form): (sig::Method, Vec<(String, String)>) = if method == Method::GET {
        (sig::Method::Get, Vec::new())
    } else {
        (
            sig::Method::Post,
            form_urlencoded::parse(&bytes).into_owned().collect(),
        )
    };
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path(), |pq| pq.as_str());
    let url = format!("{}{path}", app.public_base_url.trim_end_matches('/'));
    routes.verify(headers, &url, sig_method, &form)?;

    let query: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let mut all = query.clone();
    all.extend(form);
    let status = status(&all, kind);
    let get = |name: &str| {
        all.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    // What makes a callback unique: the call and what happened to it. A `<Dial>` reports
    // each agent leg on the caller's CallUUID, and recordings come one per recording, so those
    // ids are part of it too (one DialHangup per agent leg must not collapse into one).
    let unique = get("CallUUID").filter(|u| !u.is_empty()).map(|uuid| {
        let mut parts = vec![uuid];
        for name in UNIQUE_PARAMS {
            parts.push(get(name).unwrap_or_default());
        }
        parts
    });
    let event_id = unique.as_ref().map_or_else(ids::new_event_id, |parts| {
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        ids::derived_event_id(SOURCE, &parts)
    });
    let mut event = CloudEvent::new(
        event_id,
        format!("plivo/{kind}"),
        format!("com.plivo.call.{status}"),
        form_to_json(&all),
    );
    if let Some(parts) = &unique {
        event = event.with_subject(parts[0].clone());
    }
    let outgoing = Outgoing {
        routing_key: format!("{SOURCE}.call.{status}"),
        event,
        dedup_key: unique.map(|parts| parts.join(":")),
    };
    let accepted = publish_all(app, SOURCE, vec![outgoing]).await?;
    if kind == "answer" {
        let xml = answer_xml(&query, &routes.default_answer_xml);
        return Ok(([(header::CONTENT_TYPE, "application/xml")], xml).into_response());
    }
    Ok(axum::Json(accepted).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn statuses_map_to_event_names() {
        assert_eq!(
            status(&pairs(&[("CallStatus", "in-progress")]), "status"),
            "answered"
        );
        assert_eq!(
            status(&pairs(&[("CallStatus", "no-answer")]), "status"),
            "no-answer"
        );
        assert_eq!(
            status(&pairs(&[("CallStatus", "completed")]), "hangup"),
            "completed"
        );
        assert_eq!(status(&[], "answer"), "answered");
        assert_eq!(status(&pairs(&[("CallStatus", "a.b")]), "status"), "status");
    }

    #[test]
    fn answer_dials_a_valid_target_and_escapes_it() {
        let q = pairs(&[("target", "+1 555 123 1234"), ("caller_id", "+15550000000")]);
        assert_eq!(
            answer_xml(&q, "<Response/>"),
            "<Response><Dial callerId=\"+15550000000\"><Number>+15551231234</Number></Dial></Response>"
        );
        assert_eq!(
            answer_xml(&pairs(&[("target", "<script>")]), "<Response/>"),
            "<Response/>"
        );
        assert_eq!(
            answer_xml(&[], "<Response><Hangup/></Response>"),
            "<Response><Hangup/></Response>"
        );
        assert_eq!(xml_escape("a&\"<>'"), "a&amp;&quot;&lt;&gt;&apos;");
    }

    proptest::proptest! {
        #[test]
        fn answer_xml_never_carries_unvalidated_text(target in ".{0,40}", caller in ".{0,40}") {
            let q = vec![("target".to_owned(), target), ("caller_id".to_owned(), caller)];
            let xml = answer_xml(&q, "<Response/>");
            if xml != "<Response/>" {
                let number = xml.split("<Number>").nth(1).and_then(|r| r.split("</Number>").next()).unwrap();
                proptest::prop_assert!(number.starts_with('+') && number[1..].bytes().all(|b| b.is_ascii_digit()));
            }
        }

        #[test]
        fn status_is_always_a_routing_key_word(value in ".{0,30}", kind in "answer|hangup|status") {
            let s = status(&[("CallStatus".to_owned(), value)], &kind);
            proptest::prop_assert!(relay_core::routing::is_key_word(&s));
        }
    }
}
