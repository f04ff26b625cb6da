//! `unet predict` end to end: outputs, formats, stacks and errors.

mod common;
use common::*;

use std::path::Path;

use unet_io::{BitDepth, ColorMode, Image, LabelKind, SampleKind};

fn model(dir: &Path, in_channels: usize) -> std::path::PathBuf {
    let config = unet_nn::UNetConfig { width: 2, depth: 2, in_channels, ..Default::default() };
    let m = config.init::<unet_nn::CpuBackend>(3, &Default::default()).unwrap();
    let path = dir.join(format!("m{in_channels}.safetensors"));
    unet_nn::ModelFile::from_model(&m, &config, unet_nn::Normalization::PerImage).save(&path, false).unwrap();
    path
}

fn image(w: usize, h: usize) -> Image {
    Image::gray(w, h, SampleKind::U8, (0..w * h).map(|i| ((i * 7919) % 251) as f32).collect())
}

#[test]
fn predict_writes_probabilities_masks_instances_and_overlays() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), 1);
    let inputs = dir.path().join("in");
    unet_io::write_image(&inputs.join("a.png"), &[image(50, 33)], BitDepth::U8, false).unwrap();
    unet_io::write_image(
        &inputs.join("stack.tif"),
        &[image(20, 21), image(20, 21), image(20, 21)],
        BitDepth::U8,
        false,
    )
    .unwrap();
    let out = dir.path().join("out");
    let (code, _, err) =
        unet(&["predict", "--model", s(&m), s(&inputs), "--out", s(&out), "--instances", "--tile", "60"]);
    assert_eq!(code, 0, "{err}");
    let prob = unet_io::read_stack(&out.join("a_prob.tif"), ColorMode::Gray).unwrap();
    assert_eq!((prob.len(), prob[0].width, prob[0].height, prob[0].kind), (1, 50, 33, SampleKind::F32));
    assert!(prob[0].data.iter().all(|&p| (0.0..=1.0).contains(&p)));
    let mask = unet_io::read_image(&out.join("a_mask.png"), ColorMode::Gray).unwrap();
    // The mask is the argmax: foreground exactly where P(fg) > P(bg).
    for (m, p) in mask.data.iter().zip(&prob[0].data) {
        assert_eq!(*m == 255.0, *p > 0.5, "mask {m} vs probability {p}");
    }
    let inst = unet_io::read_label(&out.join("a_instances.tif"), LabelKind::Instance).unwrap();
    assert_eq!(
        inst.data.iter().map(|&v| v != 0).collect::<Vec<_>>(),
        mask.data.iter().map(|&v| v != 0.0).collect::<Vec<_>>()
    );
    let ov = unet_io::read_image(&out.join("a_overlay.png"), ColorMode::Keep).unwrap();
    assert_eq!(ov.channels, 3);
    // A 3-page stack gives 3-page outputs.
    assert_eq!(unet_io::read_stack(&out.join("stack_prob.tif"), ColorMode::Gray).unwrap().len(), 3);
    assert_eq!(unet_io::read_stack(&out.join("stack_mask.tif"), ColorMode::Gray).unwrap().len(), 3);
    assert!(out.join("stack_002_overlay.png").exists());
    // The output folder now holds files: refused without --force, accepted with it.
    let (code, _, err) = unet(&["predict", "--model", s(&m), s(&inputs), "--out", s(&out)]);
    assert_eq!(code, 1);
    assert!(err.contains("--force") && err.contains("out"), "{err}");
    let (code, _, err) =
        unet(&["predict", "--model", s(&m), s(&inputs), "--out", s(&out), "--force", "--tta", "--save-probs", "all"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(unet_io::read_stack(&out.join("a_prob.tif"), ColorMode::Gray).unwrap().len(), 2);
}

#[test]
fn predict_errors() {
    let dir = tempfile::tempdir().unwrap();
    let m3 = model(dir.path(), 3);
    let img = dir.path().join("g.png");
    unet_io::write_image(&img, &[image(30, 30)], BitDepth::U8, false).unwrap();
    let (code, _, err) = unet(&["predict", "--model", s(&m3), s(&img), "--out", s(&dir.path().join("o1"))]);
    assert_eq!(code, 1);
    assert!(err.contains("1 channel") && err.contains("takes 3"), "{err}");
    let m1 = model(dir.path(), 1);
    let (code, _, err) =
        unet(&["predict", "--model", s(&m1), s(&img), "--out", s(&dir.path().join("o2")), "--tile", "61"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("60 or 64"), "{err}");
    let bad = dir.path().join("bad.png");
    std::fs::write(&bad, b"nope").unwrap();
    let (code, _, err) = unet(&["predict", "--model", s(&m1), s(&bad), "--out", s(&dir.path().join("o3"))]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.png"), "{err}");
    assert!(!dir.path().join("o3/bad_mask.png").exists());
    let (code, _, err) =
        unet(&["predict", "--model", s(&m1), s(&img), "--out", s(&dir.path().join("o4")), "--device", "tpu"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown device"), "{err}");
}
