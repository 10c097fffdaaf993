//! An HMAC-SHA256 of the exact body in a header (`hmac-sha256` sources, Re:amaze), explained:
//! on a mismatch, the MAC found in another header, encoding or after another prefix, or over a
//! re-serialised body.

use relay_signing::{VerifyError, hmac_header};

use super::capture::Capture;
use super::hooks::{BODY_SHOWN, body_causes, wrong_secret};
use super::report::{Cause, Check, Report, key_label};

/// An HMAC-SHA256 of the body in a header.
pub(super) struct Hmac<'a> {
    pub(super) source: &'a str,
    pub(super) header: &'a str,
    pub(super) encoding: hmac_header::Encoding,
    pub(super) prefix: &'a str,
    /// The configuration section, for fixes.
    pub(super) field: &'a str,
    pub(super) var: &'a str,
    pub(super) secret: &'a str,
}

pub(super) type BodyVerify<'a> = dyn Fn(&[u8], Option<&str>) -> Result<(), VerifyError> + 'a;

pub(super) fn body_hmac(spec: &Hmac<'_>, capture: &Capture, verify: &BodyVerify<'_>) -> Report {
    let scheme = format!("{} over the exact body", spec.header);
    let mut report = Report::new(spec.source, &scheme, super::request_line(capture));
    report.keys.push(key_label("secret", spec.var, spec.secret));
    report.canonical("exact body", capture.body_text(BODY_SHOWN));
    let given = capture.header(spec.header);
    let result = verify(&capture.body, given);
    report.checks.push(Check {
        header: spec.header.to_owned(),
        received: given.map(str::to_owned),
        expected: Some(hmac_header::sign(
            spec.secret.as_bytes(),
            &capture.body,
            spec.encoding,
            spec.prefix,
        )),
        result: result.map_or_else(|e| e.to_string(), |()| "verifies".to_owned()),
    });
    if capture.header_count(spec.header) > 1 {
        report.notes.push(format!(
            "{} appears more than once: the relay reads the first",
            spec.header
        ));
    }
    let verified = result.is_ok();
    if !verified {
        report.causes = hmac_causes(spec, capture, verify);
    }
    let what = if verified {
        format!("{} matches the body", spec.header)
    } else {
        format!("{} does not match the body", spec.header)
    };
    report.conclude(verified, &what);
    report
}

fn hmac_causes(spec: &Hmac<'_>, capture: &Capture, verify: &BodyVerify<'_>) -> Vec<Cause> {
    use hmac_header::Encoding::{Base64, Hex};
    let mac = |encoding| hmac_header::sign(spec.secret.as_bytes(), &capture.body, encoding, "");
    let (hex, b64) = (mac(Hex), mac(Base64));
    // The prefix and encoding of a header value that holds this body's MAC, if it does.
    let decode = |value: &str| {
        let value = value.trim();
        let after_prefix = value
            .find(['=', ' ', ':'])
            .filter(|&i| i < 16)
            .map(|i| i + 1);
        std::iter::once(0).chain(after_prefix).find_map(|at| {
            let (prefix, mac) = value.split_at(at);
            let encoding = if mac.eq_ignore_ascii_case(&hex) {
                Hex
            } else if mac == b64 {
                Base64
            } else {
                return None;
            };
            Some((prefix.to_owned(), encoding))
        })
    };
    let name = |e| if e == Hex { "hex" } else { "base64" };
    let mut causes = Vec::new();
    match capture.header(spec.header) {
        Some(value) => {
            if let Some((prefix, encoding)) = decode(value) {
                if encoding != spec.encoding {
                    causes.push(Cause::new(
                        "encoding",
                        format!(
                            "{} holds the right MAC in {}, the relay expects {}",
                            spec.header,
                            name(encoding),
                            name(spec.encoding)
                        ),
                        Some(format!(
                            "set {}.encoding = \"{}\"",
                            spec.field,
                            name(encoding)
                        )),
                    ));
                }
                if prefix != spec.prefix {
                    causes.push(Cause::new(
                        "prefix",
                        format!(
                            "{} holds the right MAC after the prefix `{prefix}`, the relay \
                             expects `{}`",
                            spec.header, spec.prefix
                        ),
                        Some(format!("set {}.prefix = \"{prefix}\"", spec.field)),
                    ));
                }
            }
        }
        None => {
            for (header, value) in &capture.headers {
                if decode(value).is_some() {
                    causes.push(Cause::new(
                        "header",
                        format!(
                            "the body's MAC is in {header}, the relay reads {}",
                            spec.header
                        ),
                        Some(format!("set {}.header = \"{header}\"", spec.field)),
                    ));
                }
            }
            if causes.is_empty() {
                causes.push(Cause::new(
                    "missing-header",
                    format!("the capture has no {} header", spec.header),
                    None,
                ));
            }
            return causes;
        }
    }
    if causes.is_empty() {
        causes.extend(body_causes(capture, |body| {
            verify(body, capture.header(spec.header)).is_ok()
        }));
    }
    if causes.is_empty() {
        causes.push(wrong_secret(spec.var));
    }
    causes
}
