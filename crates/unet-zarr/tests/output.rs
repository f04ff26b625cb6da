//! Writing outputs: create a sharded v3 store, write aligned and unaligned regions and read
//! them back exactly, check that whole-shard writes touch only their shard, finalize (pyramid
//! values, NGFF 0.5 metadata that parses and validates), reopen, and hostile stores.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ome_zarr_metadata::Validate;
use ome_zarr_metadata::v0_5::OmeFields;
use serde_json::Value;
use std::sync::Arc;
use unet_io::SampleKind;
use unet_zarr::{OutputSpec, PixelSize, ProbDtype, ProbSpec, ZarrError, ZarrImage, ZarrOutput};
use zarrs::array::{Array, ArraySubset};
use zarrs::filesystem::FilesystemStore;

fn spec(width: usize, height: usize, planes: usize, classes: usize, dtype: ProbDtype) -> OutputSpec {
    OutputSpec {
        planes,
        probabilities: Some(ProbSpec { classes, dtype }),
        mask: true,
        instances: true,
        chunk: 16,
        shard: 32,
        ..OutputSpec::new(width, height)
    }
}

/// Every file under `dir`, relative path -> contents.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Chunk (shard) files only.
fn shard_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files(dir).into_iter().filter(|(p, _)| !p.ends_with("zarr.json")).collect()
}

fn prob(c: usize, plane: usize, y: usize, x: usize) -> f32 {
    ((c * 7 + plane * 13 + y * 3 + x) % 101) as f32 / 100.0
}

fn inst(plane: usize, y: usize, x: usize) -> u64 {
    // Blobs of 3x2 pixels with large ids, plus background stripes.
    if (x / 5) % 4 == 3 { 0 } else { (1u64 << 40) + (plane * 1000 + (y / 2) * 50 + x / 3) as u64 }
}

fn mask(plane: usize, y: usize, x: usize) -> u8 {
    ((x * 7 + y * 3 + plane) % 3) as u8
}

fn region<T>(
    x0: usize,
    y0: usize,
    w: usize,
    h: usize,
    channels: usize,
    f: impl Fn(usize, usize, usize) -> T,
) -> Vec<T> {
    let mut v = Vec::with_capacity(channels * w * h);
    for c in 0..channels {
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                v.push(f(c, y, x));
            }
        }
    }
    v
}

/// Writes the test pattern of plane `p` over the whole image, in unaligned tiles.
fn write_all(out: &ZarrOutput, p: usize) {
    let s = out.spec().clone();
    let classes = s.probabilities.map_or(0, |p| p.classes);
    // Tiles of 23 x 19: never aligned to the 32-pixel shards or the 16-pixel chunks.
    for y0 in (0..s.height).step_by(19) {
        for x0 in (0..s.width).step_by(23) {
            let (w, h) = (23.min(s.width - x0), 19.min(s.height - y0));
            if classes > 0 {
                out.write_probabilities(p, x0, y0, w, h, &region(x0, y0, w, h, classes, |c, y, x| prob(c, p, y, x)))
                    .unwrap();
            }
            out.write_mask(p, x0, y0, w, h, &region(x0, y0, w, h, 1, |_, y, x| mask(p, y, x))).unwrap();
            out.write_instances(p, x0, y0, w, h, &region(x0, y0, w, h, 1, |_, y, x| inst(p, y, x))).unwrap();
        }
    }
}

