//! Scoring a stack of slices over binarisation thresholds, as the ISBI 2012 protocol does
//! (METRICS.md 5.1): every metric is computed at every threshold for the whole stack, the
//! best threshold is chosen per metric (maximum of scores, minimum of errors, one threshold
//! for the stack), and the full table is kept.

use serde::Serialize;

use crate::components::{Connectivity, label_components};
use crate::overlap::{InstanceMatch, dice_from_counts, instance_match, iou_from_counts, seg_score};
use crate::pixel::PixelStats;
use crate::plane::{Plane, binarize};
use crate::rand_index::RandStats;
use crate::variation_of_information::v_info;
use crate::warping::{DefectCounts, simple_point_warp};
use crate::watershed::thin_borders;
use unet_grid::Grid;

/// The thresholds `min, min + step, ...` accumulated in double precision exactly as the
/// organisers' loops do (`for (th = min; th <= max; th += step)`): 0.0..=1.0 by 0.1 gives 11
/// values, the last 0.9999999999999999.
/// Unchecked: at most 100,000 values; see [`threshold_range`] for the checked form.
pub fn isbi_thresholds(min: f64, max: f64, step: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut th = min;
    while th <= max && out.len() < 100_000 {
        out.push(th);
        th += step;
    }
    out
}

/// The most thresholds one evaluation takes (0-1 by 0.001, with room for the last value).
pub const MAX_THRESHOLDS: usize = 1001;

/// A threshold list or range that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThresholdError {
    #[error("threshold '{0}' is not a number; give numbers such as 0.3,0.5 or a range such as 0-1:0.1")]
    NotANumber(String),
    #[error("threshold {0} is not a finite number; give values from 0 to 1")]
    NotFinite(f64),
    #[error("threshold {0} lies outside [0, 1]; thresholds apply to probabilities, give values from 0 to 1")]
    OutOfRange(f64),
    #[error("threshold step {0} must be a finite number above 0, such as 0.1")]
    BadStep(f64),
    #[error("threshold range {lo}-{hi} is empty; give the low end first, such as 0-1:0.1")]
    EmptyRange { lo: f64, hi: f64 },
    #[error("that gives {count} thresholds, more than the {max} allowed; give a larger step or fewer values")]
    TooMany { count: String, max: usize },
    #[error("no threshold given; give a list such as 0.3,0.5 or a range such as 0-1:0.1")]
    Empty,
}

fn number(text: &str) -> Result<f64, ThresholdError> {
    text.trim().parse::<f64>().map_err(|_| ThresholdError::NotANumber(text.trim().to_string()))
}

fn probability(t: f64) -> Result<f64, ThresholdError> {
    if !t.is_finite() {
        return Err(ThresholdError::NotFinite(t));
    }
    if !(0.0..=1.0).contains(&t) {
        return Err(ThresholdError::OutOfRange(t));
    }
    Ok(t)
}

/// A count for a message: whole numbers as such, astronomic ones as `1e300`.
fn count_text(n: f64) -> String {
    if n < 1e15 { format!("{}", n.floor()) } else { format!("about {n:.0e}") }
}

/// Checks thresholds: each a finite probability in `[0, 1]`, at least one, at most
/// [`MAX_THRESHOLDS`].
pub fn check_thresholds(thresholds: &[f64]) -> Result<(), ThresholdError> {
    if thresholds.is_empty() {
        return Err(ThresholdError::Empty);
    }
    if thresholds.len() > MAX_THRESHOLDS {
        return Err(ThresholdError::TooMany { count: thresholds.len().to_string(), max: MAX_THRESHOLDS });
    }
    thresholds.iter().try_for_each(|&t| probability(t).map(|_| ()))
}

