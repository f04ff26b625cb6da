//! Planning: [`plan`] fixes everything the workers share (the tile, the whole image's
//! normalisation, the shard edge, the blocks), creates the output store and writes the
//! [`Plan`] into it; [`load_plan`] reads it back.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use unet_infer::Region;
use unet_nn::{Geometry, Normalization};
use unet_zarr::{OutputSpec, ProbDtype, ProbSpec, ZarrImage, ZarrOutput};

use crate::error::{BlocksError, Result};
use crate::layout::{self, PLAN_FILE};
use crate::model;

/// The plan's `format` tag.
pub(crate) const PLAN_FORMAT: &str = "unet-plan";
/// The plan's layout version.
pub(crate) const PLAN_VERSION: u32 = 1;

/// Values one strip of the input holds at most when [`plan`] reads a plane for its
/// statistics (16 Mi values, 64 MiB as `f32`; at least one row).
const STRIP_VALUES: usize = 1 << 24;

/// How to plan a block-by-block prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOptions {
    /// Input tile size of the network; `None` picks the largest that fits `memory_mb`.
    pub tile: Option<usize>,
    /// Memory budget in MB for one batch of tiles when the tile is chosen automatically;
    /// `None`: [`DEFAULT_TILE_BUDGET_MB`] or half the available memory, whichever is less
    /// (a block's tile should leave room for other tasks on a shared node).
    pub memory_mb: Option<f64>,
    /// Tiles per forward pass (at least 1).
    pub batch_tiles: usize,
    /// Requested block edge in pixels (default 2048): the shard edge of the output is the
    /// smallest multiple of the tiles' output step that is at least this.
    pub block: usize,
    /// Largest edge of the output's inner chunks in pixels (default 256); the chunk edge is
    /// the largest divisor of the tiles' output step up to this.
    pub chunk: usize,
    /// Store the class probabilities, as `f32` or quantised `u8`; `None` stores none.
    pub probabilities: Option<ProbDtype>,
    /// Mask = foreground probability `> threshold` (0/1); `None`: the most probable class's
    /// index.
    pub threshold: Option<f32>,
    /// Store instance labels: the 4-connected components of the mask's non-zero pixels.
    pub instances: bool,
    /// Instances smaller than this many pixels are removed (0 and 1 keep all).
    pub min_size: usize,
}

impl Default for PlanOptions {
    /// Automatic tile, one tile per batch, 2048-pixel blocks of 256-pixel chunks, no
    /// probabilities, argmax mask, no instance labels, `min_size` 1.
    fn default() -> Self {
        PlanOptions {
            tile: None,
            memory_mb: None,
            batch_tiles: 1,
            block: 2048,
            chunk: 256,
            probabilities: None,
            threshold: None,
            instances: false,
            min_size: 1,
        }
    }
}

/// One block: a whole shard of the output on one plane, and the part of the input its tiles
/// read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Index in [`Plan::blocks`].
    pub id: usize,
    /// The plane (z/t index) it belongs to.
    pub plane: usize,
    /// The output region it writes: exactly one shard of the output, clipped to the image.
    #[serde(with = "RegionDef")]
    pub write: Region,
    /// The input region its tiles read ([`unet_infer::Predictor::region_input`]).
    #[serde(with = "RegionDef")]
    pub read: Region,
}

/// Serde form of [`Region`].
#[derive(Serialize, Deserialize)]
#[serde(remote = "Region")]
struct RegionDef {
    x: usize,
    y: usize,
    width: usize,
    height: usize,
}

/// A planned block-by-block prediction; serde JSON, stored in the output store as
/// `OUT/unet-plan.json` (beside the Zarr nodes, not inside an array).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Always `"unet-plan"`.
    pub format: String,
    /// Layout version, 1.
    pub version: u32,
    /// The input OME-Zarr image (absolute).
    pub input: PathBuf,
    /// The output OME-Zarr store (absolute).
    pub output: PathBuf,
    /// The model: an absolute file path or a built-in model's name.
    pub model: String,
    /// sha256 (lower-case hex) of the model file's bytes; every worker checks it.
    pub model_sha256: String,
    /// Input tile size of the network.
    pub tile: usize,
    /// Tiles per forward pass.
    pub batch_tiles: usize,
    /// Image width.
    pub width: usize,
    /// Image height.
    pub height: usize,
    /// Number of planes (z and t flattened).
    pub planes: usize,
    /// Input channels.
    pub channels: usize,
    /// Classes of the model.
    pub classes: usize,
    /// The whole image's normalisation: `affine[plane][channel] = [offset, scale]`, the map
    /// `(v - offset) * scale` ([`unet_nn::Affine`]). Stored as decimal `f64` of the `f32`
    /// values, so that they read back with the same bits.
    #[serde(serialize_with = "ser_affine", deserialize_with = "de_affine")]
    pub affine: Vec<Vec<[f32; 2]>>,
    /// Probabilities stored, if any, and their type.
    pub probabilities: Option<ProbDtype>,
    /// The mask's foreground threshold; `None`: argmax.
    #[serde(serialize_with = "ser_threshold", deserialize_with = "de_threshold")]
    pub threshold: Option<f32>,
    /// Whether instance labels are stored.
    pub instances: bool,
    /// Smallest instance kept, in pixels.
    pub min_size: usize,
    /// Shard edge of the output = block edge, in pixels.
    pub shard: usize,
    /// The blocks: plane by plane, shards in raster order; `blocks[i].id == i`.
    pub blocks: Vec<Block>,
}

