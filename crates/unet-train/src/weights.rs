//! The paper's weight map (eq. 2) and the separation borders between touching cells.
//!
//! `w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2))` on background pixels, and
//! `w_c(x)` on cell pixels, where `d1`, `d2` are the distances from `x` to the border of the
//! nearest and the second-nearest cell. A pixel's distance to a cell's border is its exact
//! Euclidean distance to the cell's nearest pixel minus half a pixel (the border is the
//! edge between the cell's pixel and its neighbour), so a one-pixel gap between two cells
//! has `d1 = d2 = 0.5`. `w_c` balances the classes: `w_c = f_max / f_c` with `f_c` the
//! frequency of class `c`, counted over all label images of the training set after the
//! separation borders are drawn, so the most frequent class has weight 1.

use unet_infer::euclidean_distance;
use unet_io::{Grid, Label};
use unet_metrics::{Connectivity, label_components};

/// Parameters of eq. 2.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WeightParams {
    pub w0: f64,
    pub sigma: f64,
}

impl Default for WeightParams {
    fn default() -> Self {
        WeightParams { w0: 10.0, sigma: 5.0 }
    }
}

impl WeightParams {
    /// Distance beyond which the border term stays below `1e-6 * w0`: cells farther than
    /// this from a pixel cannot change its weight, so distances are computed only within
    /// it (one small distance transform per cell instead of one per cell over the image).
    pub fn reach(&self) -> f64 {
        self.sigma * (2.0 * (1e6f64).ln()).sqrt()
    }
}

/// Instances of a label image: instance ids as they are (`instance = true`), or the
/// 4-connected components of the non-zero pixels of a binary mask.
pub fn instances(label: &Label, instance: bool) -> Label {
    if instance {
        return label.clone();
    }
    label_components(&label.map(|&v| v != 0), Connectivity::Four).0
}

/// Separation borders: a cell pixel with an 8-neighbour of another cell with a smaller id
/// becomes background, so touching cells are split by a one-pixel background line.
/// Returns the instance image with the borders set to 0.
pub fn separate_touching(label: &Label) -> Label {
    let (w, h, inst) = (label.width, label.height, &label.data);
    let mut out = inst.to_vec();
    for y in 0..h {
        for x in 0..w {
            let l = inst[y * w + x];
            if l == 0 {
                continue;
            }
            'n: for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    let m = inst[ny * w + nx];
                    if m != 0 && m < l {
                        out[y * w + x] = 0;
                        break 'n;
                    }
                }
            }
        }
    }
    label.with_plane(out)
}

/// The border term `w0 * exp(-(d1 + d2)^2 / (2 sigma^2))` for every pixel (0 on cells and
/// where fewer than two cells are within reach).
pub fn border_term(label: &Label, p: &WeightParams) -> Grid<f32> {
    let (w, h, inst) = (label.width, label.height, &label.data);
    // Bounding boxes of the cells, keyed by id: memory follows the number of cells, not
    // the largest id (ids up to 2^32 - 1 are valid).
    let mut boxes: std::collections::BTreeMap<u32, (usize, usize, usize, usize)> = Default::default();
    for (i, &l) in inst.iter().enumerate() {
        if l != 0 {
            let b = boxes.entry(l).or_insert((usize::MAX, usize::MAX, 0, 0));
            let (x, y) = (i % w, i / w);
            *b = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y));
        }
    }
    let reach = p.reach().ceil() as usize + 1;
    let mut d1 = vec![f64::INFINITY; w * h];
    let mut d2 = vec![f64::INFINITY; w * h];
    for (&l, &(x0, y0, x1, y1)) in &boxes {
        let (wx0, wy0) = (x0.saturating_sub(reach), y0.saturating_sub(reach));
        let (wx1, wy1) = ((x1 + reach).min(w - 1), (y1 + reach).min(h - 1));
        let (ww, wh) = (wx1 - wx0 + 1, wy1 - wy0 + 1);
        let sites = Grid::new(ww, wh, (0..ww * wh).map(|i| inst[(wy0 + i / ww) * w + wx0 + i % ww] == l).collect());
        let dist = euclidean_distance(&sites);
        for (i, &d) in dist.data.iter().enumerate() {
            let g = (wy0 + i / ww) * w + wx0 + i % ww;
            if d == 0.0 {
                continue;
            }
            let d = d - 0.5;
            if d < d1[g] {
                d2[g] = d1[g];
                d1[g] = d;
            } else if d < d2[g] {
                d2[g] = d;
            }
        }
    }
    let two_s2 = 2.0 * p.sigma * p.sigma;
    let term = (0..w * h)
        .map(|i| {
            if inst[i] != 0 || !d2[i].is_finite() {
                0.0
            } else {
                (p.w0 * (-(d1[i] + d2[i]).powi(2) / two_s2).exp()) as f32
            }
        })
        .collect();
    label.with_plane(term)
}

