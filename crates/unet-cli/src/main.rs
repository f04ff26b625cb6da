//! `unet`: the command-line front end. Parses arguments, sets up logging and threads,
//! runs one subcommand, and turns errors into one line on stderr with exit code 2 for
//! usage errors and 1 for failures.

mod cli;
mod commands;
mod device;
mod manifest;
mod progress;
mod usage;

use clap::Parser;

/// mimalloc keeps freed pages for reuse: the network allocates and frees many
/// activation-sized buffers per step, which with the system allocator page-fault anew
/// every time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v2's `mi_option_t` (the sys crate names no constant
/// for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never hand freed memory back to the OS: the next step needs the same buffers again, and
/// re-faulting them costs ~9% of a width-16 training step (`docs/performance.md`).
fn keep_freed_memory() {
    // SAFETY: called first thing in `main`, before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

fn main() {
    keep_freed_memory();
    let cli = cli::Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    if let Some(n) = cli.threads
        && let Err(e) = rayon::ThreadPoolBuilder::new().num_threads(usize::from(n)).build_global()
    {
        eprintln!("error: cannot set {n} threads: {e}");
        std::process::exit(1);
    }
    if let Err(err) = commands::run(cli.command) {
        let code = if err.downcast_ref::<usage::UsageError>().is_some() { 2 } else { 1 };
        // One line: the context chain joined by ": ".
        eprintln!("error: {err:#}");
        std::process::exit(code);
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("UNET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
