//! Writing images and label images atomically: PNG (8/16-bit, gray or RGB, one page) and
//! TIFF (8/16-bit or 32-bit float, gray or RGB, any number of pages; labels as 16/32-bit).

use std::io::{BufWriter, Seek, Write};
use std::path::Path;

use crate::atomic::AtomicFile;
use crate::error::{IoError, Result};
use crate::image::Image;
use crate::label::Label;

/// Sample type of a written image. Integer types round and clamp to their range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitDepth {
    U8,
    U16,
    F32,
}

fn ext_of(path: &Path) -> String {
    path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase()
}

fn to_u8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

fn to_u16(v: f32) -> u16 {
    v.round().clamp(0.0, 65535.0) as u16
}

/// Planar channels -> interleaved pixels.
fn interleave(img: &Image) -> Vec<f32> {
    if img.channels == 1 {
        return img.data.clone();
    }
    let n = img.width * img.height;
    let mut out = Vec::with_capacity(img.data.len());
    for i in 0..n {
        for c in 0..img.channels {
            out.push(img.data[c * n + i]);
        }
    }
    out
}

fn invalid(path: &Path, message: impl Into<String>) -> IoError {
    IoError::Invalid { path: path.to_path_buf(), message: message.into() }
}

/// Writes `pages` to `path` (PNG: exactly one page; TIFF: a stack), values as given
/// (no rescaling), atomically; an existing file is replaced only with `force`.
pub fn write_image(path: &Path, pages: &[Image], depth: BitDepth, force: bool) -> Result<()> {
    let first = pages.first().ok_or_else(|| invalid(path, "nothing to write"))?;
    for p in pages {
        if p.channels != 1 && p.channels != 3 {
            return Err(invalid(path, format!("cannot write {} channels; use 1 or 3", p.channels)));
        }
        if p.size() != first.size() || p.channels != first.channels {
            return Err(invalid(path, "all pages of a stack must have the same size and channels"));
        }
    }
    match ext_of(path).as_str() {
        "png" => {
            if pages.len() != 1 {
                return Err(invalid(path, "PNG holds one page; write a .tif for a stack"));
            }
            write_png(path, first, depth, force)
        }
        "tif" | "tiff" => write_tiff(path, pages, depth, force),
        _ => Err(IoError::UnsupportedFormat { path: path.to_path_buf() }),
    }
}

fn write_png(path: &Path, img: &Image, depth: BitDepth, force: bool) -> Result<()> {
    use image::ImageEncoder;
    let px = interleave(img);
    let (color, bytes): (image::ExtendedColorType, Vec<u8>) = match (img.channels, depth) {
        (1, BitDepth::U8) => (image::ExtendedColorType::L8, px.iter().map(|&v| to_u8(v)).collect()),
        (3, BitDepth::U8) => (image::ExtendedColorType::Rgb8, px.iter().map(|&v| to_u8(v)).collect()),
        // PngEncoder takes 16-bit samples in native byte order.
        (1, BitDepth::U16) => {
            (image::ExtendedColorType::L16, px.iter().flat_map(|&v| to_u16(v).to_ne_bytes()).collect())
        }
        (3, BitDepth::U16) => {
            (image::ExtendedColorType::Rgb16, px.iter().flat_map(|&v| to_u16(v).to_ne_bytes()).collect())
        }
        _ => return Err(invalid(path, "PNG cannot hold float samples; write a .tif")),
    };
    let mut file = AtomicFile::create(path, force)?;
    image::codecs::png::PngEncoder::new(BufWriter::new(file.file()))
        .write_image(&bytes, img.width as u32, img.height as u32, color)
        .map_err(|e| IoError::Encode { path: path.to_path_buf(), message: e.to_string() })?;
    file.commit()
}

fn encode_err(path: &Path) -> impl Fn(tiff::TiffError) -> IoError + '_ {
    move |e| IoError::Encode { path: path.to_path_buf(), message: e.to_string() }
}

