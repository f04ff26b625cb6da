//! Reading input images: [`ZarrImage`] opens level 0 of an OME-Zarr image (NGFF 0.4 on Zarr v2,
//! NGFF 0.5 on Zarr v3) or a bare Zarr array, and reads pixel regions of one plane, all
//! channels, as a planar [`unet_io::Image`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use unet_io::{Image, SampleKind};
use zarrs::array::data_type::{
    BFloat16DataType, BoolDataType, Float16DataType, Float32DataType, Float64DataType, Int8DataType, Int16DataType,
    Int32DataType, Int64DataType, UInt8DataType, UInt16DataType, UInt32DataType, UInt64DataType,
};
use zarrs::array::{Array, ArrayCreateError, ArrayMetadata, ArraySubset, ElementOwned};
use zarrs::filesystem::FilesystemStore;

use crate::error::{Result, ZarrError};
use crate::ngff::{self, AxisRole, InAxis, PixelSize};

/// The stored sample type of an input array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    Bool,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F16,
    BF16,
    F32,
    F64,
}

/// An opened input image: level 0 of an OME-Zarr multiscale image, or a bare array.
///
/// [`open`](ZarrImage::open) takes either
/// - an OME-Zarr image group: Zarr v3 with NGFF 0.5 metadata (`zarr.json`,
///   `attributes.ome.multiscales`), or Zarr v2 with NGFF 0.4 (or earlier) metadata (`.zgroup`,
///   `.zattrs` with `multiscales`, arrays with `.zarray`). The first dataset of the first
///   multiscale image (level 0, full resolution) is read. A `bioformats2raw` layout group (no
///   `multiscales`, a `bioformats2raw.layout` attribute) opens its series `0`;
/// - a bare Zarr v2 or v3 array. Its axes are its dimension names when it has them (v3
///   `dimension_names`, v2 `_ARRAY_DIMENSIONS`) and they include `x` and `y`; otherwise a 2D array
///   is taken as (y, x) and a 3D array as (z, y, x). Other bare arrays need dimension names.
///
/// The axis named `x` (else the last space axis) is the width, `y` (else the space axis before
/// it) the height, the axis of type `channel` (or named `c`) holds the channels, and every
/// other axis (`t`, `z`, custom ones) is a plane axis: the planes are numbered row-major over
/// these axes in their stored order (for `t, c, z, y, x`: `plane = t * size_z + z`), and are
/// predicted one by one.
pub struct ZarrImage {
    /// The array's path on disk, for messages.
    array_path: PathBuf,
    array: Array<FilesystemStore>,
    shape: Vec<u64>,
    x_axis: usize,
    y_axis: usize,
    c_axis: Option<usize>,
    plane_axes: Vec<usize>,
    dtype: Dtype,
    pixel_size: Option<PixelSize>,
    axis_names: Vec<String>,
}

impl std::fmt::Debug for ZarrImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZarrImage")
            .field("array_path", &self.array_path)
            .field("axes", &self.axis_names)
            .field("shape", &self.shape)
            .field("dtype", &self.dtype)
            .field("pixel_size", &self.pixel_size)
            .finish()
    }
}

/// Metadata found at a path.
enum Node {
    /// A group and its attributes.
    Group(Value),
    /// An array and its dimension names, if any.
    Array(Option<Vec<Option<String>>>),
}

/// Reads a JSON file; `Ok(None)` if it does not exist.
fn read_json(file: &Path) -> Result<Option<Value>> {
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ZarrError::Json { path: file.to_path_buf(), source: e }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ZarrError::io(file, e)),
    }
}

/// Dimension names from a JSON list of strings or nulls.
fn names(v: Option<&Value>) -> Option<Vec<Option<String>>> {
    v?.as_array().map(|list| list.iter().map(|n| n.as_str().map(str::to_string)).collect())
}

