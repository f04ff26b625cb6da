//! Reading PNG and TIFF files (single images and multi-page TIFF stacks) into [`Image`]s.
//!
//! PNG goes through the `image` crate, TIFF through the `tiff` crate, which reads every page
//! of a stack and 32-bit float and integer samples that `image` does not. A TIFF's pages
//! are checked before any is decoded: size (0 x 0 is an error), sample type, strips inside
//! the file, and the memory the whole stack needs against the memory available. A PNG's
//! declared size is checked against the memory available in the same way.

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
    read_png_within(path, crate::memory::available_memory_bytes())
}

/// Reads a PNG, refusing before any pixel is decoded one whose declared size needs more
/// than `budget` bytes (`None`: no check): the decoded samples and the `f32` image twice
/// (the conversion's buffers). The decoder's allocation limit is set to the same budget.
pub(crate) fn read_png_within(path: &Path, budget: Option<u64>) -> Result<RawPage> {
    use image::ImageDecoder;
    let file = File::open(path).map_err(|error| IoError::Read { path: path.to_path_buf(), error })?;
    let err =
        |e: image::ImageError| IoError::Decode { path: path.to_path_buf(), format: "PNG", message: e.to_string() };
    // The header is read under the `image` crate's default limits (512 MiB for the
    // decoder's own buffers); the image itself may take all of the budget.
    let mut decoder =
        image::codecs::png::PngDecoder::with_limits(BufReader::new(file), image::Limits::default()).map_err(err)?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(IoError::EmptyImage { path: path.to_path_buf() });
    }
    let color = decoder.color_type();
    let kept: u128 = if color.has_color() { 3 } else { 1 };
    let needed = u128::from(decoder.total_bytes()) + 2 * u128::from(w) * u128::from(h) * kept * 4;
    if let Some(budget) = budget
        && needed > u128::from(budget)
    {
        let samples = color.channel_count();
        return Err(IoError::TooLarge {
            path: path.to_path_buf(),
            declared: format!(
                "{w} x {h} pixels of {samples} sample(s) of {} bits",
                color.bits_per_pixel() / u16::from(samples)
            ),
            needed_mib: crate::memory::mib(needed),
            available_mib: crate::memory::mib(u128::from(budget)),
        });
    }
    let mut limits = image::Limits::no_limits();
    limits.max_alloc = budget;
    decoder.set_limits(limits).map_err(err)?;
    let decoded = image::DynamicImage::from_decoder(decoder).map_err(err)?;
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
    read_tiff_within(path, crate::memory::available_memory_bytes())
}

/// The kinds of sample this crate reads from a TIFF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TiffSamples {
    U8,
    U16,
    U32,
    F32,
    F64,
}

impl TiffSamples {
    fn bytes(self) -> u128 {
        match self {
            TiffSamples::U8 => 1,
            TiffSamples::U16 => 2,
            TiffSamples::U32 | TiffSamples::F32 => 4,
            TiffSamples::F64 => 8,
        }
    }
}

/// What one TIFF page declares, read from its directory before any pixel is decoded.
#[derive(Debug, Clone, Copy)]
struct TiffPage {
    width: u32,
    height: u32,
    /// Channels kept (alpha dropped).
    channels: usize,
    /// Samples per pixel in the file.
    samples: usize,
    kind: TiffSamples,
    /// PlanarConfiguration 2: one plane per sample instead of interleaved samples.
    planar: bool,
}

impl TiffPage {
    fn pixels(&self) -> u128 {
        u128::from(self.width) * u128::from(self.height)
    }

    /// Bytes of the decoded samples.
    fn raw_bytes(&self) -> u128 {
        self.pixels() * self.samples as u128 * self.kind.bytes()
    }

    /// Bytes of the `f32` image made from it.
    fn image_bytes(&self) -> u128 {
        self.pixels() * self.channels as u128 * 4
    }
}

fn tiff_err(path: &Path) -> impl Fn(tiff::TiffError) -> IoError + '_ {
    move |e| {
        use tiff::{TiffError as E, TiffFormatError as F};
        let message = match e {
            E::FormatError(F::InvalidDimensions(w, h)) if w == 0 || h == 0 => {
                return IoError::EmptyImage { path: path.to_path_buf() };
            }
            E::LimitsExceeded => "decoding it needs more memory than is available".to_string(),
            e => e.to_string(),
        };
        IoError::Decode { path: path.to_path_buf(), format: "TIFF", message }
    }
}

