//! Signing at send time: the destination's scheme applied to the exact body, with the secret
//! from configuration. The secret never travels through the broker, and a rotated secret
//! applies to the next attempt. The schemes themselves are `relay-signing`'s pure functions.

use relay_core::DeliveryJob;
use relay_core::config::Signing;
use relay_signing::{reamaze, standard_webhooks};

use crate::destination::Destination;

/// Adds `destination`'s signature of `job` to `request`, as at `now` (unix seconds).
pub(crate) fn sign(
    request: reqwest::RequestBuilder,
    destination: &Destination,
    job: &DeliveryJob,
    now: i64,
) -> reqwest::RequestBuilder {
    let body = job.body.as_bytes();
    match destination.config.signing {
        Signing::None => request,
        Signing::StandardWebhooks => {
            let key = destination
                .webhook_secret
                .as_ref()
                .expect("decoded when the destination was built");
            request
                .header(standard_webhooks::ID_HEADER, job.id.as_str())
                .header(standard_webhooks::TIMESTAMP_HEADER, now.to_string())
                .header(
                    standard_webhooks::SIGNATURE_HEADER,
                    standard_webhooks::sign(key, &job.id, now, body),
                )
        }
        Signing::ReamazeHmac => request.header(
            reamaze::HEADER,
            reamaze::sign(destination.secret().as_bytes(), body),
        ),
        Signing::Basic => request.basic_auth(
            destination.config.username.as_deref().unwrap_or_default(),
            Some(destination.secret()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_core::config::{Config, DestinationConfig, EnvSecret};

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
        sign(request, destination, &job(), now).build().unwrap()
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
}
