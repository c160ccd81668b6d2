//! Which relayed port an allocation gets. The core chooses; the shell binds.

use std::collections::VecDeque;
use std::ops::RangeInclusive;

use crate::entropy::{self, Entropy};
use crate::stun::AddressFamily;

/// Whether an allocation needs an even port (EVEN-PORT, RFC 8656 §14.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortParity {
    Any,
    Even,
}

/// Hands out relayed ports from the configured range. IPv4 and IPv6 relays are separate
/// sockets, so each family has its own pool.
///
/// The shell may implement this itself, for instance to bind the socket inside `acquire` and
/// answer `None` when the port turns out to be taken by another program.
pub trait RelayPorts {
    fn acquire(&mut self, family: AddressFamily, parity: PortParity) -> Option<u16>;
    /// An even port whose successor is free too, taking both: the even one for the
    /// allocation, the odd one kept for the RESERVATION-TOKEN (RFC 8656 §7.2). Each is given
    /// back with [`RelayPorts::release`] on its own.
    fn acquire_pair(&mut self, family: AddressFamily) -> Option<u16>;
    fn release(&mut self, family: AddressFamily, port: u16);
}

/// A pool over a port range, in an order shuffled once at start (RFC 8656 §7.2 asks for
/// unpredictable relayed ports). Released ports go to the back, so a port is reused as late
/// as possible and late packets for an old allocation rarely reach a new one.
#[derive(Debug, Clone)]
pub struct PortPool {
    free_v4: VecDeque<u16>,
    free_v6: VecDeque<u16>,
}

impl PortPool {
    pub fn new(range: RangeInclusive<u16>, entropy: &mut dyn Entropy) -> PortPool {
        let mut ports: Vec<u16> = range.collect();
        for i in (1..ports.len()).rev() {
            let j = entropy::below(entropy, i + 1);
            ports.swap(i, j);
        }
        PortPool {
            free_v4: ports.iter().copied().collect(),
            free_v6: ports.into_iter().collect(),
        }
    }

    pub fn free(&self, family: AddressFamily) -> usize {
        match family {
            AddressFamily::V4 => self.free_v4.len(),
            AddressFamily::V6 => self.free_v6.len(),
        }
    }

    fn pool(&mut self, family: AddressFamily) -> &mut VecDeque<u16> {
        match family {
            AddressFamily::V4 => &mut self.free_v4,
            AddressFamily::V6 => &mut self.free_v6,
        }
    }
}

impl RelayPorts for PortPool {
    fn acquire(&mut self, family: AddressFamily, parity: PortParity) -> Option<u16> {
        let pool = self.pool(family);
        let index = match parity {
            PortParity::Any => 0,
            PortParity::Even => pool.iter().position(|port| port % 2 == 0)?,
        };
        pool.remove(index)
    }

    fn acquire_pair(&mut self, family: AddressFamily) -> Option<u16> {
        let pool = self.pool(family);
        // One set per request, not per packet: pairs are asked for at Allocate only.
        let free: std::collections::HashSet<u16> = pool.iter().copied().collect();
        let even = pool
            .iter()
            .copied()
            .find(|port| port % 2 == 0 && port.checked_add(1).is_some_and(|n| free.contains(&n)))?;
        pool.retain(|port| *port != even && *port != even + 1);
        Some(even)
    }

    fn release(&mut self, family: AddressFamily, port: u16) {
        let pool = self.pool(family);
        if !pool.contains(&port) {
            pool.push_back(port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    #[test]
    fn a_pool_hands_out_each_port_once_until_released() {
        let mut pool = PortPool::new(50000..=50003, &mut SeededEntropy::new(1));
        let mut taken: Vec<u16> = (0..4)
            .map(|_| {
                pool.acquire(AddressFamily::V4, PortParity::Any)
                    .expect("free")
            })
            .collect();
        assert_eq!(pool.acquire(AddressFamily::V4, PortParity::Any), None);
        taken.sort_unstable();
        assert_eq!(taken, vec![50000, 50001, 50002, 50003]);
        assert_eq!(pool.free(AddressFamily::V6), 4);
        pool.release(AddressFamily::V4, 50002);
        assert_eq!(
            pool.acquire(AddressFamily::V4, PortParity::Even),
            Some(50002)
        );
    }

    #[test]
    fn a_pair_is_an_even_port_and_the_next_one() {
        let mut pool = PortPool::new(50000..=50004, &mut SeededEntropy::new(3));
        let even = pool.acquire_pair(AddressFamily::V4).expect("free pair");
        assert_eq!(even % 2, 0);
        assert_eq!(pool.free(AddressFamily::V4), 3);
        let other = pool
            .acquire_pair(AddressFamily::V4)
            .expect("the other pair");
        assert_ne!(other, even);
        assert_eq!(
            pool.acquire_pair(AddressFamily::V4),
            None,
            "50004 has no partner"
        );
        pool.release(AddressFamily::V4, even + 1);
        assert_eq!(
            pool.acquire_pair(AddressFamily::V4),
            None,
            "an odd port alone"
        );
        pool.release(AddressFamily::V4, even);
        assert_eq!(pool.acquire_pair(AddressFamily::V4), Some(even));
    }
}
