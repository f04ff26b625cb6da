//! `unet train`: resolves the configuration (TOML file, then command-line options), runs
//! training on the chosen device with a progress bar, and prints a summary.

use std::path::PathBuf;

use anyhow::Context;
use unet_nn::UnetBackend;
use unet_train::TrainConfig;

use crate::cli::TrainArgs;
use crate::device::{DeviceJob, run_on};
use crate::usage::usage;

fn parse_enum<T: serde::de::DeserializeOwned>(flag: &str, value: &str) -> anyhow::Result<T> {
    match serde_json::from_value(serde_json::Value::String(value.to_string())) {
        Ok(v) => Ok(v),
        Err(_) => usage(format!("{flag}: '{value}' is not a valid choice")),
    }
}

/// The configuration: the run's own on resume, else the TOML file, then the options.
fn resolve(args: &TrainArgs) -> anyhow::Result<(TrainConfig, PathBuf, bool)> {
    let (mut cfg, run, resume) = match (&args.resume, &args.out) {
        (Some(dir), _) => {
            let path = dir.join("config.toml");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("{}: cannot read the run's config; is this a run folder?", path.display()))?;
            (TrainConfig::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?, dir.clone(), true)
        }
        (None, Some(out)) => {
            let cfg = match &args.config {
                Some(p) => {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("{}: cannot read the config file", p.display()))?;
                    match TrainConfig::from_toml(&text) {
                        Ok(c) => c,
                        Err(e) => return usage(format!("{}: {e}", p.display())),
                    }
                }
                None => TrainConfig::default(),
            };
            (cfg, out.clone(), false)
        }
        (None, None) => return usage("give --out RUN_DIR (or --resume RUN_DIR)"),
    };
    macro_rules! set {
        ($field:ident) => {
            if let Some(v) = &args.$field {
                cfg.$field = v.clone().into();
            }
        };
    }
    set!(images);
    set!(labels);
    set!(steps);
    set!(width);
    set!(depth);
    set!(tile);
    set!(lr);
    set!(validate_every);
    set!(checkpoint_every);
    set!(seed);
    set!(device);
    if args.val_images.is_some() {
        cfg.val_images = args.val_images.clone();
    }
    if args.val_labels.is_some() {
        cfg.val_labels = args.val_labels.clone();
    }
    if let Some(v) = &args.optimizer {
        cfg.optimizer = parse_enum("--optimizer", v)?;
    }
    if let Some(v) = &args.schedule {
        cfg.schedule = parse_enum("--schedule", v)?;
    }
    if let Some(v) = &args.label_mode {
        cfg.label_mode = parse_enum("--label-mode", v)?;
    }
    if cfg.images.as_os_str().is_empty() || cfg.labels.as_os_str().is_empty() {
        return usage("give --images and --labels (or set them in --config)");
    }
    if cfg.lr.is_nan() || cfg.lr <= 0.0 {
        return usage("--lr must be positive");
    }
    Ok((cfg, run, resume))
}

struct TrainJob {
    cfg: TrainConfig,
    run: PathBuf,
    resume: bool,
}

impl DeviceJob for TrainJob {
    type Output = unet_train::Summary;

    fn run<B: UnetBackend>(self, device: B::Device) -> anyhow::Result<unet_train::Summary> {
        let bar = crate::progress::bar(self.cfg.steps, "training");
        let mut started = false;
        let summary = unet_train::train::<B>(&self.cfg, &self.run, self.resume, device, &mut |p| {
            if !started {
                bar.set_position(p.step.saturating_sub(1));
                bar.reset_eta();
                started = true;
            }
            let val = p
                .validation
                .map(|v| format!(", val IoU {:.3}, Rand err {:.4}", v.iou, v.rand_error))
                .unwrap_or_default();
            bar.set_message(format!("loss {:.4}{val}", p.loss));
            bar.set_position(p.step);
            if p.validation.is_some() {
                bar.suspend(|| tracing::info!("step {}: loss {:.4}{val}", p.step, p.loss));
            }
        });
        bar.finish_and_clear();
        Ok(summary?)
    }
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let (cfg, run, resume) = resolve(&args)?;
    let device = cfg.device.clone();
    let s = run_on(&device, TrainJob { cfg, run: run.clone(), resume })?;
    println!(
        "trained {} steps in {:.1} s ({:.2} steps/s), tile {}; loss {:.4} -> {:.4}",
        s.steps,
        s.seconds,
        s.steps as f64 / s.seconds.max(1e-9),
        s.tile,
        s.first_loss,
        s.final_loss
    );
    if let Some(v) = s.last_validation {
        println!(
            "validation: pixel error {:.4}, IoU {:.4}, Rand error {:.4}, V_Rand {:.4}",
            v.pixel_error, v.iou, v.rand_error, v.v_rand
        );
    }
    println!("model: {}", run.join("last.safetensors").display());
    Ok(())
}
