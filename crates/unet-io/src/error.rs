//! The error type of the I/O crate: every variant names the file involved and, where there
//! is one, the fix.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, IoError>;

/// What can go wrong reading, pairing or writing images.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("{path}: cannot read the file ({error}); check the path and its permissions")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{path}: cannot write the file: {error}")]
    Write { path: PathBuf, error: std::io::Error },
    #[error(
        "{path}: not a readable {format} image ({message}); the file is damaged or not a {format}: export it again"
    )]
    Decode { path: PathBuf, format: &'static str, message: String },
    #[error("{path}: cannot encode the image ({message})")]
    Encode { path: PathBuf, message: String },
    #[error("{path}: unsupported file type; use .png, .tif or .tiff")]
    UnsupportedFormat { path: PathBuf },
    #[error("{path}: unsupported pixel format {what}; convert it to 8/16-bit gray, RGB or 32-bit float")]
    UnsupportedPixels { path: PathBuf, what: String },
    #[error("{path}: holds {pages} pages where one image was expected; pass a single-page file")]
    NotSinglePage { path: PathBuf, pages: usize },
    #[error("{path}: pages differ in size ({first:?} vs {other:?}); all pages of a stack must match")]
    StackSizeMismatch { path: PathBuf, first: (usize, usize), other: (usize, usize) },
    #[error("{path}: contains NaN or infinite values; clean the image before using it")]
    NotFinite { path: PathBuf },
    #[error(
        "{path}: declares {declared}, which needs about {needed_mib} MiB of memory but {available_mib} MiB are available; crop or split the image, or free memory"
    )]
    TooLarge { path: PathBuf, declared: String, needed_mib: u128, available_mib: u128 },
    #[error("{path}: is empty (0 pixels); remove it or export the image again")]
    EmptyImage { path: PathBuf },
    #[error(
        "{image} is {image_size:?} (w x h) but its label {label} is {label_size:?}; image and label must have the same size"
    )]
    SizeMismatch { image: PathBuf, label: PathBuf, image_size: (usize, usize), label_size: (usize, usize) },
    #[error("{path}: has no partner named '{stem}.*' in {dir}; add it or remove the file")]
    MissingPartner { path: PathBuf, stem: String, dir: PathBuf },
    #[error("{dir}: holds no .png/.tif/.tiff images")]
    EmptyDir { dir: PathBuf },
    #[error("{path}: two files share the stem '{stem}'; keep one image per stem")]
    DuplicateStem { path: PathBuf, stem: String },
    #[error("{path}: label values {values} do not fit {expected}; {fix}")]
    LabelValues { path: PathBuf, values: String, expected: String, fix: &'static str },
    #[error("{path}: label has no foreground (all pixels are 0); annotate at least one object or drop the file")]
    EmptyLabel { path: PathBuf },
    #[error("{path}: exists already; choose another path, or allow replacing it")]
    Exists { path: PathBuf },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}
