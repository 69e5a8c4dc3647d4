//! Upstream selection policies (CoreDNS plugin/forward/policy.go): the order in which one query
//! tries the upstreams.

use std::sync::atomic::{AtomicU32, Ordering};

use rand::seq::SliceRandom;

/// At most this many upstreams per forward instance.
pub const MAX_UPSTREAMS: usize = 15;

/// `policy random|round_robin|sequential`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// A random permutation per query (two upstreams: swapped half of the time).
    #[default]
    Random,
    /// A rotating first choice, then the others in configured order.
    RoundRobin,
    /// Configured order.
    Sequential,
}

impl Policy {
    pub fn as_str(&self) -> &'static str {
        match self {
            Policy::Random => "random",
            Policy::RoundRobin => "round_robin",
            Policy::Sequential => "sequential",
        }
    }
}

/// An order of upstream indexes, without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    idx: [u8; MAX_UPSTREAMS],
    len: usize,
}

impl Order {
    pub fn as_slice(&self) -> &[u8] {
        &self.idx[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, i: usize) -> usize {
        self.idx[i] as usize
    }
}

/// The order of `n` upstreams (`n` ≤ [`MAX_UPSTREAMS`]) for one query; `robin` is the
/// round-robin counter of the forward instance.
pub fn order(policy: Policy, n: usize, robin: &AtomicU32) -> Order {
    let n = n.min(MAX_UPSTREAMS);
    let mut o = Order {
        idx: [0; MAX_UPSTREAMS],
        len: n,
    };
    for (i, slot) in o.idx.iter_mut().enumerate().take(n) {
        *slot = i as u8;
    }
    if n < 2 {
        return o;
    }
    match policy {
        Policy::Sequential => {}
        Policy::Random => {
            let mut rng = rand::rng();
            if n == 2 {
                if rand::random::<bool>() {
                    o.idx.swap(0, 1);
                }
            } else {
                o.idx[..n].shuffle(&mut rng);
            }
        }
        Policy::RoundRobin => {
            // CoreDNS: i := atomic.AddUint32(&r.robin, 1) % len; [p[i], p[:i]..., p[i+1:]...]
            let i = (robin.fetch_add(1, Ordering::Relaxed).wrapping_add(1) as usize) % n;
            o.idx[0] = i as u8;
            let mut k = 1;
            for j in 0..n {
                if j != i {
                    o.idx[k] = j as u8;
                    k += 1;
                }
            }
        }
    }
    o
}

/// A random upstream (when every upstream is down).
pub fn random_one(n: usize) -> usize {
    if n <= 1 { 0 } else { rand::random_range(0..n) }
}
