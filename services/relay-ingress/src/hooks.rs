//! `POST /v1/hooks/{source}`: generic sources configured by name, each with its scheme
//! (`standard-webhooks`, `hmac-sha256`, `twilio`, `basic`).
//!
//! Verification runs on the raw bytes before anything is parsed. The body (JSON, or form
//! parameters for Twilio-style senders) becomes the event's data; the event type comes from the
//! source's `type_pointer` (default `event`), its unique id from `webhook-id` (Standard
//! Webhooks) or the `id_pointer`, which also names the dedup mark and the event id. Events are
//! routed as `<source>.<type>`.
//!
//! A request with neither (Re:amaze, and a generic source without an `id_pointer`) is named by
//! a SHA-256 digest of what its scheme authenticates: the exact body bytes, and for Twilio the
//! public URL with the signed parameters (or the raw body). A replay of a captured request is
//! then the same event id and the same dedup mark, so it collapses like any other duplicate
//! instead of publishing again under a fresh UUIDv7. (The Re:amaze channel in the path is not
//! signed, so it is not part of the name: a replay to another channel collapses too.)

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, Uri, header};
use relay_core::config::{ConfigError, EnvSecret, SignatureEncoding, SourceConfig, SourceScheme};
use relay_core::{CloudEvent, ids, routing};
use relay_signing::{VerifyError, basic, digest, hmac_header, reamaze, standard_webhooks, twilio};
use serde_json::{Map, Value};

use crate::problem::Problem;
use crate::{Accepted, Outgoing, Shared, publish_in, read_body};

/// Names a generic source may not take: the built-in routes' sources, whose routing keys and
/// dedup marks it would share.
pub const RESERVED: &[&str] = &["voximplant", "plivo", "acrobits", "reamaze"];

/// The `source` label of Re:amaze's route.
pub const REAMAZE: &str = "reamaze";
/// The `source` label of the relay's Voximplant scenario route.
pub const VOXIMPLANT_EVENTS: &str = "voximplant-events";
/// The `source` label of requests to `/v1/hooks/{source}` for a name not configured: only
/// configured names become labels, so a scan of random names creates no series.
pub const UNKNOWN: &str = "unknown";

/// A verified-body source, its secret decoded once: a generic one from `[ingress.sources]`, or
/// a built-in one (Re:amaze, the relay's Voximplant scenario) that names its events itself.
pub(crate) struct HookSource {
    verifier: Verifier,
    type_pointer: Option<String>,
    id_pointer: Option<String>,
    /// Routing key before the type: the source name, `reamaze`, `voximplant.call`.
    routing_prefix: String,
    /// CloudEvents `type` before the type: `relay.hooks.<name>`, `com.reamaze`, ….
    type_prefix: String,
    /// CloudEvents `source`, also the namespace of derived event ids.
    event_source: String,
    /// Namespace of its dedup marks.
    dedup_namespace: String,
    /// The `source` label of its requests and events: its name in `[ingress.sources]`,
    /// [`REAMAZE`], [`VOXIMPLANT_EVENTS`].
    label: String,
}

enum Verifier {
    StandardWebhooks {
        key: standard_webhooks::Secret,
        tolerance_secs: i64,
    },
    Reamaze {
        secret: EnvSecret,
    },
    Hmac {
        secret: EnvSecret,
        header: HeaderName,
        encoding: hmac_header::Encoding,
        prefix: String,
    },
    Twilio {
        token: EnvSecret,
    },
    Basic {
        username: String,
        password: EnvSecret,
    },
}

impl HookSource {
    /// Builds the verifier of source `name` (configuration already validated).
    pub(crate) fn from_config(name: &str, config: &SourceConfig) -> Result<Self, ConfigError> {
        let field = |f: &str| format!("ingress.sources.{name}.{f}");
        let invalid = |f: &str, message: String| ConfigError::Invalid {
            field: field(f),
            message,
        };
        if RESERVED.contains(&name) {
            return Err(ConfigError::Invalid {
                field: format!("ingress.sources.{name}"),
                message: format!("`{name}` is the name of a built-in route's source"),
            });
        }
        let secret = config.secret_env.clone();
        let verifier = match config.scheme {
            SourceScheme::StandardWebhooks => Verifier::StandardWebhooks {
                key: standard_webhooks::Secret::parse(secret.require(&field("secret_env"))?)
                    .map_err(|e| invalid("secret_env", e.to_string()))?,
                tolerance_secs: i64::try_from(config.tolerance.as_secs()).unwrap_or(i64::MAX),
            },
            SourceScheme::HmacSha256 => Verifier::Hmac {
                header: HeaderName::try_from(config.header.as_deref().unwrap_or_default())
                    .map_err(|e| invalid("header", e.to_string()))?,
                secret,
                encoding: match config.encoding {
                    SignatureEncoding::Hex => hmac_header::Encoding::Hex,
                    SignatureEncoding::Base64 => hmac_header::Encoding::Base64,
                },
                prefix: config.prefix.clone(),
            },
            SourceScheme::Twilio => Verifier::Twilio { token: secret },
            SourceScheme::Basic => Verifier::Basic {
                username: config.username.clone().unwrap_or_default(),
                password: secret,
            },
        };
        Ok(Self {
            verifier,
            type_pointer: config.type_pointer.clone(),
            id_pointer: config.id_pointer.clone(),
            routing_prefix: name.to_owned(),
            type_prefix: format!("relay.hooks.{name}"),
            event_source: format!("hooks/{name}"),
            dedup_namespace: format!("hook-{name}"),
            label: name.to_owned(),
        })
    }

