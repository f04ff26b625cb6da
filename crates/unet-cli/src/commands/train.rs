//! `unet train`: resolves the configuration (TOML file, then command-line options), runs
//! training on the chosen device with a progress bar, and prints a summary.

use std::path::PathBuf;

use anyhow::Context;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use unet_nn::UnetBackend;
use unet_train::{RunOptions, StopReason, TrainConfig};

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
    set!(ema);
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
    let problems = cfg.problems();
    if !problems.is_empty() {
        let source =
            args.config.as_ref().map(|p| format!(" (from {} and the options)", p.display())).unwrap_or_default();
        return usage(format!(
            "invalid settings{source}: {}; fix them in the config file or with the options of the same name (--lr, ...)",
            problems.join("; ")
        ));
    }
    Ok((cfg, run, resume))
}

struct TrainJob {
    cfg: TrainConfig,
    run: PathBuf,
    opts: RunOptions,
}

/// The signal that asked the run to stop (0 = none yet).
static STOP_SIGNAL: AtomicUsize = AtomicUsize::new(0);

/// SIGINT and SIGTERM (what Slurm and Kubernetes send before a kill) raise the run's stop
/// flag: it finishes the step and writes a checkpoint. A second signal exits at once.
fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Registered first, so it runs before the flag is raised: only a second signal exits.
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&flag))
            .context("cannot install the signal handlers")?;
        // Safety: the action only stores to an atomic, which is async-signal-safe.
        unsafe { signal_hook::low_level::register(sig, move || STOP_SIGNAL.store(sig as usize, Ordering::SeqCst)) }
            .context("cannot install the signal handlers")?;
        signal_hook::flag::register(sig, Arc::clone(&flag)).context("cannot install the signal handlers")?;
    }
    Ok(flag)
}

impl DeviceJob for TrainJob {
    type Output = unet_train::Summary;

    fn run<B: UnetBackend>(self, device: B::Device) -> anyhow::Result<unet_train::Summary> {
        let bar = crate::progress::bar(self.cfg.steps, "training");
        let mut started = false;
        let summary = unet_train::train::<B>(&self.cfg, &self.run, &self.opts, device, &mut |p| {
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
    let time_limit = match args.time_limit {
        None => None,
        Some(m) if m.is_finite() && m > 0.0 && m < 1e7 => Some(std::time::Duration::from_secs_f64(m * 60.0)),
        Some(m) => return usage(format!("--time-limit {m}: give a positive number of minutes")),
    };
    let device = cfg.device.clone();
    let opts = RunOptions { resume, force: args.force, stop: Some(stop_on_signals()?), time_limit };
    let s = match run_on(&device, TrainJob { cfg, run: run.clone(), opts }) {
        Err(e) => {
            return match e.downcast_ref::<unet_train::TrainError>() {
                Some(unet_train::TrainError::RunFolder { path, what }) => usage(format!(
                    "{}: {what}; continue it with --resume {0}, choose another --out, or pass --force to replace its \
                     files",
                    path.display()
                )),
                Some(unet_train::TrainError::Config(p)) => usage(format!("invalid settings: {}", p.join("; "))),
                _ => Err(e),
            };
        }
        Ok(s) => s,
    };
    let done = s.steps - s.start_step;
    println!(
        "trained steps {}..{} ({done} steps) in {:.1} s ({:.2} steps/s), tile {}; loss {:.4} -> {:.4}",
        s.start_step,
        s.steps,
        s.seconds,
        done as f64 / s.seconds.max(1e-9),
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
    if let Some(reason) = s.stopped {
        let why = match reason {
            StopReason::Requested => "stopped on request",
            StopReason::TimeLimit => "stopped at the time limit",
        };
        eprintln!("{why} at step {} with a checkpoint; continue with: unet train --resume {}", s.steps, run.display());
        if reason == StopReason::Requested {
            std::process::exit(128 + STOP_SIGNAL.load(Ordering::SeqCst).max(2) as i32);
        }
    }
    Ok(())
}
