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
    // 120 steps of a width-8 net: far from converged, but clearly segmenting.
    let iou = v["iou"].as_f64().unwrap();
    assert!(iou > 0.6, "test IoU {iou}");
    assert!(v["rand_error"].as_f64().unwrap() < 0.6);
    assert!(v["seg"].as_f64().unwrap() > 0.25);
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
