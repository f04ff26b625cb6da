//! Model files: one self-describing safetensors file per model. The tensors are the
//! network's named parameters (see [`crate::params`]); the metadata holds the format tag
//! and version, the network config and the input normalisation as JSON, and free-form
//! provenance (e.g. training steps), so a file loads without any other file.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::tensor::backend::Backend;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::config::UNetConfig;
use crate::error::{NnError, Result};
use crate::model::UNet;
use crate::normalization::Normalization;
use crate::params::NamedTensor;

/// The `format` metadata value of a unet model file.
pub const MODEL_FORMAT: &str = "unet-model";
/// The format version this build writes and reads.
pub const MODEL_FORMAT_VERSION: &str = "1";

/// A model as stored on disk; tensors sorted by name.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFile {
    pub config: UNetConfig,
    pub normalization: Normalization,
    /// Free-form provenance written beside the config (e.g. `steps`, `seed`).
    pub info: BTreeMap<String, String>,
    pub tensors: Vec<NamedTensor>,
}

/// Reads every `f32` tensor and the metadata of a safetensors file.
pub fn read_safetensors(path: &Path) -> Result<(HashMap<String, String>, Vec<NamedTensor>)> {
    let bytes = std::fs::read(path).map_err(|error| NnError::Read { path: path.to_path_buf(), error })?;
    let corrupt = |message: String| NnError::Corrupt { path: path.to_path_buf(), message };
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut tensors = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(corrupt(format!("tensor '{name}' is {:?}, expected F32", view.dtype())));
        }
        let data = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        tensors.push(NamedTensor { name, shape: view.shape().to_vec(), data });
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((meta.metadata().clone().unwrap_or_default(), tensors))
}

/// Serialises named tensors and metadata to safetensors bytes.
pub fn to_safetensors_bytes(
    tensors: &[NamedTensor],
    meta: HashMap<String, String>,
) -> std::result::Result<Vec<u8>, String> {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|t| t.data.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| TensorView::new(Dtype::F32, t.shape.clone(), b).map(|v| (t.name.clone(), v)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    safetensors::serialize(views, Some(meta)).map_err(|e| e.to_string())
}

impl ModelFile {
    /// Captures a model with its config and normalisation.
    pub fn from_model<B: Backend>(model: &UNet<B>, config: &UNetConfig, normalization: Normalization) -> Self {
        let mut tensors = model.named_tensors();
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        ModelFile { config: config.clone(), normalization, info: BTreeMap::new(), tensors }
    }

    /// Writes the file atomically; an existing file is replaced only with `force`.
    pub fn save(&self, path: &Path, force: bool) -> Result<()> {
        let write_err = |message: String| NnError::Write { path: path.to_path_buf(), message };
        let mut meta = HashMap::new();
        meta.insert("format".into(), MODEL_FORMAT.into());
        meta.insert("format_version".into(), MODEL_FORMAT_VERSION.into());
        meta.insert("unet_version".into(), env!("CARGO_PKG_VERSION").into());
        meta.insert("config".into(), serde_json::to_string(&self.config).map_err(|e| write_err(e.to_string()))?);
        meta.insert(
            "normalization".into(),
            serde_json::to_string(&self.normalization).map_err(|e| write_err(e.to_string()))?,
        );
        meta.insert("info".into(), serde_json::to_string(&self.info).map_err(|e| write_err(e.to_string()))?);
        let bytes = to_safetensors_bytes(&self.tensors, meta).map_err(write_err)?;
        unet_io::AtomicFile::write_bytes(path, &bytes, force).map_err(|e| write_err(e.to_string()))
    }

    /// Reads and checks a model file: format tag, version, config and tensor shapes.
    pub fn load(path: &Path) -> Result<Self> {
        let (meta, tensors) = read_safetensors(path)?;
        let corrupt = |message: String| NnError::Corrupt { path: path.to_path_buf(), message };
        match meta.get("format").map(String::as_str) {
            Some(MODEL_FORMAT) => {}
            Some(other) => return Err(corrupt(format!("format is '{other}'"))),
            None => return Err(corrupt("no 'format' metadata".into())),
        }
        let version = meta.get("format_version").cloned().unwrap_or_default();
        if version != MODEL_FORMAT_VERSION {
            return Err(NnError::Version {
                path: path.to_path_buf(),
                found: version,
                supported: MODEL_FORMAT_VERSION.into(),
            });
        }
        let field = |k: &str| meta.get(k).ok_or_else(|| corrupt(format!("no '{k}' metadata")));
        let config: UNetConfig =
            serde_json::from_str(field("config")?).map_err(|e| corrupt(format!("bad config: {e}")))?;
        config.validate().map_err(|e| corrupt(e.to_string()))?;
        let normalization: Normalization =
            serde_json::from_str(field("normalization")?).map_err(|e| corrupt(format!("bad normalization: {e}")))?;
        let info: BTreeMap<String, String> = match meta.get("info") {
            Some(s) => serde_json::from_str(s).map_err(|e| corrupt(format!("bad info: {e}")))?,
            None => BTreeMap::new(),
        };
        Ok(ModelFile { config, normalization, info, tensors })
    }

    /// Builds the network on `device` with the stored weights.
    pub fn model<B: Backend>(&self, device: &B::Device, path: &Path) -> Result<UNet<B>> {
        self.config
            .init::<B>(0, device)?
            .load_named_tensors(&self.tensors)
            .map_err(|message| NnError::Weights { path: path.to_path_buf(), message })
    }
}
