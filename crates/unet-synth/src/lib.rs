//! Synthetic cells: microscopy-like images of many irregular, smooth, partly touching
//! cells with textured interiors, DIC-like relief shading, a phase-contrast-like halo,
//! uneven illumination and noise, each with its instance label image. Deterministic by
//! seed. Used by `unet synth` and `unet demo`.

#![forbid(unsafe_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use unet_io::{Image, Label, SampleKind};

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthParams {
    pub width: usize,
    pub height: usize,
    /// Mean cell radius (px).
    pub radius: f64,
    /// Fraction of the image area the cells try to cover.
    pub density: f64,
    /// 8 or 16.
    pub bit_depth: u8,
}

impl Default for SynthParams {
    fn default() -> Self {
        SynthParams { width: 256, height: 256, radius: 14.0, density: 0.45, bit_depth: 8 }
    }
}

/// A cell: centre, base radius, shape harmonics, brightness and texture.
struct Cell {
    cx: f64,
    cy: f64,
    r: f64,
    harmonics: [(f64, f64); 3],
    brightness: f64,
    nucleus: (f64, f64, f64),
    texture: [(f64, f64, f64, f64); 3],
}

impl Cell {
    /// Radius of the outline in direction `theta`.
    fn radius_at(&self, theta: f64) -> f64 {
        let mut f = 1.0;
        for (k, &(a, phi)) in self.harmonics.iter().enumerate() {
            f += a * ((k as f64 + 2.0) * theta - phi).cos();
        }
        self.r * f
    }

    /// Normalised distance: < 1 inside the outline.
    fn reach(&self, x: f64, y: f64) -> f64 {
        let (dx, dy) = (x - self.cx, y - self.cy);
        (dx * dx + dy * dy).sqrt() / self.radius_at(dy.atan2(dx))
    }
}

/// Bytes of memory [`generate`] needs at most for one image: its pixel buffers (labels,
/// depths, intensities, the blurred mask and its passes, the output image and labels),
/// about 96 bytes per pixel. Check it against the memory available before generating.
pub fn bytes_needed(p: &SynthParams) -> u128 {
    96 * p.width as u128 * p.height as u128
}

/// A generated image with its instance labels (0 = background, cells 1..=n).
pub struct Synthetic {
    pub image: Image,
    pub labels: Label,
    pub cells: usize,
}

