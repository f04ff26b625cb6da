//! The files this crate keeps in the output store beside the Zarr nodes (see the
//! [crate documentation](crate)): their paths, their JSON shapes, and atomic reads and writes.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{BlocksError, Result};

/// File name of the plan in the output store's root (`OUT/unet-plan.json`): a store holding
/// it was made by [`plan`](crate::plan).
pub const PLAN_FILE: &str = "unet-plan.json";
/// The folder of the blocks' done-markers.
pub(crate) const MARKER_DIR: &str = "unet-blocks";
/// The final ids of the block components, written by finalize before it renumbers.
pub(crate) const RELABEL_FILE: &str = "unet-relabel.json";
/// Written by finalize once the instance labels are renumbered.
pub(crate) const FINAL_FILE: &str = "unet-final.json";

/// The done-marker of block `id`.
pub(crate) fn marker_path(output: &Path, id: usize) -> PathBuf {
    output.join(MARKER_DIR).join(format!("{id}.json"))
}

/// A block's done-marker: the 4-connected components of its mask's foreground.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Marker {
    /// The block's id.
    pub block: usize,
    /// The block's plane.
    pub plane: usize,
    /// Component `l` (local id `l`, `1..=n`) is entry `l - 1`: `[pixels, y, x]`, its pixel
    /// count and its first pixel in raster order (global coordinates). Empty without
    /// instance labels.
    pub components: Vec<[u64; 3]>,
}

/// What finalize decided before renumbering: the final id of every block component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Relabel {
    /// Instances per plane.
    pub counts: Vec<u64>,
    /// `ids[block][l - 1]`: final id of local component `l` of the block (0: removed as too
    /// small).
    pub ids: Vec<Vec<u64>>,
}

/// Written by finalize once the instance labels are renumbered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Final {
    /// Number of blocks.
    pub blocks: usize,
    /// Instances per plane (empty without instance labels).
    pub instances: Vec<u64>,
}

/// Writes `value` as JSON to `path` atomically (temp file + rename), replacing a file there.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes =
        serde_json::to_vec_pretty(value).map_err(|e| BlocksError::Json { path: path.to_path_buf(), source: e })?;
    unet_io::AtomicFile::write_bytes(path, &bytes, true)?;
    Ok(())
}

/// Reads JSON from `path`; `Ok(None)` when there is no such file.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| BlocksError::Json { path: path.to_path_buf(), source: e }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BlocksError::io(path, e)),
    }
}

/// Removes `path`; no error when it is not there.
pub(crate) fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BlocksError::io(path, e)),
    }
}