    /// `POST /v1/reamaze/{channel}`: `X-Reamaze-Hmac-SHA256` on the exact body; events
    /// `reamaze.<channel>`.
    pub(crate) fn reamaze(secret: EnvSecret) -> Self {
        Self {
            verifier: Verifier::Reamaze { secret },
            type_pointer: None,
            id_pointer: None,
            routing_prefix: "reamaze".to_owned(),
            type_prefix: "com.reamaze".to_owned(),
            event_source: "reamaze".to_owned(),
            dedup_namespace: "reamaze".to_owned(),
            label: REAMAZE.to_owned(),
        }
    }

    /// `POST /v1/voximplant/events`: the relay's own scenario, Standard Webhooks signed, with the
    /// call event's kind in `/kind` (`started`, `ringing`, `answered`, `ended`, `failed`,
    /// `recording_ready`, …); events `voximplant.call.<kind>`, deduplicated on `webhook-id`.
    pub(crate) fn voximplant_events(secret: &EnvSecret) -> Result<Self, ConfigError> {
        let field = "ingress.voximplant.events_secret_env";
        let key = standard_webhooks::Secret::parse(secret.require(field)?).map_err(|e| {
            ConfigError::Invalid {
                field: field.to_owned(),
                message: e.to_string(),
            }
        })?;
        Ok(Self {
            verifier: Verifier::StandardWebhooks {
                key,
                tolerance_secs: standard_webhooks::DEFAULT_TOLERANCE_SECS,
            },
            type_pointer: Some("/kind".to_owned()),
            id_pointer: None,
            routing_prefix: "voximplant.call".to_owned(),
            type_prefix: "com.voximplant.call".to_owned(),
            event_source: "voximplant/scenario".to_owned(),
            dedup_namespace: "voximplant-events".to_owned(),
            label: VOXIMPLANT_EVENTS.to_owned(),
        })
    }
}

fn signature_problem(error: VerifyError) -> Problem {
    match error {
        VerifyError::Stale => Problem::StaleTimestamp,
        other => Problem::BadSignature(other.to_string()),
    }
}

/// A value usable as a routing-key word: anything else becomes `_`, at most 64 characters.
fn key_word(text: &str) -> String {
    let word: String = text
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if word.is_empty() {
        "event".to_owned()
    } else {
        word
    }
}

/// Form parameters as a JSON object (a repeated name becomes an array).
pub(crate) fn form_to_json(pairs: &[(String, String)]) -> Value {
    let mut object = Map::new();
    for (k, v) in pairs {
        match object.get_mut(k) {
            None => {
                object.insert(k.clone(), Value::String(v.clone()));
            }
            Some(Value::Array(values)) => values.push(Value::String(v.clone())),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(v.clone())]);
            }
        }
    }
    Value::Object(object)
}

