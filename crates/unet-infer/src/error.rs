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
    /// A region to predict that does not fit the image or its input.
    #[error("region: {0}")]
    Region(String),
    #[error("the image is {width} x {height} pixels; it needs at least one row and one column")]
    Empty { width: usize, height: usize },
    #[error(
        "the image holds {count} NaN or infinite value(s); replace them with finite values (say 0) before predicting"
    )]
    NotFinite { count: usize },
    #[error(transparent)]
    Nn(#[from] unet_nn::NnError),
}
