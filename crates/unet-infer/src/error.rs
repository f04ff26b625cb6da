//! The error type of inference.

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, InferError>;

/// What can go wrong predicting an image.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("the image has {found} channel(s) but the model takes {expected}; {fix}")]
    Channels { found: usize, expected: usize, fix: &'static str },
    #[error("{0}")]
    Tile(String),
    #[error(transparent)]
    Nn(#[from] unet_nn::NnError),
}