/// What is at `path`: a v3 `zarr.json`, or v2 `.zarray` / `.zgroup` / `.zattrs`.
fn probe(path: &Path) -> Result<Node> {
    if let Some(meta) = read_json(&path.join("zarr.json"))? {
        return match meta.get("node_type").and_then(Value::as_str) {
            Some("group") => Ok(Node::Group(meta.get("attributes").cloned().unwrap_or(Value::Null))),
            Some("array") => Ok(Node::Array(names(meta.get("dimension_names")))),
            _ => Err(ZarrError::bad_metadata(
                path.join("zarr.json"),
                "node_type is neither \"group\" nor \"array\"; this is not Zarr v3 metadata",
            )),
        };
    }
    let attrs = read_json(&path.join(".zattrs"))?;
    if path.join(".zarray").is_file() {
        return Ok(Node::Array(names(attrs.as_ref().and_then(|a| a.get("_ARRAY_DIMENSIONS")))));
    }
    if path.join(".zgroup").is_file() || attrs.is_some() {
        return Ok(Node::Group(attrs.unwrap_or(Value::Null)));
    }
    Err(ZarrError::NotZarr { path: path.to_path_buf() })
}

/// Default axes of a bare array without usable dimension names.
fn default_axes(path: &Path, ndim: usize) -> Result<Vec<InAxis>> {
    match ndim {
        2 => Ok(["y", "x"].iter().map(|n| InAxis::from_name(n)).collect()),
        3 => Ok(["z", "y", "x"].iter().map(|n| InAxis::from_name(n)).collect()),
        _ => Err(ZarrError::bad_metadata(
            path,
            format!(
                "a {ndim}D array without x/y dimension names; give the OME-Zarr image group, or a 2D (y, x) or 3D (z, y, x) array"
            ),
        )),
    }
}

/// Default axes of an NGFF group whose multiscales have none (NGFF 0.1/0.2): the trailing
/// dimensions of `t, c, z, y, x`.
fn default_ngff_axes(ndim: usize) -> Option<Vec<InAxis>> {
    let all = ["t", "c", "z", "y", "x"];
    (2..=5).contains(&ndim).then(|| all[5 - ndim..].iter().map(|n| InAxis::from_name(n)).collect())
}

impl ZarrImage {
    /// Opens an image; see the [type documentation](ZarrImage) for what `path` may be.
    ///
    /// # Errors
    /// [`ZarrError::NotZarr`] when `path` holds no Zarr metadata, [`ZarrError::NotOmeZarr`] for
    /// a group without `multiscales`, [`ZarrError::BadMetadata`] when the axes do not match the
    /// array or lack x/y, [`ZarrError::UnsupportedDataType`] for non-numeric arrays, and I/O or
    /// `zarrs` errors.
    pub fn open(path: &Path) -> Result<ZarrImage> {
        if !path.exists() {
            return Err(ZarrError::io(path, std::io::Error::from(std::io::ErrorKind::NotFound)));
        }
        Self::open_at(path, true)
    }

