//! The training loop: one tile per step (the paper's large-tile, batch-1 regime), samples
//! prepared by a worker thread while the step computes, periodic validation by
//! overlap-tile prediction, `metrics.csv`, checkpoints, `best`/`last` model files, resume.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use unet_infer::{Predictor, PredictorOptions};
use unet_metrics::{IsbiOptions, Plane, SliceInput, evaluate_stack};
use unet_nn::{Geometry, ModelFile, Normalization, UNet, UNetConfig, UnetBackend};

use crate::checkpoint;
use crate::config::TrainConfig;
use crate::data::{LabelledImage, load_labelled, prepare};
use crate::error::{Result, TrainError};
use crate::loss::weighted_cross_entropy;
use crate::optim::Optimizer;
use crate::sampling::{Sample, TrainImage, draw_sample, step_rng};

/// Validation scores at one step: each the best over the thresholds 0, 0.1, ..., 1 (one
/// threshold for the whole validation stack), as `unet eval` and the ISBI challenge score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Validation {
    pub pixel_error: f64,
    pub iou: f64,
    pub rand_error: f64,
    pub v_rand: f64,
    /// The threshold at which `v_rand` is reached (the one `best` is chosen by).
    pub v_rand_threshold: f64,
}

/// What the loop reports after each step.
#[derive(Debug, Clone)]
pub struct Progress {
    pub step: u64,
    pub steps: u64,
    pub loss: f32,
    pub lr: f64,
    pub validation: Option<Validation>,
}

/// The outcome of a run (of this call, when it resumed one).
#[derive(Debug, Clone)]
pub struct Summary {
    /// The step this call started at (0, or the checkpoint's step on resume).
    pub start_step: u64,
    /// The step reached: the configured number, or fewer when stopped early.
    pub steps: u64,
    pub first_loss: f32,
    pub final_loss: f32,
    pub seconds: f64,
    pub tile: usize,
    pub last_validation: Option<Validation>,
    pub best_model: Option<PathBuf>,
    /// Why the run ended before its last step, if it did.
    pub stopped: Option<StopReason>,
}

/// Files of a run folder.
pub struct RunFiles {
    pub dir: PathBuf,
}

impl RunFiles {
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.toml")
    }
    pub fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.csv")
    }
    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join("checkpoint.safetensors")
    }
    pub fn last(&self) -> PathBuf {
        self.dir.join("last.safetensors")
    }
    pub fn best(&self) -> PathBuf {
        self.dir.join("best.safetensors")
    }
    pub fn curves(&self) -> PathBuf {
        self.dir.join("curves.png")
    }
}

const CSV_HEADER: &str =
    "step,loss,lr,steps_per_s,val_pixel_error,val_iou,val_rand_error,val_v_rand,val_v_rand_threshold";

/// The tile for training: as configured, or the largest valid tile up to 572 whose output
/// does not exceed what the images need and whose training memory fits the budget.
pub fn choose_tile(cfg: &TrainConfig, net: &UNetConfig, max_side: usize) -> Result<usize> {
    let geo = Geometry::of(net);
    if cfg.tile != 0 {
        geo.output(cfg.tile)?;
        return Ok(cfg.tile);
    }
    let budget = if cfg.memory_mb > 0.0 { cfg.memory_mb } else { unet_infer::available_memory_mb() * 0.5 };
    let cap = geo.input_for_output(max_side).min(572.max(geo.min_input()));
    let mut best = geo.min_input();
    for t in geo.valid_sizes(geo.min_input(), cap) {
        // Training keeps every activation for the backward pass: about 3x a forward pass.
        if unet_infer::estimate_tile_memory_mb(net, t, 1) * 3.0 <= budget {
            best = t;
        }
    }
    Ok(best)
}

fn to_tensors<B: Backend>(
    s: &Sample,
    c: usize,
    tile: usize,
    out: usize,
    classes: usize,
    device: &B::Device,
) -> (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>) {
    let x = Tensor::from_data(TensorData::new(s.input.clone(), [1, c, tile, tile]), device);
    let n = out * out;
    let mut onehot = vec![0f32; classes * n];
    for (i, &k) in s.classes.iter().enumerate() {
        onehot[(k as usize).min(classes - 1) * n + i] = 1.0;
    }
    let y = Tensor::from_data(TensorData::new(onehot, [1, classes, out, out]), device);
    let w = Tensor::from_data(TensorData::new(s.weights.clone(), [1, 1, out, out]), device);
    (x, y, w)
}

