//! Large images block by block.
//!
//! An OME-Zarr image far larger than memory is predicted as a set of **blocks** whose write
//! regions are whole shards of the OME-Zarr output ([`unet_zarr::ZarrOutput`]), so that any
//! number of processes (Slurm array tasks, Kubernetes indexed jobs, a loop on one machine) can
//! each predict a subset of the blocks, in any order, into one output store; a final step joins
//! the instance labels across block faces and builds the pyramid.
//!
//! The result is **bit-identical** to predicting the whole image in one process: the same
//! probabilities, the same mask and the same instance labels, ids included
//! ([`unet_infer::instance_labels`] of the whole mask), whatever set of blocks each process took.
//! This holds because
//! - the input normalisation is the whole image's ([`Plan::affine`], computed once by [`plan`]
//!   from the whole plane read in strips, with the bits of [`unet_nn::Normalization::affine`]);
//! - every block is predicted with the whole image's tiles ([`unet_infer::Predictor::predict_region`]),
//!   and the shard edge is a multiple of the tiles' output step, so no tile straddles two blocks;
//! - each block labels the 4-connected components of its own mask, and [`finalize`] unites the
//!   components that touch across block faces and numbers the survivors of the size filter in
//!   raster order of their first pixel, as the whole-image labelling does.
//!
//! Blocks need a **valid-padding** model (a same-padding model blends overlapping tiles, whose
//! sums depend on the tiles present); [`plan`] refuses others. Test-time augmentation is not
//! offered (its mirrored tilings do not align with the blocks).
//!
//! # Steps
//! 1. [`plan`] (once): opens the input, fixes the tile, computes the normalisation, chooses the
//!    shard edge, creates the output store and writes the plan into it.
//! 2. [`run_blocks`] (any number of processes, each with its own ids, e.g. from
//!    [`shard_blocks`] with [`shard_from_env`] or [`parse_shard`]): predicts blocks and marks each
//!    one done. A block whose process was killed has no marker and is simply run again.
//! 3. [`finalize`] (once, after all blocks): checks that every block is done, renumbers the
//!    instance labels and builds the pyramid and the NGFF metadata.
//!
//! # On disk
//! ```text
//! OUT/                        the OME-Zarr output store (see unet_zarr::output)
//!   unet-plan.json            the Plan (serde JSON), written by plan()
//!   unet-blocks/<id>.json     done-marker of block <id>: its instance components
//!                             (pixel count and first pixel), written last by run_blocks
//!   unet-relabel.json         finalize: the final id of every block component
//!   unet-final.json           finalize: written once the instance labels are renumbered
//! ```
//! These files lie beside the Zarr nodes, which readers ignore.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod layout;
mod model;
mod plan;
mod shard;
mod stitch;
mod worker;

pub use error::{BlocksError, Result};
pub use layout::PLAN_FILE;
pub use plan::{Block, DEFAULT_TILE_BUDGET_MB, Plan, PlanOptions, load_plan, plan};
pub use shard::{parse_shard, shard_blocks, shard_from_env};
pub use stitch::{FinalizeSummary, finalize};
pub use unet_infer::Region;
pub use unet_zarr::ProbDtype;
pub use worker::{BlockEvent, RunSummary, run_blocks};
