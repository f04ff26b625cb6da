//! Reading PNG and TIFF files (single images and multi-page TIFF stacks) into [`Image`]s.
//!
//! PNG goes through the `image` crate, TIFF through the `tiff` crate, which reads every page
//! of a stack and 32-bit float and integer samples that `image` does not.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use crate::error::{IoError, Result};
use crate::image::{Image, SampleKind};

/// How colour files become network input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorMode {
    /// One channel: RGB becomes luminance (Rec. 601), unless the three channels are equal,
    /// in which case the first is taken exactly.
    #[default]
    Gray,
    /// Channels as in the file (gray 1, RGB 3); alpha is dropped.
    Keep,
}

/// Samples of one decoded page, interleaved as in the file.
pub(crate) enum Samples {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    F32(Vec<f32>),
}

impl Samples {
    fn len(&self) -> usize {
        match self {
            Samples::U8(v) => v.len(),
            Samples::U16(v) => v.len(),
            Samples::U32(v) => v.len(),
            Samples::F32(v) => v.len(),
        }
    }
}

/// One page as decoded: interleaved samples with `channels` per pixel (alpha already removed).
pub(crate) struct RawPage {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub samples: Samples,
}

fn ext_of(path: &Path) -> String {
    path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase()
}

/// True when the path has an image extension this crate reads.
pub(crate) fn is_image_path(path: &Path) -> bool {
    matches!(ext_of(path).as_str(), "png" | "tif" | "tiff")
}

/// Decodes every page of a PNG (one page) or TIFF (one or more pages).
pub(crate) fn read_raw_pages(path: &Path) -> Result<Vec<RawPage>> {
    let pages = match ext_of(path).as_str() {
        "png" => vec![read_png(path)?],
        "tif" | "tiff" => read_tiff(path)?,
        _ => return Err(IoError::UnsupportedFormat { path: path.to_path_buf() }),
    };
    for p in &pages {
        if p.width == 0 || p.height == 0 {
            return Err(IoError::EmptyImage { path: path.to_path_buf() });
        }
        if p.width != pages[0].width || p.height != pages[0].height {
            return Err(IoError::StackSizeMismatch {
                path: path.to_path_buf(),
                first: (pages[0].width, pages[0].height),
                other: (p.width, p.height),
            });
        }
    }
    Ok(pages)
}

fn read_png(path: &Path) -> Result<RawPage> {
    let file = File::open(path).map_err(|error| IoError::Read { path: path.to_path_buf(), error })?;
    let reader = image::ImageReader::with_format(BufReader::new(file), image::ImageFormat::Png);
    let decoded = reader.decode().map_err(|e| IoError::Decode {
        path: path.to_path_buf(),
        format: "PNG",
        message: e.to_string(),
    })?;
    let (width, height) = (decoded.width() as usize, decoded.height() as usize);
    use image::DynamicImage as D;
    let (channels, samples) = match decoded {
        D::ImageLuma8(b) => (1, Samples::U8(b.into_raw())),
        D::ImageLumaA8(b) => (1, Samples::U8(drop_alpha(&b.into_raw(), 2))),
        D::ImageRgb8(b) => (3, Samples::U8(b.into_raw())),
        D::ImageRgba8(b) => (3, Samples::U8(drop_alpha(&b.into_raw(), 4))),
        D::ImageLuma16(b) => (1, Samples::U16(b.into_raw())),
        D::ImageLumaA16(b) => (1, Samples::U16(drop_alpha(&b.into_raw(), 2))),
        D::ImageRgb16(b) => (3, Samples::U16(b.into_raw())),
        D::ImageRgba16(b) => (3, Samples::U16(drop_alpha(&b.into_raw(), 4))),
        other => {
            return Err(IoError::UnsupportedPixels { path: path.to_path_buf(), what: format!("{:?}", other.color()) });
        }
    };
    Ok(RawPage { width, height, channels, samples })
}

/// Keeps the first `stride - 1` samples of every `stride`.
fn drop_alpha<T: Copy>(v: &[T], stride: usize) -> Vec<T> {
    v.chunks_exact(stride).flat_map(|px| px[..stride - 1].iter().copied()).collect()
}

