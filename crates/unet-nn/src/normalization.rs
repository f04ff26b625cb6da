//! Input normalisation: how raw samples become network input. Stored in the model file so
//! that prediction normalises exactly as training did. Every mode is, per image and
//! channel, an affine map `(x - offset) * scale` ([`Affine`]) computed by
//! [`Normalization::affine`]; training and prediction both go through it.

use serde::{Deserialize, Serialize};

/// How an image's samples are mapped before entering the network.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Normalization {
    /// Per image and channel: subtract the mean, divide by the standard deviation.
    PerImage,
    /// Fixed: `(v / max_value - mean) / std`, with `max_value` 255 for 8-bit, 65535 for
    /// 16-bit and 1 for float images; `mean` and `std` measured on the training set.
    Fixed { mean: f32, std: f32 },
    /// Per image and channel, robust to bit depth, gain and outliers (as Cellpose and
    /// StarDist normalise): the `low` and `high` percentiles (in percent) of the image's
    /// values map to `-SPAN / 2` and `SPAN / 2` ([`PERCENTILE_SPAN`]).
    Percentile { low: f32, high: f32 },
}

impl Default for Normalization {
    /// The default for new models: percentiles 1 and 99.8 ([`DEFAULT_PERCENTILES`]).
    fn default() -> Self {
        Normalization::Percentile { low: DEFAULT_PERCENTILES.0, high: DEFAULT_PERCENTILES.1 }
    }
}

/// The width of the network-input interval that the percentile range maps to.
pub const PERCENTILE_SPAN: f32 = 3.0;

/// Percentiles of the default normalisation (and the unit of gray-value augmentation).
pub const DEFAULT_PERCENTILES: (f32, f32) = (1.0, 99.8);

/// At most this many samples (an even stride through the image) give the percentiles: the
/// error of a percentile from 2^20 samples is far below one gray level, and the cost stays
/// bounded on whole-slide images.
const PERCENTILE_SAMPLES: usize = 1 << 20;

/// The map `x -> (x - offset) * scale` of one channel of one image. A constant channel
/// has `scale = 0`: it carries no information, and nothing (interpolation error, noise) is
/// amplified.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    pub offset: f32,
    pub scale: f32,
}

impl Affine {
    /// Maps one value.
    pub fn map(&self, x: f32) -> f32 {
        (x - self.offset) * self.scale
    }

    /// Maps a plane in place.
    pub fn apply(&self, plane: &mut [f32]) {
        plane.iter_mut().for_each(|v| *v = self.map(*v));
    }
}

/// Percentiles `ps` (in percent, each in [0, 100]) of the finite values of `plane`, by
/// linear interpolation between order statistics (numpy's default), over an even subsample
/// of at most [`PERCENTILE_SAMPLES`] values. `None` for a plane without finite values.
pub fn percentiles(plane: &[f32], ps: &[f32]) -> Option<Vec<f32>> {
    let stride = percentile_stride(plane.len());
    let mut v: Vec<f32> = plane.iter().step_by(stride).copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_unstable_by(f32::total_cmp);
    let last = (v.len() - 1) as f64;
    Some(
        ps.iter()
            .map(|&p| {
                let r = (p.clamp(0.0, 100.0) as f64 / 100.0) * last;
                let (lo, frac) = (r.floor() as usize, r - r.floor());
                let hi = (lo + 1).min(v.len() - 1);
                (v[lo] as f64 + (v[hi] as f64 - v[lo] as f64) * frac) as f32
            })
            .collect(),
    )
}

/// The stride of the even subsample that [`percentiles`] reads from `len` values: it reads
/// the values at indices `0, stride, 2 * stride, ...`.
pub fn percentile_stride(len: usize) -> usize {
    len.div_ceil(PERCENTILE_SAMPLES).max(1)
}

/// The robust intensity range of a plane: its `low` and `high` percentiles, or its minimum
/// and maximum when those coincide (sparse bright objects on a flat background). The two
/// ends are equal only for a constant plane.
pub fn robust_range(plane: &[f32], low: f32, high: f32) -> (f32, f32) {
    match percentiles(plane, &[low, high, 0.0, 100.0]) {
        None => (0.0, 0.0),
        Some(p) if p[1] > p[0] => (p[0], p[1]),
        Some(p) => (p[2], p[3]),
    }
}

