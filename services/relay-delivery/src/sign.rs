//! Signing at send time: the destination's scheme applied to the exact body, with the secrets
//! current at that moment ([`crate::secrets`]). Secrets never travel through the broker, and a
//! rotated secret applies from the next attempt on. The schemes themselves are
//! `relay-signing`'s pure functions; `voximplant-jwt` tokens come from [`crate::voximplant`].

use relay_core::DeliveryJob;
use relay_signing::{reamaze, standard_webhooks};
use secrecy::ExposeSecret;

use crate::destination::Destination;
use crate::secrets::{Keys, Loaded};

/// Adds `destination`'s signature or credentials for `job` to `request`, as at `now` (unix
/// seconds), with `secrets`. Fails only when a token cannot be minted.
pub(crate) fn sign(
    request: reqwest::RequestBuilder,
    destination: &Destination,
    secrets: &Loaded,
    job: &DeliveryJob,
    now: i64,
) -> Result<reqwest::RequestBuilder, String> {
    let body = job.body.as_bytes();
    Ok(match &secrets.keys {
        Keys::None => request,
        Keys::Webhook(keys) => {
            // One signature per active secret, space-separated: the receiver accepts the
            // request when any one verifies (Standard Webhooks, "Signature scheme").
            let signatures = keys
                .iter()
                .map(|key| standard_webhooks::sign(key, &job.id, now, body))
                .collect::<Vec<_>>()
                .join(" ");
            request
                .header(standard_webhooks::ID_HEADER, job.id.as_str())
                .header(standard_webhooks::TIMESTAMP_HEADER, now.to_string())
                .header(standard_webhooks::SIGNATURE_HEADER, signatures)
        }
        Keys::Token(token) => match destination.config.signing {
            relay_core::config::Signing::ReamazeHmac => request.header(
                reamaze::HEADER,
                reamaze::sign(token.expose_secret().as_bytes(), body),
            ),
            _ => request.bearer_auth(token.expose_secret()),
        },
        Keys::Password(password) => request.basic_auth(
            destination.config.username.as_deref().unwrap_or_default(),
            Some(password.expose_secret()),
        ),
        Keys::Voximplant(key) => request.bearer_auth(&*key.token(now)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_core::config::{Config, DestinationConfig, EnvSecret, Signing};

    const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn destination(signing: Signing, secret: &str) -> Destination {
        let mut config = Config::default();
        let mut d = DestinationConfig::new(
            "http://127.0.0.1:1/x",
            signing,
            Some(EnvSecret::with_value("SIGN_TEST", secret)),
        );
        d.username = Some("relay".to_owned());
        config.destinations.insert("d".to_owned(), d);
        crate::destination::from_config(&config)
            .unwrap()
            .remove("d")
            .unwrap()
    }

    fn job() -> DeliveryJob {
        DeliveryJob::post(
            "job-1".to_owned(),
            "event-1",
            "test",
            "d",
            "application/json",
            r#"{"a":1}"#.to_owned(),
        )
    }

    fn signed(destination: &Destination, now: i64) -> reqwest::Request {
        let request = reqwest::Client::new().post(destination.url.clone());
        let secrets = destination.secrets.current();
        sign(request, destination, &secrets, &job(), now)
            .unwrap()
            .build()
            .unwrap()
    }

    fn header<'a>(request: &'a reqwest::Request, name: &str) -> Option<&'a str> {
        request.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn standard_webhooks_signatures_verify_over_the_exact_body() {
        let d = destination(Signing::StandardWebhooks, WHSEC);
        let request = signed(&d, 1_700_000_000);
        let secret = standard_webhooks::Secret::parse(WHSEC).unwrap();
        standard_webhooks::verify(
            &secret,
            header(&request, standard_webhooks::ID_HEADER),
            header(&request, standard_webhooks::TIMESTAMP_HEADER),
            header(&request, standard_webhooks::SIGNATURE_HEADER),
            job().body.as_bytes(),
            1_700_000_000,
            300,
        )
        .unwrap();
        assert_eq!(
            header(&request, standard_webhooks::ID_HEADER),
            Some("job-1")
        );
    }

    #[test]
    fn reamaze_and_basic_use_the_configured_secret() {
        let d = destination(Signing::ReamazeHmac, "s3cret");
        let request = signed(&d, 0);
        reamaze::verify(
            b"s3cret",
            job().body.as_bytes(),
            header(&request, reamaze::HEADER),
        )
        .unwrap();

        let d = destination(Signing::Basic, "pw");
        let request = signed(&d, 0);
        // "relay:pw" in base64.
        assert_eq!(
            header(&request, "authorization"),
            Some("Basic cmVsYXk6cHc=")
        );

        let d = destination(Signing::None, "unused");
        let request = signed(&d, 0);
        assert!(request.headers().is_empty());
    }

    #[test]
    fn during_a_rotation_every_active_secret_signs_and_each_verifies_alone() {
        const NEW: &str = "whsec_bm90IHRoZSBvdGhlciBvbmUgYXQgYWxs";
        let d = destination(Signing::StandardWebhooks, &format!("{NEW} {WHSEC}"));
        let request = signed(&d, 1_700_000_000);
        let signatures = header(&request, standard_webhooks::SIGNATURE_HEADER).unwrap();
        assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
        for (secret, position) in [(NEW, 0), (WHSEC, 1)] {
            let key = standard_webhooks::Secret::parse(secret).unwrap();
            // Each receiver knows one secret and finds its own signature among the others.
            standard_webhooks::verify(
                &key,
                header(&request, standard_webhooks::ID_HEADER),
                header(&request, standard_webhooks::TIMESTAMP_HEADER),
                Some(signatures),
                job().body.as_bytes(),
                1_700_000_000,
                300,
            )
            .unwrap();
            let own = standard_webhooks::sign(&key, "job-1", 1_700_000_000, job().body.as_bytes());
            assert_eq!(signatures.split(' ').nth(position), Some(own.as_str()));
        }
    }

    #[test]
    fn bearer_and_reamaze_use_the_newest_secret() {
        let d = destination(Signing::Bearer, "tok-new tok-old");
        assert_eq!(
            header(&signed(&d, 0), "authorization"),
            Some("Bearer tok-new")
        );
        let d = destination(Signing::ReamazeHmac, "new old");
        let request = signed(&d, 0);
        reamaze::verify(
            b"new",
            job().body.as_bytes(),
            header(&request, reamaze::HEADER),
        )
        .unwrap();
        assert!(
            reamaze::verify(
                b"old",
                job().body.as_bytes(),
                header(&request, reamaze::HEADER)
            )
            .is_err()
        );
    }

    #[test]
    fn voximplant_requests_carry_a_bearer_token() {
        let d = destination(
            Signing::VoximplantJwt,
            &crate::voximplant::tests::key_file(true),
        );
        let request = signed(&d, time::OffsetDateTime::now_utc().unix_timestamp());
        let auth = header(&request, "authorization").unwrap();
        let token = auth.strip_prefix("Bearer ").unwrap();
        assert_eq!(token.split('.').count(), 3, "a JWT");
    }
}
