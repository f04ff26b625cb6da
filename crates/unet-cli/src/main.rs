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
        // The library says what is wrong in its own terms; the flag that fixes it is ours.
        let exists = err.chain().any(|e| matches!(e.downcast_ref(), Some(unet_io::IoError::Exists { .. })));
        let hint = if exists { " (pass --force to replace it)" } else { "" };
        eprintln!("error: {}{hint}", one_line(&format!("{err:#}")));
        std::process::exit(code);
    }
}

/// An error as one line: the context chain joined by ": " (anyhow's `{:#}`). A message
/// that spans lines (a parser's excerpt of the input, as TOML errors have) keeps its first
/// line, which names the file and the place, the excerpt's source line (`4 | steps = 0`),
/// and its last line, which says what is wrong.
fn one_line(msg: &str) -> String {
    let lines: Vec<&str> = msg.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let [first, middle @ .., last] = lines.as_slice() else {
        return lines.first().map(|l| l.to_string()).unwrap_or_default();
    };
    // A numbered line of the excerpt: "4 | steps = 0".
    let source = middle.iter().find_map(|l| {
        let (n, text) = l.split_once('|')?;
        (!n.trim().is_empty() && n.trim().bytes().all(|b| b.is_ascii_digit())).then(|| text.trim())
    });
    match source {
        Some(text) => format!("{first} ({text}): {last}"),
        None => format!("{first}: {last}"),
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

#[cfg(test)]
mod tests {
    #[test]
    fn errors_are_printed_on_one_line() {
        let toml = "cfg.toml: TOML parse error at line 4, column 1\n  |\n4 | steps = 0\n  | ^^^^^\nduplicate key\n";
        assert_eq!(super::one_line(toml), "cfg.toml: TOML parse error at line 4, column 1 (steps = 0): duplicate key");
        assert_eq!(super::one_line("a: b"), "a: b");
        assert_eq!(super::one_line("a\nb\nc"), "a: c");
        assert_eq!(super::one_line(""), "");
    }
}
