//! The training configuration: every option of `unet train`, settable in a TOML file; the
//! resolved configuration is written to `RUN_DIR/config.toml`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use unet_nn::{Padding, UNetConfig};

use crate::augment::AugmentConfig;
use crate::optim::{OptimizerKind, Schedule};
use crate::weights::WeightParams;

/// How label images are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LabelMode {
    /// Two values (0 and one other) -> binary mask; more -> instance ids.
    #[default]
    Auto,
    /// Binary mask (0/1 or 0/255): cells are its 4-connected components.
    Binary,
    /// Instance ids (0 = background).
    Instance,
}

/// How inputs are normalised (stored in the model file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NormMode {
    /// Each image by its own 1st and 99.8th percentiles: robust to bit depth, gain and
    /// outliers.
    #[default]
    Percentile,
    /// Each image standardised by its own mean and standard deviation.
    PerImage,
    /// One mean and standard deviation measured over the training images.
    Fixed,
}

/// Everything a training run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub images: PathBuf,
    pub labels: PathBuf,
    pub val_images: Option<PathBuf>,
    pub val_labels: Option<PathBuf>,
    pub label_mode: LabelMode,
    /// Training steps (one tile each).
    pub steps: u64,
    /// Input tile size; 0 = the largest valid tile up to 572 that fits the images and memory.
    pub tile: usize,
    pub width: usize,
    pub depth: usize,
    pub padding: Padding,
    pub batch_norm: bool,
    pub dropout: f64,
    pub optimizer: OptimizerKind,
    pub lr: f64,
    /// SGD momentum (the paper: 0.99), or Adam's beta1.
    pub momentum: f64,
    pub weight_decay: f64,
    pub schedule: Schedule,
    /// Decay of the moving average of the weights that is validated and saved
    /// ([`crate::ema`]); 0 = the weights of the last step.
    pub ema: f64,
    pub weights: WeightParams,
    pub augment: AugmentConfig,
    pub normalization: NormMode,
    pub seed: u64,
    pub device: String,
    pub log_every: u64,
    pub validate_every: u64,
    pub checkpoint_every: u64,
    /// Memory budget (MB) for choosing the tile; 0 = half the free memory.
    pub memory_mb: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            images: PathBuf::new(),
            labels: PathBuf::new(),
            val_images: None,
            val_labels: None,
            label_mode: LabelMode::Auto,
            steps: 2000,
            tile: 0,
            width: 64,
            depth: 4,
            padding: Padding::Valid,
            batch_norm: false,
            dropout: 0.5,
            optimizer: OptimizerKind::Sgd,
            // Measured on ISBI 2012 at the paper's 572-px tiles with percentile inputs
            // (docs/isbi2012.md): 1e-3 learns steadily with momentum 0.99 and far faster
            // than 1e-4 (V_Rand 0.85 after 500 steps against 0.81 after 1500). The earlier
            // "1e-3 oscillates" was measured on 252-px tiles (68-px outputs).
            lr: 1e-3,
            momentum: 0.99,
            weight_decay: 0.0,
            schedule: Schedule::Constant,
            ema: 0.0,
            weights: WeightParams::default(),
            augment: AugmentConfig::default(),
            normalization: NormMode::Percentile,
            seed: 0,
            device: "cpu".into(),
            log_every: 10,
            validate_every: 200,
            checkpoint_every: 200,
            memory_mb: 0.0,
        }
    }
}

impl TrainConfig {
    /// The network this run trains (two classes: background and cell).
    pub fn net(&self, in_channels: usize) -> UNetConfig {
        UNetConfig {
            in_channels,
            classes: 2,
            depth: self.depth,
            width: self.width,
            padding: self.padding,
            batch_norm: self.batch_norm,
            dropout: self.dropout,
        }
    }

    /// Every setting out of its range, one message per key (`key = value: must be ...`);
    /// empty when the whole configuration is usable.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.steps == 0 {
            out.push("steps = 0: must be at least 1".into());
        }
        let check = |out: &mut Vec<String>, key: &str, v: f64, ok: bool, what: &str| {
            if !(v.is_finite() && ok) {
                out.push(format!("{key} = {v}: must be {what}"));
            }
        };
        check(&mut out, "lr", self.lr, self.lr > 0.0, "above 0");
        check(&mut out, "momentum", self.momentum, (0.0..1.0).contains(&self.momentum), "at least 0 and below 1");
        check(&mut out, "weight_decay", self.weight_decay, (0.0..=1.0).contains(&self.weight_decay), "between 0 and 1");
        check(&mut out, "ema", self.ema, (0.0..1.0).contains(&self.ema), "at least 0 (0: off) and below 1");
        check(&mut out, "dropout", self.dropout, (0.0..1.0).contains(&self.dropout), "at least 0 and below 1");
        check(&mut out, "weights.w0", self.weights.w0, (0.0..=1e3).contains(&self.weights.w0), "between 0 and 1000");
        check(
            &mut out,
            "weights.sigma",
            self.weights.sigma,
            self.weights.sigma > 0.0 && self.weights.sigma <= 1e3,
            "above 0 and at most 1000 px",
        );
        check(&mut out, "memory_mb", self.memory_mb, self.memory_mb >= 0.0, "at least 0 (0: automatic)");
        match self.net(1).validate() {
            Err(e) => out.push(e.to_string()),
            Ok(()) if self.tile != 0 => {
                if let Err(e) = unet_nn::Geometry::of(&self.net(1)).output(self.tile) {
                    out.push(format!("tile = {}: {e}", self.tile));
                }
            }
            Ok(()) => {}
        }
        out.extend(self.augment.problems());
        out
    }

    /// The configuration with its data folders made absolute (against the current
    /// directory; a path that cannot be resolved stays as it is).
    pub fn with_absolute_paths(&self) -> Self {
        let abs = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
        TrainConfig {
            images: abs(&self.images),
            labels: abs(&self.labels),
            val_images: self.val_images.as_ref().map(abs),
            val_labels: self.val_labels.as_ref().map(abs),
            ..self.clone()
        }
    }

    /// Reads a TOML file.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Writes TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("serialisable config")
    }
}
