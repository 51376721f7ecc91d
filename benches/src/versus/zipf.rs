//! A Zipf sampler over ranks `0..n` (rank 0 the most frequent), written on
//! `fastrand`: the cumulative distribution is computed once and a sample is
//! a binary search of a uniform number in it.

/// Zipf(n, s): rank `k` (from 0) has weight `1 / (k + 1)^s`.
#[derive(Debug, Clone)]
pub struct Zipf {
    /// `cdf[k]` = P(rank <= k); the last entry is 1.
    cdf: Vec<f64>,
}

impl Zipf {
    /// The distribution over `n` ranks (at least one) with exponent `s`.
    pub fn new(n: usize, s: f64) -> Self {
        let weights: Vec<f64> = (1..=n.max(1)).map(|k| (k as f64).powf(-s)).collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        if let Some(last) = cdf.last_mut() {
            *last = 1.0;
        }
        Self { cdf }
    }

    /// One rank.
    pub fn sample(&self, rng: &mut fastrand::Rng) -> usize {
        let u = rng.f64();
        self.cdf
            .partition_point(|c| *c <= u)
            .min(self.cdf.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_follow_the_weights() {
        let z = Zipf::new(200, 1.0);
        let mut rng = fastrand::Rng::with_seed(1);
        let mut counts = vec![0usize; 200];
        for _ in 0..100_000 {
            counts[z.sample(&mut rng)] += 1;
        }
        // H(200) = 5.878: rank 0 has 1/H = 17 %, rank 1 8.5 %, rank 199 0.085 %.
        assert!((16_000..18_000).contains(&counts[0]), "{}", counts[0]);
        assert!((7_700..9_300).contains(&counts[1]), "{}", counts[1]);
        assert!(counts[199] < 200, "{}", counts[199]);
        assert_eq!(counts.iter().sum::<usize>(), 100_000);
    }
}
