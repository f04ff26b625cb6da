//! A training run in memory: the network, the optimiser, the prepared data and the step
//! counter. [`Session::step`] does one step (for custom loops); [`Session::fit`] runs the
//! whole schedule with validation, checkpoints and stop requests, telling an [`Observer`]
//! (the run folder, a progress bar, a notebook) what happens. Nothing here writes files
//! unless asked: the run folder is an observer ([`crate::RunFolder`]).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use unet_nn::{Geometry, ModelFile, Normalization, UNet, UNetConfig, UnetBackend};

use crate::checkpoint;
use crate::config::TrainConfig;
use crate::data::{LabelledImage, prepare};
use crate::ema::Ema;
use crate::error::{Result, TrainError};
use crate::loss::weighted_cross_entropy;
use crate::optim::Optimizer;
use crate::sampling::{Sample, TrainImage, draw_sample, step_rng};
use crate::trainer::{Progress, StopReason, Summary, Validation, choose_tile, validate};

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// Steps done after this one.
    pub step: u64,
    /// The loss of this step's tile.
    pub loss: f32,
    /// The learning rate it used.
    pub lr: f64,
}

/// When [`Session::fit`] stops before the configured number of steps.
#[derive(Debug, Clone, Default)]
pub struct StopControl {
    /// Checked after every step: when raised, the run finishes the step, tells the
    /// observer to checkpoint and returns with [`StopReason::Requested`].
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Training time after which the run stops in the same way ([`StopReason::TimeLimit`]).
    pub time_limit: Option<Duration>,
}

/// Told what a [`Session::fit`] does; every method has a default that does nothing.
pub trait Observer<B: UnetBackend> {
    /// After every step (with the validation when there was one).
    fn step(&mut self, _session: &Session<B>, _progress: &Progress) -> Result<()> {
        Ok(())
    }

    /// At every `checkpoint_every` steps and when the run ends or stops: the moment to
    /// save what must survive a crash ([`Session::save_checkpoint`]).
    fn checkpoint(&mut self, _session: &mut Session<B>) -> Result<()> {
        Ok(())
    }
}

/// An observer that does nothing.
pub struct Quiet;

impl<B: UnetBackend> Observer<B> for Quiet {}

/// The samples of the coming steps, drawn by a worker thread while a step computes.
struct Prefetch {
    next: u64,
    rx: Receiver<Sample>,
    worker: JoinHandle<()>,
}

/// A training run: see the module documentation.
pub struct Session<B: UnetBackend> {
    cfg: TrainConfig,
    net: UNetConfig,
    tile: usize,
    out: usize,
    normalization: Normalization,
    class_weight: Vec<f32>,
    images: std::sync::Arc<Vec<TrainImage>>,
    val: Vec<LabelledImage>,
    device: B::Device,
    model: UNet<Autodiff<B>>,
    opt: Optimizer<Autodiff<B>>,
    /// The moving average of the weights, when `cfg.ema > 0`.
    ema: Option<Ema<B>>,
    step: u64,
    best: Option<f64>,
    last_checkpoint: Option<(u64, PathBuf)>,
    prefetch: Option<Prefetch>,
}

impl<B: UnetBackend> Session<B> {
    /// A new run of `cfg` on labelled images (see [`crate::data::load_labelled`] and
    /// [`crate::data::labelled`]); `val` may be empty. Checks every setting first.
    pub fn new(cfg: &TrainConfig, train: &[LabelledImage], val: Vec<LabelledImage>, device: B::Device) -> Result<Self> {
        let problems = cfg.problems();
        if !problems.is_empty() {
            return Err(TrainError::Config(problems));
        }
        if !train.iter().any(|l| l.cells.any_nonzero()) {
            return Err(TrainError::Data(
                "no training label has any foreground (cells); annotate cells with non-zero values".into(),
            ));
        }
        let (images, normalization, class_weight) = prepare(train, &cfg.weights, cfg.normalization)?;
        let in_channels = images[0].image.channels;
        if let Some(l) = train.iter().chain(&val).find(|l| l.image.channels != in_channels) {
            return Err(TrainError::Data(format!(
                "{}: has {} channel(s) but the first training image has {in_channels}; give images with the same \
                 number of channels",
                l.path.display(),
                l.image.channels
            )));
        }
        let net = cfg.net(in_channels);
        net.validate()?;
        let max_side = images.iter().map(|i| i.image.width.max(i.image.height)).max().unwrap_or(1);
        let tile = choose_tile(cfg, &net, max_side)?;
        let out = Geometry::of(&net).output(tile)?;
        tracing::info!(
            "{} training image(s), class weights {:?}, {} validation image(s); tile {tile} -> {out}, {} parameters",
            images.len(),
            class_weight,
            val.len(),
            net.parameter_count()
        );
        let model = net.init(cfg.seed, &device)?;
        Ok(Session {
            cfg: cfg.clone(),
            net,
            tile,
            out,
            normalization,
            class_weight,
            images: std::sync::Arc::new(images),
            val,
            device,
            model,
            opt: Optimizer::new(cfg.optimizer, cfg.momentum, cfg.weight_decay),
            ema: (cfg.ema > 0.0).then(|| Ema::new(cfg.ema)),
            step: 0,
            best: None,
            last_checkpoint: None,
            prefetch: None,
        })
    }

