//! Training from folders into a run folder: the types a run reports ([`Progress`],
//! [`Validation`], [`Summary`]), validation by overlap-tile prediction and the ISBI
//! protocol, the tile choice, and [`RunFolder`], the observer that keeps `config.toml`,
//! `metrics.csv`, `curves.png`, checkpoints and the `best`/`last` model files of a
//! [`Session`]. [`train`] puts them together, as `unet train` runs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use unet_infer::{Predictor, PredictorOptions};
use unet_metrics::{IsbiOptions, SliceInput, evaluate_stack};
use unet_nn::{Geometry, Normalization, UNet, UNetConfig, UnetBackend};

use crate::config::TrainConfig;
use crate::data::{LabelledImage, load_labelled};
use crate::error::{Result, TrainError};
use crate::session::{Observer, Session, StopControl};

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
    /// Steps done.
    pub step: u64,
    /// Steps in the schedule.
    pub steps: u64,
    pub loss: f32,
    pub lr: f64,
    pub validation: Option<Validation>,
    /// The validation is the best so far.
    pub improved: bool,
    /// The run ends (or stops) after this step.
    pub last: bool,
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

/// Memory (MB) a training step on one `tile` needs: every activation is kept for the
/// backward pass, about 3x a forward pass.
pub fn training_memory_mb(net: &UNetConfig, tile: usize) -> f64 {
    unet_infer::estimate_tile_memory_mb(net, tile, 1) * 3.0
}

/// Refuses a tile whose training step needs more memory than `available_mb`, naming the
/// largest valid tile that fits.
pub fn check_tile_memory(net: &UNetConfig, tile: usize, available_mb: f64) -> Result<()> {
    let need = training_memory_mb(net, tile);
    if need <= available_mb {
        return Ok(());
    }
    let geo = Geometry::of(net);
    // The memory grows with the tile: bisect over the valid sizes min + k * step below it.
    let (min, step) = (geo.min_input(), geo.step());
    let fits = if tile < min || training_memory_mb(net, min) > available_mb {
        None
    } else {
        let (mut lo, mut hi) = (0usize, (tile - min) / step);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if training_memory_mb(net, min + mid * step) <= available_mb { lo = mid } else { hi = mid - 1 }
        }
        Some(min + lo * step)
    };
    let fix = match fits {
        Some(t) => format!("the largest tile that fits is {t}"),
        None => "not even the smallest tile fits; free memory or choose a smaller width".into(),
    };
    Err(TrainError::Config(vec![format!(
        "tile = {tile}: a training step needs about {need:.0} MB but {available_mb:.0} MB are available; {fix}"
    )]))
}

