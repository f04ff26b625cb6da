//! Progress bars for long work (hidden when stderr is not a terminal or with `--quiet`).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` items with a message.
pub fn bar(len: u64, message: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_message(message.to_string());
    pb
}
