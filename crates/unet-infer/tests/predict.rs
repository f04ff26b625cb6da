//! Overlap-tile prediction: tiling invariance, small and odd sizes, TTA, instances.

use rand::{Rng, SeedableRng};
use unet_infer::{Grid, Predictor, PredictorOptions, Region, SYMMETRIES, instance_labels};
use unet_io::{Image, SampleKind};
use unet_nn::{CpuBackend, Normalization, Padding, UNetConfig};

fn config() -> UNetConfig {
    UNetConfig { width: 2, depth: 4, ..UNetConfig::default() }
}

fn predictor(config: &UNetConfig, tile: usize) -> Predictor<CpuBackend> {
    let model = config.init::<CpuBackend>(42, &Default::default()).unwrap();
    let opts = PredictorOptions { tile: Some(tile), batch_tiles: 2, memory_mb: None };
    Predictor::new(model, config.clone(), Normalization::PerImage, Default::default(), &opts).unwrap()
}

fn random_image(w: usize, h: usize, seed: u64) -> Image {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    // Smooth-ish structure plus noise, 8-bit range.
    let data = (0..w * h)
        .map(|i| {
            let (x, y) = ((i % w) as f32, (i / w) as f32);
            (128.0 + 60.0 * (x * 0.07).sin() * (y * 0.05).cos() + rng.random_range(-40.0..40.0)).round()
        })
        .collect();
    Image::gray(w, h, SampleKind::U8, data)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn predictions_do_not_depend_on_the_tiling() {
    let cfg = config();
    let tiles = [252, 380, 572];
    let preds: Vec<_> = tiles.iter().map(|&t| predictor(&cfg, t)).collect();
    for (w, h) in [(1, 1), (7, 300), (513, 777), (1500, 1200)] {
        let img = random_image(w, h, (w * 31 + h) as u64);
        let reference = preds[2].predict(&img, &|_, _| {}).unwrap();
        assert_eq!((reference.width, reference.height, reference.channels), (w, h, 2));
        for (t, p) in tiles.iter().zip(&preds).take(2) {
            let other = p.predict(&img, &|_, _| {}).unwrap();
            let d = max_diff(&reference.data, &other.data);
            assert!(d <= 1e-5, "{w}x{h}: tile {t} differs from tile 572 by {d}");
        }
        // Probabilities: in [0, 1], classes sum to 1.
        let n = w * h;
        for i in 0..n {
            let s = reference.data[i] + reference.data[n + i];
            assert!((s - 1.0).abs() < 1e-5 && reference.data[i] >= 0.0);
        }
    }
}

#[test]
fn tta_is_the_mean_of_the_eight_manual_predictions() {
    let cfg = UNetConfig { width: 2, depth: 2, ..UNetConfig::default() };
    let p = predictor(&cfg, 60);
    let (w, h) = (37, 23);
    let img = random_image(w, h, 9);
    let tta = p.predict_tta(&img, &|_, _| {}).unwrap();
    let mut mean = vec![0f32; 2 * w * h];
    for s in SYMMETRIES {
        let moved = Image { grid: s.apply(&img.grid), kind: img.kind };
        let back = s.invert(&p.predict(&moved, &|_, _| {}).unwrap());
        assert_eq!((back.size(), back.channels), ((w, h), 2));
        mean.iter_mut().zip(back.data).for_each(|(a, b)| *a += b / 8.0);
    }
    assert!(max_diff(&tta.data, &mean) < 1e-6);
    // TTA is not the plain prediction (the network is not symmetric).
    let plain = p.predict(&img, &|_, _| {}).unwrap();
    assert!(max_diff(&tta.data, &plain.data) > 1e-4);
}

#[test]
fn same_padding_models_blend_tiles() {
    let cfg = UNetConfig { width: 2, depth: 2, padding: Padding::Same, ..UNetConfig::default() };
    let p = predictor(&cfg, 32);
    let img = random_image(70, 45, 3);
    let pr = p.predict(&img, &|_, _| {}).unwrap();
    assert_eq!((pr.width, pr.height), (70, 45));
    let n = 70 * 45;
    assert!((0..n).all(|i| (pr.data[i] + pr.data[n + i] - 1.0).abs() < 1e-4));
}

#[test]
fn channel_mismatch_and_bad_tiles_are_errors() {
    let cfg = config();
    let p = predictor(&cfg, 252);
    let rgb = Image::new(4, 4, 3, SampleKind::U8, vec![1.0; 48]);
    let e = p.predict(&rgb, &|_, _| {}).unwrap_err().to_string();
    assert!(e.contains("3 channel") && e.contains("takes 1"), "{e}");
    let model = cfg.init::<CpuBackend>(1, &Default::default()).unwrap();
    let bad = PredictorOptions { tile: Some(250), batch_tiles: 1, memory_mb: None };
    let e = Predictor::new(model, cfg.clone(), Normalization::PerImage, Default::default(), &bad)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("236 or 252"), "{e}");
    // Automatic tile choice respects the budget.
    let model = cfg.init::<CpuBackend>(1, &Default::default()).unwrap();
    let auto = PredictorOptions { tile: None, batch_tiles: 1, memory_mb: Some(200.0) };
    let p = Predictor::new(model, cfg.clone(), Normalization::PerImage, Default::default(), &auto).unwrap();
    assert!(unet_infer::estimate_tile_memory_mb(&cfg, p.tile(), 1) <= 200.0);
    assert!(unet_infer::estimate_tile_memory_mb(&cfg, p.tile() + 16, 1) > 200.0 || p.tile() + 16 > 1100);
}

