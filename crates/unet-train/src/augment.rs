//! Data augmentation as the paper describes it: random elastic deformation (a coarse 3x3
//! grid of displacement vectors drawn from N(0, 10 px), interpolated bicubically to every
//! pixel), rotation, flips, shift (the tile's position), and gray-value changes. Images
//! are resampled bicubically with mirrored borders, labels by nearest neighbour, weight
//! maps bilinearly; one seeded generator drives everything.

use rand::Rng;
use rand_distr::{Distribution, Normal};

use crate::sampling::mirror;

/// Where the centres of training tiles are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TileCenters {
    /// So that the (unrotated) output tile lies inside the image where the image is larger
    /// than the output: every labelled pixel is real, mirrored context feeds only the border.
    #[default]
    Inside,
    /// Anywhere in the image: up to three quarters of an output tile may be mirrored data.
    Anywhere,
}

/// Augmentation settings. Gray-value changes act in the image's own intensity unit: its
/// 1st and 99.8th percentiles (per channel) at 0 and 1, so they mean the same on 8-bit,
/// 16-bit and float images, dim or bright.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Standard deviation (px) of the elastic grid's displacement vectors (0 disables).
    pub elastic_sigma: f64,
    /// Control points per axis of the elastic grid.
    pub elastic_grid: usize,
    /// Random rotation by any angle.
    pub rotate: bool,
    /// Random mirror flip.
    pub flip: bool,
    /// Where tile centres are drawn (the shift augmentation).
    pub tile_centers: TileCenters,
    /// Standard deviation of the brightness shift (intensity units).
    pub brightness: f64,
    /// Contrast factor drawn from [1 - c, 1 + c].
    pub contrast: f64,
    /// Gamma drawn as exp(N(0, g)).
    pub gamma: f64,
    /// Largest standard deviation of additive Gaussian noise (intensity units).
    pub noise: f64,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            elastic_sigma: 10.0,
            elastic_grid: 3,
            rotate: true,
            flip: true,
            tile_centers: TileCenters::Inside,
            // The PyTorch reference's strengths (contrast x U(0.9, 1.1), brightness
            // U(-0.1, 0.1) in its units, ~0.02 sd of the 1-99.8 % range on ISBI): on ISBI
            // 2012 they cost nothing against no gray-value change at all (500 steps: V_Rand
            // 0.854 against 0.856, loss 0.80 both), where the earlier 0.1 / 0.2 / 0.2 / 0.03
            // slowed learning (loss 1.10, V_Rand 0.815); docs/isbi2012.md.
            brightness: 0.02,
            contrast: 0.1,
            gamma: 0.0,
            noise: 0.0,
        }
    }
}

impl AugmentConfig {
    /// No augmentation at all (identity transform, no gray-value change).
    pub fn none() -> Self {
        AugmentConfig {
            elastic_sigma: 0.0,
            rotate: false,
            flip: false,
            brightness: 0.0,
            contrast: 0.0,
            gamma: 0.0,
            noise: 0.0,
            ..Self::default()
        }
    }

    /// Every setting out of its range, one message per key (`augment.key: value: why`).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |key: &str, v: f64, max: f64, what: &str| {
            if !(v.is_finite() && (0.0..=max).contains(&v)) {
                out.push(format!("augment.{key} = {v}: must be {what}"));
            }
        };
        check("elastic_sigma", self.elastic_sigma, 1e3, "between 0 and 1000 px");
        check("brightness", self.brightness, 10.0, "between 0 and 10");
        check("contrast", self.contrast, 0.99, "at least 0 and below 1");
        check("gamma", self.gamma, 5.0, "between 0 and 5");
        check("noise", self.noise, 10.0, "between 0 and 10");
        if !(2..=64).contains(&self.elastic_grid) {
            out.push(format!("augment.elastic_grid = {}: must be between 2 and 64", self.elastic_grid));
        }
        out
    }
}

/// Cubic convolution kernel (Keys 1981, a = -0.5): C1-smooth interpolation.
fn cubic(x: f64) -> f64 {
    let x = x.abs();
    if x <= 1.0 {
        1.5 * x.powi(3) - 2.5 * x * x + 1.0
    } else if x < 2.0 {
        -0.5 * x.powi(3) + 2.5 * x * x - 4.0 * x + 2.0
    } else {
        0.0
    }
}

/// Random displacement field on a coarse `g x g` grid spanning a tile.
#[derive(Debug, Clone, PartialEq)]
pub struct ElasticField {
    pub grid: usize,
    /// `(dx, dy)` per control point, row-major.
    pub vectors: Vec<(f64, f64)>,
}

impl ElasticField {
    /// Draws every control vector component from N(0, sigma).
    pub fn random<R: Rng>(grid: usize, sigma: f64, rng: &mut R) -> Self {
        let grid = grid.max(2);
        let sigma = if sigma.is_finite() { sigma.max(0.0) } else { 0.0 };
        let n = Normal::new(0.0, sigma).expect("finite sigma");
        ElasticField { grid, vectors: (0..grid * grid).map(|_| (n.sample(rng), n.sample(rng))).collect() }
    }

