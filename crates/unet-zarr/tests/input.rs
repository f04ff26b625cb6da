//! Reading OME-Zarr inputs: NGFF 0.4 / Zarr v2 images written by hand (raw and blosc chunks),
//! NGFF 0.5 / Zarr v3 and bare arrays written with zarrs, channel and z axes, and hostile
//! stores that must give errors, not panics.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use unet_io::SampleKind;
use unet_zarr::{ZarrError, ZarrImage};
use zarrs::array::codec::{BloscCompressionLevel, BloscCompressor, BloscShuffleMode, blosc_compress_bytes};
use zarrs::array::{ArrayBuilder, ArraySubset, data_type};
use zarrs::filesystem::FilesystemStore;

fn write_json(path: &Path, v: &serde_json::Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

/// Writes a Zarr v2 array `shape` / `chunks` (C order, "." separator) of little-endian values
/// given by `value(index)`, each chunk padded to full size as v2 requires, passed through
/// `compress`.
fn write_v2_array(
    dir: &Path,
    dtype: &str,
    shape: &[usize],
    chunks: &[usize],
    compressor: serde_json::Value,
    value_bytes: impl Fn(&[usize]) -> Vec<u8>,
    compress: impl Fn(Vec<u8>) -> Vec<u8>,
) {
    write_json(
        &dir.join(".zarray"),
        &json!({"zarr_format": 2, "shape": shape, "chunks": chunks, "dtype": dtype, "compressor": compressor,
                "fill_value": 0, "order": "C", "filters": null}),
    );
    let grid: Vec<usize> = shape.iter().zip(chunks).map(|(s, c)| s.div_ceil(*c)).collect();
    let n_chunks: usize = grid.iter().product();
    for ci in 0..n_chunks {
        // chunk grid index
        let mut rest = ci;
        let mut cidx = vec![0; grid.len()];
        for d in (0..grid.len()).rev() {
            cidx[d] = rest % grid[d];
            rest /= grid[d];
        }
        let n: usize = chunks.iter().product();
        let mut bytes = Vec::new();
        for e in 0..n {
            let mut rest = e;
            let mut idx = vec![0; chunks.len()];
            for d in (0..chunks.len()).rev() {
                idx[d] = cidx[d] * chunks[d] + rest % chunks[d];
                rest /= chunks[d];
            }
            if idx.iter().zip(shape).all(|(i, s)| i < s) {
                bytes.extend(value_bytes(&idx));
            } else {
                bytes.extend(value_bytes(&vec![0; shape.len()]).iter().map(|_| 0u8));
            }
        }
        let key: Vec<String> = cidx.iter().map(|i| i.to_string()).collect();
        std::fs::write(dir.join(key.join(".")), compress(bytes)).unwrap();
    }
}

fn u16_value(idx: &[usize]) -> u16 {
    (idx[0] * 1000 + idx[1] * 30 + idx[2]) as u16
}

/// An NGFF 0.4 image: `.zgroup`, `.zattrs` (c, y, x with units and a scale), `0/` raw `<u2`.
fn ngff04_raw(root: &Path) {
    write_json(&root.join(".zgroup"), &json!({"zarr_format": 2}));
    write_json(
        &root.join(".zattrs"),
        &json!({"multiscales": [{"version": "0.4", "name": "img",
            "axes": [{"name": "c", "type": "channel"}, {"name": "y", "type": "space", "unit": "micrometer"},
                     {"name": "x", "type": "space", "unit": "micrometer"}],
            "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 0.5, 0.25]}]}],
            "type": "gaussian"}]}),
    );
    write_v2_array(
        &root.join("0"),
        "<u2",
        &[2, 20, 30],
        &[1, 8, 8],
        serde_json::Value::Null,
        |i| u16_value(i).to_le_bytes().to_vec(),
        |b| b,
    );
}

#[test]
fn ngff04_zarr_v2_raw_region_across_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("img.zarr");
    ngff04_raw(&root);
    let img = ZarrImage::open(&root).unwrap();
    assert_eq!((img.width(), img.height(), img.channels(), img.planes()), (30, 20, 2, 1));
    assert_eq!(img.kind(), SampleKind::U16);
    let px = img.pixel_size().unwrap();
    assert_eq!((px.x, px.y, px.z, px.unit.as_deref()), (0.25, 0.5, None, Some("micrometer")));

    // x 5..27, y 3..19: spans 3 x 3 chunks of 8.
    let (x0, y0, w, h) = (5, 3, 22, 16);
    let r = img.read_region(0, x0, y0, w, h).unwrap();
    assert_eq!((r.width, r.height, r.channels, r.kind), (w, h, 2, SampleKind::U16));
    for c in 0..2 {
        for y in 0..h {
            for x in 0..w {
                assert_eq!(r.get(c, y, x), f32::from(u16_value(&[c, y0 + y, x0 + x])), "c{c} y{y} x{x}");
            }
        }
    }
    // The bottom-right corner (edge chunks).
    let r = img.read_region(0, 29, 19, 1, 1).unwrap();
    assert_eq!(r.data, vec![f32::from(u16_value(&[0, 19, 29])), f32::from(u16_value(&[1, 19, 29]))]);
}

