//! The U-Net of Ronneberger, Fischer and Brox (MICCAI 2015) for biomedical image
//! segmentation, as a library: load a trained model (a file from `unet train`, or a
//! built-in one by name) and segment images of any size by overlap-tile prediction.
//!
//! ```
//! # fn main() -> Result<(), unet::Error> {
//! let image = unet::Image::gray(300, 200, unet::SampleKind::U8, (0..60_000).map(|i| (i % 251) as f32).collect());
//! let model = unet::Model::load("isbi2012-em")?;
//! let probs = model.predict(&image)?; // class probabilities, [classes][height][width]
//! let cells = model.segment(&image)?; // instance labels: 0 = background, 1.. = cells
//! assert_eq!((probs.width, probs.height, cells.width), (300, 200, 300));
//! # Ok(())
//! # }
//! ```
//!
//! Options by builder: `Model::load(p)?.tile(572).tta(true).threshold(0.5)`.
//!
//! Training, on images and labels in memory (or folders, [`Trainer::fit_folders`]):
//!
//! ```
//! # fn main() -> Result<(), unet::Error> {
//! # let disc = |k: usize| -> (unet::Image, unet::Label) {
//! #     let inside = |i: usize| ((i % 64) as f64 - 20.0 - 10.0 * k as f64).powi(2) + ((i / 64) as f64 - 30.0).powi(2) < 80.0;
//! #     (unet::Image::gray(64, 64, unet::SampleKind::U8, (0..4096).map(|i| if inside(i) { 200.0 } else { 40.0 }).collect()),
//! #      unet::Label::new(64, 64, (0..4096).map(|i| u32::from(inside(i))).collect()))
//! # };
//! let samples = vec![disc(0), disc(1)]; // (Image, Label) pairs
//! let config = unet::TrainConfig { steps: 20, width: 4, depth: 2, ..Default::default() };
//! let model = unet::Trainer::new(config).progress(|p| eprintln!("step {} loss {:.3}", p.step, p.loss)).fit(&samples)?;
//! let cells = model.segment(&samples[0].0)?;
//! # assert_eq!(cells.width, 64);
//! # Ok(())
//! # }
//! ```
//!
//! The crates behind it (`unet-io`, `unet-nn`, `unet-infer`, `unet-train`, ...) hold the
//! rest; this one is the small, stable surface.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub use unet_infer::Probabilities;
pub use unet_io::{ColorMode, Grid, Image, Label, SampleKind, read_image, read_label};
pub use unet_nn::{ModelFile, NnError, Normalization, UNetConfig};
pub use unet_train::{AugmentConfig, LabelMode, Progress, Session, TrainConfig, Validation};