/// Generates one image. Cells are placed one by one next to earlier ones at a distance
/// drawn around the sum of their radii, so that many of them touch; every pixel belongs to
/// the cell it is deepest inside (outlines that overlap meet along a shared border).
pub fn generate(p: &SynthParams, seed: u64) -> Synthetic {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (w, h) = (p.width, p.height);
    let target = (p.density * (w * h) as f64 / (std::f64::consts::PI * p.radius * p.radius)).round().max(1.0) as usize;
    let mut cells: Vec<Cell> = Vec::new();
    // Cells by grid square, for the overlap test: a new cell (radius <= 1.3 p.radius) is
    // refused within 0.8 * (sum of radii) <= 2.08 p.radius of an earlier one, so the squares
    // next to its own hold every cell it can hit.
    let mut grid = Grid::new(w, h, 2.08 * p.radius);
    let mut tries = 0;
    while cells.len() < target && tries < target * 60 {
        tries += 1;
        let r = p.radius * rng.random_range(0.7..1.3);
        let (cx, cy) = if cells.is_empty() || rng.random_bool(0.35) {
            (rng.random_range(r..w as f64 - r), rng.random_range(r..h as f64 - r))
        } else {
            // Next to an existing cell, at about the sum of the radii: touching or nearly.
            let other = &cells[rng.random_range(0..cells.len())];
            let a = rng.random_range(0.0..std::f64::consts::TAU);
            let d = (other.r + r) * rng.random_range(0.9..1.3);
            (other.cx + d * a.cos(), other.cy + d * a.sin())
        };
        if cx < r * 0.5 || cy < r * 0.5 || cx > w as f64 - r * 0.5 || cy > h as f64 - r * 0.5 {
            continue;
        }
        // Not too deep into another cell.
        if grid.near(cx, cy).any(|k| {
            let c = &cells[k];
            ((c.cx - cx).powi(2) + (c.cy - cy).powi(2)).sqrt() < 0.8 * (c.r + r)
        }) {
            continue;
        }
        grid.insert(cx, cy, cells.len());
        let harm =
            |rng: &mut ChaCha8Rng, amp: f64| (rng.random_range(0.0..amp), rng.random_range(0.0..std::f64::consts::TAU));
        cells.push(Cell {
            cx,
            cy,
            r,
            harmonics: [harm(&mut rng, 0.12), harm(&mut rng, 0.06), harm(&mut rng, 0.03)],
            brightness: rng.random_range(0.55..0.8),
            nucleus: (rng.random_range(-0.3..0.3), rng.random_range(-0.3..0.3), rng.random_range(0.3..0.45)),
            texture: [0; 3].map(|_| {
                (
                    rng.random_range(0.15..0.5),
                    rng.random_range(0.15..0.5),
                    rng.random_range(0.0..std::f64::consts::TAU),
                    rng.random_range(0.02..0.06),
                )
            }),
        });
    }
    // Pixel ownership.
    let mut labels = vec![0u32; w * h];
    let mut depth = vec![f64::INFINITY; w * h];
    for (k, c) in cells.iter().enumerate() {
        let rr = c.r * 1.3;
        let (x0, x1) = ((c.cx - rr).floor().max(0.0) as usize, ((c.cx + rr).ceil() as usize).min(w - 1));
        let (y0, y1) = ((c.cy - rr).floor().max(0.0) as usize, ((c.cy + rr).ceil() as usize).min(h - 1));
        for y in y0..=y1 {
            for x in x0..=x1 {
                let q = c.reach(x as f64, y as f64);
                let i = y * w + x;
                if q < 1.0 && q < depth[i] {
                    depth[i] = q;
                    labels[i] = k as u32 + 1;
                }
            }
        }
    }
    // Before relabelling a label is the deepest cell + 1: the cell that shades the pixel.
    let owners = labels;
    let labels = relabel_connected(&owners, w, h);
    // Intensity: background, cells with texture and a nucleus.
    let mut img = vec![0.25f64; w * h];
    for i in 0..w * h {
        let l = labels[i];
        if l == 0 {
            continue;
        }
        let c = &cells[owners[i] as usize - 1];
        let (x, y) = ((i % w) as f64, (i / w) as f64);
        let mut v = c.brightness;
        for &(fx, fy, ph, amp) in &c.texture {
            v += amp * (fx * x + fy * y + ph).sin();
        }
        let (nx, ny) = (c.cx + c.nucleus.0 * c.r, c.cy + c.nucleus.1 * c.r);
        if ((x - nx).powi(2) + (y - ny).powi(2)).sqrt() < c.nucleus.2 * c.r {
            v -= 0.18;
        }
        // Cells darken towards their rim.
        v -= 0.12 * depth[i].min(1.0).powi(4);
        img[i] = v;
    }
    // DIC-like relief: add a directional derivative of the blurred cell mask; a bright halo
    // around cells as in phase contrast.
    let mask: Vec<f64> = labels.iter().map(|&l| f64::from(u8::from(l != 0))).collect();
    let soft = box_blur(&box_blur(&mask, w, h, 2), w, h, 2);
    let angle = rng.random_range(0.0..std::f64::consts::TAU);
    let (ca, sa) = (angle.cos(), angle.sin());
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let gx = soft[y * w + (x + 1).min(w - 1)] - soft[y * w + x.saturating_sub(1)];
            let gy = soft[(y + 1).min(h - 1) * w + x] - soft[y.saturating_sub(1) * w + x];
            img[i] += 0.25 * (ca * gx + sa * gy);
            if labels[i] == 0 {
                img[i] += 0.18 * soft[i];
            }
        }
    }
    // Uneven illumination and noise.
    let (gx, gy, g0) = (rng.random_range(-0.3..0.3), rng.random_range(-0.3..0.3), rng.random_range(0.85..1.1));
    let noise = Normal::new(0.0, 0.04).expect("finite");
    let max = if p.bit_depth == 16 { 65535.0 } else { 255.0 };
    let data: Vec<f32> = img
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let (x, y) = ((i % w) as f64 / w as f64 - 0.5, (i / w) as f64 / h as f64 - 0.5);
            let lit = v * (g0 + gx * x + gy * y) + noise.sample(&mut rng);
            (lit.clamp(0.0, 1.0) * max).round() as f32
        })
        .collect();
    let kind = if p.bit_depth == 16 { SampleKind::U16 } else { SampleKind::U8 };
    let n = *labels.iter().max().unwrap_or(&0) as usize;
    Synthetic { image: Image::gray(w, h, kind, data), labels: Label::new(w, h, labels), cells: n }
}