/// The tile for training: as configured (checked against the memory available), or the
/// largest valid tile up to 572 whose output does not exceed what the images need and
/// whose training memory fits the budget.
pub fn choose_tile(cfg: &TrainConfig, net: &UNetConfig, max_side: usize) -> Result<usize> {
    let geo = Geometry::of(net);
    if cfg.tile != 0 {
        geo.output(cfg.tile)?;
        let available = if cfg.memory_mb > 0.0 { cfg.memory_mb } else { unet_infer::available_memory_mb() };
        check_tile_memory(net, cfg.tile, available)?;
        return Ok(cfg.tile);
    }
    let budget = if cfg.memory_mb > 0.0 { cfg.memory_mb } else { unet_infer::available_memory_mb() * 0.5 };
    let cap = geo.input_for_output(max_side).min(572.max(geo.min_input()));
    let mut best = geo.min_input();
    for t in geo.valid_sizes(geo.min_input(), cap) {
        if training_memory_mb(net, t) <= budget {
            best = t;
        }
    }
    Ok(best)
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
        slices.push(SliceInput {
            truth: l.cells.map(|&c| if c != 0 { 1.0 } else { 0.0 }),
            truth_instances: None,
            proposal: unet_infer::foreground(&probs),
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

/// The run folder as an observer of a [`Session`]: `config.toml` (the resolved settings,
/// with absolute paths), `metrics.csv` (10-step loss means, validations), `curves.png`,
/// `checkpoint.safetensors` and `last.safetensors` at every checkpoint, `best.safetensors`
/// at every better validation.
pub struct RunFolder<'a> {
    files: RunFiles,
    csv: std::fs::File,
    window: (f64, u64, Instant),
    report: &'a mut dyn FnMut(&Progress),
}

impl<'a> RunFolder<'a> {
    /// Opens `dir` for a session: a new run needs an empty or missing folder unless
    /// `opts.force` (then the files of an earlier run are removed); on resume the
    /// session continues from the folder's checkpoint and `metrics.csv` keeps its rows up
    /// to that step. `report` is called after every step.
    pub fn open<B: UnetBackend>(
        dir: &Path,
        opts: &RunOptions,
        session: &mut Session<B>,
        report: &'a mut dyn FnMut(&Progress),
    ) -> Result<Self> {
        let files = RunFiles { dir: dir.to_path_buf() };
        let steps = session.config().steps;
        let mut rows = Vec::new();
        if opts.resume {
            session.restore(&files.checkpoint())?;
            let start = session.steps_done();
            if start >= steps {
                return Err(TrainError::Data(format!(
                    "{}: the run is at step {start} already, and it is set to {steps} steps; raise the number of \
                     steps to train on",
                    dir.display()
                )));
            }
            rows = truncate_csv(&files.metrics(), start);
            tracing::info!("resuming at step {start}");
        } else {
            check_new_run_folder(dir, opts.force)?;
        }
        let write_err =
            |path: &Path, e: std::io::Error| TrainError::Write { path: path.to_path_buf(), message: e.to_string() };
        std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
        if !opts.resume {
            // A forced new run: no file of an earlier run may pass for this one's.
            for f in [files.checkpoint(), files.best(), files.last(), files.curves()] {
                if f.exists() {
                    std::fs::remove_file(&f).map_err(|e| write_err(&f, e))?;
                }
            }
        }
        write_text(&files.config(), &session.config().with_absolute_paths().to_toml())?;
        let path = files.metrics();
        let mut csv = std::fs::File::create(&path).map_err(|e| write_err(&path, e))?;
        let mut text = format!("{CSV_HEADER}\n");
        for r in &rows {
            text.push_str(r);
            text.push('\n');
        }
        csv.write_all(text.as_bytes()).map_err(|e| write_err(&path, e))?;
        Ok(RunFolder { files, csv, window: (0.0, 0, Instant::now()), report })
    }

    /// The folder's files.
    pub fn files(&self) -> &RunFiles {
        &self.files
    }
}

impl<B: UnetBackend> Observer<B> for RunFolder<'_> {
    fn step(&mut self, session: &Session<B>, p: &Progress) -> Result<()> {
        if p.improved {
            session.model_file().save(&self.files.best(), true)?;
        }
        self.window.0 += p.loss as f64;
        self.window.1 += 1;
        let log_every = session.config().log_every.max(1);
        if p.step.is_multiple_of(log_every) || p.validation.is_some() || p.last {
            let (sum, n, t) = self.window;
            let sps = n as f64 / t.elapsed().as_secs_f64().max(1e-9);
            let line = csv_line(p.step, (sum / n.max(1) as f64) as f32, p.lr, sps, p.validation);
            writeln!(self.csv, "{line}")
                .map_err(|e| TrainError::Write { path: self.files.metrics(), message: e.to_string() })?;
            self.window = (0.0, 0, Instant::now());
            if p.validation.is_some() || p.last {
                crate::curves::write_curves(&self.files.metrics(), &self.files.curves())
                    .map_err(|message| TrainError::Write { path: self.files.curves(), message })?;
            }
        }
        (self.report)(p);
        Ok(())
    }

    fn checkpoint(&mut self, session: &mut Session<B>) -> Result<()> {
        session.save_checkpoint(&self.files.checkpoint())?;
        session.model_file().save(&self.files.last(), true)?;
        Ok(())
    }
}

/// A new run may not mix its files with another run's or the user's.
fn check_new_run_folder(dir: &Path, force: bool) -> Result<()> {
    if !force && std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
        let what = if dir.join("checkpoint.safetensors").exists() { "holds a run already" } else { "is not empty" };
        return Err(TrainError::RunFolder { path: dir.to_path_buf(), what });
    }
    Ok(())
}

/// Trains as configured into the folder `run` (see [`RunOptions`] for an existing one):
/// reads the images and labels of the configured folders, runs a [`Session`] with a
/// [`RunFolder`], calls `report` after every step.
pub fn train<B: UnetBackend>(
    cfg: &TrainConfig,
    run: &Path,
    opts: &RunOptions,
    device: B::Device,
    report: &mut dyn FnMut(&Progress),
) -> Result<Summary> {
    let problems = cfg.problems();
    if !problems.is_empty() {
        return Err(TrainError::Config(problems));
    }
    if !opts.resume {
        check_new_run_folder(run, opts.force)?;
    }
    let set = load_labelled(&cfg.images, &cfg.labels, cfg.label_mode)?;
    let val = match (&cfg.val_images, &cfg.val_labels) {
        (Some(i), Some(l)) => load_labelled(i, l, cfg.label_mode)?,
        (None, None) => Vec::new(),
        _ => return Err(TrainError::Data("give both validation images and labels, or neither".into())),
    };
    let mut session = Session::<B>::new(cfg, &set, val, device)?;
    drop(set);
    let mut folder = RunFolder::open(run, opts, &mut session, report)?;
    let control = StopControl { stop: opts.stop.clone(), time_limit: opts.time_limit };
    let mut summary = session.fit(&mut folder, &control)?;
    summary.best_model = folder.files().best().exists().then(|| folder.files().best());
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_tile_is_checked_against_the_memory() {
        let net = TrainConfig { width: 64, ..Default::default() }.net(1);
        // 20012 px at width 64 needs terabytes; 572 fits in 4 GB.
        let cfg = TrainConfig { tile: 20012, width: 64, memory_mb: 4096.0, ..Default::default() };
        let e = choose_tile(&cfg, &net, 30000).unwrap_err().to_string();
        assert!(e.contains("tile = 20012") && e.contains("4096 MB are available"), "{e}");
        let fits: usize = e.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(training_memory_mb(&net, fits) <= 4096.0 && fits >= 252, "{e}");
        let ok = TrainConfig { tile: 572, width: 64, memory_mb: 4096.0, ..Default::default() };
        assert_eq!(choose_tile(&ok, &net, 30000).unwrap(), 572);
        assert!(check_tile_memory(&net, 188, 0.001).unwrap_err().to_string().contains("not even the smallest"));
    }
}
