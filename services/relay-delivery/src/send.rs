//! One attempt of one job: sign, send, classify, then record and ack, retry, or dead-letter.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use relay_amqp::consumer::{Disposition, Handler};
use relay_amqp::jobs::{self, JobMessage, Target};
use relay_amqp::{Broker, Delivery, FieldTable, headers};
use relay_core::config::Signing;
use relay_core::outcome::{DeliveryOutcome, excerpt};
use relay_core::{DeliveryJob, routing};
use relay_signing::{reamaze, standard_webhooks};
use relay_store::{DeliveryRecord, DeliveryStatus, Store};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::policy::{self, Outcome};
use crate::{Destination, outcome};

/// Most response bytes kept in a dead letter's headers and outcome events.
const RESPONSE_SNIPPET: usize = relay_core::outcome::EXCERPT_LIMIT;
/// How long a retry copy may keep retrying through broker trouble.
const RESCHEDULE_BUDGET: Duration = Duration::from_secs(30);
/// How much longer than the destination's timeout an attempt's claim lasts.
const CLAIM_MARGIN: Duration = Duration::from_secs(5);

pub(crate) struct Sender {
    pub(crate) broker: Broker,
    pub(crate) store: Store,
    pub(crate) client: reqwest::Client,
    pub(crate) destinations: HashMap<String, Destination>,
    pub(crate) tiers: Vec<Duration>,
    pub(crate) backoff_base: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) record_ttl: Duration,
}

/// What to do after an attempt that did not deliver.
struct Failure {
    reason: &'static str,
    detail: String,
    status: Option<u16>,
    response: Option<String>,
}

impl Handler for Sender {
    async fn handle(&self, delivery: &Delivery) -> Disposition {
        let span = tracing::info_span!(
            "delivery.attempt",
            otel.kind = "consumer",
            job_id = tracing::field::Empty,
            destination = tracing::field::Empty,
            attempt = tracing::field::Empty,
        );
        relay_amqp::trace::set_parent_from(&span, &delivery.properties);
        self.attempt(delivery).instrument(span).await
    }
}

impl Sender {
    async fn attempt(&self, delivery: &Delivery) -> Disposition {
        let job: DeliveryJob = match serde_json::from_slice(&delivery.data) {
            Ok(job) => job,
            Err(e) => {
                let failure = Failure {
                    reason: "malformed_job",
                    detail: format!("not a delivery job: {e}"),
                    status: None,
                    response: None,
                };
                return self.park(delivery, None, 0, failure).await;
            }
        };
        let attempt = u32::try_from(
            headers::get_int(delivery.properties.headers().as_ref(), headers::ATTEMPT).unwrap_or(0),
        )
        .unwrap_or(0)
        .saturating_add(1);
        let span = tracing::Span::current();
        span.record("job_id", job.id.as_str());
        span.record("destination", job.destination.as_str());
        span.record("attempt", attempt);

        let Some(destination) = self.destinations.get(&job.destination) else {
            let failure = Failure {
                reason: "unknown_destination",
                detail: format!("no destination named `{}` is configured", job.destination),
                status: None,
                response: None,
            };
            return self.park(delivery, Some(&job), attempt, failure).await;
        };

        // One round trip: has this job already succeeded, and may this attempt claim it? The
        // claim keeps two copies of one job (a duplicate that slipped past ingress dedup) from
        // being sent at once; the losing copy checks again after the shortest tier, by when the
        // record says `delivered` and it is skipped.
        let claim_ttl = destination.config.timeout + CLAIM_MARGIN;
        match self.store.begin_attempt(&job.id, claim_ttl).await {
            Ok((Some(record), claimed)) if record.status == DeliveryStatus::Delivered => {
                tracing::info!("job already delivered, not sending again");
                metrics::counter!("relay_delivery_skipped_total", "destination" => job.destination.clone()).increment(1);
                if claimed {
                    self.release(&job.id).await;
                }
                // The earlier copy may have died between its record and its outcome event.
                return self.report(outcome::success(&job, record.attempts)).await;
            }
            Ok((_, true)) => {}
            Ok((_, false)) => {
                tracing::info!("another attempt of this job is under way; checking again later");
                let tier = self.tiers[0];
                return self
                    .reschedule(
                        delivery,
                        &job,
                        attempt - 1,
                        tier,
                        "in flight elsewhere",
                        false,
                    )
                    .await;
            }
            Err(error) => {
                // Redis being away is logged once by the store's breaker, not per job.
                if error.means_unavailable() {
                    tracing::debug!(%error, "delivery record unavailable; sending without the duplicate check");
                } else {
                    tracing::warn!(%error, "delivery record unreadable; sending without the duplicate check");
                }
            }
        }
        let disposition = self.deliver(delivery, &job, destination, attempt).await;
        // Every settled outcome wrote the record, which released the claim; a job handed back
        // to its queue did not.
        if disposition == Disposition::Requeue {
            self.release(&job.id).await;
        }
        disposition
    }

