//! `unet demo`: the whole method on built-in synthetic cells. Generates a training and a
//! test set of touching cells, trains a small U-Net with the paper's recipe (weight maps
//! with separation borders, elastic augmentation, SGD with momentum 0.99), predicts the
//! test images by overlap-tile, scores them (IoU, SEG, Rand error) and writes overlays,
//! the training curves, `report.md` and `summary.json`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use unet_infer::{Predictor, PredictorOptions, argmax_mask, instance_labels, overlay, split_touching};
use unet_io::{BitDepth, ColorMode, LabelKind};
use unet_metrics::{IsbiOptions, SliceInput, evaluate_slice};
use unet_nn::{ModelFile, UnetBackend};
use unet_synth::SynthParams;
use unet_train::TrainConfig;
use unet_train::augment::AugmentConfig;

use crate::cli::DemoArgs;
use crate::commands::predict::{output_name, prepare_out_dir};
use crate::commands::synth::write_set;
use crate::device::{DeviceJob, run_on};

/// Sizes of the demo.
struct Plan {
    train_images: usize,
    test_images: usize,
    size: usize,
    steps: u64,
    width: usize,
}

/// Scores of the test set.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Scores {
    iou: f64,
    seg: f64,
    rand_error: f64,
    pixel_error: f64,
    /// SEG of the plain connected components of the mask (no splitting of touching cells).
    seg_unsplit: f64,
}

struct DemoJob {
    out: PathBuf,
    plan: Plan,
    seed: u64,
    lr: f64,
}

impl DeviceJob for DemoJob {
    type Output = (unet_train::Summary, Scores, Vec<(String, Scores)>);

    fn run<B: UnetBackend>(self, device: B::Device) -> anyhow::Result<Self::Output> {
        let DemoJob { out, plan, seed, lr } = self;
        let data = out.join("data");
        let cfg = TrainConfig {
            images: data.join("train/images"),
            labels: data.join("train/labels"),
            val_images: Some(data.join("test/images")),
            val_labels: Some(data.join("test/labels")),
            steps: plan.steps,
            width: plan.width,
            depth: 3,
            lr,
            seed,
            validate_every: (plan.steps / 4).max(1),
            checkpoint_every: plan.steps,
            augment: AugmentConfig { elastic_sigma: 6.0, ..AugmentConfig::default() },
            ..TrainConfig::default()
        };
        let bar = crate::progress::bar(plan.steps, "training");
        // The output folder was checked (or --force given) before the data was written.
        let opts = unet_train::RunOptions { force: true, ..Default::default() };
        let summary = unet_train::train::<B>(&cfg, &out.join("run"), &opts, device.clone(), &mut |p| {
            bar.set_message(format!("loss {:.4}", p.loss));
            bar.set_position(p.step);
        })?;
        bar.finish_and_clear();
        let model_path = out.join("run/last.safetensors");
        let file = ModelFile::load(&model_path)?;
        let net = file.model::<B>(&device, &model_path)?;
        let opts = PredictorOptions { tile: None, batch_tiles: 1, memory_mb: Some(1024.0) };
        let predictor = Predictor::new(net, file.config.clone(), file.normalization, device, &opts)?;
        let pred_dir = out.join("predictions");
        let mut per_image = Vec::new();
        let (mut pixel, mut rand, mut seg_sum, mut seg_n) =
            (unet_metrics::PixelStats::default(), unet_metrics::RandStats::default(), 0.0, 0);
        let mut seg_plain_sum = 0.0;
        for img_path in unet_io::list_images(&data.join("test/images"))? {
            let raw_stem = img_path.file_stem().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
            let stem = raw_stem.to_string_lossy().into_owned();
            let image = unet_io::read_image(&img_path, ColorMode::Gray)?;
            let mut label_name = raw_stem.clone();
            label_name.push(".png");
            let truth = unet_io::read_label(&data.join("test/labels").join(label_name), LabelKind::Instance)?;
            let probs = predictor.predict(&image, &|_, _| {})?;
            let mask = argmax_mask(&probs);
            // Instances: the network's mask, touching cells split where the mask has a neck.
            let (instances, _) = split_touching(&mask, 0.6, 20);
            let (plain, _) = instance_labels(&mask, 20);
            let seg_plain = unet_metrics::seg_score(&truth.data, &plain.data);
            seg_plain_sum += seg_plain.0;
            let truth_plane = truth.map(|&v| if v != 0 { 1.0 } else { 0.0 });
            // Rand error and SEG compare instances: touching cells of the truth stay apart.
            let input = SliceInput {
                truth: truth_plane,
                truth_instances: Some(truth.data.clone()),
                proposal: unet_infer::foreground(&probs),
                proposal_instances: Some(instances.data.clone()),
            };
            let m = evaluate_slice(
                &input,
                0.5,
                &IsbiOptions { thresholds: vec![0.5], warping: false, warping_radius: None },
            );
            pixel.add(&m.pixel);
            rand.add(&m.rand);
            seg_sum += m.seg_sum;
            seg_n += m.seg_count;
            per_image.push((
                stem.clone(),
                Scores {
                    iou: unet_metrics::iou_from_counts(m.pixel.tp, m.pixel.tp + m.pixel.fp + m.pixel.fn_),
                    seg: m.seg_sum / m.seg_count.max(1) as f64,
                    rand_error: 1.0 - m.rand.fscore(),
                    pixel_error: m.pixel.error(),
                    seg_unsplit: seg_plain.0 / seg_plain.1.max(1) as f64,
                },
            ));
            unet_io::write_image(
                &pred_dir.join(output_name(&raw_stem, "overlay.png")),
                &[overlay(&image, &instances)],
                BitDepth::U8,
                true,
            )?;
            unet_io::write_labels(&pred_dir.join(output_name(&raw_stem, "instances.tif")), &[instances], true)?;
        }
        let total = Scores {
            iou: unet_metrics::iou_from_counts(pixel.tp, pixel.tp + pixel.fp + pixel.fn_),
            seg: seg_sum / seg_n.max(1) as f64,
            rand_error: 1.0 - rand.fscore(),
            pixel_error: pixel.error(),
            seg_unsplit: seg_plain_sum / seg_n.max(1) as f64,
        };
        Ok((summary, total, per_image))
    }
}

