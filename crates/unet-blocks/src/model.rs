//! The model of a plan: a file path or a built-in name, its bytes' sha256 (so that every
//! worker checks it predicts with the planned model), and the predictor built from it on the
//! CPU backend.

use std::path::Path;

use sha2::{Digest, Sha256};
use unet_infer::{Predictor, PredictorOptions};
use unet_nn::{CpuBackend, ModelFile, Padding};

use crate::error::{BlocksError, Result};

/// A loaded model and how the plan names it.
pub(crate) struct LoadedModel {
    /// The absolute path of the file, or the built-in name.
    pub name: String,
    /// sha256 of the file's (or the built-in model's) bytes, lower-case hex.
    pub sha256: String,
    /// The model file.
    pub file: ModelFile,
}

/// Loads `model`: a file when that path exists (named by its absolute path), else a built-in
/// model of that name (as `unet::Model::load` does). Refuses same-padding models.
pub(crate) fn load(model: &str) -> Result<LoadedModel> {
    let path = Path::new(model);
    let loaded = if path.exists() {
        let abs = path.canonicalize().map_err(|e| BlocksError::io(path, e))?;
        let name = abs
            .to_str()
            .ok_or_else(|| BlocksError::Options(format!("model path {} is not valid UTF-8; rename it", abs.display())))?
            .to_string();
        let bytes = std::fs::read(&abs).map_err(|e| BlocksError::io(&abs, e))?;
        let file = ModelFile::from_bytes(&bytes, &abs)?;
        LoadedModel { name, sha256: sha256_hex(&bytes), file }
    } else if let Some(builtin) = unet_models::find(model) {
        LoadedModel { name: model.to_string(), sha256: sha256_hex(builtin.bytes), file: builtin.load()? }
    } else {
        let builtin: Vec<&str> = unet_models::MODELS.iter().map(|m| m.name).collect();
        return Err(BlocksError::ModelNotFound { name: model.to_string(), builtin: builtin.join(", ") });
    };
    if loaded.file.config.padding == Padding::Same {
        return Err(BlocksError::SamePadding { model: loaded.name });
    }
    Ok(loaded)
}

/// Lower-case hex sha256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

impl LoadedModel {
    /// The predictor of this model on the CPU: `tile` as given (checked) or chosen for the
    /// memory budget.
    pub fn predictor(
        &self,
        tile: Option<usize>,
        batch_tiles: usize,
        memory_mb: Option<f64>,
    ) -> Result<Predictor<CpuBackend>> {
        let device = Default::default();
        let net = self.file.model::<CpuBackend>(&device, Path::new(&self.name))?;
        let opts = PredictorOptions { tile, batch_tiles, memory_mb };
        Predictor::new(net, self.file.config.clone(), self.file.normalization, device, &opts)
            .map_err(|source| BlocksError::Predict { context: format!("model {}", self.name), source })
    }
}