fn ser_affine<S: Serializer>(a: &[Vec<[f32; 2]>], s: S) -> std::result::Result<S::Ok, S::Error> {
    let wide: Vec<Vec<[f64; 2]>> =
        a.iter().map(|p| p.iter().map(|&[o, k]| [f64::from(o), f64::from(k)]).collect()).collect();
    wide.serialize(s)
}

fn de_affine<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<Vec<[f32; 2]>>, D::Error> {
    let wide = Vec::<Vec<[f64; 2]>>::deserialize(d)?;
    Ok(wide.into_iter().map(|p| p.into_iter().map(|[o, k]| [o as f32, k as f32]).collect()).collect())
}

fn ser_threshold<S: Serializer>(t: &Option<f32>, s: S) -> std::result::Result<S::Ok, S::Error> {
    t.map(f64::from).serialize(s)
}

fn de_threshold<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<f32>, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.map(|t| t as f32))
}

impl Plan {
    /// The plan file of this plan's output store.
    pub fn path(&self) -> PathBuf {
        self.output.join(PLAN_FILE)
    }

    /// Checks what the workers rely on: the tags, the affine table's shape, the block ids.
    fn check(&self, path: &Path) -> Result<()> {
        let bad = |reason: String| Err(BlocksError::corrupt(path, reason));
        if self.format != PLAN_FORMAT {
            return bad(format!("format is \"{}\", not \"{PLAN_FORMAT}\"; this is not a unet plan", self.format));
        }
        if self.version != PLAN_VERSION {
            return bad(format!(
                "plan version {} is not supported (this unet reads version {PLAN_VERSION}); plan again with this unet",
                self.version
            ));
        }
        if self.affine.len() != self.planes || self.affine.iter().any(|p| p.len() != self.channels) {
            return bad(format!(
                "the affine table is not {} planes x {} channels; plan again",
                self.planes, self.channels
            ));
        }
        for (i, b) in self.blocks.iter().enumerate() {
            if b.id != i || b.plane >= self.planes {
                return bad(format!("block {i} has id {} and plane {}; plan again", b.id, b.plane));
            }
        }
        Ok(())
    }
}

/// Plans a block-by-block prediction of the OME-Zarr image `input` with `model` (a model file
/// or a built-in model's name) into a new output store `output`.
///
/// The tile memory budget of a plan when none is given, in MB.
pub const DEFAULT_TILE_BUDGET_MB: f64 = 1024.0;