/// [`isbi_thresholds`] for a checked range: `lo` and `hi` probabilities with `lo <= hi`,
/// `step` finite and above 0, and no more than [`MAX_THRESHOLDS`] values (counted before
/// any is made).
pub fn threshold_range(lo: f64, hi: f64, step: f64) -> Result<Vec<f64>, ThresholdError> {
    let (lo, hi) = (probability(lo)?, probability(hi)?);
    if !(step.is_finite() && step > 0.0) {
        return Err(ThresholdError::BadStep(step));
    }
    if lo > hi {
        return Err(ThresholdError::EmptyRange { lo, hi });
    }
    let approx = (hi - lo) / step + 1.0;
    if approx > MAX_THRESHOLDS as f64 + 1.0 {
        return Err(ThresholdError::TooMany { count: count_text(approx), max: MAX_THRESHOLDS });
    }
    let out = isbi_thresholds(lo, hi, step);
    check_thresholds(&out)?;
    Ok(out)
}

/// Parses thresholds: a list `0.3,0.5` or a range `LO-HI:STEP` (`0-1:0.1` gives the ISBI
/// protocol's 11 values), checked as [`check_thresholds`] and [`threshold_range`] do.
pub fn parse_thresholds(spec: &str) -> Result<Vec<f64>, ThresholdError> {
    if let Some((range, step)) = spec.split_once(':') {
        let range = range.trim();
        // The dash after the first character: a leading minus belongs to LO.
        let dash = range.char_indices().skip(1).find(|&(_, c)| c == '-').map(|(i, _)| i);
        let Some(dash) = dash else { return Err(ThresholdError::NotANumber(spec.trim().to_string())) };
        return threshold_range(number(&range[..dash])?, number(&range[dash + 1..])?, number(step)?);
    }
    if spec.trim().is_empty() {
        return Err(ThresholdError::Empty);
    }
    let out = spec.split(',').map(|t| number(t).and_then(probability)).collect::<Result<Vec<f64>, _>>()?;
    check_thresholds(&out)?;
    Ok(out)
}

/// What to compute.
#[derive(Debug, Clone)]
pub struct IsbiOptions {
    /// Binarisation thresholds of the proposal.
    pub thresholds: Vec<f64>,
    /// Compute the warping errors (the slowest metric).
    pub warping: bool,
    /// Window radius for split classification (`None`: whole image, the organisers' default).
    pub warping_radius: Option<usize>,
}

impl Default for IsbiOptions {
    fn default() -> Self {
        IsbiOptions { thresholds: isbi_thresholds(0.0, 1.0, 0.1), warping: true, warping_radius: None }
    }
}

/// One slice to score: the truth (values in [0, 1], `> 0` = cell) with optional instance
/// ids, and the proposal (probability of cell, or binary) with optional instance ids.
/// Instance ids, when given, are the segments of the Rand, V_Info, SEG and AP scores
/// (instead of the 4-connected components of the binarised images), so touching cells
/// of an instance-labelled truth stay apart.
#[derive(Debug, Clone)]
pub struct SliceInput {
    pub truth: Plane,
    pub truth_instances: Option<Vec<u32>>,
    pub proposal: Plane,
    pub proposal_instances: Option<Vec<u32>>,
}

/// Raw counts of one slice at one threshold, so that stacks aggregate exactly.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SliceMetrics {
    pub pixels: u64,
    pub pixel: PixelStats,
    pub rand: RandStats,
    pub v_rand_thinned: f64,
    pub v_info: f64,
    pub v_info_thinned: f64,
    pub warping_mismatches: u64,
    pub defects: DefectCounts,
    pub seg_sum: f64,
    pub seg_count: usize,
    pub instances: InstanceMatch,
}

/// Scores of a slice or a stack.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct MetricRow {
    /// Fraction of mismatched pixels.
    pub pixel_error: f64,
    /// ISBI pixel error: 1 - F-score of pixel similarity.
    pub pixel_fscore_error: f64,
    /// Foreground-restricted Rand error, unthinned: 1 - V_Rand (the paper's "Rand error").
    pub rand_error: f64,
    /// V_Rand after border thinning (the challenge's final ranking score).
    pub v_rand: f64,
    /// V_Info after border thinning.
    pub v_info: f64,
    /// V_Info without thinning.
    pub v_info_unthinned: f64,
    /// Classic warping error: mismatches left after simple-point warping / pixels.
    pub warping_error: f64,
    /// Minimum splits and mergers warping error: merge + split pixels / pixels.
    pub splits_mergers_error: f64,
    /// Remaining mismatches by defect type.
    pub defects: DefectCounts,
    pub iou: f64,
    pub dice: f64,
    /// Cell tracking challenge SEG.
    pub seg: f64,
    /// Mean average precision over IoU 0.5:0.95.
    pub ap: f64,
}

