//! Model files: one self-describing safetensors file per model. The tensors are the
//! network's named parameters (see [`crate::params`]); the metadata holds the format tag
//! and version, the network config and the input normalisation as JSON, and free-form
//! provenance (e.g. training steps), so a file loads without any other file.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::tensor::backend::Backend;
use safetensors::{Dtype, SafeTensors};

use crate::config::UNetConfig;
use crate::error::{NnError, Result};
use crate::model::UNet;
use crate::normalization::Normalization;
use crate::params::{NamedTensor, check_tensor_shapes};

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

/// The length of a safetensors header: the first 8 bytes, little-endian.
const HEADER_LEN_BYTES: usize = 8;

/// What a safetensors header claims, checked against the file before any tensor is read:
/// the header fits the file, every tensor is `F32`, and the tensors' shapes need exactly
/// the bytes the file holds after the header. A header that claims a terabyte is a clear
/// error here instead of an allocation later.
fn check_claims(bytes: &[u8]) -> std::result::Result<(), String> {
    let file_len = bytes.len();
    let Some(len_bytes) = bytes.get(..HEADER_LEN_BYTES) else {
        return Err(format!("the file holds {file_len} bytes, less than a safetensors header"));
    };
    let mut n = [0u8; HEADER_LEN_BYTES];
    n.copy_from_slice(len_bytes);
    let n = u64::from_le_bytes(n);
    let room = (file_len - HEADER_LEN_BYTES) as u64;
    if n > room {
        return Err(format!(
            "the header claims {n} bytes but the file holds {file_len} bytes; the file is truncated or damaged"
        ));
    }
    let header = &bytes[HEADER_LEN_BYTES..HEADER_LEN_BYTES + n as usize];
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| format!("the header is not valid JSON: {e}"))?;
    let mut claimed: u128 = 0;
    for (name, info) in header.iter().filter(|(k, _)| k.as_str() != "__metadata__") {
        let dtype = info.get("dtype").and_then(|d| d.as_str()).unwrap_or("?");
        if dtype != "F32" {
            return Err(format!("tensor '{name}' is {dtype}, expected F32"));
        }
        let shape: Option<Vec<u64>> =
            info.get("shape").and_then(|s| s.as_array()).and_then(|s| s.iter().map(|d| d.as_u64()).collect());
        let shape = shape.ok_or_else(|| format!("tensor '{name}' has no shape"))?;
        let bytes = shape.iter().try_fold(4u128, |acc, &d| acc.checked_mul(u128::from(d)));
        claimed = bytes.and_then(|b| claimed.checked_add(b)).unwrap_or(u128::MAX);
        if claimed > u128::from(room - n) {
            break;
        }
    }
    let data = u128::from(room - n);
    if claimed != data {
        let claim = if claimed == u128::MAX { "more than 2^128".to_string() } else { claimed.to_string() };
        return Err(format!(
            "the tensors' shapes claim {claim} bytes but the file holds {data} bytes of tensor data; the file is truncated or damaged"
        ));
    }
    Ok(())
}

/// Reads every `f32` tensor and the metadata of a safetensors file. The header's claims
/// are checked against the file's size before anything is allocated for the tensors.
pub fn read_safetensors(path: &Path) -> Result<(HashMap<String, String>, Vec<NamedTensor>)> {
    // `fs::read` reserves fallibly: a file larger than memory is an error, not an abort.
    let bytes = std::fs::read(path).map_err(|error| NnError::Read { path: path.to_path_buf(), error })?;
    parse_safetensors(&bytes, path)
}

/// As [`read_safetensors`], from the file's bytes; `path` names them in errors.
pub fn parse_safetensors(bytes: &[u8], path: &Path) -> Result<(HashMap<String, String>, Vec<NamedTensor>)> {
    let corrupt = |message: String| NnError::Corrupt { path: path.to_path_buf(), message };
    check_claims(bytes).map_err(corrupt)?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| corrupt(e.to_string()))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut tensors = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(corrupt(format!("tensor '{name}' is {:?}, expected F32", view.dtype())));
        }
        let mut data = Vec::new();
        data.try_reserve_exact(view.data().len() / 4).map_err(|_| NnError::Weights {
            path: path.to_path_buf(),
            message: format!("not enough memory for tensor '{name}' ({} bytes)", view.data().len()),
        })?;
        data.extend(view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
        tensors.push(NamedTensor { name, shape: view.shape().to_vec(), data });
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((meta.metadata().clone().unwrap_or_default(), tensors))
}

