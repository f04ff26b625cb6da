//! The error type of training.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, TrainError>;

/// What can stop a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Io(#[from] unet_io::IoError),
    #[error(transparent)]
    Nn(#[from] unet_nn::NnError),
    #[error(transparent)]
    Infer(#[from] unet_infer::InferError),
    #[error("{0}")]
    Data(String),
    /// Settings out of range, one message per key.
    #[error("invalid settings: {}", .0.join("; "))]
    Config(Vec<String>),
    /// The loss became NaN or infinite: the weights diverged (the inputs are checked
    /// when the images are prepared, so the learning rate is the cause).
    #[error("the loss became {value} at step {step} at learning rate {lr:e}: the weights diverged; {}", match checkpoint {
        Some((s, path)) => format!("the last good checkpoint (step {s}) is kept in {}: lower the learning rate and resume from it", path.display()),
        None => "no checkpoint had been written yet: lower the learning rate and start again".to_string(),
    })]
    NotFinite { step: u64, value: f32, lr: f64, checkpoint: Option<(u64, PathBuf)> },
    /// A new run in a folder that holds files.
    #[error("{path}: {what}; resume the run in it, choose another folder, or force a new run to replace its files")]
    RunFolder { path: PathBuf, what: &'static str },
    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("{path}: cannot write: {message}")]
    Write { path: PathBuf, message: String },
}