/// Writes a TIFF atomically; `body` adds the pages to the encoder.
fn write_tiff_with(
    path: &Path,
    force: bool,
    body: impl FnOnce(&mut tiff::encoder::TiffEncoder<&mut BufWriter<&mut std::fs::File>>) -> Result<()>,
) -> Result<()> {
    let mut file = AtomicFile::create(path, force)?;
    {
        let mut w = BufWriter::new(file.file());
        let mut enc = tiff::encoder::TiffEncoder::new(&mut w).map_err(encode_err(path))?;
        body(&mut enc)?;
        w.flush().map_err(|error| IoError::Write { path: path.to_path_buf(), error })?;
    }
    file.commit()
}

fn write_tiff(path: &Path, pages: &[Image], depth: BitDepth, force: bool) -> Result<()> {
    write_tiff_with(path, force, |enc| tiff_pages(path, enc, pages, depth))
}

fn tiff_pages<W: Write + Seek>(
    path: &Path,
    enc: &mut tiff::encoder::TiffEncoder<W>,
    pages: &[Image],
    depth: BitDepth,
) -> Result<()> {
    use tiff::encoder::colortype as ct;
    let err = encode_err(path);
    for p in pages {
        let (wd, ht) = (p.width as u32, p.height as u32);
        let px = interleave(p);
        match (p.channels, depth) {
            (1, BitDepth::U8) => {
                enc.write_image::<ct::Gray8>(wd, ht, &px.iter().map(|&v| to_u8(v)).collect::<Vec<_>>())
            }
            (3, BitDepth::U8) => enc.write_image::<ct::RGB8>(wd, ht, &px.iter().map(|&v| to_u8(v)).collect::<Vec<_>>()),
            (1, BitDepth::U16) => {
                enc.write_image::<ct::Gray16>(wd, ht, &px.iter().map(|&v| to_u16(v)).collect::<Vec<_>>())
            }
            (3, BitDepth::U16) => {
                enc.write_image::<ct::RGB16>(wd, ht, &px.iter().map(|&v| to_u16(v)).collect::<Vec<_>>())
            }
            (1, BitDepth::F32) => enc.write_image::<ct::Gray32Float>(wd, ht, &px),
            (_, BitDepth::F32) => enc.write_image::<ct::RGB32Float>(wd, ht, &px),
            _ => unreachable!("channels checked by write_image"),
        }
        .map_err(&err)?;
    }
    Ok(())
}

/// Writes label images as a TIFF stack (16-bit when every value fits, else 32-bit) or a
/// 16-bit PNG (one page, values below 65536), atomically.
pub fn write_labels(path: &Path, pages: &[Label], force: bool) -> Result<()> {
    use tiff::encoder::colortype as ct;
    let max = pages.iter().flat_map(|l| l.data.iter()).copied().max().unwrap_or(0);
    match ext_of(path).as_str() {
        "png" => {
            if pages.len() != 1 || max > 65535 {
                return Err(invalid(path, "PNG holds one page of values below 65536; write a .tif"));
            }
            let l = &pages[0];
            let img =
                Image::gray(l.width, l.height, crate::SampleKind::U16, l.data.iter().map(|&v| v as f32).collect());
            write_png(path, &img, if max <= 255 { BitDepth::U8 } else { BitDepth::U16 }, force)
        }
        "tif" | "tiff" => write_tiff_with(path, force, |enc| {
            let err = encode_err(path);
            for l in pages {
                let (wd, ht) = (l.width as u32, l.height as u32);
                if max <= 65535 {
                    let v: Vec<u16> = l.data.iter().map(|&x| x as u16).collect();
                    enc.write_image::<ct::Gray16>(wd, ht, &v).map_err(&err)?;
                } else {
                    enc.write_image::<ct::Gray32>(wd, ht, &l.data).map_err(&err)?;
                }
            }
            Ok(())
        }),
        _ => Err(IoError::UnsupportedFormat { path: path.to_path_buf() }),
    }
}