/// Indices of points in square buckets of a fixed side.
struct Grid {
    side: f64,
    cols: usize,
    rows: usize,
    buckets: Vec<Vec<usize>>,
}

impl Grid {
    fn new(w: usize, h: usize, side: f64) -> Grid {
        let side = side.max(1.0);
        let (cols, rows) = ((w as f64 / side).ceil().max(1.0) as usize, (h as f64 / side).ceil().max(1.0) as usize);
        Grid { side, cols, rows, buckets: vec![Vec::new(); cols * rows] }
    }

    fn square(&self, x: f64, y: f64) -> (usize, usize) {
        (((x / self.side).max(0.0) as usize).min(self.cols - 1), ((y / self.side).max(0.0) as usize).min(self.rows - 1))
    }

    fn insert(&mut self, x: f64, y: f64, index: usize) {
        let (gx, gy) = self.square(x, y);
        self.buckets[gy * self.cols + gx].push(index);
    }

    /// Every index within one side of `(x, y)` (and some farther ones).
    fn near(&self, x: f64, y: f64) -> impl Iterator<Item = usize> + '_ {
        let (gx, gy) = self.square(x, y);
        let (x0, x1) = (gx.saturating_sub(1), (gx + 1).min(self.cols - 1));
        let (y0, y1) = (gy.saturating_sub(1), (gy + 1).min(self.rows - 1));
        (y0..=y1).flat_map(move |yy| (x0..=x1).flat_map(move |xx| self.buckets[yy * self.cols + xx].iter().copied()))
    }
}

/// Keeps, for every cell, only its largest 4-connected piece (ownership can leave slivers)
/// and numbers the cells 1..=n in raster order.
fn relabel_connected(labels: &[u32], w: usize, h: usize) -> Vec<u32> {
    let max = labels.iter().copied().max().unwrap_or(0) as usize;
    let mut out = vec![0u32; w * h];
    let mut next = 0u32;
    let mut keep: Vec<Option<(usize, Vec<usize>)>> = vec![None; max + 1];
    let mut seen = vec![false; w * h];
    for start in 0..w * h {
        let l = labels[start];
        if l == 0 || seen[start] {
            continue;
        }
        let mut piece = vec![start];
        seen[start] = true;
        let mut k = 0;
        while k < piece.len() {
            let p = piece[k];
            k += 1;
            let (x, y) = (p % w, p / w);
            let nbrs = [(x.wrapping_sub(1), y), (x + 1, y), (x, y.wrapping_sub(1)), (x, y + 1)];
            for (nx, ny) in nbrs {
                if nx < w && ny < h {
                    let q = ny * w + nx;
                    if !seen[q] && labels[q] == l {
                        seen[q] = true;
                        piece.push(q);
                    }
                }
            }
        }
        let slot = &mut keep[l as usize];
        if slot.as_ref().is_none_or(|(n, _)| piece.len() > *n) {
            *slot = Some((piece.len(), piece));
        }
    }
    let mut order: Vec<(usize, Vec<usize>)> = keep.into_iter().flatten().filter(|(n, _)| *n >= 12).collect();
    order.sort_by_key(|(_, px)| *px.iter().min().expect("non-empty"));
    for (_, px) in order {
        next += 1;
        for p in px {
            out[p] = next;
        }
    }
    out
}