    async fn release(&self, job_id: &str) {
        if let Err(error) = self.store.release(job_id).await {
            tracing::debug!(%error, "claim not released; it expires by itself");
        }
    }

    /// Sends one attempt and acts on its outcome.
    async fn deliver(
        &self,
        delivery: &Delivery,
        job: &DeliveryJob,
        destination: &Destination,
        attempt: u32,
    ) -> Disposition {
        let started = Instant::now();
        let (outcome, response) = self.send(destination, job).await;
        let label = match &outcome {
            Outcome::Delivered(_) => "delivered",
            Outcome::Retryable { .. } => "retryable",
            Outcome::Gone => "gone",
            Outcome::Permanent(_) => "rejected",
            Outcome::Unsendable(_) => "invalid",
        };
        metrics::counter!("relay_delivery_attempts_total", "destination" => destination.name.clone(), "outcome" => label)
            .increment(1);
        metrics::histogram!("relay_delivery_latency_seconds", "destination" => destination.name.clone())
            .record(started.elapsed().as_secs_f64());

        match outcome {
            Outcome::Delivered(status) => {
                tracing::info!(status, "delivered");
                self.record(
                    job,
                    DeliveryStatus::Delivered,
                    attempt,
                    format!("status {status}"),
                )
                .await;
                self.report(outcome::success(job, attempt)).await
            }
            Outcome::Retryable {
                reason,
                status,
                retry_after,
            } => {
                let deadline = destination_deadline(job, destination);
                let out_of_attempts = attempt >= destination.config.max_attempts;
                let expired = OffsetDateTime::now_utc() >= deadline;
                if out_of_attempts || expired {
                    let why = if out_of_attempts {
                        "attempts_exhausted"
                    } else {
                        "expired"
                    };
                    let failure = Failure {
                        reason: why,
                        detail: format!("last attempt: {reason}"),
                        status,
                        response,
                    };
                    return self.park(delivery, Some(job), attempt, failure).await;
                }
                self.retry(delivery, job, attempt, &reason, retry_after)
                    .await
            }
            Outcome::Gone => {
                tracing::error!(destination = %destination.name, "destination answered 410 Gone; check its configuration");
                metrics::counter!("relay_delivery_destination_gone_total", "destination" => destination.name.clone()).increment(1);
                let failure = Failure {
                    reason: "gone",
                    detail: "status 410".to_owned(),
                    status: Some(410),
                    response,
                };
                self.park(delivery, Some(job), attempt, failure).await
            }
            Outcome::Unsendable(detail) => {
                let failure = Failure {
                    reason: "invalid_request",
                    detail,
                    status: None,
                    response,
                };
                self.park(delivery, Some(job), attempt, failure).await
            }
            Outcome::Permanent(status) => {
                let failure = Failure {
                    reason: "http_status",
                    detail: format!("status {status}"),
                    status: Some(status),
                    response,
                };
                self.park(delivery, Some(job), attempt, failure).await
            }
        }
    }

