//! Overlap-tile inference (Fig. 2 of the paper).
//!
//! The output tiles partition the image; each input tile is its output tile plus the
//! network's border, filled by mirroring where it falls outside the image. Tile origins
//! lie on a grid of `2^depth` pixels, so every output pixel sees the same pooling grid
//! whatever the tile size: predictions are tiling-invariant. `same`-padding models use
//! overlapping tiles blended with a Gaussian window instead.

#![forbid(unsafe_code)]

mod distance;
mod error;
mod memory;
mod mirror;
mod postprocess;
mod predictor;
mod probabilities;
mod tiling;
mod tta;

pub use distance::euclidean_distance;
pub use error::{InferError, Result};
pub use memory::{available_memory_mb, estimate_tile_memory_mb};
pub use mirror::{mirror_index, mirror_window};
pub use postprocess::{argmax_mask, instance_labels, overlay, split_touching, threshold_mask};
pub use predictor::{Predictor, PredictorOptions, Region};
pub use probabilities::{Probabilities, foreground};
pub use tiling::{Tile, TilePlan};
pub use tta::{SYMMETRIES, Symmetry};
pub use unet_grid::Grid;
