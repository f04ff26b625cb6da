//! The crate's one error type, [`BlocksError`]: every message names the value or path at fault
//! and what to do about it.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, BlocksError>;

/// What can go wrong planning, running or finalizing a block-by-block prediction.
#[derive(Debug, thiserror::Error)]
pub enum BlocksError {
    /// Reading the input or writing the output store (the message names the store and the fix).
    #[error(transparent)]
    Zarr(#[from] unet_zarr::ZarrError),

    /// Loading the model file (the message names the file and the fix).
    #[error(transparent)]
    Model(#[from] unet_nn::NnError),

    /// Writing a file of the plan or its markers (the message names the file).
    #[error(transparent)]
    Write(#[from] unet_io::IoError),

    /// The model is neither a file nor a built-in model.
    #[error("model {name}: no such file and no built-in model of that name; give a model file or one of: {builtin}")]
    ModelNotFound {
        /// The name given.
        name: String,
        /// The built-in model names.
        builtin: String,
    },

    /// A same-padding model: blocks need valid padding.
    #[error(
        "model {model}: has same padding, whose blended tiles cannot be predicted block by block; use a valid-padding model"
    )]
    SamePadding {
        /// The model.
        model: String,
    },

    /// The model file is not the one the plan was made with.
    #[error(
        "model {model}: its sha256 is {found} but the plan {plan} was made with sha256 {expected}; restore the model the plan was made with, or plan a new output"
    )]
    ModelChanged {
        /// The model.
        model: String,
        /// The plan file.
        plan: PathBuf,
        /// The plan's sha256.
        expected: String,
        /// The model's sha256 now.
        found: String,
    },

    /// The input image does not suit the model or the plan.
    #[error("{input}: {reason}")]
    Input {
        /// The input image.
        input: PathBuf,
        /// What is wrong and what would fix it.
        reason: String,
    },

    /// A [`PlanOptions`](crate::PlanOptions) value out of range.
    #[error("invalid plan option: {0}")]
    Options(String),

    /// The predictor refused a tile or region.
    #[error("{context}: {source}")]
    Predict {
        /// What was being predicted (the model's tile choice, or a block).
        context: String,
        /// The predictor's error.
        #[source]
        source: unet_infer::InferError,
    },

    /// A file or folder that cannot be read, listed or removed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A JSON file (plan or marker) that does not parse.
    #[error("{path}: does not parse ({source}); the file is damaged: restore it, or plan a new output")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },

    /// A plan, marker or store that is present but inconsistent.
    #[error("{path}: {reason}")]
    Corrupt {
        /// The file or store at fault.
        path: PathBuf,
        /// What is wrong and what would fix it.
        reason: String,
    },

    /// A block id that the plan does not have.
    #[error("block {id} does not exist: the plan {plan} has {count} blocks, ids 0 to {last}")]
    UnknownBlock {
        /// The id asked for.
        id: usize,
        /// The plan file.
        plan: PathBuf,
        /// Number of blocks of the plan.
        count: usize,
        /// The last valid id (`count - 1`).
        last: usize,
    },

    /// [`finalize`](crate::finalize) before every block is done.
    #[error("{output}: {count} of {total} blocks are not done (ids {ids}); predict them before finalizing")]
    MissingBlocks {
        /// The output store.
        output: PathBuf,
        /// How many blocks are not done.
        count: usize,
        /// Number of blocks of the plan.
        total: usize,
        /// The first 20 ids not done, comma-separated.
        ids: String,
    },

    /// Blocks cannot run again once finalize has renumbered the instance labels.
    #[error(
        "{output}: is finalized (its instance labels were renumbered), so block {id} cannot be written again; plan a new output to predict again"
    )]
    Finalized {
        /// The output store.
        output: PathBuf,
        /// The block that was to run.
        id: usize,
    },

    /// A shard index or count that cannot be used.
    #[error("shard: {0}")]
    Shard(String),
}

impl BlocksError {
    /// An [`BlocksError::Io`] error.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BlocksError::Io { path: path.into(), source }
    }

    /// A [`BlocksError::Corrupt`] error.
    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        BlocksError::Corrupt { path: path.into(), reason: reason.into() }
    }
}