fn instances_of(mask: &Grid<bool>) -> Vec<u32> {
    label_components(mask, Connectivity::Four).0.data
}

/// All counts of one slice at one threshold.
pub fn evaluate_slice(s: &SliceInput, threshold: f64, opts: &IsbiOptions) -> SliceMetrics {
    let (w, h) = (s.truth.width, s.truth.height);
    let truth_bin = binarize(&s.truth, threshold);
    let prop_bin = binarize(&s.proposal, threshold);
    // Segments: the given instance ids, else the 4-connected components (ISBI).
    let truth_inst = s.truth_instances.clone().unwrap_or_else(|| instances_of(&truth_bin));
    let prop_cc;
    let pred_inst = match &s.proposal_instances {
        Some(ids) => ids,
        None => {
            prop_cc = instances_of(&prop_bin);
            &prop_cc
        }
    };
    // Border thinning applies to binary proposals; instance labels are used as they are.
    let thinned = if s.proposal_instances.is_some() { pred_inst.clone() } else { thin_borders(&prop_bin).data };
    let rand = RandStats::foreground_restricted(&truth_inst, pred_inst);
    let v_rand_thinned = RandStats::foreground_restricted(&truth_inst, &thinned).fscore();
    let (seg_sum, seg_count) = seg_score(&truth_inst, pred_inst);
    let mut m = SliceMetrics {
        pixels: (w * h) as u64,
        pixel: PixelStats::new(&binarize(&s.truth, 0.0).data, &prop_bin.data),
        rand,
        v_rand_thinned,
        v_info: v_info(&truth_inst, pred_inst),
        v_info_thinned: v_info(&truth_inst, &thinned),
        seg_sum,
        seg_count,
        instances: instance_match(&truth_inst, pred_inst),
        ..Default::default()
    };
    if opts.warping {
        let wr = simple_point_warp(&s.truth, &s.proposal, threshold, opts.warping_radius);
        m.warping_mismatches = wr.mismatches.len() as u64;
        m.defects = wr.counts;
    }
    m
}

/// Aggregates slices into stack scores the way the organisers do: pixel error, V_Info and
/// the warping errors as means over slices, V_Rand (thinned) macro-averaged, the Rand
/// error and pixel F-score micro-averaged, SEG over all objects.
fn aggregate(slices: &[&SliceMetrics]) -> MetricRow {
    let k = slices.len().max(1) as f64;
    let mut pixel = PixelStats::default();
    let mut rand = RandStats::default();
    let mut defects = DefectCounts::default();
    let mut inst = InstanceMatch::default();
    let (mut seg_sum, mut seg_n, mut pixels) = (0.0, 0usize, 0u64);
    for s in slices {
        pixel.add(&s.pixel);
        rand.add(&s.rand);
        defects.add(&s.defects);
        inst.add(&s.instances);
        seg_sum += s.seg_sum;
        seg_n += s.seg_count;
        pixels += s.pixels;
    }
    let mean = |f: &dyn Fn(&SliceMetrics) -> f64| slices.iter().map(|s| f(s)).sum::<f64>() / k;
    MetricRow {
        pixel_error: mean(&|s| s.pixel.error()),
        pixel_fscore_error: 1.0 - pixel.fscore(),
        rand_error: 1.0 - rand.fscore(),
        v_rand: mean(&|s| s.v_rand_thinned),
        v_info: mean(&|s| s.v_info_thinned),
        v_info_unthinned: mean(&|s| s.v_info),
        warping_error: mean(&|s| s.warping_mismatches as f64 / s.pixels.max(1) as f64),
        splits_mergers_error: defects.splits_and_mergers() as f64 / pixels.max(1) as f64,
        defects,
        iou: iou_from_counts(pixel.tp, pixel.tp + pixel.fp + pixel.fn_),
        dice: dice_from_counts(pixel.tp, 2 * pixel.tp + pixel.fp + pixel.fn_),
        seg: if seg_n == 0 { 0.0 } else { seg_sum / seg_n as f64 },
        ap: if inst.tp.is_empty() { 0.0 } else { inst.mean_ap() },
    }
}

