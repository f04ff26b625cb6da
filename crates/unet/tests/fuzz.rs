//! Seeded mutation fuzzing of every decoder a user's file reaches, on stable Rust: PNG and
//! TIFF images and label images (8/16-bit, RGB, float, stacks), model files (safetensors
//! with our metadata), TOML training configs (parsed and checked), and folder pairing with
//! arbitrary file names. Each case mutates a valid seed (bit flips, interesting values,
//! truncation, insertion, duplication, splicing) with a generator seeded by the case
//! number, so a failure reproduces from its number alone; the decoder must return `Ok` or
//! an error, never panic (a panic is caught and reported with the input saved under
//! `target/fuzz-failures/`; an abort would end the test process, which fails too).
//!
//! Why not cargo-fuzz/libFuzzer: they need a nightly compiler and sanitizers; this runs in
//! the normal test suite on the stable toolchain (a short run in CI) and for as long as
//! wanted with `UNET_FUZZ_SECONDS=1800 cargo test --release -p unet --test fuzz --
//! --nocapture` (docs/reliability.md has the figures). It is not coverage-guided, so it
//! explores less deeply than libFuzzer would; the seeds and the structured TOML mutations
//! make up for part of that.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use unet::{Image, Label, SampleKind};

/// SplitMix64: small, fast, and trivially reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: [u32; 12] =
    [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff];

/// One random mutation of `data` (never empty afterwards unless truncated to nothing).
fn mutate(data: &mut Vec<u8>, other: &[u8], rng: &mut Rng) {
    let n = data.len().max(1);
    match rng.below(8) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(n);
                if let Some(b) = data.get_mut(i) {
                    *b ^= 1 << rng.below(8);
                }
            }
        }
        1 => {
            // An interesting value, 1, 2 or 4 bytes wide, either endianness.
            let v = INTERESTING[rng.below(INTERESTING.len())];
            let width = [1, 2, 4][rng.below(3)];
            let bytes = if rng.below(2) == 0 { v.to_le_bytes() } else { v.to_be_bytes() };
            let at = rng.below(n);
            for (k, &b) in bytes.iter().take(width).enumerate() {
                if let Some(x) = data.get_mut(at + k) {
                    *x = b;
                }
            }
        }
        2 => data.truncate(rng.below(n)),
        3 => {
            let at = rng.below(n).min(data.len());
            let extra: Vec<u8> = (0..1 + rng.below(64)).map(|_| rng.next() as u8).collect();
            data.splice(at..at, extra);
        }
        4 => {
            // Duplicate a chunk.
            let a = rng.below(n).min(data.len());
            let b = (a + rng.below(256)).min(data.len());
            let chunk = data[a..b].to_vec();
            let at = rng.below(n).min(data.len());
            data.splice(at..at, chunk);
        }
        5 => {
            // Delete a chunk.
            let a = rng.below(n).min(data.len());
            let b = (a + rng.below(256)).min(data.len());
            data.drain(a..b);
        }
        6 if !other.is_empty() => {
            // Splice the tail of another seed in.
            let at = rng.below(n).min(data.len());
            let from = rng.below(other.len());
            data.truncate(at);
            data.extend_from_slice(&other[from..]);
        }
        _ => {
            for _ in 0..1 + rng.below(32) {
                let i = rng.below(n);
                if let Some(b) = data.get_mut(i) {
                    *b = rng.next() as u8;
                }
            }
        }
    }
}

/// Values at the edges of every type a config holds.
const EDGE_VALUES: [&str; 16] = [
    "-1",
    "0",
    "1",
    "1e308",
    "-1e308",
    "nan",
    "inf",
    "-inf",
    "18446744073709551615",
    "9223372036854775807",
    "-9223372036854775808",
    "\"\"",
    "\"x\"",
    "[]",
    "true",
    "{}",
];