    fn open_at(path: &Path, follow_bioformats2raw: bool) -> Result<ZarrImage> {
        let (node_path, array_path, axes, scale) = match probe(path)? {
            Node::Group(attrs) => match ngff::read_multiscales(path, &attrs)? {
                Some(ms) => ("/".to_string() + &ms.dataset, path.join(&ms.dataset), ms.axes, ms.scale),
                None if follow_bioformats2raw && attrs.get("bioformats2raw.layout").is_some() => {
                    return Self::open_at(&path.join("0"), false);
                }
                None => return Err(ZarrError::NotOmeZarr { path: path.to_path_buf() }),
            },
            Node::Array(dim_names) => {
                let axes = dim_names.and_then(|n| {
                    let n: Option<Vec<String>> = n.into_iter().collect();
                    let n = n?;
                    let has = |a: &str| n.iter().any(|m| m.eq_ignore_ascii_case(a));
                    (has("x") && has("y")).then(|| n.iter().map(|m| InAxis::from_name(m)).collect())
                });
                ("/".to_string(), path.to_path_buf(), axes, None)
            }
        };

        let store = FilesystemStore::new(path).map_err(|e| ZarrError::zarr(path, e))?;
        let array = Array::open(Arc::new(store), &node_path).map_err(|e| match e {
            ArrayCreateError::MissingMetadata => ZarrError::bad_metadata(
                &array_path,
                "no array here (no zarr.json or .zarray); the multiscales dataset path must name the level-0 array",
            ),
            e => ZarrError::zarr(&array_path, e),
        })?;
        let shape = array.shape().to_vec();
        let ndim = shape.len();

        let axes = match axes {
            Some(a) => a,
            None if node_path == "/" => default_axes(&array_path, ndim)?,
            None => default_ngff_axes(ndim).ok_or_else(|| {
                ZarrError::bad_metadata(path, format!("multiscales without axes and a {ndim}D array; add \"axes\""))
            })?,
        };
        if axes.len() != ndim {
            return Err(ZarrError::bad_metadata(
                &array_path,
                format!("{} axes in the metadata but the array has {ndim} dimensions {shape:?}", axes.len()),
            ));
        }

        let find = |name: &str| axes.iter().position(|a| a.name.eq_ignore_ascii_case(name));
        let space: Vec<usize> = (0..ndim).filter(|&i| axes[i].role == AxisRole::Space).collect();
        let x_axis = find("x").or_else(|| space.last().copied());
        let y_axis = find("y").or_else(|| (space.len() >= 2).then(|| space[space.len() - 2]));
        let (Some(x_axis), Some(y_axis)) = (x_axis, y_axis) else {
            return Err(ZarrError::bad_metadata(path, "the image has no x and y axes; name two axes \"y\" and \"x\""));
        };
        if x_axis == y_axis {
            return Err(ZarrError::bad_metadata(path, "x and y are the same axis"));
        }
        let channel: Vec<usize> =
            (0..ndim).filter(|&i| i != x_axis && i != y_axis && axes[i].role == AxisRole::Channel).collect();
        if channel.len() > 1 {
            return Err(ZarrError::bad_metadata(
                path,
                "more than one channel axis; at most one axis may be \"channel\"",
            ));
        }
        let c_axis = channel.first().copied();
        let plane_axes: Vec<usize> = (0..ndim).filter(|&i| i != x_axis && i != y_axis && Some(i) != c_axis).collect();

        let too_big =
            |what: &str| ZarrError::bad_metadata(&array_path, format!("{what} does not fit in memory indices"));
        for &d in &[x_axis, y_axis] {
            if shape[d] == 0 {
                return Err(ZarrError::bad_metadata(&array_path, format!("the array is empty (shape {shape:?})")));
            }
            usize::try_from(shape[d]).map_err(|_| too_big("the image size"))?;
        }
        // Planes times channels must be countable (a hostile shape could overflow).
        let mut count: u64 = 1;
        for &d in plane_axes.iter().chain(c_axis.iter()) {
            count = count.checked_mul(shape[d]).ok_or_else(|| too_big("the number of planes and channels"))?;
        }
        usize::try_from(count).map_err(|_| too_big("the number of planes and channels"))?;

        let dtype = dtype_of(&array, &array_path)?;

        let pixel_size =
            scale.filter(|s| s.len() == ndim && s.iter().all(|v| v.is_finite() && *v > 0.0)).map(|s| PixelSize {
                x: s[x_axis],
                y: s[y_axis],
                z: find("z").filter(|&z| z != x_axis && z != y_axis).map(|z| s[z]),
                unit: axes[x_axis].unit.clone(),
            });

        Ok(ZarrImage {
            array_path,
            array,
            shape,
            x_axis,
            y_axis,
            c_axis,
            plane_axes,
            dtype,
            pixel_size,
            axis_names: axes.into_iter().map(|a| a.name).collect(),
        })
    }

    /// Image width (size of the x axis).
    pub fn width(&self) -> usize {
        self.shape[self.x_axis] as usize
    }

    /// Image height (size of the y axis).
    pub fn height(&self) -> usize {
        self.shape[self.y_axis] as usize
    }

    /// Number of channels: the size of the channel axis, 1 if there is none.
    pub fn channels(&self) -> usize {
        self.c_axis.map_or(1, |c| self.shape[c] as usize)
    }

    /// Number of planes: the product of the sizes of the t, z and any other non-channel axes
    /// besides y and x (1 if none). Each plane is read and predicted on its own.
    pub fn planes(&self) -> usize {
        self.plane_axes.iter().map(|&d| self.shape[d] as usize).product()
    }