/// Handles one request for `source`; `kind` overrides the type pointer (Re:amaze's channel).
pub(crate) async fn handle(
    app: &Shared,
    source: Option<&HookSource>,
    kind: Option<&str>,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Accepted, Problem> {
    let source = source.ok_or(Problem::UnknownSource)?;
    crate::require_json_or_form(headers)?;
    let bytes = read_body(body, app.body_limit).await?;
    let text_header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let is_form = crate::is_form(headers);
    let form: Option<Vec<(String, String)>> =
        is_form.then(|| form_urlencoded::parse(&bytes).into_owned().collect());

    // Verify the raw request first; nothing is parsed for a request that does not verify.
    let mut unique_id = None;
    // The digest of what the scheme authenticates (most schemes: the exact body).
    let mut signed_digest = None;
    match &source.verifier {
        Verifier::StandardWebhooks {
            key,
            tolerance_secs,
        } => {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            standard_webhooks::verify(
                key,
                text_header(standard_webhooks::ID_HEADER),
                text_header(standard_webhooks::TIMESTAMP_HEADER),
                text_header(standard_webhooks::SIGNATURE_HEADER),
                &bytes,
                now,
                *tolerance_secs,
            )
            .map_err(signature_problem)?;
            unique_id = text_header(standard_webhooks::ID_HEADER).map(str::to_owned);
        }
        Verifier::Reamaze { secret } => {
            let key = secret.value().unwrap_or_default().as_bytes();
            reamaze::verify(key, &bytes, text_header(reamaze::HEADER))
                .map_err(signature_problem)?;
            signed_digest = Some(digest::content_digest(&[&bytes]));
        }
        Verifier::Hmac {
            secret,
            header,
            encoding,
            prefix,
        } => {
            let key = secret.value().unwrap_or_default().as_bytes();
            hmac_header::verify(key, &bytes, *encoding, prefix, text_header(header.as_str()))
                .map_err(signature_problem)?;
            signed_digest = Some(digest::content_digest(&[&bytes]));
        }
        Verifier::Twilio { token } => {
            // Signed over the URL the sender called, as it sees it (behind proxies it differs).
            let path = uri
                .path_and_query()
                .map_or_else(|| uri.path(), |pq| pq.as_str());
            let url = format!("{}{path}", app.public_base_url.trim_end_matches('/'));
            let signed = match &form {
                Some(params) => twilio::Body::Form(params),
                None => twilio::Body::Raw(&bytes),
            };
            twilio::verify(
                token.value().unwrap_or_default(),
                &url,
                signed,
                text_header(twilio::HEADER),
            )
            .map_err(signature_problem)?;
            // Twilio signs sorted parameters, not the body's bytes: name the request by what
            // is signed, so a replay with its parameters reordered collapses too.
            signed_digest = Some(match &form {
                Some(params) => digest::content_digest(&[&twilio::signed_content(&url, params)]),
                None => digest::content_digest(&[url.as_bytes(), &bytes]),
            });
        }
        Verifier::Basic { username, password } => {
            basic::verify(
                text_header(header::AUTHORIZATION.as_str()),
                username,
                password.value().unwrap_or_default(),
            )
            .map_err(signature_problem)?;
            signed_digest = Some(digest::content_digest(&[&bytes]));
        }
    }

    let data = match &form {
        Some(pairs) => form_to_json(pairs),
        None if bytes.is_empty() => Value::Null,
        None => serde_json::from_slice(&bytes)
            .map_err(|e| Problem::Malformed(format!("body is not JSON: {e}")))?,
    };
    let kind = match kind {
        Some(kind) => key_word(kind),
        None => source
            .type_pointer
            .as_deref()
            .and_then(|p| data.pointer(p))
            .and_then(Value::as_str)
            .map_or_else(|| "event".to_owned(), key_word),
    };
    if unique_id.is_none() {
        unique_id = source
            .id_pointer
            .as_deref()
            .and_then(|p| data.pointer(p))
            .and_then(|v| match v {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
    }
    let event_id = match (&unique_id, &signed_digest) {
        (Some(u), _) => ids::derived_event_id(&source.event_source, &[u]),
        (None, Some(d)) => ids::derived_event_id(&source.event_source, &["sha256", d]),
        (None, None) => ids::new_event_id(),
    };
    let unique_id = unique_id.or_else(|| signed_digest.map(|d| format!("sha256:{d}")));
    let event = CloudEvent::new(
        event_id,
        source.event_source.clone(),
        format!("{}.{kind}", source.type_prefix),
        data,
    );
    let outgoing = Outgoing {
        routing_key: routing::event_key(&source.routing_prefix, &kind),
        event,
        dedup_key: unique_id,
    };
    publish_in(app, &source.label, &source.dedup_namespace, vec![outgoing]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_become_routing_key_words() {
        assert_eq!(key_word("push"), "push");
        assert_eq!(key_word("pull_request.opened"), "pull_request_opened");
        assert_eq!(key_word("a#b*c"), "a_b_c");
        assert_eq!(key_word(""), "event");
        assert_eq!(key_word(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn forms_become_objects_with_arrays_for_repeats() {
        let pairs = vec![
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned()),
            ("a".to_owned(), "3".to_owned()),
        ];
        assert_eq!(
            form_to_json(&pairs),
            serde_json::json!({"a": ["1", "3"], "b": "2"})
        );
    }

    proptest::proptest! {
        #[test]
        fn any_type_text_becomes_a_routing_key_word(text in ".{0,100}") {
            proptest::prop_assert!(relay_core::routing::is_key_word(&key_word(&text)));
        }

        /// Nothing of a form is lost or reordered: each name maps to its one value, or to all
        /// of its values in their order when it repeats.
        #[test]
        fn a_form_keeps_every_value_in_order(
            pairs in proptest::collection::vec(("[abc]", ".{0,6}"), 0..10),
        ) {
            let object = form_to_json(&pairs);
            let object = object.as_object().expect("an object");
            let mut names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            proptest::prop_assert_eq!(object.len(), names.len());
            for name in names {
                let expected: Vec<&str> = pairs
                    .iter()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
                    .collect();
                let got: Vec<&str> = match &object[name] {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(values) => values.iter().filter_map(Value::as_str).collect(),
                    other => return Err(proptest::test_runner::TestCaseError::fail(format!("{other:?}"))),
                };
                proptest::prop_assert_eq!(&got, &expected);
                proptest::prop_assert_eq!(object[name].is_array(), expected.len() > 1);
            }
        }
    }
}
