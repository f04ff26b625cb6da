//! `unet demo --quick`: the whole pipeline on synthetic cells must actually segment them.

use std::process::Command;

#[test]
fn quick_demo_learns_to_segment_synthetic_cells() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let o = Command::new(env!("CARGO_BIN_EXE_unet"))
        .args(["-q", "demo", "--quick", "--out", out.to_str().unwrap()])
        .output()
        .expect("runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("test set: IoU"), "{stdout}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    for key in ["iou", "seg", "rand_error", "seconds"] {
        assert!(v[key].is_number(), "{key}");
    }
    // 400 steps of a width-8 net on 3 images: far from converged, but clearly segmenting
    // and separating cells (seeds 0-2 gave IoU 0.83-0.91, SEG 0.49-0.59, Rand error
    // 0.27-0.45; an untrained net scores IoU < 0.5).
    let iou = v["iou"].as_f64().unwrap();
    assert!(iou > 0.75, "test IoU {iou}");
    let rand_error = v["rand_error"].as_f64().unwrap();
    assert!(rand_error < 0.5, "Rand error {rand_error}");
    let seg = v["seg"].as_f64().unwrap();
    assert!(seg > 0.4, "SEG {seg}");
    for f in [
        "report.md",
        "run/curves.png",
        "run/last.safetensors",
        "predictions/000_overlay.png",
        "data/train/images/000.png",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    // The demo folder is not overwritten without --force.
    let o = Command::new(env!("CARGO_BIN_EXE_unet"))
        .args(["demo", "--quick", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
}
