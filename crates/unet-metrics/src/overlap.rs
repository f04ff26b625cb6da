//! Overlap scores: IoU (Jaccard) and Dice of binary masks; the cell tracking challenge's
//! SEG and the average precision over IoU thresholds 0.5:0.95 of instance labelings.

use std::collections::HashMap;

/// IoU thresholds of the AP score: 0.50, 0.55, ..., 0.95.
pub const AP_IOU_THRESHOLDS: [f64; 10] = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95];

/// IoU from counts, `intersection / union` (1 when the union is empty): the one definition
/// behind every IoU of this crate (masks, instances, the pixel scores of a stack).
pub fn iou_from_counts(intersection: u64, union: u64) -> f64 {
    if union == 0 { 1.0 } else { intersection as f64 / union as f64 }
}

/// Dice from counts, `2 intersection / (|T| + |P|)` (1 when both are empty).
pub fn dice_from_counts(intersection: u64, total: u64) -> f64 {
    if total == 0 { 1.0 } else { 2.0 * intersection as f64 / total as f64 }
}

/// `|T ∩ P| / |T ∪ P|` of two masks (1 when both are empty).
pub fn iou(truth: &[bool], pred: &[bool]) -> f64 {
    let (inter, union) =
        truth.iter().zip(pred).fold((0u64, 0u64), |(i, u), (&t, &p)| (i + u64::from(t && p), u + u64::from(t || p)));
    iou_from_counts(inter, union)
}

/// `2 |T ∩ P| / (|T| + |P|)` of two masks (1 when both are empty).
pub fn dice(truth: &[bool], pred: &[bool]) -> f64 {
    let (inter, total) = truth
        .iter()
        .zip(pred)
        .fold((0u64, 0u64), |(i, s), (&t, &p)| (i + u64::from(t && p), s + u64::from(t) + u64::from(p)));
    dice_from_counts(inter, total)
}

/// Per-object areas and pairwise intersections of two instance labelings (0 = background).
struct Overlaps {
    truth_area: HashMap<u32, u64>,
    pred_area: HashMap<u32, u64>,
    inter: HashMap<(u32, u32), u64>,
}

impl Overlaps {
    fn new(truth: &[u32], pred: &[u32]) -> Self {
        let mut o = Overlaps { truth_area: HashMap::new(), pred_area: HashMap::new(), inter: HashMap::new() };
        for (&t, &p) in truth.iter().zip(pred) {
            if t != 0 {
                *o.truth_area.entry(t).or_default() += 1;
            }
            if p != 0 {
                *o.pred_area.entry(p).or_default() += 1;
            }
            if t != 0 && p != 0 {
                *o.inter.entry((t, p)).or_default() += 1;
            }
        }
        o
    }

    fn iou(&self, t: u32, p: u32, inter: u64) -> f64 {
        iou_from_counts(inter, self.truth_area[&t] + self.pred_area[&p] - inter)
    }
}

/// SEG of one image, as a sum and a count so that a stack aggregates exactly: every
/// ground-truth object R is matched to the predicted object S with `|R ∩ S| > 0.5 |R|`
/// (at most one exists) and scores `J = |R ∩ S| / |R ∪ S|`, or 0 when none matches; SEG is
/// the mean of J over all ground-truth objects (false positives are not penalised).
/// Source: the cell tracking challenge's `SEG` (CTC-FijiPlugins, `TrackDataCache`).
/// Returns `(sum of J, number of ground-truth objects)`.
pub fn seg_score(truth: &[u32], pred: &[u32]) -> (f64, usize) {
    let o = Overlaps::new(truth, pred);
    // Summed in the order of the object ids: the same bits in every run (hash maps
    // iterate in a different order in every process).
    let mut matched: Vec<(u32, u32, u64)> =
        o.inter.iter().filter(|&(&(t, _), &i)| 2 * i > o.truth_area[&t]).map(|(&(t, p), &i)| (t, p, i)).collect();
    matched.sort_unstable();
    let sum = matched.iter().map(|&(t, p, i)| o.iou(t, p, i)).sum();
    (sum, o.truth_area.len())
}