/// Class frequencies accumulated over label images (class = 1 for cell pixels, 0 for
/// background, or the class index for semantic labels).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassCounts(pub Vec<u64>);

impl ClassCounts {
    /// Adds the pixels of a class-index image.
    pub fn add(&mut self, classes: &[u32]) {
        for &c in classes {
            let c = c as usize;
            if self.0.len() <= c {
                self.0.resize(c + 1, 0);
            }
            self.0[c] += 1;
        }
    }

    /// `w_c = f_max / f_c` (0 for classes never seen).
    pub fn balance(&self) -> Vec<f32> {
        let max = self.0.iter().copied().max().unwrap_or(1).max(1) as f64;
        self.0.iter().map(|&n| if n == 0 { 0.0 } else { (max / n as f64) as f32 }).collect()
    }
}

/// The full weight map of one label image: `class_weight[class(x)] + border_term(x)`,
/// where `class(x)` is 1 on (separated) cells and 0 elsewhere.
pub fn weight_map(separated: &Label, class_weight: &[f32], p: &WeightParams) -> Grid<f32> {
    let border = border_term(separated, p);
    separated.with_plane(
        separated.data.iter().zip(border.data).map(|(&l, b)| class_weight[usize::from(l != 0)] + b).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discs(w: usize, h: usize, centers: &[(f64, f64)], r: f64) -> Label {
        let data = (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f64, (i / w) as f64);
                centers
                    .iter()
                    .position(|&(cx, cy)| (x - cx).powi(2) + (y - cy).powi(2) <= r * r)
                    .map_or(0, |k| k as u32 + 1)
            })
            .collect();
        Label::new(w, h, data)
    }

    #[test]
    fn touching_discs_get_a_separating_line_with_weight_wc_plus_w0() {
        let (w, h) = (80, 50);
        // Radius 10 discs whose centres are 20 px apart touch along x = 30.
        let inst = discs(w, h, &[(20.0, 25.0), (40.0, 25.0)], 10.0);
        let sep = separate_touching(&inst);
        let (inst, sep_grid, sep) = (&inst.data, &sep, &sep.data);
        // The border is 1-2 px wide and splits the discs into two 4-connected components.
        let removed: Vec<usize> = (0..w * h).filter(|&i| inst[i] != 0 && sep[i] == 0).collect();
        assert!(!removed.is_empty());
        let row: Vec<usize> = removed.iter().filter(|&&i| i / w == 25).map(|&i| i % w).collect();
        assert!((1..=2).contains(&row.len()), "border width on the centre row: {row:?}");
        assert_eq!(label_components(&sep_grid.map(|&l| l != 0), Connectivity::Four).1, 2);
        let mut counts = ClassCounts::default();
        counts.add(&sep.iter().map(|&l| u32::from(l != 0)).collect::<Vec<_>>());
        let wc = counts.balance();
        assert_eq!(wc[0], 1.0, "background is the most frequent class");
        let p = WeightParams::default();
        let wm = weight_map(sep_grid, &wc, &p).data;
        let gap = 25 * w + row[0];
        let expected = wc[0] as f64 + p.w0;
        assert!(((wm[gap] as f64) - expected).abs() / expected < 0.05, "gap weight {} vs {expected}", wm[gap]);
        // Far from any cell: w_c.
        assert!((wm[2 * w + 78] - wc[0]).abs() < 1e-3);
        // On a cell: its class weight.
        assert_eq!(wm[25 * w + 20], wc[1]);
    }

    #[test]
    fn huge_ids_cost_memory_by_cell_count_not_by_id() {
        // Two touching-distance cells with the largest ids a 32-bit label can hold: a
        // table indexed by id would need 2^32 entries (tens of GB).
        let mut inst = discs(60, 30, &[(15.0, 15.0), (40.0, 15.0)], 8.0);
        for v in &mut inst.data {
            *v = match *v {
                1 => u32::MAX,
                2 => u32::MAX - 7,
                _ => 0,
            };
        }
        let b = border_term(&inst, &WeightParams::default()).data;
        // The gap between them (x = 24..31 on row 15) gets the border term.
        assert!(b[15 * 60 + 27] > 1.0, "{}", b[15 * 60 + 27]);
    }

    #[test]
    fn single_cell_has_no_border_term() {
        let (w, h) = (60, 60);
        let inst = discs(w, h, &[(30.0, 30.0)], 8.0);
        let b = border_term(&inst, &WeightParams::default());
        assert!(b.data.iter().all(|&v| v == 0.0));
        // Two far-apart cells: nothing above 1e-3 beyond 4 sigma of both.
        let inst = discs(200, 40, &[(20.0, 20.0), (180.0, 20.0)], 8.0);
        let b = border_term(&inst, &WeightParams::default());
        assert!(b.data.iter().all(|&v| v < 1e-3));
    }
}
