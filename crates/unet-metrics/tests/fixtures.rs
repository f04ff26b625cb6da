//! Cross-checks against tests/reference/make_metric_fixtures.py: an independent numpy
//! implementation of METRICS.md (to 1e-6), scikit-image's adapted Rand / VI with the
//! border relabelling (a peer with pair counts without self-pairs), and py-ctcmetrics SEG.

use std::path::{Path, PathBuf};

use serde_json::Value;
use unet_metrics::{IsbiOptions, Plane, SliceInput, evaluate_slice};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/metrics")
}

fn plane(path: &Path) -> Plane {
    let img = unet_io::read_image(path, unet_io::ColorMode::Gray).unwrap();
    // As the organisers' scripts: 8-bit to float, scaled by 1/255.
    Plane::new(img.width, img.height, img.data.iter().map(|&v| v / 255.0).collect())
}

fn close(name: &str, what: &str, got: f64, want: f64, tol: f64) {
    assert!((got - want).abs() <= tol, "{name} {what}: ours {got}, reference {want} (tol {tol})");
}

#[test]
fn scores_match_the_reference_implementations() {
    let fixtures: Value = serde_json::from_str(&std::fs::read_to_string(dir().join("fixtures.json")).unwrap()).unwrap();
    let opts = IsbiOptions { warping: false, ..Default::default() };
    let cases = fixtures["cases"].as_array().unwrap();
    assert!(cases.len() >= 16);
    let mut checked_peer = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let input = SliceInput {
            truth: plane(&dir().join(case["truth"].as_str().unwrap())),
            truth_instances: None,
            proposal: plane(&dir().join(case["pred"].as_str().unwrap())),
            proposal_instances: None,
        };
        for row in case["rows"].as_array().unwrap() {
            let th = row["threshold"].as_f64().unwrap();
            let m = evaluate_slice(&input, th, &opts);
            let f = |k: &str| row[k].as_f64().unwrap();
            let name = format!("{name}@{th}");
            close(&name, "V_Rand", m.rand.fscore(), f("v_rand_unthinned"), 1e-6);
            close(&name, "Rand TP", m.rand.tp, f("rand_tp"), 1e-6 * f("rand_tp").abs().max(1.0));
            close(&name, "Rand FP", m.rand.fp, f("rand_fp"), 1e-6 * f("rand_tp").abs().max(1.0));
            close(&name, "Rand FN", m.rand.fn_, f("rand_fn"), 1e-6 * f("rand_tp").abs().max(1.0));
            close(&name, "V_Info", m.v_info, f("v_info_unthinned"), 1e-6);
            close(&name, "pixel error", m.pixel.error(), f("pixel_error"), 1e-9);
            close(&name, "pixel F", m.pixel.fscore(), f("pixel_fscore"), 1e-9);
            close(&name, "SEG (py-ctcmetrics)", m.seg_sum / m.seg_count as f64, f("ctc_seg"), 1e-9);
            // Peer: scikit-image excludes self-pairs (N(N-1) instead of N^2), so it agrees
            // to about 1/(mean segment size); V_Info is base-invariant and exact.
            if let Some(v) = row["skimage"]["v_rand"].as_f64() {
                close(&name, "V_Rand vs skimage", m.rand.fscore(), v, 5e-3);
                checked_peer += 1;
            }
            if let Some(v) = row["skimage"]["v_info"].as_f64() {
                close(&name, "V_Info vs skimage", m.v_info, v, 1e-6);
            }
        }
    }
    assert!(checked_peer >= 16);
}