/// Instance matching counts at each IoU threshold of [`AP_IOU_THRESHOLDS`].
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct InstanceMatch {
    /// Matched pairs at each threshold.
    pub tp: Vec<u64>,
    pub n_truth: u64,
    pub n_pred: u64,
}

impl InstanceMatch {
    /// Adds another image's counts.
    pub fn add(&mut self, o: &InstanceMatch) {
        if self.tp.is_empty() {
            self.tp = vec![0; o.tp.len()];
        }
        self.tp.iter_mut().zip(&o.tp).for_each(|(a, b)| *a += b);
        self.n_truth += o.n_truth;
        self.n_pred += o.n_pred;
    }

    /// AP at threshold index k: `TP / (TP + FP + FN)` (1 when both sides are empty).
    pub fn ap_at(&self, k: usize) -> f64 {
        let tp = self.tp[k];
        let denom = self.n_truth + self.n_pred - tp;
        if denom == 0 { 1.0 } else { tp as f64 / denom as f64 }
    }

    /// Mean AP over the IoU thresholds 0.5:0.95.
    pub fn mean_ap(&self) -> f64 {
        (0..self.tp.len()).map(|k| self.ap_at(k)).sum::<f64>() / self.tp.len().max(1) as f64
    }
}

/// Matches predicted to ground-truth instances one-to-one, greedily by decreasing IoU
/// (for IoU > 0.5 the match is unique, so this equals an optimal assignment), and counts
/// the matches with `IoU >= t` for every threshold.
pub fn instance_match(truth: &[u32], pred: &[u32]) -> InstanceMatch {
    let o = Overlaps::new(truth, pred);
    let mut pairs: Vec<(f64, u32, u32)> = o.inter.iter().map(|(&(t, p), &i)| (o.iou(t, p, i), t, p)).collect();
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let (mut used_t, mut used_p) = (std::collections::HashSet::new(), std::collections::HashSet::new());
    let mut tp = vec![0u64; AP_IOU_THRESHOLDS.len()];
    for (v, t, p) in pairs {
        if v < AP_IOU_THRESHOLDS[0] || used_t.contains(&t) || used_p.contains(&p) {
            continue;
        }
        used_t.insert(t);
        used_p.insert(p);
        for (k, &th) in AP_IOU_THRESHOLDS.iter().enumerate() {
            if v >= th {
                tp[k] += 1;
            }
        }
    }
    InstanceMatch { tp, n_truth: o.truth_area.len() as u64, n_pred: o.pred_area.len() as u64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seg_matches_by_majority_and_scores_jaccard() {
        // Truth object 1 covers 4 px; prediction 5 covers 3 of them plus 1 other: J = 3/5.
        let truth = [1, 1, 1, 1, 0, 2, 2];
        let pred = [5, 5, 5, 0, 5, 0, 7];
        let (sum, n) = seg_score(&truth, &pred);
        assert_eq!(n, 2);
        // Object 2: prediction 7 covers 1 of its 2 px: not > 0.5, contributes 0.
        assert!((sum - 0.6).abs() < 1e-12);
    }

    #[test]
    fn ap_counts_matches_per_threshold() {
        let truth = [1, 1, 1, 1, 2, 2, 0, 0];
        let pred = [3, 3, 3, 3, 0, 4, 4, 9];
        let m = instance_match(&truth, &pred);
        assert_eq!((m.n_truth, m.n_pred), (2, 3));
        // 1<->3 IoU 1; 2<->4 IoU 1/3 (no match).
        assert_eq!(m.tp, vec![1; 10]);
        assert!((m.ap_at(0) - 1.0 / 4.0).abs() < 1e-12);
        assert!((iou(&[true, true, false], &[true, false, true]) - 1.0 / 3.0).abs() < 1e-12);
        assert!((dice(&[true, true, false], &[true, false, true]) - 0.5).abs() < 1e-12);
    }
}