/// The image's own intensity unit for one channel plane: the map that puts its
/// [`DEFAULT_PERCENTILES`] (or its minimum and maximum, see [`robust_range`]) at 0 and 1;
/// `scale = 0` for a constant plane. Training's gray-value augmentation acts in this unit.
pub fn intensity_unit(plane: &[f32]) -> Affine {
    let (lo, hi) = robust_range(plane, DEFAULT_PERCENTILES.0, DEFAULT_PERCENTILES.1);
    Affine { offset: lo, scale: inverse_range(hi as f64 - lo as f64, (lo as f64 + hi as f64) / 2.0) as f32 }
}

/// `1 / range`, or 0 when the range is empty or lost in rounding (a constant plane).
fn inverse_range(range: f64, level: f64) -> f64 {
    if range > 1e-6 * level.abs() && range > 0.0 { 1.0 / range } else { 0.0 }
}

impl Normalization {
    /// The affine map of one channel plane; `max_value` is the nominal maximum of the
    /// file's sample type (used by [`Normalization::Fixed`] only).
    pub fn affine(&self, plane: &[f32], max_value: f32) -> Affine {
        match *self {
            Normalization::PerImage => {
                let n = plane.len().max(1) as f64;
                let mean = plane.iter().map(|&v| v as f64).sum::<f64>() / n;
                let var = plane.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
                Affine { offset: mean as f32, scale: inverse_range(var.sqrt(), mean) as f32 }
            }
            Normalization::Fixed { mean, std } => {
                let std = if std > 0.0 { std } else { 1.0 };
                Affine { offset: mean * max_value, scale: 1.0 / (std * max_value) }
            }
            Normalization::Percentile { low, high } => {
                let (lo, hi) = robust_range(plane, low, high);
                let mid = (lo as f64 + hi as f64) / 2.0;
                let inv = inverse_range(hi as f64 - lo as f64, mid);
                Affine { offset: mid as f32, scale: (PERCENTILE_SPAN as f64 * inv) as f32 }
            }
        }
    }

    /// [`Normalization::affine`] of a plane of `len` values too large to hold at once,
    /// with the same bits: `pass(visit)` must call `visit` on the plane's values in
    /// row-major order, in consecutive pieces of any length; it is called once or twice
    /// (per-image statistics take a pass for the mean and one for the variance, percentiles
    /// keep only their even subsample, fixed statistics read nothing). An error of `pass`
    /// is returned as it is.
    pub fn affine_streamed<E>(
        &self,
        len: usize,
        max_value: f32,
        mut pass: impl FnMut(&mut dyn FnMut(&[f32])) -> Result<(), E>,
    ) -> Result<Affine, E> {
        match *self {
            Normalization::Fixed { .. } => Ok(self.affine(&[], max_value)),
            Normalization::PerImage => {
                // The same sums as `affine`: f64, in the plane's order, from `Sum`'s start
                // value (-0.0, so that a plane of -0.0 sums to -0.0 in both).
                let n = len.max(1) as f64;
                let mut sum = -0.0f64;
                pass(&mut |piece| sum = piece.iter().fold(sum, |s, &v| s + v as f64))?;
                let mean = sum / n;
                let mut var = -0.0f64;
                pass(&mut |piece| var = piece.iter().fold(var, |s, &v| s + (v as f64 - mean).powi(2)))?;
                let var = var / n;
                Ok(Affine { offset: mean as f32, scale: inverse_range(var.sqrt(), mean) as f32 })
            }
            Normalization::Percentile { .. } => {
                // The subsample `percentiles` would take from the whole plane; of at most
                // PERCENTILE_SAMPLES values, it is its own subsample (stride 1).
                let stride = percentile_stride(len);
                let mut samples = Vec::with_capacity(len.div_ceil(stride));
                let mut at = 0usize;
                pass(&mut |piece| {
                    let first = (stride - at % stride) % stride;
                    samples.extend(piece.iter().skip(first).step_by(stride));
                    at += piece.len();
                })?;
                Ok(self.affine(&samples, max_value))
            }
        }
    }

    /// Normalises one channel plane in place.
    pub fn apply(&self, plane: &mut [f32], max_value: f32) {
        self.affine(plane, max_value).apply(plane);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let v: Vec<f32> = (0..=10).map(|i| i as f32).rev().collect();
        // numpy.percentile(range(11), [0, 1, 50, 99.8, 100]) = [0, 0.1, 5, 9.98, 10]
        let p = percentiles(&v, &[0.0, 1.0, 50.0, 99.8, 100.0]).unwrap();
        for (a, b) in p.iter().zip([0.0, 0.1, 5.0, 9.98, 10.0]) {
            assert!((a - b).abs() < 1e-5, "{p:?}");
        }
        assert_eq!(percentiles(&[f32::NAN], &[50.0]), None);
    }

