//! Body-signed sources explained, each checked with relay-signing's function as relay-ingress
//! calls it: a generic source's scheme ([`super::standard_webhooks`], [`super::hmac`], `basic`
//! here), and Re:amaze.

use relay_core::config::{ReamazeSource, SignatureEncoding, SourceConfig, SourceScheme};
use relay_signing::{basic, hmac_header, reamaze};

use super::body::raw_variants;
use super::capture::Capture;
use super::hmac::{Hmac, body_hmac};
use super::report::{Cause, Check, Param, Report, key_label};

/// Characters of a body shown in a canonical string.
pub(super) const BODY_SHOWN: usize = 2000;

/// A generic source (`[ingress.sources.<name>]`), by its scheme.
pub(super) fn generic(
    name: &str,
    config: &SourceConfig,
    public_base_url: &str,
    capture: &Capture,
    now: i64,
) -> anyhow::Result<Report> {
    let field = format!("ingress.sources.{name}");
    let secret = config.secret_env.require(&format!("{field}.secret_env"))?;
    let mut report = match config.scheme {
        SourceScheme::StandardWebhooks => {
            let tolerance = i64::try_from(config.tolerance.as_secs()).unwrap_or(i64::MAX);
            super::standard_webhooks::explain(
                name,
                "Standard Webhooks",
                &config.secret_env,
                secret,
                tolerance,
                capture,
                now,
            )?
        }
        SourceScheme::HmacSha256 => {
            let encoding = match config.encoding {
                SignatureEncoding::Hex => hmac_header::Encoding::Hex,
                SignatureEncoding::Base64 => hmac_header::Encoding::Base64,
            };
            let spec = Hmac {
                source: name,
                header: config.header.as_deref().unwrap_or_default(),
                encoding,
                prefix: &config.prefix,
                field: &field,
                var: config.secret_env.var(),
                secret,
            };
            let verify = |body: &[u8], header: Option<&str>| {
                hmac_header::verify(secret.as_bytes(), body, encoding, &config.prefix, header)
            };
            body_hmac(&spec, capture, &verify)
        }
        SourceScheme::Basic => basic_auth(name, config, secret, capture),
        // Signed over the URL: explained apart, route and media type included.
        SourceScheme::Twilio => {
            return super::twilio::diagnose(name, config, public_base_url, capture);
        }
    };
    super::route_note(capture, &format!("/v1/hooks/{name}"), &mut report);
    super::media_note(capture, &mut report);
    Ok(report)
}

/// `[ingress.reamaze]`: `X-Reamaze-Hmac-SHA256`, base64 of the exact body.
pub(super) fn reamaze(config: &ReamazeSource, capture: &Capture) -> anyhow::Result<Report> {
    let secret = config.secret_env.require("ingress.reamaze.secret_env")?;
    let spec = Hmac {
        source: "reamaze",
        header: reamaze::HEADER,
        encoding: hmac_header::Encoding::Base64,
        prefix: "",
        field: "ingress.reamaze",
        var: config.secret_env.var(),
        secret,
    };
    let verify =
        |body: &[u8], header: Option<&str>| reamaze::verify(secret.as_bytes(), body, header);
    let mut report = body_hmac(&spec, capture, &verify);
    if let Some(target) = capture.target()
        && !target.route.starts_with("/v1/reamaze/")
    {
        report.notes.push(format!(
            "the capture calls {}, not /v1/reamaze/<channel>",
            target.route
        ));
    }
    super::media_note(capture, &mut report);
    Ok(report)
}

/// The re-serialisations of the body that verify.
pub(super) fn body_causes(capture: &Capture, verifies: impl Fn(&[u8]) -> bool) -> Vec<Cause> {
    raw_variants(&capture.body, capture.is_form())
        .into_iter()
        .filter(|v| verifies(&v.bytes))
        .take(1)
        .map(|v| {
            Cause::new(
                "body-re-encoded",
                format!(
                    "it verifies over {}: the body was re-serialised between the sender and \
                     the relay (a proxy, a framework, or the capture itself)",
                    v.what
                ),
                Some("pass the body through byte for byte, and capture it that way".to_owned()),
            )
        })
        .collect()
}

pub(super) fn wrong_secret(var: &str) -> Cause {
    Cause::new(
        "wrong-secret",
        "no variant verifies (body re-serialisations, encodings, prefixes): the secret is not \
         the sender's, or the capture is not the request as sent",
        Some(format!(
            "check that ${var} holds the secret the sender signs with"
        )),
    )
}

/// HTTP Basic: the user name shown, the password never.
fn basic_auth(name: &str, config: &SourceConfig, password: &str, capture: &Capture) -> Report {
    let username = config.username.as_deref().unwrap_or_default();
    let mut report = Report::new(name, "basic", super::request_line(capture));
    report
        .keys
        .push(key_label("password", config.secret_env.var(), password));
    let header = capture.header("authorization");
    let result = basic::verify(header, username, password);
    if let Some(Ok((user, given))) = header.map(basic::credentials) {
        let user = String::from_utf8_lossy(&user).into_owned();
        report.params.push(Param {
            from: "authorization".to_owned(),
            name: "user".to_owned(),
            value: user.clone(),
        });
        report.params.push(Param {
            from: "authorization".to_owned(),
            name: "password".to_owned(),
            value: format!("({} characters, not shown)", given.len()),
        });
        if result.is_err() {
            report.causes.push(if user == username {
                Cause::new(
                    "wrong-password",
                    format!(
                        "the user is {user} as configured, the password is not ${}'s",
                        config.secret_env.var()
                    ),
                    None,
                )
            } else {
                Cause::new(
                    "wrong-user",
                    format!("the user is `{user}`, the source expects `{username}`"),
                    Some(format!("set ingress.sources.{name}.username = \"{user}\"")),
                )
            });
        }
    }
    report.checks.push(Check {
        header: "Authorization".to_owned(),
        received: header.map(|h| {
            h.split_once(' ')
                .map_or("(not shown)".to_owned(), |(scheme, _)| {
                    format!("{scheme} (credentials not shown)")
                })
        }),
        expected: Some(format!("Basic credentials of user `{username}`")),
        result: result.map_or_else(|e| e.to_string(), |()| "verifies".to_owned()),
    });
    let verified = result.is_ok();
    report.conclude(verified, &format!("HTTP Basic credentials of `{username}`"));
    report
}
