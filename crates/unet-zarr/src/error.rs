//! The crate's one error type, [`ZarrError`]: every message names the store path at fault
//! and says what to do about it.

use std::path::{Path, PathBuf};

/// Errors of OME-Zarr input and output. Bad input (a missing array, wrong dimensions, a region
/// out of bounds, a corrupt chunk) is always one of these, never a panic.
#[derive(Debug, thiserror::Error)]
pub enum ZarrError {
    /// The path holds neither Zarr v3 (`zarr.json`) nor Zarr v2 (`.zgroup`, `.zarray`) metadata.
    #[error(
        "{path}: not a Zarr group or array (no zarr.json, .zgroup or .zarray); give the OME-Zarr image group or an array"
    )]
    NotZarr {
        /// The path given.
        path: PathBuf,
    },

    /// A Zarr group without NGFF `multiscales` metadata.
    #[error("{path}: not an OME-Zarr image (no multiscales in zarr.json or .zattrs); give the image group or an array")]
    NotOmeZarr {
        /// The group's path.
        path: PathBuf,
    },

    /// NGFF or Zarr metadata that is present but unusable.
    #[error("{path}: bad metadata: {reason}")]
    BadMetadata {
        /// The group or array whose metadata is at fault.
        path: PathBuf,
        /// What is wrong and what would fix it.
        reason: String,
    },

    /// An array whose data type cannot be read as samples.
    #[error("{path}: data type {dtype} is not supported; store the image as an integer or floating-point array")]
    UnsupportedDataType {
        /// The array.
        path: PathBuf,
        /// The data type as the metadata names it.
        dtype: String,
    },

    /// A plane or pixel region outside the array.
    #[error("{path}: {what}")]
    OutOfBounds {
        /// The array or store.
        path: PathBuf,
        /// The request and the valid range.
        what: String,
    },

    /// A data buffer whose length does not match the region it is written to.
    #[error("{path}: {what} buffer holds {got} values, the region needs {expected}")]
    BufferSize {
        /// The store.
        path: PathBuf,
        /// Which buffer (probabilities, mask, instances).
        what: &'static str,
        /// Values the region needs.
        expected: usize,
        /// Values given.
        got: usize,
    },

    /// An [`OutputSpec`](crate::OutputSpec) that cannot be made into a store.
    #[error("{path}: invalid output spec: {reason}")]
    BadSpec {
        /// The store that was to be created.
        path: PathBuf,
        /// What is wrong and what would fix it.
        reason: String,
    },

    /// [`ZarrOutput::create`](crate::ZarrOutput::create) refuses to touch an existing path.
    #[error("{path}: already exists; remove it or choose another output path")]
    Exists {
        /// The existing path.
        path: PathBuf,
    },

    /// A write or read of an array the output was created without.
    #[error("{path}: this output has no {what} array; create it with {fix}")]
    NotInOutput {
        /// The store.
        path: PathBuf,
        /// The missing array (probabilities, mask, instances).
        what: &'static str,
        /// The spec setting that would have made it.
        fix: &'static str,
    },

    /// A file-system error outside `zarrs` (creating the store, reading metadata files).
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// JSON metadata that does not parse.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The metadata file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },

    /// An error from the `zarrs` library (missing or corrupt chunks, codec errors, I/O).
    #[error("{path}: {source}")]
    Zarr {
        /// The array or group.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// Result with a [`ZarrError`].
pub type Result<T> = std::result::Result<T, ZarrError>;

impl ZarrError {
    /// Wraps a `zarrs` (or other library) error with the path it concerns.
    pub(crate) fn zarr(
        path: impl AsRef<Path>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> ZarrError {
        ZarrError::Zarr { path: path.as_ref().to_path_buf(), source: source.into() }
    }

    pub(crate) fn bad_metadata(path: impl AsRef<Path>, reason: impl Into<String>) -> ZarrError {
        ZarrError::BadMetadata { path: path.as_ref().to_path_buf(), reason: reason.into() }
    }

    pub(crate) fn out_of_bounds(path: impl AsRef<Path>, what: impl Into<String>) -> ZarrError {
        ZarrError::OutOfBounds { path: path.as_ref().to_path_buf(), what: what.into() }
    }

    pub(crate) fn io(path: impl AsRef<Path>, source: std::io::Error) -> ZarrError {
        ZarrError::Io { path: path.as_ref().to_path_buf(), source }
    }
}