    /// The sample kind: `u8` and `u16` arrays are [`SampleKind::U8`] and [`SampleKind::U16`];
    /// every other numeric type (bool, i8, i16, i32, i64, u32, u64, f16, bf16, f32, f64) is
    /// [`SampleKind::F32`], its values converted to `f32` as they are (not rescaled; large 32/64-bit
    /// integers lose precision).
    pub fn kind(&self) -> SampleKind {
        match self.dtype {
            Dtype::U8 => SampleKind::U8,
            Dtype::U16 => SampleKind::U16,
            _ => SampleKind::F32,
        }
    }

    /// Axis names in stored order (from the metadata, or the defaults for bare arrays).
    pub fn axis_names(&self) -> &[String] {
        &self.axis_names
    }

    /// Level-0 pixel size from the NGFF `scale` transform, when the metadata gives one (bare
    /// arrays have none).
    pub fn pixel_size(&self) -> Option<&PixelSize> {
        self.pixel_size.as_ref()
    }

    /// Path of the level-0 array on disk.
    pub fn array_path(&self) -> &Path {
        &self.array_path
    }

    /// Reads the region `x0..x0+w`, `y0..y0+h` of plane `plane`, all channels, as a planar
    /// image (`data[(c * h + y) * w + x]`) of [`kind`](Self::kind), values as stored.
    ///
    /// # Errors
    /// [`ZarrError::OutOfBounds`] when the plane or region is outside the image, and `zarrs`
    /// errors for missing or corrupt chunks (absent chunks read as the fill value).
    pub fn read_region(&self, plane: usize, x0: usize, y0: usize, w: usize, h: usize) -> Result<Image> {
        let planes = self.planes();
        if plane >= planes {
            return Err(ZarrError::out_of_bounds(
                &self.array_path,
                format!("plane {plane} does not exist; the image has {planes} planes"),
            ));
        }
        let (width, height) = (self.width(), self.height());
        if x0.checked_add(w).is_none_or(|e| e > width) || y0.checked_add(h).is_none_or(|e| e > height) {
            return Err(ZarrError::out_of_bounds(
                &self.array_path,
                format!("region x {x0}+{w}, y {y0}+{h} is outside the {width}x{height} image"),
            ));
        }
        let channels = self.channels();
        let n = channels
            .checked_mul(w)
            .and_then(|v| v.checked_mul(h))
            .ok_or_else(|| ZarrError::out_of_bounds(&self.array_path, "region too large"))?;
        if n == 0 {
            return Ok(Image::new(w, h, channels, self.kind(), Vec::new()));
        }

        // The subset: one index on every plane axis, the region on x and y, all channels.
        let ndim = self.shape.len();
        let mut ranges = vec![0..1u64; ndim];
        let mut rest = plane;
        for &d in self.plane_axes.iter().rev() {
            let size = self.shape[d] as usize;
            let i = (rest % size) as u64;
            rest /= size;
            ranges[d] = i..i + 1;
        }
        ranges[self.x_axis] = x0 as u64..(x0 + w) as u64;
        ranges[self.y_axis] = y0 as u64..(y0 + h) as u64;
        if let Some(c) = self.c_axis {
            ranges[c] = 0..channels as u64;
        }
        let sub_shape: Vec<usize> = ranges.iter().map(|r| (r.end - r.start) as usize).collect();
        let subset = ArraySubset::new_with_ranges(&ranges);

        // Strides of the retrieved (C-order) block, for the planar reordering.
        let mut strides = vec![0usize; ndim];
        let mut s = 1;
        for d in (0..ndim).rev() {
            strides[d] = s;
            s *= sub_shape[d];
        }
        let layout = Layout {
            w,
            h,
            channels,
            sx: strides[self.x_axis],
            sy: strides[self.y_axis],
            sc: self.c_axis.map_or(0, |c| strides[c]),
        };

        let data = match self.dtype {
            Dtype::Bool => self.fetch::<bool>(&subset, &layout, |v| f32::from(u8::from(v)))?,
            Dtype::U8 => self.fetch::<u8>(&subset, &layout, f32::from)?,
            Dtype::U16 => self.fetch::<u16>(&subset, &layout, f32::from)?,
            Dtype::U32 => self.fetch::<u32>(&subset, &layout, |v| v as f32)?,
            Dtype::U64 => self.fetch::<u64>(&subset, &layout, |v| v as f32)?,
            Dtype::I8 => self.fetch::<i8>(&subset, &layout, f32::from)?,
            Dtype::I16 => self.fetch::<i16>(&subset, &layout, f32::from)?,
            Dtype::I32 => self.fetch::<i32>(&subset, &layout, |v| v as f32)?,
            Dtype::I64 => self.fetch::<i64>(&subset, &layout, |v| v as f32)?,
            Dtype::F16 => self.fetch::<half::f16>(&subset, &layout, f32::from)?,
            Dtype::BF16 => self.fetch::<half::bf16>(&subset, &layout, f32::from)?,
            Dtype::F32 => self.fetch::<f32>(&subset, &layout, |v| v)?,
            Dtype::F64 => self.fetch::<f64>(&subset, &layout, |v| v as f32)?,
        };
        Ok(Image::new(w, h, channels, self.kind(), data))
    }