fn box_blur(v: &[f64], w: usize, h: usize, r: usize) -> Vec<f64> {
    let mut tmp = vec![0.0; w * h];
    for y in 0..h {
        for x in 0..w {
            let (a, b) = (x.saturating_sub(r), (x + r).min(w - 1));
            tmp[y * w + x] = (a..=b).map(|i| v[y * w + i]).sum::<f64>() / (b - a + 1) as f64;
        }
    }
    let mut out = vec![0.0; w * h];
    for y in 0..h {
        let (a, b) = (y.saturating_sub(r), (y + r).min(h - 1));
        for x in 0..w {
            out[y * w + x] = (a..=b).map(|j| tmp[j * w + x]).sum::<f64>() / (b - a + 1) as f64;
        }
    }
    out
}

/// Fraction of cells that touch another cell (share an 8-neighbour).
pub fn touching_share(labels: &Label) -> f64 {
    let (w, h) = labels.size();
    let n = labels.data.iter().copied().max().unwrap_or(0) as usize;
    if n == 0 {
        return 0.0;
    }
    let mut touches = vec![false; n + 1];
    for y in 0..h {
        for x in 0..w {
            let l = labels.data[y * w + x];
            if l == 0 {
                continue;
            }
            for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    let m = labels.data[ny * w + nx];
                    if m != 0 && m != l {
                        touches[l as usize] = true;
                    }
                }
            }
        }
    }
    touches.iter().filter(|&&t| t).count() as f64 / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use unet_metrics::{Connectivity, label_components};

    /// Every point within one side of a query comes back from `near`.
    #[test]
    fn grid_finds_every_near_point() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let (w, h, side) = (300, 170, 23.5);
        let points: Vec<(f64, f64)> =
            (0..2000).map(|_| (rng.random_range(0.0..w as f64), rng.random_range(0.0..h as f64))).collect();
        let mut grid = Grid::new(w, h, side);
        for (i, &(x, y)) in points.iter().enumerate() {
            grid.insert(x, y, i);
        }
        for _ in 0..200 {
            let (qx, qy) = (rng.random_range(0.0..w as f64), rng.random_range(0.0..h as f64));
            let found: Vec<usize> = grid.near(qx, qy).collect();
            let within: Vec<usize> = (0..points.len())
                .filter(|&i| ((points[i].0 - qx).powi(2) + (points[i].1 - qy).powi(2)).sqrt() < side)
                .collect();
            // It prunes: 3x3 squares of the 13x8 grid hold a fraction of the points.
            assert!(found.len() < points.len() / 4, "{} of {} points", found.len(), points.len());
            for i in within {
                assert!(found.contains(&i), "point {i} at {:?} missed from ({qx}, {qy})", points[i]);
            }
        }
    }

    #[test]
    fn many_cells_touch_and_labels_are_consistent() {
        for seed in 0..3 {
            let s = generate(&SynthParams::default(), seed);
            let l = &s.labels;
            assert!(s.cells >= 40, "seed {seed}: {} cells", s.cells);
            let share = touching_share(l);
            assert!((0.3..=0.95).contains(&share), "seed {seed}: touching share {share}");
            // Ids are 1..=n, each one 4-connected region.
            for id in 1..=s.cells as u32 {
                assert_eq!(label_components(&l.map(|&v| v == id), Connectivity::Four).1, 1, "cell {id}");
            }
            assert_eq!(*l.data.iter().max().unwrap() as usize, s.cells);
            // Cells are brighter than the background on average.
            let (mut fg, mut nf, mut bg, mut nb) = (0.0, 0, 0.0, 0);
            for (v, &id) in s.image.data.iter().zip(&l.data) {
                if id != 0 {
                    fg += v;
                    nf += 1;
                } else {
                    bg += v;
                    nb += 1;
                }
            }
            assert!(fg / nf as f32 > bg / nb as f32 + 20.0);
        }
    }

    #[test]
    fn deterministic_by_seed_and_bit_depth() {
        let p = SynthParams { width: 96, height: 80, ..SynthParams::default() };
        let (a, b) = (generate(&p, 5), generate(&p, 5));
        assert_eq!(a.image, b.image);
        assert_eq!(a.labels, b.labels);
        assert_ne!(generate(&p, 6).image, a.image);
        let deep = generate(&SynthParams { bit_depth: 16, ..p.clone() }, 5);
        assert_eq!(deep.image.kind, SampleKind::U16);
        assert!(deep.image.data.iter().any(|&v| v > 255.0));
        assert_eq!(deep.labels, a.labels);
    }
}