    #[test]
    fn percentile_mode_ignores_bit_depth_gain_and_offset() {
        let base: Vec<f32> = (0..1000).map(|i| ((i * 37) % 236) as f32).collect();
        let norm = Normalization::default();
        let mut a = base.clone();
        norm.apply(&mut a, 255.0);
        for (gain, off, max) in
            [(1.0, 0.0, 65535.0), (256.0, 0.0, 65535.0), (1.0 / 255.0, 0.0, 1.0), (3.0, 1000.0, 1.0)]
        {
            let mut b: Vec<f32> = base.iter().map(|&x| x * gain + off).collect();
            norm.apply(&mut b, max);
            let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-4, "gain {gain} offset {off}: {worst}");
        }
        // The 1st and 99.8th percentiles land at -SPAN/2 and SPAN/2.
        let p = percentiles(&a, &[1.0, 99.8]).unwrap();
        assert!((p[0] + PERCENTILE_SPAN / 2.0).abs() < 1e-4 && (p[1] - PERCENTILE_SPAN / 2.0).abs() < 1e-4, "{p:?}");
    }

    #[test]
    fn constant_planes_become_zero_and_sparse_ones_use_min_max() {
        for norm in [Normalization::default(), Normalization::PerImage] {
            let a = norm.affine(&[7.0; 100], 255.0);
            assert_eq!(a.scale, 0.0, "{norm:?}");
            // Interpolation error around the constant is not amplified.
            assert_eq!(a.map(7.000_001), 0.0);
        }
        // 0.1% bright pixels: the 99.8th percentile is the background, min/max is used.
        let mut p = vec![10.0f32; 1000];
        p[500] = 200.0;
        let a = Normalization::default().affine(&p, 255.0);
        assert!(
            (a.map(200.0) - PERCENTILE_SPAN / 2.0).abs() < 1e-5 && (a.map(10.0) + PERCENTILE_SPAN / 2.0).abs() < 1e-5
        );
    }

    #[test]
    fn streamed_statistics_have_the_bits_of_the_whole_plane() {
        // Longer than the percentile subsample, so the stride is 3; pieces of odd sizes.
        let len = 2 * PERCENTILE_SAMPLES + 12_345;
        let plane: Vec<f32> = (0..len).map(|i| ((i * 7919) % 4093) as f32 * 0.37 + (i % 13) as f32).collect();
        for norm in [Normalization::default(), Normalization::PerImage, Normalization::Fixed { mean: 0.2, std: 0.1 }] {
            let whole = norm.affine(&plane, 255.0);
            let mut passes = 0;
            let streamed = norm
                .affine_streamed(len, 255.0, |visit| -> Result<(), ()> {
                    passes += 1;
                    let mut at = 0;
                    for size in [1usize, 1000, 77_777].iter().cycle() {
                        let end = (at + size).min(len);
                        visit(&plane[at..end]);
                        at = end;
                        if at == len {
                            break;
                        }
                    }
                    Ok(())
                })
                .unwrap();
            assert_eq!(
                (streamed.offset.to_bits(), streamed.scale.to_bits()),
                (whole.offset.to_bits(), whole.scale.to_bits()),
                "{norm:?}"
            );
            let expected = match norm {
                Normalization::PerImage => 2,
                Normalization::Percentile { .. } => 1,
                Normalization::Fixed { .. } => 0,
            };
            assert_eq!(passes, expected, "{norm:?}");
        }
        let zeros = [-0.0f32; 5];
        let whole = Normalization::PerImage.affine(&zeros, 1.0);
        let streamed = Normalization::PerImage
            .affine_streamed(5, 1.0, |v| -> Result<(), ()> {
                v(&zeros);
                Ok(())
            })
            .unwrap();
        assert_eq!(whole.offset.to_bits(), streamed.offset.to_bits());
        // An error of the reader comes back as it is.
        assert_eq!(Normalization::PerImage.affine_streamed(4, 1.0, |_| Err("disk")), Err("disk"));
    }

    #[test]
    fn default_is_stored_with_its_percentiles_and_old_files_still_read() {
        let json = serde_json::to_string(&Normalization::default()).unwrap();
        assert_eq!(json, r#"{"kind":"percentile","low":1.0,"high":99.8}"#);
        let old: Normalization = serde_json::from_str(r#"{"kind":"per_image"}"#).unwrap();
        assert_eq!(old, Normalization::PerImage);
    }
}
