//! Response rate limiting per client IP: a token bucket per address, in a fixed-size table.
//!
//! Why per IP and never per /24: on a campus, one NAT'd lab or a whole student residence can
//! sit behind neighbouring addresses, and an infected machine must not starve its neighbours.
//! Why a fixed-size table: source addresses of UDP packets are trivially spoofed, so a flood
//! from random sources must not be able to grow memory. The table is allocated once at start
//! (`[dns] rate_limit_table_size` entries) and never grows; the hot path takes one small lock
//! (one of many sets), hashes once and allocates nothing.
//!
//! Layout: a set-associative cache. An address hashes (seeded per process, so an attacker cannot
//! aim at one set) to a set of [`WAYS`] slots behind its own mutex. A new address takes an empty
//! slot or evicts the slot seen least recently. Eviction is fail-open by design: an evicted
//! client starts again with a full bucket, so a spoofed flood can at worst give real clients
//! back their burst, never take their service away.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Slots per set. Four keeps the per-query scan within one or two cache lines.
pub const WAYS: usize = 4;
/// Token amounts are kept in thousandths, so a refill per elapsed millisecond is exact.
const MILLI: u64 = 1000;

/// What to do with one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Within the client's rate: answer normally.
    Pass,
    /// Over the rate: send nothing.
    Drop,
    /// Over the rate, but this one gets a tiny truncated REFUSED so a real client behind a
    /// spoofed-flooded address can still retry over TCP (BIND calls this "slip"; off by
    /// default, `[dns] rate_limit_slip`).
    Slip,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The address as 128 bits (IPv4 as IPv4-mapped IPv6); valid only when `used`.
    key: u128,
    used: bool,
    /// Milli-tokens left.
    tokens: u64,
    /// Milliseconds since the limiter's epoch at the last refill.
    last_ms: u64,
    /// Over-limit queries since the bucket last had a token, for the slip cadence.
    over: u32,
}

/// The per-client token buckets. Shared by every DNS worker.
pub struct RateLimiter {
    sets: Box<[Mutex<[Slot; WAYS]>]>,
    hasher: foldhash::fast::RandomState,
    epoch: Instant,
    /// Milli-tokens added per millisecond (= queries per second).
    per_ms: u64,
    /// Bucket size in milli-tokens.
    cap: u64,
    /// Every `slip`-th dropped query is answered truncated; 0 = never.
    slip: u32,
}

impl RateLimiter {
    /// A limiter allowing `qps` queries per second per address with bursts of `burst`, tracking
    /// at most `table_size` addresses (rounded up to whole sets). `None` when `qps` is 0 (off).
    pub fn new(qps: u32, burst: u32, slip: u32, table_size: usize) -> Option<Self> {
        if qps == 0 {
            return None;
        }
        let sets = table_size.div_ceil(WAYS).max(1);
        Some(Self {
            sets: (0..sets)
                .map(|_| Mutex::new([Slot::default(); WAYS]))
                .collect(),
            hasher: foldhash::fast::RandomState::default(),
            epoch: Instant::now(),
            per_ms: u64::from(qps),
            cap: u64::from(burst.max(1)) * MILLI,
            slip,
        })
    }

    /// How many addresses the table can track at once.
    pub fn capacity(&self) -> usize {
        self.sets.len() * WAYS
    }

    /// Charges one query to `ip` now.
    pub fn admit(&self, ip: IpAddr) -> Admit {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.admit_at(ip, now)
    }

