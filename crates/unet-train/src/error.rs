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
    #[error(
        "the loss became {value} at step {step}; the last good checkpoint is kept in {run}; lower the learning rate (--lr) and resume"
    )]
    NotFinite { step: u64, value: f32, run: PathBuf },
    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("{path}: cannot write: {message}")]
    Write { path: PathBuf, message: String },
}
