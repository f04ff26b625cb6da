//! Training samples: one tile per step, drawn from the training images by a generator
//! seeded from `(seed, step)` alone, so a step's sample never depends on what ran before
//! (prefetching threads and resumed runs see the same data).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use unet_io::Grid;

use crate::augment::{
    AugmentConfig, GrayChange, TileCenters, Transform, sample_bicubic, sample_bilinear, sample_nearest,
};

/// Mirror index without edge repeat (as inference pads).
pub fn mirror(i: isize, n: usize) -> usize {
    unet_infer::mirror_index(i, n)
}

/// The generator of step `step`: the run's seed, stream `step` (`purpose` separates the
/// data stream from the dropout stream).
pub fn step_rng(seed: u64, step: u64, purpose: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.set_stream(step);
    rng
}

/// One prepared training image: intensities in the image's own unit (per channel, its 1st
/// and 99.8th percentiles at 0 and 1: [`crate::data::intensity_unit`]), the map from that
/// unit to network input, per-pixel classes and the weight map.
#[derive(Debug, Clone)]
pub struct TrainImage {
    /// The image in intensity units (0 everywhere for a constant channel).
    pub image: Grid<f32>,
    /// Per channel, network input = `data * gain + bias`: the model's normalisation of the
    /// original samples, rewritten for intensity units.
    pub gain: Vec<f32>,
    pub bias: Vec<f32>,
    /// Class index per pixel (0 = background).
    pub classes: Grid<u32>,
    /// The weight map (eq. 2).
    pub weights: Grid<f32>,
}

/// A network input tile with its target classes and weights on the output region.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub input: Vec<f32>,
    pub classes: Vec<u32>,
    pub weights: Vec<f32>,
}

/// A tile centre coordinate along an axis of `n` pixels for an output of `out` pixels.
fn center_along<R: Rng>(n: usize, out: usize, centers: TileCenters, rng: &mut R) -> f64 {
    let half = (out as f64 - 1.0) / 2.0;
    match centers {
        TileCenters::Anywhere => rng.random_range(0.0..n as f64),
        TileCenters::Inside if n > out => rng.random_range(half..=n as f64 - 1.0 - half),
        TileCenters::Inside => (n as f64 - 1.0) / 2.0,
    }
}

/// Draws the sample of one step: a random image, a random tile centre (see
/// [`TileCenters`]), rotation/flip/elastic deformation and gray-value change as configured.
pub fn draw_sample(set: &[TrainImage], tile: usize, out: usize, aug: &AugmentConfig, rng: &mut ChaCha8Rng) -> Sample {
    let img = &set[rng.random_range(0..set.len())];
    let cx = center_along(img.image.width, out, aug.tile_centers, rng);
    let center = (cx, center_along(img.image.height, out, aug.tile_centers, rng));
    let transform = Transform::random(center, aug, rng);
    let gray = GrayChange::random(aug, rng);
    extract(img, tile, out, &transform, &gray, rng)
}

/// Resamples one tile through `transform`: the input by bicubic interpolation, classes by
/// nearest neighbour and weights bilinearly on the central `out x out` region.
pub fn extract(
    img: &TrainImage,
    tile: usize,
    out: usize,
    t: &Transform,
    gray: &GrayChange,
    rng: &mut ChaCha8Rng,
) -> Sample {
    let (w, h) = img.image.size();
    let coords: Vec<(f64, f64)> =
        (0..tile * tile).map(|i| t.source((i % tile) as f64, (i / tile) as f64, tile, tile, 0.0)).collect();
    let mut input = Vec::with_capacity(img.image.channels * tile * tile);
    for c in 0..img.image.channels {
        let plane = img.image.plane(c);
        let mut v: Vec<f32> = coords.iter().map(|&(x, y)| sample_bicubic(plane, w, h, x, y)).collect();
        gray.apply(&mut v, rng);
        let (g, b) = (img.gain[c], img.bias[c]);
        v.iter_mut().for_each(|x| *x = *x * g + b);
        input.extend(v);
    }
    let off = (tile - out) / 2;
    let mut classes = Vec::with_capacity(out * out);
    let mut weights = Vec::with_capacity(out * out);
    for v in 0..out {
        for u in 0..out {
            let (x, y) = coords[(v + off) * tile + u + off];
            classes.push(sample_nearest(&img.classes.data, w, h, x, y));
            weights.push(sample_bilinear(&img.weights.data, w, h, x, y));
        }
    }
    Sample { input, classes, weights }
}
