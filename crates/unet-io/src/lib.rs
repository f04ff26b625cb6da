//! Image, label and stack I/O for unet.
//!
//! Reads PNG and TIFF (8- and 16-bit integer, 32-bit float, multi-page stacks, gray or RGB)
//! into planar `f32` images, reads label images (binary masks or instance ids), pairs image
//! and label folders by file stem, and writes results atomically (temp file + rename), never
//! replacing an existing file unless asked to.

#![forbid(unsafe_code)]

mod atomic;
mod error;
mod image;
mod label;
mod memory;
mod pairing;
mod read;
mod write;

pub use atomic::{AtomicFile, check_writable};
pub use error::{IoError, Result};
pub use image::{Image, SampleKind};
pub use label::{Label, LabelKind, read_label, read_label_stack};
pub use memory::available_memory_bytes;
pub use pairing::{ImagePair, list_images, pair_by_stem, stem_key};
pub use read::{ColorMode, read_image, read_stack};
pub use unet_grid::Grid;
pub use write::{BitDepth, write_image, write_labels};