/// Reads the current page's directory: size, sample layout and type, and that its strips
/// or tiles lie inside the file. Refuses what this crate cannot read before decoding it.
fn tiff_page<R: std::io::Read + std::io::Seek>(
    path: &Path,
    dec: &mut tiff::decoder::Decoder<R>,
    file_len: u64,
) -> Result<TiffPage> {
    use tiff::tags::Tag;
    let err = tiff_err(path);
    let unsupported = |what: String| IoError::UnsupportedPixels { path: path.to_path_buf(), what };
    let (width, height) = dec.dimensions().map_err(&err)?;
    if width == 0 || height == 0 {
        return Err(IoError::EmptyImage { path: path.to_path_buf() });
    }
    let color = dec.colortype().map_err(&err)?;
    let (channels, samples, bits) = match color {
        tiff::ColorType::Gray(b) => (1, 1, b),
        tiff::ColorType::GrayA(b) | tiff::ColorType::Multiband { bit_depth: b, num_samples: 2 } => (1, 2, b),
        tiff::ColorType::RGB(b) => (3, 3, b),
        tiff::ColorType::RGBA(b) => (3, 4, b),
        other => return Err(unsupported(format!("{other:?}"))),
    };
    let format = dec.find_tag_unsigned_vec::<u16>(Tag::SampleFormat).map_err(&err)?;
    let format = format.and_then(|v| v.first().copied()).unwrap_or(1);
    let kind = match (format, bits) {
        (_, 1) => return Err(unsupported("1-bit (bilevel)".into())),
        (1, 8) => TiffSamples::U8,
        (1, 16) => TiffSamples::U16,
        (1, 32) => TiffSamples::U32,
        (1, 64) => return Err(unsupported("64-bit integer".into())),
        (3, 32) => TiffSamples::F32,
        (3, 64) => TiffSamples::F64,
        (3, 16) => return Err(unsupported("16-bit float".into())),
        (2, b) => return Err(unsupported(format!("signed {b}-bit"))),
        (1 | 3, b) => return Err(unsupported(format!("{b}-bit samples"))),
        (f, b) => return Err(unsupported(format!("{b}-bit samples of TIFF sample format {f}"))),
    };
    let planar = dec.find_tag_unsigned::<u16>(Tag::PlanarConfiguration).map_err(&err)? == Some(2);
    let mut held = 0u128;
    for (what, offsets, counts) in
        [("strip", Tag::StripOffsets, Tag::StripByteCounts), ("tile", Tag::TileOffsets, Tag::TileByteCounts)]
    {
        let offsets = dec.find_tag_unsigned_vec::<u64>(offsets).map_err(&err)?.unwrap_or_default();
        let counts = dec.find_tag_unsigned_vec::<u64>(counts).map_err(&err)?.unwrap_or_default();
        held += counts.iter().map(|&n| u128::from(n)).sum::<u128>();
        for (i, (&o, &n)) in offsets.iter().zip(&counts).enumerate() {
            if o.checked_add(n).is_none_or(|end| end > file_len) {
                return Err(IoError::Decode {
                    path: path.to_path_buf(),
                    format: "TIFF",
                    message: format!(
                        "{what} {i} lies at bytes {o}..{} past the end of the file ({file_len} bytes); the file is truncated or damaged",
                        u128::from(o) + u128::from(n)
                    ),
                });
            }
        }
    }
    // Uncompressed strips or tiles must hold every sample: the decoder would fill the
    // missing ones with zeros, an image that was never in the file.
    let compression = dec.find_tag_unsigned::<u16>(Tag::Compression).map_err(&err)?.unwrap_or(1);
    let page = TiffPage { width, height, channels, samples, kind, planar };
    if compression == 1 && held < page.raw_bytes() {
        return Err(IoError::Decode {
            path: path.to_path_buf(),
            format: "TIFF",
            message: format!(
                "its strips or tiles hold {held} bytes but {width} x {height} pixels of {samples} sample(s) of {} bits need {}; the file is truncated or damaged",
                kind.bytes() * 8,
                page.raw_bytes()
            ),
        });
    }
    Ok(page)
}