    /// The displacement at `(u, v)` in a tile of `size` pixels: bicubic interpolation of
    /// the control vectors (control points at the tile's corners, edges and centre for a
    /// 3x3 grid; indices clamped at the grid's edge).
    pub fn at(&self, u: f64, v: f64, size: usize) -> (f64, f64) {
        let g = self.grid as isize;
        let scale = (self.grid - 1) as f64 / (size.max(2) - 1) as f64;
        let (gu, gv) = (u * scale, v * scale);
        let (iu, iv) = (gu.floor() as isize, gv.floor() as isize);
        let (mut dx, mut dy) = (0.0, 0.0);
        for j in iv - 1..=iv + 2 {
            let wy = cubic(gv - j as f64);
            if wy == 0.0 {
                continue;
            }
            for i in iu - 1..=iu + 2 {
                let wx = cubic(gu - i as f64);
                if wx == 0.0 {
                    continue;
                }
                let (ci, cj) = (i.clamp(0, g - 1) as usize, j.clamp(0, g - 1) as usize);
                let (vx, vy) = self.vectors[cj * self.grid + ci];
                dx += wx * wy * vx;
                dy += wx * wy * vy;
            }
        }
        (dx, dy)
    }
}

/// A geometric transform from tile coordinates to image coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct Transform {
    /// Image position of the tile's centre.
    pub center: (f64, f64),
    /// Rotation angle (radians).
    pub angle: f64,
    /// Mirror the tile's x axis before rotating.
    pub flip: bool,
    pub elastic: Option<ElasticField>,
}

impl Transform {
    /// The identity placement of a tile centred at `center`.
    pub fn centered(center: (f64, f64)) -> Self {
        Transform { center, angle: 0.0, flip: false, elastic: None }
    }

    /// Draws rotation, flip and elastic field for a tile centred at `center`.
    pub fn random<R: Rng>(center: (f64, f64), cfg: &AugmentConfig, rng: &mut R) -> Self {
        let angle = if cfg.rotate { rng.random_range(0.0..std::f64::consts::TAU) } else { 0.0 };
        let flip = cfg.flip && rng.random_bool(0.5);
        let elastic = (cfg.elastic_sigma > 0.0).then(|| ElasticField::random(cfg.elastic_grid, cfg.elastic_sigma, rng));
        Transform { center, angle, flip, elastic }
    }

    /// Image coordinates of pixel `(u, v)` of a `size x size` tile. The elastic field is
    /// defined over the (input) tile of `field_size` pixels, offset by `field_offset`.
    pub fn source(&self, u: f64, v: f64, size: usize, field_size: usize, field_offset: f64) -> (f64, f64) {
        let c = (size as f64 - 1.0) / 2.0;
        let (mut x, mut y) = (u - c, v - c);
        if let Some(e) = &self.elastic {
            let (dx, dy) = e.at(u + field_offset, v + field_offset, field_size);
            x += dx;
            y += dy;
        }
        if self.flip {
            x = -x;
        }
        let (s, co) = self.angle.sin_cos();
        (self.center.0 + co * x - s * y, self.center.1 + s * x + co * y)
    }
}

/// Bicubic sample of a plane at `(x, y)` with mirrored borders.
pub fn sample_bicubic(p: &[f32], w: usize, h: usize, x: f64, y: f64) -> f32 {
    let (ix, iy) = (x.floor() as isize, y.floor() as isize);
    let mut acc = 0.0;
    for j in iy - 1..=iy + 2 {
        let wy = cubic(y - j as f64);
        let row = mirror(j, h) * w;
        for i in ix - 1..=ix + 2 {
            acc += wy * cubic(x - i as f64) * p[row + mirror(i, w)] as f64;
        }
    }
    acc as f32
}

/// Bilinear sample with mirrored borders.
pub fn sample_bilinear(p: &[f32], w: usize, h: usize, x: f64, y: f64) -> f32 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let at = |i: f64, j: f64| p[mirror(j as isize, h) * w + mirror(i as isize, w)] as f64;
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
    let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
    (top * (1.0 - fy) + bottom * fy) as f32
}

/// Nearest-neighbour sample with mirrored borders.
pub fn sample_nearest<T: Copy>(p: &[T], w: usize, h: usize, x: f64, y: f64) -> T {
    p[mirror(y.round() as isize, h) * w + mirror(x.round() as isize, w)]
}

/// Gray-value change in intensity units (see [`AugmentConfig`]):
/// `contrast * (gamma(u) - mean) + mean + brightness + noise`, where `gamma(u) = u^g` on
/// [0, 1] and the identity outside (continuous at both ends), and `mean` is the tile's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GrayChange {
    pub gamma: f64,
    pub contrast: f64,
    pub brightness: f64,
    pub noise: f64,
}

