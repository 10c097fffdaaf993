//! Destinations an operator must re-enable: one that answered 410 Gone is disabled for every
//! delivery process until `relayctl destination enable NAME` (docs/ARCHITECTURE.md, outcome policy).
//!
//! One hash, `{prefix}destinations:disabled`, field = destination name, value = JSON
//! ([`Disabled`]). Like every key it has a TTL ([`DISABLED_TTL`]), renewed on each change: a
//! destination nobody looked at for that long is enabled again by itself, and its jobs parked
//! meanwhile wait in `relay.dead.deliveries` for a replay.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Result, Store};

/// How long the disabled set outlives its last change.
pub const DISABLED_TTL: Duration = Duration::from_secs(90 * 86_400);

/// Why and since when a destination is disabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disabled {
    /// RFC 3339.
    pub since: String,
    /// What disabled it (`status 410`, `relayctl`).
    pub reason: String,
}

impl Store {
    fn disabled_key(&self) -> String {
        self.key("destinations:disabled")
    }

    /// Disables `name` for every delivery process.
    pub async fn disable_destination(&self, name: &str, disabled: &Disabled) -> Result<()> {
        let key = self.disabled_key();
        let value = serde_json::to_string(disabled)?;
        let name = name.to_owned();
        self.run("disable_destination", |mut conn| async move {
            redis::pipe()
                .cmd("HSET")
                .arg(&key)
                .arg(name)
                .arg(value)
                .ignore()
                .cmd("EXPIRE")
                .arg(&key)
                .arg(DISABLED_TTL.as_secs())
                .ignore()
                .query_async::<()>(&mut conn)
                .await
        })
        .await
    }

    /// Enables `name` again; says whether it was disabled.
    pub async fn enable_destination(&self, name: &str) -> Result<bool> {
        let key = self.disabled_key();
        let name = name.to_owned();
        let removed: u32 = self
            .run("enable_destination", |mut conn| async move {
                redis::cmd("HDEL")
                    .arg(&key)
                    .arg(name)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(removed > 0)
    }

    /// Every disabled destination. An entry that does not parse is reported as disabled with
    /// an unknown reason rather than dropped: enabling it is the operator's call.
    pub async fn disabled_destinations(&self) -> Result<BTreeMap<String, Disabled>> {
        let key = self.disabled_key();
        let raw: BTreeMap<String, String> = self
            .run("disabled_destinations", |mut conn| async move {
                redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await
            })
            .await?;
        Ok(raw
            .into_iter()
            .map(|(name, text)| {
                let disabled = serde_json::from_str(&text).unwrap_or_else(|_| Disabled {
                    since: String::new(),
                    reason: "unknown (unreadable entry)".to_owned(),
                });
                (name, disabled)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_redis::TestRedis;

    fn gone() -> Disabled {
        Disabled {
            since: "2026-12-04T10:00:00Z".into(),
            reason: "status 410".into(),
        }
    }

    #[tokio::test]
    async fn a_disabled_destination_is_seen_by_every_process_until_enabled() {
        let redis = TestRedis::new();
        let (a, b) = (redis.store().await, redis.store().await);
        assert!(b.disabled_destinations().await.unwrap().is_empty());
        a.disable_destination("helpdesk", &gone()).await.unwrap();
        let seen = b.disabled_destinations().await.unwrap();
        assert_eq!(seen.get("helpdesk"), Some(&gone()));
        assert_eq!(seen.len(), 1);

        let mut raw = redis.raw().await;
        let ttl: i64 = redis::cmd("TTL")
            .arg(a.disabled_key())
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= DISABLED_TTL.as_secs() as i64, "{ttl}");

        assert!(b.enable_destination("helpdesk").await.unwrap());
        assert!(
            !b.enable_destination("helpdesk").await.unwrap(),
            "only once"
        );
        assert!(a.disabled_destinations().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_unreadable_entry_still_counts_as_disabled() {
        let redis = TestRedis::new();
        let store = redis.store().await;
        let mut raw = redis.raw().await;
        let _: () = redis::cmd("HSET")
            .arg(store.disabled_key())
            .arg("odd")
            .arg("{not json")
            .query_async(&mut raw)
            .await
            .unwrap();
        let seen = store.disabled_destinations().await.unwrap();
        assert!(seen["odd"].reason.contains("unknown"));
    }
}
