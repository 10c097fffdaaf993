//! `relayctl verify --source acrobits`: the web callback has credentials, not a signature.
//! Says which parameters were read as user, password, target, callback (and nonce) under the
//! configured names, and whether the credentials check passes, never showing the password or
//! the account's hash.

use relay_core::config::{AcrobitsSource, EnvSecret, PasswordScheme};
use relay_core::phone;
use relay_signing::password;

use super::capture::Capture;
use super::report::{Cause, Check, Labelled, Param, Report};

use relay_ingress::acrobits::params::{self, Parameter};

/// The request's parameters exactly as relay-ingress reads them.
fn parameters(capture: &Capture) -> Result<Vec<Parameter>, String> {
    let query = capture.target().map(|t| t.query).unwrap_or_default();
    let content_type = capture.header("content-type").unwrap_or_default();
    params::read(&query, content_type, &capture.body)
        .map_err(|e| format!("{e} The relay answers 400."))
}

/// `url` with the values of the `hidden` query parameters replaced by `<hidden>`.
fn mask_query(url: &str, hidden: &[String]) -> String {
    let Some((path, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| {
            let name = pair.split('=').next().unwrap_or_default();
            let decoded = form_urlencoded::parse(name.as_bytes())
                .next()
                .map(|(k, _)| k.into_owned())
                .unwrap_or_default();
            if hidden.contains(&decoded) {
                format!("{name}=<hidden>")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

/// The first non-empty value under any of `names`, in the names' order, and the name it had.
fn first<'a>(params: &'a [Parameter], names: &'a [String]) -> Option<(&'a str, &'a str)> {
    names
        .iter()
        .find_map(|name| {
            params
                .iter()
                .find(|p| &p.name == name)
                .map(|p| (name.as_str(), p.value.as_str()))
        })
        .filter(|(_, v)| !v.is_empty())
}

/// Explains an Acrobits web callback capture.
pub(super) fn diagnose(config: &AcrobitsSource, capture: &Capture) -> anyhow::Result<Report> {
    let scheme = match config.password_scheme {
        PasswordScheme::Plain => "credentials: password against the account's argon2 hash",
        PasswordScheme::SaltedSha1 => "credentials: salted SHA-1 of the account's password",
    };
    let mut report = Report::new("acrobits", scheme, super::request_line(capture));
    // The app may send the password in the query: never show it.
    if let Some(url) = &capture.url {
        let masked = Capture {
            url: Some(mask_query(url, &config.password_params)),
            ..capture.clone()
        };
        report.request = super::request_line(&masked);
    }
    report.params_heading = "Parameters (the query, then the body)";
    super::route_note(capture, "/v1/acrobits/web-callback", &mut report);
    let params = match parameters(capture) {
        Ok(params) => params,
        Err(detail) => {
            report.causes.push(Cause::new("malformed", detail, None));
            report.conclude(false, "the parameters cannot be read");
            return Ok(report);
        }
    };
    let secret_names: Vec<&String> = config.password_params.iter().collect();
    for p in &params {
        let value = if secret_names.contains(&&p.name) {
            format!("({} characters, not shown)", p.value.chars().count())
        } else {
            p.value.clone()
        };
        report.params.push(Param {
            from: p.from.to_owned(),
            name: p.name.clone(),
            value,
        });
    }
    let mut roles = vec![
        ("user", &config.username_params, false),
        ("password", &config.password_params, true),
        ("target", &config.target_params, false),
        ("callback", &config.callback_params, false),
    ];
    if config.password_scheme == PasswordScheme::SaltedSha1 {
        roles.push(("nonce", &config.nonce_params, false));
    }
    for (role, names, secret) in &roles {
        let text = match first(&params, names) {
            Some((name, value)) if *secret => {
                format!("`{name}` ({} characters, not shown)", value.chars().count())
            }
            Some((name, value)) => format!("`{name}` = {value}"),
            None => format!("none of {} is present", names.join(", ")),
        };
        report.read_as.push(Labelled {
            label: (*role).to_owned(),
            text,
        });
    }
    let verified = credentials(config, &params, &mut report);
    if verified {
        number_notes(config, &params, &mut report);
    }
    report.conclude(
        verified,
        if verified {
            "the credentials check passes"
        } else {
            "the credentials check fails: the relay answers 401 bad-credentials"
        },
    );
    Ok(report)
}

/// The credentials check of relay-ingress, with its cause when it fails.
fn credentials(config: &AcrobitsSource, params: &[Parameter], report: &mut Report) -> bool {
    let names = || {
        let mut names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
        names.dedup();
        names.join(", ")
    };
    let Some((_, username)) = first(params, &config.username_params) else {
        report.causes.push(Cause::new(
            "user-parameter",
            format!(
                "no user name under {} (the request has: {})",
                config.username_params.join(", "),
                names()
            ),
            Some("add the app's parameter name to ingress.acrobits.username_params".to_owned()),
        ));
        return false;
    };
    let Some(account) = config.accounts.iter().find(|a| a.username == username) else {
        report.causes.push(Cause::new(
            "unknown-user",
            format!("user `{username}` is not in ingress.acrobits.accounts"),
            None,
        ));
        return false;
    };
    let Some((_, given)) = first(params, &config.password_params) else {
        report.causes.push(Cause::new(
            "password-parameter",
            format!(
                "no password under {} (the request has: {})",
                config.password_params.join(", "),
                names()
            ),
            Some("add the app's parameter name to ingress.acrobits.password_params".to_owned()),
        ));
        return false;
    };
    let (checked, result) = match config.password_scheme {
        PasswordScheme::Plain => {
            let var = account.password_hash_env.as_ref().map_or("", |s| s.var());
            let phc = secret_of(&account.password_hash_env);
            (
                format!("password against the argon2 hash in ${var}"),
                password::verify_argon2(phc, given),
            )
        }
        PasswordScheme::SaltedSha1 => {
            let var = account.password_env.as_ref().map_or("", |s| s.var());
            let nonce = first(params, &config.nonce_params).map_or("", |(_, n)| n);
            let plain = secret_of(&account.password_env);
            let result = password::verify_salted_sha1(&config.sha1_template, nonce, plain, given);
            if result.is_err() {
                salted_causes(config, nonce, plain, given, report);
            }
            (
                format!("sha1({}) with the password in ${var}", config.sha1_template),
                result,
            )
        }
    };
    report.checks.push(Check {
        header: checked,
        received: Some(format!("({} characters, not shown)", given.chars().count())),
        expected: None,
        result: result.map_or_else(|e| e.to_string(), |()| "verifies".to_owned()),
    });
    if result.is_err() && report.causes.is_empty() {
        let looks_hashed = given.len() == 40 && given.bytes().all(|b| b.is_ascii_hexdigit());
        report.causes.push(if looks_hashed {
            Cause::new(
                "password-scheme",
                "the password sent is 40 hex digits, like a salted SHA-1, while the scheme is plain",
                Some("set ingress.acrobits.password_scheme = \"salted-sha1\"".to_owned()),
            )
        } else {
            Cause::new(
                "wrong-password",
                format!("user `{username}`'s password does not match"),
                None,
            )
        });
    }
    result.is_ok()
}

fn secret_of(secret: &Option<EnvSecret>) -> &str {
    secret
        .as_ref()
        .and_then(EnvSecret::value)
        .unwrap_or_default()
}

/// The salted-SHA-1 variants: the template the other way round, the password sent as is.
fn salted_causes(
    config: &AcrobitsSource,
    nonce: &str,
    plain: &str,
    given: &str,
    report: &mut Report,
) {
    if relay_signing::ct_eq(given.as_bytes(), plain.as_bytes()) {
        report.causes.push(Cause::new(
            "password-scheme",
            "the app sends the password itself, not a salted SHA-1",
            Some(
                "set ingress.acrobits.password_scheme = \"plain\" (with an argon2 hash)".to_owned(),
            ),
        ));
        return;
    }
    for template in ["{nonce}{password}", "{password}{nonce}"] {
        if template != config.sha1_template
            && password::verify_salted_sha1(template, nonce, plain, given).is_ok()
        {
            report.causes.push(Cause::new(
                "sha1-template",
                format!("it verifies with the template {template}"),
                Some(format!(
                    "set ingress.acrobits.sha1_template = \"{template}\""
                )),
            ));
        }
    }
}

/// What the relay checks after the credentials (numbers and prefixes; the rate is not checked).
fn number_notes(config: &AcrobitsSource, params: &[Parameter], report: &mut Report) {
    for (what, names) in [
        ("target", &config.target_params),
        ("callback", &config.callback_params),
    ] {
        let value = first(params, names).map(|(_, v)| v);
        match value.and_then(phone::normalize_e164) {
            None => report.notes.push(format!(
                "the {what} number is missing or not international E.164: the relay answers 400"
            )),
            Some(n)
                if !config.allowed_prefixes.is_empty()
                    && !config
                        .allowed_prefixes
                        .iter()
                        .any(|p| n.starts_with(p.as_str())) =>
            {
                report.notes.push(format!(
                    "the {what} number {n} is outside allowed_prefixes: the relay answers 403"
                ));
            }
            Some(_) => {}
        }
    }
}