impl GrayChange {
    /// Draws the parameters (the settings must have passed [`AugmentConfig::problems`]).
    pub fn random<R: Rng>(cfg: &AugmentConfig, rng: &mut R) -> Self {
        let normal = |sd: f64| Normal::new(0.0, sd).unwrap_or_else(|_| Normal::new(0.0, 0.0).expect("zero sd"));
        let gamma = if cfg.gamma > 0.0 { normal(cfg.gamma).sample(rng).exp() } else { 1.0 };
        let contrast = if cfg.contrast > 0.0 { rng.random_range(1.0 - cfg.contrast..1.0 + cfg.contrast) } else { 1.0 };
        let brightness = if cfg.brightness > 0.0 { normal(cfg.brightness).sample(rng) } else { 0.0 };
        let noise = if cfg.noise > 0.0 { rng.random_range(0.0..cfg.noise) } else { 0.0 };
        GrayChange { gamma, contrast, brightness, noise }
    }

    /// Applies the change in place to values in intensity units.
    pub fn apply<R: Rng>(&self, v: &mut [f32], rng: &mut R) {
        if v.is_empty() {
            return;
        }
        if self.gamma != 1.0 {
            for x in v.iter_mut() {
                if (0.0..=1.0).contains(x) {
                    *x = (*x as f64).powf(self.gamma) as f32;
                }
            }
        }
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let noise = (self.noise > 0.0).then(|| Normal::new(0.0, self.noise).expect("finite noise"));
        for x in v.iter_mut() {
            let mut y = (*x as f64 - mean) * self.contrast + mean + self.brightness;
            if let Some(n) = &noise {
                y += n.sample(rng);
            }
            *x = y as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn zero_displacement_is_the_identity() {
        let (w, h) = (9, 9);
        let p: Vec<f32> = (0..w * h).map(|i| (i * 13 % 11) as f32).collect();
        let t = Transform {
            elastic: Some(ElasticField { grid: 3, vectors: vec![(0.0, 0.0); 9] }),
            ..Transform::centered((4.0, 4.0))
        };
        for v in 0..h {
            for u in 0..w {
                // A tile the size of the image, centred on it: pixel (u, v) maps onto itself.
                let (x, y) = t.source(u as f64, v as f64, w, w, 0.0);
                assert!((x - u as f64).abs() < 1e-9 && (y - v as f64).abs() < 1e-9);
                assert!((sample_bicubic(&p, w, h, x, y) - p[v * w + u]).abs() < 1e-5);
                assert_eq!(sample_nearest(&p, w, h, x, y), p[v * w + u]);
            }
        }
    }

    #[test]
    fn augmented_labels_stay_in_the_label_set() {
        use crate::sampling::{TrainImage, draw_sample, step_rng};
        use unet_io::Grid;
        let (w, h) = (40, 30);
        let classes: Vec<u32> = (0..w * h).map(|i| [0, 1, 3][(i / 7 + i % w / 9) % 3]).collect();
        let img = TrainImage {
            image: Grid::new(w, h, (0..w * h).map(|i| (i % 17) as f32 / 17.0).collect()),
            gain: vec![3.0],
            bias: vec![-1.5],
            classes: Grid::new(w, h, classes),
            weights: Grid::filled(w, h, 1, 1.0),
        };
        for step in 0..20 {
            let mut rng = step_rng(3, step, 0);
            let s = draw_sample(std::slice::from_ref(&img), 44, 24, &AugmentConfig::default(), &mut rng);
            assert!(s.classes.iter().all(|c| [0, 1, 3].contains(c)), "step {step}");
            assert_eq!((s.input.len(), s.classes.len(), s.weights.len()), (44 * 44, 24 * 24, 24 * 24));
            let mut again = step_rng(3, step, 0);
            assert_eq!(draw_sample(std::slice::from_ref(&img), 44, 24, &AugmentConfig::default(), &mut again), s);
        }
    }

    #[test]
    fn displacement_field_is_smooth_and_reproducible() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let f = ElasticField::random(3, 10.0, &mut rng);
        let size = 572;
        let mut max_grad: f64 = 0.0;
        for v in (0..size).step_by(3) {
            for u in 0..size - 1 {
                let (a, b) = (f.at(u as f64, v as f64, size), f.at(u as f64 + 1.0, v as f64, size));
                max_grad = max_grad.max((a.0 - b.0).abs()).max((a.1 - b.1).abs());
            }
        }
        // Control vectors ~10 px apart by 285 px: per-pixel change far below a pixel.
        assert!(max_grad < 0.5, "max per-pixel displacement change {max_grad}");
        let mut rng2 = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        assert_eq!(ElasticField::random(3, 10.0, &mut rng2), f);
        // At a control point the field equals its vector.
        let c = f.at(0.0, 0.0, size);
        assert!((c.0 - f.vectors[0].0).abs() < 1e-9 && (c.1 - f.vectors[0].1).abs() < 1e-9);
    }
}
