//! The warping error of Jain et al. (CVPR 2010) as the ISBI 2012 organisers compute it
//! (METRICS.md 5.6; `WarpingError.simplePointWarp2d` and `classifyMismatches2d`).
//!
//! The binarised truth (`> 0`) is warped towards the binarised proposal (`> threshold`) by
//! flipping only *simple* pixels (foreground 4-adjacency, background 8-adjacency), most
//! confident disagreements (`|p - threshold|` largest) first, ties in x-major raster order,
//! until no mismatch is left or a pass changes nothing. The classic warping error is the
//! fraction of pixels still mismatched; each remaining mismatch is classified as a merge,
//! split, hole addition/deletion or object addition/deletion, and the "minimum splits and
//! mergers" error counts the merge and split pixels.

use std::sync::OnceLock;

use crate::components::{Connectivity, components};
use crate::plane::Plane;

/// Simple-point table over the 512 3x3 patches (bit `i` = pixel `(i % 3, i / 3)`; bit 4 is
/// the centre, ignored): a pixel is simple when the foreground of its punctured
/// 8-neighbourhood has exactly one 4-component touching it by an edge and the background
/// has exactly one 8-component (Bertrand & Malandain 1994, topological numbers T4 and T8).
/// The reference's 3D table test on a one-slice patch agrees with this on all 512 patches.
fn simple_table() -> &'static [bool; 512] {
    static TABLE: OnceLock<[bool; 512]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [false; 512];
        for (bits, slot) in t.iter_mut().enumerate() {
            let px = |i: usize| bits >> i & 1 == 1;
            let fg: Vec<bool> = (0..9).map(|i| i != 4 && px(i)).collect();
            let bg: Vec<bool> = (0..9).map(|i| i != 4 && !px(i)).collect();
            let (fl, _) = components(&fg, 3, 3, Connectivity::Four);
            let mut touching: Vec<u32> = [1, 3, 5, 7].iter().map(|&i| fl[i]).filter(|&l| l != 0).collect();
            touching.sort_unstable();
            touching.dedup();
            let (_, nbg) = components(&bg, 3, 3, Connectivity::Eight);
            *slot = touching.len() == 1 && nbg == 1;
        }
        t
    })
}

/// The kinds of topological defect a remaining mismatch makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Defect {
    Merge,
    Split,
    HoleAddition,
    HoleDeletion,
    ObjectAddition,
    ObjectDeletion,
}

/// Counts of remaining mismatch pixels by defect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct DefectCounts {
    pub merges: u64,
    pub splits: u64,
    pub hole_additions: u64,
    pub hole_deletions: u64,
    pub object_additions: u64,
    pub object_deletions: u64,
}

impl DefectCounts {
    fn count(&mut self, d: Defect) {
        match d {
            Defect::Merge => self.merges += 1,
            Defect::Split => self.splits += 1,
            Defect::HoleAddition => self.hole_additions += 1,
            Defect::HoleDeletion => self.hole_deletions += 1,
            Defect::ObjectAddition => self.object_additions += 1,
            Defect::ObjectDeletion => self.object_deletions += 1,
        }
    }

    /// Adds another slice's counts.
    pub fn add(&mut self, o: &DefectCounts) {
        self.merges += o.merges;
        self.splits += o.splits;
        self.hole_additions += o.hole_additions;
        self.hole_deletions += o.hole_deletions;
        self.object_additions += o.object_additions;
        self.object_deletions += o.object_deletions;
    }

    /// Merge plus split pixels (the "minimum splits and mergers" count).
    pub fn splits_and_mergers(&self) -> u64 {
        self.merges + self.splits
    }
}

/// The warped truth and what is left after warping.
#[derive(Debug, Clone)]
pub struct WarpingResult {
    /// The truth after simple-point warping (row-major, `true` = cell).
    pub warped: Vec<bool>,
    /// Remaining mismatches `(x, y)`, most confident first.
    pub mismatches: Vec<(usize, usize)>,
    /// Classification of each remaining mismatch.
    pub defects: Vec<Defect>,
    /// Counts by defect.
    pub counts: DefectCounts,
}

