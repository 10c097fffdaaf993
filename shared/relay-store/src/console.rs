//! What the operator console keeps in Redis: its sign-in sessions and the alert log that the
//! worker's alert handlers write and the console's Alerts page reads.
//!
//! * `console:session:<sha-256 of the cookie token, hex>`: the session's JSON, expiring after
//!   the console's `session_ttl` and renewed on every use (`GETEX`). The cookie's token itself
//!   is never stored, so a read of Redis cannot sign anybody in.
//! * `alerts:firing`: a hash, one field per alert (its stable key) holding the last notice of
//!   every alert that is firing; a resolved notice removes its field.
//! * `alerts:log`: the latest [`ALERT_LOG_LEN`] notices, newest first.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Result, Store};

/// Notices kept in `alerts:log`.
pub const ALERT_LOG_LEN: isize = 500;

/// One alert notice, as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertNote {
    /// The alert's stable key (e.g. `min-balance:<account>`, `delivery-failed:<destination>`,
    /// `condition:<kind>:<subject>`): one firing alert per key.
    pub key: String,
    /// The alert's name (`VoximplantLowBalance`, `RelayDeliveryFailed`, …).
    pub name: String,
    /// What it is about (an account, a destination, a queue).
    pub subject: String,
    /// `firing`, `reminder`, `severity_changed` or `resolved`.
    pub notice: String,
    /// Severity, when the alert has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// The summary sent to the notifiers.
    pub summary: String,
    /// When the notice was made (RFC 3339).
    pub at: String,
    /// The notifiers it was sent to (destination names).
    pub notifiers: Vec<String>,
    /// When a firing alert ends by itself unless re-sent (RFC 3339): a delivery-failure alert
    /// covers its window and is never resolved explicitly. Readers treat it as no longer
    /// firing after that time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
}

impl AlertNote {
    /// Whether this notice ends its alert.
    pub fn is_resolved(&self) -> bool {
        self.notice == "resolved"
    }
}

impl Store {
    /// Stores a console session under the hash of its token for `ttl`.
    pub async fn put_console_session(
        &self,
        token_hash: &str,
        json: &str,
        ttl: Duration,
    ) -> Result<()> {
        let key = self.key(&format!("console:session:{token_hash}"));
        let ttl = millis(ttl);
        self.run("console_session", |mut conn| async move {
            redis::cmd("SET")
                .arg(&key)
                .arg(json)
                .arg("PX")
                .arg(ttl)
                .query_async::<()>(&mut conn)
                .await
        })
        .await
    }

    /// The session stored under `token_hash`, renewed for `ttl`; `None` when there is none
    /// (never signed in, signed out, or expired).
    pub async fn console_session(&self, token_hash: &str, ttl: Duration) -> Result<Option<String>> {
        let key = self.key(&format!("console:session:{token_hash}"));
        let ttl = millis(ttl);
        self.run("console_session", |mut conn| async move {
            redis::cmd("GETEX")
                .arg(&key)
                .arg("PX")
                .arg(ttl)
                .query_async(&mut conn)
                .await
        })
        .await
    }

    /// Ends the session stored under `token_hash`.
    pub async fn end_console_session(&self, token_hash: &str) -> Result<()> {
        let key = self.key(&format!("console:session:{token_hash}"));
        self.run("console_session", |mut conn| async move {
            redis::cmd("DEL")
                .arg(&key)
                .query_async::<()>(&mut conn)
                .await
        })
        .await
    }