/// The stack's scores at one threshold.
#[derive(Debug, Clone, Serialize)]
pub struct ThresholdRow {
    pub threshold: f64,
    pub metrics: MetricRow,
}

/// Scores of a stack: the table over thresholds, the best stack scores (each at its own
/// best threshold, recorded in `best_thresholds`), and every slice's scores at those
/// thresholds.
#[derive(Debug, Clone, Serialize)]
pub struct StackEvaluation {
    pub table: Vec<ThresholdRow>,
    pub best: MetricRow,
    pub best_thresholds: std::collections::BTreeMap<&'static str, f64>,
    pub slices: Vec<MetricRow>,
}

/// Which direction is better, per metric, and how to read and write it in a row.
type Field = (&'static str, bool, fn(&MetricRow) -> f64, fn(&mut MetricRow, &MetricRow));

const FIELDS: [Field; 12] = [
    ("pixel_error", false, |r| r.pixel_error, |d, s| d.pixel_error = s.pixel_error),
    ("pixel_fscore_error", false, |r| r.pixel_fscore_error, |d, s| d.pixel_fscore_error = s.pixel_fscore_error),
    ("rand_error", false, |r| r.rand_error, |d, s| d.rand_error = s.rand_error),
    ("v_rand", true, |r| r.v_rand, |d, s| d.v_rand = s.v_rand),
    ("v_info", true, |r| r.v_info, |d, s| d.v_info = s.v_info),
    ("v_info_unthinned", true, |r| r.v_info_unthinned, |d, s| d.v_info_unthinned = s.v_info_unthinned),
    ("warping_error", false, |r| r.warping_error, |d, s| d.warping_error = s.warping_error),
    (
        "splits_mergers_error",
        false,
        |r| r.splits_mergers_error,
        |d, s| {
            d.splits_mergers_error = s.splits_mergers_error;
            d.defects = s.defects;
        },
    ),
    ("iou", true, |r| r.iou, |d, s| d.iou = s.iou),
    ("dice", true, |r| r.dice, |d, s| d.dice = s.dice),
    ("seg", true, |r| r.seg, |d, s| d.seg = s.seg),
    ("ap", true, |r| r.ap, |d, s| d.ap = s.ap),
];

/// The names of the scores in a [`MetricRow`], in table order.
pub fn metric_names() -> impl Iterator<Item = &'static str> {
    FIELDS.iter().map(|f| f.0)
}

impl MetricRow {
    /// The score called `name` (see [`metric_names`]).
    pub fn value(&self, name: &str) -> Option<f64> {
        FIELDS.iter().find(|f| f.0 == name).map(|f| (f.2)(self))
    }
}

/// Scores a stack over `opts.thresholds` (slices and thresholds in parallel).
pub fn evaluate_stack(slices: &[SliceInput], opts: &IsbiOptions) -> StackEvaluation {
    evaluate_stack_with_progress(slices, opts, &|| {})
}

