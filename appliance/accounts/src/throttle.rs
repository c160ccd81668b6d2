//! Failed logins per source address, in memory: a source that fails too often in a window
//! waits until the window ends, whatever names it tries. (The per-name lockout in
//! [`crate::lockout`] stops slow guessing spread over many addresses.)

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct SourceThrottle {
    max_failures: u32,
    window: Duration,
    capacity: usize,
    sources: HashMap<IpAddr, Window>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

impl SourceThrottle {
    /// At most `max_failures` failures per source in each `window`; at most `capacity`
    /// sources remembered, the stalest forgotten first.
    pub fn new(max_failures: u32, window: Duration, capacity: usize) -> SourceThrottle {
        SourceThrottle {
            max_failures: max_failures.max(1),
            window,
            capacity: capacity.max(1),
            sources: HashMap::new(),
        }
    }

    /// How long `ip` must wait before trying again, if it must.
    pub fn retry_after(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let window = self.sources.get(&source_key(ip))?;
        let ends = window.started + self.window;
        (window.failures >= self.max_failures && ends > now).then(|| ends - now)
    }

    pub fn failed(&mut self, ip: IpAddr, now: Instant) {
        let key = source_key(ip);
        if !self.sources.contains_key(&key) && self.sources.len() >= self.capacity {
            self.make_room(now);
        }
        let window = self.sources.entry(key).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now.duration_since(window.started) >= self.window {
            *window = Window {
                started: now,
                failures: 0,
            };
        }
        window.failures = window.failures.saturating_add(1);
    }

    pub fn succeeded(&mut self, ip: IpAddr) {
        self.sources.remove(&source_key(ip));
    }

    fn make_room(&mut self, now: Instant) {
        let period = self.window;
        self.sources
            .retain(|_, window| now.duration_since(window.started) < period);
        if self.sources.len() >= self.capacity
            && let Some(stalest) = self
                .sources
                .iter()
                .min_by_key(|(_, window)| window.started)
                .map(|(ip, _)| *ip)
        {
            self.sources.remove(&stalest);
        }
    }
}

/// One key per IPv4 address and per IPv6 /64 (one host usually owns a whole /64); an
/// IPv4-mapped IPv6 address counts as its IPv4 address.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_waits_out_its_window() {
        let mut throttle = SourceThrottle::new(3, Duration::from_secs(60), 100);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for n in 0..3 {
            assert_eq!(throttle.retry_after(ip, t0), None, "after {n}");
            throttle.failed(ip, t0);
        }
        assert_eq!(throttle.retry_after(ip, t0), Some(Duration::from_secs(60)));
        let later = t0 + Duration::from_secs(45);
        assert_eq!(
            throttle.retry_after(ip, later),
            Some(Duration::from_secs(15))
        );
        assert_eq!(throttle.retry_after(ip, t0 + Duration::from_secs(60)), None);
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(throttle.retry_after(other, t0), None);
    }

    #[test]
    fn mapped_and_same_prefix_addresses_share_a_count() {
        let mut throttle = SourceThrottle::new(2, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        throttle.failed("192.0.2.1".parse().unwrap(), t0);
        throttle.failed("::ffff:192.0.2.1".parse().unwrap(), t0);
        assert!(
            throttle
                .retry_after("192.0.2.1".parse().unwrap(), t0)
                .is_some()
        );
        throttle.failed("2001:db8:1:2::1".parse().unwrap(), t0);
        throttle.failed("2001:db8:1:2::ffff".parse().unwrap(), t0);
        assert!(
            throttle
                .retry_after("2001:db8:1:2::7".parse().unwrap(), t0)
                .is_some()
        );
        assert!(
            throttle
                .retry_after("2001:db8:1:3::7".parse().unwrap(), t0)
                .is_none()
        );
    }

    #[test]
    fn memory_is_bounded() {
        let mut throttle = SourceThrottle::new(2, Duration::from_secs(60), 10);
        let t0 = Instant::now();
        for n in 0..1000u32 {
            throttle.failed(
                IpAddr::from(n.to_be_bytes()),
                t0 + Duration::from_millis(n.into()),
            );
        }
        assert!(throttle.sources.len() <= 10);
    }
}
