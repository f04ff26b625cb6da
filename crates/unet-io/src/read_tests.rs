//! Hostile and unusual TIFF files, written byte by byte: huge declared sizes, planar RGB,
//! 1- and 64-bit samples, 0 x 0 pages, strips past the end of the file.

use super::*;
use crate::read_image;

const SHORT: u16 = 3;
const LONG: u16 = 4;

/// One directory entry: tag, type (SHORT or LONG) and values.
struct Entry(u16, u16, Vec<u32>);

/// Tags used below.
const WIDTH: u16 = 256;
const HEIGHT: u16 = 257;
const BITS: u16 = 258;
const COMPRESSION: u16 = 259;
const PHOTOMETRIC: u16 = 262;
const STRIP_OFFSETS: u16 = 273;
const SAMPLES: u16 = 277;
const ROWS_PER_STRIP: u16 = 278;
const STRIP_COUNTS: u16 = 279;
const PLANAR: u16 = 284;
const SAMPLE_FORMAT: u16 = 339;

/// A little-endian TIFF of one or more pages. Each page is its entries and its strips;
/// `STRIP_OFFSETS` is filled in (its given values are offsets into the page's `data`).
fn tiff(pages: &[(Vec<Entry>, Vec<u8>)]) -> Vec<u8> {
    let mut out = b"II*\0\0\0\0\0".to_vec();
    let mut link = 4; // where the offset of the next directory goes
    for (entries, data) in pages {
        let data_at = out.len() as u32;
        out.extend_from_slice(data);
        while !out.len().is_multiple_of(2) {
            out.push(0);
        }
        let mut entries: Vec<(u16, u16, Vec<u32>)> = entries
            .iter()
            .map(|Entry(t, ty, v)| {
                let v = if *t == STRIP_OFFSETS { v.iter().map(|o| o + data_at).collect() } else { v.clone() };
                (*t, *ty, v)
            })
            .collect();
        entries.sort_by_key(|e| e.0);
        // Values that do not fit the 4-byte field go before the directory.
        let mut fields = Vec::new();
        for (_, ty, v) in &entries {
            let bytes: Vec<u8> = if *ty == SHORT {
                v.iter().flat_map(|&x| (x as u16).to_le_bytes()).collect()
            } else {
                v.iter().flat_map(|&x| x.to_le_bytes()).collect()
            };
            if bytes.len() <= 4 {
                let mut f = bytes;
                f.resize(4, 0);
                fields.push(f);
            } else {
                let at = out.len() as u32;
                out.extend_from_slice(&bytes);
                fields.push(at.to_le_bytes().to_vec());
            }
        }
        let ifd = out.len() as u32;
        out[link..link + 4].copy_from_slice(&ifd.to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for ((t, ty, v), f) in entries.iter().zip(&fields) {
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(f);
        }
        link = out.len();
        out.extend_from_slice(&[0; 4]);
    }
    out
}

/// The entries of a one-strip gray page of `bits` bits, sample format `format`.
fn gray(w: u32, h: u32, bits: u32, format: u32, strip_bytes: u32) -> Vec<Entry> {
    vec![
        Entry(WIDTH, LONG, vec![w]),
        Entry(HEIGHT, LONG, vec![h]),
        Entry(BITS, SHORT, vec![bits]),
        Entry(COMPRESSION, SHORT, vec![1]),
        Entry(PHOTOMETRIC, SHORT, vec![1]),
        Entry(STRIP_OFFSETS, LONG, vec![0]),
        Entry(SAMPLES, SHORT, vec![1]),
        Entry(ROWS_PER_STRIP, LONG, vec![h]),
        Entry(STRIP_COUNTS, LONG, vec![strip_bytes]),
        Entry(SAMPLE_FORMAT, SHORT, vec![format]),
    ]
}

fn set(entries: &mut [Entry], tag: u16, values: Vec<u32>) {
    entries.iter_mut().find(|e| e.0 == tag).expect("tag present").2 = values;
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The error's message, which must name the file and be one line.
fn message<T: std::fmt::Debug>(r: Result<T>, file: &Path) -> String {
    let msg = r.expect_err("expected an error").to_string();
    assert!(msg.contains(&*file.file_name().unwrap().to_string_lossy()), "does not name the file: {msg}");
    assert!(!msg.contains('\n'), "{msg}");
    msg
}

#[test]
fn the_builder_writes_readable_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "ok.tif", &tiff(&[(gray(3, 2, 8, 1, 6), vec![1, 2, 3, 4, 5, 6])]));
    let img = read_image(&p, ColorMode::Gray).unwrap();
    assert_eq!((img.width, img.height, img.kind), (3, 2, SampleKind::U8));
    assert_eq!(img.data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
}

/// 100000 x 100000 pixels behind 10 compressed bytes: refused from the directory, before
/// anything is allocated, with the size, the memory it needs and the memory there is.
#[test]
fn a_huge_declared_page_is_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = gray(100_000, 100_000, 8, 1, 10);
    set(&mut e, COMPRESSION, vec![8]);
    let p = write(dir.path(), "bomb.tif", &tiff(&[(e, vec![0x78, 0x9c, 3, 0, 0, 0, 0, 1, 0, 0])]));
    // 10^10 samples + 4 * 10^10 bytes of f32, plus 9 * 10^10 for the conversion: 1.4e11 bytes.
    let r = read_tiff_within(&p, Some(8 << 30));
    let msg = message(r.map(|_| ()), &p);
    assert!(msg.contains("100000 x 100000 pixels of 1 sample(s) of 8 bits"), "{msg}");
    assert!(msg.contains("needs about 133515 MiB") && msg.contains("8192 MiB are available"), "{msg}");
    // Through the public reader, against this machine's memory: 4e9 x 4e9 fits no machine.
    let mut e = gray(4_000_000_000, 4_000_000_000, 16, 1, 10);
    set(&mut e, COMPRESSION, vec![8]);
    let p = write(dir.path(), "huge.tif", &tiff(&[(e, vec![0; 10])]));
    let e = read_image(&p, ColorMode::Gray).unwrap_err();
    if crate::memory::available_memory_bytes().is_some() {
        assert!(matches!(e, IoError::TooLarge { .. }), "{e}");
    }
}

