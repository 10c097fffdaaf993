//! Versioned records updated by compare-and-set: the state machines' storage (call sessions,
//! alert state). The caller loads a record, applies its pure transition and writes the result
//! only if nobody changed the record meanwhile; on a conflict it loads again and reapplies.
//!
//! A multiplexed connection cannot use `WATCH`/`MULTI` safely (the watch would cover every
//! caller sharing the connection), so the compare-and-set is one Lua script: atomic on the
//! server, one round trip.

use std::sync::LazyLock;
use std::time::Duration;

use crate::{Result, Store};

/// `SET key new PX ttl` if the key still holds `expected` (`absent` = it must not exist).
static COMPARE_AND_SET: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local current = redis.call('GET', KEYS[1])
        local matches
        if ARGV[1] == 'absent' then
            matches = (current == false)
        else
            matches = (current ~= false and current == ARGV[2])
        end
        if matches then
            redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
            return 1
        end
        return 0
        ",
    )
});

impl Store {
    /// The text stored under `suffix` (the key without the prefix), if any.
    pub async fn get_text(&self, suffix: &str) -> Result<Option<String>> {
        let key = self.key(suffix);
        self.run("ledger_get", |mut conn| async move {
            redis::cmd("GET").arg(&key).query_async(&mut conn).await
        })
        .await
    }

    /// Writes `new` under `suffix`, expiring after `ttl`, only if the key still holds
    /// `expected` (`None`: only if it does not exist). `Ok(false)` on a conflict.
    pub async fn compare_and_set(
        &self,
        suffix: &str,
        expected: Option<&str>,
        new: &str,
        ttl: Duration,
    ) -> Result<bool> {
        let key = self.key(suffix);
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let (mode, old) = match expected {
            None => ("absent", ""),
            Some(old) => ("equals", old),
        };
        let mut invocation = COMPARE_AND_SET.prepare_invoke();
        invocation.key(&key).arg(mode).arg(old).arg(new).arg(ttl);
        self.run("ledger_cas", |mut conn| async move {
            invocation
                .invoke_async::<i64>(&mut conn)
                .await
                .map(|n| n == 1)
        })
        .await
    }
}
