//! OME-Zarr images in and out.
//!
//! - [`ZarrImage`] reads regions of 2D (and z/t-stacked, multi-channel) OME-NGFF images: NGFF 0.4
//!   on Zarr v2 and NGFF 0.5 on Zarr v3, or bare Zarr arrays.
//! - [`ZarrOutput`] creates a sharded Zarr v3 / NGFF 0.5 store for a prediction (probabilities
//!   and a `labels` group with a mask and instance labels), writes regions of it, and
//!   [`finalize`](ZarrOutput::finalize) builds the pyramid and the full metadata.
//!
//! Workers of a cluster may write one output store at once only if each writes **disjoint whole
//! shards** ([`ZarrOutput::shard_rect`]); a write that covers part of a shard reads, modifies
//! and rewrites that shard, so two writers sharing a shard lose data. See [`output`] for the
//! layout.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod input;
mod ngff;
pub mod output;
mod pyramid;

pub use error::{Result, ZarrError};
pub use input::ZarrImage;
pub use ngff::PixelSize;
pub use output::{OutputSpec, ProbDtype, ProbSpec, ZarrOutput};