    /// [`RateLimiter::admit`] at a given time (milliseconds since the limiter was made), so the
    /// bucket arithmetic is testable without clocks.
    pub fn admit_at(&self, ip: IpAddr, now_ms: u64) -> Admit {
        let key = key_of(ip);
        let mut h = self.hasher.build_hasher();
        h.write_u128(key);
        let index = (h.finish() % self.sets.len() as u64) as usize;
        // A poisoned set only means another thread panicked mid-update of plain integers; the
        // data is still usable, so keep going rather than fail every query of that set.
        let mut set = match self.sets[index].lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let slot = match set.iter().position(|s| s.used && s.key == key) {
            Some(i) => &mut set[i],
            None => {
                let victim = set
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| (s.used, s.last_ms))
                    .map_or(0, |(i, _)| i);
                set[victim] = Slot {
                    key,
                    used: true,
                    tokens: self.cap,
                    last_ms: now_ms,
                    over: 0,
                };
                &mut set[victim]
            }
        };
        let elapsed = now_ms.saturating_sub(slot.last_ms);
        slot.tokens = slot
            .tokens
            .saturating_add(elapsed.saturating_mul(self.per_ms))
            .min(self.cap);
        slot.last_ms = slot.last_ms.max(now_ms);
        if slot.tokens >= MILLI {
            slot.tokens -= MILLI;
            slot.over = 0;
            return Admit::Pass;
        }
        slot.over = slot.over.saturating_add(1);
        if self.slip > 0 && slot.over % self.slip == 0 {
            Admit::Slip
        } else {
            Admit::Drop
        }
    }
}

/// One key space for both families: an IPv4 client seen on a dual-stack socket as
/// `::ffff:a.b.c.d` is the same client as `a.b.c.d`.
fn key_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn off_when_qps_is_zero() {
        assert!(RateLimiter::new(0, 10, 2, 64).is_none());
    }

    #[test]
    fn burst_then_rate() {
        let rl = RateLimiter::new(10, 5, 0, 64).unwrap();
        let a = ip("10.0.0.1");
        for _ in 0..5 {
            assert_eq!(rl.admit_at(a, 0), Admit::Pass);
        }
        assert_eq!(rl.admit_at(a, 0), Admit::Drop);
        // 10 qps: one token per 100 ms.
        assert_eq!(rl.admit_at(a, 99), Admit::Drop);
        assert_eq!(rl.admit_at(a, 100), Admit::Pass);
        assert_eq!(rl.admit_at(a, 100), Admit::Drop);
        // Long idle refills only up to the burst.
        for _ in 0..5 {
            assert_eq!(rl.admit_at(a, 100_000), Admit::Pass);
        }
        assert_eq!(rl.admit_at(a, 100_000), Admit::Drop);
    }

    #[test]
    fn per_address_not_per_prefix() {
        let rl = RateLimiter::new(1, 1, 0, 64).unwrap();
        assert_eq!(rl.admit_at(ip("10.0.0.1"), 0), Admit::Pass);
        assert_eq!(rl.admit_at(ip("10.0.0.1"), 0), Admit::Drop);
        assert_eq!(rl.admit_at(ip("10.0.0.2"), 0), Admit::Pass);
        // The mapped form is the same client.
        assert_eq!(rl.admit_at(ip("::ffff:10.0.0.2"), 0), Admit::Drop);
    }

    #[test]
    fn every_slip_th_drop_slips() {
        let rl = RateLimiter::new(1, 1, 2, 64).unwrap();
        let a = ip("192.168.1.1");
        assert_eq!(rl.admit_at(a, 0), Admit::Pass);
        let seen: Vec<_> = (0..4).map(|_| rl.admit_at(a, 0)).collect();
        assert_eq!(seen, [Admit::Drop, Admit::Slip, Admit::Drop, Admit::Slip]);
    }

    #[test]
    fn table_never_grows_under_a_spoofed_flood() {
        let rl = RateLimiter::new(1, 1, 0, 64).unwrap();
        let cap = rl.capacity();
        for i in 0..100_000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(i));
            assert_eq!(
                rl.admit_at(ip, 0),
                Admit::Pass,
                "a new address has its burst"
            );
        }
        assert_eq!(rl.capacity(), cap);
        assert_eq!(rl.sets.len() * WAYS, cap);
    }
}
