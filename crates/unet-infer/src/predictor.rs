//! The predictor: a model, its input normalisation and a tile size; turns images into
//! class probabilities by overlap-tile, streaming one batch of tiles at a time.

use burn::tensor::activation::softmax;
use burn::tensor::{Tensor, TensorData};
use unet_io::Image;
use unet_nn::{Geometry, Normalization, UNet, UNetConfig, UnetBackend};

use crate::error::{InferError, Result};
use crate::memory::{available_memory_mb, estimate_tile_memory_mb};
use crate::mirror::mirror_window;
use crate::probabilities::Probabilities;
use crate::tiling::TilePlan;
use crate::tta::SYMMETRIES;

/// How to tile.
#[derive(Debug, Clone, Default)]
pub struct PredictorOptions {
    /// Input tile size; `None` picks the largest that fits `memory_mb`.
    pub tile: Option<usize>,
    /// Tiles per forward pass (at least 1).
    pub batch_tiles: usize,
    /// Memory budget for one batch of tiles; `None`: half the available memory.
    pub memory_mb: Option<f64>,
}

/// A model ready to predict.
pub struct Predictor<B: UnetBackend> {
    model: UNet<B>,
    config: UNetConfig,
    normalization: Normalization,
    device: B::Device,
    tile: usize,
    batch: usize,
}

/// Largest tile considered by the automatic choice.
const MAX_AUTO_TILE: usize = 1100;

impl<B: UnetBackend> Predictor<B> {
    /// Wraps a model; checks or chooses the tile size.
    pub fn new(
        model: UNet<B>,
        config: UNetConfig,
        normalization: Normalization,
        device: B::Device,
        opts: &PredictorOptions,
    ) -> Result<Self> {
        let geo = Geometry::of(&config);
        let batch = opts.batch_tiles.max(1);
        let smallest = geo.input_for_output(geo.step());
        let tile = match opts.tile {
            Some(t) => {
                geo.output(t)?;
                if t < smallest {
                    return Err(InferError::Tile(format!(
                        "tile {t} is too small to tile an image; use at least {smallest}"
                    )));
                }
                t
            }
            None => {
                let budget = opts.memory_mb.unwrap_or_else(|| available_memory_mb() * 0.5);
                let fits = geo
                    .valid_sizes(smallest, MAX_AUTO_TILE)
                    .into_iter()
                    .filter(|&t| estimate_tile_memory_mb(&config, t, batch) <= budget)
                    .max();
                fits.ok_or_else(|| {
                    InferError::Tile(format!(
                        "no tile fits the memory budget of {budget:.0} MB (the smallest, {smallest}, needs {:.0} MB); raise the budget or free memory",
                        estimate_tile_memory_mb(&config, smallest, batch)
                    ))
                })?
            }
        };
        Ok(Predictor { model, config, normalization, device, tile, batch })
    }

    /// The input tile size in use.
    pub fn tile(&self) -> usize {
        self.tile
    }

    /// The network config.
    pub fn config(&self) -> &UNetConfig {
        &self.config
    }