    /// Continues from a checkpoint written by [`Session::save_checkpoint`] of the same
    /// configuration: weights, optimiser state, moving average, step and best score; the
    /// following steps are those the uninterrupted run would have taken, bit for bit.
    pub fn restore(&mut self, path: &Path) -> Result<()> {
        let r = checkpoint::load::<Autodiff<B>>(path, &mut self.opt, self.ema.as_mut(), &self.device)?;
        self.model = self
            .model
            .clone()
            .load_named_tensors(&r.model_tensors)
            .map_err(|m| TrainError::Checkpoint { path: path.to_path_buf(), message: m })?;
        if let Some(e) = &self.ema
            && !e.matches::<Autodiff<B>, _>(&self.model)
        {
            return Err(TrainError::Checkpoint {
                path: path.to_path_buf(),
                message: "its moving average of the weights does not match the network's parameters".into(),
            });
        }
        self.step = r.step;
        self.best = r.best;
        self.last_checkpoint = Some((r.step, path.to_path_buf()));
        self.stop_prefetch();
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// The network's configuration.
    pub fn net(&self) -> &UNetConfig {
        &self.net
    }

    /// The input tile size.
    pub fn tile(&self) -> usize {
        self.tile
    }

    /// Steps done.
    pub fn steps_done(&self) -> u64 {
        self.step
    }

    /// The best validation V_Rand so far.
    pub fn best(&self) -> Option<f64> {
        self.best
    }

    /// The class weights `w_c` of the weight maps.
    pub fn class_weight(&self) -> &[f32] {
        &self.class_weight
    }

    /// The input normalisation (stored in the model file).
    pub fn normalization(&self) -> Normalization {
        self.normalization
    }

    fn stop_prefetch(&mut self) {
        if let Some(p) = self.prefetch.take() {
            drop(p.rx);
            let _ = p.worker.join();
        }
    }

    /// The sample of the current step, from the worker (started or restarted as needed).
    fn next_sample(&mut self) -> Result<Sample> {
        if self.prefetch.as_ref().is_none_or(|p| p.next != self.step) {
            self.stop_prefetch();
            let (tx, rx) = sync_channel::<Sample>(2);
            let images = std::sync::Arc::clone(&self.images);
            let aug = self.cfg.augment.clone();
            let (seed, start, tile, out) = (self.cfg.seed, self.step, self.tile, self.out);
            let worker = std::thread::spawn(move || {
                for step in start.. {
                    let mut rng = step_rng(seed, step, 0);
                    if tx.send(draw_sample(&images, tile, out, &aug, &mut rng)).is_err() {
                        break;
                    }
                }
            });
            self.prefetch = Some(Prefetch { next: self.step, rx, worker });
        }
        let p = self.prefetch.as_mut().expect("started above");
        match p.rx.recv() {
            Ok(s) => {
                p.next += 1;
                Ok(s)
            }
            Err(_) => {
                // The worker ended early: it panicked; report its message.
                let p = self.prefetch.take().expect("present");
                let cause = match p.worker.join() {
                    Err(e) => e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "unknown cause".into()),
                    Ok(()) => "it ended early".into(),
                };
                Err(TrainError::Data(format!("the data worker stopped at step {}: {cause}", self.step)))
            }
        }
    }

    /// One training step: the step's sample (a pure function of the seed and the step),
    /// forward with dropout, weighted cross-entropy, backward, optimiser update.
    pub fn step(&mut self) -> Result<StepOutcome> {
        let step = self.step;
        let sample = self.next_sample()?;
        let (x, y, w) = to_tensors::<Autodiff<B>>(
            &sample,
            self.net.in_channels,
            self.tile,
            self.out,
            self.net.classes,
            &self.device,
        );
        let mut drop_rng = step_rng(self.cfg.seed, step, 1);
        let logits = self.model.forward_train(x, &mut drop_rng);
        let loss = weighted_cross_entropy(logits, y, w);
        let value: f32 = loss.clone().into_scalar().elem();
        let lr = self.cfg.schedule.lr(self.cfg.lr, step, self.cfg.steps);
        if !value.is_finite() {
            self.stop_prefetch();
            return Err(TrainError::NotFinite { step, value, lr, checkpoint: self.last_checkpoint.clone() });
        }
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self.opt.step(lr, self.model.clone(), grads);
        if let Some(e) = &mut self.ema {
            e.update::<Autodiff<B>, _>(&self.model);
        }
        self.step += 1;
        Ok(StepOutcome { step: self.step, loss: value, lr })
    }

