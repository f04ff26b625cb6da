//! One module per subcommand; `run` dispatches.

mod eval;
mod info;

use crate::cli::Command;

/// Runs one subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Info(args) => info::run(args),
        Command::Eval(args) => eval::run(args),
    }
}