#[test]
fn write_regions_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.ome.zarr");
    let s = spec(70, 45, 1, 3, ProbDtype::F32);
    let out = ZarrOutput::create(&path, &s).unwrap();
    assert_eq!(out.shard_grid(), (3, 2));
    assert_eq!(out.shard_rect(2, 1), Some((64, 32, 6, 13)));
    assert_eq!(out.shard_rect(3, 0), None);

    // Level-0 arrays: shards of 32 (all classes), inner chunks of 16 (one class), blosc-zstd
    // inside, a crc32c-checked shard index.
    let meta = zarr_json(&path.join("0"));
    assert_eq!(meta["shape"], serde_json::json!([3, 45, 70]));
    assert_eq!(meta["data_type"], "float32");
    assert_eq!(meta["dimension_names"], serde_json::json!(["c", "y", "x"]));
    assert_eq!(meta["chunk_grid"]["configuration"]["chunk_shape"], serde_json::json!([3, 32, 32]));
    let sharding = &meta["codecs"][0];
    assert_eq!(sharding["name"], "sharding_indexed");
    assert_eq!(sharding["configuration"]["chunk_shape"], serde_json::json!([1, 16, 16]));
    let inner = sharding["configuration"]["codecs"].as_array().unwrap();
    assert!(inner.iter().any(|c| c["name"] == "blosc" && c["configuration"]["cname"] == "zstd"), "{inner:?}");
    let index = sharding["configuration"]["index_codecs"].as_array().unwrap();
    assert!(index.iter().any(|c| c["name"] == "crc32c"), "{index:?}");
    assert_eq!(zarr_json(&path.join("labels/instances/0"))["data_type"], "uint64");
    assert_eq!(zarr_json(&path.join("labels/mask/0"))["shape"], serde_json::json!([1, 45, 70]));

    // Unwritten pixels read 0.
    assert_eq!(out.read_instances(0, 0, 0, 4, 1).unwrap(), vec![0; 4]);
    assert_eq!(out.read_probabilities(0, 60, 40, 2, 2).unwrap(), vec![0.0; 12]);

    // Aligned: shard (1, 0), all classes.
    let (x0, y0, w, h) = out.shard_rect(1, 0).unwrap();
    let data = region(x0, y0, w, h, 3, |c, y, x| prob(c, 0, y, x));
    out.write_probabilities(0, x0, y0, w, h, &data).unwrap();
    assert_eq!(out.read_probabilities(0, x0, y0, w, h).unwrap(), data);

    // Unaligned, across 2 x 2 shards and partly over the aligned write.
    let (x0, y0, w, h) = (20, 10, 30, 30);
    let data = region(x0, y0, w, h, 3, |c, y, x| -prob(c, 0, y, x));
    out.write_probabilities(0, x0, y0, w, h, &data).unwrap();
    let back = out.read_probabilities(0, 0, 0, 70, 45).unwrap();
    for c in 0..3 {
        for y in 0..45 {
            for x in 0..70 {
                let inside_unaligned = (20..50).contains(&x) && (10..40).contains(&y);
                let inside_aligned = (32..64).contains(&x) && y < 32;
                let expected = if inside_unaligned {
                    -prob(c, 0, y, x)
                } else if inside_aligned {
                    prob(c, 0, y, x)
                } else {
                    0.0
                };
                assert_eq!(back[(c * 45 + y) * 70 + x], expected, "c{c} y{y} x{x}");
            }
        }
    }

    // Labels, unaligned tiles, the full range of u64.
    write_all(&out, 0);
    out.write_instances(0, 69, 44, 1, 1, &[u64::MAX]).unwrap();
    let got = out.read_instances(0, 0, 0, 70, 45).unwrap();
    for y in 0..45 {
        for x in 0..70 {
            let expected = if (x, y) == (69, 44) { u64::MAX } else { inst(0, y, x) };
            assert_eq!(got[y * 70 + x], expected);
        }
    }
    assert_eq!(out.read_mask(0, 5, 7, 40, 30).unwrap(), region(5, 7, 40, 30, 1, |_, y, x| mask(0, y, x)));

    // Reopened, the spec and the data are the same.
    let again = ZarrOutput::open(&path).unwrap();
    assert_eq!(again.spec(), &s);
    assert_eq!(again.read_mask(0, 0, 0, 70, 45).unwrap(), out.read_mask(0, 0, 0, 70, 45).unwrap());
}

#[test]
fn u8_probabilities_are_quantised() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.ome.zarr");
    let s = OutputSpec {
        probabilities: Some(ProbSpec { classes: 2, dtype: ProbDtype::U8 }),
        chunk: 8,
        shard: 16,
        ..OutputSpec::new(10, 3)
    };
    let out = ZarrOutput::create(&path, &s).unwrap();
    let data = [0.0, 0.5, 1.0, 0.2, -1.0, 2.0, f32::NAN, 0.999, 0.001, 0.25f32];
    let mut two = data.to_vec();
    two.extend(data.iter().map(|p| 1.0 - p));
    out.write_probabilities(0, 0, 1, 10, 1, &two).unwrap();
    let back = out.read_probabilities(0, 0, 1, 10, 1).unwrap();
    let expected_u8 = [0u8, 128, 255, 51, 0, 255, 0, 255, 0, 64];
    for i in 0..10 {
        assert_eq!(back[i], f32::from(expected_u8[i]) / 255.0, "{i}");
    }
    assert!(matches!(out.write_mask(0, 0, 0, 1, 1, &[1]), Err(ZarrError::NotInOutput { what: "mask", .. })));
}