fn report(plan: &Plan, s: &unet_train::Summary, total: &Scores, per: &[(String, Scores)], seconds: f64) -> String {
    let mut r = String::from("# unet demo\n\n");
    r.push_str(&format!(
        "Synthetic touching cells: {} training and {} test images of {}x{} px (`data/`).\n\
         Network: the paper's U-Net at depth 3, width {} ({} steps of one tile, tile {} px, weight maps with \
         separation borders, elastic deformation, SGD with momentum 0.99).\n\n",
        plan.train_images, plan.test_images, plan.size, plan.size, plan.width, s.steps, s.tile
    ));
    r.push_str(
        "Instances are the connected components of the predicted mask, with touching cells split by a watershed \
         on the distance transform (`unet predict --instances --split-touching 0.6`); the last column is SEG \
         without that split.\n\n",
    );
    r.push_str("| image | IoU | SEG | Rand error | pixel error | SEG unsplit |\n|---|---|---|---|---|---|\n");
    for (n, v) in per {
        r.push_str(&format!(
            "| {n} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |\n",
            v.iou, v.seg, v.rand_error, v.pixel_error, v.seg_unsplit
        ));
    }
    r.push_str(&format!(
        "| **all** | **{:.4}** | **{:.4}** | **{:.4}** | **{:.4}** | **{:.4}** |\n\n",
        total.iou, total.seg, total.rand_error, total.pixel_error, total.seg_unsplit
    ));
    r.push_str(&format!(
        "Training: {:.1} s, loss {:.4} -> {:.4}. Whole demo: {:.1} s.\n\n",
        s.seconds, s.first_loss, s.final_loss, seconds
    ));
    r.push_str(
        "Files: `run/curves.png` (training curves), `run/metrics.csv`, `run/last.safetensors` (the model), \
         `predictions/*_overlay.png` (predicted cell outlines over the test images), `predictions/*_instances.tif`.\n\n",
    );
    r.push_str("![curves](run/curves.png)\n");
    r
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let plan = if args.quick {
        Plan { train_images: 3, test_images: 2, size: 128, steps: args.steps.unwrap_or(400), width: 8 }
    } else {
        Plan { train_images: 8, test_images: 4, size: 192, steps: args.steps.unwrap_or(2000), width: 16 }
    };
    prepare_out_dir(&args.out, args.force)?;
    let params = SynthParams { width: plan.size, height: plan.size, ..SynthParams::default() };
    let data = args.out.join("data");
    write_set(&data.join("train"), plan.train_images, &params, args.seed * 1000, true)?;
    write_set(&data.join("test"), plan.test_images, &params, args.seed * 1000 + 500, true)?;
    println!(
        "generated {} training and {} test images of synthetic touching cells in {}",
        plan.train_images,
        plan.test_images,
        data.display()
    );
    let (summary, total, per) =
        run_on(&args.device, DemoJob { out: args.out.clone(), plan: Plan { ..plan }, seed: args.seed, lr: args.lr })?;
    let seconds = t0.elapsed().as_secs_f64();
    let json = serde_json::json!({
        "iou": total.iou,
        "seg": total.seg,
        "rand_error": total.rand_error,
        "pixel_error": total.pixel_error,
        "seg_unsplit": total.seg_unsplit,
        "seconds": seconds,
        "train_seconds": summary.seconds,
        "steps": summary.steps,
        "tile": summary.tile,
        "images": per.iter().map(|(n, s)| serde_json::json!({"name": n, "iou": s.iou, "seg": s.seg, "rand_error": s.rand_error, "pixel_error": s.pixel_error})).collect::<Vec<_>>(),
    });
    unet_io::AtomicFile::write_bytes(
        &args.out.join("summary.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
        true,
    )
    .context("cannot write summary.json")?;
    unet_io::AtomicFile::write_bytes(
        &args.out.join("report.md"),
        report(&plan, &summary, &total, &per, seconds).as_bytes(),
        true,
    )
    .context("cannot write report.md")?;
    println!(
        "test set: IoU {:.3}, SEG {:.3} ({:.3} without splitting touching cells), Rand error {:.4}, pixel error {:.4}; {} steps in {:.0} s, total {:.0} s",
        total.iou,
        total.seg,
        total.seg_unsplit,
        total.rand_error,
        total.pixel_error,
        summary.steps,
        summary.seconds,
        seconds
    );
    println!("report: {}", args.out.join("report.md").display());
    Ok(())
}