/// As [`evaluate_stack`], calling `tick` after each (slice, threshold) evaluation.
pub fn evaluate_stack_with_progress(
    slices: &[SliceInput],
    opts: &IsbiOptions,
    tick: &(dyn Fn() + Sync),
) -> StackEvaluation {
    use rayon::prelude::*;
    let counts: Vec<Vec<SliceMetrics>> = opts
        .thresholds
        .par_iter()
        .map(|&th| {
            slices
                .par_iter()
                .map(|s| {
                    let m = evaluate_slice(s, th, opts);
                    tick();
                    m
                })
                .collect()
        })
        .collect();
    let table: Vec<ThresholdRow> = opts
        .thresholds
        .iter()
        .zip(&counts)
        .map(|(&threshold, c)| ThresholdRow { threshold, metrics: aggregate(&c.iter().collect::<Vec<_>>()) })
        .collect();
    let mut best = MetricRow::default();
    let mut best_thresholds = std::collections::BTreeMap::new();
    let mut slice_rows = vec![MetricRow::default(); slices.len()];
    for (name, higher, get, set) in FIELDS {
        // First best wins on ties, as the organisers' strict comparisons do. The warping
        // errors take their minimum over thresholds up to 0.9, as the organisers' warping
        // script does: a threshold near 1 empties the proposal, which warping forgives.
        let warping = name.contains("warping") || name.contains("splits");
        let usable = |t: f64| !warping || t <= 0.9 + 1e-9 || table.len() == 1;
        let mut bi = table.iter().position(|r| usable(r.threshold)).unwrap_or(0);
        for (i, row) in table.iter().enumerate().filter(|(_, r)| usable(r.threshold)) {
            let (v, b) = (get(&row.metrics), get(&table[bi].metrics));
            if (higher && v > b) || (!higher && v < b) {
                bi = i;
            }
        }
        set(&mut best, &table[bi].metrics);
        best_thresholds.insert(name, table[bi].threshold);
        for (si, row) in slice_rows.iter_mut().enumerate() {
            set(row, &aggregate(&[&counts[bi][si]]));
        }
    }
    StackEvaluation { table, best, best_thresholds, slices: slice_rows }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_as_lists_and_ranges() {
        assert_eq!(parse_thresholds("0-1:0.1").unwrap(), isbi_thresholds(0.0, 1.0, 0.1));
        assert_eq!(parse_thresholds(" 0.3, 0.5 ").unwrap(), vec![0.3, 0.5]);
        assert_eq!(parse_thresholds("0.5-0.5:0.1").unwrap(), vec![0.5]);
        // 0.001 accumulated in double precision passes 1 after 1000 steps (as the protocol's loop).
        assert_eq!(parse_thresholds("0-1:0.001").unwrap().len(), 1000);
    }

    #[test]
    fn unusable_thresholds_are_typed_errors() {
        use ThresholdError as E;
        let e = |s: &str| parse_thresholds(s).unwrap_err();
        assert!(matches!(e("0-1:1e-300"), E::TooMany { max: MAX_THRESHOLDS, .. }));
        assert!(e("0-1:1e-300").to_string().contains("1e300"), "{}", e("0-1:1e-300"));
        assert!(matches!(e("0-1:0.0005"), E::TooMany { .. }));
        assert!(matches!(e("nan"), E::NotFinite(t) if t.is_nan()));
        assert!(matches!(e("0.2,inf"), E::NotFinite(_)));
        assert!(matches!(e("0-nan:0.1"), E::NotFinite(_)));
        assert!(matches!(e("1.5"), E::OutOfRange(_)));
        assert!(matches!(e("-0.5-1:0.1"), E::OutOfRange(_)));
        assert!(matches!(e("0-1:0"), E::BadStep(_)));
        assert!(matches!(e("0-1:-0.1"), E::BadStep(_)));
        assert!(matches!(e("0-1:nan"), E::BadStep(_)));
        assert!(matches!(e("1-0:0.1"), E::EmptyRange { .. }));
        assert!(matches!(e("abc"), E::NotANumber(_)));
        assert!(matches!(e("0.5:0.1"), E::NotANumber(_)));
        assert!(matches!(e(""), E::Empty));
        let many: Vec<f64> = (0..=MAX_THRESHOLDS).map(|i| i as f64 / (MAX_THRESHOLDS as f64)).collect();
        assert!(matches!(check_thresholds(&many), Err(E::TooMany { .. })));
        for err in [e("0-1:1e-300"), e("nan"), e("1.5"), e("0-1:0")] {
            assert!(!err.to_string().contains('\n') && !err.to_string().contains("--"), "{err}");
        }
    }
}
