//! `unet predict`: overlap-tile prediction of images of any size, with probability maps,
//! masks, instance labels and overlays written per input.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use unet_infer::{
    Predictor, PredictorOptions, Probabilities, argmax_mask, instance_labels, overlay, split_touching, threshold_mask,
};
use unet_io::{BitDepth, ColorMode, Image, Label, SampleKind};
use unet_nn::{ModelFile, UnetBackend};

use crate::cli::{PredictArgs, SaveProbs};
use crate::device::{DeviceJob, run_on};
use crate::usage::usage;

/// Every input file, expanded from files and folders.
fn inputs(paths: &[PathBuf]) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stems = HashSet::new();
    for p in paths {
        for f in unet_io::list_images(p)? {
            let stem = f.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            if !stems.insert(stem.clone()) {
                bail!(
                    "{}: another input has the stem '{stem}' and their outputs would collide; rename one",
                    f.display()
                );
            }
            out.push((stem, f));
        }
    }
    Ok(out)
}

/// Refuses an output folder that holds files, unless `force`.
pub fn prepare_out_dir(dir: &Path, force: bool) -> anyhow::Result<()> {
    if dir.exists() {
        let busy = std::fs::read_dir(dir)
            .with_context(|| format!("{}: cannot read the output folder", dir.display()))?
            .next()
            .is_some();
        if busy && !force {
            bail!(
                "{}: the output folder is not empty; pass --force to write into it (existing outputs are replaced)",
                dir.display()
            );
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the output folder", dir.display()))
}

struct PredictJob {
    args: PredictArgs,
    model: ModelFile,
    inputs: Vec<(String, PathBuf)>,
}

impl DeviceJob for PredictJob {
    type Output = ();

    fn run<B: UnetBackend>(self, device: B::Device) -> anyhow::Result<()> {
        let PredictJob { args, model, inputs } = self;
        let net = model.model::<B>(&device, &args.model)?;
        let opts = PredictorOptions { tile: args.tile, batch_tiles: args.batch_tiles, memory_mb: args.memory_mb };
        let predictor = match Predictor::new(net, model.config.clone(), model.normalization, device, &opts) {
            Ok(p) => p,
            Err(e @ unet_infer::InferError::Nn(_)) | Err(e @ unet_infer::InferError::Tile(_)) => {
                return usage(format!("{e} (--tile)"));
            }
            Err(e) => return Err(e.into()),
        };
        tracing::info!(
            "tile {} px, {} tile(s) per batch{}",
            predictor.tile(),
            args.batch_tiles.max(1),
            if args.tta { ", 8-fold TTA" } else { "" }
        );
        let mode = if model.config.in_channels == 1 { ColorMode::Gray } else { ColorMode::Keep };
        let bar = crate::progress::bar(inputs.len() as u64, "predicting");
        for (stem, path) in &inputs {
            let t0 = Instant::now();
            let pages = unet_io::read_stack(path, mode)?;
            let mut probs = Vec::with_capacity(pages.len());
            for page in &pages {
                let p = if args.tta {
                    predictor.predict_tta(page, &|_, _| {})
                } else {
                    predictor.predict(page, &|_, _| {})
                };
                probs.push(p.with_context(|| format!("{}: cannot predict", path.display()))?);
            }
            write_outputs(&args, stem, &pages, &probs)?;
            bar.inc(1);
            let (w, h) = (pages[0].width, pages[0].height);
            bar.suspend(|| {
                tracing::info!("{}: {}x{}x{} in {:.2} s", path.display(), w, h, pages.len(), t0.elapsed().as_secs_f64())
            });
        }
        bar.finish_and_clear();
        Ok(())
    }
}

fn write_outputs(args: &PredictArgs, stem: &str, pages: &[Image], probs: &[Probabilities]) -> anyhow::Result<()> {
    let out = |suffix: &str| args.out.join(format!("{stem}_{suffix}"));
    let (w, h) = (pages[0].width, pages[0].height);
    let classes = probs[0].classes;
    let plane = |data: Vec<f32>| Image::gray(w, h, SampleKind::F32, data);
    match args.save_probs {
        SaveProbs::Foreground => {
            let fg: Vec<Image> = probs.iter().map(|p| plane(p.foreground())).collect();
            unet_io::write_image(&out("prob.tif"), &fg, BitDepth::F32, args.force)?;
        }
        SaveProbs::All => {
            let all: Vec<Image> = probs.iter().flat_map(|p| (0..classes).map(|k| plane(p.class(k).to_vec()))).collect();
            unet_io::write_image(&out("prob.tif"), &all, BitDepth::F32, args.force)?;
        }
        SaveProbs::None => {}
    }
    let masks: Vec<Vec<u32>> = probs
        .iter()
        .map(|p| match args.threshold {
            Some(t) => threshold_mask(&p.foreground(), t),
            None => argmax_mask(p),
        })
        .collect();
    // Binary masks are written 0/255 to be visible; class masks keep their indices.
    let mask_scale = if classes == 2 || args.threshold.is_some() { 255.0 } else { 1.0 };
    let mask_imgs: Vec<Image> = masks
        .iter()
        .map(|m| Image::gray(w, h, SampleKind::U8, m.iter().map(|&v| v as f32 * mask_scale).collect()))
        .collect();
    let mask_name = if pages.len() == 1 { "mask.png" } else { "mask.tif" };
    unet_io::write_image(&out(mask_name), &mask_imgs, BitDepth::U8, args.force)?;
    let mut outline_labels = masks.clone();
    if args.instances {
        let labels: Vec<Label> = masks
            .iter()
            .map(|m| {
                let fg: Vec<u32> = m.iter().map(|&v| u32::from(v != 0)).collect();
                let data = match args.split_touching {
                    Some(ratio) => split_touching(&fg, w, h, ratio, args.min_size).0,
                    None => instance_labels(&fg, w, h, args.min_size).0,
                };
                Label { width: w, height: h, data }
            })
            .collect();
        unet_io::write_labels(&out("instances.tif"), &labels, args.force)?;
        outline_labels = labels.into_iter().map(|l| l.data).collect();
    }
    if !args.no_overlay {
        for (k, (page, labels)) in pages.iter().zip(&outline_labels).enumerate() {
            let name = if pages.len() == 1 { "overlay.png".to_string() } else { format!("{k:03}_overlay.png") };
            unet_io::write_image(&out(&name), &[overlay(page, labels)], BitDepth::U8, args.force)?;
        }
    }
    Ok(())
}

pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    if args.inputs.is_empty() {
        return usage("give at least one input image or folder");
    }
    if let Some(t) = args.threshold
        && !(0.0..1.0).contains(&t)
    {
        return usage("--threshold must be in [0, 1)");
    }
    if let Some(r) = args.split_touching
        && !(r > 0.0 && r < 1.0)
    {
        return usage("--split-touching must be in (0, 1)");
    }
    let model = ModelFile::load(&args.model).with_context(|| "cannot load the model")?;
    let inputs = inputs(&args.inputs)?;
    prepare_out_dir(&args.out, args.force)?;
    let device = args.device.clone();
    run_on(&device, PredictJob { args, model, inputs })
}