    /// Builds, signs and sends the request. Signing happens here, at send time, with the secret
    /// from configuration: it never travels through the broker, and a rotated secret applies to
    /// the next attempt.
    async fn send(
        &self,
        destination: &Destination,
        job: &DeliveryJob,
    ) -> (Outcome, Option<String>) {
        let url = if job.path.is_empty() {
            destination.url.clone()
        } else {
            match reqwest::Url::parse(&format!("{}{}", destination.config.url, job.path)) {
                Ok(url) => url,
                Err(e) => return (Outcome::Unsendable(format!("invalid URL: {e}")), None),
            }
        };
        let method =
            reqwest::Method::from_bytes(job.method.as_bytes()).unwrap_or(reqwest::Method::POST);
        let mut http_headers = reqwest::header::HeaderMap::new();
        for (name, value) in destination.config.headers.iter().chain(job.headers.iter()) {
            if let (Ok(n), Ok(v)) = (
                reqwest::header::HeaderName::from_bytes(name.as_bytes()),
                reqwest::header::HeaderValue::from_str(value),
            ) {
                http_headers.insert(n, v);
            }
        }
        relay_telemetry::propagation::inject_current(&mut http_headers);
        let body = job.body.as_bytes();
        let mut request = self
            .client
            .request(method, url)
            .timeout(destination.config.timeout)
            .headers(http_headers)
            .header(reqwest::header::CONTENT_TYPE, job.content_type.as_str())
            .header("Idempotency-Key", job.idempotency_key.as_str());
        let secret = destination
            .config
            .secret_env
            .as_ref()
            .and_then(|s| s.value())
            .unwrap_or_default();
        request = match destination.config.signing {
            Signing::None => request,
            Signing::StandardWebhooks => {
                let key = destination
                    .webhook_secret
                    .as_ref()
                    .expect("checked at build");
                let now = OffsetDateTime::now_utc().unix_timestamp();
                request
                    .header(standard_webhooks::ID_HEADER, job.id.as_str())
                    .header(standard_webhooks::TIMESTAMP_HEADER, now.to_string())
                    .header(
                        standard_webhooks::SIGNATURE_HEADER,
                        standard_webhooks::sign(key, &job.id, now, body),
                    )
            }
            Signing::ReamazeHmac => {
                request.header(reamaze::HEADER, reamaze::sign(secret.as_bytes(), body))
            }
            Signing::Basic => request.basic_auth(
                destination.config.username.as_deref().unwrap_or_default(),
                Some(secret),
            ),
        };
        match request.body(job.body.clone()).send().await {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let outcome = policy::classify(status, retry_after.as_deref(), SystemTime::now());
                let snippet = if matches!(outcome, Outcome::Delivered(_)) {
                    None
                } else {
                    Some(snippet(&mut response).await)
                };
                (outcome, snippet)
            }
            Err(e) => {
                let reason = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connection error"
                } else {
                    "request error"
                };
                tracing::info!(error = %e, "attempt failed");
                (
                    Outcome::Retryable {
                        reason: reason.to_owned(),
                        status: None,
                        retry_after: None,
                    },
                    None,
                )
            }
        }
    }

    /// Parks a retry copy in the delay tier its backoff calls for, then acks the original.
    async fn retry(
        &self,
        delivery: &Delivery,
        job: &DeliveryJob,
        attempt: u32,
        reason: &str,
        retry_after: Option<Duration>,
    ) -> Disposition {
        let delay = policy::retry_delay(
            attempt + 1,
            self.backoff_base,
            self.backoff_max,
            retry_after,
            fastrand::f64(),
        );
        let tier = policy::pick_tier(&self.tiers, delay);
        self.reschedule(delivery, job, attempt, tier, reason, true)
            .await
    }

    /// Publishes a copy of the job to the `tier` delay queue with `attempts_made`, then acks the
    /// original (or hands it back when the copy is not confirmed). `record` writes the
    /// `retrying` status; a copy parked only because another attempt holds the claim must not
    /// overwrite that attempt's record.
    async fn reschedule(
        &self,
        delivery: &Delivery,
        job: &DeliveryJob,
        attempts_made: u32,
        tier: Duration,
        reason: &str,
        record: bool,
    ) -> Disposition {
        let queue = routing::retry_queue(tier);
        let message = JobMessage {
            id: &job.id,
            destination: &job.destination,
            attempts_made,
            body: &delivery.data,
        };
        let published = jobs::publish_copy(
            &self.broker,
            Target::Retry(tier),
            message,
            RESCHEDULE_BUDGET,
        )
        .await;
        match published {
            Ok(()) => {
                tracing::info!(reason, tier = %queue, attempts_made, "will retry");
                if record {
                    self.record(
                        job,
                        DeliveryStatus::Retrying,
                        attempts_made,
                        reason.to_owned(),
                    )
                    .await;
                }
                Disposition::Ack
            }
            Err(error) => {
                tracing::warn!(%error, "could not park the retry; the job goes back to its queue");
                Disposition::Requeue
            }
        }
    }

    /// Dead-letters the job with its reason, then acks the original.
    async fn park(
        &self,
        delivery: &Delivery,
        job: Option<&DeliveryJob>,
        attempt: u32,
        failure: Failure,
    ) -> Disposition {
        tracing::warn!(reason = failure.reason, detail = %failure.detail, "dead-lettering the job");
        let mut extra = FieldTable::default();
        headers::put_str(&mut extra, headers::DETAIL, failure.detail.as_str());
        headers::put_int(&mut extra, headers::ATTEMPT, i64::from(attempt));
        if let Some(status) = failure.status {
            headers::put_int(&mut extra, headers::STATUS, i64::from(status));
        }
        if let Some(response) = &failure.response {
            headers::put_str(&mut extra, headers::RESPONSE, response.as_str());
        }
        match self
            .broker
            .dead_letter(
                routing::DEAD_DELIVERIES_KEY,
                delivery,
                failure.reason,
                extra,
            )
            .await
        {
            Ok(()) => {
                let Some(job) = job else {
                    return Disposition::Ack;
                };
                self.record(job, DeliveryStatus::Dead, attempt, failure.detail.clone())
                    .await;
                // Every parked job reports its failure, whether it asked or not.
                let mut report = DeliveryOutcome::of(job, false, attempt);
                report.status = failure.status;
                report.reason = Some(failure.reason.to_owned());
                report.detail = Some(failure.detail);
                report.response_excerpt = failure.response.as_deref().map(excerpt);
                // The parked copy is safe whatever happens to the report: handing the job
                // back would send it again (a replay of a dead job must be attempted anew, so
                // a `dead` record cannot be skipped). A lost failure report is logged instead.
                let _ = outcome::publish(&self.broker, &report).await;
                Disposition::Ack
            }
            Err(error) => {
                tracing::warn!(%error, "could not dead-letter; the job goes back to its queue");
                Disposition::Requeue
            }
        }
    }

    /// Publishes `report` (if any), then acks; a report the broker would not take hands the
    /// job back, and its next delivery re-reports from the record without sending again.
    async fn report(&self, report: Option<DeliveryOutcome>) -> Disposition {
        match report {
            None => Disposition::Ack,
            Some(report) => match outcome::publish(&self.broker, &report).await {
                Ok(()) => Disposition::Ack,
                Err(_) => Disposition::Requeue,
            },
        }
    }

    async fn record(
        &self,
        job: &DeliveryJob,
        status: DeliveryStatus,
        attempts: u32,
        last_outcome: String,
    ) {
        let record = DeliveryRecord {
            status,
            attempts,
            destination: job.destination.clone(),
            last_outcome,
            updated_at: OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            history: Vec::new(),
        };
        if let Err(error) = self
            .store
            .finish_attempt(&job.id, &record, self.record_ttl)
            .await
        {
            // Not worth failing the job over: the broker state is authoritative, and the
            // Idempotency-Key covers a re-send.
            if error.means_unavailable() {
                tracing::debug!(%error, "could not write the delivery record");
            } else {
                tracing::warn!(%error, "could not write the delivery record");
            }
        }
    }
}

/// The instant after which a retryable failure is dead-lettered instead.
fn destination_deadline(job: &DeliveryJob, destination: &Destination) -> OffsetDateTime {
    let by_age = job.created_at + destination.config.max_age;
    job.give_up_after.map_or(by_age, |g| g.min(by_age))
}

/// The first bytes of a response body, lossily decoded.
async fn snippet(response: &mut reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < RESPONSE_SNIPPET {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(RESPONSE_SNIPPET);
    String::from_utf8_lossy(&bytes).into_owned()
}