/// A TOML config mutated line-wise: values replaced by edge values, lines dropped,
/// duplicated or swapped, then a few byte-level mutations.
fn mutate_toml(text: &str, rng: &mut Rng) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for _ in 0..1 + rng.below(4) {
        let n = lines.len().max(1);
        let i = rng.below(n);
        match rng.below(4) {
            0 => {
                if let Some(l) = lines.get_mut(i)
                    && let Some((k, _)) = l.split_once('=')
                {
                    *l = format!("{k}= {}", EDGE_VALUES[rng.below(EDGE_VALUES.len())]);
                }
            }
            1 if !lines.is_empty() => {
                lines.remove(i.min(lines.len() - 1));
            }
            2 if !lines.is_empty() => {
                let l = lines[i.min(lines.len() - 1)].clone();
                lines.insert(rng.below(n), l);
            }
            _ => {
                let j = rng.below(n);
                if i < lines.len() && j < lines.len() {
                    lines.swap(i, j);
                }
            }
        }
    }
    let mut bytes = lines.join("\n").into_bytes();
    if rng.below(4) == 0 {
        mutate(&mut bytes, &[], rng);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Valid files to start from.
fn seeds(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let ramp = |w: usize, h: usize, c: usize, max: f32| -> Vec<f32> {
        (0..w * h * c).map(|i| ((i * 7919) % 997) as f32 / 997.0 * max).collect()
    };
    let mut out = Vec::new();
    let mut add = |name: &'static str, write: &dyn Fn(&Path)| {
        let p = dir.join(name);
        write(&p);
        out.push((name, std::fs::read(&p).expect("seed written")));
    };
    use unet_io::{BitDepth, write_image, write_labels};
    add("g8.png", &|p| {
        write_image(p, &[Image::gray(37, 23, SampleKind::U8, ramp(37, 23, 1, 255.0))], BitDepth::U8, true).unwrap()
    });
    add("g16.png", &|p| {
        write_image(p, &[Image::gray(19, 31, SampleKind::U16, ramp(19, 31, 1, 65535.0))], BitDepth::U16, true).unwrap()
    });
    add("rgb.png", &|p| {
        write_image(p, &[Image::new(21, 17, 3, SampleKind::U8, ramp(21, 17, 3, 255.0))], BitDepth::U8, true).unwrap()
    });
    add("g8.tif", &|p| {
        write_image(p, &[Image::gray(33, 29, SampleKind::U8, ramp(33, 29, 1, 255.0))], BitDepth::U8, true).unwrap()
    });
    add("stack16.tif", &|p| {
        let page = Image::gray(17, 13, SampleKind::U16, ramp(17, 13, 1, 4000.0));
        write_image(p, &[page.clone(), page], BitDepth::U16, true).unwrap()
    });
    add("f32.tif", &|p| {
        write_image(p, &[Image::gray(15, 11, SampleKind::F32, ramp(15, 11, 1, 1.0))], BitDepth::F32, true).unwrap()
    });
    add("labels.tif", &|p| {
        let data = (0..29 * 31).map(|i| [0u32, 7, 70_000, u32::MAX][i % 4]).collect();
        write_labels(p, &[Label::new(29, 31, data)], true).unwrap()
    });
    add("model.safetensors", &|p| {
        let config = unet::UNetConfig { width: 2, depth: 1, ..Default::default() };
        let model = config.init::<unet_nn::CpuBackend>(3, &Default::default()).unwrap();
        unet::ModelFile::from_model(&model, &config, unet::Normalization::default()).save(p, true).unwrap()
    });
    out
}

/// Runs `f`, turning a panic into a message.
fn no_panic(f: impl FnOnce()) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

