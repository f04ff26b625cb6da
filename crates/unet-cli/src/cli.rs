//! The command line: global options and one struct of arguments per subcommand.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::usage::usage;

/// U-Net (Ronneberger et al. 2015) for biomedical image segmentation: train, predict,
/// evaluate.
#[derive(Parser, Debug)]
#[command(name = "unet", version, about, propagate_version = true)]
pub struct Cli {
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// CPU threads for computation, at least 1 (default: all cores).
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train, predict and score on built-in synthetic cells: the first thing to run.
    Demo(DemoArgs),
    /// Parameter count, border, output size and valid tile sizes of a network.
    Info(InfoArgs),
    /// Train a U-Net as the paper does (weight maps, elastic augmentation, SGD 0.99).
    Train(Box<TrainArgs>),
    /// Segment images of any size by overlap-tile prediction.
    Predict(PredictArgs),
    /// Plan the prediction of an OME-Zarr image block by block (for cluster array jobs):
    /// creates the output store and the list of blocks; run them with `unet predict --plan`.
    Plan(PlanArgs),
    /// Finish a planned prediction: check every block is done, join instance labels across
    /// block faces, build the pyramid and write the OME-Zarr metadata.
    Finalize(FinalizeArgs),
    /// Write the paper's weight maps (eq. 2) of label images, as TIFF and a PNG to look at.
    Weights(WeightsArgs),
    /// Write previews of augmented training tiles (label contours over the image).
    Augment(AugmentArgs),
    /// Generate synthetic microscopy-like images of touching cells with instance labels.
    Synth(SynthArgs),
    /// Time the forward pass and a full training step (compare with ../shared/bench/torch_unet.py).
    Bench(BenchArgs),
    /// Score predictions against ground truth (ISBI 2012 and cell tracking metrics).
    Eval(EvalArgs),
    /// List the trained models built into unet (use their names with --model).
    Models(ModelsArgs),
}

/// Arguments of `unet info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// A model file or a built-in model's name; its stored config is described.
    #[arg(long, conflicts_with_all = ["depth", "width", "in_channels", "classes", "padding"])]
    pub model: Option<PathBuf>,
    /// Number of poolings.
    #[arg(long)]
    pub depth: Option<usize>,
    /// Feature channels at the first level.
    #[arg(long)]
    pub width: Option<usize>,
    /// Input channels.
    #[arg(long)]
    pub in_channels: Option<usize>,
    /// Output classes.
    #[arg(long)]
    pub classes: Option<usize>,
    /// Convolution padding: valid (the paper) or same.
    #[arg(long, value_parser = ["valid", "same"])]
    pub padding: Option<String>,
    /// Input tile size (square) to describe.
    #[arg(long, default_value_t = 572)]
    pub tile: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// How to read prediction images.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PredKind {
    /// Float -> probabilities; two values -> mask; other 8-bit -> probabilities (v/255);
    /// other 16/32-bit -> instance labels.
    Auto,
    /// Probability of "cell" in [0, 1] (integers are scaled by their maximum, 255 or 65535).
    Prob,
    /// Binary mask: non-zero = cell.
    Mask,
    /// Instance labels: 0 = background, each id one object.
    Instances,
}

/// How to read ground-truth images.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TruthKind {
    /// Two values -> mask; more -> instance labels.
    Auto,
    /// Binary mask: non-zero = cell (ISBI: white cells, black membranes).
    Mask,
    /// Instance labels: 0 = background, each id one cell.
    Instances,
}

