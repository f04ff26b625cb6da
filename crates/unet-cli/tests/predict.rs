//! `unet predict` end to end: outputs, formats, stacks and errors.

mod common;
use common::*;

use std::path::Path;

use unet_io::{BitDepth, ColorMode, Image, Label, LabelKind, SampleKind};

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

/// The sorted file names of a folder.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// The folder's `predict.json`.
fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("predict.json")).unwrap()).unwrap()
}

#[cfg(unix)]
#[test]
fn outputs_are_named_on_the_raw_bytes_of_the_stem() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), 1);
    let inputs = dir.path().join("in");
    // Both names print as "x\u{fffd}": a lossy stem gives both the same outputs.
    let (ff, fe) = (
        inputs.join(std::ffi::OsStr::from_bytes(b"x\xff.png")),
        inputs.join(std::ffi::OsStr::from_bytes(b"x\xfe.png")),
    );
    unet_io::write_image(&ff, &[image(30, 30)], BitDepth::U8, false).unwrap();
    unet_io::write_image(&fe, &[image(30, 31)], BitDepth::U8, false).unwrap();
    let out = dir.path().join("out");
    let (code, _, err) = unet(&["predict", "--model", s(&m), s(&inputs), "--out", s(&out), "--force"]);
    assert_eq!(code, 0, "{err}");
    let mask = |stem: &[u8]| out.join(std::ffi::OsStr::from_bytes(&[stem, b"_mask.png"].concat()));
    assert_eq!(unet_io::read_image(&mask(b"x\xff"), ColorMode::Gray).unwrap().size(), (30, 30));
    assert_eq!(unet_io::read_image(&mask(b"x\xfe"), ColorMode::Gray).unwrap().size(), (30, 31));
    assert!(!out.join("x\u{fffd}_mask.png").exists());
    // The record keeps the raw names (as byte arrays).
    let rec = manifest(&out);
    let stems: Vec<&serde_json::Value> = rec["images"].as_array().unwrap().iter().map(|e| &e["stem"]).collect();
    assert!(
        stems.contains(&&serde_json::json!([120, 255])) && stems.contains(&&serde_json::json!([120, 254])),
        "{rec}"
    );
    // Weight maps too.
    let labels = dir.path().join("labels");
    let lab = |v: u32| Label::new(20, 20, (0..400).map(|i| if i % 20 < 8 { v } else { 0 }).collect());
    unet_io::write_labels(&labels.join(std::ffi::OsStr::from_bytes(b"x\xff.png")), &[lab(1)], false).unwrap();
    unet_io::write_labels(&labels.join(std::ffi::OsStr::from_bytes(b"x\xfe.png")), &[lab(2)], false).unwrap();
    let wout = dir.path().join("w");
    let (code, _, err) = unet(&["weights", "--labels", s(&labels), "--out", s(&wout)]);
    assert_eq!(code, 0, "{err}");
    for stem in [&b"x\xff"[..], b"x\xfe"] {
        for ext in [&b"_weights.tif"[..], b"_weights.png"] {
            let p = wout.join(std::ffi::OsStr::from_bytes(&[stem, ext].concat()));
            assert!(p.exists(), "{} missing: {:?}", p.display(), listing(&wout));
        }
    }
}