/// Each page fits, the stack does not.
#[test]
fn the_whole_stack_is_checked_before_any_page_is_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let page = || (gray(1000, 1000, 8, 1, 1_000_000), vec![7u8; 1_000_000]);
    let p = write(dir.path(), "stack.tif", &tiff(&[page(), page(), page()]));
    // A page: 1 MB of samples + 4 MB of f32, and 4 + 5 MB while one is converted; alone it
    // needs 14 MB, three need 24 MB.
    assert_eq!(read_tiff_within(&p, Some(24_000_000)).unwrap().len(), 3);
    let msg = message(read_tiff_within(&p, Some(20_000_000)).map(|_| ()), &p);
    assert!(msg.contains("in 3 pages"), "{msg}");
}

#[test]
fn planar_rgb_reads_as_rgb() {
    let dir = tempfile::tempdir().unwrap();
    let (w, h) = (3u32, 2u32);
    let n = (w * h) as usize;
    let planes: Vec<u8> = (0..3 * n as u8).map(|i| i * 10).collect();
    let e = vec![
        Entry(WIDTH, LONG, vec![w]),
        Entry(HEIGHT, LONG, vec![h]),
        Entry(BITS, SHORT, vec![8, 8, 8]),
        Entry(COMPRESSION, SHORT, vec![1]),
        Entry(PHOTOMETRIC, SHORT, vec![2]),
        Entry(STRIP_OFFSETS, LONG, vec![0, n as u32, 2 * n as u32]),
        Entry(SAMPLES, SHORT, vec![3]),
        Entry(ROWS_PER_STRIP, LONG, vec![h]),
        Entry(STRIP_COUNTS, LONG, vec![n as u32; 3]),
        Entry(PLANAR, SHORT, vec![2]),
    ];
    let p = write(dir.path(), "planar.tif", &tiff(&[(e, planes.clone())]));
    let img = read_image(&p, ColorMode::Keep).unwrap();
    assert_eq!(img.channels, 3);
    // The image is planar in memory too: the file's planes as they are.
    assert_eq!(img.data, planes.iter().map(|&v| f32::from(v)).collect::<Vec<_>>());
}

#[test]
fn one_bit_and_64_bit_samples() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bilevel.tif", &tiff(&[(gray(8, 2, 1, 1, 2), vec![0xF0, 0x0F])]));
    let msg = message(read_image(&p, ColorMode::Gray), &p);
    assert!(msg.contains("1-bit") && msg.contains("convert it"), "{msg}");
    let p = write(dir.path(), "u64.tif", &tiff(&[(gray(2, 1, 64, 1, 16), vec![1; 16])]));
    let msg = message(read_image(&p, ColorMode::Gray), &p);
    assert!(msg.contains("64-bit integer"), "{msg}");
    // 64-bit float is read (as f32).
    let data: Vec<u8> = [0.25f64, -3.5].iter().flat_map(|v| v.to_le_bytes()).collect();
    let p = write(dir.path(), "f64.tif", &tiff(&[(gray(2, 1, 64, 3, 16), data)]));
    let img = read_image(&p, ColorMode::Gray).unwrap();
    assert_eq!((img.kind, img.data.clone()), (SampleKind::F32, vec![0.25, -3.5]));
    let p = write(dir.path(), "i32.tif", &tiff(&[(gray(2, 1, 32, 2, 8), vec![1; 8])]));
    assert!(message(read_image(&p, ColorMode::Gray), &p).contains("signed 32-bit"));
}