/// Arguments of `unet eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Prediction file or folder (probability maps, masks or instance labels).
    #[arg(long)]
    pub pred: PathBuf,
    /// Ground-truth file or folder; files pair with predictions by stem.
    #[arg(long)]
    pub truth: PathBuf,
    /// Thresholds in [0, 1]: a list "0.3,0.5" or a range "LO-HI:STEP", at most 1001 values
    /// (default: 0-1:0.1 for probability maps, 0 for binary predictions, as the ISBI protocol).
    #[arg(long)]
    pub thresholds: Option<String>,
    /// Metrics to report, comma-separated (default: all): pixel_error, pixel_fscore_error,
    /// rand_error, v_rand, v_info, v_info_unthinned, warping_error, splits_mergers_error,
    /// iou, dice, seg, ap.
    #[arg(long)]
    pub metrics: Option<String>,
    /// Write a JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Replace an existing JSON report.
    #[arg(long)]
    pub force: bool,
    /// How to read predictions.
    #[arg(long, value_enum, default_value_t = PredKind::Auto)]
    pub pred_kind: PredKind,
    /// How to read the truth.
    #[arg(long, value_enum, default_value_t = TruthKind::Auto)]
    pub truth_kind: TruthKind,
    /// Classify warping splits within this radius (px) instead of the whole image.
    #[arg(long)]
    pub warping_radius: Option<usize>,
}

/// Which probability maps `unet predict` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveProbs {
    /// The foreground probability (class 1, or 1 - background).
    #[value(name = "fg")]
    Foreground,
    /// Every class, one page per class.
    All,
    /// No probability maps.
    None,
}

/// How images are cut into tiles for prediction (`unet predict`, `unet plan`).
#[derive(Args, Debug, Clone, Default)]
pub struct TileArgs {
    /// Input tile size (default: the largest that fits --memory-mb); one size for every
    /// block of a plan.
    #[arg(long)]
    pub tile: Option<usize>,
    /// Memory budget in MB for one batch of tiles (default: half the free memory, and at
    /// most 1024 MB for an OME-Zarr image, whose blocks all take the plan's tile).
    #[arg(long)]
    pub memory_mb: Option<f64>,
    /// Tiles per forward pass.
    #[arg(long, default_value_t = 1)]
    pub batch_tiles: usize,
}

impl TileArgs {
    /// Refuses a memory budget that is not a positive number of MB.
    pub fn check(&self) -> anyhow::Result<()> {
        match self.memory_mb {
            Some(m) if !(m.is_finite() && m > 0.0) => usage(format!("--memory-mb {m}: give a positive number of MB")),
            _ => Ok(()),
        }
    }
}

/// What is made of the probabilities besides the maps: the mask and instance labels
/// (`unet predict`, `unet plan`).
#[derive(Args, Debug, Clone, Default)]
pub struct LabelArgs {
    /// Foreground probability threshold for the mask (default: the most probable class).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Also write instance labels (4-connected components of the foreground; in an OME-Zarr
    /// output joined across blocks).
    #[arg(long)]
    pub instances: bool,
    /// Smallest instance kept, in pixels.
    #[arg(long, default_value_t = 1)]
    pub min_size: usize,
}

impl LabelArgs {
    /// Refuses a threshold outside [0, 1).
    pub fn check(&self) -> anyhow::Result<()> {
        match self.threshold {
            Some(t) if !(0.0..1.0).contains(&t) => usage("--threshold must be in [0, 1)"),
            _ => Ok(()),
        }
    }
}