    /// Scores the model (the moving average of the weights when configured, else the
    /// current weights) on the validation images (`None` without any); the best V_Rand so
    /// far is updated.
    pub fn validate(&mut self) -> Result<Option<(Validation, bool)>> {
        if self.val.is_empty() {
            return Ok(None);
        }
        let v = validate::<B>(self.model(), &self.net, self.normalization, self.tile, &self.val, &self.device)?;
        let improved = self.best.is_none_or(|b| v.v_rand > b);
        if improved {
            self.best = Some(v.v_rand);
        }
        Ok(Some((v, improved)))
    }

    /// The model (see [`Session::model`]) as a model file (config, normalisation,
    /// provenance).
    pub fn model_file(&self) -> ModelFile {
        let mut f = ModelFile::from_model(&self.model(), &self.net, self.normalization);
        f.info.insert("steps".into(), self.step.to_string());
        f.info.insert("tile".into(), self.tile.to_string());
        f.info.insert("seed".into(), self.cfg.seed.to_string());
        if self.ema.is_some() {
            f.info.insert("ema".into(), self.cfg.ema.to_string());
        }
        f
    }

    /// The model this run validates and saves, ready to predict on the session's device:
    /// the moving average of the weights when `ema > 0`, else the current weights.
    pub fn model(&self) -> UNet<B> {
        let current = self.model.valid();
        match &self.ema {
            Some(e) => e.apply(current),
            None => current,
        }
    }

    /// The weights of the last step (what the optimiser updates), whatever `ema` is.
    pub fn current_weights(&self) -> UNet<B> {
        self.model.valid()
    }

    /// Writes a checkpoint (weights, optimiser state, step, best score and the
    /// configuration) atomically to `path`.
    pub fn save_checkpoint(&mut self, path: &Path) -> Result<()> {
        let toml = self.cfg.with_absolute_paths().to_toml();
        checkpoint::save(path, &self.model, &self.opt, self.ema.as_ref(), self.step, self.best, &toml)?;
        self.last_checkpoint = Some((self.step, path.to_path_buf()));
        Ok(())
    }

    /// Runs the remaining steps of the schedule: validation every `validate_every` steps
    /// and at the end, the observer after every step and at every `checkpoint_every`
    /// steps, until the last step or a stop (see [`StopControl`]).
    pub fn fit(&mut self, observer: &mut dyn Observer<B>, control: &StopControl) -> Result<Summary> {
        let (start, t0) = (self.step, Instant::now());
        let (mut first_loss, mut last_loss, mut last_validation, mut stopped) = (f32::NAN, f32::NAN, None, None);
        while self.step < self.cfg.steps {
            let s = match self.step() {
                Ok(s) => s,
                Err(e) => {
                    self.stop_prefetch();
                    return Err(e);
                }
            };
            if first_loss.is_nan() {
                first_loss = s.loss;
            }
            last_loss = s.loss;
            stopped = if control.stop.as_ref().is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed)) {
                Some(StopReason::Requested)
            } else if control.time_limit.is_some_and(|l| t0.elapsed() >= l) {
                Some(StopReason::TimeLimit)
            } else {
                None
            };
            let last = s.step == self.cfg.steps || stopped.is_some();
            let (mut validation, mut improved) = (None, false);
            if (s.step.is_multiple_of(self.cfg.validate_every.max(1)) || last)
                && let Some((v, better)) = self.validate()?
            {
                (validation, improved) = (Some(v), better);
                last_validation = Some(v);
            }
            let progress =
                Progress { step: s.step, steps: self.cfg.steps, loss: s.loss, lr: s.lr, validation, improved, last };
            observer.step(self, &progress)?;
            if s.step.is_multiple_of(self.cfg.checkpoint_every.max(1)) || last {
                observer.checkpoint(self)?;
            }
            if stopped.is_some() {
                break;
            }
        }
        self.stop_prefetch();
        Ok(Summary {
            start_step: start,
            steps: self.step,
            first_loss,
            final_loss: last_loss,
            seconds: t0.elapsed().as_secs_f64(),
            tile: self.tile,
            last_validation,
            best_model: None,
            stopped,
        })
    }
}

impl<B: UnetBackend> Drop for Session<B> {
    fn drop(&mut self) {
        self.stop_prefetch();
    }
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
