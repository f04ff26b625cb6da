//! A corpus of malformed and hostile inputs, generated here byte by byte, each run through
//! the `unet` binary. Every failing case must end with exit code 1 (failure) or 2 (usage
//! error), never a panic (101), an abort (134) or a kill (137); print one line on stderr
//! that names the file and says what to do; and leave no output file behind (no output,
//! no temporary file). A few hostile but valid inputs must simply work.

mod common;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use unet_io::{BitDepth, Image, Label, SampleKind};

/// The longest a case may run.
const TIMEOUT: Duration = Duration::from_secs(180);

/// Arguments from anything path- or string-like.
macro_rules! args {
    ($($x:expr),* $(,)?) => { vec![$(AsRef::<OsStr>::as_ref(&$x).to_os_string()),*] };
}

struct Case {
    name: String,
    args: Vec<OsString>,
    /// 1 or 2; 0 for hostile inputs that must work.
    code: i32,
    /// What the error line must contain: the file's name, words of the fix.
    expect: Vec<String>,
    /// Paths that must not exist afterwards.
    absent: Vec<PathBuf>,
}

// ---------------------------------------------------------------------------------------
// File builders.

const SHORT: u16 = 3;
const LONG: u16 = 4;

/// TIFF tags used below.
const WIDTH: u16 = 256;
const HEIGHT: u16 = 257;
const BITS: u16 = 258;
const COMPRESSION: u16 = 259;
const STRIP_OFFSETS: u16 = 273;
const STRIP_COUNTS: u16 = 279;
const TILE_OFFSETS: u16 = 324;
const SAMPLE_FORMAT: u16 = 339;

/// One TIFF page: directory entries (tag, type, values) and its data. Strip and tile
/// offsets are given relative to the page's data.
struct Page(Vec<(u16, u16, Vec<u32>)>, Vec<u8>);

impl Page {
    /// A gray page of `bits`-bit samples of TIFF sample format `format` in one strip.
    fn gray(w: u32, h: u32, bits: u32, format: u32, data: Vec<u8>) -> Page {
        let n = data.len() as u32;
        Page(
            vec![
                (WIDTH, LONG, vec![w]),
                (HEIGHT, LONG, vec![h]),
                (BITS, SHORT, vec![bits]),
                (COMPRESSION, SHORT, vec![1]),
                (262, SHORT, vec![1]),
                (STRIP_OFFSETS, LONG, vec![0]),
                (277, SHORT, vec![1]),
                (278, LONG, vec![h]),
                (STRIP_COUNTS, LONG, vec![n]),
                (SAMPLE_FORMAT, SHORT, vec![format]),
            ],
            data,
        )
    }

    fn u8(w: u32, h: u32) -> Page {
        Page::gray(w, h, 8, 1, (0..w * h).map(|i| (i * 37 % 251) as u8).collect())
    }

    fn f32(w: u32, h: u32, values: impl Fn(u32) -> f32) -> Page {
        Page::gray(w, h, 32, 3, (0..w * h).flat_map(|i| values(i).to_le_bytes()).collect())
    }

    /// Sets (or adds) an entry.
    fn set(mut self, tag: u16, ty: u16, values: Vec<u32>) -> Page {
        self.0.retain(|e| e.0 != tag);
        self.0.push((tag, ty, values));
        self
    }

    fn without(mut self, tag: u16) -> Page {
        self.0.retain(|e| e.0 != tag);
        self
    }
}

/// A little-endian TIFF of `pages`; with `cycle` the last directory links back to the first.
fn tiff(pages: &[Page], cycle: bool) -> Vec<u8> {
    let mut out = b"II*\0\0\0\0\0".to_vec();
    let mut link = 4;
    let mut first = 0u32;
    for Page(entries, data) in pages {
        let data_at = out.len() as u32;
        out.extend_from_slice(data);
        if out.len() % 2 == 1 {
            out.push(0);
        }
        let mut entries: Vec<(u16, u16, Vec<u32>)> = entries
            .iter()
            .map(|(t, ty, v)| {
                let rel = *t == STRIP_OFFSETS || *t == TILE_OFFSETS;
                (*t, *ty, if rel { v.iter().map(|o| o.saturating_add(data_at)).collect() } else { v.clone() })
            })
            .collect();
        entries.sort_by_key(|e| e.0);
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
        if first == 0 {
            first = ifd;
        }
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
    if cycle {
        out[link..link + 4].copy_from_slice(&first.to_le_bytes());
    }
    out
}

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

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// zlib of `data` in stored (uncompressed) blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = if data.is_empty() { vec![&[]] } else { data.chunks(65535).collect() };
    for (i, b) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        let n = b.len() as u16;
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(!n).to_le_bytes());
        out.extend_from_slice(b);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

/// A PNG by hand: 8-bit samples of colour type `color` (0 gray, 2 RGB, 3 palette),
/// `channels` per pixel, an optional palette.
fn png(w: u32, h: u32, color: u8, channels: usize, palette: Option<&[u8]>, pixels: &[u8]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, color, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    if let Some(p) = palette {
        chunk(&mut out, b"PLTE", p);
    }
    let row = w as usize * channels;
    let mut raw = Vec::new();
    for r in 0..h as usize {
        raw.push(0);
        raw.extend_from_slice(&pixels[r * row..(r + 1) * row]);
    }
    chunk(&mut out, b"IDAT", &zlib_stored(&raw));
    chunk(&mut out, b"IEND", &[]);
    out
}

