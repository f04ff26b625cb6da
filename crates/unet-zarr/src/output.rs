//! Writing outputs: [`ZarrOutput`] creates a sharded Zarr v3 / NGFF 0.5 store for one
//! prediction (probabilities, a mask label image, an instance label image), writes and reads
//! pixel regions of it, and [`finalize`](ZarrOutput::finalize)s it with a pyramid and the full
//! metadata.
//!
//! # Layout
//! ```text
//! out.ome.zarr/                 root group: the probabilities image (when there is one),
//!   zarr.json                   attributes "ome" (NGFF 0.5) and "unet" (the OutputSpec)
//!   0/ 1/ ...                   probabilities, float32 or uint8, [c, (z,) y, x]
//!   labels/                     group, "ome": {"labels": ["mask", "instances"]}
//!     mask/0/ 1/ ...            uint8 label image, [c = 1, (z,) y, x], with "image-label"
//!     instances/0/ 1/ ...       uint64 label image, [c = 1, (z,) y, x], with "image-label"
//! ```
//! Axes are `c, z, y, x` (or `c, y, x` with one plane): NGFF orders channel axes before space
//! axes, so z comes after c. Label images keep a channel axis of size 1, as NGFF asks label
//! images to have the dimensions of the image they label. Without probabilities the root
//! group's `ome` holds only the version (no `multiscales`), which is valid NGFF 0.5; open
//! `labels/mask` or `labels/instances` directly, each is a complete multiscale image.
//!
//! Every array is chunked in shards of `shard x shard` pixels (all channels, one plane), each
//! shard a `sharding_indexed` file of `chunk x chunk` inner chunks (one channel, one plane)
//! compressed with blosc (zstd, byte shuffle); the shard index has a crc32c checksum.
//!
//! # Concurrent writers
//! Several processes may write one store at once (after one [`create`](ZarrOutput::create),
//! each [`open`](ZarrOutput::open)s it) **only if they write disjoint whole shards**: a write
//! covering exactly the in-bounds part of whole shards (see [`shard_rect`](ZarrOutput::shard_rect))
//! writes only those shards' files. Any other write reads, modifies and rewrites every shard it
//! touches, which is correct for one writer but loses data when two writers touch one shard.
//! [`finalize`](ZarrOutput::finalize) runs once, after all writers are done.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zarrs::array::codec::{BloscCodec, BloscCompressionLevel, BloscCompressor, BloscShuffleMode};
use zarrs::array::{Array, ArrayBuilder, ArrayCreateError, ArraySubset, DataType, Element, ElementOwned, data_type};
use zarrs::filesystem::FilesystemStore;
use zarrs::group::GroupBuilder;

use crate::error::{Result, ZarrError};
use crate::ngff::{self, Downsampling, ImageDesc, PixelSize};
use crate::pyramid::{self, Geometry, Level};

/// Storage type of the probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbDtype {
    /// `float32`, stored as given.
    F32,
    /// `uint8` quantised: stored value `round(clamp(p, 0, 1) * 255)` (NaN stores 0); read back
    /// as `value / 255`.
    U8,
}

/// The probabilities image of an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbSpec {
    /// Number of classes (size of the channel axis).
    pub classes: usize,
    /// Storage type.
    pub dtype: ProbDtype,
}

/// What an output store holds. Stored in the root group's attributes under `"unet"`, so
/// [`ZarrOutput::open`] can read it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSpec {
    /// Image width in pixels (x).
    pub width: usize,
    /// Image height in pixels (y).
    pub height: usize,
    /// Number of planes, the input's z and t axes flattened into one z axis; 1 means no z axis.
    pub planes: usize,
    /// The probabilities image, if any.
    pub probabilities: Option<ProbSpec>,
    /// Whether to hold a `uint8` mask label image (`labels/mask`).
    pub mask: bool,
    /// Whether to hold a `uint64` instance label image (`labels/instances`).
    pub instances: bool,
    /// Edge of the square inner chunks, in pixels (e.g. 256).
    pub chunk: usize,
    /// Edge of the square shards, in pixels; a multiple of `chunk` (e.g. 2048).
    pub shard: usize,
    /// Pixel size for the NGFF `scale` transforms (copy it from the input when known); `None`
    /// writes scale 1 and no units.
    pub pixel_size: Option<PixelSize>,
}