/// One case: decode a mutated file (or config, or folder of names) through every reader
/// that would meet it.
fn run_case(case: u64, seeds: &[(&'static str, Vec<u8>)], toml: &str, dir: &Path) -> Result<(), (String, Vec<u8>)> {
    let mut rng = Rng(case ^ 0x5EED_F00D);
    let kind = rng.below(seeds.len() + 2);
    if kind == seeds.len() {
        let text = mutate_toml(toml, &mut rng);
        return no_panic(|| {
            if let Ok(cfg) = unet::TrainConfig::from_toml(&text) {
                let _ = cfg.problems();
            }
        })
        .map_err(|m| (m, text.into_bytes()));
    }
    if kind == seeds.len() + 1 {
        // Pairing: random (possibly non-UTF-8) names in two folders.
        let (imgs, labs) = (dir.join(format!("p{case}/i")), dir.join(format!("p{case}/l")));
        std::fs::create_dir_all(&imgs).unwrap();
        std::fs::create_dir_all(&labs).unwrap();
        let mut names = Vec::new();
        for k in 0..1 + rng.below(6) {
            let mut name: Vec<u8> =
                (0..1 + rng.below(12)).map(|_| [b'a', b'.', 0xff, 0xfe, b'-', b' ', 0xc3][rng.below(7)]).collect();
            name.extend_from_slice([&b".png"[..], b".tif", b".PNG", b""][rng.below(4)]);
            names.push(name.clone());
            let folder = if k % 2 == 0 { &imgs } else { &labs };
            use std::os::unix::ffi::OsStrExt;
            let _ = std::fs::write(folder.join(std::ffi::OsStr::from_bytes(&name)), b"x");
        }
        let r = no_panic(|| {
            let _ = unet_io::pair_by_stem(&imgs, &labs);
        });
        let _ = std::fs::remove_dir_all(dir.join(format!("p{case}")));
        return r.map_err(|m| (m, names.concat()));
    }
    let (name, seed) = &seeds[kind];
    let mut data = seed.clone();
    let other = &seeds[rng.below(seeds.len())].1;
    for _ in 0..1 + rng.below(4) {
        mutate(&mut data, other, &mut rng);
    }
    let path = dir.join(format!("case{}", name));
    std::fs::write(&path, &data).unwrap();
    let r = no_panic(|| {
        if name.ends_with(".safetensors") {
            if let Ok(f) = unet::ModelFile::from_bytes(&data, &path) {
                let _ = f.model::<unet_nn::CpuBackend>(&Default::default(), &path);
            }
        } else {
            let _ = unet::read_image(&path, unet::ColorMode::Gray);
            let _ = unet_io::read_stack(&path, unet::ColorMode::Keep);
            let _ = unet_io::read_label_stack(&path, unet_io::LabelKind::Instance);
        }
    });
    r.map_err(|m| (m, data))
}

#[test]
fn decoders_never_panic_on_mutated_files() {
    let seconds: Option<f64> = std::env::var("UNET_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok());
    let cases: u64 = std::env::var("UNET_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(400);
    let first: u64 = std::env::var("UNET_FUZZ_FIRST").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let dir = tempfile::tempdir().unwrap();
    let seeds = seeds(dir.path());
    let toml = unet::TrainConfig::default().to_toml();
    // Panics are expected to be caught: keep the default hook from printing each one.
    std::panic::set_hook(Box::new(|_| {}));
    let (t0, mut failures, mut done) = (Instant::now(), Vec::new(), 0u64);
    let mut case = first;
    loop {
        let more = match seconds {
            Some(s) => t0.elapsed() < Duration::from_secs_f64(s),
            None => case < first + cases,
        };
        if !more {
            break;
        }
        if let Err((msg, input)) = run_case(case, &seeds, &toml, dir.path()) {
            let keep = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-failures");
            let _ = std::fs::create_dir_all(&keep);
            let _ = std::fs::write(keep.join(format!("case-{case}")), &input);
            failures.push(format!("case {case}: {msg}"));
        }
        case += 1;
        done += 1;
    }
    let _ = std::panic::take_hook();
    eprintln!(
        "fuzz: {done} cases ({first}..{case}) in {:.1} s, {} failures",
        t0.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(failures.is_empty(), "decoders panicked (inputs in target/fuzz-failures/):\n{}", failures.join("\n"));
}
