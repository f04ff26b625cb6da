//! Training runs on small synthetic data: the loss falls, runs are deterministic, resume
//! continues exactly, and bad input stops with a clear error.

use std::path::Path;

use unet_io::{BitDepth, Image, Label, SampleKind};
use unet_nn::{CpuBackend, ModelFile};
use unet_train::augment::AugmentConfig;
use unet_train::{TrainConfig, TrainError, train};

/// Writes `n` images of bright discs on a dark noisy background with binary labels.
fn synth(dir: &Path, n: usize, size: usize) {
    for k in 0..n {
        let mut img = vec![0f32; size * size];
        let mut lab = vec![0u32; size * size];
        let centers = [(12 + 3 * k, 14), (33, 30 - 2 * k), (16, 36)];
        for (i, v) in img.iter_mut().enumerate() {
            let (x, y) = ((i % size) as f64, (i / size) as f64);
            let inside = centers.iter().any(|&(cx, cy)| (x - cx as f64).powi(2) + (y - cy as f64).powi(2) <= 49.0);
            let noise = ((i * 7919 + k * 104729) % 37) as f32;
            *v = if inside { 160.0 + noise } else { 60.0 + noise };
            lab[i] = u32::from(inside) * 255;
        }
        unet_io::write_image(
            &dir.join(format!("images/{k}.png")),
            &[Image::gray(size, size, SampleKind::U8, img)],
            BitDepth::U8,
            true,
        )
        .unwrap();
        unet_io::write_labels(
            &dir.join(format!("labels/{k}.png")),
            &[Label { width: size, height: size, data: lab }],
            true,
        )
        .unwrap();
    }
}

fn config(dir: &Path, steps: u64) -> TrainConfig {
    TrainConfig {
        images: dir.join("images"),
        labels: dir.join("labels"),
        steps,
        width: 4,
        depth: 2,
        lr: 0.01,
        seed: 7,
        log_every: 1,
        checkpoint_every: 5,
        augment: AugmentConfig { elastic_sigma: 3.0, ..AugmentConfig::default() },
        ..TrainConfig::default()
    }
}

fn weights(path: &Path) -> Vec<unet_nn::NamedTensor> {
    ModelFile::load(path).unwrap().tensors
}

#[test]
fn loss_falls_on_synthetic_cells() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 3, 48);
    let mut cfg = config(dir.path(), 60);
    cfg.val_images = Some(dir.path().join("images"));
    cfg.val_labels = Some(dir.path().join("labels"));
    cfg.validate_every = 30;
    let mut losses = Vec::new();
    let s = train::<CpuBackend>(&cfg, &dir.path().join("run"), false, Default::default(), &mut |p| losses.push(p.loss))
        .unwrap();
    assert_eq!(losses.len(), 60);
    let first: f32 = losses[..10].iter().sum::<f32>() / 10.0;
    let last: f32 = losses[50..].iter().sum::<f32>() / 10.0;
    assert!(last < 0.7 * first, "loss did not fall: first {first}, last {last}");
    let run = dir.path().join("run");
    for f in
        ["config.toml", "metrics.csv", "curves.png", "checkpoint.safetensors", "last.safetensors", "best.safetensors"]
    {
        assert!(run.join(f).exists(), "{f}");
    }
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert!(csv.starts_with("step,loss,"));
    assert_eq!(csv.lines().count(), 61);
    assert!(s.last_validation.is_some());
    // The resolved config round-trips.
    let back = TrainConfig::from_toml(&std::fs::read_to_string(run.join("config.toml")).unwrap()).unwrap();
    assert_eq!(back, cfg);
}

#[test]
fn same_seed_same_weights_and_resume_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 2, 40);
    let cfg = config(dir.path(), 10);
    let noop = &mut |_: &unet_train::Progress| {};
    train::<CpuBackend>(&cfg, &dir.path().join("a"), false, Default::default(), noop).unwrap();
    train::<CpuBackend>(&cfg, &dir.path().join("b"), false, Default::default(), noop).unwrap();
    let a = weights(&dir.path().join("a/last.safetensors"));
    assert!(a == weights(&dir.path().join("b/last.safetensors")), "same seed, same weights");
    // 5 steps, then resume to 10.
    let half = TrainConfig { steps: 5, ..cfg.clone() };
    train::<CpuBackend>(&half, &dir.path().join("c"), false, Default::default(), noop).unwrap();
    // Without --resume an existing run is refused.
    let e = train::<CpuBackend>(&cfg, &dir.path().join("c"), false, Default::default(), noop).unwrap_err();
    assert!(e.to_string().contains("--resume"), "{e}");
    train::<CpuBackend>(&cfg, &dir.path().join("c"), true, Default::default(), noop).unwrap();
    assert!(a == weights(&dir.path().join("c/last.safetensors")), "5 + resume 5 differs from 10");
    let csv = std::fs::read_to_string(dir.path().join("c/metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 11);
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let noop = &mut |_: &unet_train::Progress| {};
    // Empty folders.
    std::fs::create_dir_all(dir.path().join("images")).unwrap();
    std::fs::create_dir_all(dir.path().join("labels")).unwrap();
    let e = train::<CpuBackend>(&config(dir.path(), 2), &dir.path().join("r0"), false, Default::default(), noop)
        .unwrap_err();
    assert!(e.to_string().contains("no .png"), "{e}");
    // No foreground in any label.
    unet_io::write_image(
        &dir.path().join("images/a.png"),
        &[Image::gray(30, 30, SampleKind::U8, vec![9.0; 900])],
        BitDepth::U8,
        true,
    )
    .unwrap();
    unet_io::write_labels(
        &dir.path().join("labels/a.png"),
        &[Label { width: 30, height: 30, data: vec![0; 900] }],
        true,
    )
    .unwrap();
    let e = train::<CpuBackend>(&config(dir.path(), 2), &dir.path().join("r1"), false, Default::default(), noop)
        .unwrap_err();
    assert!(e.to_string().contains("no label has any foreground"), "{e}");
    // Images smaller than the output tile train (mirror-extended).
    synth(dir.path(), 1, 48);
    let mut small = config(dir.path(), 3);
    small.tile = 124; // output 84 > 48
    train::<CpuBackend>(&small, &dir.path().join("r2"), false, Default::default(), noop).unwrap();
    // A diverging run stops with a clear message and keeps the last good checkpoint.
    let mut wild = config(dir.path(), 40);
    wild.lr = f64::INFINITY;
    wild.checkpoint_every = 1;
    match train::<CpuBackend>(&wild, &dir.path().join("r3"), false, Default::default(), noop) {
        Err(TrainError::NotFinite { step, .. }) => {
            assert!(step > 0);
            assert!(dir.path().join("r3/checkpoint.safetensors").exists());
        }
        other => panic!("expected a NaN stop, got {other:?}"),
    }
}
