//! One module per subcommand; `run` dispatches.

mod augment;
mod bench;
mod blocks;
mod demo;
mod eval;
mod info;
pub mod models;
mod predict;
mod synth;
mod train;
mod weights;

use crate::cli::Command;

/// Runs one subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Demo(args) => demo::run(args),
        Command::Info(args) => info::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Plan(args) => blocks::plan(&args),
        Command::Finalize(args) => blocks::finalize(&args),
        Command::Train(args) => train::run(*args),
        Command::Weights(args) => weights::run(args),
        Command::Augment(args) => augment::run(args),
        Command::Synth(args) => synth::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Models(args) => models::run(args),
    }
}
