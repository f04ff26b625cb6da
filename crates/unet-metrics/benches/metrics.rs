//! Time per 512x512 pair for each metric, on ISBI 2012 labels (`$UNET_DATA`, default
//! `../shared/data`): the truth against a blurred, shifted probability map of itself.
//!
//!     cargo bench -p unet-metrics --bench metrics

use std::path::PathBuf;
use std::time::Instant;

use unet_metrics::*;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time<T>(label: &str, reps: usize, mut f: impl FnMut() -> T) {
    f();
    let runs: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64()
        })
        .collect();
    println!("{label:<44} {:>9.2} ms", median(runs) * 1e3);
}

fn main() {
    let data = std::env::var("UNET_DATA").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("../../../shared/data"));
    let path = data.join("isbi2012/train/labels/00.png");
    let img = unet_io::read_image(&path, unet_io::ColorMode::Gray).unwrap_or_else(|e| panic!("{e} (set UNET_DATA)"));
    let (w, h) = (img.width, img.height);
    let truth = Plane::new(w, h, img.data.iter().map(|&v| if v > 127.0 { 1.0 } else { 0.0 }).collect());
    // Probability map: truth shifted by (2, 1) px and box-blurred (radius 2).
    let shifted: Vec<f32> = (0..w * h).map(|i| truth.data[((i / w + h - 1) % h) * w + (i % w + w - 2) % w]).collect();
    let blur: Vec<f32> = (0..w * h)
        .map(|i| {
            let (x, y) = ((i % w) as isize, (i / w) as isize);
            let mut s = 0.0;
            for dy in -2..=2isize {
                for dx in -2..=2isize {
                    let (xx, yy) = ((x + dx).clamp(0, w as isize - 1), (y + dy).clamp(0, h as isize - 1));
                    s += shifted[yy as usize * w + xx as usize];
                }
            }
            s / 25.0
        })
        .collect();
    let prop = Plane::new(w, h, blur);
    let th = 0.5;
    let (tg, pg) = (binarize(&truth, th), binarize(&prop, th));
    let (tb, pb) = (tg.data.clone(), pg.data.clone());
    let tl = label_components(&tg, Connectivity::Four).0.data;
    let pl = label_components(&pg, Connectivity::Four).0.data;
    println!("512x512 pair (ISBI 2012 train label 00 vs shifted, blurred copy), threshold {th}, median of 5:");
    time("pixel error + F-score", 5, || PixelStats::new(&tb, &pb).fscore());
    time("connected components (4), both images", 5, || {
        (label_components(&tg, Connectivity::Four), label_components(&pg, Connectivity::Four))
    });
    time("Rand (unthinned, incl. components)", 5, || {
        let t = label_components(&tg, Connectivity::Four).0.data;
        let p = label_components(&pg, Connectivity::Four).0.data;
        RandStats::foreground_restricted(&t, &p).fscore()
    });
    time("border thinning (watershed)", 5, || thin_borders(&pg));
    time("V_Rand after thinning (incl. thinning)", 5, || {
        RandStats::foreground_restricted(&tl, &thin_borders(&pg).data).fscore()
    });
    time("V_Info after thinning (incl. thinning)", 5, || v_info(&tl, &thin_borders(&pg).data));
    time("warping error + defect classification", 5, || simple_point_warp(&truth, &prop, th, None).counts);
    time("warping, classification radius 20", 5, || simple_point_warp(&truth, &prop, th, Some(20)).counts);
    time("IoU + Dice", 5, || (iou(&tb, &pb), dice(&tb, &pb)));
    time("SEG (instances = components)", 5, || seg_score(&tl, &pl));
    time("AP@0.5:0.95", 5, || instance_match(&tl, &pl).mean_ap());
    let input =
        SliceInput { truth: truth.clone(), truth_instances: None, proposal: prop.clone(), proposal_instances: None };
    time("all metrics, one threshold (evaluate_slice)", 5, || evaluate_slice(&input, th, &IsbiOptions::default()));
}
