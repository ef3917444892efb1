//! A log-linear latency histogram in the HDR style.
//!
//! Values (nanoseconds) below 2^SUB_BITS are counted exactly; above, each
//! power of two is split into 2^SUB_BITS equal buckets, so a bucket is at
//! most 1/128 (< 1%) of its values wide. It is fixed-size (64 KiB),
//! allocation-free on record and mergeable by adding counts, which is what
//! a per-thread, per-second recorder needs. Written here rather than taken
//! from the `hdrhistogram` crate because these forty lines are all we use
//! of it and they keep the dependency list short.

/// Sub-buckets per power of two, as a power of two: 128 → < 1% error.
const SUB_BITS: u32 = 7;
const SUB: usize = 1 << SUB_BITS;
/// Octaves above the exact range; u64 values need 64 - SUB_BITS of them.
const OCTAVES: usize = 64 - SUB_BITS as usize;
const BUCKETS: usize = SUB * (OCTAVES + 1);

#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    min: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
            min: u64::MAX,
        }
    }
}

fn index(value: u64) -> usize {
    if value < SUB as u64 {
        return value as usize;
    }
    let octave = 63 - value.leading_zeros() - SUB_BITS + 1;
    let sub = (value >> (octave - 1)) as usize - SUB;
    octave as usize * SUB + sub
}

/// The highest value that falls in bucket `index`.
fn upper(index: usize) -> u64 {
    let octave = index / SUB;
    let sub = (index % SUB) as u64;
    if octave == 0 {
        return sub;
    }
    let shift = octave as u32 - 1;
    ((SUB as u64 + sub + 1) << shift) - 1
}

impl Histogram {
    pub fn record(&mut self, value: u64) {
        self.counts[index(value)] += 1;
        self.total += 1;
        self.max = self.max.max(value);
        self.min = self.min.min(value);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.min = self.min.min(other.min);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn min(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            self.min
        }
    }

    /// The value at quantile `q` (0.0–1.0), as its bucket's upper bound
    /// capped by the true maximum; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }

    /// Non-empty buckets as (upper bound, count), for plotting.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &c)| (upper(i), c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lands_in_a_bucket_that_covers_it_within_one_percent() {
        let mut v = 1u64;
        while v < u64::MAX / 3 {
            for probe in [v, v + 1, v * 3 / 2] {
                let i = index(probe);
                assert!(upper(i) >= probe, "{probe}");
                let lower = if i == 0 { 0 } else { upper(i - 1) + 1 };
                assert!(lower <= probe, "{probe}");
                assert!((upper(i) - lower) as f64 <= probe as f64 / 100.0 + 1.0);
            }
            v = v * 2 + 1;
        }
        assert!(index(u64::MAX) < BUCKETS);
    }

    #[test]
    fn quantiles_of_a_uniform_run() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 / 50_000_000.0 - 1.0).abs() < 0.01, "{p50}");
        assert!((p99 / 99_000_000.0 - 1.0).abs() < 0.01, "{p99}");
        assert_eq!(h.quantile(1.0), 100_000_000);
        assert_eq!(h.min(), 1000);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        a.record(5);
        b.record(7_000);
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert_eq!(a.max(), 7_000);
        assert_eq!(a.quantile(0.0), 5);
    }
}
