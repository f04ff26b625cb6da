//! `unet info` and the CLI's error conventions, run as a user would.

mod common;
use common::*;

#[test]
fn info_describes_the_paper_network() {
    let (code, out, _) = unet(&["info"]);
    assert_eq!(code, 0);
    assert!(out.contains("parameters: 31,030,658"), "{out}");
    assert!(out.contains("tile 572 -> output 388 (border 92"), "{out}");
    let (code, out, _) = unet(&["info", "--depth", "3", "--width", "16", "--tile", "252", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["output"], 164);
    assert_eq!(v["border"], 44);
    assert_eq!(v["tile_step"], 8);
}

#[test]
fn invalid_tile_is_a_usage_error_naming_valid_sizes() {
    let (code, _, err) = unet(&["info", "--tile", "570"]);
    assert_eq!(code, 2);
    assert!(err.contains("556 or 572"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn info_reads_a_model_file_and_rejects_a_corrupt_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = unet_nn::UNetConfig { width: 4, depth: 2, classes: 3, ..Default::default() };
    let model = config.init::<unet_nn::CpuBackend>(1, &Default::default()).unwrap();
    let path = dir.path().join("m.safetensors");
    unet_nn::ModelFile::from_model(&model, &config, unet_nn::Normalization::PerImage).save(&path, false).unwrap();
    let (code, out, _) = unet(&["info", "--model", path.to_str().unwrap(), "--tile", "92"]);
    assert_eq!(code, 0);
    assert!(out.contains("width 4") && out.contains("3 classes") && out.contains("per_image"), "{out}");
    let bad = dir.path().join("bad.safetensors");
    std::fs::write(&bad, b"garbage").unwrap();
    let (code, _, err) = unet(&["info", "--model", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.safetensors") && err.starts_with("error:"), "{err}");
    assert!(!err.contains("panicked"));
}

#[test]
fn version_and_unknown_arguments() {
    let (code, out, _) = unet(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("unet "));
    let (code, _, _) = unet(&["info", "--no-such-flag"]);
    assert_eq!(code, 2);
}