#[test]
fn ngff04_zarr_v2_blosc_z_stack() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("stack.zarr");
    write_json(&root.join(".zgroup"), &json!({"zarr_format": 2}));
    write_json(
        &root.join(".zattrs"),
        &json!({"multiscales": [{"version": "0.4",
            "axes": [{"name": "t", "type": "time"}, {"name": "z", "type": "space"}, {"name": "y", "type": "space"},
                     {"name": "x", "type": "space"}],
            "datasets": [{"path": "s0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 3.0, 0.5, 0.5]}]},
                         {"path": "s1", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 3.0, 1.0, 1.0]}]}]}]}),
    );
    let value = |i: &[usize]| (i[0] as f32) * 100.0 + (i[1] as f32) * 10.0 + (i[2] as f32) * 0.5 - (i[3] as f32) * 0.25;
    write_v2_array(
        &root.join("s0"),
        "<f4",
        &[2, 3, 17, 23],
        &[1, 1, 5, 7],
        json!({"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 1, "blocksize": 0}),
        |i| value(i).to_le_bytes().to_vec(),
        |b| {
            blosc_compress_bytes(
                &b,
                BloscCompressionLevel::try_from(3u8).unwrap(),
                BloscShuffleMode::Shuffle,
                4,
                BloscCompressor::Zstd,
                0,
                1,
            )
            .unwrap()
        },
    );
    let img = ZarrImage::open(&root).unwrap();
    assert_eq!((img.width(), img.height(), img.channels(), img.planes()), (23, 17, 1, 6));
    assert_eq!(img.kind(), SampleKind::F32);
    assert_eq!(img.pixel_size().unwrap().z, Some(3.0));
    // plane = t * 3 + z: plane 5 is t 1, z 2.
    let (x0, y0, w, h) = (4, 2, 17, 14);
    let r = img.read_region(5, x0, y0, w, h).unwrap();
    for y in 0..h {
        for x in 0..w {
            assert_eq!(r.get(0, y, x), value(&[1, 2, y0 + y, x0 + x]));
        }
    }
    let r = img.read_region(3, 0, 0, 1, 1).unwrap();
    assert_eq!(r.data, vec![value(&[1, 0, 0, 0])]);
    assert!(matches!(img.read_region(6, 0, 0, 1, 1), Err(ZarrError::OutOfBounds { .. })));
}

#[test]
fn zarr_v3_bare_arrays() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FilesystemStore::new(dir.path()).unwrap());

    // 2D u8, no dimension names: (y, x).
    let a = ArrayBuilder::new(vec![40, 50], vec![16, 16], data_type::uint8(), 0u8).build(store.clone(), "/a").unwrap();
    a.store_metadata().unwrap();
    let data: Vec<u8> = (0..40 * 50).map(|i| (i % 251) as u8).collect();
    a.store_array_subset(&ArraySubset::new_with_ranges(&[0..40, 0..50]), &data).unwrap();
    let img = ZarrImage::open(&dir.path().join("a")).unwrap();
    assert_eq!((img.width(), img.height(), img.channels(), img.planes(), img.kind()), (50, 40, 1, 1, SampleKind::U8));
    let r = img.read_region(0, 10, 5, 30, 20).unwrap();
    for y in 0..20 {
        for x in 0..30 {
            assert_eq!(r.get(0, y, x), f32::from(data[(5 + y) * 50 + 10 + x]));
        }
    }

    // 3D i16, no names: (z, y, x), 4 planes, values negative too (read as f32).
    let b =
        ArrayBuilder::new(vec![4, 9, 11], vec![1, 4, 4], data_type::int16(), 0i16).build(store.clone(), "/b").unwrap();
    b.store_metadata().unwrap();
    let data: Vec<i16> = (0..4 * 9 * 11).map(|i| i as i16 - 200).collect();
    b.store_array_subset(&ArraySubset::new_with_ranges(&[0..4, 0..9, 0..11]), &data).unwrap();
    let img = ZarrImage::open(&dir.path().join("b")).unwrap();
    assert_eq!((img.planes(), img.kind()), (4, SampleKind::F32));
    let r = img.read_region(2, 3, 1, 8, 7).unwrap();
    assert_eq!(r.get(0, 0, 0), f32::from(data[2 * 99 + 11 + 3]));
    assert_eq!(r.get(0, 6, 7), f32::from(data[2 * 99 + 7 * 11 + 10]));

    // Channel-last with dimension names (y, x, c): reordered to planar.
    let c = ArrayBuilder::new(vec![6, 7, 3], vec![4, 4, 3], data_type::uint16(), 0u16)
        .dimension_names(Some(["y", "x", "c"]))
        .build(store.clone(), "/c")
        .unwrap();
    c.store_metadata().unwrap();
    let data: Vec<u16> = (0..6 * 7 * 3).map(|i| i as u16).collect();
    c.store_array_subset(&ArraySubset::new_with_ranges(&[0..6, 0..7, 0..3]), &data).unwrap();
    let img = ZarrImage::open(&dir.path().join("c")).unwrap();
    assert_eq!((img.width(), img.height(), img.channels()), (7, 6, 3));
    let r = img.read_region(0, 2, 1, 4, 5).unwrap();
    for ch in 0..3 {
        for y in 0..5 {
            for x in 0..4 {
                assert_eq!(r.get(ch, y, x), f32::from(data[((1 + y) * 7 + 2 + x) * 3 + ch]));
            }
        }
    }
}