/// What can go wrong, with a message that names the value and the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Io(#[from] unet_io::IoError),
    #[error(transparent)]
    Model(#[from] unet_nn::NnError),
    #[error(transparent)]
    Predict(#[from] unet_infer::InferError),
    #[error(transparent)]
    Train(#[from] unet_train::TrainError),
    /// Neither a file nor a built-in model.
    #[error("{name}: no such file, and no built-in model of that name (built in: {builtin})")]
    NotFound { name: String, builtin: String },
    /// An option out of its range.
    #[error("{0}")]
    Invalid(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

type TileProgress = Arc<dyn Fn(usize, usize) + Send + Sync>;
type StepProgress = Box<dyn FnMut(&Progress)>;

/// A trained network with everything prediction needs: its config, the input
/// normalisation it was trained with, and the prediction options.
#[derive(Clone)]
pub struct Model {
    file: ModelFile,
    net: unet_nn::UNet<unet_nn::CpuBackend>,
    tile: Option<usize>,
    tta: bool,
    threshold: Option<f32>,
    min_size: usize,
    progress: Option<TileProgress>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("config", &self.file.config)
            .field("normalization", &self.file.normalization)
            .field("tile", &self.tile)
            .field("tta", &self.tta)
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

impl Model {
    /// A model file (from `unet train`) at `path`, or else the built-in model of that
    /// name (see [`builtin_models`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if !path.exists()
            && let Some(m) = path.to_str().and_then(unet_models::find)
        {
            return Self::from_file(m.load()?);
        }
        if !path.exists() {
            return Err(Error::NotFound { name: path.display().to_string(), builtin: builtin_models().join(", ") });
        }
        Self::from_file(ModelFile::load(path)?)
    }

    /// A model from a loaded model file.
    pub fn from_file(file: ModelFile) -> Result<Self> {
        let net = file.model(&Default::default(), Path::new("the model"))?;
        Ok(Model { file, net, tile: None, tta: false, threshold: None, min_size: 1, progress: None })
    }

    /// The input tile size (a valid size for the network; default: the largest that fits
    /// in half the available memory).
    pub fn tile(mut self, tile: usize) -> Self {
        self.tile = Some(tile);
        self
    }

    /// Average the 8 rotations and flips of each image (test-time augmentation).
    pub fn tta(mut self, on: bool) -> Self {
        self.tta = on;
        self
    }

    /// Foreground probability above which a pixel is a cell in [`Model::segment`]
    /// (default: the most probable class).
    pub fn threshold(mut self, threshold: f32) -> Self {
        self.threshold = Some(threshold);
        self
    }

    /// Smallest cell kept by [`Model::segment`], in pixels (default 1).
    pub fn min_size(mut self, pixels: usize) -> Self {
        self.min_size = pixels;
        self
    }

    /// Called with `(tiles done, tiles in all)` as prediction goes.
    pub fn progress(mut self, f: impl Fn(usize, usize) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// The network's configuration.
    pub fn config(&self) -> &UNetConfig {
        &self.file.config
    }

    /// The model file (config, normalisation, weights, provenance).
    pub fn file(&self) -> &ModelFile {
        &self.file
    }

    /// Class probabilities of every pixel of `image` (of any size).
    pub fn predict(&self, image: &Image) -> Result<Probabilities> {
        let opts = unet_infer::PredictorOptions { tile: self.tile, batch_tiles: 1, memory_mb: None };
        let p = unet_infer::Predictor::new(
            self.net.clone(),
            self.file.config.clone(),
            self.file.normalization,
            Default::default(),
            &opts,
        )?;
        let noop = |_: usize, _: usize| {};
        let progress: &dyn Fn(usize, usize) = match &self.progress {
            Some(f) => f.as_ref(),
            None => &noop,
        };
        Ok(if self.tta { p.predict_tta(image, progress)? } else { p.predict(image, progress)? })
    }

    /// Instance labels of `image`: the cells (class 1 and above, or foreground probability
    /// above the threshold) as 4-connected components, numbered 1, 2, ... in raster
    /// order; 0 is background.
    pub fn segment(&self, image: &Image) -> Result<Label> {
        let probs = self.predict(image)?;
        let mask = match self.threshold {
            Some(t) if (0.0..1.0).contains(&t) => unet_infer::threshold_mask(&unet_infer::foreground(&probs), t),
            Some(t) => return Err(Error::Invalid(format!("threshold {t}: must be at least 0 and below 1"))),
            None => unet_infer::argmax_mask(&probs),
        };
        Ok(unet_infer::instance_labels(&mask, self.min_size).0)
    }
}

/// Trains a model as the paper does (weight maps, elastic deformation, SGD with momentum
/// 0.99 on one large tile per step), from a [`TrainConfig`]; options by builder.
pub struct Trainer {
    cfg: TrainConfig,
    val: Vec<(Image, Label)>,
    progress: Option<StepProgress>,
    run_dir: Option<(PathBuf, bool)>,
    control: unet_train::StopControl,
}

impl Trainer {
    /// A trainer for `config` (its `images`/`labels` folders are used only by
    /// [`Trainer::fit_folders`]).
    pub fn new(config: TrainConfig) -> Self {
        Trainer { cfg: config, val: Vec::new(), progress: None, run_dir: None, control: Default::default() }
    }

    /// Validation pairs, scored every `validate_every` steps (the best model is kept in
    /// the run folder, when there is one).
    pub fn validation(mut self, pairs: &[(Image, Label)]) -> Self {
        self.val = pairs.to_vec();
        self
    }

    /// Called after every step, with the validation when there was one.
    pub fn progress(mut self, f: impl FnMut(&Progress) + 'static) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// Keep a run folder (`config.toml`, `metrics.csv`, `curves.png`, checkpoints,
    /// `best`/`last` model files) in `dir`, which must be empty or missing.
    pub fn run_folder(mut self, dir: impl Into<PathBuf>) -> Self {
        self.run_dir = Some((dir.into(), false));
        self
    }

    /// Continue the run in the run folder `dir` from its checkpoint.
    pub fn resume(mut self, dir: impl Into<PathBuf>) -> Self {
        self.run_dir = Some((dir.into(), true));
        self
    }

    /// Stop (with a checkpoint, when there is a run folder) once `flag` is raised.
    pub fn stop_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.control.stop = Some(flag);
        self
    }

    /// Stop (with a checkpoint, when there is a run folder) after this much training time.
    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.control.time_limit = Some(limit);
        self
    }

    fn labelled(pairs: &[(Image, Label)], what: &str, mode: LabelMode) -> Result<Vec<unet_train::data::LabelledImage>> {
        pairs
            .iter()
            .enumerate()
            .map(|(k, (i, l))| {
                unet_train::data::labelled(&format!("{what} pair {k}"), i.clone(), l, mode).map_err(Error::from)
            })
            .collect()
    }

    /// A session on these pairs, for custom loops ([`Session::step`]).
    pub fn session(&self, samples: &[(Image, Label)]) -> Result<Session<unet_nn::CpuBackend>> {
        let train = Self::labelled(samples, "training", self.cfg.label_mode)?;
        let val = Self::labelled(&self.val, "validation", self.cfg.label_mode)?;
        Ok(Session::new(&self.cfg, &train, val, Default::default())?)
    }

    /// Trains on `(image, label)` pairs in memory and returns the trained model.
    pub fn fit(self, samples: &[(Image, Label)]) -> Result<Model> {
        let session = self.session(samples)?;
        self.run(session)
    }

    /// Trains on the images and labels of two folders (paired by file stem).
    pub fn fit_folders(self, images: &Path, labels: &Path) -> Result<Model> {
        let train = unet_train::data::load_labelled(images, labels, self.cfg.label_mode)?;
        let val = Self::labelled(&self.val, "validation", self.cfg.label_mode)?;
        let session = Session::new(&self.cfg, &train, val, Default::default())?;
        self.run(session)
    }

    fn run(mut self, mut session: Session<unet_nn::CpuBackend>) -> Result<Model> {
        let mut noop = |_: &Progress| {};
        let report: &mut dyn FnMut(&Progress) = match &mut self.progress {
            Some(f) => f.as_mut(),
            None => &mut noop,
        };
        match &self.run_dir {
            Some((dir, resume)) => {
                let opts = unet_train::RunOptions { resume: *resume, ..Default::default() };
                let mut folder = unet_train::RunFolder::open(dir, &opts, &mut session, report)?;
                session.fit(&mut folder, &self.control)?;
            }
            None => {
                struct Report<'a>(&'a mut dyn FnMut(&Progress));
                impl unet_train::Observer<unet_nn::CpuBackend> for Report<'_> {
                    fn step(&mut self, _: &Session<unet_nn::CpuBackend>, p: &Progress) -> unet_train::Result<()> {
                        (self.0)(p);
                        Ok(())
                    }
                }
                session.fit(&mut Report(report), &self.control)?;
            }
        }
        Model::from_file(session.model_file())
    }
}

/// The names of the models built into this library (`Model::load(name)`).
pub fn builtin_models() -> Vec<&'static str> {
    unet_models::MODELS.iter().map(|m| m.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_and_bad_thresholds_are_clear_errors() {
        let e = Model::load("no-such-model").unwrap_err();
        assert!(e.to_string().contains("isbi2012-em"), "{e}");
        let m = Model::load("isbi2012-em").unwrap().threshold(1.5);
        let img = Image::gray(40, 40, SampleKind::U8, vec![3.0; 1600]);
        assert!(m.segment(&img).unwrap_err().to_string().contains("threshold 1.5"));
    }

    #[test]
    fn tile_and_tta_do_not_change_what_is_found() {
        let img = Image::gray(96, 80, SampleKind::U8, (0..96 * 80).map(|i| ((i * 37) % 256) as f32).collect());
        let a = Model::load("isbi2012-em").unwrap().tile(204).predict(&img).unwrap();
        let b = Model::load("isbi2012-em").unwrap().tile(252).predict(&img).unwrap();
        let worst = a.data.iter().zip(&b.data).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-4, "tiling changed the probabilities by {worst}");
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        let t = Model::load("isbi2012-em")
            .unwrap()
            .tta(true)
            .progress(move |_, _| {
                c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            })
            .predict(&img)
            .unwrap();
        assert_eq!((t.width, t.height, t.channels), (96, 80, 2));
        assert!(calls.load(std::sync::atomic::Ordering::Relaxed) > 0);
    }
}