/// Scores a model on validation images: overlap-tile prediction, then the ISBI protocol
/// over the thresholds 0, 0.1, ..., 1 (without the warping errors).
pub fn validate<B: UnetBackend>(
    model: UNet<B>,
    net: &UNetConfig,
    normalization: Normalization,
    tile: usize,
    val: &[LabelledImage],
    device: &B::Device,
) -> Result<Validation> {
    let opts = PredictorOptions {
        tile: Some(tile.max(Geometry::of(net).input_for_output(Geometry::of(net).step()))),
        batch_tiles: 1,
        memory_mb: None,
    };
    let predictor = Predictor::new(model, net.clone(), normalization, device.clone(), &opts)?;
    let mut slices = Vec::with_capacity(val.len());
    for l in val {
        let probs = predictor.predict(&l.image, &|_, _| {})?;
        let (w, h) = l.image.size();
        slices.push(SliceInput {
            truth: Plane::new(w, h, l.cells.iter().map(|&c| if c != 0 { 1.0 } else { 0.0 }).collect()),
            truth_instances: None,
            proposal: Plane::new(w, h, probs.foreground()),
            proposal_instances: None,
        });
    }
    let iopts = IsbiOptions { warping: false, ..IsbiOptions::default() };
    let e = evaluate_stack(&slices, &iopts);
    Ok(Validation {
        pixel_error: e.best.pixel_error,
        iou: e.best.iou,
        rand_error: e.best.rand_error,
        v_rand: e.best.v_rand,
        v_rand_threshold: e.best_thresholds.get("v_rand").copied().unwrap_or(0.5),
    })
}

fn csv_line(step: u64, loss: f32, lr: f64, sps: f64, v: Option<Validation>) -> String {
    let v = v
        .map(|v| {
            format!("{:.6},{:.6},{:.6},{:.6},{:.2}", v.pixel_error, v.iou, v.rand_error, v.v_rand, v.v_rand_threshold)
        })
        .unwrap_or_else(|| ",,,,".into());
    format!("{step},{loss:.6},{lr:.6e},{sps:.4},{v}")
}

/// Keeps the rows of an existing metrics.csv up to `step` (for resume).
fn truncate_csv(path: &Path, step: u64) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter(|l| l.split(',').next().and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s <= step))
        .map(str::to_string)
        .collect()
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    unet_io::AtomicFile::write_bytes(path, text.as_bytes(), true)
        .map_err(|e| TrainError::Write { path: path.to_path_buf(), message: e.to_string() })
}

/// Why a run ended before its last step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The caller's stop flag was raised (Ctrl-C, SIGTERM, a GUI's stop button).
    Requested,
    /// The time limit of [`RunOptions::time_limit`] was reached.
    TimeLimit,
}

/// How a run uses its folder and when it stops early.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Continue the run in the folder from its checkpoint.
    pub resume: bool,
    /// Start a new run in a folder that holds files (the run's files are replaced).
    pub force: bool,
    /// Checked after every step: when raised, the run finishes the step, writes a
    /// checkpoint and returns with [`StopReason::Requested`].
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Training time after which the run stops as `stop` would ([`StopReason::TimeLimit`]).
    pub time_limit: Option<std::time::Duration>,
}

