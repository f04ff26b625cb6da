//! The U-Net of Ronneberger, Fischer and Brox (2015) on burn 0.21.
//!
//! [`UNetConfig`] describes the network (depth, width, classes, padding, batch norm, dropout)
//! and [`UNetConfig::init`] builds a [`UNet`] with the paper's He initialisation from a seed.
//! [`Geometry`] answers which tile sizes the network takes and what it returns for them.
//! [`ModelFile`] stores a model with its config and input normalisation in one safetensors
//! file. [`Normalization`] maps raw image samples to network input. The convolutions run
//! through [`UnetBackend`] (see [`ops`]): fast CPU kernels with their own backward on Flex,
//! burn's own ops elsewhere.

#![forbid(unsafe_code)]

mod backend;
mod block;
mod config;
mod error;
mod geometry;
mod init;
mod model;
mod model_file;
mod normalization;
pub mod ops;
mod params;

#[cfg(feature = "cuda")]
pub use backend::CudaBackend;
pub use backend::{CpuBackend, DeviceSpec};
pub use config::{Padding, UNetConfig};
pub use error::{NnError, Result};
pub use geometry::Geometry;
pub use model::UNet;
pub use model_file::{
    MODEL_FORMAT, MODEL_FORMAT_VERSION, ModelFile, parse_safetensors, read_safetensors, to_safetensors_bytes,
};
pub use normalization::{
    Affine, DEFAULT_PERCENTILES, Normalization, PERCENTILE_SPAN, intensity_unit, percentiles, robust_range,
};
pub use ops::UnetBackend;
pub use params::NamedTensor;