    /// Retrieves `subset` as `T` and reorders it to planar `f32`.
    fn fetch<T: ElementOwned + Copy>(
        &self,
        subset: &ArraySubset,
        layout: &Layout,
        conv: impl Fn(T) -> f32,
    ) -> Result<Vec<f32>> {
        let src: Vec<T> = self.array.retrieve_array_subset(subset).map_err(|e| ZarrError::zarr(&self.array_path, e))?;
        let Layout { w, h, channels, sx, sy, sc } = *layout;
        if src.len() != w * h * channels {
            return Err(ZarrError::bad_metadata(&self.array_path, "decoded region has the wrong size"));
        }
        // Already planar (channel axis, if any, before y, y before x, x last): convert in order.
        if sx == 1 && sy == w && (channels == 1 || sc == w * h) {
            return Ok(src.into_iter().map(conv).collect());
        }
        let mut out = Vec::with_capacity(src.len());
        for c in 0..channels {
            for y in 0..h {
                let row = c * sc + y * sy;
                out.extend((0..w).map(|x| conv(src[row + x * sx])));
            }
        }
        Ok(out)
    }
}

/// Where sample (c, y, x) of a retrieved block lies: `c * sc + y * sy + x * sx`.
#[derive(Debug, Clone, Copy)]
struct Layout {
    w: usize,
    h: usize,
    channels: usize,
    sx: usize,
    sy: usize,
    sc: usize,
}

/// The sample type of an array, or an error naming it.
fn dtype_of(array: &Array<FilesystemStore>, path: &Path) -> Result<Dtype> {
    let dt = array.data_type();
    let found = if dt.is::<BoolDataType>() {
        Dtype::Bool
    } else if dt.is::<UInt8DataType>() {
        Dtype::U8
    } else if dt.is::<UInt16DataType>() {
        Dtype::U16
    } else if dt.is::<UInt32DataType>() {
        Dtype::U32
    } else if dt.is::<UInt64DataType>() {
        Dtype::U64
    } else if dt.is::<Int8DataType>() {
        Dtype::I8
    } else if dt.is::<Int16DataType>() {
        Dtype::I16
    } else if dt.is::<Int32DataType>() {
        Dtype::I32
    } else if dt.is::<Int64DataType>() {
        Dtype::I64
    } else if dt.is::<Float16DataType>() {
        Dtype::F16
    } else if dt.is::<BFloat16DataType>() {
        Dtype::BF16
    } else if dt.is::<Float32DataType>() {
        Dtype::F32
    } else if dt.is::<Float64DataType>() {
        Dtype::F64
    } else {
        let dtype = match array.metadata() {
            ArrayMetadata::V3(m) => m.data_type.name().to_string(),
            ArrayMetadata::V2(m) => format!("{:?}", m.dtype),
        };
        return Err(ZarrError::UnsupportedDataType { path: path.to_path_buf(), dtype });
    };
    Ok(found)
}
