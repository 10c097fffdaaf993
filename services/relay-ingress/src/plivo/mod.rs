//! Plivo call callbacks: `/v1/plivo/{answer,hangup,status}` (a trailing slash allowed), GET or
//! POST.
//!
//! Each request is verified with `X-Plivo-Signature-V3` over the public URL Plivo called
//! (`public_base_url` + path as called, trailing slash included, + query) and the form
//! parameters; `-Ma-V3` with the main account's token where one is configured; V2 where enabled.
//! The request is parsed once ([`sig::SignedRequest`]) and the event is built from that same
//! parse: every value of a repeated parameter is signed (as plivo-python and plivo-node sign
//! it) and kept in the event (an array), in the order the signature covers them, since their
//! wire order is not signed. Verification and the event can therefore never disagree: a
//! captured callback replayed with one more value is refused, not published as a new event.
//! Every callback becomes `plivo.call.<status>` (`in-progress` is `answered`), deduplicated on
//! CallUUID + Event + CallStatus (+ the Dial and recording ids, when present), since Plivo
//! retries whatever it did not get a 200 for.
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

    /// Accepts the request when any enabled signature verifies. A refusal names each header
    /// that was sent and checked (or sent and not accepted here), and why; only when none was
    /// sent does it name the V3 header, the one Plivo always sends.
    fn verify(
        &self,
        headers: &HeaderMap,
        url: &str,
        request: &sig::SignedRequest,
    ) -> Result<(), Problem> {
        let text = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let token = self.auth_token.value().unwrap_or_default();
        let nonce = text(sig::NONCE_V3);
        let mut refusals = Vec::new();

        let v3 = text(sig::SIGNATURE_V3);
        match request.verify_v3(token, nonce, v3) {
            Ok(()) => return Ok(()),
            Err(e) if v3.is_some() => refusals.push(format!("{}: {e}", sig::SIGNATURE_V3)),
            Err(_) => {}
        }
        if let Some(ma) = text(sig::SIGNATURE_MA_V3) {
            match &self.main_auth_token {
                Some(main) => {
                    let main = main.value().unwrap_or_default();
                    match request.verify_v3(main, nonce, Some(ma)) {
                        Ok(()) => return Ok(()),
                        Err(e) => refusals.push(format!("{}: {e}", sig::SIGNATURE_MA_V3)),
                    }
                }
                None => refusals.push(format!(
                    "{}: not accepted (no main account token is configured)",
                    sig::SIGNATURE_MA_V3
                )),
            }
        }
        if let Some(v2) = text(sig::SIGNATURE_V2) {
            if self.accept_v2 {
                match sig::verify_v2(token, url, text(sig::NONCE_V2), Some(v2)) {
                    Ok(()) => return Ok(()),
                    Err(e) => refusals.push(format!("{}: {e}", sig::SIGNATURE_V2)),
                }
            } else {
                refusals.push(format!(
                    "{}: not accepted (V2 is disabled)",
                    sig::SIGNATURE_V2
                ));
            }
        }
        if refusals.is_empty() {
            refusals.push(format!(
                "{}: {}",
                sig::SIGNATURE_V3,
                relay_signing::VerifyError::Missing
            ));
        }
        Err(Problem::BadSignature(refusals.join("; ")))
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

/// The answer XML: `<Dial>` to a web-callback leg's target, or the default. Where a name
/// repeats, the last value is read, as everywhere else. A query with `expires` (unix seconds)
/// dials only until then (`now`); with `session`, the Dial reports the target's leg to the
/// status route under that session (`base`: the public URL), so the call log threads it.
pub(crate) fn answer_xml(
    query: &[(String, String)],
    default: &str,
    now: i64,
    base: &str,
) -> String {
    let get = |name: &str| {
        query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let expired = get("expires").is_some_and(|e| e.parse::<i64>().map_or(true, |at| at < now));
    match get("target").and_then(phone::normalize_e164) {
        Some(target) if !expired => {
            let caller = get("caller_id")
                .and_then(phone::normalize_e164)
                .map(|c| format!(" callerId=\"{}\"", xml_escape(&c)))
                .unwrap_or_default();
            let report = get("session")
                .map(|session| {
                    let session: String =
                        form_urlencoded::byte_serialize(session.as_bytes()).collect();
                    let url = format!(
                        "{}/v1/plivo/status?session={session}",
                        base.trim_end_matches('/')
                    );
                    format!(
                        " callbackUrl=\"{}\" callbackMethod=\"POST\"",
                        xml_escape(&url)
                    )
                })
                .unwrap_or_default();
            format!(
                "<Response><Dial{caller}{report}><Number>{}</Number></Dial></Response>",
                xml_escape(&target)
            )
        }
        _ => default.to_owned(),
    }
}

/// Every parameter of a verified request, the URL's query then the form, each in the order the
/// signature covers it (a key's values sorted): exactly what was signed, nothing the sender's
/// wire order could change. Where a name repeats, the last of these values is the one read.
fn signed_params(request: &sig::SignedRequest) -> Vec<(String, String)> {
    request
        .query()
        .iter()
        .chain(request.form())
        .cloned()
        .collect()
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
    let sig_method = if method == Method::GET {
        sig::Method::Get
    } else {
        sig::Method::Post
    };
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path(), |pq| pq.as_str());
    let url = format!("{}{path}", app.public_base_url.trim_end_matches('/'));
    // Parsed once: the signature is checked over this parse and the event is built from it.
    let request = sig::SignedRequest::from_body(&url, sig_method, &bytes).ok_or_else(|| {
        Problem::BadSignature("the public URL to verify against is not absolute".to_owned())
    })?;
    routes.verify(headers, &url, &request)?;

    let all = signed_params(&request);
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
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let xml = answer_xml(
            request.query(),
            &routes.default_answer_xml,
            now,
            &app.public_base_url,
        );
        return Ok(([(header::CONTENT_TYPE, "application/xml")], xml).into_response());
    }
    Ok(axum::Json(accepted).into_response())
}

#[cfg(test)]
mod tests;
