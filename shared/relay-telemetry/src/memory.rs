//! The services' memory: no transparent huge pages.
//!
//! On a kernel with transparent huge pages `always` (many distributions' default), the
//! allocator's arenas are backed by 2 MiB pages as soon as they are touched, so a service's
//! resident memory grows in 2 MiB steps that are never given back. Ingress at 1,024 client
//! connections held 86-90 MiB with them and 56 MiB without, at the same throughput
//! (BENCHMARKS.md, "Transparent huge pages"). The services allocate small, short-lived
//! objects; huge pages buy them nothing.

/// Turns transparent huge pages off for this process (Linux; nothing elsewhere). Called by
/// [`crate::init`], before the service allocates anything of size; a kernel that refuses
/// (before 3.15, or a seccomp profile that forbids `prctl`) only costs memory, so the refusal is
/// logged at debug level and nothing else happens.
pub(crate) fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(error) = nix::sys::prctl::set_thp_disable(true) {
        tracing::debug!(%error, "transparent huge pages stay as the kernel has them");
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// The flag the kernel keeps for the process says huge pages are off once it ran.
    #[test]
    fn huge_pages_are_off_after_it_ran() {
        super::without_huge_pages();
        assert_eq!(nix::sys::prctl::get_thp_disable(), Ok(true));
    }
}
