//! The foreground-restricted Rand score with N^2 normalisation (METRICS.md 5.3;
//! `RandError.getForegroundRestrictedRandIndexStatsN2` in the organisers' code).
//!
//! With `p_ij = n_ij / n` over ground-truth foreground pixels, proposal-border pixels
//! (T = 0) counted as singletons:
//! `sumA2 = sum_i a_i^2`, `sumB2 = sum_{j>=1} b_j^2 + (sum_i p_i0) / n`,
//! `sumAB2 = sum_{i,j>=1} p_ij^2 + (sum_i p_i0) / n`; `TP = n^2 sumAB2`,
//! `FP = n^2 sumB2 - TP`, `FN = n^2 sumA2 - TP`; precision = TP / (TP + FP) (hurt by
//! mergers), recall = TP / (TP + FN) (hurt by splits), V_Rand = their harmonic mean.
//! Self-pairs are included (N^2, not N(N-1)).

use crate::contingency::{Contingency, ordered_sum};

/// Pair counts and the scores derived from them (the organisers' `ClassificationStatistics`:
/// no false positives means precision 1, no false negatives means recall 1).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct RandStats {
    pub tp: f64,
    pub fp: f64,
    pub fn_: f64,
}

impl RandStats {
    /// Foreground-restricted Rand statistics of two label images (0 = background in the
    /// truth, 0 = border in the proposal).
    pub fn foreground_restricted(truth: &[u32], proposal: &[u32]) -> Self {
        let c = Contingency::new(truth, proposal);
        if c.n == 0 {
            return RandStats::default();
        }
        let n = c.n as f64;
        let sq = |v: u64| {
            let p = v as f64 / n;
            p * p
        };
        let border = c.border as f64 / n;
        let sum_a2: f64 = ordered_sum(c.rows.values(), sq);
        let sum_b2: f64 = ordered_sum(c.cols.values(), sq) + border / n;
        let sum_ab2: f64 = ordered_sum(c.joint.values(), sq) + border / n;
        let n2 = n * n;
        let tp = n2 * sum_ab2;
        RandStats { tp, fp: n2 * sum_b2 - tp, fn_: n2 * sum_a2 - tp }
    }

    /// Adds another slice's counts (micro-averaging).
    pub fn add(&mut self, other: &RandStats) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.fn_ += other.fn_;
    }

    /// `TP / (TP + FP)`, 1 when there is no false positive.
    pub fn precision(&self) -> f64 {
        if self.fp == 0.0 { 1.0 } else { self.tp / (self.tp + self.fp) }
    }

    /// `TP / (TP + FN)`, 1 when there is no false negative.
    pub fn recall(&self) -> f64 {
        if self.fn_ == 0.0 { 1.0 } else { self.tp / (self.tp + self.fn_) }
    }

    /// V_Rand: `2 P R / (P + R)` (0 when both are 0).
    pub fn fscore(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 }
    }
}