impl WarpingResult {
    /// Classic warping error: remaining mismatches / pixels.
    pub fn error(&self) -> f64 {
        self.mismatches.len() as f64 / self.warped.len().max(1) as f64
    }
}

/// Warps `truth` (`> 0` = cell) to `proposal` binarised at `threshold` and classifies the
/// remaining mismatches. `radius`: classify splits within a `(2r+1)^2` window (the
/// organisers' option; `None` = whole image, their default).
pub fn simple_point_warp(truth: &Plane, proposal: &Plane, threshold: f64, radius: Option<usize>) -> WarpingResult {
    assert_eq!((truth.width, truth.height), (proposal.width, proposal.height), "plane sizes");
    let (w, h) = (truth.width, truth.height);
    let pw = w + 2;
    let table = simple_table();
    // Padded source (truth) and binarised target; the 1-px frame stays background.
    let mut src = vec![false; pw * (h + 2)];
    let mut tgt = vec![false; pw * (h + 2)];
    for y in 0..h {
        for x in 0..w {
            src[(y + 1) * pw + x + 1] = truth.data[y * w + x] > 0.0;
            tgt[(y + 1) * pw + x + 1] = f64::from(proposal.data[y * w + x]) > threshold;
        }
    }
    let mut last: Vec<(usize, usize)> = Vec::new();
    let mut diff_before: Option<usize> = None;
    loop {
        let diff = src.iter().zip(&tgt).filter(|(a, b)| a != b).count();
        if diff == 0 {
            last.clear();
            break;
        }
        if diff_before == Some(diff) {
            break;
        }
        diff_before = Some(diff);
        // Mismatches in x-major order, then a stable sort by confidence, descending.
        let mut list: Vec<(usize, usize, f32)> = Vec::with_capacity(diff);
        for x in 1..=w {
            for y in 1..=h {
                let i = y * pw + x;
                if src[i] != tgt[i] {
                    let z = (f64::from(proposal.data[(y - 1) * w + x - 1]) - threshold).abs() as f32;
                    list.push((x, y, z));
                }
            }
        }
        list.sort_by(|a, b| b.2.total_cmp(&a.2));
        for &(x, y, _) in &list {
            let mut bits = 0usize;
            for (k, (dx, dy)) in
                [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (0, 2), (1, 2), (2, 2)].iter().enumerate()
            {
                if src[(y + dy - 1) * pw + x + dx - 1] {
                    bits |= 1 << k;
                }
            }
            if table[bits] {
                let i = y * pw + x;
                src[i] = !src[i];
            }
        }
        last = list.into_iter().map(|(x, y, _)| (x - 1, y - 1)).collect();
    }
    let warped: Vec<bool> =
        (0..h).flat_map(|y| (0..w).map(move |x| (y, x))).map(|(y, x)| src[(y + 1) * pw + x + 1]).collect();
    let defects = classify(&warped, w, h, &last, radius);
    let mut counts = DefectCounts::default();
    defects.iter().for_each(|&d| counts.count(d));
    WarpingResult { warped, mismatches: last, defects, counts }
}

/// Distinct component ids among the in-bounds 8-neighbours of `(x, y)`.
fn neighbour_ids(labels: &[u32], w: usize, h: usize, x: usize, y: usize) -> Vec<u32> {
    let mut ids = Vec::with_capacity(8);
    for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
        for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
            if (nx, ny) != (x, y) && !ids.contains(&labels[ny * w + nx]) {
                ids.push(labels[ny * w + nx]);
            }
        }
    }
    ids
}

/// The reference's classification of remaining mismatches by the 4-connected components
/// of the warped truth around each pixel.
fn classify(warped: &[bool], w: usize, h: usize, mismatches: &[(usize, usize)], radius: Option<usize>) -> Vec<Defect> {
    let (comp, _) = components(warped, w, h, Connectivity::Four);
    let radius = radius.filter(|&r| r >= 1 && r <= w && r <= h);
    mismatches
        .iter()
        .map(|&(x, y)| {
            let ids = neighbour_ids(&comp, w, h, x, y);
            let inside = comp[y * w + x] != 0;
            match ids.len() {
                1 if ids[0] == 0 => {
                    if inside {
                        Defect::ObjectDeletion
                    } else {
                        Defect::ObjectAddition
                    }
                }
                1 => {
                    if inside {
                        Defect::HoleAddition
                    } else {
                        Defect::HoleDeletion
                    }
                }
                2 if !inside => Defect::HoleAddition,
                2 => {
                    if ids_after_removal(warped, w, h, x, y, radius) > 2 {
                        Defect::Split
                    } else {
                        Defect::HoleDeletion
                    }
                }
                _ => {
                    if inside {
                        Defect::Split
                    } else {
                        Defect::Merge
                    }
                }
            }
        })
        .collect()
}