impl OutputSpec {
    /// A spec for a `width x height` image with one plane, 256-pixel chunks in 2048-pixel
    /// shards, no pixel size, and no arrays yet (set `probabilities`, `mask`, `instances`).
    pub fn new(width: usize, height: usize) -> OutputSpec {
        OutputSpec {
            width,
            height,
            planes: 1,
            probabilities: None,
            mask: false,
            instances: false,
            chunk: 256,
            shard: 2048,
            pixel_size: None,
        }
    }

    /// Checks the spec; `path` is for the message.
    fn check(&self, path: &Path) -> Result<()> {
        let bad = |reason: String| Err(ZarrError::BadSpec { path: path.to_path_buf(), reason });
        if self.width == 0 || self.height == 0 || self.planes == 0 {
            return bad(format!(
                "width, height and planes must be at least 1 (got {}x{}, {} planes)",
                self.width, self.height, self.planes
            ));
        }
        const MAX: usize = 1 << 40;
        if self.width > MAX || self.height > MAX || self.planes > MAX {
            return bad("width, height and planes must be at most 2^40".into());
        }
        if self.chunk == 0 || self.chunk > 1 << 16 {
            return bad(format!("chunk must be 1..=65536 pixels (got {})", self.chunk));
        }
        if self.shard < self.chunk || !self.shard.is_multiple_of(self.chunk) {
            return bad(format!("shard ({}) must be a multiple of chunk ({})", self.shard, self.chunk));
        }
        if (self.shard / self.chunk).pow(2) > 1 << 20 {
            return bad(format!(
                "shard/chunk = {} gives too many chunks per shard (at most 1024^2)",
                self.shard / self.chunk
            ));
        }
        if let Some(p) = &self.probabilities
            && (p.classes == 0 || p.classes > 1 << 16)
        {
            return bad(format!("probabilities need 1..=65536 classes (got {})", p.classes));
        }
        if self.probabilities.is_none() && !self.mask && !self.instances {
            return bad("no arrays: set probabilities, mask or instances".into());
        }
        if let Some(px) = &self.pixel_size {
            let ok = |v: f64| v.is_finite() && v > 0.0;
            if !ok(px.x) || !ok(px.y) || px.z.is_some_and(|z| !ok(z)) {
                return bad(format!("pixel sizes must be finite and positive (got {px:?})"));
            }
        }
        Ok(())
    }
}

/// The `"unet"` root attribute.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UnetAttrs {
    /// Layout version of this crate's stores.
    format: u32,
    /// Number of pyramid levels written (1 until finalize).
    levels: usize,
    spec: OutputSpec,
}

const FORMAT: u32 = 1;

/// One image of the output (probabilities, mask or instances).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Probabilities,
    Mask,
    Instances,
}

impl Part {
    /// Group of the image, as a node path prefix (`""` for the root).
    fn group(self) -> &'static str {
        match self {
            Part::Probabilities => "",
            Part::Mask => "/labels/mask",
            Part::Instances => "/labels/instances",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Part::Probabilities => "probabilities",
            Part::Mask => "mask",
            Part::Instances => "instances",
        }
    }

    fn fix(self) -> &'static str {
        match self {
            Part::Probabilities => "OutputSpec { probabilities: Some(..), .. }",
            Part::Mask => "OutputSpec { mask: true, .. }",
            Part::Instances => "OutputSpec { instances: true, .. }",
        }
    }
}

