//! `unet weights`: the paper's weight maps of label images, as float32 TIFF and as a
//! colour-mapped PNG to look at. The class balance is computed over all given labels.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::bail;

use unet_io::{BitDepth, Image, LabelKind, SampleKind};
use unet_train::LabelMode;
use unet_train::weights::{ClassCounts, WeightParams, weight_map};

use crate::cli::WeightsArgs;
use crate::usage::usage;

/// A perceptually ordered colour ramp (black, purple, red, orange, yellow) for `t` in [0, 1].
pub fn heat(t: f32) -> [f32; 3] {
    const STOPS: [[f32; 3]; 5] =
        [[0.0, 0.0, 4.0], [87.0, 16.0, 110.0], [188.0, 55.0, 84.0], [249.0, 142.0, 9.0], [252.0, 255.0, 164.0]];
    let x = t.clamp(0.0, 1.0) * 4.0;
    let i = (x.floor() as usize).min(3);
    let f = x - i as f32;
    [0, 1, 2].map(|c| STOPS[i][c] * (1.0 - f) + STOPS[i + 1][c] * f)
}

pub fn run(args: WeightsArgs) -> anyhow::Result<()> {
    let mode: LabelMode = match serde_json::from_value(serde_json::Value::String(args.label_mode.clone())) {
        Ok(m) => m,
        Err(_) => return usage("--label-mode: choose auto, binary or instance"),
    };
    if args.sigma.is_nan() || args.sigma <= 0.0 || args.w0.is_nan() || args.w0 < 0.0 {
        return usage("--sigma must be positive and --w0 not negative");
    }
    let files = unet_io::list_images(&args.labels)?;
    let single_file_out = args.labels.is_file() && args.out.extension().is_some_and(|e| e == "tif" || e == "tiff");
    // The outputs of every label file, named on the stem's raw bytes (`x\xff.png` and
    // `x\xfe.png` keep apart), all checked before anything is written.
    let mut targets: HashMap<PathBuf, PathBuf> = HashMap::new();
    let mut by_stem: HashMap<Vec<u8>, &PathBuf> = HashMap::new();
    for f in &files {
        if let Some(other) = by_stem.insert(unet_io::stem_key(f), f) {
            bail!(
                "{}: has the stem of {} as well, and their weight maps would collide; rename one",
                f.display(),
                other.display()
            );
        }
        let tif = if single_file_out {
            args.out.clone()
        } else {
            args.out.join(crate::commands::predict::output_name(f.file_stem().unwrap_or_default(), "weights.tif"))
        };
        unet_io::check_writable(&tif, args.force)?;
        unet_io::check_writable(&tif.with_extension("png"), args.force)?;
        targets.insert(f.clone(), tif);
    }
    let mut cells = Vec::new();
    let mut counts = ClassCounts::default();
    for f in &files {
        for l in unet_io::read_label_stack(f, LabelKind::Instance)? {
            let sep = unet_train::data::label_cells(&l, mode, f)?;
            counts.add(&sep.data.iter().map(|&c| u32::from(c != 0)).collect::<Vec<_>>());
            cells.push((f.clone(), sep));
        }
    }
    let mut wc = counts.balance();
    wc.resize(2, 1.0);
    tracing::info!("class weights over {} label image(s): background {:.3}, cells {:.3}", cells.len(), wc[0], wc[1]);
    let params = WeightParams { w0: args.w0, sigma: args.sigma };
    let mut by_file: Vec<(PathBuf, Vec<Image>)> = Vec::new();
    for (f, sep) in &cells {
        let img = Image { grid: weight_map(sep, &wc, &params), kind: SampleKind::F32 };
        match by_file.last_mut() {
            Some((p, pages)) if p == f => pages.push(img),
            _ => by_file.push((f.clone(), vec![img])),
        }
    }
    for (f, pages) in by_file {
        let tif = &targets[&f];
        unet_io::write_image(tif, &pages, BitDepth::F32, args.force)?;
        let max = (wc[0].max(wc[1]) as f64 + args.w0) as f32;
        let p = &pages[0];
        let n = p.width * p.height;
        let mut rgb = vec![0f32; 3 * n];
        for (i, &v) in p.data.iter().enumerate() {
            let c = heat(v / max);
            (0..3).for_each(|k| rgb[k * n + i] = c[k]);
        }
        let png = tif.with_extension("png");
        unet_io::write_image(&png, &[Image::new(p.width, p.height, 3, SampleKind::U8, rgb)], BitDepth::U8, args.force)?;
        println!("{}", tif.display());
    }
    Ok(())
}
