//! `unet train`, `unet weights` and `unet augment` from the command line.

mod common;
use common::*;

use std::path::Path;

use unet_io::{BitDepth, ColorMode, Image, Label, SampleKind};

/// Two bright touching discs and one apart, with instance labels.
fn synth(dir: &Path) {
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
    unet_io::write_image(&dir.join("images/a.png"), &[Image::gray(n, n, SampleKind::U8, img)], BitDepth::U8, true)
        .unwrap();
    unet_io::write_labels(&dir.join("labels/a.png"), &[Label { width: n, height: n, data: lab }], true).unwrap();
}

#[test]
fn train_then_predict_and_resume_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path());
    let cfg = dir.path().join("cfg.toml");
    std::fs::write(
        &cfg,
        "width = 4\ndepth = 2\nsteps = 6\nlog_every = 2\ncheckpoint_every = 3\n[augment]\nelastic_sigma = 2.0\n",
    )
    .unwrap();
    let run = dir.path().join("run");
    let (imgs, labs) = (dir.path().join("images"), dir.path().join("labels"));
    let (code, out, err) = unet(&[
        "train",
        "--config",
        s(&cfg),
        "--images",
        s(&imgs),
        "--labels",
        s(&labs),
        "--out",
        s(&run),
        "--seed",
        "3",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("trained 6 steps"), "{out}");
    let resolved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(
        resolved.contains("width = 4") && resolved.contains("seed = 3") && resolved.contains("elastic_sigma = 2.0"),
        "{resolved}"
    );
    // Extend the run by resuming with more steps.
    let (code, out, err) = unet(&["train", "--resume", s(&run), "--steps", "8"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("trained 8 steps"), "{out}");
    let model = run.join("last.safetensors");
    let info = unet_nn::ModelFile::load(&model).unwrap();
    assert_eq!(info.info["steps"], "8");
    let pred = dir.path().join("pred");
    let (code, _, err) = unet(&["predict", "--model", s(&model), s(&imgs), "--out", s(&pred)]);
    assert_eq!(code, 0, "{err}");
    assert!(pred.join("a_mask.png").exists());
    // Errors: a bad option value, a missing run folder.
    let (code, _, err) = unet(&[
        "train",
        "--images",
        s(&imgs),
        "--labels",
        s(&labs),
        "--out",
        s(&dir.path().join("r2")),
        "--optimizer",
        "rmsprop",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--optimizer"), "{err}");
    let (code, _, err) = unet(&["train", "--resume", s(&dir.path().join("nope"))]);
    assert_eq!(code, 1);
    assert!(err.contains("config.toml"), "{err}");
}

#[test]
fn weights_and_augment_write_their_pictures() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path());
    let out = dir.path().join("w");
    let (code, _, err) = unet(&["weights", "--labels", s(&dir.path().join("labels")), "--out", s(&out)]);
    assert_eq!(code, 0, "{err}");
    let w = unet_io::read_image(&out.join("a_weights.tif"), ColorMode::Gray).unwrap();
    assert_eq!(w.kind, SampleKind::F32);
    // Between the two touching discs the weight is high (w_c + w0 * exp(..)); far away it is w_c = 1.
    let gap = w.data[20 * 48 + 21];
    assert!(gap > 8.0, "gap weight {gap}");
    assert!((w.data[2 * 48 + 45] - 1.0).abs() < 1e-3);
    assert!(out.join("a_weights.png").exists());
    let (image, label) = (dir.path().join("images/a.png"), dir.path().join("labels/a.png"));
    // `unet augment` of the same image with seed 4, `n` previews into `out`.
    let augment = |n: &str, out: &std::path::Path| {
        unet(&["augment", "--image", s(&image), "--label", s(&label), "-n", n, "--out", s(out), "--seed", "4"])
    };
    let aug = dir.path().join("aug");
    let (code, _, err) = augment("3", &aug);
    assert_eq!(code, 0, "{err}");
    let a = unet_io::read_image(&aug.join("augment_00.png"), ColorMode::Keep).unwrap();
    assert_eq!(a.channels, 3);
    let b = unet_io::read_image(&aug.join("augment_01.png"), ColorMode::Keep).unwrap();
    assert_ne!(a, b, "different draws");
    // Same seed, same previews.
    let aug2 = dir.path().join("aug2");
    augment("1", &aug2);
    assert_eq!(unet_io::read_image(&aug2.join("augment_00.png"), ColorMode::Keep).unwrap(), a);
}