#[test]
fn aligned_writes_touch_only_their_shard() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shards.ome.zarr");
    let s = spec(100, 70, 2, 2, ProbDtype::F32);
    let out = ZarrOutput::create(&path, &s).unwrap();
    assert_eq!(shard_files(&path).len(), 0);
    let meta_before = files(&path);

    let write_shard = |out: &ZarrOutput, sx: usize, sy: usize, plane: usize| {
        let (x0, y0, w, h) = out.shard_rect(sx, sy).unwrap();
        out.write_probabilities(plane, x0, y0, w, h, &region(x0, y0, w, h, 2, |c, y, x| prob(c, plane, y, x) + 0.5))
            .unwrap();
        out.write_instances(plane, x0, y0, w, h, &region(x0, y0, w, h, 1, |_, y, x| inst(plane, y, x) + 1)).unwrap();
    };

    // Shard (1, 0) of plane 1: exactly one shard file per array, at c/0/1/0/1.
    write_shard(&out, 1, 0, 1);
    let after_one = shard_files(&path);
    let names: Vec<String> = after_one.keys().map(|p| p.to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["0/c/0/1/0/1", "labels/instances/0/c/0/1/0/1"]);

    // Another worker (its own handle) writes other shards, including the edge ones; the first
    // shard's files are untouched byte for byte, and no metadata changed.
    let other = ZarrOutput::open(&path).unwrap();
    for (sx, sy) in [(0, 0), (3, 2), (2, 1), (1, 1)] {
        write_shard(&other, sx, sy, 1);
    }
    write_shard(&other, 1, 0, 0);
    let after_all = shard_files(&path);
    for (k, v) in &after_one {
        assert_eq!(after_all.get(k), Some(v), "{} changed", k.display());
    }
    assert_eq!(after_all.len(), 12);
    for (k, v) in files(&path).into_iter().filter(|(p, _)| p.ends_with("zarr.json")) {
        assert_eq!(meta_before.get(&k), Some(&v));
    }

    // And everything reads back.
    for (sx, sy) in [(0, 0), (3, 2), (2, 1), (1, 1), (1, 0)] {
        let (x0, y0, w, h) = out.shard_rect(sx, sy).unwrap();
        assert_eq!(out.read_instances(1, x0, y0, w, h).unwrap(), region(x0, y0, w, h, 1, |_, y, x| inst(1, y, x) + 1));
    }
}

/// Reference 2x2 reduction of a `w x h` plane, for checking level 1.
fn reduce_ref<T: Copy>(src: &[T], w: usize, h: usize, f: impl Fn(&[T]) -> T) -> Vec<T> {
    let (dw, dh) = (w.div_ceil(2), h.div_ceil(2));
    let mut out = Vec::new();
    for oy in 0..dh {
        for ox in 0..dw {
            let mut v = Vec::new();
            for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let (y, x) = (2 * oy + dy, 2 * ox + dx);
                if y < h && x < w {
                    v.push(src[y * w + x]);
                }
            }
            out.push(f(&v));
        }
    }
    out
}

fn mode_ref<T: Copy + PartialEq>(v: &[T]) -> T {
    let count = |x: T| v.iter().filter(|&&y| y == x).count();
    let best = v.iter().map(|&x| count(x)).max().unwrap();
    *v.iter().find(|&&x| count(x) == best).unwrap()
}

fn zarr_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path.join("zarr.json")).unwrap()).unwrap()
}