fn read_tiff(path: &Path) -> Result<Vec<RawPage>> {
    let decode_err =
        |e: tiff::TiffError| IoError::Decode { path: path.to_path_buf(), format: "TIFF", message: e.to_string() };
    let file = File::open(path).map_err(|error| IoError::Read { path: path.to_path_buf(), error })?;
    let mut dec = tiff::decoder::Decoder::new(BufReader::new(file))
        .map_err(decode_err)?
        .with_limits(tiff::decoder::Limits::unlimited());
    let mut pages = Vec::new();
    loop {
        let (w, h) = dec.dimensions().map_err(decode_err)?;
        let color = dec.colortype().map_err(decode_err)?;
        let (channels, stride) = match color {
            tiff::ColorType::Gray(_) => (1, 1),
            tiff::ColorType::GrayA(_) => (1, 2),
            tiff::ColorType::RGB(_) => (3, 3),
            tiff::ColorType::RGBA(_) => (3, 4),
            other => {
                return Err(IoError::UnsupportedPixels { path: path.to_path_buf(), what: format!("{other:?}") });
            }
        };
        use tiff::decoder::DecodingResult as R;
        let unsupported = |what: &str| IoError::UnsupportedPixels { path: path.to_path_buf(), what: what.to_string() };
        let samples = match dec.read_image().map_err(decode_err)? {
            R::U8(v) => Samples::U8(strip(v, stride)),
            R::U16(v) => Samples::U16(strip(v, stride)),
            R::U32(v) => Samples::U32(strip(v, stride)),
            R::F32(v) => Samples::F32(strip(v, stride)),
            R::F64(v) => Samples::F32(strip(v.into_iter().map(|x| x as f32).collect(), stride)),
            R::I8(_) => return Err(unsupported("signed 8-bit")),
            R::I16(_) => return Err(unsupported("signed 16-bit")),
            R::I32(_) => return Err(unsupported("signed 32-bit")),
            R::U64(_) | R::I64(_) => return Err(unsupported("64-bit integer")),
            R::F16(_) => return Err(unsupported("16-bit float")),
        };
        let page = RawPage { width: w as usize, height: h as usize, channels, samples };
        if page.samples.len() != page.width * page.height * page.channels {
            return Err(IoError::Decode {
                path: path.to_path_buf(),
                format: "TIFF",
                message: "sample count does not match the image size".into(),
            });
        }
        pages.push(page);
        if !dec.more_images() {
            break;
        }
        dec.next_image().map_err(decode_err)?;
    }
    Ok(pages)
}

fn strip<T: Copy>(v: Vec<T>, stride: usize) -> Vec<T> {
    if stride == 1 || stride == 3 { v } else { drop_alpha(&v, stride) }
}

/// Interleaved pixels -> planar `f32` channels, applying the colour mode.
fn to_image(path: &Path, page: RawPage, mode: ColorMode) -> Result<Image> {
    let (w, h, ch) = (page.width, page.height, page.channels);
    let (kind, inter): (SampleKind, Vec<f32>) = match page.samples {
        Samples::U8(v) => (SampleKind::U8, v.into_iter().map(f32::from).collect()),
        Samples::U16(v) => (SampleKind::U16, v.into_iter().map(f32::from).collect()),
        Samples::F32(v) => (SampleKind::F32, v),
        Samples::U32(_) => {
            return Err(IoError::UnsupportedPixels {
                path: path.to_path_buf(),
                what: "32-bit integer (a label format) as an input image".into(),
            });
        }
    };
    let n = w * h;
    let mut planar = vec![0f32; n * ch];
    for (i, px) in inter.chunks_exact(ch).enumerate() {
        for (c, v) in px.iter().enumerate() {
            planar[c * n + i] = *v;
        }
    }
    let img = if ch == 3 && mode == ColorMode::Gray {
        let (r, g, b) = (&planar[..n], &planar[n..2 * n], &planar[2 * n..]);
        let equal = (0..n).all(|i| r[i] == g[i] && g[i] == b[i]);
        let gray =
            if equal { r.to_vec() } else { (0..n).map(|i| 0.299 * r[i] + 0.587 * g[i] + 0.114 * b[i]).collect() };
        Image::gray(w, h, kind, gray)
    } else {
        Image::new(w, h, ch, kind, planar)
    };
    if !img.is_finite() {
        return Err(IoError::NotFinite { path: path.to_path_buf() });
    }
    Ok(img)
}

/// Reads every page of a file (a PNG has one; a TIFF stack has one per slice).
pub fn read_stack(path: &Path, mode: ColorMode) -> Result<Vec<Image>> {
    read_raw_pages(path)?.into_iter().map(|p| to_image(path, p, mode)).collect()
}

/// Reads a single-page image; a multi-page file is an error.
pub fn read_image(path: &Path, mode: ColorMode) -> Result<Image> {
    let mut pages = read_stack(path, mode)?;
    if pages.len() != 1 {
        return Err(IoError::NotSinglePage { path: path.to_path_buf(), pages: pages.len() });
    }
    Ok(pages.remove(0))
}
