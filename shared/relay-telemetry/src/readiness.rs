//! Readiness: named checks that must all pass before `/readyz` answers 200.
//!
//! Each component registers the checks it owns (`broker`, `topology`, `redis`) and flips them as
//! its connection comes and goes; shutdown flips `draining` so load balancers stop sending
//! traffic before the listener closes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Shared readiness state of one service.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<Mutex<BTreeMap<&'static str, Arc<AtomicBool>>>>,
    draining: Arc<AtomicBool>,
}

/// One named check, owned by the component it describes.
#[derive(Clone)]
pub struct Check(Arc<AtomicBool>);

impl Check {
    /// Marks the check as passing or failing.
    pub fn set(&self, ok: bool) {
        self.0.store(ok, Ordering::Release);
    }

    /// Whether the check passes.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl Readiness {
    /// An empty registry: ready until a check is registered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or returns the existing) check `name`, failing at first.
    pub fn check(&self, name: &'static str) -> Check {
        let mut checks = self.checks.lock().expect("readiness lock poisoned");
        Check(checks.entry(name).or_default().clone())
    }

    /// Marks the service as draining: not ready from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether every check passes and the service is not draining.
    pub fn is_ready(&self) -> bool {
        self.failing().is_empty()
    }

    /// Names of the failing checks (`draining` included).
    pub fn failing(&self) -> Vec<&'static str> {
        let checks = self.checks.lock().expect("readiness lock poisoned");
        let mut failing: Vec<&'static str> = checks
            .iter()
            .filter(|(_, ok)| !ok.load(Ordering::Acquire))
            .map(|(name, _)| *name)
            .collect();
        if self.draining.load(Ordering::Acquire) {
            failing.push("draining");
        }
        failing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_passes_and_not_draining() {
        let r = Readiness::new();
        assert!(r.is_ready());
        let broker = r.check("broker");
        let redis = r.check("redis");
        assert_eq!(r.failing(), vec!["broker", "redis"]);
        broker.set(true);
        redis.set(true);
        assert!(r.is_ready());
        r.start_draining();
        assert_eq!(r.failing(), vec!["draining"]);
    }
}