#[test]
fn finalize_builds_pyramid_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fin.ome.zarr");
    let mut s = spec(70, 50, 2, 2, ProbDtype::F32);
    s.pixel_size = Some(PixelSize { x: 0.5, y: 0.5, z: Some(2.0), unit: Some("micrometer".into()) });
    let out = ZarrOutput::create(&path, &s).unwrap();
    for p in 0..2 {
        write_all(&out, p);
    }
    // A hand-checked 2x2 block for the mode: instances (a, b / b, a) -> the top-left one, a;
    // mask (1, 2 / 2, 2) -> 2.
    out.write_instances(1, 10, 20, 2, 2, &[7, 9, 9, 7]).unwrap();
    out.write_mask(1, 10, 20, 2, 2, &[1, 2, 2, 2]).unwrap();
    out.finalize().unwrap();

    // Levels: 70x50 -> 35x25 -> 18x13 -> 9x7 (fits in one 16-pixel chunk).
    let root = zarr_json(&path);
    let ome = &root["attributes"]["ome"];
    let fields: OmeFields = serde_json::from_value(ome.clone()).unwrap();
    fields.validate().unwrap();
    let ms = &fields.multiscales.as_ref().unwrap()[0];
    assert_eq!(ms.datasets.len(), 4);
    assert_eq!(ms.r#type.as_deref(), Some("mean"));
    let axes: Vec<&str> = ms.axes.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(axes, ["c", "z", "y", "x"]);
    assert_eq!(ome["multiscales"][0]["axes"][1]["type"], "space");
    assert_eq!(ome["multiscales"][0]["axes"][0]["type"], "channel");
    assert_eq!(ome["multiscales"][0]["axes"][3]["unit"], "micrometer");
    assert_eq!(ome["multiscales"][0]["datasets"][1]["path"], "1");
    assert_eq!(
        ome["multiscales"][0]["datasets"][1]["coordinateTransformations"][0]["scale"],
        serde_json::json!([1.0, 2.0, 1.0, 1.0])
    );
    assert_eq!(
        ome["multiscales"][0]["datasets"][3]["coordinateTransformations"][0]["scale"],
        serde_json::json!([1.0, 2.0, 4.0, 4.0])
    );
    assert_eq!(root["attributes"]["unet"]["levels"], 4);

    let labels = zarr_json(&path.join("labels"));
    let lf: OmeFields = serde_json::from_value(labels["attributes"]["ome"].clone()).unwrap();
    assert_eq!(lf.labels.unwrap(), ["mask", "instances"]);
    for name in ["mask", "instances"] {
        let l = zarr_json(&path.join("labels").join(name));
        let f: OmeFields = serde_json::from_value(l["attributes"]["ome"].clone()).unwrap();
        f.validate().unwrap();
        assert_eq!(f.multiscales.unwrap()[0].datasets.len(), 4);
        assert_eq!(l["attributes"]["ome"]["image-label"]["source"]["image"], "../../");
        assert_eq!(l["attributes"]["ome"]["multiscales"][0]["type"], "mode");
    }

    // The root reads as an OME-Zarr input image (level 0).
    let img = ZarrImage::open(&path).unwrap();
    assert_eq!((img.width(), img.height(), img.channels(), img.planes(), img.kind()), (70, 50, 2, 2, SampleKind::F32));
    assert_eq!(img.pixel_size().unwrap().z, Some(2.0));
    let r = img.read_region(1, 3, 4, 5, 6).unwrap();
    assert_eq!(r.get(1, 2, 3), prob(1, 1, 6, 6));

    // Level 1 values: read the level arrays as bare arrays (their dimension names are c,z,y,x).
    for p in 0..2 {
        let l0 = out.read_probabilities(p, 0, 0, 70, 50).unwrap();
        let l1 = ZarrImage::open(&path.join("1")).unwrap();
        assert_eq!((l1.width(), l1.height(), l1.channels(), l1.planes()), (35, 25, 2, 2));
        let got = l1.read_region(p, 0, 0, 35, 25).unwrap();
        for c in 0..2 {
            let expected =
                reduce_ref(&l0[c * 3500..(c + 1) * 3500], 70, 50, |v| v.iter().sum::<f32>() / v.len() as f32);
            assert_eq!(got.plane(c), expected.as_slice(), "plane {p} class {c}");
        }

        let m0 = out.read_mask(p, 0, 0, 70, 50).unwrap();
        let m1 = ZarrImage::open(&path.join("labels/mask/1")).unwrap();
        assert_eq!(m1.kind(), SampleKind::U8);
        let expected: Vec<f32> = reduce_ref(&m0, 70, 50, mode_ref).into_iter().map(f32::from).collect();
        assert_eq!(m1.read_region(p, 0, 0, 35, 25).unwrap().data, expected);

        let i0 = out.read_instances(p, 0, 0, 70, 50).unwrap();
        // u64 ids do not survive f32, so read level 1 with zarrs directly.
        let store = Arc::new(FilesystemStore::new(&path).unwrap());
        let i1 = Array::open(store, "/labels/instances/1").unwrap();
        assert_eq!(i1.shape(), [1, 2, 25, 35]);
        let got: Vec<u64> = i1
            .retrieve_array_subset(&ArraySubset::new_with_ranges(&[0..1, p as u64..p as u64 + 1, 0..25, 0..35]))
            .unwrap();
        let expected = reduce_ref(&i0, 70, 50, mode_ref);
        assert_eq!(got, expected);
        if p == 1 {
            assert_eq!(expected[10 * 35 + 5], 7);
            assert_eq!(m1.read_region(1, 5, 10, 1, 1).unwrap().data, vec![2.0]);
        }
    }

    // The last level, 9x7, exists. Finalizing again gives the same metadata, the same shard
    // files and the same values (not the same bytes: zarrs may order inner chunks differently).
    let l3 = ZarrImage::open(&path.join("labels/instances/3")).unwrap();
    assert_eq!((l3.width(), l3.height()), (9, 7));
    let levels = |path: &Path| -> Vec<Vec<f32>> {
        let mut all = Vec::new();
        for group in ["", "labels/mask/", "labels/instances/"] {
            for level in 1..4 {
                let img = ZarrImage::open(&path.join(format!("{group}{level}"))).unwrap();
                for p in 0..2 {
                    all.push(img.read_region(p, 0, 0, img.width(), img.height()).unwrap().data.clone());
                }
            }
        }
        all
    };
    let (before, before_values) = (files(&path), levels(&path));
    ZarrOutput::open(&path).unwrap().finalize().unwrap();
    let after = files(&path);
    assert!(after.keys().eq(before.keys()));
    for (k, v) in after.iter().filter(|(k, _)| k.ends_with("zarr.json")) {
        assert!(before[k] == *v, "{} changed", k.display());
    }
    assert!(levels(&path) == before_values);
}