/// Opens the input, loads the model and builds its predictor to fix the tile (the automatic
/// choice when [`PlanOptions::tile`] is `None`), computes the whole image's normalisation per
/// plane and channel from strips of rows (bounded memory, the bits of the whole plane at
/// once), chooses the shard and chunk edges ([`PlanOptions::block`], [`PlanOptions::chunk`]:
/// no tile straddles two blocks), creates the output store (the mask always; probabilities and
/// instance labels as asked; the planes and the pixel size of the input) with one block per
/// shard and plane, and writes the plan into it (`OUT/unet-plan.json`, atomically).
///
/// Blocks need a valid-padding model; test-time augmentation is not offered.
///
/// # Errors
/// [`BlocksError::Options`] for out-of-range options, [`BlocksError::ModelNotFound`] /
/// [`BlocksError::Model`] for the model, [`BlocksError::SamePadding`], [`BlocksError::Input`]
/// when the input's channels do not match the model or it holds NaN or infinite values,
/// [`BlocksError::Zarr`] when the input cannot be read or `output` exists, and write errors.
pub fn plan(input: &Path, model: &str, output: &Path, opts: &PlanOptions) -> Result<Plan> {
    check_options(opts)?;
    let image = ZarrImage::open(input)?;
    let input = input.canonicalize().map_err(|e| BlocksError::io(input, e))?;
    let output = std::path::absolute(output).map_err(|e| BlocksError::io(output, e))?;
    let model = model::load(model)?;
    let config = &model.file.config;
    let (width, height, planes, channels) = (image.width(), image.height(), image.planes(), image.channels());
    if channels != config.in_channels {
        return Err(BlocksError::Input {
            input,
            reason: format!(
                "has {channels} channel(s) but the model {} takes {}; give an image with the model's channels",
                model.name, config.in_channels
            ),
        });
    }
    if opts.threshold.is_none() && config.classes > 256 {
        return Err(BlocksError::Options(format!(
            "the model has {} classes, whose indices do not fit the 8-bit mask; give a threshold",
            config.classes
        )));
    }
    let batch_tiles = opts.batch_tiles.max(1);
    let budget =
        opts.memory_mb.unwrap_or_else(|| (unet_infer::available_memory_mb() * 0.5).min(DEFAULT_TILE_BUDGET_MB));
    let predictor = model.predictor(opts.tile, batch_tiles, Some(budget))?;
    let tile = predictor.tile();
    let (shard, chunk) = shard_edge(&Geometry::of(config), tile, opts.chunk, opts.block)?;

    let affine = affines(&image, &input, &model.file.normalization)?;

    let (gx, gy) = (width.div_ceil(shard), height.div_ceil(shard));
    let mut blocks = Vec::with_capacity(planes * gx * gy);
    for plane in 0..planes {
        for sy in 0..gy {
            for sx in 0..gx {
                let (x, y) = (sx * shard, sy * shard);
                let write = Region { x, y, width: shard.min(width - x), height: shard.min(height - y) };
                let read = predictor
                    .region_input(write, (width, height))
                    .map_err(|source| BlocksError::Predict { context: format!("block at {write:?}"), source })?;
                blocks.push(Block { id: blocks.len(), plane, write, read });
            }
        }
    }
    if opts.instances && blocks.len() as u64 >= u64::from(u32::MAX) {
        return Err(BlocksError::Options(format!(
            "{} blocks are too many for block-local instance ids (at most 2^32 - 2); choose larger blocks",
            blocks.len()
        )));
    }

    let spec = OutputSpec {
        width,
        height,
        planes,
        probabilities: opts.probabilities.map(|dtype| ProbSpec { classes: config.classes, dtype }),
        mask: true,
        instances: opts.instances,
        chunk,
        shard,
        pixel_size: image.pixel_size().cloned(),
    };
    ZarrOutput::create(&output, &spec)?;

    let plan = Plan {
        format: PLAN_FORMAT.into(),
        version: PLAN_VERSION,
        input,
        output,
        model: model.name,
        model_sha256: model.sha256,
        tile,
        batch_tiles,
        width,
        height,
        planes,
        channels,
        classes: config.classes,
        affine,
        probabilities: opts.probabilities,
        threshold: opts.threshold,
        instances: opts.instances,
        min_size: opts.min_size,
        shard,
        blocks,
    };
    layout::write_json(&plan.path(), &plan)?;
    Ok(plan)
}

/// Reads a plan: `path` is the output store or its `unet-plan.json`.
///
/// # Errors
/// [`BlocksError::Io`] when there is no plan there, [`BlocksError::Json`] when it does not
/// parse, [`BlocksError::Corrupt`] for another format or version or an inconsistent plan.
pub fn load_plan(path: &Path) -> Result<Plan> {
    let file = if path.is_dir() { path.join(PLAN_FILE) } else { path.to_path_buf() };
    let plan: Plan = layout::read_json(&file)?.ok_or_else(|| {
        BlocksError::io(
            &file,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no plan here; give the output store that plan() made"),
        )
    })?;
    plan.check(&file)?;
    Ok(plan)
}

fn check_options(opts: &PlanOptions) -> Result<()> {
    let bad = |m: String| Err(BlocksError::Options(m));
    if opts.block == 0 {
        return bad("block must be at least 1 pixel (e.g. 2048)".into());
    }
    if opts.chunk == 0 {
        return bad("chunk must be at least 1 pixel (e.g. 256)".into());
    }
    if let Some(t) = opts.threshold
        && !(0.0..1.0).contains(&t)
    {
        return bad(format!("threshold {t} is outside [0, 1); give a foreground probability such as 0.5"));
    }
    if let Some(m) = opts.memory_mb
        && !(m.is_finite() && m > 0.0)
    {
        return bad(format!("memory_mb {m} must be a positive number of megabytes"));
    }
    Ok(())
}