/// Trains as configured into the folder `run` (see [`RunOptions`] for an existing one).
pub fn train<B: UnetBackend>(
    cfg: &TrainConfig,
    run: &Path,
    opts: &RunOptions,
    device: B::Device,
    report: &mut dyn FnMut(&Progress),
) -> Result<Summary> {
    type AD<B> = Autodiff<B>;
    let files = RunFiles { dir: run.to_path_buf() };
    let problems = cfg.problems();
    if !problems.is_empty() {
        return Err(TrainError::Config(problems));
    }
    let resume = opts.resume;
    if !resume && !opts.force && std::fs::read_dir(run).is_ok_and(|mut d| d.next().is_some()) {
        let what = if files.checkpoint().exists() { "holds a run already" } else { "is not empty" };
        return Err(TrainError::RunFolder { path: run.to_path_buf(), what });
    }
    let set = load_labelled(&cfg.images, &cfg.labels, cfg.label_mode)?;
    let val = match (&cfg.val_images, &cfg.val_labels) {
        (Some(i), Some(l)) => load_labelled(i, l, cfg.label_mode)?,
        (None, None) => Vec::new(),
        _ => return Err(TrainError::Data("give both validation images and labels, or neither".into())),
    };
    let (images, normalization, class_weight) = prepare(&set, &cfg.weights, cfg.normalization)?;
    tracing::info!(
        "{} training image(s), class weights {:?}, {} validation image(s)",
        images.len(),
        class_weight,
        val.len()
    );
    let in_channels = images[0].channels;
    let net = cfg.net(in_channels);
    net.validate()?;
    let max_side = images.iter().map(|i| i.width.max(i.height)).max().unwrap_or(1);
    let tile = choose_tile(cfg, &net, max_side)?;
    let out = Geometry::of(&net).output(tile)?;
    tracing::info!("tile {tile} -> {out}, {} parameters", net.parameter_count());

    let mut opt = Optimizer::<AD<B>>::new(cfg.optimizer, cfg.momentum, cfg.weight_decay);
    let mut model: UNet<AD<B>> = net.init(cfg.seed, &device)?;
    let (mut start, mut best) = (0u64, None::<f64>);
    let mut csv_rows = Vec::new();
    if resume {
        let r = checkpoint::load::<AD<B>>(&files.checkpoint(), &mut opt, &device)?;
        model = model
            .load_named_tensors(&r.model_tensors)
            .map_err(|m| TrainError::Checkpoint { path: files.checkpoint(), message: m })?;
        start = r.step;
        best = r.best;
        if start >= cfg.steps {
            return Err(TrainError::Data(format!(
                "{}: the run is at step {start} already, and it is set to {} steps; raise the number of steps to \
                 train on",
                run.display(),
                cfg.steps
            )));
        }
        csv_rows = truncate_csv(&files.metrics(), start);
        tracing::info!("resuming at step {start}");
    }
    std::fs::create_dir_all(run).map_err(|e| TrainError::Write { path: run.to_path_buf(), message: e.to_string() })?;
    if !resume {
        // A forced new run: no file of an earlier run may pass for this one's.
        for f in [files.checkpoint(), files.best(), files.last(), files.curves()] {
            if f.exists() {
                std::fs::remove_file(&f).map_err(|e| TrainError::Write { path: f.clone(), message: e.to_string() })?;
            }
        }
    }
    // Absolute paths, so that the run resumes from any working directory.
    let config_toml = cfg.with_absolute_paths().to_toml();
    write_text(&files.config(), &config_toml)?;
    let mut csv = {
        let path = files.metrics();
        let mut f = std::fs::File::create(&path)
            .map_err(|e| TrainError::Write { path: path.clone(), message: e.to_string() })?;
        let mut text = format!("{CSV_HEADER}\n");
        for r in &csv_rows {
            text.push_str(r);
            text.push('\n');
        }
        f.write_all(text.as_bytes()).map_err(|e| TrainError::Write { path: path.clone(), message: e.to_string() })?;
        f
    };

    // The worker prepares the samples of the coming steps while the current one computes.
    let (tx, rx) = sync_channel::<Sample>(2);
    let worker = {
        let images: Vec<TrainImage> = images;
        let aug = cfg.augment.clone();
        let (seed, steps) = (cfg.seed, cfg.steps);
        std::thread::spawn(move || {
            for step in start..steps {
                let mut rng = step_rng(seed, step, 0);
                if tx.send(draw_sample(&images, tile, out, &aug, &mut rng)).is_err() {
                    break;
                }
            }
        })
    };

    let save_model = |model: &UNet<AD<B>>, path: &Path, step: u64| -> Result<()> {
        let mut f = ModelFile::from_model(&model.valid(), &net, normalization);
        f.info.insert("steps".into(), step.to_string());
        f.info.insert("tile".into(), tile.to_string());
        f.info.insert("seed".into(), cfg.seed.to_string());
        f.save(path, true).map_err(TrainError::from)
    };

    let t0 = Instant::now();
    let (mut first_loss, mut last_loss) = (f32::NAN, f32::NAN);
    let (mut window_loss, mut window_n, mut window_t) = (0.0f64, 0u64, Instant::now());
    let mut last_validation = None;
    let (mut saved, mut stopped, mut end) = (resume.then_some(start), None, start);
    for step in start..cfg.steps {
        let sample = match rx.recv() {
            Ok(s) => s,
            Err(_) => {
                // The worker ended early: it panicked; report its message.
                let cause = match worker.join() {
                    Err(p) => p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "unknown cause".into()),
                    Ok(()) => "it ended early".into(),
                };
                return Err(TrainError::Data(format!("the data worker stopped at step {step}: {cause}")));
            }
        };
        let (x, y, w) = to_tensors::<AD<B>>(&sample, in_channels, tile, out, net.classes, &device);
        let mut drop_rng = step_rng(cfg.seed, step, 1);
        let logits = model.forward_train(x, &mut drop_rng);
        let loss = weighted_cross_entropy(logits, y, w);
        let value: f32 = loss.clone().into_scalar().elem();
        let lr = cfg.schedule.lr(cfg.lr, step, cfg.steps);
        if !value.is_finite() {
            drop(rx);
            let _ = worker.join();
            return Err(TrainError::NotFinite { step, value, lr, run: run.to_path_buf(), checkpoint: saved });
        }
        if first_loss.is_nan() {
            first_loss = value;
        }
        last_loss = value;
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = opt.step(lr, model, grads);
        let done = step + 1;
        end = done;
        window_loss += value as f64;
        window_n += 1;
        stopped = if opts.stop.as_ref().is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed)) {
            Some(StopReason::Requested)
        } else if opts.time_limit.is_some_and(|l| t0.elapsed() >= l) {
            Some(StopReason::TimeLimit)
        } else {
            None
        };
        let last = done == cfg.steps || stopped.is_some();
        let mut validation = None;
        if !val.is_empty() && (done % cfg.validate_every.max(1) == 0 || last) {
            let v = validate::<B>(model.valid(), &net, normalization, tile, &val, &device)?;
            if best.is_none_or(|b| v.v_rand > b) {
                best = Some(v.v_rand);
                save_model(&model, &files.best(), done)?;
            }
            validation = Some(v);
            last_validation = Some(v);
        }
        if done % cfg.log_every.max(1) == 0 || validation.is_some() || last {
            let sps = window_n as f64 / window_t.elapsed().as_secs_f64().max(1e-9);
            let line = csv_line(done, (window_loss / window_n.max(1) as f64) as f32, lr, sps, validation);
            writeln!(csv, "{line}").map_err(|e| TrainError::Write { path: files.metrics(), message: e.to_string() })?;
            (window_loss, window_n, window_t) = (0.0, 0, Instant::now());
            if validation.is_some() || last {
                crate::curves::write_curves(&files.metrics(), &files.curves())
                    .map_err(|message| TrainError::Write { path: files.curves(), message })?;
            }
        }
        if done % cfg.checkpoint_every.max(1) == 0 || last {
            checkpoint::save(&files.checkpoint(), &model, &opt, done, best, &config_toml)?;
            save_model(&model, &files.last(), done)?;
            saved = Some(done);
        }
        report(&Progress { step: done, steps: cfg.steps, loss: value, lr, validation });
        if stopped.is_some() {
            break;
        }
    }
    drop(rx);
    let _ = worker.join();
    Ok(Summary {
        start_step: start,
        steps: end,
        first_loss,
        final_loss: last_loss,
        seconds: t0.elapsed().as_secs_f64(),
        tile,
        last_validation,
        best_model: files.best().exists().then(|| files.best()),
        stopped,
    })
}