#[test]
fn labels_only_output() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labels_only.ome.zarr");
    let s = OutputSpec { instances: true, chunk: 4, shard: 8, ..OutputSpec::new(9, 5) };
    let out = ZarrOutput::create(&path, &s).unwrap();
    let data: Vec<u64> = (0..45).collect();
    out.write_instances(0, 0, 0, 9, 5, &data).unwrap();
    out.finalize().unwrap();
    let root = zarr_json(&path);
    let f: OmeFields = serde_json::from_value(root["attributes"]["ome"].clone()).unwrap();
    f.validate().unwrap();
    assert!(f.multiscales.is_none());
    let labels = zarr_json(&path.join("labels"));
    assert_eq!(labels["attributes"]["ome"]["labels"], serde_json::json!(["instances"]));
    let inst = zarr_json(&path.join("labels/instances"));
    assert!(inst["attributes"]["ome"]["image-label"].get("source").is_none());
    // 9x5 -> 5x3 -> 3x2 (fits in one 4-pixel chunk).
    assert_eq!(inst["attributes"]["ome"]["multiscales"][0]["datasets"].as_array().unwrap().len(), 3);
    let img = ZarrImage::open(&path.join("labels/instances")).unwrap();
    assert_eq!((img.width(), img.height(), img.channels(), img.planes()), (9, 5, 1, 1));
    // Level 1 pixel (x 2, y 1) is the mode of 22, 23 / 31, 32: all distinct, so the top-left,
    // 22; the last column (x 4) has only 8 / 17 (a tie: the top one). Level 2 (x 1, y 0) is
    // the mode of level-1 values 4, 6 / 22, 24, so 4.
    let l1 = ZarrImage::open(&path.join("labels/instances/1")).unwrap();
    assert_eq!((l1.width(), l1.height()), (5, 3));
    assert_eq!(l1.read_region(0, 2, 1, 1, 1).unwrap().data, vec![22.0]);
    assert_eq!(l1.read_region(0, 4, 0, 1, 1).unwrap().data, vec![8.0]);
    let l2 = ZarrImage::open(&path.join("labels/instances/2")).unwrap();
    assert_eq!(l2.read_region(0, 0, 0, 3, 2).unwrap().data, vec![0.0, 4.0, 8.0, 36.0, 40.0, 44.0]);
    assert!(matches!(out.read_probabilities(0, 0, 0, 1, 1), Err(ZarrError::NotInOutput { .. })));
}

