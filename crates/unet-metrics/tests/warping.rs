//! Warping-error properties (METRICS.md 5.6): warping forgives boundary shifts but counts
//! each topological defect as exactly that defect.

use unet_metrics::{Defect, Plane, simple_point_warp};

/// A plane from rows of '#' (cell, 1) and '.' (membrane, 0).
fn art(rows: &[&str]) -> Plane {
    let h = rows.len();
    let w = rows[0].len();
    Plane::new(w, h, rows.iter().flat_map(|r| r.chars().map(|c| if c == '#' { 1.0 } else { 0.0 })).collect())
}

fn disc(w: usize, h: usize, cx: f64, cy: f64, r: f64) -> Plane {
    Plane::new(
        w,
        h,
        (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f64, (i / w) as f64);
                if (x - cx).powi(2) + (y - cy).powi(2) <= r * r { 1.0 } else { 0.0 }
            })
            .collect(),
    )
}

#[test]
fn one_pixel_shift_of_a_smooth_boundary_costs_nothing() {
    let truth = disc(40, 40, 19.0, 20.0, 10.0);
    let shifted = disc(40, 40, 20.0, 20.0, 10.0);
    let pixel_mismatch = truth.data.iter().zip(&shifted.data).filter(|(a, b)| a != b).count();
    assert!(pixel_mismatch > 0);
    let r = simple_point_warp(&truth, &shifted, 0.5, None);
    assert_eq!(r.mismatches.len(), 0);
    assert_eq!(r.error(), 0.0);
}

#[test]
fn a_merge_is_one_merge() {
    // Truth: two cells separated by a one-pixel membrane; proposal: the membrane has a gap.
    let truth = art(&["..........", ".###.###..", ".###.###..", ".###.###..", ".........."]);
    let prop = art(&["..........", ".###.###..", ".#######..", ".###.###..", ".........."]);
    let r = simple_point_warp(&truth, &prop, 0.5, None);
    assert_eq!(r.defects, vec![Defect::Merge]);
    assert_eq!(r.counts.splits_and_mergers(), 1);
}

#[test]
fn a_split_is_one_split() {
    let truth = art(&["..........", ".#######..", ".#######..", ".#######..", ".........."]);
    let prop = art(&["..........", ".###.###..", ".###.###..", ".###.###..", ".........."]);
    let r = simple_point_warp(&truth, &prop, 0.5, None);
    // Two of the three cut pixels are simple once the cut has begun; the last one is the split.
    assert_eq!(r.defects, vec![Defect::Split]);
    assert_eq!(r.counts.splits, 1);
}

#[test]
fn an_added_hole_and_a_deleted_object() {
    let truth = art(&["........", ".#####..", ".#####..", ".#####..", "........", "......#."]);
    let prop = art(&["........", ".#####..", ".##.##..", ".#####..", "........", "........"]);
    let r = simple_point_warp(&truth, &prop, 0.5, None);
    let mut d = r.defects.clone();
    d.sort_by_key(|d| format!("{d:?}"));
    assert_eq!(d, vec![Defect::HoleAddition, Defect::ObjectDeletion]);
    assert_eq!(r.counts.hole_additions, 1);
    assert_eq!(r.counts.object_deletions, 1);
    assert_eq!(r.counts.splits_and_mergers(), 0);
}

#[test]
fn identical_inputs_and_the_window_option() {
    let truth = disc(30, 30, 15.0, 15.0, 8.0);
    assert_eq!(simple_point_warp(&truth, &truth, 0.5, None).mismatches.len(), 0);
    let prop = art(&["..........", ".###.###..", ".###.###..", ".###.###..", ".........."]);
    let t2 = art(&["..........", ".#######..", ".#######..", ".#######..", ".........."]);
    assert_eq!(simple_point_warp(&t2, &prop, 0.5, Some(3)).defects, vec![Defect::Split]);
}
