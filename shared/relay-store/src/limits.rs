//! Limits shared by every replica (`rate:{name}`) and claims on requests in progress.
//!
//! A [`Limit`] is a counter in Redis: at most `max` admissions per `window`. A fixed window
//! starts at its first admission and ends `window` later (one key, `INCR` + `PEXPIRE` when
//! new, so the remaining TTL is the honest `Retry-After`); a sliding window keeps the
//! admission times of the last `window` (a sorted set), for "at most N in the last W".
//! [`Store::admit`] checks several limits and counts in all of them in one Lua script, atomic
//! on the server: a request refused by one limit consumes none of the others, and concurrent
//! requests cannot overshoot. Time is Redis's own (`TIME`), so replicas with skewed clocks
//! agree. The keys of one call must live on one server (Redis Cluster would need hash tags).
//!
//! A claim is a `SET NX` mark: the first request of its kind takes it, a repeat finds it and
//! reads what the first one wrote there.

use std::sync::LazyLock;
use std::time::Duration;

use crate::{Result, Store};

/// Refuses the first limit that is full; else counts one admission in every limit.
/// KEYS: the limits. ARGV: per limit `kind` (`f` fixed, `s` sliding), `max`, `window` (ms);
/// then the member recorded in sliding windows. Returns `{0, 0}` when admitted, else
/// `{index (1-based), milliseconds until it admits again}`.
static ADMIT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local n = #KEYS
        for i = 1, n do
            local kind, max, window = ARGV[3*i-2], tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
            if kind == 'f' then
                local count = tonumber(redis.call('GET', KEYS[i]) or '0')
                if count >= max then
                    local ttl = redis.call('PTTL', KEYS[i])
                    if ttl < 0 then
                        redis.call('PEXPIRE', KEYS[i], window)
                        ttl = window
                    end
                    return {i, ttl}
                end
            else
                redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
                if redis.call('ZCARD', KEYS[i]) >= max then
                    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
                    return {i, math.max(1, tonumber(oldest[2]) + window - now)}
                end
            end
        end
        local member = ARGV[3*n+1]
        for i = 1, n do
            local kind, window = ARGV[3*i-2], tonumber(ARGV[3*i])
            if kind == 'f' then
                if redis.call('INCR', KEYS[i]) == 1 or redis.call('PTTL', KEYS[i]) < 0 then
                    redis.call('PEXPIRE', KEYS[i], window)
                end
            else
                redis.call('ZADD', KEYS[i], now, member)
                redis.call('PEXPIRE', KEYS[i], window)
            end
        end
        return {0, 0}
        ",
    )
});

/// Takes back one admission: `DECR` of a fixed counter above 0, `ZREM` of the member.
/// KEYS: the limits. ARGV: their kinds, then the member.
static REFUND: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local member = ARGV[#KEYS + 1]
        for i = 1, #KEYS do
            if ARGV[i] == 'f' then
                if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then
                    redis.call('DECR', KEYS[i])
                end
            else
                redis.call('ZREM', KEYS[i], member)
            end
        end
        return 0
        ",
    )
});

/// `SET key value NX PX ttl`, or the value already there. Returns false when claimed.
static CLAIM: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local current = redis.call('GET', KEYS[1])
        if current then
            return current
        end
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
        return false
        ",
    )
});

/// How a [`Limit`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// `window` from the first admission; then the count starts again.
    Fixed,
    /// The admissions of the last `window`, whenever they were.
    Sliding,
}

/// At most `max` admissions per `window`, counted under `rate:{name}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// The counter's name after `rate:`, e.g. `acrobits:account:minute:alice`.
    pub name: String,
    /// Admissions allowed per window (at least 1).
    pub max: u64,
    /// The window (whole milliseconds, at least one).
    pub window: Duration,
    /// Fixed or sliding.
    pub kind: Window,
}

impl Limit {
    /// A fixed window of `window` under `rate:{name}`.
    pub fn fixed(name: impl Into<String>, max: u64, window: Duration) -> Self {
        Self {
            name: name.into(),
            max,
            window,
            kind: Window::Fixed,
        }
    }

