//! OME-Zarr end to end: `unet predict` in one process, `unet plan` + array tasks +
//! `unet finalize`, and the TIFF path give the same bits; the shares of array tasks.

mod common;
use common::*;

use std::path::Path;
use std::sync::Arc;

use unet_io::{BitDepth, ColorMode, Image, LabelKind, SampleKind};
use unet_zarr::ZarrOutput;
use zarrs::array::{ArrayBuilder, ArraySubset, data_type};
use zarrs::filesystem::FilesystemStore;

const W: usize = 230;
const H: usize = 170;

fn model(dir: &Path) -> std::path::PathBuf {
    let config = unet_nn::UNetConfig { width: 2, depth: 2, ..Default::default() };
    let m = config.init::<unet_nn::CpuBackend>(5, &Default::default()).unwrap();
    let path = dir.join("m.safetensors");
    unet_nn::ModelFile::from_model(&m, &config, unet_nn::Normalization::default()).save(&path, false).unwrap();
    path
}

/// Touching synthetic cells as 8-bit values.
fn cells() -> Vec<u8> {
    let p = unet_synth::SynthParams { width: W, height: H, radius: 8.0, density: 0.5, bit_depth: 8 };
    unet_synth::generate(&p, 11).image.data.iter().map(|&v| v as u8).collect()
}

/// A bare Zarr v3 `uint8` array `(y, x)` in 50-px chunks.
fn write_zarr(path: &Path, data: &[u8]) {
    let store = Arc::new(FilesystemStore::new(path).unwrap());
    let array = ArrayBuilder::new(vec![H as u64, W as u64], vec![50, 50], data_type::uint8(), 0u8)
        .dimension_names(Some(["y", "x"]))
        .build(store, "/")
        .unwrap();
    array.store_metadata().unwrap();
    array.store_array_subset(&ArraySubset::new_with_ranges(&[0..H as u64, 0..W as u64]), data).unwrap();
}

fn read_all(out: &Path) -> (Vec<f32>, Vec<u8>, Vec<u64>) {
    let o = ZarrOutput::open(out).unwrap();
    (
        o.read_probabilities(0, 0, 0, W, H).unwrap(),
        o.read_mask(0, 0, 0, W, H).unwrap(),
        o.read_instances(0, 0, 0, W, H).unwrap(),
    )
}

#[test]
fn one_process_array_tasks_and_the_tiff_path_give_the_same_bits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d);
    let data = cells();
    let input = d.join("in.zarr");
    write_zarr(&input, &data);
    let common = ["--tile", "60", "--block", "40", "--instances"];

    // One process.
    let one = d.join("one.ome.zarr");
    let mut args = vec!["predict", s(&input), "--model", s(&m), "--out", s(&one)];
    args.extend(common);
    let (code, _, err) = unet(&args);
    assert_eq!(code, 0, "{err}");

    // Plan, four array tasks (one by --shard, three as Slurm tasks), finalize.
    let many = d.join("many.ome.zarr");
    let mut args = vec!["plan", s(&input), "--model", s(&m), "--out", s(&many)];
    args.extend(common);
    let (code, out, err) = unet(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("blocks"), "{out}");
    let (code, _, err) = unet(&["predict", "--plan", s(&many), "--shard", "2/4"]);
    assert_eq!(code, 0, "{err}");
    // Finalize before every block is done names what is missing.
    let (code, _, err) = unet(&["finalize", s(&many)]);
    assert_ne!(code, 0);
    assert!(err.contains("block"), "{err}");
    for task in ["0", "1", "3"] {
        let st = std::process::Command::new(env!("CARGO_BIN_EXE_unet"))
            .args(["predict", "--plan", s(&many)])
            .env("SLURM_ARRAY_TASK_ID", task)
            .env("SLURM_ARRAY_TASK_COUNT", "4")
            .output()
            .unwrap();
        assert!(st.status.success(), "task {task}: {}", String::from_utf8_lossy(&st.stderr));
    }
    let (code, _, err) = unet(&["finalize", s(&many)]);
    assert_eq!(code, 0, "{err}");

    let (p1, m1, i1) = read_all(&one);
    let (p2, m2, i2) = read_all(&many);
    assert_eq!(p1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), p2.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    assert_eq!((&m1, &i1), (&m2, &i2));
    assert!(i1.iter().copied().max().unwrap() > 3, "several instances");

    // The TIFF path on the same image: the same probabilities and instance ids.
    let png = d.join("png");
    let img = Image::gray(W, H, SampleKind::U8, data.iter().map(|&v| f32::from(v)).collect());
    unet_io::write_image(&png.join("a.png"), &[img], BitDepth::U8, false).unwrap();
    let tif_out = d.join("tif");
    let (code, _, err) = unet(&[
        "predict",
        "--model",
        s(&m),
        s(&png),
        "--out",
        s(&tif_out),
        "--tile",
        "60",
        "--instances",
        "--no-overlay",
    ]);
    assert_eq!(code, 0, "{err}");
    let prob = unet_io::read_image(&tif_out.join("a_prob.tif"), ColorMode::Gray).unwrap();
    let class1 = &p1[W * H..];
    assert_eq!(
        prob.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        class1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        "probabilities of the cell class"
    );
    let inst = unet_io::read_label(&tif_out.join("a_instances.tif"), LabelKind::Instance).unwrap();
    assert_eq!(inst.data.iter().map(|&v| u64::from(v)).collect::<Vec<_>>(), i1, "instance ids");
}

#[test]
fn array_task_shares_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d);
    let input = d.join("in.zarr");
    write_zarr(&input, &cells());
    let out = d.join("o.ome.zarr");
    let (code, _, err) =
        unet(&["plan", s(&input), "--model", s(&m), "--out", s(&out), "--tile", "60", "--block", "40"]);
    assert_eq!(code, 0, "{err}");
    // An index past the count (a 1-based array) is refused, not silently idle.
    let (code, _, err) = unet(&["predict", "--plan", s(&out), "--shard", "4/4"]);
    assert_ne!(code, 0);
    assert!(err.contains("4"), "{err}");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_unet"))
        .args(["predict", "--plan", s(&out)])
        .env("SLURM_ARRAY_TASK_ID", "8")
        .env("SLURM_ARRAY_TASK_COUNT", "8")
        .output()
        .unwrap();
    assert!(!st.status.success());
    let (code, _, err) = unet(&["predict", "--plan", s(&out), "--shard", "x"]);
    assert_ne!(code, 0);
    assert!(err.contains("--shard"), "{err}");
    // A store that exists is refused without --force; a plan's own store is replaced with it.
    let (code, _, err) = unet(&["plan", s(&input), "--model", s(&m), "--out", s(&out), "--tile", "60"]);
    assert_ne!(code, 0);
    assert!(err.contains("exists"), "{err}");
    let (code, _, err) = unet(&["plan", s(&input), "--model", s(&m), "--out", s(&out), "--tile", "60", "--force"]);
    assert_eq!(code, 0, "{err}");
    // A folder that is not a plan's store is never removed.
    let other = d.join("data.zarr");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("keep.txt"), "x").unwrap();
    let (code, _, err) = unet(&["plan", s(&input), "--model", s(&m), "--out", s(&other), "--tile", "60", "--force"]);
    assert_ne!(code, 0, "{err}");
    assert!(other.join("keep.txt").is_file());
}