/// Refuses a stack whose decoding would need more than `budget` bytes: every page's
/// decoded samples and `f32` image, plus one page's conversion buffers.
fn check_tiff_memory(path: &Path, pages: &[TiffPage], budget: Option<u64>) -> Result<()> {
    let Some(budget) = budget else { return Ok(()) };
    let per_page = |p: &TiffPage| p.raw_bytes() + p.image_bytes();
    let largest = pages.iter().map(|p| per_page(p) + p.image_bytes()).max().unwrap_or(0);
    let needed = pages.iter().map(per_page).sum::<u128>() + largest;
    if needed <= u128::from(budget) {
        return Ok(());
    }
    let p = &pages[0];
    let mut declared =
        format!("{} x {} pixels of {} sample(s) of {} bits", p.width, p.height, p.samples, p.kind.bytes() * 8);
    if pages.len() > 1 {
        declared.push_str(&format!(" (first page) in {} pages", pages.len()));
    }
    Err(IoError::TooLarge {
        path: path.to_path_buf(),
        declared,
        needed_mib: crate::memory::mib(needed),
        available_mib: crate::memory::mib(u128::from(budget)),
    })
}

/// Reads every page of a TIFF, refusing before any allocation a file whose declared pages
/// need more than `budget` bytes (`None`: no check). The decoder's own limits are set to
/// the same budget.
pub(crate) fn read_tiff_within(path: &Path, budget: Option<u64>) -> Result<Vec<RawPage>> {
    let err = tiff_err(path);
    let file = File::open(path).map_err(|error| IoError::Read { path: path.to_path_buf(), error })?;
    let file_len = file.metadata().map_err(|error| IoError::Read { path: path.to_path_buf(), error })?.len();
    let cap = budget.map_or(usize::MAX, |b| usize::try_from(b).unwrap_or(usize::MAX));
    let mut limits = tiff::decoder::Limits::default();
    limits.decoding_buffer_size = cap;
    limits.intermediate_buffer_size = cap;
    // Tag values are stored in the file, so none can be larger than the file.
    limits.ifd_value_size = usize::try_from(file_len).unwrap_or(usize::MAX).max(limits.ifd_value_size);
    let mut dec = tiff::decoder::Decoder::new(BufReader::new(file)).map_err(&err)?.with_limits(limits);
    // Every page's directory first, so the whole stack is checked before decoding.
    let mut pages = Vec::new();
    loop {
        pages.push(tiff_page(path, &mut dec, file_len)?);
        if !dec.more_images() {
            break;
        }
        dec.next_image().map_err(&err)?;
    }
    check_tiff_memory(path, &pages, budget)?;
    let mut out = Vec::with_capacity(pages.len());
    for (i, page) in pages.iter().enumerate() {
        dec.seek_to_image(i).map_err(&err)?;
        out.push(decode_tiff_page(path, &mut dec, page)?);
    }
    Ok(out)
}

/// Decodes the current page as declared by `page` (checked by [`tiff_page`]).
fn decode_tiff_page<R: std::io::Read + std::io::Seek>(
    path: &Path,
    dec: &mut tiff::decoder::Decoder<R>,
    page: &TiffPage,
) -> Result<RawPage> {
    use tiff::decoder::DecodingResult as R;
    let mut result = R::U8(Vec::new());
    dec.read_image_to_buffer(&mut result).map_err(tiff_err(path))?;
    let (w, h) = (page.width as usize, page.height as usize);
    let n = w * h * page.samples;
    let (s, c) = (page.samples, page.planar);
    let samples = match (result, page.kind) {
        (R::U8(v), TiffSamples::U8) if v.len() == n => Samples::U8(strip(chunky(v, s, c), s)),
        (R::U16(v), TiffSamples::U16) if v.len() == n => Samples::U16(strip(chunky(v, s, c), s)),
        (R::U32(v), TiffSamples::U32) if v.len() == n => Samples::U32(strip(chunky(v, s, c), s)),
        (R::F32(v), TiffSamples::F32) if v.len() == n => Samples::F32(strip(chunky(v, s, c), s)),
        (R::F64(v), TiffSamples::F64) if v.len() == n => {
            Samples::F32(strip(chunky(v.into_iter().map(|x| x as f32).collect(), s, c), s))
        }
        _ => {
            return Err(IoError::Decode {
                path: path.to_path_buf(),
                format: "TIFF",
                message: format!(
                    "the decoded samples do not match the declared {w} x {h} pixels of {s} sample(s); the file is damaged"
                ),
            });
        }
    };
    Ok(RawPage { width: w, height: h, channels: page.channels, samples })
}

/// Planes of samples (`RRR.. GGG.. BBB..`, PlanarConfiguration 2) -> interleaved pixels.
fn chunky<T: Copy>(v: Vec<T>, samples: usize, planar: bool) -> Vec<T> {
    if !planar || samples == 1 {
        return v;
    }
    let n = v.len() / samples;
    (0..n).flat_map(|i| (0..samples).map(move |c| (i, c))).map(|(i, c)| v[c * n + i]).collect()
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

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;