/// Arguments of `unet predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// The model: a file from `unet train`, or a built-in model's name (`unet models`).
    #[arg(long, required_unless_present = "plan")]
    pub model: Option<PathBuf>,
    /// Images, folders of images or multi-page TIFF stacks; or one OME-Zarr image (with
    /// `--out x.ome.zarr`, predicted block by block in bounded memory).
    pub inputs: Vec<PathBuf>,
    /// Output folder (must be empty unless --force), or an OME-Zarr store to create
    /// (`x.ome.zarr`).
    #[arg(long, required_unless_present = "plan")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub tiles: TileArgs,
    /// Predict the blocks of a plan made by `unet plan` (the plan file or its output store);
    /// no inputs, --model or --out then.
    #[arg(long, conflicts_with_all = ["inputs", "tta"])]
    pub plan: Option<PathBuf>,
    /// This process's share, `i/N` (i from 0). With --plan: blocks i, i+N, ...; without
    /// --shard the share comes from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT or Kubernetes'
    /// JOB_COMPLETION_INDEX/UNET_SHARD_COUNT, else every block. With input files: files
    /// i, i+N, ... of the sorted list, into an output folder the shards share, skipping those
    /// this shard finished before (record: predict-i-of-N.json).
    #[arg(long)]
    pub shard: Option<String>,
    /// With --plan: predict blocks again even when they are done.
    #[arg(long, requires = "plan")]
    pub redo: bool,
    /// OME-Zarr output (`--out x.ome.zarr`): how probabilities are stored.
    #[arg(long, value_enum, default_value_t = ZarrProbs::F32)]
    pub zarr_probs: ZarrProbs,
    /// OME-Zarr output: block (shard) edge in pixels, rounded up to whole tiles and chunks.
    #[arg(long, default_value_t = 2048)]
    pub block: usize,
    /// Average the 8 rotations/flips of each image (test-time augmentation).
    #[arg(long)]
    pub tta: bool,
    /// Probability maps to write (float32 TIFF).
    #[arg(long, value_enum, default_value_t = SaveProbs::Foreground)]
    pub save_probs: SaveProbs,
    #[command(flatten)]
    pub labels: LabelArgs,
    /// Split touching cells in the instance labels (watershed on the distance transform,
    /// markers where the distance reaches this fraction of the component's maximum, e.g. 0.5).
    #[arg(long)]
    pub split_touching: Option<f64>,
    /// Do not write overlay PNGs.
    #[arg(long)]
    pub no_overlay: bool,
    /// Replace existing outputs.
    #[arg(long)]
    pub force: bool,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl PredictArgs {
    /// The model (clap requires it unless `--plan` is given).
    pub fn model(&self) -> &std::path::Path {
        self.model.as_deref().unwrap_or(std::path::Path::new(""))
    }

    /// The output (clap requires it unless `--plan` is given).
    pub fn out(&self) -> &std::path::Path {
        self.out.as_deref().unwrap_or(std::path::Path::new(""))
    }
}

/// How an OME-Zarr output stores probabilities.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ZarrProbs {
    /// 32-bit float, as predicted.
    #[default]
    F32,
    /// 8-bit, `round(p * 255)`: a quarter of the space.
    U8,
    /// No probabilities, only the mask (and instances).
    None,
}