/// After turning the cell pixel `(x, y)` to background, the number of distinct 4-component
/// ids (background 0 included) among its 8-neighbours, within the whole image or within a
/// `(2r+1)^2` window centred on it (pixels outside the image count as background).
fn ids_after_removal(warped: &[bool], w: usize, h: usize, x: usize, y: usize, radius: Option<usize>) -> usize {
    let (x0, y0, x1, y1) = match radius {
        Some(r) => (x as isize - r as isize, y as isize - r as isize, (x + r) as isize, (y + r) as isize),
        None => (0, 0, w as isize - 1, h as isize - 1),
    };
    let cell = |px: isize, py: isize| {
        px >= x0
            && py >= y0
            && px <= x1
            && py <= y1
            && px >= 0
            && py >= 0
            && px < w as isize
            && py < h as isize
            && (px, py) != (x as isize, y as isize)
            && warped[py as usize * w + px as usize]
    };
    let mut ids: Vec<usize> = Vec::new();
    let mut seen: std::collections::HashMap<(isize, isize), usize> = std::collections::HashMap::new();
    let mut next = 1;
    // Whole image: only in-image neighbours; window: all 8 (outside the image is background).
    let counted = |nx: isize, ny: isize| radius.is_some() || (nx >= 0 && ny >= 0 && nx < w as isize && ny < h as isize);
    for ny in y as isize - 1..=y as isize + 1 {
        for nx in x as isize - 1..=x as isize + 1 {
            if (nx, ny) == (x as isize, y as isize) || !counted(nx, ny) {
                continue;
            }
            let id = if !cell(nx, ny) {
                0
            } else if let Some(&id) = seen.get(&(nx, ny)) {
                id
            } else {
                // Flood the component of this neighbour within the region.
                let id = next;
                next += 1;
                let mut stack = vec![(nx, ny)];
                seen.insert((nx, ny), id);
                while let Some((cx, cy)) = stack.pop() {
                    for (dx, dy) in [(-1, 0), (0, -1), (1, 0), (0, 1)] {
                        let q = (cx + dx, cy + dy);
                        if cell(q.0, q.1) && !seen.contains_key(&q) {
                            seen.insert(q, id);
                            stack.push(q);
                        }
                    }
                }
                id
            };
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids.len()
}

/// Classic warping error of one slice at one threshold.
pub fn warping_error(truth: &Plane, proposal: &Plane, threshold: f64) -> f64 {
    simple_point_warp(truth, proposal, threshold, None).error()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_point_examples() {
        let t = simple_table();
        let bits = |pix: [u8; 9]| pix.iter().enumerate().fold(0usize, |b, (i, &v)| b | (usize::from(v) << i));
        // End of a line: simple.
        assert!(t[bits([0, 0, 0, 1, 1, 0, 0, 0, 0])]);
        // Middle of a line: removing it splits the line.
        assert!(!t[bits([0, 0, 0, 1, 1, 1, 0, 0, 0])]);
        // Isolated pixel: removing it deletes an object.
        assert!(!t[bits([0, 0, 0, 0, 1, 0, 0, 0, 0])]);
        // Interior pixel: removing it makes a hole.
        assert!(!t[bits([1, 1, 1, 1, 1, 1, 1, 1, 1])]);
        // Corner of a filled square: simple.
        assert!(t[bits([0, 0, 0, 0, 1, 1, 0, 1, 1])]);
        // Diagonal-only neighbour: 4-adjacency sees no touching component, so not simple.
        assert!(!t[bits([1, 0, 0, 0, 1, 0, 0, 0, 0])]);
    }
}
