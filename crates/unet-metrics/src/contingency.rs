//! The overlap table between a ground-truth segmentation S and a proposal T, restricted to
//! the ground truth's foreground (S != 0), as the foreground-restricted Rand and
//! information scores use it (METRICS.md 5.3, 5.4).

use std::collections::HashMap;

/// Counts `n_ij = |{x : S(x) = i, T(x) = j}|` over pixels with `S(x) != 0`.
#[derive(Debug, Clone)]
pub struct Contingency {
    /// Number of pixels with `S != 0`.
    pub n: u64,
    /// `n_ij` for `i >= 1`, `j >= 1`.
    pub joint: HashMap<(u32, u32), u64>,
    /// Row sums `a_i * n` over all `j >= 0`, for `i >= 1`.
    pub rows: HashMap<u32, u64>,
    /// Column sums `b_j * n` over `i >= 1`, for `j >= 1`.
    pub cols: HashMap<u32, u64>,
    /// `sum_i n_i0`: proposal-border pixels (T = 0) inside ground-truth objects.
    pub border: u64,
}

impl Contingency {
    /// Builds the table from two label images of equal length.
    pub fn new(truth: &[u32], proposal: &[u32]) -> Self {
        assert_eq!(truth.len(), proposal.len(), "label sizes");
        let mut c = Contingency { n: 0, joint: HashMap::new(), rows: HashMap::new(), cols: HashMap::new(), border: 0 };
        for (&s, &t) in truth.iter().zip(proposal) {
            if s == 0 {
                continue;
            }
            c.n += 1;
            *c.rows.entry(s).or_default() += 1;
            if t == 0 {
                c.border += 1;
            } else {
                *c.joint.entry((s, t)).or_default() += 1;
                *c.cols.entry(t).or_default() += 1;
            }
        }
        c
    }
}

/// `sum f(v)` over `counts` in ascending order of the counts: hash maps iterate in an order
/// that changes from process to process, and a float sum in that order would change the
/// last bits of a score between two runs on the same input.
pub(crate) fn ordered_sum<'a>(counts: impl Iterator<Item = &'a u64>, f: impl Fn(u64) -> f64) -> f64 {
    let mut v: Vec<u64> = counts.copied().collect();
    v.sort_unstable();
    v.into_iter().map(f).sum()
}