#[test]
fn force_removes_the_outputs_this_run_does_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), 1);
    let inputs = dir.path().join("in");
    unet_io::write_image(&inputs.join("a.png"), &[image(30, 30)], BitDepth::U8, false).unwrap();
    unet_io::write_image(&inputs.join("st.tif"), &[image(20, 21), image(20, 21)], BitDepth::U8, false).unwrap();
    let out = dir.path().join("out");
    let (code, _, err) = unet(&["predict", "--model", s(&m), s(&inputs), "--out", s(&out), "--instances"]);
    assert_eq!(code, 0, "{err}");
    // Files of others: another stem, a note, a folder named like an output.
    std::fs::write(out.join("b_mask.png"), b"not ours").unwrap();
    std::fs::write(out.join("notes.txt"), b"keep").unwrap();
    std::fs::create_dir(out.join("a_prob.tif.d")).unwrap();
    let (code, _, err) = unet(&[
        "predict",
        "--model",
        s(&m),
        s(&inputs),
        "--out",
        s(&out),
        "--force",
        "--save-probs",
        "none",
        "--no-overlay",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        listing(&out),
        ["a_mask.png", "a_prob.tif.d", "b_mask.png", "notes.txt", "predict.json", "st_mask.tif"],
        "only this run's outputs may remain of its stems"
    );
    // The single image becomes a stack: its PNG mask gives way to a TIFF one.
    std::fs::remove_file(inputs.join("a.png")).unwrap();
    unet_io::write_image(&inputs.join("a.tif"), &[image(30, 30), image(30, 30)], BitDepth::U8, false).unwrap();
    let (code, _, err) = unet(&["predict", "--model", s(&m), s(&inputs), "--out", s(&out), "--force"]);
    assert_eq!(code, 0, "{err}");
    let names = listing(&out);
    assert!(!names.contains(&"a_mask.png".to_string()), "{names:?}");
    for f in ["a_mask.tif", "a_prob.tif", "a_000_overlay.png", "a_001_overlay.png", "st_000_overlay.png"] {
        assert!(names.contains(&f.to_string()), "{f} missing: {names:?}");
    }
    // An input in the output folder that bears an output's name is never overwritten.
    let (code, _, err) = unet(&[
        "predict",
        "--model",
        s(&m),
        s(&out.join("a_000_overlay.png")),
        s(&inputs.join("a.tif")),
        "--out",
        s(&out),
        "--force",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("a_000_overlay.png") && err.contains("another output folder"), "{err}");
}

#[test]
fn an_unfinished_prediction_is_recorded_refused_and_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), 1);
    let inputs = dir.path().join("in");
    for name in ["a.png", "b.png"] {
        unet_io::write_image(&inputs.join(name), &[image(30, 30)], BitDepth::U8, false).unwrap();
    }
    let out = dir.path().join("out");
    let (code, _, err) = unet(&["predict", "--model", s(&m), s(&inputs), "--out", s(&out), "--instances"]);
    assert_eq!(code, 0, "{err}");
    let rec = manifest(&out);
    assert_eq!(rec["complete"], true, "{rec}");
    assert_eq!(rec["images"][1]["stem"], "b");
    assert_eq!(
        rec["images"][1]["outputs"],
        serde_json::json!(["b_prob.tif", "b_mask.png", "b_instances.tif", "b_overlay.png"])
    );
    // A kill while b's set was being written: two of its files in place, the record
    // rewritten last after a, so it says b is not done.
    let mut killed = rec.clone();
    killed["complete"] = false.into();
    killed["images"][1]["done"] = false.into();
    killed["images"][1]["outputs"] = serde_json::json!([]);
    std::fs::write(out.join("predict.json"), serde_json::to_vec(&killed).unwrap()).unwrap();
    std::fs::remove_file(out.join("b_instances.tif")).unwrap();
    std::fs::remove_file(out.join("b_overlay.png")).unwrap();
    // Scoring it is refused...
    let (code, _, err) = unet(&["eval", "--pred", s(&out), "--truth", s(&inputs)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("predict.json") && err.contains("unfinished: b") && err.contains("--force"), "{err}");
    // ... as is predicting into it without --force ...
    let (code, _, err) = unet(&["predict", "--model", s(&m), s(&inputs), "--out", s(&out)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("unfinished prediction") && err.contains("1 of 2 images done; unfinished: b"), "{err}");
    // ... and with it, b's partial set goes although b is not an input this time.
    let (code, _, err) =
        unet(&["predict", "--model", s(&m), s(&inputs.join("a.png")), "--out", s(&out), "--force", "--instances"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        listing(&out),
        ["a_instances.tif", "a_mask.png", "a_overlay.png", "a_prob.tif", "predict.json"],
        "the unfinished set of b is removed"
    );
    let rec = manifest(&out);
    assert_eq!((rec["complete"].clone(), rec["images"].as_array().unwrap().len()), (true.into(), 1), "{rec}");
    // A finished set of an earlier run stays on record beside a new input's.
    unet_io::write_image(&inputs.join("c.png"), &[image(30, 30)], BitDepth::U8, false).unwrap();
    let (code, _, err) = unet(&["predict", "--model", s(&m), s(&inputs.join("c.png")), "--out", s(&out), "--force"]);
    assert_eq!(code, 0, "{err}");
    let rec = manifest(&out);
    let stems: Vec<&str> = rec["images"].as_array().unwrap().iter().map(|e| e["stem"].as_str().unwrap()).collect();
    assert_eq!(stems, ["a", "c"], "{rec}");
    assert!(out.join("a_instances.tif").exists() && out.join("c_mask.png").exists());
    let (code, _, err) = unet(&["eval", "--pred", s(&out), "--truth", s(&out), "--pred-kind", "mask"]);
    assert_ne!(code, 0);
    assert!(!err.contains("unfinished"), "a finished folder is not refused as unfinished: {err}");
}

#[test]
fn a_failed_run_records_what_it_finished_and_a_run_that_wrote_nothing_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), 1);
    let good = dir.path().join("good.png");
    unet_io::write_image(&good, &[image(30, 30)], BitDepth::U8, false).unwrap();
    let bad = dir.path().join("bad.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\ntruncated").unwrap();
    let out = dir.path().join("out");
    let (code, _, err) = unet(&["predict", "--model", s(&m), s(&good), s(&bad), "--out", s(&out)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("bad.png"), "{err}");
    let rec = manifest(&out);
    assert_eq!(rec["complete"], false, "{rec}");
    assert_eq!((rec["images"][0]["done"].clone(), rec["images"][1]["done"].clone()), (true.into(), false.into()));
    assert!(out.join("good_mask.png").exists() && !out.join("bad_mask.png").exists());
    // Failing on the first input: no folder, no record.
    let out2 = dir.path().join("out2");
    let (code, _, err) = unet(&["predict", "--model", s(&m), s(&bad), s(&good), "--out", s(&out2)]);
    assert_eq!(code, 1, "{err}");
    assert!(!out2.exists(), "{:?}", listing(&out2));
}