#[test]
fn instances_of_separate_and_touching_blobs() {
    // Two separate discs, then two touching discs split by a 1-px background line.
    let (w, h) = (40, 20);
    let disc =
        |cx: f32, cy: f32, r: f32| move |x: usize, y: usize| (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) <= r * r;
    let (a, b) = (disc(10.0, 10.0, 6.0), disc(28.0, 10.0, 6.0));
    let mask: Vec<u32> = (0..w * h).map(|i| u32::from(a(i % w, i / w) || b(i % w, i / w))).collect();
    let (labels, n) = instance_labels(&Grid::new(w, h, mask.clone()), 1);
    assert_eq!(n, 2);
    assert_ne!(labels.data[10 * w + 10], labels.data[10 * w + 28]);
    let (c, d) = (disc(12.0, 10.0, 7.0), disc(26.0, 10.0, 7.0));
    let mut touching: Vec<u32> = (0..w * h).map(|i| u32::from(c(i % w, i / w) || d(i % w, i / w))).collect();
    assert_eq!(instance_labels(&Grid::new(w, h, touching.clone()), 1).1, 1, "touching discs are one component");
    for y in 0..h {
        touching[y * w + 19] = 0; // the 1-px gap
    }
    let (labels, n) = instance_labels(&Grid::new(w, h, touching.clone()), 1);
    assert_eq!(n, 2);
    assert_ne!(labels.data[10 * w + 12], labels.data[10 * w + 26]);
    // Size filter: a 3-px speck is dropped, ids stay consecutive.
    touching[0] = 1;
    touching[1] = 1;
    touching[2] = 1;
    let (labels, n) = instance_labels(&Grid::new(w, h, touching.clone()), 10);
    assert_eq!(n, 2);
    assert_eq!(labels.data[0], 0);
    assert_eq!(*labels.data.iter().max().unwrap(), 2);
}

#[test]
fn touching_discs_are_split_at_their_neck() {
    let (w, h) = (60, 30);
    let disc = |cx: f32, r: f32| move |x: usize, y: usize| (x as f32 - cx).powi(2) + (y as f32 - 15.0).powi(2) <= r * r;
    let (a, b) = (disc(18.0, 10.0), disc(38.0, 11.0));
    let mask: Vec<u32> = (0..w * h).map(|i| u32::from(a(i % w, i / w) || b(i % w, i / w))).collect();
    assert_eq!(instance_labels(&Grid::new(w, h, mask.clone()), 1).1, 1, "one component before splitting");
    let (labels, n) = unet_infer::split_touching(&Grid::new(w, h, mask.clone()), 0.5, 5);
    let labels = labels.data;
    assert_eq!(n, 2);
    let (la, lb) = (labels[15 * w + 14], labels[15 * w + 42]);
    assert!(la != 0 && lb != 0 && la != lb);
    // Every foreground pixel keeps a label; the split lies near the neck (x = 28).
    assert!((0..w * h).all(|i| (mask[i] != 0) == (labels[i] != 0)));
    assert!((0..w).filter(|&x| labels[15 * w + x] == la).all(|x| x <= 29));
    // A single disc stays whole.
    let single: Vec<u32> = (0..w * h).map(|i| u32::from(a(i % w, i / w))).collect();
    assert_eq!(unet_infer::split_touching(&Grid::new(w, h, single.clone()), 0.5, 5).1, 1);
}

#[test]
fn regions_predicted_apart_equal_the_whole_image_bit_for_bit() {
    // Blocks of a large image, each predicted from only the part it reads, in any order,
    // with any batch size: the same bits as the whole image at once.
    let cfg = UNetConfig { width: 2, depth: 2, ..UNetConfig::default() };
    let (w, h) = (83, 61);
    let img = random_image(w, h, 4);
    for batch in [1, 3] {
        let model = cfg.init::<CpuBackend>(7, &Default::default()).unwrap();
        let opts = PredictorOptions { tile: Some(60), batch_tiles: batch, memory_mb: None };
        let p = Predictor::new(model, cfg.clone(), Normalization::PerImage, Default::default(), &opts).unwrap();
        let input = p.normalize(&img).unwrap();
        let whole = p.predict_normalized(&input, &|_, _| {}).unwrap();
        for region in [
            Region { x: 0, y: 0, width: 20, height: 16 },
            Region { x: 20, y: 16, width: 40, height: 30 },
            Region { x: 57, y: 41, width: 26, height: 20 },
            Region { x: 3, y: 50, width: 1, height: 11 },
        ] {
            let at = p.region_input(region, (w, h)).unwrap();
            assert!(at.width < w || at.height < h || region.width * region.height == w * h, "{region:?} reads {at:?}");
            let part = Grid::with_channels(
                at.width,
                at.height,
                1,
                (0..at.height)
                    .flat_map(|y| (0..at.width).map(move |x| (at.y + y) * w + at.x + x))
                    .map(|i| input.data[i])
                    .collect(),
            );
            let got = p.predict_region(&part, at, region, (w, h), &|_, _| {}).unwrap();
            assert_eq!(got.size(), (region.width, region.height));
            for k in 0..2 {
                for y in 0..region.height {
                    for x in 0..region.width {
                        assert_eq!(
                            got.get(k, y, x).to_bits(),
                            whole.get(k, region.y + y, region.x + x).to_bits(),
                            "batch {batch}, {region:?}, class {k} at ({x}, {y})"
                        );
                    }
                }
            }
            // Too small an input is refused, not read out of bounds.
            let short = Region { width: at.width - 1, ..at };
            let cut = Grid::with_channels(short.width, short.height, 1, vec![0.0; short.width * short.height]);
            assert!(p.predict_region(&cut, short, region, (w, h), &|_, _| {}).is_err());
        }
    }
}