#[test]
fn hostile_outputs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.ome.zarr");
    let s = spec(40, 30, 1, 2, ProbDtype::F32);
    let out = ZarrOutput::create(&path, &s).unwrap();

    // Existing path.
    let e = ZarrOutput::create(&path, &s).unwrap_err();
    assert!(matches!(e, ZarrError::Exists { .. }) && e.to_string().contains("h.ome.zarr"), "{e}");

    // Bad spec.
    let bad = OutputSpec { shard: 40, ..s.clone() };
    assert!(matches!(ZarrOutput::create(&dir.path().join("b"), &bad), Err(ZarrError::BadSpec { .. })));
    assert!(!dir.path().join("b").exists());

    // Regions, planes and buffers.
    for (p, x0, y0, w, h) in [(1, 0, 0, 1, 1), (0, 39, 0, 2, 1), (0, 0, 30, 1, 1), (0, 0, usize::MAX, 1, 2)] {
        assert!(matches!(
            out.write_mask(p, x0, y0, w, h, &vec![0; w.saturating_mul(h).min(4)]),
            Err(ZarrError::OutOfBounds { .. })
        ));
        assert!(matches!(out.read_instances(p, x0, y0, w, h), Err(ZarrError::OutOfBounds { .. })));
    }
    assert!(matches!(
        out.write_probabilities(0, 0, 0, 2, 2, &[0.0; 4]),
        Err(ZarrError::BufferSize { expected: 8, got: 4, .. })
    ));
    assert!(matches!(out.write_instances(0, 0, 0, 2, 2, &[0; 5]), Err(ZarrError::BufferSize { .. })));

    // Not an output store.
    assert!(matches!(ZarrOutput::open(&dir.path().join("none")), Err(ZarrError::NotZarr { .. })));
    let plain = dir.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    std::fs::write(plain.join("zarr.json"), br#"{"zarr_format": 3, "node_type": "group", "attributes": {}}"#).unwrap();
    assert!(matches!(ZarrOutput::open(&plain), Err(ZarrError::BadMetadata { .. })));

    // A tampered spec: shape no longer matches the arrays.
    let meta = path.join("zarr.json");
    let good = std::fs::read(&meta).unwrap();
    let mut v: Value = serde_json::from_slice(&good).unwrap();
    v["attributes"]["unet"]["spec"]["width"] = 41.into();
    std::fs::write(&meta, serde_json::to_vec(&v).unwrap()).unwrap();
    let e = ZarrOutput::open(&path).unwrap_err();
    assert!(matches!(e, ZarrError::BadMetadata { .. }) && e.to_string().contains("shape"), "{e}");
    std::fs::write(&meta, &good).unwrap();

    // A missing label array.
    std::fs::remove_file(path.join("labels/mask/0/zarr.json")).unwrap();
    let e = ZarrOutput::open(&path).unwrap_err();
    assert!(e.to_string().contains("labels/mask/0"), "{e}");

    // A corrupt shard: reading it is an error, not a panic.
    let (x0, y0, w, h) = out.shard_rect(0, 0).unwrap();
    out.write_instances(0, x0, y0, w, h, &vec![3; w * h]).unwrap();
    let shard = path.join("labels/instances/0/c/0/0/0");
    let mut bytes = std::fs::read(&shard).unwrap();
    let n = bytes.len();
    bytes[n - 20] ^= 0xff; // inside the shard index (crc32c-checked)
    std::fs::write(&shard, &bytes).unwrap();
    assert!(matches!(out.read_instances(0, 0, 0, 4, 4), Err(ZarrError::Zarr { .. })));
    std::fs::write(&shard, [1u8, 2, 3]).unwrap();
    assert!(out.read_instances(0, 0, 0, 4, 4).is_err());
}