fn gray_png(w: u32, h: u32) -> Vec<u8> {
    png(w, h, 0, 1, None, &(0..w * h).map(|i| (i * 31 % 256) as u8).collect::<Vec<_>>())
}

/// A safetensors file from a header and data.
fn safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// A model file's tensors and metadata, changed by `edit`, written to `path`.
fn edited_model(
    good: &Path,
    path: &Path,
    edit: impl FnOnce(&mut std::collections::HashMap<String, String>, &mut Vec<unet_nn::NamedTensor>),
) {
    let (mut meta, mut tensors) = unet_nn::read_safetensors(good).unwrap();
    edit(&mut meta, &mut tensors);
    std::fs::write(path, unet_nn::to_safetensors_bytes(&tensors, meta).unwrap()).unwrap();
}

fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    path.to_path_buf()
}

/// A 48 x 48 image of three bright discs and its instance labels.
fn cells() -> (Image, Label) {
    let n = 48;
    let centers = [(14.0, 20.0), (27.0, 20.0), (24.0, 38.0)];
    let mut img = vec![40f32; n * n];
    let mut lab = vec![0u32; n * n];
    for i in 0..n * n {
        let (x, y) = ((i % n) as f64, (i / n) as f64);
        if let Some(k) = centers.iter().position(|&(cx, cy)| (x - cx).powi(2) + (y - cy).powi(2) <= 42.0) {
            img[i] = 180.0 + ((i * 31) % 23) as f32;
            lab[i] = k as u32 + 1;
        }
    }
    (Image::gray(n, n, SampleKind::U8, img), Label::new(n, n, lab))
}

// ---------------------------------------------------------------------------------------
// The corpus.

struct Corpus {
    root: PathBuf,
    model: PathBuf,
    images: PathBuf,
    labels: PathBuf,
    cases: Vec<Case>,
    skipped: Vec<String>,
}

impl Corpus {
    fn new(root: &Path) -> Corpus {
        let config = unet_nn::UNetConfig { width: 2, depth: 2, ..Default::default() };
        let m = config.init::<unet_nn::CpuBackend>(3, &Default::default()).unwrap();
        let model = root.join("fixtures/m.safetensors");
        unet_nn::ModelFile::from_model(&m, &config, unet_nn::Normalization::PerImage).save(&model, false).unwrap();
        let (img, lab) = cells();
        let images = root.join("fixtures/images");
        let labels = root.join("fixtures/labels");
        unet_io::write_image(&images.join("a.png"), &[img], BitDepth::U8, false).unwrap();
        unet_io::write_labels(&labels.join("a.png"), &[lab], false).unwrap();
        Corpus { root: root.to_path_buf(), model, images, labels, cases: Vec::new(), skipped: Vec::new() }
    }

    /// A new folder for a case.
    fn dir(&self, name: &str) -> PathBuf {
        let d = self.root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn add(&mut self, name: &str, code: i32, args: Vec<OsString>, expect: &[&str], absent: Vec<PathBuf>) {
        assert!(self.cases.iter().all(|c| c.name != name), "two cases named {name}");
        let expect = expect.iter().map(|s| s.to_string()).collect();
        self.cases.push(Case { name: name.into(), args, code, expect, absent });
    }

    /// `unet predict` of the file `make` writes into the case's folder.
    fn predict(&mut self, name: &str, file: &str, bytes: &[u8], expect: &[&str]) {
        let d = self.dir(name);
        let input = write(&d.join(file), bytes);
        let out = d.join("out");
        let mut e = vec![file];
        e.extend_from_slice(expect);
        self.add(name, 1, args!["predict", "--model", self.model, input, "--out", out], &e, vec![out]);
    }

    /// `unet info --model` of a model file.
    fn model_file(&mut self, name: &str, bytes: &[u8], expect: &[&str]) {
        let d = self.dir(name);
        let m = write(&d.join("bad.safetensors"), bytes);
        let mut e = vec!["bad.safetensors"];
        e.extend_from_slice(expect);
        self.add(name, 1, args!["info", "--model", m], &e, vec![]);
    }

    /// `unet train --config` with `toml` (and the good data given on the command line).
    fn config(&mut self, name: &str, code: i32, toml: &str, expect: &[&str]) {
        let d = self.dir(name);
        // Small settings, unless the case sets them.
        let mut text = String::new();
        for base in ["width = 2", "depth = 2", "steps = 3"] {
            let key = base.split(' ').next().unwrap();
            if !toml.lines().any(|l| l.starts_with(&format!("{key} ="))) {
                text.push_str(base);
                text.push('\n');
            }
        }
        let cfg = write(&d.join("cfg.toml"), format!("{text}{toml}\n").as_bytes());
        let out = d.join("out");
        let a = args!["train", "--config", cfg, "--images", self.images, "--labels", self.labels, "--out", out];
        self.add(name, code, a, expect, vec![out]);
    }

    /// `unet train` of one image and one label written by the caller into the case's folder.
    fn train_data(&mut self, name: &str, image: (&str, &[u8]), label: (&str, &[u8]), expect: &[&str]) {
        let d = self.dir(name);
        write(&d.join("images").join(image.0), image.1);
        write(&d.join("labels").join(label.0), label.1);
        let out = d.join("out");
        let a = args![
            "train",
            "--images",
            d.join("images"),
            "--labels",
            d.join("labels"),
            "--out",
            out,
            "--width",
            "2",
            "--depth",
            "2",
            "--steps",
            "2"
        ];
        self.add(name, 1, a, expect, vec![out]);
    }

    /// `unet eval` of a prediction and a truth file.
    fn eval(&mut self, name: &str, code: i32, pred: &[u8], truth: &[u8], extra: &[&str], expect: &[&str]) {
        let d = self.dir(name);
        let p = write(&d.join("pred/x.tif"), pred);
        let t = write(&d.join("truth/x.tif"), truth);
        let json = d.join("out.json");
        let mut a = args!["eval", "--pred", p, "--truth", t, "--json", json];
        a.extend(extra.iter().map(OsString::from));
        self.add(name, code, a, expect, vec![json]);
    }

    /// `unet weights` of a label file.
    fn weights(&mut self, name: &str, code: i32, file: &str, bytes: &[u8], extra: &[&str], expect: &[&str]) {
        let d = self.dir(name);
        let l = write(&d.join("labels").join(file), bytes);
        let out = d.join("out");
        let mut a = args!["weights", "--labels", l, "--out", out];
        a.extend(extra.iter().map(OsString::from));
        self.add(name, code, a, expect, if code == 0 { vec![] } else { vec![out] });
    }
}

/// A valid PNG written by unet-io.
fn encoded_png(img: &Image) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.png");
    unet_io::write_image(&p, std::slice::from_ref(img), BitDepth::U8, false).unwrap();
    std::fs::read(p).unwrap()
}

