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
