//! The one source of random choices (which replica, which nodes, the soak's
//! mix), seeded from `--seed` so every run can be repeated: SplitMix64.

/// A seeded generator over the simulator's SplitMix64 (one implementation
/// for the simulated cluster's data and the faults' choices).
#[derive(Debug, Clone)]
pub struct Rng(sim::cluster::SplitMix);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(sim::cluster::SplitMix::new(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// `k` distinct picks from `items`, in a seeded order.
    pub fn pick<T: Clone>(&mut self, items: &[T], k: usize) -> Vec<T> {
        let mut v: Vec<T> = items.to_vec();
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
        v.truncate(k);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_choices_and_another_seed_others() {
        let items: Vec<u32> = (0..20).collect();
        let a = Rng::new(7).pick(&items, 5);
        assert_eq!(a, Rng::new(7).pick(&items, 5));
        assert_ne!(a, Rng::new(8).pick(&items, 5));
        let mut seen = a.clone();
        seen.dedup();
        assert_eq!(seen.len(), 5);
    }
}