/// An output store; see the [module documentation](self) for its layout and the rules for
/// concurrent writers.
pub struct ZarrOutput {
    path: PathBuf,
    spec: OutputSpec,
    store: Arc<FilesystemStore>,
    probabilities: Option<Array<FilesystemStore>>,
    mask: Option<Array<FilesystemStore>>,
    instances: Option<Array<FilesystemStore>>,
}

impl std::fmt::Debug for ZarrOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZarrOutput").field("path", &self.path).field("spec", &self.spec).finish()
    }
}

impl ZarrOutput {
    /// Creates a new store at `path` (its parent directories too) with the level-0 arrays and
    /// level-0 NGFF metadata, so the store is a valid OME-Zarr image before
    /// [`finalize`](Self::finalize).
    ///
    /// # Errors
    /// [`ZarrError::Exists`] if `path` exists, [`ZarrError::BadSpec`] for an invalid spec, and
    /// I/O errors.
    pub fn create(path: &Path, spec: &OutputSpec) -> Result<ZarrOutput> {
        spec.check(path)?;
        if path.symlink_metadata().is_ok() {
            return Err(ZarrError::Exists { path: path.to_path_buf() });
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| ZarrError::io(parent, e))?;
        }
        // create_dir (not _all) fails if another process created the path meanwhile.
        std::fs::create_dir(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => ZarrError::Exists { path: path.to_path_buf() },
            _ => ZarrError::io(path, e),
        })?;
        let store = Arc::new(FilesystemStore::new(path).map_err(|e| ZarrError::zarr(path, e))?);
        let mut out = ZarrOutput {
            path: path.to_path_buf(),
            spec: spec.clone(),
            store,
            probabilities: None,
            mask: None,
            instances: None,
        };
        for part in out.parts() {
            let array = out.create_array(part, 0, spec.width, spec.height)?;
            match part {
                Part::Probabilities => out.probabilities = Some(array),
                Part::Mask => out.mask = Some(array),
                Part::Instances => out.instances = Some(array),
            }
        }
        out.write_metadata(1)?;
        Ok(out)
    }

    /// Reopens a store made by [`create`](Self::create), reading the spec back from the root
    /// attributes (`"unet"`).
    ///
    /// # Errors
    /// [`ZarrError::NotZarr`] / [`ZarrError::BadMetadata`] when `path` is not such a store or
    /// its arrays are missing or do not match the spec.
    pub fn open(path: &Path) -> Result<ZarrOutput> {
        let meta_path = path.join("zarr.json");
        let meta: Value = match std::fs::read(&meta_path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| ZarrError::Json { path: meta_path.clone(), source: e })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ZarrError::NotZarr { path: path.to_path_buf() });
            }
            Err(e) => return Err(ZarrError::io(&meta_path, e)),
        };
        let unet = meta.get("attributes").and_then(|a| a.get("unet")).ok_or_else(|| {
            ZarrError::bad_metadata(
                path,
                "no \"unet\" attribute in zarr.json; this store was not made by ZarrOutput::create",
            )
        })?;
        let attrs: UnetAttrs = serde_json::from_value(unet.clone())
            .map_err(|e| ZarrError::bad_metadata(path, format!("the \"unet\" attribute does not parse: {e}")))?;
        if attrs.format != FORMAT {
            return Err(ZarrError::bad_metadata(
                path,
                format!("store format {} is not supported (this crate writes {FORMAT})", attrs.format),
            ));
        }
        attrs.spec.check(path)?;
        let store = Arc::new(FilesystemStore::new(path).map_err(|e| ZarrError::zarr(path, e))?);
        let mut out = ZarrOutput {
            path: path.to_path_buf(),
            spec: attrs.spec,
            store,
            probabilities: None,
            mask: None,
            instances: None,
        };
        for part in out.parts() {
            let array = out.open_array(part, 0, out.spec.width, out.spec.height)?;
            match part {
                Part::Probabilities => out.probabilities = Some(array),
                Part::Mask => out.mask = Some(array),
                Part::Instances => out.instances = Some(array),
            }
        }
        Ok(out)
    }

    /// What the store holds.
    pub fn spec(&self) -> &OutputSpec {
        &self.spec
    }

    /// The store's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of shards along x and y of level 0 (`ceil(width / shard)`, `ceil(height / shard)`).
    pub fn shard_grid(&self) -> (usize, usize) {
        (self.spec.width.div_ceil(self.spec.shard), self.spec.height.div_ceil(self.spec.shard))
    }

    /// The pixel rectangle `(x0, y0, w, h)` of shard `(sx, sy)` of level 0, clipped to the
    /// image; `None` outside the [`shard_grid`](Self::shard_grid). A write of exactly this
    /// rectangle (any plane) touches only that shard's files.
    pub fn shard_rect(&self, sx: usize, sy: usize) -> Option<(usize, usize, usize, usize)> {
        let (gx, gy) = self.shard_grid();
        if sx >= gx || sy >= gy {
            return None;
        }
        let s = self.spec.shard;
        let (x0, y0) = (sx * s, sy * s);
        Some((x0, y0, s.min(self.spec.width - x0), s.min(self.spec.height - y0)))
    }

    /// Writes probabilities of plane `plane`, region `x0..x0+w`, `y0..y0+h`: `data` is planar,
    /// `classes x h x w` (`data[(c * h + y) * w + x]`). For [`ProbDtype::U8`] the values are
    /// quantised as documented there.
    ///
    /// # Errors
    /// [`ZarrError::NotInOutput`] without probabilities, [`ZarrError::OutOfBounds`],
    /// [`ZarrError::BufferSize`], and `zarrs` errors.
    pub fn write_probabilities(
        &self,
        plane: usize,
        x0: usize,
        y0: usize,
        w: usize,
        h: usize,
        data: &[f32],
    ) -> Result<()> {
        let (array, g) = self.part(Part::Probabilities)?;
        self.check_region(plane, x0, y0, w, h)?;
        self.check_len("probabilities", g.channels * w * h, data.len())?;
        if w == 0 || h == 0 {
            return Ok(());
        }
        let subset = g.subset(plane, y0, y0 + h, x0, x0 + w);
        match self.prob_dtype() {
            ProbDtype::F32 => self.store(array, &subset, data),
            ProbDtype::U8 => {
                let q: Vec<u8> = data.iter().map(|&p| quantise(p)).collect();
                self.store(array, &subset, &q)
            }
        }
    }

    /// Reads probabilities of a region back, planar `classes x h x w`; `u8` stores are
    /// returned as `value / 255`. Unwritten pixels read 0.
    ///
    /// # Errors
    /// As [`write_probabilities`](Self::write_probabilities).
    pub fn read_probabilities(&self, plane: usize, x0: usize, y0: usize, w: usize, h: usize) -> Result<Vec<f32>> {
        let (array, g) = self.part(Part::Probabilities)?;
        self.check_region(plane, x0, y0, w, h)?;
        if w == 0 || h == 0 {
            return Ok(Vec::new());
        }
        let subset = g.subset(plane, y0, y0 + h, x0, x0 + w);
        match self.prob_dtype() {
            ProbDtype::F32 => self.fetch(array, &subset),
            ProbDtype::U8 => Ok(self.fetch::<u8>(array, &subset)?.into_iter().map(|v| f32::from(v) / 255.0).collect()),
        }
    }

    /// Writes the mask (`h x w` values) of plane `plane`, region `x0..x0+w`, `y0..y0+h`.
    ///
    /// # Errors
    /// [`ZarrError::NotInOutput`] without a mask, [`ZarrError::OutOfBounds`],
    /// [`ZarrError::BufferSize`], and `zarrs` errors.
    pub fn write_mask(&self, plane: usize, x0: usize, y0: usize, w: usize, h: usize, data: &[u8]) -> Result<()> {
        self.write_label(Part::Mask, plane, x0, y0, w, h, data)
    }

    /// Reads a region of the mask (`h x w` values; unwritten pixels read 0).
    ///
    /// # Errors
    /// As [`write_mask`](Self::write_mask).
    pub fn read_mask(&self, plane: usize, x0: usize, y0: usize, w: usize, h: usize) -> Result<Vec<u8>> {
        self.read_label(Part::Mask, plane, x0, y0, w, h)
    }

    /// Writes instance labels (`h x w` values, 0 = background) of plane `plane`, region
    /// `x0..x0+w`, `y0..y0+h`.
    ///
    /// # Errors
    /// [`ZarrError::NotInOutput`] without instances, [`ZarrError::OutOfBounds`],
    /// [`ZarrError::BufferSize`], and `zarrs` errors.
    pub fn write_instances(&self, plane: usize, x0: usize, y0: usize, w: usize, h: usize, data: &[u64]) -> Result<()> {
        self.write_label(Part::Instances, plane, x0, y0, w, h, data)
    }

    /// Reads a region of the instance labels (`h x w` values; unwritten pixels read 0).
    ///
    /// # Errors
    /// As [`write_instances`](Self::write_instances).
    pub fn read_instances(&self, plane: usize, x0: usize, y0: usize, w: usize, h: usize) -> Result<Vec<u64>> {
        self.read_label(Part::Instances, plane, x0, y0, w, h)
    }

    /// Builds pyramid levels 1, 2, ... of every image, each from the one above with x and y
    /// halved (rounded up), until a level fits in one chunk (`width, height <= chunk`);
    /// probabilities by the 2x2 mean (rounded half up for `u8`), labels by the 2x2 mode (ties
    /// to the first value in the order top-left, top-right, bottom-left, bottom-right, so a
    /// block of two values twice keeps the top-left one). Levels are built shard by shard
    /// (memory: about one shard of the new level plus a `2 * chunk`-row strip of the one
    /// above). Then writes the full NGFF 0.5 metadata: the root `multiscales` (axes
    /// `c, [z,] y, x`, one dataset per level with its `scale`), the `labels` group and each label
    /// image's `multiscales` and `image-label`. Running it again rebuilds the same levels.
    ///
    /// # Errors
    /// `zarrs` and I/O errors.
    pub fn finalize(&self) -> Result<()> {
        let sizes = pyramid::level_sizes(self.spec.width, self.spec.height, self.spec.chunk);
        for part in self.parts() {
            let g = self.geometry(part);
            let mut src = self.open_array(part, 0, self.spec.width, self.spec.height)?;
            for level in 1..sizes.len() {
                let (w, h) = sizes[level];
                let dst = self.create_array(part, level, w, h)?;
                let dst_path = self.array_fs_path(part, level);
                let from = Level { array: &src, width: sizes[level - 1].0, height: sizes[level - 1].1 };
                let to = Level { array: &dst, width: w, height: h };
                match (part, self.prob_dtype()) {
                    (Part::Probabilities, ProbDtype::F32) => {
                        pyramid::build_level(from, to, g, pyramid::mean_f32, &dst_path)?
                    }
                    (Part::Probabilities, ProbDtype::U8) => {
                        pyramid::build_level(from, to, g, pyramid::mean_u8, &dst_path)?
                    }
                    (Part::Mask, _) => pyramid::build_level(from, to, g, pyramid::mode::<u8>, &dst_path)?,
                    (Part::Instances, _) => pyramid::build_level(from, to, g, pyramid::mode::<u64>, &dst_path)?,
                }
                src = dst;
            }
        }
        self.write_metadata(sizes.len())
    }

    // ---- internals ----

    /// The images this output holds.
    fn parts(&self) -> Vec<Part> {
        let mut parts = Vec::new();
        if self.spec.probabilities.is_some() {
            parts.push(Part::Probabilities);
        }
        if self.spec.mask {
            parts.push(Part::Mask);
        }
        if self.spec.instances {
            parts.push(Part::Instances);
        }
        parts
    }

    fn prob_dtype(&self) -> ProbDtype {
        self.spec.probabilities.map_or(ProbDtype::F32, |p| p.dtype)
    }

    fn geometry(&self, part: Part) -> Geometry {
        let channels = match part {
            Part::Probabilities => self.spec.probabilities.map_or(1, |p| p.classes),
            _ => 1,
        };
        Geometry {
            channels,
            planes: self.spec.planes,
            has_z: self.spec.planes > 1,
            shard: self.spec.shard,
            chunk: self.spec.chunk,
        }
    }

    fn data_type(&self, part: Part) -> (DataType, usize) {
        match (part, self.prob_dtype()) {
            (Part::Probabilities, ProbDtype::F32) => (data_type::float32(), 4),
            (Part::Probabilities, ProbDtype::U8) | (Part::Mask, _) => (data_type::uint8(), 1),
            (Part::Instances, _) => (data_type::uint64(), 8),
        }
    }

    fn node_path(part: Part, level: usize) -> String {
        format!("{}/{level}", part.group())
    }

    fn array_fs_path(&self, part: Part, level: usize) -> PathBuf {
        self.path.join(Self::node_path(part, level).trim_start_matches('/'))
    }

    /// Shape `[c, (z,) h, w]` of an array of `part`.
    fn shape(&self, part: Part, w: usize, h: usize) -> Vec<u64> {
        let g = self.geometry(part);
        let mut shape = vec![g.channels as u64];
        if g.has_z {
            shape.push(g.planes as u64);
        }
        shape.extend([h as u64, w as u64]);
        shape
    }

    /// Creates (or overwrites the metadata of) the array of `part` at `level`, `w x h`.
    fn create_array(&self, part: Part, level: usize, w: usize, h: usize) -> Result<Array<FilesystemStore>> {
        let g = self.geometry(part);
        let fs_path = self.array_fs_path(part, level);
        let (dtype, typesize) = self.data_type(part);
        let (s, c) = (g.shard as u64, g.chunk as u64);
        let (shard_shape, inner_shape, names): (Vec<u64>, Vec<u64>, Vec<&str>) = if g.has_z {
            (vec![g.channels as u64, 1, s, s], vec![1, 1, c, c], vec!["c", "z", "y", "x"])
        } else {
            (vec![g.channels as u64, s, s], vec![1, c, c], vec!["c", "y", "x"])
        };
        let level_err = |e: String| ZarrError::bad_metadata(&fs_path, e);
        let clevel = BloscCompressionLevel::try_from(5u8).map_err(|l| level_err(format!("blosc level {l}")))?;
        let blosc = BloscCodec::new(BloscCompressor::Zstd, clevel, None, BloscShuffleMode::Shuffle, Some(typesize))
            .map_err(|e| ZarrError::zarr(&fs_path, e))?;
        let mut builder = match part {
            Part::Instances => ArrayBuilder::new(self.shape(part, w, h), shard_shape, dtype, 0u64),
            Part::Probabilities if self.prob_dtype() == ProbDtype::F32 => {
                ArrayBuilder::new(self.shape(part, w, h), shard_shape, dtype, 0f32)
            }
            _ => ArrayBuilder::new(self.shape(part, w, h), shard_shape, dtype, 0u8),
        };
        builder.subchunk_shape(inner_shape).bytes_to_bytes_codecs(vec![Arc::new(blosc)]).dimension_names(Some(names));
        let array = builder
            .build(self.store.clone(), &Self::node_path(part, level))
            .map_err(|e| ZarrError::zarr(&fs_path, e))?;
        array.store_metadata().map_err(|e| ZarrError::zarr(&fs_path, e))?;
        Ok(array)
    }

    /// Opens the array of `part` at `level` and checks its shape and type.
    fn open_array(&self, part: Part, level: usize, w: usize, h: usize) -> Result<Array<FilesystemStore>> {
        let fs_path = self.array_fs_path(part, level);
        let array = Array::open(self.store.clone(), &Self::node_path(part, level)).map_err(|e| match e {
            ArrayCreateError::MissingMetadata => ZarrError::bad_metadata(
                &fs_path,
                format!("the {} array is missing; the store is incomplete, create it again", part.name()),
            ),
            e => ZarrError::zarr(&fs_path, e),
        })?;
        let expected = self.shape(part, w, h);
        if array.shape() != expected.as_slice() {
            return Err(ZarrError::bad_metadata(
                &fs_path,
                format!("shape {:?} does not match the spec's {expected:?}", array.shape()),
            ));
        }
        let (dtype, _) = self.data_type(part);
        if array.data_type() != &dtype {
            return Err(ZarrError::bad_metadata(&fs_path, "data type does not match the spec"));
        }
        Ok(array)
    }

    /// The level-0 array of `part` and its geometry, or [`ZarrError::NotInOutput`].
    fn part(&self, part: Part) -> Result<(&Array<FilesystemStore>, Geometry)> {
        let array = match part {
            Part::Probabilities => self.probabilities.as_ref(),
            Part::Mask => self.mask.as_ref(),
            Part::Instances => self.instances.as_ref(),
        };
        let array =
            array.ok_or(ZarrError::NotInOutput { path: self.path.clone(), what: part.name(), fix: part.fix() })?;
        Ok((array, self.geometry(part)))
    }

    fn check_region(&self, plane: usize, x0: usize, y0: usize, w: usize, h: usize) -> Result<()> {
        let s = &self.spec;
        if plane >= s.planes {
            return Err(ZarrError::out_of_bounds(
                &self.path,
                format!("plane {plane} does not exist; the output has {} planes", s.planes),
            ));
        }
        if x0.checked_add(w).is_none_or(|e| e > s.width) || y0.checked_add(h).is_none_or(|e| e > s.height) {
            return Err(ZarrError::out_of_bounds(
                &self.path,
                format!("region x {x0}+{w}, y {y0}+{h} is outside the {}x{} output", s.width, s.height),
            ));
        }
        Ok(())
    }

    fn check_len(&self, what: &'static str, expected: usize, got: usize) -> Result<()> {
        if expected != got {
            return Err(ZarrError::BufferSize { path: self.path.clone(), what, expected, got });
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn write_label<T: Element>(
        &self,
        part: Part,
        plane: usize,
        x0: usize,
        y0: usize,
        w: usize,
        h: usize,
        data: &[T],
    ) -> Result<()> {
        let (array, g) = self.part(part)?;
        self.check_region(plane, x0, y0, w, h)?;
        self.check_len(part.name(), w * h, data.len())?;
        if w == 0 || h == 0 {
            return Ok(());
        }
        self.store(array, &g.subset(plane, y0, y0 + h, x0, x0 + w), data)
    }

    fn read_label<T: ElementOwned>(
        &self,
        part: Part,
        plane: usize,
        x0: usize,
        y0: usize,
        w: usize,
        h: usize,
    ) -> Result<Vec<T>> {
        let (array, g) = self.part(part)?;
        self.check_region(plane, x0, y0, w, h)?;
        if w == 0 || h == 0 {
            return Ok(Vec::new());
        }
        self.fetch(array, &g.subset(plane, y0, y0 + h, x0, x0 + w))
    }

    fn store<T: Element>(&self, array: &Array<FilesystemStore>, subset: &ArraySubset, data: &[T]) -> Result<()> {
        array
            .store_array_subset(subset, data)
            .map_err(|e| ZarrError::zarr(self.path.join(array.path().as_str().trim_start_matches('/')), e))
    }

    fn fetch<T: ElementOwned>(&self, array: &Array<FilesystemStore>, subset: &ArraySubset) -> Result<Vec<T>> {
        array
            .retrieve_array_subset(subset)
            .map_err(|e| ZarrError::zarr(self.path.join(array.path().as_str().trim_start_matches('/')), e))
    }

    /// Writes the group metadata of the whole store for `levels` levels.
    fn write_metadata(&self, levels: usize) -> Result<()> {
        let spec = &self.spec;
        let has_z = spec.planes > 1;
        let desc =
            |name, downsampling| ImageDesc { name, has_z, pixel_size: spec.pixel_size.as_ref(), levels, downsampling };

        // Root group.
        let multiscales = match spec.probabilities {
            Some(_) => Some(ngff::multiscale(&self.path, &desc("probabilities", Downsampling::Mean))?),
            None => None,
        };
        let mut root = Map::new();
        root.insert("ome".into(), ngff::ome_value(&self.path, multiscales, None, None)?);
        let unet = UnetAttrs { format: FORMAT, levels, spec: spec.clone() };
        root.insert(
            "unet".into(),
            serde_json::to_value(&unet).map_err(|e| ZarrError::Json { path: self.path.clone(), source: e })?,
        );
        self.store_group("/", root)?;

        // Labels.
        let labels: Vec<String> = [(spec.mask, "mask"), (spec.instances, "instances")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| n.to_string())
            .collect();
        if labels.is_empty() {
            return Ok(());
        }
        let labels_path = self.path.join("labels");
        let mut attrs = Map::new();
        attrs.insert("ome".into(), ngff::ome_value(&labels_path, None, Some(labels.clone()), None)?);
        self.store_group("/labels", attrs)?;
        // The source image of a label image is the root image, when there is one.
        let source = spec.probabilities.is_some().then_some("../../");
        for name in &labels {
            let path = labels_path.join(name);
            let ms = ngff::multiscale(&path, &desc(name, Downsampling::Mode))?;
            let mut attrs = Map::new();
            attrs.insert("ome".into(), ngff::ome_value(&path, Some(ms), None, Some(ngff::image_label(source)))?);
            self.store_group(&format!("/labels/{name}"), attrs)?;
        }
        Ok(())
    }

    fn store_group(&self, node: &str, attrs: Map<String, Value>) -> Result<()> {
        let fs_path = self.path.join(node.trim_start_matches('/'));
        GroupBuilder::new()
            .attributes(attrs)
            .build(self.store.clone(), node)
            .map_err(|e| ZarrError::zarr(&fs_path, e))?
            .store_metadata()
            .map_err(|e| ZarrError::zarr(&fs_path, e))
    }
}

/// `round(clamp(p, 0, 1) * 255)`, NaN to 0.
fn quantise(p: f32) -> u8 {
    if p.is_nan() { 0 } else { (p.clamp(0.0, 1.0) * 255.0).round() as u8 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantisation() {
        assert_eq!(quantise(0.0), 0);
        assert_eq!(quantise(1.0), 255);
        assert_eq!(quantise(0.5), 128); // 127.5 rounds away from zero
        assert_eq!(quantise(-3.0), 0);
        assert_eq!(quantise(7.0), 255);
        assert_eq!(quantise(f32::NAN), 0);
    }

    #[test]
    fn spec_checks() {
        let p = Path::new("x");
        let mut s = OutputSpec::new(10, 10);
        assert!(s.check(p).is_err()); // no arrays
        s.mask = true;
        s.check(p).unwrap();
        s.shard = 300;
        assert!(s.check(p).is_err()); // not a multiple
        s.shard = 512;
        s.width = 0;
        assert!(s.check(p).is_err());
        s.width = 10;
        s.probabilities = Some(ProbSpec { classes: 0, dtype: ProbDtype::F32 });
        assert!(s.check(p).is_err());
    }
}