#[test]
fn ngff05_zarr_v3_group_with_channels() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("img.ome.zarr");
    write_json(
        &root.join("zarr.json"),
        &json!({"zarr_format": 3, "node_type": "group", "attributes": {"ome": {"version": "0.5", "multiscales": [{
            "axes": [{"name": "c", "type": "channel"}, {"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
            "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 2, 2]}]}]}]}}}),
    );
    let store = Arc::new(FilesystemStore::new(&root).unwrap());
    let a = ArrayBuilder::new(vec![2, 33, 21], vec![1, 10, 10], data_type::float64(), 0f64)
        .dimension_names(Some(["c", "y", "x"]))
        .build(store, "/0")
        .unwrap();
    a.store_metadata().unwrap();
    let data: Vec<f64> = (0..2 * 33 * 21).map(|i| f64::from(i) * 0.5).collect();
    a.store_array_subset(&ArraySubset::new_with_ranges(&[0..2, 0..33, 0..21]), &data).unwrap();
    let img = ZarrImage::open(&root).unwrap();
    assert_eq!((img.width(), img.height(), img.channels(), img.planes(), img.kind()), (21, 33, 2, 1, SampleKind::F32));
    let r = img.read_region(0, 3, 8, 15, 20).unwrap();
    for c in 0..2 {
        for y in 0..20 {
            for x in 0..15 {
                assert_eq!(f64::from(r.get(c, y, x)), data[(c * 33 + 8 + y) * 21 + 3 + x]);
            }
        }
    }
    // A zero-sized region is empty, not an error.
    assert!(img.read_region(0, 21, 33, 0, 0).unwrap().data.is_empty());
}

fn err_of(path: &Path) -> ZarrError {
    match ZarrImage::open(path) {
        Ok(img) => panic!("{} opened: {img:?}", path.display()),
        Err(e) => e,
    }
}

#[test]
fn hostile_inputs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // Missing path, empty directory.
    assert!(matches!(err_of(&d.join("nope")), ZarrError::Io { .. }));
    std::fs::create_dir(d.join("empty")).unwrap();
    let e = err_of(&d.join("empty"));
    assert!(matches!(e, ZarrError::NotZarr { .. }));
    assert!(e.to_string().contains("empty"), "{e}");

    // A group without multiscales: the message names the path and the fix.
    write_json(&d.join("plain/.zgroup"), &json!({"zarr_format": 2}));
    write_json(&d.join("plain/.zattrs"), &json!({"foo": 1}));
    let e = err_of(&d.join("plain"));
    assert!(matches!(e, ZarrError::NotOmeZarr { .. }));
    let msg = e.to_string();
    assert!(msg.contains("plain") && msg.contains("multiscales") && msg.contains("give the image group"), "{msg}");

    // Garbage JSON.
    std::fs::create_dir(d.join("garbage")).unwrap();
    std::fs::write(d.join("garbage/zarr.json"), b"{not json").unwrap();
    assert!(matches!(err_of(&d.join("garbage")), ZarrError::Json { .. }));

    // zarr.json of an unknown node type.
    write_json(&d.join("weird/zarr.json"), &json!({"zarr_format": 3, "node_type": "potato"}));
    assert!(matches!(err_of(&d.join("weird")), ZarrError::BadMetadata { .. }));

    // Multiscales pointing at a missing array.
    let ms = |path: &str, axes: serde_json::Value| json!({"multiscales": [{"version": "0.4", "axes": axes, "datasets": [{"path": path}]}]});
    let yx = json!([{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]);
    write_json(&d.join("missing/.zgroup"), &json!({"zarr_format": 2}));
    write_json(&d.join("missing/.zattrs"), &ms("0", yx.clone()));
    let e = err_of(&d.join("missing"));
    assert!(matches!(e, ZarrError::BadMetadata { .. }), "{e}");
    assert!(e.to_string().contains("missing/0"), "{e}");

    // Dataset path escaping the group.
    write_json(&d.join("escape/.zattrs"), &ms("../plain", yx.clone()));
    assert!(matches!(err_of(&d.join("escape")), ZarrError::BadMetadata { .. }));

    // Axes that do not match the array (3 axes, 2D array).
    ngff04_raw(&d.join("dims"));
    write_json(&d.join("dims/.zattrs"), &ms("0", yx.clone()));
    let e = err_of(&d.join("dims"));
    assert!(matches!(e, ZarrError::BadMetadata { .. }) && e.to_string().contains("axes"), "{e}");

    // No x/y axes.
    ngff04_raw(&d.join("noxy"));
    write_json(
        &d.join("noxy/.zattrs"),
        &ms("0", json!([{"name": "a", "type": "channel"}, {"name": "b"}, {"name": "q", "type": "channel"}])),
    );
    assert!(matches!(err_of(&d.join("noxy")), ZarrError::BadMetadata { .. }));

    // Axes without types: "c" is the channel axis by its name.
    ngff04_raw(&d.join("twoc"));
    write_json(
        &d.join("twoc/.zattrs"),
        &ms("0", json!([{"name": "c", "type": "channel"}, {"name": "y"}, {"name": "x"}])),
    );
    assert_eq!(ZarrImage::open(&d.join("twoc")).unwrap().channels(), 2);

    // Two channel axes.
    write_v2_array(
        &d.join("twoch/0"),
        "|u1",
        &[2, 2, 3, 3],
        &[2, 2, 3, 3],
        serde_json::Value::Null,
        |_| vec![1],
        |b| b,
    );
    write_json(
        &d.join("twoch/.zattrs"),
        &ms(
            "0",
            json!([{"name": "c", "type": "channel"}, {"name": "d", "type": "channel"}, {"name": "y"}, {"name": "x"}]),
        ),
    );
    assert!(matches!(err_of(&d.join("twoch")), ZarrError::BadMetadata { .. }));

    // A 4D bare array without names.
    write_v2_array(&d.join("four"), "|u1", &[2, 2, 3, 3], &[2, 2, 3, 3], serde_json::Value::Null, |_| vec![1], |b| b);
    assert!(matches!(err_of(&d.join("four")), ZarrError::BadMetadata { .. }));

    // Unsupported data type (strings).
    write_json(
        &d.join("strings/.zarray"),
        &json!({"zarr_format": 2, "shape": [4, 4], "chunks": [4, 4], "dtype": "|O", "compressor": null,
                "fill_value": null, "order": "C", "filters": [{"id": "vlen-utf8"}]}),
    );
    assert!(ZarrImage::open(&d.join("strings")).is_err());

    // Nonsense .zarray.
    write_json(&d.join("bad_zarray/.zarray"), &json!({"zarr_format": 2, "shape": "big"}));
    assert!(matches!(err_of(&d.join("bad_zarray")), ZarrError::Zarr { .. }));

    // Zero-sized chunks, and a huge array (only the region read matters).
    write_json(
        &d.join("zero_chunks/.zarray"),
        &json!({"zarr_format": 2, "shape": [4, 4], "chunks": [0, 4], "dtype": "<u2", "compressor": null,
                "fill_value": 0, "order": "C", "filters": null}),
    );
    assert!(ZarrImage::open(&d.join("zero_chunks")).and_then(|i| i.read_region(0, 0, 0, 2, 2)).is_err());
    write_json(
        &d.join("huge/.zarray"),
        &json!({"zarr_format": 2, "shape": [1u64 << 40, 1u64 << 40], "chunks": [1024, 1024], "dtype": "<u2",
                "compressor": null, "fill_value": 7, "order": "C", "filters": null}),
    );
    let img = ZarrImage::open(&d.join("huge")).unwrap();
    assert_eq!(img.read_region(0, 1 << 39, 1 << 39, 2, 1).unwrap().data, vec![7.0, 7.0]);

    // A truncated raw chunk: open works, reading that chunk is an error.
    ngff04_raw(&d.join("trunc"));
    std::fs::write(d.join("trunc/0/0.1.1"), [1u8, 2, 3]).unwrap();
    let img = ZarrImage::open(&d.join("trunc")).unwrap();
    assert!(img.read_region(0, 0, 0, 8, 8).is_ok()); // chunk 0.0.0 is fine
    assert!(matches!(img.read_region(0, 8, 8, 8, 8), Err(ZarrError::Zarr { .. })));

    // Regions out of bounds.
    let img = ZarrImage::open(&d.join("twoc")).unwrap();
    for (p, x0, y0, w, h) in [(1, 0, 0, 1, 1), (0, 25, 0, 6, 1), (0, 0, 15, 1, 6), (0, usize::MAX, 0, 2, 1)] {
        let e = img.read_region(p, x0, y0, w, h).unwrap_err();
        assert!(matches!(e, ZarrError::OutOfBounds { .. }), "{e}");
    }
}
