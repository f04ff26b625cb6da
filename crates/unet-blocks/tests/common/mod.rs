//! Shared by the block tests: a tiny model file, synthetic OME-Zarr inputs written with zarrs,
//! and the whole-image reference prediction.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use unet_blocks::Plan;
use unet_infer::{Predictor, PredictorOptions, Probabilities};
use unet_io::{Image, SampleKind};
use unet_nn::{CpuBackend, ModelFile, Normalization, Padding, UNetConfig};
use unet_zarr::ZarrImage;
use zarrs::array::{ArrayBuilder, ArraySubset, data_type};
use zarrs::filesystem::FilesystemStore;

/// Image size of the tests: 300 x 260, tile 60 (output 20), blocks 40 (chunk 20): 8 x 7 blocks
/// per plane.
pub const W: usize = 300;
pub const H: usize = 260;
pub const TILE: usize = 60;

pub fn config(padding: Padding) -> UNetConfig {
    UNetConfig { width: 2, depth: 2, padding, ..UNetConfig::default() }
}

/// Saves a tiny randomly initialised model (percentile normalisation) at `dir/name`.
pub fn tiny_model(dir: &Path, name: &str, seed: u64, padding: Padding) -> PathBuf {
    let cfg = config(padding);
    let model = cfg.init::<CpuBackend>(seed, &Default::default()).unwrap();
    let path = dir.join(name);
    ModelFile::from_model(&model, &cfg, Normalization::default()).save(&path, true).unwrap();
    path
}

/// Synthetic touching cells, one 8-bit plane per seed.
pub fn cells(seed: u64) -> Vec<u8> {
    let p = unet_synth::SynthParams { width: W, height: H, radius: 9.0, density: 0.5, bit_depth: 8 };
    unet_synth::generate(&p, seed).image.data.iter().map(|&v| v as u8).collect()
}

/// Writes `planes` (each `W x H`, row-major) as a bare Zarr v3 `uint8` array at `path`: `(y, x)`
/// for one plane, `(z, y, x)` for more, in 64-pixel chunks.
pub fn write_input(path: &Path, planes: &[Vec<u8>]) {
    let store = Arc::new(FilesystemStore::new(path).unwrap());
    let (shape, chunks, names): (Vec<u64>, Vec<u64>, Vec<&str>) = if planes.len() == 1 {
        (vec![H as u64, W as u64], vec![64, 64], vec!["y", "x"])
    } else {
        (vec![planes.len() as u64, H as u64, W as u64], vec![1, 64, 64], vec!["z", "y", "x"])
    };
    let array = ArrayBuilder::new(shape.clone(), chunks, data_type::uint8(), 0u8)
        .dimension_names(Some(names))
        .build(store, "/")
        .unwrap();
    array.store_metadata().unwrap();
    let data: Vec<u8> = planes.concat();
    let ranges: Vec<std::ops::Range<u64>> = shape.iter().map(|&s| 0..s).collect();
    array.store_array_subset(&ArraySubset::new_with_ranges(&ranges), &data).unwrap();
}

/// The whole-image prediction of one plane, as `unet predict` makes it: the plane read whole,
/// normalised with its own statistics, predicted with the plan's tile.
pub fn reference(model: &Path, input: &Path, plane: usize, tile: usize, batch_tiles: usize) -> Probabilities {
    let file = ModelFile::load(model).unwrap();
    let net = file.model::<CpuBackend>(&Default::default(), model).unwrap();
    let opts = PredictorOptions { tile: Some(tile), batch_tiles, memory_mb: None };
    let p = Predictor::new(net, file.config.clone(), file.normalization, Default::default(), &opts).unwrap();
    let image: Image = ZarrImage::open(input).unwrap().read_region(plane, 0, 0, W, H).unwrap();
    assert_eq!(image.kind, SampleKind::U8);
    p.predict(&image, &|_, _| {}).unwrap()
}

/// A fixed shuffle of `ids` (a multiplicative permutation of the positions).
pub fn shuffled(ids: &[usize]) -> Vec<usize> {
    let n = ids.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (i * 7919 + 13) % n.max(1) * n + i);
    order.into_iter().map(|i| ids[i]).collect()
}

/// Blocks (by grid cell) that each whole-image label touches; how many labels touch more
/// than one block.
pub fn straddling(labels: &[u32], width: usize, shard: usize) -> usize {
    let mut cells: std::collections::HashMap<u32, std::collections::BTreeSet<(usize, usize)>> = Default::default();
    for (i, &l) in labels.iter().enumerate() {
        if l != 0 {
            cells.entry(l).or_default().insert(((i % width) / shard, (i / width) / shard));
        }
    }
    cells.values().filter(|s| s.len() > 1).count()
}

/// Runs every block of `plan`, shuffled, in two workers (shards 0/2 and 1/2); the first in a
/// one-thread pool, the second in the default pool.
pub fn run_two_workers(plan: &Plan) {
    let n = plan.blocks.len();
    let a = shuffled(&unet_blocks::shard_blocks(n, 0, 2).unwrap());
    let mut b = shuffled(&unet_blocks::shard_blocks(n, 1, 2).unwrap());
    b.reverse();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let sa = pool.install(|| unet_blocks::run_blocks(plan, &a, false, &|_| {}).unwrap());
    let sb = unet_blocks::run_blocks(plan, &b, false, &|_| {}).unwrap();
    assert_eq!((sa.done + sb.done, sa.skipped + sb.skipped), (n, 0));
}
