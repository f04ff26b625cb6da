//! `unet eval` on files and folders, its JSON report and its errors.

mod common;
use common::*;

use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/metrics").join(name)
}

#[test]
fn eval_folders_writes_the_json_report() {
    let dir = tempfile::tempdir().unwrap();
    let (pred, truth) = (dir.path().join("pred"), dir.path().join("truth"));
    std::fs::create_dir_all(&pred).unwrap();
    std::fs::create_dir_all(&truth).unwrap();
    std::fs::copy(fixture("pred_03_identical.png"), pred.join("a.png")).unwrap();
    std::fs::copy(fixture("truth_03.png"), truth.join("a.png")).unwrap();
    std::fs::copy(fixture("pred_17_split.png"), pred.join("b.png")).unwrap();
    std::fs::copy(fixture("truth_17.png"), truth.join("b.png")).unwrap();
    let json = dir.path().join("r.json");
    let (code, out, err) = unet(&["eval", "--pred", s(&pred), "--truth", s(&truth), "--json", s(&json)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("mean"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let images = v["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    assert_eq!(images[0]["name"], "a");
    for key in ["pixel_error", "rand_error", "warping_error", "v_rand", "v_info", "iou", "dice", "seg"] {
        assert!(images[0][key].is_number(), "{key}");
        assert!(v["mean"][key].is_number(), "{key}");
    }
    // Identical prediction: perfect scores.
    assert_eq!(images[0]["pixel_error"], 0.0);
    assert!((images[0]["v_rand"].as_f64().unwrap() - 1.0).abs() < 1e-12);
    assert_eq!(images[0]["warping_error"], 0.0);
    // The split cells are splits: Rand error and split defects, no merges.
    assert!(images[1]["rand_error"].as_f64().unwrap() > 0.2);
    assert!(images[1]["defects"]["splits"].as_u64().unwrap() > 0);
    assert_eq!(images[1]["defects"]["merges"], 0);
    // Binary predictions are scored at the single threshold 0.
    assert_eq!(v["thresholds"].as_array().unwrap().len(), 1);
    // The report is not replaced without --force.
    let (code, _, err) = unet(&["eval", "--pred", s(&pred), "--truth", s(&truth), "--json", s(&json)]);
    assert_eq!(code, 1);
    assert!(err.contains("--force"), "{err}");
}

#[test]
fn eval_probability_map_over_thresholds() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let (code, out, err) = unet(&[
        "eval",
        "--pred",
        s(&fixture("pred_03_probability.png")),
        "--truth",
        s(&fixture("truth_03.png")),
        "--metrics",
        "pixel_error,rand_error,v_rand",
        "--json",
        s(&json),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("best thresholds"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let table = v["thresholds"].as_array().unwrap();
    assert_eq!(table.len(), 11);
    assert_eq!(table[10]["threshold"].as_f64().unwrap(), 0.9999999999999999);
    // The best is the minimum error over the table.
    let min = table.iter().map(|r| r["rand_error"].as_f64().unwrap()).fold(f64::INFINITY, f64::min);
    assert_eq!(v["mean"]["rand_error"].as_f64().unwrap(), min);
    assert!(v["images"][0].get("iou").is_none(), "only the chosen metrics");
}

#[test]
fn eval_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let (pred, truth) = (dir.path().join("pred"), dir.path().join("truth"));
    std::fs::create_dir_all(&pred).unwrap();
    std::fs::create_dir_all(&truth).unwrap();
    std::fs::copy(fixture("pred_03_identical.png"), pred.join("a.png")).unwrap();
    std::fs::copy(fixture("truth_03.png"), truth.join("b.png")).unwrap();
    let (code, _, err) = unet(&["eval", "--pred", s(&pred), "--truth", s(&truth)]);
    assert_eq!(code, 1);
    assert!(err.contains("no partner") && err.contains("a.png"), "{err}");
    // A folder written by `unet predict` pairs by its *_mask files.
    let (pred2, truth2) = (dir.path().join("pred2"), dir.path().join("truth2"));
    std::fs::create_dir_all(&pred2).unwrap();
    std::fs::create_dir_all(&truth2).unwrap();
    std::fs::copy(fixture("pred_03_identical.png"), pred2.join("x_mask.png")).unwrap();
    std::fs::copy(fixture("pred_03_identical.png"), pred2.join("x_overlay.png")).unwrap();
    std::fs::copy(fixture("truth_03.png"), truth2.join("x.png")).unwrap();
    let (code, out, err) = unet(&["eval", "--pred", s(&pred2), "--truth", s(&truth2), "--metrics", "pixel_error"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().nth(1).unwrap().starts_with("x "), "{out}");
    // Size mismatch.
    let small = dir.path().join("small.png");
    unet_io::write_image(
        &small,
        &[unet_io::Image::gray(10, 10, unet_io::SampleKind::U8, vec![255.0; 100])],
        unet_io::BitDepth::U8,
        false,
    )
    .unwrap();
    let (code, _, err) = unet(&["eval", "--pred", s(&small), "--truth", s(&fixture("truth_03.png"))]);
    assert_eq!(code, 1);
    assert!(err.contains("same size") && err.contains("small.png"), "{err}");
    // Unknown metric: usage error.
    let (code, _, err) = unet(&["eval", "--pred", s(&small), "--truth", s(&small), "--metrics", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown metric"), "{err}");
    // Truth without cells.
    let empty = dir.path().join("empty.png");
    unet_io::write_image(
        &empty,
        &[unet_io::Image::gray(10, 10, unet_io::SampleKind::U8, vec![0.0; 100])],
        unet_io::BitDepth::U8,
        false,
    )
    .unwrap();
    let (code, _, err) = unet(&["eval", "--pred", s(&small), "--truth", s(&empty)]);
    assert_eq!(code, 1);
    assert!(err.contains("no cells"), "{err}");
}

/// Unusable thresholds are usage errors (exit code 2) with a one-line message naming the
/// value and the fix, found before any file is read; a count above the cap (1001) is
/// refused before the thresholds are made.
#[test]
fn eval_refuses_unusable_thresholds() {
    let (pred, truth) = (fixture("pred_03_probability.png"), fixture("truth_03.png"));
    let run = |t: &str| {
        unet(&[
            "eval",
            "--pred",
            s(&pred),
            "--truth",
            s(&truth),
            "--metrics",
            "pixel_error",
            &format!("--thresholds={t}"),
        ])
    };
    for (spec, hint) in [
        ("0-1:1e-300", "1001"),
        ("0-1:0.0001", "10001 thresholds"),
        ("nan", "NaN"),
        ("0.5,inf", "inf"),
        ("1.5", "outside [0, 1]"),
        ("-0.1-1:0.1", "outside [0, 1]"),
        ("0-1:0", "step"),
        ("1-0:0.1", "empty"),
        ("x", "not a number"),
    ] {
        let (code, out, err) = run(spec);
        assert_eq!(code, 2, "{spec}: {err}");
        assert!(err.contains(hint) && err.contains(spec), "{spec}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{spec}: {err}");
        assert!(out.is_empty(), "{spec}: {out}");
    }
    let (code, out, err) = run("0.3,0.5");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("best thresholds"), "{out}");
}

/// Prediction and truth names that are not UTF-8 pair on their bytes.
#[cfg(unix)]
#[test]
fn eval_pairs_non_utf8_names_on_their_bytes() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let (pred, truth) = (dir.path().join("pred"), dir.path().join("truth"));
    std::fs::create_dir_all(&pred).unwrap();
    std::fs::create_dir_all(&truth).unwrap();
    let named = |d: &std::path::Path, b: &[u8]| d.join(OsStr::from_bytes(b));
    std::fs::copy(fixture("pred_03_identical.png"), named(&pred, b"x\xff.png")).unwrap();
    std::fs::copy(fixture("truth_03.png"), named(&truth, b"x\xfe.png")).unwrap();
    let (code, _, err) = unet(&["eval", "--pred", s(&pred), "--truth", s(&truth), "--metrics", "pixel_error"]);
    assert_eq!(code, 1, "x\\xff must not pair with x\\xfe: {err}");
    assert!(err.contains("no partner"), "{err}");
    std::fs::copy(fixture("truth_03.png"), named(&truth, b"x\xff.png")).unwrap();
    std::fs::remove_file(named(&truth, b"x\xfe.png")).unwrap();
    let (code, _, err) = unet(&["eval", "--pred", s(&pred), "--truth", s(&truth), "--metrics", "pixel_error"]);
    assert_eq!(code, 0, "{err}");
}