#[test]
fn empty_pages_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    for (w, h) in [(0, 0), (0, 5), (5, 0)] {
        let p = write(dir.path(), &format!("empty{w}x{h}.tif"), &tiff(&[(gray(w, h, 8, 1, 0), vec![])]));
        let e = read_image(&p, ColorMode::Gray).unwrap_err();
        assert!(matches!(e, IoError::EmptyImage { .. }), "{w}x{h}: {e}");
    }
}

#[test]
fn strips_past_the_end_of_the_file_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = gray(4, 4, 8, 1, 16);
    set(&mut e, STRIP_OFFSETS, vec![1_000_000]);
    let p = write(dir.path(), "past.tif", &tiff(&[(e, vec![0; 16])]));
    let msg = message(read_image(&p, ColorMode::Gray), &p);
    assert!(msg.contains("strip 0") && msg.contains("past the end of the file"), "{msg}");
    // A strip that starts inside and ends outside; and byte counts that overflow.
    for (offset, count) in [(0, 1_000), (0, u32::MAX)] {
        let mut e = gray(4, 4, 8, 1, count);
        set(&mut e, STRIP_OFFSETS, vec![offset]);
        let p = write(dir.path(), "cut.tif", &tiff(&[(e, vec![0; 16])]));
        let msg = message(read_image(&p, ColorMode::Gray), &p);
        assert!(msg.contains("past the end of the file"), "{msg}");
    }
    // A file cut short in its data.
    let full = tiff(&[(gray(64, 64, 8, 1, 4096), vec![9; 4096])]);
    let p = write(dir.path(), "short.tif", &full[..2000]);
    assert!(read_image(&p, ColorMode::Gray).is_err());
}

/// CRC-32 of PNG chunks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

/// PNGs are checked against the memory as TIFFs are: by the size the header declares,
/// before decoding; and a PNG larger than the `image` crate's default limit (512 MiB)
/// is not refused for that alone.
#[test]
fn a_png_is_checked_against_the_memory_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = Vec::new();
    crate::write::encode_png(&mut bytes, 4, 3, png::ColorType::Grayscale, png::BitDepth::Eight, &[9; 12]).unwrap();
    let p = write(dir.path(), "ok.png", &bytes);
    assert_eq!(read_png_within(&p, Some(1 << 30)).unwrap().width, 4);
    // 12 samples + twice 48 bytes of f32.
    assert!(read_png_within(&p, Some(108)).is_ok());
    let msg = message(read_png_within(&p, Some(107)).map(|_| ()), &p);
    assert!(msg.contains("4 x 3 pixels of 1 sample(s) of 8 bits") && msg.contains("crop or split"), "{msg}");
    // The header says 100000 x 100000 over the same 12 bytes of data.
    let mut bomb = bytes.clone();
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    let p = write(dir.path(), "bomb.png", &bomb);
    let msg = message(read_png_within(&p, Some(8 << 30)).map(|_| ()), &p);
    assert!(msg.contains("100000 x 100000 pixels") && msg.contains("8192 MiB are available"), "{msg}");
    // 600 MiB declared against a 1 TiB budget passes the check (the default limit of the
    // `image` crate, 512 MiB, would refuse it) and fails only where the data runs out.
    let mut big = bytes;
    big[16..20].copy_from_slice(&25_000u32.to_be_bytes());
    big[20..24].copy_from_slice(&25_000u32.to_be_bytes());
    let crc = crc32(&big[12..29]);
    big[29..33].copy_from_slice(&crc.to_be_bytes());
    let p = write(dir.path(), "big.png", &big);
    let e = read_png_within(&p, Some(1 << 40)).map(|_| ()).unwrap_err();
    assert!(matches!(e, IoError::Decode { .. }), "{e}");
    assert!(!e.to_string().contains("limit"), "{e}");
}

/// Uncompressed strips that hold fewer bytes than the pixels need: refused, not filled
/// with zeros.
#[test]
fn short_uncompressed_strips_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "short.tif", &tiff(&[(gray(8, 8, 8, 1, 10), vec![1; 10])]));
    let msg = message(read_image(&p, ColorMode::Gray), &p);
    assert!(msg.contains("hold 10 bytes") && msg.contains("need 64"), "{msg}");
    let p = write(dir.path(), "full.tif", &tiff(&[(gray(8, 8, 8, 1, 64), vec![1; 64])]));
    assert_eq!(read_image(&p, ColorMode::Gray).unwrap().data, vec![1.0; 64]);
}
