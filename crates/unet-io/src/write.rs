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
    let px = interleave(img);
    let (color, bits, bytes): (png::ColorType, png::BitDepth, Vec<u8>) = match (img.channels, depth) {
        (1, BitDepth::U8) => (png::ColorType::Grayscale, png::BitDepth::Eight, px.iter().map(|&v| to_u8(v)).collect()),
        (3, BitDepth::U8) => (png::ColorType::Rgb, png::BitDepth::Eight, px.iter().map(|&v| to_u8(v)).collect()),
        // PNG stores 16-bit samples big-endian.
        (1, BitDepth::U16) => (
            png::ColorType::Grayscale,
            png::BitDepth::Sixteen,
            px.iter().flat_map(|&v| to_u16(v).to_be_bytes()).collect(),
        ),
        (3, BitDepth::U16) => {
            (png::ColorType::Rgb, png::BitDepth::Sixteen, px.iter().flat_map(|&v| to_u16(v).to_be_bytes()).collect())
        }
        _ => return Err(invalid(path, "PNG cannot hold float samples; write a .tif")),
    };
    let (width, height) = (dim(path, img.width)?, dim(path, img.height)?);
    AtomicFile::write_with(path, force, |w| {
        encode_png(w, width, height, color, bits, &bytes)
            .map_err(|e| IoError::Encode { path: path.to_path_buf(), message: e.to_string() })
    })
}

/// An image side as the `u32` the encoders take.
fn dim(path: &Path, n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| invalid(path, format!("{n} pixels is too large a side for an image file")))
}

/// Encodes one PNG into `w`: header, data and the closing chunk, then a flush; every error
/// is returned (the `png` writer's drop would write the end chunk and drop its errors).
pub(crate) fn encode_png<W: Write>(
    w: W,
    width: u32,
    height: u32,
    color: png::ColorType,
    bits: png::BitDepth,
    data: &[u8],
) -> std::result::Result<(), png::EncodingError> {
    let mut enc = png::Encoder::new(w, width, height);
    enc.set_color(color);
    enc.set_depth(bits);
    enc.set_compression(png::Compression::Balanced);
    enc.set_filter(png::Filter::Adaptive);
    let mut writer = enc.write_header()?;
    writer.write_image_data(data)?;
    writer.finish()
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
    AtomicFile::write_with(path, force, |w| {
        let mut enc = tiff::encoder::TiffEncoder::new(w).map_err(encode_err(path))?;
        body(&mut enc)
    })
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
        let (wd, ht) = (dim(path, p.width)?, dim(path, p.height)?);
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
            (3, BitDepth::F32) => enc.write_image::<ct::RGB32Float>(wd, ht, &px),
            (c, _) => return Err(invalid(path, format!("cannot write {c} channels; use 1 or 3"))),
        }
        .map_err(&err)?;
    }
    Ok(())
}

/// Writes label images as a TIFF stack (16-bit when every value fits, else 32-bit) or a
/// 16-bit PNG (one page, values below 65536), atomically.
pub fn write_labels(path: &Path, pages: &[Label], force: bool) -> Result<()> {
    use tiff::encoder::colortype as ct;
    if pages.is_empty() {
        return Err(invalid(path, "nothing to write"));
    }
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
                let (wd, ht) = (dim(path, l.width)?, dim(path, l.height)?);
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

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Seek, SeekFrom, Write};

    use super::*;

    /// A disk with room for `room` bytes: writes beyond it fail as a full disk does.
    struct SmallDisk {
        data: Cursor<Vec<u8>>,
        room: u64,
    }

    impl SmallDisk {
        fn new(room: u64) -> Self {
            SmallDisk { data: Cursor::new(Vec::new()), room }
        }
    }

    impl Write for SmallDisk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let fits = self.room.saturating_sub(self.data.position()).min(buf.len() as u64) as usize;
            if fits == 0 && !buf.is_empty() {
                return Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left on device"));
            }
            self.data.write(&buf[..fits])
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Seek for SmallDisk {
        fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
            self.data.seek(pos)
        }
    }

    fn noise(w: usize, h: usize, channels: usize) -> Image {
        let data = (0..w * h * channels).map(|i| ((i * 7919 + i / 3) % 251) as f32).collect();
        Image::new(w, h, channels, crate::SampleKind::U8, data)
    }

    /// Every PNG that does not fit the disk is an error, wherever the disk runs full (in the
    /// data, in the end chunk, or in the final flush of the buffer).
    #[test]
    fn png_encoding_reports_a_full_disk_at_every_byte() {
        let img = noise(23, 11, 1);
        let bytes: Vec<u8> = interleave(&img).iter().map(|&v| to_u8(v)).collect();
        let enc = |disk: &mut SmallDisk| {
            encode_png(BufWriter::new(disk), 23, 11, png::ColorType::Grayscale, png::BitDepth::Eight, &bytes)
        };
        let mut big = SmallDisk::new(u64::MAX);
        enc(&mut big).unwrap();
        let full = big.data.into_inner();
        for room in 0..full.len() as u64 {
            let r = enc(&mut SmallDisk::new(room));
            assert!(r.is_err(), "{room} of {} bytes fit, yet the encoder reports success", full.len());
        }
        let mut disk = SmallDisk::new(full.len() as u64);
        enc(&mut disk).unwrap();
        assert_eq!(disk.data.into_inner(), full);
    }

    #[test]
    fn tiff_encoding_reports_a_full_disk_at_every_byte() {
        let pages = [noise(9, 5, 3), noise(9, 5, 3)];
        let path = Path::new("x.tif");
        let run = |disk: &mut SmallDisk| -> Result<()> {
            let mut w = BufWriter::new(disk);
            let mut enc = tiff::encoder::TiffEncoder::new(&mut w).map_err(encode_err(path))?;
            tiff_pages(path, &mut enc, &pages, BitDepth::U8)?;
            crate::atomic::finish(w).map_err(|error| IoError::Write { path: path.to_path_buf(), error })?;
            Ok(())
        };
        let mut big = SmallDisk::new(u64::MAX);
        run(&mut big).unwrap();
        let full = big.data.into_inner().len() as u64;
        for room in 0..full {
            assert!(run(&mut SmallDisk::new(room)).is_err(), "{room} of {full} bytes fit, yet no error");
        }
    }
}
