//! The foreground-restricted information-theoretic score V_Info (METRICS.md 5.4;
//! `VariationOfInformation.foregroundRestrictedStats` in the organisers' code).
//!
//! With `p_ij`, `a_i`, `b_j` as for Rand and natural logarithms:
//! `sumA = sum_i a_i ln a_i`, `sumB = sum_{j>=1} b_j ln b_j - (sum_i p_i0) ln n`,
//! `sumAB = sum_{i,j>=1} p_ij ln p_ij - (sum_i p_i0) ln n` (each border pixel a singleton);
//! `H(S) = -sumA`, `H(T) = -sumB`, `H(S|T) = sumB - sumAB`, `H(T|S) = sumA - sumAB`;
//! precision = `(H(S) - H(S|T)) / H(S)`, recall = `(H(T) - H(T|S)) / H(T)`, with
//! `H(S) = 0 -> (0, 1)` and then `H(T) = 0 -> (1, 0)`; V_Info = `2 P R / (P + R)`.

use crate::contingency::{Contingency, ordered_sum};

/// V_Info of two label images (0 = background in the truth, 0 = border in the proposal).
/// Returns 0 when the truth has no foreground.
pub fn v_info(truth: &[u32], proposal: &[u32]) -> f64 {
    let c = Contingency::new(truth, proposal);
    if c.n == 0 {
        return 0.0;
    }
    let n = c.n as f64;
    let plogp = |v: u64| {
        let p = v as f64 / n;
        if p > 0.0 { p * p.ln() } else { 0.0 }
    };
    let border = c.border as f64 / n;
    let sum_a: f64 = ordered_sum(c.rows.values(), plogp);
    let sum_b: f64 = ordered_sum(c.cols.values(), plogp) - border * n.ln();
    let sum_ab: f64 = ordered_sum(c.joint.values(), plogp) - border * n.ln();
    let (ha, hb) = (-sum_a, -sum_b);
    let (hab, hba) = (sum_b - sum_ab, sum_a - sum_ab);
    let (mut prec, mut rec) = ((ha - hab) / ha, (hb - hba) / hb);
    if ha == 0.0 {
        prec = 0.0;
        rec = 1.0;
    }
    if hb == 0.0 {
        prec = 1.0;
        rec = 0.0;
    }
    let f = 2.0 * prec * rec / (prec + rec);
    if f.is_finite() { f } else { 0.0 }
}