fn label_tiff(w: u32, h: u32, values: impl Fn(u32) -> u32) -> Vec<u8> {
    tiff(&[Page::gray(w, h, 32, 1, (0..w * h).flat_map(|i| values(i).to_le_bytes()).collect())], false)
}

fn image_files(c: &mut Corpus) {
    // TIFF.
    let past = tiff(&[Page::u8(8, 8).set(STRIP_OFFSETS, LONG, vec![1_000_000])], false);
    c.predict("tiff-strip-past-the-end", "bad.tif", &past, &["past the end", "damaged"]);
    let tiled = Page::u8(16, 16)
        .without(STRIP_OFFSETS)
        .without(STRIP_COUNTS)
        .without(278)
        .set(322, SHORT, vec![16])
        .set(323, SHORT, vec![16])
        .set(TILE_OFFSETS, LONG, vec![2_000_000])
        .set(325, LONG, vec![256]);
    c.predict("tiff-tile-past-the-end", "bad.tif", &tiff(&[tiled], false), &["tile 0", "past the end"]);
    let bilevel = tiff(&[Page::gray(8, 8, 1, 1, vec![0x55; 8])], false);
    c.predict("tiff-1-bit", "bad.tif", &bilevel, &["1-bit", "convert it"]);
    let wide = tiff(&[Page::gray(2, 2, 64, 1, vec![1; 32])], false);
    c.predict("tiff-64-bit-integer", "bad.tif", &wide, &["64-bit integer", "convert it"]);
    c.predict("tiff-0x0", "bad.tif", &tiff(&[Page::gray(0, 0, 8, 1, vec![0; 4])], false), &["empty"]);
    let nan = tiff(&[Page::f32(4, 4, |i| if i == 5 { f32::NAN } else { 0.5 })], false);
    c.predict("tiff-float-nan", "bad.tif", &nan, &["NaN", "clean the image"]);
    let inf = tiff(&[Page::f32(4, 4, |i| if i == 0 { f32::NEG_INFINITY } else { 0.5 })], false);
    c.predict("tiff-float-infinity", "bad.tif", &inf, &["infinite", "clean the image"]);
    let ragged = tiff(&[Page::u8(8, 8), Page::u8(9, 8)], false);
    c.predict("tiff-pages-of-different-sizes", "bad.tif", &ragged, &["differ in size", "must match"]);
    // Deflate-compressed, so that only the declared size can tell.
    let huge =
        tiff(&[Page::gray(4_000_000_000, 4_000_000_000, 16, 1, vec![0; 16]).set(COMPRESSION, SHORT, vec![8])], false);
    c.predict("tiff-huge-declared-size", "bad.tif", &huge, &["4000000000 x 4000000000", "crop or split"]);
    let cycle = tiff(&[Page::u8(4, 4), Page::u8(4, 4)], true);
    c.predict("tiff-directory-cycle", "bad.tif", &cycle, &["TIFF"]);
    let half = tiff(&[Page::gray(4, 4, 16, 3, vec![0; 32])], false);
    c.predict("tiff-16-bit-float", "bad.tif", &half, &["16-bit float", "convert it"]);
    let signed = tiff(&[Page::gray(4, 4, 16, 2, vec![0; 32])], false);
    c.predict("tiff-signed-integer", "bad.tif", &signed, &["signed 16-bit", "convert it"]);
    let twelve = tiff(&[Page::gray(4, 4, 12, 1, vec![0; 24])], false);
    c.predict("tiff-12-bit", "bad.tif", &twelve, &["12-bit", "convert it"]);
    let odd = tiff(&[Page::u8(8, 8).set(COMPRESSION, SHORT, vec![12345])], false);
    c.predict("tiff-unknown-compression", "bad.tif", &odd, &["TIFF"]);
    let short = tiff(&[Page::gray(8, 8, 8, 1, vec![1; 10])], false);
    c.predict("tiff-strip-shorter-than-the-image", "bad.tif", &short, &["hold 10 bytes", "truncated"]);
    c.predict("tiff-header-only", "bad.tif", b"II*\0", &["TIFF", "export it again"]);
    c.predict("tiff-no-directory", "bad.tif", b"II*\0\xff\xff\xff\x7f", &["TIFF"]);
    // PNG.
    let good = gray_png(16, 16);
    c.predict("png-truncated", "bad.png", &good[..good.len() / 2], &["PNG", "export it again"]);
    let mut crc = good.clone();
    let at = crc.len() - 20; // inside IDAT's data
    crc[at] ^= 0x40;
    c.predict("png-bad-crc", "bad.png", &crc, &["PNG", "export it again"]);
    c.predict("png-empty-file", "bad.png", b"", &["PNG"]);
    c.predict("png-text-file", "bad.png", b"this is not an image\n", &["PNG", "export it again"]);
    c.predict("png-0x0", "bad.png", &png(0, 0, 0, 1, None, &[]), &["bad.png"]);
    let mut bomb = gray_png(1, 1);
    bomb[16..20].copy_from_slice(&1_000_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&1_000_000u32.to_be_bytes());
    let fixed = crc32(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&fixed.to_be_bytes());
    c.predict("png-huge-declared-size", "bad.png", &bomb, &["1000000 x 1000000", "crop or split"]);
}