/// One tensor's entry in a safetensors header.
#[derive(serde::Serialize)]
struct TensorEntry<'a> {
    dtype: &'static str,
    shape: &'a [usize],
    data_offsets: [usize; 2],
}

/// A header entry: the metadata or a tensor.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum HeaderEntry<'a> {
    Metadata(&'a BTreeMap<String, String>),
    Tensor(TensorEntry<'a>),
}

/// Serialises named tensors and metadata to safetensors bytes. The output depends only on
/// the tensors and the metadata, never on the order they come in: header keys (tensor
/// names, metadata keys) are sorted, tensor data follows in name order, so the same model
/// gives the same bytes.
pub fn to_safetensors_bytes(
    tensors: &[NamedTensor],
    meta: impl IntoIterator<Item = (String, String)>,
) -> std::result::Result<Vec<u8>, String> {
    let meta: BTreeMap<String, String> = meta.into_iter().collect();
    let mut sorted: Vec<&NamedTensor> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut header: BTreeMap<&str, HeaderEntry> = BTreeMap::new();
    header.insert("__metadata__", HeaderEntry::Metadata(&meta));
    let mut offset = 0usize;
    for t in &sorted {
        if t.data.len() != t.shape.iter().product::<usize>() {
            return Err(format!("tensor '{}' holds {} values for shape {:?}", t.name, t.data.len(), t.shape));
        }
        let end = offset + 4 * t.data.len();
        let entry = HeaderEntry::Tensor(TensorEntry { dtype: "F32", shape: &t.shape, data_offsets: [offset, end] });
        if t.name == "__metadata__" || header.insert(&t.name, entry).is_some() {
            return Err(format!("tensor name '{}' is used twice or reserved", t.name));
        }
        offset = end;
    }
    let mut json = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
    // The data starts 8-byte aligned, padded with spaces as the format does.
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(HEADER_LEN_BYTES + json.len() + offset);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for t in sorted {
        out.extend(t.data.iter().flat_map(|v| v.to_le_bytes()));
    }
    Ok(out)
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
        let mut meta = BTreeMap::new();
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
        Self::from_parts(meta, tensors, path)
    }

    /// As [`ModelFile::load`], from a file's bytes (a built-in model); `path` names them
    /// in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let (meta, tensors) = parse_safetensors(bytes, path)?;
        Self::from_parts(meta, tensors, path)
    }

    fn from_parts(meta: HashMap<String, String>, tensors: Vec<NamedTensor>, path: &Path) -> Result<Self> {
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
        // Every tensor against the config before anything is built from it: a config that
        // disagrees with the weights (say width 16384 over a width-2 network) stops here.
        check_tensor_shapes(&config, &tensors).map_err(|m| NnError::Weights {
            path: path.to_path_buf(),
            message: format!("{m}; the file's config and weights disagree, the file is damaged"),
        })?;
        Ok(ModelFile { config, normalization, info, tensors })
    }

    /// Builds the network on `device` with the stored weights. The tensors are checked
    /// against the config, and the memory building needs against the memory available,
    /// before anything is allocated.
    pub fn model<B: Backend>(&self, device: &B::Device, path: &Path) -> Result<UNet<B>> {
        let weights = |message: String| NnError::Weights { path: path.to_path_buf(), message };
        check_tensor_shapes(&self.config, &self.tensors).map_err(&weights)?;
        // The initialised network, a copy of every stored tensor and the loaded network.
        let values: u128 = self.tensors.iter().map(|t| t.data.len() as u128).sum();
        let needed = 3 * 4 * values;
        if let Some(available) = unet_io::available_memory_bytes()
            && needed > u128::from(available)
        {
            return Err(weights(format!(
                "building the network needs about {} MiB of memory but {} MiB are available; free memory or use a smaller model",
                needed >> 20,
                available >> 20
            )));
        }
        self.config
            .init::<B>(0, device)?
            .load_named_tensors(&self.tensors)
            .map_err(|message| NnError::Weights { path: path.to_path_buf(), message })
    }
}
