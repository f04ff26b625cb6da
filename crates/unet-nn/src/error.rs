//! The error type of the network crate.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, NnError>;

/// What can go wrong configuring, loading or saving a network.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    #[error(
        "tile size {size} is not valid for a depth-{depth} U-Net with {padding} padding; nearest valid sizes: {nearest}"
    )]
    InvalidTile { size: usize, depth: usize, padding: &'static str, nearest: String },
    #[error("invalid network config: {0}")]
    Config(String),
    #[error("{path}: cannot read the model file: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{path}: not a unet model file ({message}); pass a .safetensors file written by `unet train`")]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "{path}: model file format {found} is not supported by this unet (reads format {supported}); use a matching unet version"
    )]
    Version { path: PathBuf, found: String, supported: String },
    #[error("{path}: {message}")]
    Weights { path: PathBuf, message: String },
    #[error("{path}: cannot write the model file: {message}")]
    Write { path: PathBuf, message: String },
    #[error("unknown device '{0}'; use cpu, cuda or cuda:N")]
    Device(String),
}
