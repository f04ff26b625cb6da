//! The predictor: a model, its input normalisation and a tile size; turns images into
//! class probabilities by overlap-tile, streaming one batch of tiles at a time.

use burn::tensor::activation::softmax;
use burn::tensor::{Tensor, TensorData};
use unet_grid::Grid;
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

    /// The network input of an image: its channels normalised, checked against the
    /// model's input channels, size and values.
    pub fn normalize(&self, image: &Image) -> Result<Grid<f32>> {
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
        let mut input = image.grid.clone();
        for c in 0..input.channels {
            self.normalization.apply(input.plane_mut(c), image.kind.max_value());
        }
        Ok(input)
    }

    /// Class probabilities of an image; `progress(done, total)` after each batch of tiles.
    pub fn predict(&self, image: &Image, progress: &dyn Fn(usize, usize)) -> Result<Probabilities> {
        self.predict_normalized(&self.normalize(image)?, progress)
    }

    /// Class probabilities averaged over the 8 symmetries of the square, each mapped back
    /// before averaging (test-time augmentation).
    pub fn predict_tta(&self, image: &Image, progress: &dyn Fn(usize, usize)) -> Result<Probabilities> {
        let input = self.normalize(image)?;
        let mut sum = Probabilities::filled(image.width, image.height, self.config.classes, 0.0);
        for (i, s) in SYMMETRIES.iter().enumerate() {
            let p = self.predict_normalized(&s.apply(&input), &|d, t| progress(i * t + d, 8 * t))?;
            sum.data.iter_mut().zip(s.invert(&p).data).for_each(|(a, b)| *a += b);
        }
        sum.data.iter_mut().for_each(|v| *v /= 8.0);
        Ok(sum)
    }

    /// Overlap-tile prediction of a network input (what [`Predictor::normalize`] gives).
    pub fn predict_normalized(&self, input: &Grid<f32>, progress: &dyn Fn(usize, usize)) -> Result<Probabilities> {
        let (w, h) = input.size();
        self.check_input(input)?;
        let region = Region { x: 0, y: 0, width: w, height: h };
        let plan = TilePlan::new(&Geometry::of(&self.config), self.tile, h, w)?;
        let fetch = |c: usize, (y0, x0): (isize, isize), (th, tw): (usize, usize), out: &mut [f32]| {
            mirror_window(input.plane(c), (w, h), (y0, x0), (th, tw), out)
        };
        self.run_tiles(&plan, &plan.tiles, region, &fetch, progress)
    }

    /// The part of the image that [`Predictor::predict_region`] reads for the output
    /// `region` of a `width x height` image: the tiles that cover `region` with their
    /// borders, mirrored into the image (an image smaller than a tile is read whole).
    pub fn region_input(&self, region: Region, (width, height): (usize, usize)) -> Result<Region> {
        let plan = TilePlan::new(&Geometry::of(&self.config), self.tile, height, width)?;
        let tiles: Vec<_> = plan.tiles.iter().filter(|t| region.meets(t)).collect();
        let span = |starts: &mut dyn Iterator<Item = isize>, t: usize, n: usize| -> (usize, usize) {
            let (mut lo, mut hi) = (usize::MAX, 0);
            for s in starts {
                for i in s..s + t as isize {
                    let m = crate::mirror::mirror_index(i, n);
                    lo = lo.min(m);
                    hi = hi.max(m + 1);
                }
            }
            if lo == usize::MAX { (0, 0) } else { (lo, hi - lo) }
        };
        let mut ys = tiles.iter().map(|t| t.in_y).collect::<Vec<_>>();
        let mut xs = tiles.iter().map(|t| t.in_x).collect::<Vec<_>>();
        ys.dedup();
        xs.sort_unstable();
        xs.dedup();
        let (y, rh) = span(&mut ys.into_iter(), plan.tile_h, height);
        let (x, rw) = span(&mut xs.into_iter(), plan.tile_w, width);
        Ok(Region { x, y, width: rw, height: rh })
    }

    /// Class probabilities of the output `region` of a `width x height` image, from the
    /// network input of the part [`Predictor::region_input`] names (`input`, read at
    /// `input_at`, normalised with the whole image's affine maps). The tiles are the whole
    /// image's (the same plan, the same mirroring), so the result has the same bits as the
    /// same pixels of [`Predictor::predict_normalized`] on the whole image: a large image
    /// can be predicted block by block, in any order, by any number of processes.
    pub fn predict_region(
        &self,
        input: &Grid<f32>,
        input_at: Region,
        region: Region,
        (width, height): (usize, usize),
        progress: &dyn Fn(usize, usize),
    ) -> Result<Probabilities> {
        self.check_input(input)?;
        if input.size() != (input_at.width, input_at.height) {
            return Err(InferError::Region(format!(
                "the input is {:?} but its region is {}x{}",
                input.size(),
                input_at.width,
                input_at.height
            )));
        }
        if region.x + region.width > width || region.y + region.height > height {
            return Err(InferError::Region(format!("{region:?} lies outside the {width}x{height} image")));
        }
        let needed = self.region_input(region, (width, height))?;
        if !input_at.contains(&needed) {
            return Err(InferError::Region(format!(
                "the input {input_at:?} does not hold {needed:?}, which the tiles of {region:?} read"
            )));
        }
        let plan = TilePlan::new(&Geometry::of(&self.config), self.tile, height, width)?;
        let tiles: Vec<_> = plan.tiles.iter().copied().filter(|t| region.meets(t)).collect();
        let (iw, ix, iy) = (input_at.width, input_at.x, input_at.y);
        let fetch = |c: usize, (y0, x0): (isize, isize), (th, tw): (usize, usize), out: &mut [f32]| {
            let plane = input.plane(c);
            let cols: Vec<usize> = (0..tw).map(|x| crate::mirror::mirror_index(x0 + x as isize, width) - ix).collect();
            for y in 0..th {
                let row = (crate::mirror::mirror_index(y0 + y as isize, height) - iy) * iw;
                for (d, &cx) in out[y * tw..(y + 1) * tw].iter_mut().zip(&cols) {
                    *d = plane[row + cx];
                }
            }
        };
        self.run_tiles(&plan, &tiles, region, &fetch, progress)
    }

    fn check_input(&self, input: &Grid<f32>) -> Result<()> {
        if input.channels != self.config.in_channels || input.len() != input.plane_len() * input.channels {
            return Err(InferError::Channels {
                found: input.channels,
                expected: self.config.in_channels,
                fix: "give the network input of Predictor::normalize",
            });
        }
        Ok(())
    }

    /// Runs `tiles` of `plan` through the network in batches and writes their outputs,
    /// clipped to `region`, into a grid of the region's size. `fetch(channel, (y, x), (h,
    /// w), out)` fills one input window whose top-left lies at image position `(y, x)`.
    fn run_tiles(
        &self,
        plan: &TilePlan,
        tiles: &[crate::tiling::Tile],
        region: Region,
        fetch: &Fetch<'_>,
        progress: &dyn Fn(usize, usize),
    ) -> Result<Probabilities> {
        let (k, c) = (self.config.classes, self.config.in_channels);
        let (th, tw, oh, ow) = (plan.tile_h, plan.tile_w, plan.net_out_h, plan.net_out_w);
        let (w, h) = (region.width, region.height);
        let mut out = Probabilities::filled(w, h, k, 0.0);
        let mut weight = if plan.blend { vec![0f32; w * h] } else { Vec::new() };
        let window = if plan.blend { gaussian_window(oh, ow) } else { Vec::new() };
        let n = w * h;
        let total = tiles.len();
        for (bi, chunk) in tiles.chunks(self.batch).enumerate() {
            let mut batch = vec![0f32; chunk.len() * c * th * tw];
            for (ti, t) in chunk.iter().enumerate() {
                for ci in 0..c {
                    let o = (ti * c + ci) * th * tw;
                    fetch(ci, (t.in_y, t.in_x), (th, tw), &mut batch[o..o + th * tw]);
                }
            }
            let x = Tensor::<B, 4>::from_data(TensorData::new(batch, [chunk.len(), c, th, tw]), &self.device);
            let probs =
                softmax(self.model.forward(x), 1).into_data().convert::<f32>().to_vec::<f32>().expect("f32 output");
            for (ti, t) in chunk.iter().enumerate() {
                // The part of the tile's written output inside the region.
                let (y0, y1) = (t.out_y.max(region.y), (t.out_y + t.out_h).min(region.y + h));
                let (x0, x1) = (t.out_x.max(region.x), (t.out_x + t.out_w).min(region.x + w));
                if y0 >= y1 || x0 >= x1 {
                    continue;
                }
                let len = x1 - x0;
                for cls in 0..k {
                    let src = &probs[(ti * k + cls) * oh * ow..(ti * k + cls + 1) * oh * ow];
                    for y in y0..y1 {
                        let srow = (t.skip_y + y - t.out_y) * ow + t.skip_x + x0 - t.out_x;
                        let drow = cls * n + (y - region.y) * w + x0 - region.x;
                        if plan.blend {
                            for x in 0..len {
                                out.data[drow + x] += window[srow + x] * src[srow + x];
                            }
                        } else {
                            out.data[drow..drow + len].copy_from_slice(&src[srow..srow + len]);
                        }
                    }
                }
                if plan.blend {
                    for y in y0..y1 {
                        let srow = (t.skip_y + y - t.out_y) * ow + t.skip_x + x0 - t.out_x;
                        let drow = (y - region.y) * w + x0 - region.x;
                        for x in 0..len {
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

/// Fills one input window: `(channel, (y, x) of its top-left in the image, (h, w), out)`.
type Fetch<'a> = dyn Fn(usize, (isize, isize), (usize, usize), &mut [f32]) + 'a;

/// A rectangle of an image: `width x height` pixels from column `x`, row `y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Region {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

impl Region {
    /// True when `other` lies inside this region.
    pub fn contains(&self, other: &Region) -> bool {
        other.x >= self.x
            && other.y >= self.y
            && other.x + other.width <= self.x + self.width
            && other.y + other.height <= self.y + self.height
    }

    /// True when a tile writes some pixel of this region.
    fn meets(&self, t: &crate::tiling::Tile) -> bool {
        t.out_x < self.x + self.width
            && self.x < t.out_x + t.out_w
            && t.out_y < self.y + self.height
            && self.y < t.out_y + t.out_h
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