/// Arguments of `unet plan`.
#[derive(Args, Debug)]
pub struct PlanArgs {
    /// The OME-Zarr image (NGFF 0.4/0.5 group, or a bare Zarr array).
    pub input: PathBuf,
    /// The model: a file from `unet train`, or a built-in model's name (`unet models`).
    #[arg(long)]
    pub model: String,
    /// The output OME-Zarr store to create (`x.ome.zarr`).
    #[arg(long)]
    pub out: PathBuf,
    /// Block (shard) edge in pixels, rounded up to whole tiles and chunks.
    #[arg(long, default_value_t = 2048)]
    pub block: usize,
    /// Chunk edge of the output arrays in pixels.
    #[arg(long, default_value_t = 256)]
    pub chunk: usize,
    #[command(flatten)]
    pub tiles: TileArgs,
    /// How probabilities are stored.
    #[arg(long, value_enum, default_value_t = ZarrProbs::F32)]
    pub zarr_probs: ZarrProbs,
    #[command(flatten)]
    pub labels: LabelArgs,
    /// Replace an existing output store made by `unet plan`.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `unet finalize`.
#[derive(Args, Debug)]
pub struct FinalizeArgs {
    /// The output store of `unet plan`.
    pub out: PathBuf,
}

/// Arguments of `unet train`; each overrides the same key of `--config`.
#[derive(Args, Debug, Default)]
pub struct TrainArgs {
    /// Folder of training images.
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// Folder of label images (paired with the images by stem).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Folder of validation images.
    #[arg(long)]
    pub val_images: Option<PathBuf>,
    /// Folder of validation labels.
    #[arg(long)]
    pub val_labels: Option<PathBuf>,
    /// Run folder (config.toml, metrics.csv, checkpoints, best/last model files).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder exactly where its checkpoint left off.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// A TOML file with any of the training options.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Training steps (one tile each).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Features at the first level (the paper: 64).
    #[arg(long)]
    pub width: Option<usize>,
    /// Number of poolings (the paper: 4).
    #[arg(long)]
    pub depth: Option<usize>,
    /// Input tile size (default: the largest valid tile up to 572 that fits).
    #[arg(long)]
    pub tile: Option<usize>,
    /// Learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// sgd (momentum 0.99, the paper) or adam.
    #[arg(long)]
    pub optimizer: Option<String>,
    /// constant or poly.
    #[arg(long)]
    pub schedule: Option<String>,
    /// Validate and save a moving average of the weights with this decay (0 = off).
    #[arg(long)]
    pub ema: Option<f64>,
    /// Label images are: auto, binary or instance.
    #[arg(long)]
    pub label_mode: Option<String>,
    /// Validate every N steps.
    #[arg(long)]
    pub validate_every: Option<u64>,
    /// Checkpoint every N steps.
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Random seed (data, augmentation, initialisation, dropout).
    #[arg(long)]
    pub seed: Option<u64>,
    /// cpu, cuda or cuda:N.
    #[arg(long)]
    pub device: Option<String>,
    /// Start a new run in a folder that holds files, replacing the run's files.
    #[arg(long)]
    pub force: bool,
    /// Stop after this many minutes of training with a checkpoint (for wall-time limits;
    /// continue with --resume).
    #[arg(long, value_name = "MINUTES")]
    pub time_limit: Option<f64>,
}

/// Arguments of `unet models`.
#[derive(Args, Debug)]
pub struct ModelsArgs {
    /// Print the model card (data, licence, recipe, scores) of this built-in model.
    #[arg(long, value_name = "NAME")]
    pub card: Option<String>,
}

/// Arguments of `unet weights`.
#[derive(Args, Debug)]
pub struct WeightsArgs {
    /// A label image or a folder of them.
    #[arg(long)]
    pub labels: PathBuf,
    /// Output folder (or a .tif file for a single label image).
    #[arg(long)]
    pub out: PathBuf,
    /// Border weight w0.
    #[arg(long, default_value_t = 10.0)]
    pub w0: f64,
    /// Border width sigma (px).
    #[arg(long, default_value_t = 5.0)]
    pub sigma: f64,
    /// Label images are: auto, binary or instance.
    #[arg(long, default_value = "auto")]
    pub label_mode: String,
    /// Replace existing outputs.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `unet augment`.
#[derive(Args, Debug)]
pub struct AugmentArgs {
    /// The image.
    #[arg(long)]
    pub image: PathBuf,
    /// Its label image.
    #[arg(long)]
    pub label: PathBuf,
    /// Number of previews.
    #[arg(short, long, default_value_t = 8)]
    pub n: usize,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Replace existing outputs.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `unet synth`.
#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Output folder (gets images/ and labels/).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of images.
    #[arg(short, long, default_value_t = 8)]
    pub n: usize,
    /// Image size: height and width.
    #[arg(long, num_args = 2, value_names = ["H", "W"], default_values_t = [256, 256])]
    pub size: Vec<usize>,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// 8 or 16.
    #[arg(long, default_value_t = 8)]
    pub bit_depth: u8,
    /// Replace existing outputs.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `unet demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Output folder (data, run, predictions, report.md, summary.json).
    #[arg(long, default_value = "unet-demo")]
    pub out: PathBuf,
    /// A much shorter run (used by the test suite).
    #[arg(long)]
    pub quick: bool,
    /// Training steps (default: 2000, or 400 with --quick).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Learning rate (SGD, momentum 0.99).
    #[arg(long, default_value_t = 3e-4)]
    pub lr: f64,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Replace an existing demo folder's contents.
    #[arg(long)]
    pub force: bool,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Arguments of `unet bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Features at the first level.
    #[arg(long, default_value_t = 64)]
    pub width: usize,
    /// Input tile size (batch 1).
    #[arg(long, default_value_t = 572)]
    pub tile: usize,
    /// Number of poolings.
    #[arg(long, default_value_t = 4)]
    pub depth: usize,
    /// Timed repetitions after one warm-up (medians are reported).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Only time the forward pass.
    #[arg(long)]
    pub skip_train: bool,
    /// Print one JSON line with the keys of the PyTorch reference script.
    #[arg(long)]
    pub json: bool,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}
