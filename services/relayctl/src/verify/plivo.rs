//! `relayctl verify --source plivo`: `X-Plivo-Signature-V3` (and `-Ma-V3`, V2) explained.
//!
//! The relay's decision is repeated exactly as relay-ingress makes it (V3 with the auth token,
//! then Ma-V3 with the main account's token where configured, then V2 where `accept_v2`), with
//! the same [`sig::SignedRequest`]. On a mismatch the variants are tried one at a time: the
//! other token, V2, the URLs a proxy makes of the public one, a literal `+`, the other method.

use anyhow::Context;
use relay_core::config::PlivoSource;
use relay_signing::plivo as sig;

use super::body::plus_literal;
use super::capture::Capture;
use super::report::{Cause, Check, Param, Report, key_label};
use super::urls::{SignedUrl, first_verifying};

/// The signature headers of a capture.
struct Headers<'a> {
    nonce: Option<&'a str>,
    v3: Option<&'a str>,
    ma: Option<&'a str>,
    v2: Option<&'a str>,
    nonce_v2: Option<&'a str>,
}

/// The tokens and switches of `[ingress.plivo]`.
struct Keys<'a> {
    token: &'a str,
    main: Option<&'a str>,
    accept_v2: bool,
}

impl Keys<'_> {
    /// relay-ingress's decision for a request to `url`.
    fn accepts(&self, url: &str, method: sig::Method, body: &[u8], h: &Headers<'_>) -> bool {
        let Some(request) = sig::SignedRequest::from_body(url, method, body) else {
            return false;
        };
        request.verify_v3(self.token, h.nonce, h.v3).is_ok()
            || (h.ma.is_some()
                && self
                    .main
                    .is_some_and(|main| request.verify_v3(main, h.nonce, h.ma).is_ok()))
            || (h.v2.is_some()
                && self.accept_v2
                && sig::verify_v2(self.token, url, h.nonce_v2, h.v2).is_ok())
    }
}

/// Explains a captured Plivo callback.
pub(super) fn diagnose(
    config: &PlivoSource,
    public_base_url: &str,
    capture: &Capture,
) -> anyhow::Result<Report> {
    let target = capture
        .target()
        .context("Plivo signs the URL it calls: give the captured URL (--url, or curl's)")?;
    let urls = SignedUrl::new(public_base_url, &target, capture)
        .context("ingress.public_base_url is not an absolute URL")?;
    let keys = Keys {
        token: config
            .auth_token_env
            .require("ingress.plivo.auth_token_env")?,
        main: config
            .main_auth_token_env
            .as_ref()
            .map(|m| m.require("ingress.plivo.main_auth_token_env"))
            .transpose()?,
        accept_v2: config.accept_v2,
    };
    let method = if capture.method == "GET" {
        sig::Method::Get
    } else {
        sig::Method::Post
    };
    let mut report = Report::new(
        "plivo",
        "X-Plivo-Signature-V3",
        super::request_line(capture),
    );
    report.keys.push(key_label(
        "auth token",
        config.auth_token_env.var(),
        keys.token,
    ));
    if let (Some(main), Some(var)) = (keys.main, &config.main_auth_token_env) {
        report
            .keys
            .push(key_label("main account token (Ma-V3)", var.var(), main));
    }
    route_notes(&target.route, capture, &mut report);
    let request = sig::SignedRequest::from_body(&urls.relay, method, &capture.body)
        .context("ingress.public_base_url is not an absolute URL")?;
    report.url = Some(urls.report());
    for (from, pairs) in [("query", request.query()), ("form", request.form())] {
        for (name, value) in pairs {
            report.params.push(Param {
                from: from.to_owned(),
                name: name.clone(),
                value: value.clone(),
            });
        }
        let mut names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        names.dedup();
        for name in names {
            let count = pairs.iter().filter(|(k, _)| k == name).count();
            if count > 1 {
                report.notes.push(format!(
                    "`{name}` appears {count} times in the {from}: every value is signed, sorted"
                ));
            }
        }
    }
    let h = Headers {
        nonce: capture.header(sig::NONCE_V3),
        v3: capture.header(sig::SIGNATURE_V3),
        ma: capture.header(sig::SIGNATURE_MA_V3),
        v2: capture.header(sig::SIGNATURE_V2),
        nonce_v2: capture.header(sig::NONCE_V2),
    };
    let bases = request.base_strings();
    let nonce_text = h.nonce.unwrap_or("<no nonce>");
    for (i, base) in bases.iter().enumerate() {
        let label = if i == 0 { "canonical" } else { "also accepted" };
        report.canonical(label, format!("{base}.{nonce_text}"));
    }
    checks(&mut report, &keys, &request, &bases, &urls.relay, &h);
    let verified = keys.accepts(&urls.relay, method, &capture.body, &h);
    if !verified {
        report.causes = causes(&keys, &urls, method, capture, &h);
    }
    let what = if verified {
        format!("the Plivo signature matches over {}", urls.relay)
    } else {
        format!("no Plivo signature matches over {}", urls.relay)
    };
    report.conclude(verified, &what);
    Ok(report)
}