/// The shard and chunk edges: shards are the smallest multiple of the tiles' output step
/// that is at least `block` (so no tile straddles two blocks), and chunks the largest
/// divisor of the step that is at most `chunk` (so chunks tile the shards). A least common
/// multiple of step and chunk instead would make shards of 14,592 px for a step of 912 and
/// 256-px chunks: one block for most images.
pub(crate) fn shard_edge(geo: &Geometry, tile: usize, chunk: usize, block: usize) -> Result<(usize, usize)> {
    let g = geo.step();
    let step = (geo.output(tile)? / g * g).max(1);
    let chunk = (1..=chunk.min(step)).rev().find(|d| step.is_multiple_of(*d)).unwrap_or(1);
    Ok((block.div_ceil(step).max(1) * step, chunk))
}

/// The whole image's affine map per plane and channel, each plane read in strips of rows.
fn affines(image: &ZarrImage, input: &Path, norm: &Normalization) -> Result<Vec<Vec<[f32; 2]>>> {
    let (w, h, channels) = (image.width(), image.height(), image.channels());
    let rows = (STRIP_VALUES / (w * channels).max(1)).clamp(1, h.max(1));
    let max = image.kind().max_value();
    let mut table = Vec::with_capacity(image.planes());
    for plane in 0..image.planes() {
        let mut row = Vec::with_capacity(channels);
        for c in 0..channels {
            let (mut passes, mut bad) = (0usize, 0usize);
            let a = norm.affine_streamed(w * h, max, |visit| -> Result<()> {
                passes += 1;
                for y0 in (0..h).step_by(rows) {
                    let strip = image.read_region(plane, 0, y0, w, rows.min(h - y0))?;
                    let piece = strip.plane(c);
                    if passes == 1 {
                        bad += piece.iter().filter(|v| !v.is_finite()).count();
                    }
                    visit(piece);
                }
                Ok(())
            })?;
            if bad > 0 {
                return Err(BlocksError::Input {
                    input: input.to_path_buf(),
                    reason: format!(
                        "plane {plane}, channel {c} holds {bad} NaN or infinite value(s); replace them with finite values before predicting"
                    ),
                });
            }
            row.push([a.offset, a.scale]);
        }
        table.push(row);
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use unet_nn::Padding;

    #[test]
    fn shards_are_whole_steps_and_chunks_divide_them() {
        let geo = Geometry { depth: 2, padding: Padding::Valid };
        // Tile 60 of a depth-2 net: output 20, step 20.
        assert_eq!(geo.output(60).unwrap(), 20);
        assert_eq!(shard_edge(&geo, 60, 20, 40).unwrap(), (40, 20));
        assert_eq!(shard_edge(&geo, 60, 20, 41).unwrap(), (60, 20));
        assert_eq!(shard_edge(&geo, 60, 32, 64).unwrap(), (80, 20));
        assert_eq!(shard_edge(&geo, 60, 32, 1).unwrap(), (20, 20));
        assert_eq!(shard_edge(&geo, 60, 7, 1).unwrap(), (20, 5));
        // The paper's net at tile 572: output 388, step 384 (multiple of 16); chunk 256.
        let geo = Geometry { depth: 4, padding: Padding::Valid };
        assert_eq!(shard_edge(&geo, 572, 256, 2048).unwrap(), (6 * 384, 192));
        // The largest automatic tile, 1100: output 916, step 912 = 16 * 57; chunks of 228.
        assert_eq!(shard_edge(&geo, 1100, 256, 2048).unwrap(), (3 * 912, 228));
        assert!(shard_edge(&geo, 571, 256, 2048).is_err());
    }

    #[test]
    fn plans_round_trip_with_the_same_bits() {
        let plan = Plan {
            format: PLAN_FORMAT.into(),
            version: PLAN_VERSION,
            input: "/in.zarr".into(),
            output: "/out.zarr".into(),
            model: "isbi2012-em".into(),
            model_sha256: "00".into(),
            tile: 60,
            batch_tiles: 1,
            width: 10,
            height: 10,
            planes: 1,
            channels: 1,
            classes: 2,
            affine: vec![vec![[0.1f32, 1.0 / 3.0]], vec![[f32::MIN_POSITIVE, 16_777_217.0]]],
            probabilities: Some(ProbDtype::U8),
            threshold: Some(0.3),
            instances: true,
            min_size: 5,
            shard: 40,
            blocks: vec![Block {
                id: 0,
                plane: 0,
                write: Region { x: 0, y: 0, width: 10, height: 10 },
                read: Region { x: 0, y: 0, width: 10, height: 10 },
            }],
        };
        let back: Plan = serde_json::from_str(&serde_json::to_string(&plan).unwrap()).unwrap();
        assert_eq!(back, plan);
        for (a, b) in back.affine.iter().flatten().zip(plan.affine.iter().flatten()) {
            assert_eq!((a[0].to_bits(), a[1].to_bits()), (b[0].to_bits(), b[1].to_bits()));
        }
        assert_eq!(back.threshold.unwrap().to_bits(), 0.3f32.to_bits());
    }
}
