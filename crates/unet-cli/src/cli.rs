//! The command line: global options and one struct of arguments per subcommand.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    /// CPU threads for computation (default: all cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parameter count, border, output size and valid tile sizes of a network.
    Info(InfoArgs),
    /// Score predictions against ground truth (ISBI 2012 and cell tracking metrics).
    Eval(EvalArgs),
}

/// Arguments of `unet info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// A model file; its stored config is described.
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
    /// Thresholds: a list "0.3,0.5" or a range "LO-HI:STEP" (default: 0-1:0.1 for
    /// probability maps, 0 for binary predictions, as the ISBI protocol).
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