    /// A sliding window of `window` under `rate:{name}`.
    pub fn sliding(name: impl Into<String>, max: u64, window: Duration) -> Self {
        Self {
            kind: Window::Sliding,
            ..Self::fixed(name, max, window)
        }
    }

    fn kind_arg(&self) -> &'static str {
        match self.kind {
            Window::Fixed => "f",
            Window::Sliding => "s",
        }
    }

    fn window_ms(&self) -> u64 {
        u64::try_from(self.window.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

/// What [`Store::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Counted in every limit.
    Admitted,
    /// `limits[index]` is full until `retry_after` has passed; nothing was counted.
    Refused {
        /// Which limit.
        index: usize,
        /// Until it admits again (at least a millisecond).
        retry_after: Duration,
    },
}

impl Store {
    fn rate_key(&self, name: &str) -> String {
        self.key(&format!("rate:{name}"))
    }

    /// Checks `limits` and, when none is full, counts one admission in each (`member` names it
    /// in sliding windows: an event id, say). Atomic: a refusal counts nowhere. No limits:
    /// admitted without a round trip.
    pub async fn admit(&self, limits: &[Limit], member: &str) -> Result<Admission> {
        if limits.is_empty() {
            return Ok(Admission::Admitted);
        }
        let mut invocation = ADMIT.prepare_invoke();
        for limit in limits {
            invocation.key(self.rate_key(&limit.name));
        }
        for limit in limits {
            invocation
                .arg(limit.kind_arg())
                .arg(limit.max.max(1))
                .arg(limit.window_ms());
        }
        invocation.arg(member);
        let (index, wait): (usize, i64) = self
            .run("admit", |mut conn| async move {
                invocation.invoke_async(&mut conn).await
            })
            .await?;
        Ok(match index {
            0 => Admission::Admitted,
            i => Admission::Refused {
                index: (i - 1).min(limits.len() - 1),
                retry_after: Duration::from_millis(u64::try_from(wait).unwrap_or(0).max(1)),
            },
        })
    }

    /// Takes back one admission of `member` from `limits` (a request admitted but then not
    /// served, so it should not count).
    pub async fn refund(&self, limits: &[Limit], member: &str) -> Result<()> {
        if limits.is_empty() {
            return Ok(());
        }
        let mut invocation = REFUND.prepare_invoke();
        for limit in limits {
            invocation.key(self.rate_key(&limit.name));
        }
        for limit in limits {
            invocation.arg(limit.kind_arg());
        }
        invocation.arg(member);
        self.run("refund", |mut conn| async move {
            invocation.invoke_async::<i64>(&mut conn).await.map(drop)
        })
        .await
    }

    /// Empties `limits` (a successful login resets its failures).
    pub async fn reset(&self, limits: &[Limit]) -> Result<()> {
        if limits.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = limits.iter().map(|l| self.rate_key(&l.name)).collect();
        self.run("reset", |mut conn| async move {
            redis::cmd("DEL")
                .arg(&keys)
                .query_async::<()>(&mut conn)
                .await
        })
        .await
    }

    /// Claims `suffix` (the key without the prefix) with `value` for `ttl`: `None` when this
    /// call took it, else the value its holder wrote.
    pub async fn claim(&self, suffix: &str, value: &str, ttl: Duration) -> Result<Option<String>> {
        let mut invocation = CLAIM.prepare_invoke();
        invocation
            .key(self.key(suffix))
            .arg(value)
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        self.run("claim", |mut conn| async move {
            invocation.invoke_async(&mut conn).await
        })
        .await
    }

    /// Rewrites a claim this caller holds with `value` for `ttl` (`SET XX`: nothing when it has
    /// expired meanwhile).
    pub async fn update_claim(&self, suffix: &str, value: &str, ttl: Duration) -> Result<()> {
        let key = self.key(suffix);
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.run("update_claim", |mut conn| async move {
            redis::cmd("SET")
                .arg(&key)
                .arg(value)
                .arg("XX")
                .arg("PX")
                .arg(ttl)
                .query_async::<()>(&mut conn)
                .await
        })
        .await
    }

    /// Gives a claim up, so that the next request of its kind is served in full.
    pub async fn release_claim(&self, suffix: &str) -> Result<()> {
        let key = self.key(suffix);
        self.run("release_claim", |mut conn| async move {
            redis::cmd("DEL")
                .arg(&key)
                .query_async::<()>(&mut conn)
                .await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_redis::TestRedis;

    #[tokio::test]
    async fn a_fixed_window_admits_max_then_refuses_until_it_ends() {
        let redis = TestRedis::new();
        let store = redis.store().await;
        let limit = Limit::fixed("t:fixed", 3, Duration::from_secs(60));
        for _ in 0..3 {
            assert_eq!(
                store
                    .admit(std::slice::from_ref(&limit), "m")
                    .await
                    .unwrap(),
                Admission::Admitted
            );
        }
        let Admission::Refused { index, retry_after } = store
            .admit(std::slice::from_ref(&limit), "m")
            .await
            .unwrap()
        else {
            panic!("the fourth is refused");
        };
        assert_eq!(index, 0);
        assert!(
            retry_after > Duration::from_secs(50) && retry_after <= Duration::from_secs(60),
            "{retry_after:?}"
        );
        // The key is where the documentation says, with its TTL.
        let mut raw = redis.raw().await;
        let key = format!("{}rate:t:fixed", redis.config.key_prefix);
        let (count, ttl): (u64, i64) = redis::pipe()
            .get(&key)
            .pttl(&key)
            .query_async(&mut raw)
            .await
            .unwrap();
        assert_eq!(count, 3, "a refusal counts nothing");
        assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
    }

    #[tokio::test]
    async fn a_refusal_by_one_limit_counts_in_none_and_names_it() {
        let redis = TestRedis::new();
        let store = redis.store().await;
        let wide = Limit::fixed("t:wide", 10, Duration::from_secs(60));
        let narrow = Limit::fixed("t:narrow", 1, Duration::from_secs(60));
        let both = [wide.clone(), narrow.clone()];
        assert_eq!(store.admit(&both, "a").await.unwrap(), Admission::Admitted);
        assert!(matches!(
            store.admit(&both, "b").await.unwrap(),
            Admission::Refused { index: 1, .. }
        ));
        // Only the first admission counted in the wide limit: 9 more fit.
        for _ in 0..9 {
            assert_eq!(
                store.admit(std::slice::from_ref(&wide), "c").await.unwrap(),
                Admission::Admitted
            );
        }
        assert!(matches!(
            store.admit(std::slice::from_ref(&wide), "d").await.unwrap(),
            Admission::Refused { index: 0, .. }
        ));
    }

    #[tokio::test]
    async fn a_sliding_window_counts_the_last_window_and_refunds_and_resets_work() {
        let redis = TestRedis::new();
        let store = redis.store().await;
        let sliding = [Limit::sliding("t:sliding", 2, Duration::from_millis(300))];
        assert_eq!(
            store.admit(&sliding, "e1").await.unwrap(),
            Admission::Admitted
        );
        assert_eq!(
            store.admit(&sliding, "e2").await.unwrap(),
            Admission::Admitted
        );
        let Admission::Refused { retry_after, .. } = store.admit(&sliding, "e3").await.unwrap()
        else {
            panic!("the third within the window is refused");
        };
        assert!(retry_after <= Duration::from_millis(300), "{retry_after:?}");
        // A refund frees its slot at once.
        store.refund(&sliding, "e2").await.unwrap();
        assert_eq!(
            store.admit(&sliding, "e3").await.unwrap(),
            Admission::Admitted
        );
        // Once the oldest leaves the window, one more fits.
        tokio::time::sleep(retry_after).await;
        assert_eq!(
            store.admit(&sliding, "e4").await.unwrap(),
            Admission::Admitted
        );

        let fixed = [Limit::fixed("t:reset", 1, Duration::from_secs(60))];
        assert_eq!(store.admit(&fixed, "x").await.unwrap(), Admission::Admitted);
        store.refund(&fixed, "x").await.unwrap();
        assert_eq!(store.admit(&fixed, "x").await.unwrap(), Admission::Admitted);
        store.reset(&fixed).await.unwrap();
        assert_eq!(store.admit(&fixed, "x").await.unwrap(), Admission::Admitted);
        // A refund never takes a counter below zero.
        store.reset(&fixed).await.unwrap();
        store.refund(&fixed, "x").await.unwrap();
        store.refund(&fixed, "x").await.unwrap();
        assert_eq!(store.admit(&fixed, "x").await.unwrap(), Admission::Admitted);
        assert!(matches!(
            store.admit(&fixed, "x").await.unwrap(),
            Admission::Refused { .. }
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_admissions_never_overshoot() {
        let redis = TestRedis::new();
        // Several stores: as several replicas would share the limit.
        let stores = [
            redis.store().await,
            redis.store().await,
            redis.store().await,
        ];
        let limits = [
            Limit::fixed("t:race", 7, Duration::from_secs(60)),
            Limit::sliding("t:race-sliding", 9, Duration::from_secs(60)),
        ];
        let attempts: Vec<_> = (0..60)
            .map(|i| {
                let store = stores[i % 3].clone();
                let limits = limits.clone();
                tokio::spawn(async move { store.admit(&limits, &format!("m{i}")).await.unwrap() })
            })
            .collect();
        let mut admitted = 0;
        for attempt in attempts {
            if attempt.await.unwrap() == Admission::Admitted {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 7);
    }

    #[tokio::test]
    async fn a_claim_is_taken_once_and_reads_back_what_its_holder_wrote() {
        let redis = TestRedis::new();
        let store = redis.store().await;
        let ttl = Duration::from_secs(60);
        assert_eq!(store.claim("seen:t:c", "pending", ttl).await.unwrap(), None);
        assert_eq!(
            store.claim("seen:t:c", "other", ttl).await.unwrap(),
            Some("pending".to_owned())
        );
        store.update_claim("seen:t:c", "done", ttl).await.unwrap();
        assert_eq!(
            store.claim("seen:t:c", "other", ttl).await.unwrap(),
            Some("done".to_owned())
        );
        store.release_claim("seen:t:c").await.unwrap();
        assert_eq!(store.claim("seen:t:c", "again", ttl).await.unwrap(), None);
        // Updating a claim that is gone does not bring it back.
        store.release_claim("seen:t:c").await.unwrap();
        store.update_claim("seen:t:c", "done", ttl).await.unwrap();
        assert_eq!(store.claim("seen:t:c", "new", ttl).await.unwrap(), None);
    }

    /// A model of fixed windows that never expire within a case: each limit admits while its
    /// count is below its max, and a refusal counts nowhere.
    fn model(maxes: &[u64], requests: &[Vec<usize>]) -> Vec<Option<usize>> {
        let mut counts = vec![0; maxes.len()];
        requests
            .iter()
            .map(|uses| {
                let refused = uses.iter().copied().find(|&l| counts[l] >= maxes[l]);
                if refused.is_none() {
                    for &l in uses {
                        counts[l] += 1;
                    }
                }
                refused
            })
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// Any sequence of requests, each counting against some of four shared limits, is
        /// admitted or refused exactly as the model says, with the first full limit named.
        #[test]
        fn admissions_follow_the_model(
            maxes in proptest::collection::vec(1u64..4, 4),
            requests in proptest::collection::vec(
                proptest::sample::subsequence(vec![0usize, 1, 2, 3], 1..=4), 1..20),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let expected = model(&maxes, &requests);
            let got: Vec<Option<usize>> = runtime.block_on(async {
                let redis = TestRedis::new();
                let store = redis.store().await;
                let mut got = Vec::new();
                for uses in &requests {
                    let limits: Vec<Limit> = uses
                        .iter()
                        .map(|&l| Limit::fixed(format!("p:{l}"), maxes[l], Duration::from_secs(60)))
                        .collect();
                    got.push(match store.admit(&limits, "m").await.unwrap() {
                        Admission::Admitted => None,
                        Admission::Refused { index, .. } => Some(uses[index]),
                    });
                }
                got
            });
            proptest::prop_assert_eq!(got, expected);
        }
    }
}