/// Where relay-ingress would refuse before the signature is even checked.
fn route_notes(route: &str, capture: &Capture, report: &mut Report) {
    let kind = route.trim_end_matches('/').strip_prefix("/v1/plivo/");
    if !matches!(kind, Some("answer" | "hangup" | "status")) {
        report.notes.push(format!(
            "{route} is not a Plivo route of the relay (/v1/plivo/answer, /hangup, /status): it \
             answers 404"
        ));
    }
    if !matches!(capture.method.as_str(), "GET" | "POST") {
        report.notes.push(format!(
            "the relay answers {} with 405: Plivo callbacks are GET or POST",
            capture.method
        ));
    }
    if capture.method != "GET" && capture.header("content-type").is_some() && !capture.is_form() {
        report.notes.push(
            "the relay answers 415: a POST callback must be application/x-www-form-urlencoded"
                .to_owned(),
        );
    }
}

/// One line per signature header sent (V3 also when none is).
fn checks(
    report: &mut Report,
    keys: &Keys<'_>,
    request: &sig::SignedRequest,
    bases: &[String],
    url: &str,
    h: &Headers<'_>,
) {
    let expected = |token: &str| h.nonce.map(|n| sig::sign_v3_base(token, &bases[0], n));
    let result = |r: Result<(), relay_signing::VerifyError>| match r {
        Ok(()) => "verifies".to_owned(),
        Err(e) if bases.len() > 1 => format!("{e} (in none of the {} layouts)", bases.len()),
        Err(e) => e.to_string(),
    };
    let nonce = h.nonce.unwrap_or("(absent)");
    if h.v3.is_some() || (h.ma.is_none() && h.v2.is_none()) {
        report.checks.push(Check {
            header: format!("{} with nonce {nonce}", sig::SIGNATURE_V3),
            received: h.v3.map(str::to_owned),
            expected: expected(keys.token),
            result: result(request.verify_v3(keys.token, h.nonce, h.v3)),
        });
    }
    if let Some(ma) = h.ma {
        report.checks.push(Check {
            header: format!("{} with nonce {nonce}", sig::SIGNATURE_MA_V3),
            received: Some(ma.to_owned()),
            expected: keys.main.and_then(expected),
            result: match keys.main {
                Some(main) => result(request.verify_v3(main, h.nonce, h.ma)),
                None => "not accepted: no ingress.plivo.main_auth_token_env".to_owned(),
            },
        });
    }
    if let Some(v2) = h.v2 {
        let nonce = h.nonce_v2.unwrap_or_default();
        report.checks.push(Check {
            header: format!("{} with nonce {nonce}", sig::SIGNATURE_V2),
            received: Some(v2.to_owned()),
            expected: sig::sign_v2(keys.token, url, nonce),
            result: if keys.accept_v2 {
                result(sig::verify_v2(keys.token, url, h.nonce_v2, h.v2))
            } else {
                "not accepted: ingress.plivo.accept_v2 = false".to_owned()
            },
        });
    }
}