    /// Records an alert notice: logged, and the alert's firing entry set (or, for a resolved
    /// notice, removed), in one round trip. A notice recorded twice (an event handled again)
    /// appears twice in the log with the same key and time; readers may fold such repeats.
    pub async fn record_alert(&self, note: &AlertNote) -> Result<()> {
        let log = self.key("alerts:log");
        let firing = self.key("alerts:firing");
        let json = serde_json::to_string(note).unwrap_or_default();
        let resolved = note.is_resolved();
        let field = note.key.clone();
        self.run("alert_record", |mut conn| async move {
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("LPUSH")
                .arg(&log)
                .arg(&json)
                .ignore()
                .cmd("LTRIM")
                .arg(&log)
                .arg(0)
                .arg(ALERT_LOG_LEN - 1)
                .ignore();
            if resolved {
                pipe.cmd("HDEL").arg(&firing).arg(&field).ignore();
            } else {
                pipe.cmd("HSET")
                    .arg(&firing)
                    .arg(&field)
                    .arg(&json)
                    .ignore();
            }
            pipe.query_async::<()>(&mut conn).await
        })
        .await
    }

    /// Every alert firing now (its latest notice), by key.
    pub async fn firing_alerts(&self) -> Result<Vec<AlertNote>> {
        let firing = self.key("alerts:firing");
        let values: Vec<String> = self
            .run("alerts_read", |mut conn| async move {
                redis::cmd("HVALS")
                    .arg(&firing)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let mut notes: Vec<AlertNote> = values
            .iter()
            .filter_map(|v| serde_json::from_str(v).ok())
            .collect();
        notes.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(notes)
    }

    /// The latest `limit` notices, newest first.
    pub async fn alert_log(&self, limit: usize) -> Result<Vec<AlertNote>> {
        let log = self.key("alerts:log");
        let end = isize::try_from(limit)
            .unwrap_or(ALERT_LOG_LEN)
            .min(ALERT_LOG_LEN)
            - 1;
        let values: Vec<String> = self
            .run("alerts_read", |mut conn| async move {
                redis::cmd("LRANGE")
                    .arg(&log)
                    .arg(0)
                    .arg(end)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(values
            .iter()
            .filter_map(|v| serde_json::from_str(v).ok())
            .collect())
    }
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_redis::TestRedis;

    fn note(key: &str, notice: &str, at: &str) -> AlertNote {
        AlertNote {
            key: key.into(),
            name: "VoximplantLowBalance".into(),
            subject: "acct".into(),
            notice: notice.into(),
            severity: Some("warning".into()),
            summary: "balance low".into(),
            at: at.into(),
            notifiers: vec!["slack".into()],
            ends_at: None,
        }
    }

    #[tokio::test]
    async fn a_firing_alert_is_listed_until_its_resolved_notice_and_the_log_keeps_both() {
        let redis = TestRedis::new();
        let store = redis.store().await;
        store
            .record_alert(&note("a", "firing", "t1"))
            .await
            .unwrap();
        store
            .record_alert(&note("b", "firing", "t2"))
            .await
            .unwrap();
        let firing = store.firing_alerts().await.unwrap();
        assert_eq!(
            firing.iter().map(|n| n.key.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        store
            .record_alert(&note("a", "resolved", "t3"))
            .await
            .unwrap();
        let firing = store.firing_alerts().await.unwrap();
        assert_eq!(
            firing.iter().map(|n| n.key.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        let log = store.alert_log(10).await.unwrap();
        assert_eq!(
            log.iter()
                .map(|n| (n.key.as_str(), n.notice.as_str()))
                .collect::<Vec<_>>(),
            [("a", "resolved"), ("b", "firing"), ("a", "firing")]
        );
        assert_eq!(store.alert_log(1).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_session_is_read_renewed_and_ended() {
        let redis = TestRedis::new();
        let store = redis.store().await;
        let ttl = Duration::from_secs(60);
        assert_eq!(store.console_session("h", ttl).await.unwrap(), None);
        store
            .put_console_session("h", "{\"user\":\"ops\"}", ttl)
            .await
            .unwrap();
        assert_eq!(
            store.console_session("h", ttl).await.unwrap().as_deref(),
            Some("{\"user\":\"ops\"}")
        );
        store.end_console_session("h").await.unwrap();
        assert_eq!(store.console_session("h", ttl).await.unwrap(), None);
    }
}