    /// Normalised planes of an image, checked against the model's input channels.
    pub fn normalize(&self, image: &Image) -> Result<Vec<Vec<f32>>> {
        if image.channels != self.config.in_channels {
            return Err(InferError::Channels {
                found: image.channels,
                expected: self.config.in_channels,
                fix: if self.config.in_channels == 1 {
                    "convert the image to gray"
                } else {
                    "give images with as many channels as the training images"
                },
            });
        }
        if image.width == 0 || image.height == 0 {
            return Err(InferError::Empty { width: image.width, height: image.height });
        }
        let bad = image.data.iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            return Err(InferError::NotFinite { count: bad });
        }
        Ok((0..image.channels)
            .map(|c| {
                let mut p = image.plane(c).to_vec();
                self.normalization.apply(&mut p, image.kind.max_value());
                p
            })
            .collect())
    }

    /// Class probabilities of an image; `progress(done, total)` after each batch of tiles.
    pub fn predict(&self, image: &Image, progress: &dyn Fn(usize, usize)) -> Result<Probabilities> {
        let planes = self.normalize(image)?;
        self.predict_planes(&planes, image.width, image.height, progress)
    }

    /// Class probabilities averaged over the 8 symmetries of the square, each mapped back
    /// before averaging (test-time augmentation).
    pub fn predict_tta(&self, image: &Image, progress: &dyn Fn(usize, usize)) -> Result<Probabilities> {
        let planes = self.normalize(image)?;
        let (w, h) = (image.width, image.height);
        let mut sum = Probabilities::zeros(w, h, self.config.classes);
        for (i, s) in SYMMETRIES.iter().enumerate() {
            let moved: Vec<Vec<f32>> = planes.iter().map(|p| s.apply(p, w, h)).collect();
            let (mw, mh) = s.size(w, h);
            let p = self.predict_planes(&moved, mw, mh, &|d, t| progress(i * t + d, 8 * t))?;
            let n = w * h;
            for k in 0..self.config.classes {
                let back = s.invert(p.class(k), mw, mh);
                sum.data[k * n..(k + 1) * n].iter_mut().zip(back).for_each(|(a, b)| *a += b);
            }
        }
        sum.data.iter_mut().for_each(|v| *v /= 8.0);
        Ok(sum)
    }

    /// Overlap-tile prediction of normalised planes.
    pub fn predict_planes(
        &self,
        planes: &[Vec<f32>],
        w: usize,
        h: usize,
        progress: &dyn Fn(usize, usize),
    ) -> Result<Probabilities> {
        let geo = Geometry::of(&self.config);
        let plan = TilePlan::new(&geo, self.tile, h, w)?;
        let (k, c) = (self.config.classes, self.config.in_channels);
        let (th, tw, oh, ow) = (plan.tile_h, plan.tile_w, plan.net_out_h, plan.net_out_w);
        let mut out = Probabilities::zeros(w, h, k);
        let mut weight = if plan.blend { vec![0f32; w * h] } else { Vec::new() };
        let window = if plan.blend { gaussian_window(oh, ow) } else { Vec::new() };
        let n = w * h;
        let total = plan.tiles.len();
        for (bi, chunk) in plan.tiles.chunks(self.batch).enumerate() {
            let mut input = vec![0f32; chunk.len() * c * th * tw];
            for (ti, t) in chunk.iter().enumerate() {
                for (ci, p) in planes.iter().enumerate() {
                    let o = (ti * c + ci) * th * tw;
                    mirror_window(p, (w, h), (t.in_y, t.in_x), (th, tw), &mut input[o..o + th * tw]);
                }
            }
            let x = Tensor::<B, 4>::from_data(TensorData::new(input, [chunk.len(), c, th, tw]), &self.device);
            let probs =
                softmax(self.model.forward(x), 1).into_data().convert::<f32>().to_vec::<f32>().expect("f32 output");
            for (ti, t) in chunk.iter().enumerate() {
                for cls in 0..k {
                    let src = &probs[(ti * k + cls) * oh * ow..(ti * k + cls + 1) * oh * ow];
                    for y in 0..t.out_h {
                        let srow = (t.skip_y + y) * ow + t.skip_x;
                        let drow = cls * n + (t.out_y + y) * w + t.out_x;
                        if plan.blend {
                            for x in 0..t.out_w {
                                out.data[drow + x] += window[srow + x] * src[srow + x];
                            }
                        } else {
                            out.data[drow..drow + t.out_w].copy_from_slice(&src[srow..srow + t.out_w]);
                        }
                    }
                }
                if plan.blend {
                    for y in 0..t.out_h {
                        let srow = (t.skip_y + y) * ow + t.skip_x;
                        let drow = (t.out_y + y) * w + t.out_x;
                        for x in 0..t.out_w {
                            weight[drow + x] += window[srow + x];
                        }
                    }
                }
            }
            progress(((bi + 1) * self.batch).min(total), total);
        }
        if plan.blend {
            for cls in 0..k {
                out.data[cls * n..(cls + 1) * n].iter_mut().zip(&weight).for_each(|(v, wt)| *v /= wt);
            }
        }
        Ok(out)
    }
}

/// Separable Gaussian window (sigma = size / 8) for blending same-padding tiles.
fn gaussian_window(h: usize, w: usize) -> Vec<f32> {
    let g = |n: usize| -> Vec<f32> {
        let s = (n as f32 / 8.0).max(1.0);
        let c = (n as f32 - 1.0) / 2.0;
        (0..n).map(|i| (-((i as f32 - c).powi(2)) / (2.0 * s * s)).exp().max(1e-4)).collect()
    };
    let (gy, gx) = (g(h), g(w));
    gy.iter().flat_map(|a| gx.iter().map(move |b| a * b)).collect()
}