/// The variants that would have verified, most likely first; a wrong token when none does.
fn causes(
    keys: &Keys<'_>,
    urls: &SignedUrl,
    method: sig::Method,
    capture: &Capture,
    h: &Headers<'_>,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    let no_signature = h.v3.is_none() && h.ma.is_none() && h.v2.is_none();
    if no_signature || (h.nonce.is_none() && h.v2.is_none()) {
        let missing = if no_signature {
            sig::SIGNATURE_V3
        } else {
            sig::NONCE_V3
        };
        causes.push(Cause::new(
            "missing-header",
            format!("the capture has no {missing} header"),
            Some("capture the request with all its X-Plivo-* headers".to_owned()),
        ));
        return causes;
    }
    let request = sig::SignedRequest::from_body(&urls.relay, method, &capture.body);
    let with = |token: &str, header: Option<&str>| {
        header.is_some()
            && request
                .as_ref()
                .is_some_and(|r| r.verify_v3(token, h.nonce, header).is_ok())
    };
    match keys.main {
        Some(main) if with(main, h.v3) => causes.push(Cause::new(
            "main-account-token",
            format!(
                "{} verifies with the main account's token",
                sig::SIGNATURE_V3
            ),
            Some(
                "ingress.plivo.auth_token_env must hold the token of the account that owns \
                 the application (here the main account)"
                    .to_owned(),
            ),
        )),
        Some(_) if with(keys.token, h.ma) => causes.push(Cause::new(
            "main-account-token",
            format!(
                "{} verifies with auth_token_env's token",
                sig::SIGNATURE_MA_V3
            ),
            Some("auth_token_env and main_auth_token_env hold each other's token".to_owned()),
        )),
        None if h.ma.is_some() => causes.push(Cause::new(
            "main-account-token",
            format!(
                "the request carries {} (signed with the main account's token), which the \
                 relay does not check without a main account token",
                sig::SIGNATURE_MA_V3
            ),
            Some("set ingress.plivo.main_auth_token_env to the main account's token".to_owned()),
        )),
        _ => {}
    }
    if h.v2.is_some()
        && !keys.accept_v2
        && sig::verify_v2(keys.token, &urls.relay, h.nonce_v2, h.v2).is_ok()
    {
        causes.push(Cause::new(
            "v2-disabled",
            format!("{} verifies, but V2 is not accepted", sig::SIGNATURE_V2),
            Some("set ingress.plivo.accept_v2 = true (or have Plivo send V3)".to_owned()),
        ));
    }
    let candidates = urls.candidates();
    if let Some((c, others)) = first_verifying(&candidates, |url| {
        keys.accepts(url, method, &capture.body, h)
    }) {
        causes.push(super::url_cause(&c, others));
    }
    if let Some(body) = plus_literal(&capture.body)
        && keys.accepts(&urls.relay, method, &body, h)
    {
        causes.push(super::plus_cause());
    }
    let other = match method {
        sig::Method::Get => sig::Method::Post,
        sig::Method::Post => sig::Method::Get,
    };
    if keys.accepts(&urls.relay, other, &capture.body, h) {
        causes.push(Cause::new(
            "method",
            format!(
                "it verifies as a {} request: the capture's method {} is not the one Plivo used",
                if other == sig::Method::Get {
                    "GET"
                } else {
                    "POST"
                },
                capture.method
            ),
            None,
        ));
    }
    if causes.is_empty() {
        causes.push(Cause::new(
            "wrong-token",
            format!(
                "no variant verifies ({} URLs, the other token, the body's `+`, the other \
                 method): the token is not the one Plivo signs with, or the capture is not \
                 the request as sent",
                candidates.len()
            ),
            Some(
                "check that ingress.plivo.auth_token_env holds the Auth Token of the (sub)account \
                 that owns the application (Plivo console, Account overview)"
                    .to_owned(),
            ),
        ));
    }
    causes
}