#[test]
fn shards_of_many_files_share_a_folder_and_equal_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), 1);
    let inputs = dir.path().join("in");
    for k in 0..5 {
        unet_io::write_image(&inputs.join(format!("i{k}.png")), &[image(30 + k, 25)], BitDepth::U8, false).unwrap();
    }
    let run = |out: &Path, extra: &[&str]| {
        let mut a = vec!["predict", "--model", s(&m), s(&inputs), "--out", s(out), "--instances", "--tile", "60"];
        a.extend_from_slice(extra);
        unet(&a)
    };
    let (one, sh) = (dir.path().join("one"), dir.path().join("sh"));
    assert_eq!(run(&one, &[]).0, 0);
    // Two shards into one folder: files 0, 2, 4 and 1, 3; each keeps its own record.
    for shard in ["0/2", "1/2"] {
        let (code, _, err) = run(&sh, &["--shard", shard]);
        assert_eq!(code, 0, "{err}");
    }
    let outputs: Vec<String> = listing(&one).into_iter().filter(|n| n != "predict.json").collect();
    assert_eq!(outputs.len(), 20, "{outputs:?}");
    let mut expected = outputs.clone();
    expected.extend(["predict-0-of-2.json".to_string(), "predict-1-of-2.json".to_string()]);
    expected.sort();
    assert_eq!(listing(&sh), expected);
    for name in &outputs {
        assert!(std::fs::read(one.join(name)).unwrap() == std::fs::read(sh.join(name)).unwrap(), "{name} differs");
    }
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sh.join("predict-0-of-2.json")).unwrap()).unwrap();
    let stems: Vec<&str> = record["images"].as_array().unwrap().iter().map(|e| e["stem"].as_str().unwrap()).collect();
    assert_eq!((stems, record["complete"].as_bool()), (vec!["i0", "i2", "i4"], Some(true)));
    // Run again, a shard skips what it finished; an output removed is predicted again.
    let (code, _, err) = run(&sh, &["--shard", "0/2"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("3 of 5 input(s), 3 done already, 0 to predict"), "{err}");
    std::fs::remove_file(sh.join("i2_mask.png")).unwrap();
    let (code, _, err) = run(&sh, &["--shard", "0/2"]);
    assert!(code == 0 && err.contains("2 done already, 1 to predict"), "{err}");
    assert!(std::fs::read(one.join("i2_mask.png")).unwrap() == std::fs::read(sh.join("i2_mask.png")).unwrap());
    // An index not below the count is refused.
    let (code, _, err) = run(&sh, &["--shard", "2/2"]);
    assert!(code != 0 && err.contains("not below the shard count 2"), "{err}");
    // eval refuses a folder where a shard's record is unfinished.
    let path = sh.join("predict-1-of-2.json");
    let text = std::fs::read_to_string(&path).unwrap().replace("\"complete\": true", "\"complete\": false");
    std::fs::write(&path, text).unwrap();
    let (code, _, err) = unet(&["eval", "--pred", s(&sh), "--truth", s(&inputs)]);
    assert!(code != 0 && err.contains("predict-1-of-2.json") && err.contains("--shard"), "{err}");
}
