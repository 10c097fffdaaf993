//! A generic source with `scheme = "twilio"` explained: `X-Twilio-Signature` over
//! `public_base_url` + the path and query as called, then the form's names sorted, each with its
//! distinct values sorted (or, for a JSON body, the URL alone with its `bodySHA256`).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use relay_core::config::SourceConfig;
use relay_signing::twilio;

use super::body::plus_literal;
use super::capture::Capture;
use super::hooks::body_causes;
use super::report::{Cause, Check, Param, Report, key_label};
use super::urls::{SignedUrl, first_verifying};

/// Explains a request to a Twilio-signed generic source.
pub(super) fn diagnose(
    name: &str,
    config: &SourceConfig,
    public_base_url: &str,
    capture: &Capture,
) -> anyhow::Result<Report> {
    let token = config
        .secret_env
        .require(&format!("ingress.sources.{name}.secret_env"))?;
    let target = capture
        .target()
        .context("Twilio signs the URL it calls: give the captured URL (--url, or curl's)")?;
    let urls = SignedUrl::new(public_base_url, &target, capture)
        .context("ingress.public_base_url is not an absolute URL")?;
    let header = capture.header(twilio::HEADER);
    let form = capture.is_form();
    // relay-ingress's decision for a request to `url` with `body`.
    let verify = |url: &str, body: &[u8]| {
        let params: Vec<(String, String)> = if form {
            form_urlencoded::parse(body).into_owned().collect()
        } else {
            Vec::new()
        };
        let signed = if form {
            twilio::Body::Form(&params)
        } else {
            twilio::Body::Raw(body)
        };
        twilio::verify(token, url, signed, header)
    };

    let mut report = Report::new(name, twilio::HEADER, super::request_line(capture));
    report
        .keys
        .push(key_label("auth token", config.secret_env.var(), token));
    report.url = Some(urls.report());
    let params: Vec<(String, String)> = if form {
        form_urlencoded::parse(&capture.body).into_owned().collect()
    } else {
        Vec::new()
    };
    let mut grouped: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (k, v) in &params {
        grouped.entry(k).or_default().insert(v);
    }
    for (k, values) in &grouped {
        for v in values {
            report.params.push(Param {
                from: "form".to_owned(),
                name: (*k).to_owned(),
                value: (*v).to_owned(),
            });
        }
    }
    if grouped.len() < params.len() {
        report
            .notes
            .push("a name repeats: Twilio signs each of its distinct values, sorted".to_owned());
    }
    let signed_urls = twilio::signed_urls(&urls.relay).unwrap_or_default();
    for (label, url) in ["port dropped", "default port"].iter().zip(&signed_urls) {
        let content = twilio::signed_content(url, &params);
        report.canonical(
            format!("URL + names/values ({label})"),
            String::from_utf8_lossy(&content),
        );
    }
    if !form {
        let claimed = target
            .query
            .split('&')
            .find_map(|p| p.strip_prefix("bodySHA256="))
            .unwrap_or("(absent)");
        report.params.push(Param {
            from: "query".to_owned(),
            name: "bodySHA256".to_owned(),
            value: claimed.to_owned(),
        });
        report.params.push(Param {
            from: "body".to_owned(),
            name: "SHA-256".to_owned(),
            value: twilio::body_hash(&capture.body),
        });
    }
    let result = verify(&urls.relay, &capture.body);
    report.checks.push(Check {
        header: twilio::HEADER.to_owned(),
        received: header.map(str::to_owned),
        expected: signed_urls
            .first()
            .map(|url| twilio::sign(token, url, &params)),
        result: result.map_or_else(|e| e.to_string(), |()| "verifies".to_owned()),
    });
    let verified = result.is_ok();
    if !verified {
        report.causes = causes(&urls, capture, &verify, form);
        if report.causes.is_empty() {
            report.causes.push(Cause::new(
                "wrong-token",
                "no variant verifies (URLs behind a proxy, the body's encoding): the auth \
                 token is not the sender's, or the capture is not the request as sent",
                Some(format!(
                    "check that ${} holds the account's Auth Token",
                    config.secret_env.var()
                )),
            ));
        }
    }
    super::route_note(capture, &format!("/v1/hooks/{name}"), &mut report);
    super::media_note(capture, &mut report);
    let what = format!(
        "{} {} over {}",
        twilio::HEADER,
        if verified {
            "matches"
        } else {
            "does not match"
        },
        urls.relay
    );
    report.conclude(verified, &what);
    Ok(report)
}

type Verify<'a> = dyn Fn(&str, &[u8]) -> Result<(), relay_signing::VerifyError> + 'a;

fn causes(urls: &SignedUrl, capture: &Capture, verify: &Verify<'_>, form: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    if capture.header(twilio::HEADER).is_none() {
        causes.push(Cause::new(
            "missing-header",
            format!("the capture has no {} header", twilio::HEADER),
            None,
        ));
        return causes;
    }
    if !form && !urls.relay.contains("bodySHA256=") {
        causes.push(Cause::new(
            "missing-body-hash",
            "a JSON body is signed through the URL's bodySHA256 parameter, and the URL has none",
            None,
        ));
        return causes;
    }
    if !form {
        causes.extend(body_causes(capture, |body| {
            verify(&urls.relay, body).is_ok()
        }));
    }
    let candidates = urls.candidates();
    if let Some((c, others)) =
        first_verifying(&candidates, |url| verify(url, &capture.body).is_ok())
    {
        causes.push(super::url_cause(&c, others));
    }
    if form
        && let Some(body) = plus_literal(&capture.body)
        && verify(&urls.relay, &body).is_ok()
    {
        causes.push(super::plus_cause());
    }
    causes
}
