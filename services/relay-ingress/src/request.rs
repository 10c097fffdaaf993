//! Reading a request: its media type, and its body within a size limit and a deadline.
//!
//! The deadline is set on the body when hyper hands over the request ([`Deadline`], from
//! `ingress.body_read_timeout`); [`read_body`] turns its expiry into 408 and too many bytes into
//! 413, so every route refuses a slow or oversized body the same way.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;
use hyper::body::Frame;
use tokio::time::{Instant, Sleep};

use crate::problem::Problem;

/// Reads the body, refusing more than `limit` bytes with 413 and a body that misses its
/// [`Deadline`] with 408.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, Problem> {
    // A declared length over the limit is refused before a byte of it is read.
    if usize::try_from(body.size_hint().lower()).map_or(true, |declared| declared > limit) {
        return Err(Problem::TooLarge { limit });
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Problem::TooLarge { limit }),
        Err(e) if caused_by::<TimedOut>(&*e) => Err(Problem::RequestTimeout),
        Err(e) => Err(Problem::Malformed(format!("could not read the body: {e}"))),
    }
}

/// Whether `error` or any of its sources is an `E`.
fn caused_by<E: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| e.source()).any(|e| e.is::<E>())
}

/// JSON routes accept a missing content type and any JSON-ish one: providers differ (Voximplant
/// does not document its header), but a form or XML body on a JSON route is a client error.
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), Problem> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or_default().to_ascii_lowercase();
    let essence = text.split(';').next().unwrap_or_default().trim();
    let ok = matches!(
        essence,
        "application/json" | "text/json" | "text/plain" | ""
    ) || (essence.starts_with("application/") && essence.ends_with("+json"));
    if ok {
        Ok(())
    } else {
        Err(Problem::UnsupportedMediaType(format!(
            "this route reads JSON, not `{essence}`"
        )))
    }
}

/// Whether the request's body is form-encoded.
pub(crate) fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Routes that read JSON or form bodies.
pub(crate) fn require_json_or_form(headers: &HeaderMap) -> Result<(), Problem> {
    if is_form(headers) {
        Ok(())
    } else {
        require_json(headers)
    }
}

/// The body did not arrive before its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the body did not arrive in time")]
pub(crate) struct TimedOut;

/// A request body that fails with [`TimedOut`] once its deadline passes while it is waited for.
///
/// The deadline is absolute, not reset by each chunk (which is what tower-http's
/// `RequestBodyTimeout` does): a client dripping one byte at a time must not hold a connection
/// for as long as it likes. The timer is only created when the body is actually waited for, so
/// a body that came with its head costs nothing.
pub(crate) struct Deadline<B> {
    body: B,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<B> Deadline<B> {
    /// `body`, to be complete by `deadline`.
    pub(crate) fn new(body: B, deadline: Instant) -> Self {
        Self {
            body,
            deadline,
            sleep: None,
        }
    }
}

impl<B> HttpBody for Deadline<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(TimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use std::time::Duration;

    fn with_type(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn json_media_types_are_accepted_others_refused() {
        assert!(require_json(&HeaderMap::new()).is_ok());
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "text/plain",
            "application/cloudevents+json",
        ] {
            assert!(require_json(&with_type(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "application/x-www-form-urlencoded",
            "application/xml",
            "multipart/form-data",
        ] {
            assert!(
                matches!(
                    require_json(&with_type(bad)),
                    Err(Problem::UnsupportedMediaType(_))
                ),
                "{bad}"
            );
        }
    }

    /// A body whose sender sends what it is told, then goes quiet.
    fn stalled() -> (Body, tokio::sync::mpsc::Sender<Bytes>) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let frames = futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
                .map(|chunk| chunk.map(|c| Ok::<_, std::io::Error>(Frame::data(c))))
        });
        (Body::new(http_body_util::StreamBody::new(frames)), tx)
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_arriving_is_refused_at_its_deadline() {
        let (body, tx) = stalled();
        tx.send(Bytes::from_static(b"{\"callb")).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let body = Body::new(Deadline::new(body, deadline));
        // The paused clock jumps to the deadline once nothing else can run.
        assert_eq!(read_body(body, 1024).await, Err(Problem::RequestTimeout));
        assert_eq!(Instant::now(), deadline);
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_in_time_is_read_whole_and_a_declared_excess_is_refused_unread() {
        let deadline = Instant::now() + Duration::from_secs(30);
        let body = Body::new(Deadline::new(Body::from("{}"), deadline));
        assert_eq!(read_body(body, 1024).await.unwrap(), "{}");
        let large = Body::new(http_body_util::Full::new(Bytes::from(vec![b' '; 2048])));
        assert_eq!(
            read_body(large, 1024).await,
            Err(Problem::TooLarge { limit: 1024 })
        );
    }
}