fn input_paths(c: &mut Corpus) {
    let model = c.model.clone();
    // A folder where an image file is expected: it holds no images.
    let d = c.dir("folder-named-like-an-image");
    let fake = d.join("x.png");
    std::fs::create_dir_all(&fake).unwrap();
    c.add(
        "folder-named-like-an-image",
        1,
        args!["predict", "--model", model, fake, "--out", d.join("out")],
        &["x.png", "no .png/.tif/.tiff images"],
        vec![d.join("out")],
    );
    #[cfg(unix)]
    {
        let d = c.dir("symlink-loop");
        let l = d.join("loop.png");
        std::os::unix::fs::symlink(&l, &l).unwrap();
        c.add(
            "symlink-loop",
            1,
            args!["predict", "--model", model, l, "--out", d.join("out")],
            &["loop.png", "check the path"],
            vec![d.join("out")],
        );
        use std::os::unix::ffi::OsStrExt;
        let d = c.dir("non-utf8-name");
        let f = write(&d.join(OsStr::from_bytes(b"x\xff.png")), b"garbage");
        c.add(
            "non-utf8-name",
            1,
            args!["predict", "--model", model, f, "--out", d.join("out")],
            &["x\u{fffd}.png", "export it again"],
            vec![d.join("out")],
        );
    }
    let d = c.dir("two-inputs-one-stem");
    write(&d.join("in/a.png"), &gray_png(8, 8));
    write(&d.join("in/a.tif"), &tiff(&[Page::u8(8, 8)], false));
    c.add(
        "two-inputs-one-stem",
        1,
        args!["predict", "--model", model, d.join("in"), "--out", d.join("out")],
        &["a.tif", "collide", "rename one"],
        vec![d.join("out")],
    );
    let d = c.dir("missing-input");
    c.add(
        "missing-input",
        1,
        args!["predict", "--model", model, d.join("nothing.png"), "--out", d.join("out")],
        &["nothing.png", "check the path"],
        vec![d.join("out")],
    );
    // Output folders that cannot be.
    let img = write(&c.root.join("fixtures/in/g.png"), &gray_png(20, 20));
    let d = c.dir("output-folder-is-a-file");
    let f = write(&d.join("out"), b"a file");
    c.add(
        "output-folder-is-a-file",
        1,
        args!["predict", "--model", model, img, "--out", f],
        &["out", "is not a folder"],
        vec![],
    );
    let d = c.dir("output-folder-inside-a-file");
    let f = write(&d.join("file"), b"a file");
    c.add(
        "output-folder-inside-a-file",
        1,
        args!["predict", "--model", model, img, "--out", f.join("out")],
        &["file/out", "cannot create the output folder"],
        vec![],
    );
    if Path::new("/proc/self").exists() {
        c.add(
            "output-folder-in-proc",
            1,
            args!["predict", "--model", model, img, "--out", "/proc/unet-corpus/out"],
            &["/proc/unet-corpus/out", "cannot create the output folder"],
            vec![],
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let d = c.dir("read-only-output-folder");
        let ro = d.join("ro");
        std::fs::create_dir_all(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        // Permission bits do not bind root: skip where a write goes through.
        if std::fs::write(ro.join("probe"), b"x").is_ok() {
            std::fs::remove_file(ro.join("probe")).unwrap();
            c.skipped.push("read-only-output-folder (permissions do not apply to this user)".into());
        } else {
            c.add(
                "read-only-output-folder",
                1,
                args!["predict", "--model", model, img, "--out", ro.join("out")],
                &["ro/out", "cannot create"],
                vec![ro.join("out")],
            );
        }
    }
    let d = c.dir("predict-memory-nan");
    c.add(
        "predict-memory-nan",
        2,
        args!["predict", "--model", model, img, "--out", d.join("out"), "--memory-mb", "NaN"],
        &["--memory-mb NaN", "positive"],
        vec![d.join("out")],
    );
    let d = c.dir("predict-memory-too-small");
    c.add(
        "predict-memory-too-small",
        2,
        args!["predict", "--model", model, img, "--out", d.join("out"), "--memory-mb", "1e-9"],
        &["no tile fits the memory budget", "--memory-mb"],
        vec![d.join("out")],
    );
    let d = c.dir("predict-tile-0");
    c.add(
        "predict-tile-0",
        2,
        args!["predict", "--model", model, img, "--out", d.join("out"), "--tile", "0"],
        &["--tile"],
        vec![d.join("out")],
    );
    // Hostile but valid: a 1 x 1 image is predicted (mirrored out to a tile).
    let d = c.dir("one-pixel-image");
    let one = write(&d.join("one.png"), &gray_png(1, 1));
    c.add("one-pixel-image", 0, args!["predict", "--model", model, one, "--out", d.join("out")], &[], vec![]);
    // Hostile but valid: a palette image is read as colour, then gray.
    let d = c.dir("palette-image");
    let pal = write(&d.join("pal.png"), &png(4, 4, 3, 1, Some(&[0, 0, 0, 200, 10, 10]), &[0, 1, 1, 0].repeat(4)));
    c.add("palette-image", 0, args!["predict", "--model", model, pal, "--out", d.join("out")], &[], vec![]);
}

fn model_files(c: &mut Corpus) {
    let good = c.model.clone();
    let terabyte = r#"{"w":{"dtype":"F32","shape":[274877906944],"data_offsets":[0,1099511627776]}}"#;
    c.model_file("model-header-claims-1-tb", &safetensors(terabyte, &[0; 8]), &["truncated or damaged"]);
    let mut endless = u64::MAX.to_le_bytes().to_vec();
    endless.extend_from_slice(b"{}");
    c.model_file("model-header-length-u64-max", &endless, &["header claims", "truncated or damaged"]);
    c.model_file("model-empty-file", b"", &["less than a safetensors header", "unet train"]);
    c.model_file("model-text-file", b"hello, world: not a model", &["not a unet model file"]);
    c.model_file("model-png-file", &gray_png(4, 4), &["not a unet model file"]);
    let bytes = std::fs::read(&good).unwrap();
    c.model_file("model-truncated", &bytes[..bytes.len() - 100], &["truncated or damaged"]);
    let f16 = r#"{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#;
    c.model_file("model-f16-tensor", &safetensors(f16, &[0; 4]), &["expected F32"]);
    let not_json = safetensors("{not json", &[]);
    c.model_file("model-header-not-json", &not_json, &["not valid JSON"]);
    for (name, edit, expect) in [
        ("model-wrong-format-tag", ("format", "something-else"), &["format is 'something-else'"][..]),
        ("model-wrong-version", ("format_version", "99"), &["format 99", "matching unet version"][..]),
        ("model-config-not-json", ("config", "{"), &["bad config"][..]),
        (
            "model-config-depth-100",
            (
                "config",
                r#"{"depth":100,"width":2,"in_channels":1,"classes":2,"padding":"valid","batch_norm":false,"dropout":0.5}"#,
            ),
            &["depth"][..],
        ),
        ("model-normalization-wrong-type", ("normalization", "42"), &["bad normalization"][..]),
        (
            "model-config-in-channels-2-to-the-62",
            (
                "config",
                r#"{"depth":2,"width":2,"in_channels":4611686018427387904,"classes":2,"padding":"valid","batch_norm":false,"dropout":0.5}"#,
            ),
            &["damaged"][..],
        ),
        (
            "model-config-classes-u64-max",
            (
                "config",
                r#"{"depth":2,"width":2,"in_channels":1,"classes":18446744073709551615,"padding":"valid","batch_norm":false,"dropout":0.5}"#,
            ),
            &["classes"][..],
        ),
    ] {
        let d = c.dir(name);
        let p = d.join("bad.safetensors");
        edited_model(&good, &p, |meta, _| {
            meta.insert(edit.0.into(), edit.1.into());
        });
        let mut e = vec!["bad.safetensors"];
        e.extend_from_slice(expect);
        c.add(name, 1, args!["info", "--model", p], &e, vec![]);
    }
    let d = c.dir("model-missing-tensor");
    let p = d.join("bad.safetensors");
    edited_model(&good, &p, |_, t| {
        t.pop();
    });
    c.add("model-missing-tensor", 1, args!["info", "--model", p], &["bad.safetensors", "damaged"], vec![]);
    let d = c.dir("model-nan-weights");
    let p = d.join("bad.safetensors");
    edited_model(&good, &p, |_, t| t[0].data[0] = f32::NAN);
    let img = c.root.join("fixtures/in/g.png");
    c.add(
        "model-nan-weights",
        1,
        args!["predict", "--model", p, img, "--out", d.join("out")],
        &["bad.safetensors", "NaN", "earlier checkpoint"],
        vec![d.join("out")],
    );
    let d = c.dir("model-is-a-folder");
    c.add(
        "model-is-a-folder",
        1,
        args!["predict", "--model", d, img, "--out", d.join("out")],
        &["model-is-a-folder", "cannot read the model file"],
        vec![d.join("out")],
    );
}

fn configs(c: &mut Corpus) {
    c.config("config-lr-negative", 2, "lr = -1.0", &["lr = -1", "fix them"]);
    c.config("config-lr-nan", 2, "lr = nan", &["lr = NaN"]);
    c.config("config-lr-infinite", 2, "lr = inf", &["lr = inf"]);
    c.config("config-steps-above-u64-max", 2, "steps = 18446744073709551616", &["cfg.toml", "steps"]);
    c.config("config-steps-negative", 2, "steps = -1", &["cfg.toml"]);
    c.config("config-steps-0", 2, "steps = 0", &["steps = 0"]);
    c.config("config-width-0", 2, "width = 0", &["width"]);
    c.config("config-width-i64-max", 2, "width = 9223372036854775807", &["width"]);
    c.config("config-depth-1000", 2, "depth = 1000", &["depth"]);
    c.config("config-tile-i64-max", 2, "tile = 9223372036854775807", &["tile = 9223372036854775807"]);
    c.config("config-seed-wrong-type", 2, "seed = \"abc\"", &["cfg.toml", "seed"]);
    c.config("config-unknown-key", 2, "learning_rate = 0.1", &["cfg.toml", "learning_rate"]);
    c.config("config-dropout-nan", 2, "dropout = nan", &["dropout"]);
    c.config("config-momentum-1", 2, "momentum = 1.0", &["momentum"]);
    c.config("config-memory-minus-infinity", 2, "memory_mb = -inf", &["memory_mb"]);
    c.config("config-sigma-0", 2, "[weights]\nw0 = 10.0\nsigma = 0.0", &["sigma"]);
    c.config("config-augment-wrong-type", 2, "[augment]\nelastic_sigma = \"x\"", &["cfg.toml", "elastic_sigma"]);
    c.config("config-augment-sigma-1e308", 2, "[augment]\nelastic_sigma = 1e308", &["elastic_sigma"]);
    c.config("config-augment-grid-i64-max", 2, "[augment]\nelastic_grid = 9223372036854775807", &["elastic_grid"]);
    c.config("config-device-unknown", 2, "device = \"tpu\"", &["tpu"]);
    c.config("config-label-mode-unknown", 2, "label_mode = \"foo\"", &["cfg.toml", "label_mode"]);
    c.config("config-empty-string-images", 2, "", &[]);
    // The empty image path: no --images on the command line.
    let last = c.cases.pop().unwrap();
    let d = c.dir("config-empty-string-images");
    let cfg = write(&d.join("cfg.toml"), b"images = \"\"\nlabels = \"\"\n");
    c.add(
        "config-empty-string-images",
        2,
        args!["train", "--config", cfg, "--out", d.join("out")],
        &["--images"],
        last.absent,
    );
    // Training that diverges at once: a clear error, no model file.
    let d = c.dir("config-lr-1e308");
    let cfg = write(&d.join("cfg.toml"), b"width = 2\ndepth = 2\nsteps = 4\nlr = 1e308\n");
    let out = d.join("out");
    c.add(
        "config-lr-1e308",
        1,
        args!["train", "--config", cfg, "--images", c.images, "--labels", c.labels, "--out", out],
        &["NaN", "lower the learning rate"],
        vec![out.join("last.safetensors"), out.join("checkpoint.safetensors"), out.join("best.safetensors")],
    );
    let d = c.dir("config-is-a-folder");
    c.add(
        "config-is-a-folder",
        1,
        args!["train", "--config", d, "--images", c.images, "--labels", c.labels, "--out", d.join("out")],
        &["config-is-a-folder", "cannot read the config file"],
        vec![d.join("out")],
    );
    let d = c.dir("config-not-utf8");
    let cfg = write(&d.join("cfg.toml"), b"lr = 0.1\n# \xff\xfe\n");
    c.add(
        "config-not-utf8",
        1,
        args!["train", "--config", cfg, "--images", c.images, "--labels", c.labels, "--out", d.join("out")],
        &["cfg.toml", "cannot read the config file"],
        vec![d.join("out")],
    );
    let d = c.dir("option-time-limit-nan");
    c.add(
        "option-time-limit-nan",
        2,
        args![
            "train",
            "--images",
            c.images,
            "--labels",
            c.labels,
            "--out",
            d.join("out"),
            "--width",
            "2",
            "--depth",
            "2",
            "--time-limit",
            "NaN"
        ],
        &["--time-limit"],
        vec![d.join("out")],
    );
    let d = c.dir("option-lr-minus-infinity");
    c.add(
        "option-lr-minus-infinity",
        2,
        args!["train", "--images", c.images, "--labels", c.labels, "--out", d.join("out"), "--lr=-inf"],
        &["lr = -inf"],
        vec![d.join("out")],
    );
    let d = c.dir("resume-not-a-run");
    c.add("resume-not-a-run", 1, args!["train", "--resume", d], &["config.toml", "run folder"], vec![]);
}

fn training_data(c: &mut Corpus) {
    let (img, lab) = cells();
    let img_png = encoded_png(&img);
    let lab_png = {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.png");
        unet_io::write_labels(&p, &[lab], false).unwrap();
        std::fs::read(p).unwrap()
    };
    let small = encoded_png(&Image::gray(40, 48, SampleKind::U8, vec![9.0; 40 * 48]));
    c.train_data("label-size-mismatch", ("a.png", &small), ("a.png", &lab_png), &["a.png", "same size"]);
    let colour = png(48, 48, 2, 3, None, &(0..48 * 48 * 3).map(|i| (i % 3 * 50) as u8).collect::<Vec<_>>());
    c.train_data("label-in-colour", ("a.png", &img_png), ("a.png", &colour), &["labels/a.png", "in colour", "gray"]);
    let zero = png(48, 48, 0, 1, None, &[0; 48 * 48]);
    c.train_data("label-all-background", ("a.png", &img_png), ("a.png", &zero), &["labels", "foreground"]);
    c.train_data("label-without-image", ("a.png", &img_png), ("b.png", &lab_png), &["b.png", "no partner"]);
    let frac = tiff(&[Page::f32(48, 48, |i| if i % 7 == 0 { 1.5 } else { 0.0 })], false);
    c.train_data("label-fractions", ("a.png", &img_png), ("a.tif", &frac), &["a.tif", "whole numbers"]);
    let d = c.dir("images-folder-empty");
    std::fs::create_dir_all(d.join("images")).unwrap();
    c.add(
        "images-folder-empty",
        1,
        args!["train", "--images", d.join("images"), "--labels", c.labels, "--out", d.join("out")],
        &["images", "no .png/.tif/.tiff images"],
        vec![d.join("out")],
    );
    let d = c.dir("images-folder-missing");
    c.add(
        "images-folder-missing",
        1,
        args!["train", "--images", d.join("nowhere"), "--labels", c.labels, "--out", d.join("out")],
        &["nowhere", "check the path"],
        vec![d.join("out")],
    );
}

fn eval_files(c: &mut Corpus) {
    let mask = |w: u32, h: u32, v: u8| tiff(&[Page::gray(w, h, 8, 1, vec![v; (w * h) as usize])], false);
    let cells = tiff(&[Page::gray(8, 8, 8, 1, (0..64).map(|i| if i % 3 == 0 { 255 } else { 0 }).collect())], false);
    c.eval("eval-size-mismatch", 1, &mask(9, 8, 255), &cells, &[], &["x.tif", "same size"]);
    c.eval("eval-truth-without-cells", 1, &cells, &mask(8, 8, 0), &[], &["x.tif", "no cells"]);
    let over = tiff(&[Page::f32(8, 8, |i| i as f32)], false);
    c.eval("eval-probabilities-above-1", 1, &over, &cells, &[], &["x.tif", "[0, 1]"]);
    let nan = tiff(&[Page::f32(8, 8, |_| f32::NAN)], false);
    c.eval("eval-nan-prediction", 1, &nan, &cells, &[], &["x.tif", "NaN"]);
    let two = tiff(&[Page::u8(8, 8), Page::u8(8, 8)], false);
    c.eval("eval-page-count-mismatch", 1, &two, &cells, &[], &["x.tif", "pages"]);
    c.eval("eval-thresholds-nan", 2, &cells, &cells, &["--thresholds", "NaN"], &["--thresholds"]);
    c.eval("eval-thresholds-huge-range", 2, &cells, &cells, &["--thresholds", "0-1:1e-300"], &["--thresholds"]);
    c.eval("eval-unknown-metric", 2, &cells, &cells, &["--metrics", "accuracy"], &["accuracy"]);
    let d = c.dir("eval-json-is-a-folder");
    let p = write(&d.join("pred/x.tif"), &cells);
    let json = d.join("report");
    std::fs::create_dir_all(&json).unwrap();
    c.add(
        "eval-json-is-a-folder",
        1,
        args!["eval", "--pred", p, "--truth", p, "--json", json, "--force"],
        &["report", "cannot write"],
        vec![],
    );
    let d = c.dir("eval-json-exists");
    let p = write(&d.join("pred/x.tif"), &cells);
    let json = write(&d.join("r.json"), b"{}");
    c.add(
        "eval-json-exists",
        1,
        args!["eval", "--pred", p, "--truth", p, "--json", json],
        &["r.json", "--force"],
        vec![],
    );
    // Hostile but valid: 65535 distinct instances on each side.
    let d = c.dir("eval-65535-instances");
    let ids = |shift: u32| {
        let v: Vec<u8> = (0..65536u32).map(|i| ((i + shift) % 65535 + 1) as u16).flat_map(u16::to_le_bytes).collect();
        tiff(&[Page::gray(256, 256, 16, 1, v)], false)
    };
    let p = write(&d.join("p.tif"), &ids(0));
    let t = write(&d.join("t.tif"), &ids(1));
    c.add(
        "eval-65535-instances",
        0,
        args![
            "eval",
            "--pred",
            p,
            "--truth",
            t,
            "--pred-kind",
            "instances",
            "--truth-kind",
            "instances",
            "--metrics",
            "rand_error,v_info,seg,ap"
        ],
        &[],
        vec![],
    );
}

fn weight_files(c: &mut Corpus) {
    let lab = label_tiff(16, 16, |i| u32::from(i % 16 < 6));
    c.weights("weights-sigma-nan", 2, "a.tif", &lab, &["--sigma", "NaN"], &["--sigma"]);
    c.weights("weights-w0-negative", 2, "a.tif", &lab, &["--w0=-1"], &["--w0"]);
    let palette = png(4, 4, 3, 1, Some(&[0, 0, 0, 255, 0, 0, 0, 255, 0]), &[0, 1, 2, 1].repeat(4));
    c.weights("weights-palette-label", 1, "a.png", &palette, &[], &["a.png", "in colour", "gray"]);
    let frac = tiff(&[Page::f32(8, 8, |i| i as f32 * 0.5)], false);
    c.weights("weights-fractional-label", 1, "a.tif", &frac, &[], &["a.tif", "whole numbers"]);
    let d = c.dir("weights-two-labels-one-stem");
    write(&d.join("labels/a.png"), &gray_png(8, 8));
    write(&d.join("labels/a.tif"), &lab);
    c.add(
        "weights-two-labels-one-stem",
        1,
        args!["weights", "--labels", d.join("labels"), "--out", d.join("out")],
        &["a.tif", "collide", "rename one"],
        vec![d.join("out")],
    );
    // An existing output: refused before anything is written.
    let d = c.dir("weights-output-exists");
    write(&d.join("labels/a.tif"), &lab);
    write(&d.join("labels/b.tif"), &lab);
    write(&d.join("out/b_weights.png"), b"earlier");
    c.add(
        "weights-output-exists",
        1,
        args!["weights", "--labels", d.join("labels"), "--out", d.join("out")],
        &["b_weights.png", "--force"],
        vec![d.join("out/a_weights.tif"), d.join("out/a_weights.png")],
    );
    // Hostile but valid: every pixel its own instance (9216 cells), ids up to 2^32 - 1.
    let many = label_tiff(96, 96, |i| u32::MAX - i * 7919);
    c.weights("weights-every-pixel-a-cell", 0, "a.tif", &many, &[], &[]);
}

fn other_commands(c: &mut Corpus) {
    c.add("info-tile-0", 2, args!["info", "--tile", "0"], &["--tile"], vec![]);
    c.add("info-depth-9", 2, args!["info", "--depth", "9"], &["depth"], vec![]);
    c.add(
        "info-in-channels-u64-max",
        2,
        args!["info", "--in-channels", "18446744073709551615"],
        &["--in-channels"],
        vec![],
    );
    c.add("info-classes-u64-max", 2, args!["info", "--classes", "18446744073709551615"], &["--classes"], vec![]);
    let d = c.dir("synth-size-0");
    c.add(
        "synth-size-0",
        2,
        args!["synth", "--out", d.join("out"), "--size", "0", "0"],
        &["--size"],
        vec![d.join("out")],
    );
    let d = c.dir("synth-size-huge");
    c.add(
        "synth-size-huge",
        1,
        args!["synth", "--out", d.join("out"), "-n", "1", "--size", "10000000", "10000000"],
        &["10000000 x 10000000", "smaller --size"],
        vec![d.join("out")],
    );
    let d = c.dir("synth-bit-depth-12");
    c.add(
        "synth-bit-depth-12",
        2,
        args!["synth", "--out", d.join("out"), "--bit-depth", "12"],
        &["--bit-depth"],
        vec![d.join("out")],
    );
    let d = c.dir("augment-n-0");
    let (img, lab) = (c.images.join("a.png"), c.labels.join("a.png"));
    c.add(
        "augment-n-0",
        2,
        args!["augment", "--image", img, "--label", lab, "-n", "0", "--out", d.join("out")],
        &["-n"],
        vec![d.join("out")],
    );
    let small = write(&d.join("small.png"), &gray_png(20, 20));
    c.add(
        "augment-size-mismatch",
        1,
        args!["augment", "--image", small, "--label", lab, "--out", d.join("out2")],
        &["small.png", "same size"],
        vec![d.join("out2")],
    );
}

/// Runs one case; returns what is wrong with the outcome.
fn run(case: &Case, logs: &Path) -> Vec<String> {
    let (out_path, err_path) = (logs.join(format!("{}.out", case.name)), logs.join(format!("{}.err", case.name)));
    let mut child = Command::new(env!("CARGO_BIN_EXE_unet"))
        .arg("-q")
        .args(&case.args)
        .env_remove("UNET_LOG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("runs");
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return vec![format!("did not finish in {} s", TIMEOUT.as_secs())];
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stderr = String::from_utf8_lossy(&std::fs::read(&err_path).unwrap()).into_owned();
    let mut wrong = Vec::new();
    match status.code() {
        Some(code) if code == case.code => {}
        Some(code) => wrong.push(format!("exit code {code}, expected {}", case.code)),
        None => wrong.push(format!("ended by a signal ({status})")),
    }
    if stderr.contains("panicked") {
        wrong.push("panicked".into());
    }
    if case.code != 0 {
        let lines: Vec<&str> = stderr.trim_end().lines().collect();
        if lines.len() != 1 || !lines[0].starts_with("error: ") {
            wrong.push(format!("{} line(s) on stderr, expected one 'error: ...' line", lines.len()));
        }
        for e in &case.expect {
            if !stderr.contains(e.as_str()) {
                wrong.push(format!("the message does not contain '{e}'"));
            }
        }
    }
    for p in &case.absent {
        if std::fs::symlink_metadata(p).is_ok() {
            wrong.push(format!("{} was left behind", p.display()));
        }
    }
    if !wrong.is_empty() {
        wrong.push(format!("stderr: {}", stderr.trim_end()));
    }
    wrong
}

/// Temporary files of atomic writes anywhere under `dir`.
fn temp_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_name().to_string_lossy().starts_with(".unet-tmp-") {
            found.push(p.clone());
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            temp_files(&p, found);
        }
    }
}

#[test]
fn hostile_inputs_fail_cleanly() {
    let root = tempfile::tempdir().unwrap();
    let mut c = Corpus::new(root.path());
    image_files(&mut c);
    input_paths(&mut c);
    model_files(&mut c);
    configs(&mut c);
    training_data(&mut c);
    eval_files(&mut c);
    weight_files(&mut c);
    other_commands(&mut c);
    let failing = c.cases.iter().filter(|k| k.code != 0).count();
    assert!(failing >= 40, "only {failing} failing cases");
    let logs = root.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let only = std::env::var("UNET_CORPUS_ONLY").ok();
    let mut report = Vec::new();
    for case in c.cases.iter().filter(|k| only.as_deref().is_none_or(|o| k.name.contains(o))) {
        let wrong = run(case, &logs);
        if !wrong.is_empty() {
            report.push(format!("{}:\n    {}", case.name, wrong.join("\n    ")));
        }
    }
    let mut temps = Vec::new();
    temp_files(root.path(), &mut temps);
    for t in temps {
        report.push(format!("temporary file left behind: {}", t.display()));
    }
    for s in &c.skipped {
        eprintln!("skipped: {s}");
    }
    eprintln!("{} cases ({failing} failing inputs)", c.cases.len());
    assert!(report.is_empty(), "{} problem(s):\n{}", report.len(), report.join("\n"));
}
