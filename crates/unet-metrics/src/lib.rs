//! Segmentation metrics with the field's exact definitions.
//!
//! The ISBI 2012 metrics follow the organisers' reference code (Fiji Trainable Weka
//! Segmentation, `trainableSegmentation/metrics/`) as summarised in
//! `../shared/docs/METRICS.md`; the cell tracking challenge's SEG follows its reference
//! code. Definitions only were taken (the reference code is GPL); this is our own code.
//!
//! Conventions: a [`Plane`] is one 2D slice of `f32` values in `[0, 1]` (1 = cell
//! interior, as ISBI: white cells, black membranes); binarisation is `value > threshold`;
//! segments are the 4-connected components of the foreground.

#![forbid(unsafe_code)]

mod components;
mod contingency;
mod overlap;
mod pixel;
mod plane;
mod rand_index;
mod report;
mod stack;
mod variation_of_information;
mod warping;
mod watershed;

pub use components::{Connectivity, label_components};
pub use contingency::Contingency;
pub use overlap::{
    AP_IOU_THRESHOLDS, InstanceMatch, dice, dice_from_counts, instance_match, iou, iou_from_counts, seg_score,
};
pub use pixel::PixelStats;
pub use plane::{Plane, binarize, is_binary};
pub use rand_index::RandStats;
pub use report::{needs_warping, report};
pub use stack::{
    IsbiOptions, MAX_THRESHOLDS, MetricRow, SliceInput, SliceMetrics, StackEvaluation, ThresholdError, ThresholdRow,
    check_thresholds, evaluate_slice, evaluate_stack, evaluate_stack_with_progress, isbi_thresholds, metric_names,
    parse_thresholds, threshold_range,
};
pub use unet_grid::Grid;
pub use variation_of_information::v_info;
pub use warping::{Defect, DefectCounts, WarpingResult, simple_point_warp, warping_error};
pub use watershed::{thin_borders, watershed};
