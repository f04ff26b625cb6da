//! Checkpoints: the model's parameters, the optimiser's state and the step, in one
//! safetensors file written atomically, enough to continue a run exactly.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use unet_nn::{NamedTensor, UNet, read_safetensors, to_safetensors_bytes};

use crate::error::{Result, TrainError};
use crate::optim::Optimizer;

const FORMAT: &str = "unet-checkpoint";
const VERSION: &str = "1";

/// What a checkpoint restores.
pub struct Restored {
    pub step: u64,
    pub best: Option<f64>,
    pub model_tensors: Vec<NamedTensor>,
    pub config_toml: String,
}

fn flat<B: burn::tensor::backend::Backend>(name: String, t: &Tensor<B, 1>) -> NamedTensor {
    NamedTensor {
        name,
        shape: t.dims().to_vec(),
        data: t.clone().into_data().convert::<f32>().to_vec::<f32>().expect("f32"),
    }
}

/// Writes a checkpoint atomically.
pub fn save<B: AutodiffBackend>(
    path: &Path,
    model: &UNet<B>,
    opt: &Optimizer<B>,
    step: u64,
    best: Option<f64>,
    config_toml: &str,
) -> Result<()> {
    let mut tensors: Vec<NamedTensor> =
        model.named_tensors().into_iter().map(|t| NamedTensor { name: format!("model.{}", t.name), ..t }).collect();
    for (i, m) in opt.first.iter().enumerate() {
        if let Some(m) = m {
            tensors.push(flat(format!("opt.first.{i}"), m));
        }
    }
    for (i, v) in opt.second.iter().enumerate() {
        if let Some(v) = v {
            tensors.push(flat(format!("opt.second.{i}"), v));
        }
    }
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("format_version".to_string(), VERSION.to_string());
    meta.insert("step".to_string(), step.to_string());
    meta.insert("opt_t".to_string(), opt.t.to_string());
    meta.insert("best".to_string(), best.map(|b| b.to_string()).unwrap_or_default());
    meta.insert("config".to_string(), config_toml.to_string());
    let err = |message: String| TrainError::Write { path: path.to_path_buf(), message };
    let bytes = to_safetensors_bytes(&tensors, meta).map_err(err)?;
    unet_io::AtomicFile::write_bytes(path, &bytes, true).map_err(|e| err(e.to_string()))
}

/// Reads a checkpoint and restores the optimiser state into `opt`.
pub fn load<B: AutodiffBackend>(path: &Path, opt: &mut Optimizer<B>, device: &B::Device) -> Result<Restored> {
    let bad = |message: String| TrainError::Checkpoint { path: path.to_path_buf(), message };
    let (meta, tensors) = read_safetensors(path)?;
    if meta.get("format").map(String::as_str) != Some(FORMAT)
        || meta.get("format_version").map(String::as_str) != Some(VERSION)
    {
        return Err(bad("not a unet checkpoint of format version 1".into()));
    }
    let num = |k: &str| {
        meta.get(k).and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| bad(format!("no '{k}' in the checkpoint")))
    };
    let step = num("step")?;
    opt.t = num("opt_t")?;
    let best = meta.get("best").and_then(|b| b.parse::<f64>().ok());
    let mut model_tensors = Vec::new();
    opt.first.clear();
    opt.second.clear();
    for t in tensors {
        if let Some(name) = t.name.strip_prefix("model.") {
            model_tensors.push(NamedTensor { name: name.to_string(), ..t });
        } else if let Some((slot, i)) = t.name.strip_prefix("opt.").and_then(|r| r.split_once('.')) {
            let i: usize = i.parse().map_err(|_| bad(format!("bad tensor name '{}'", t.name)))?;
            let v = Some(Tensor::<B::InnerBackend, 1>::from_data(TensorData::new(t.data, [t.shape[0]]), device));
            let list = if slot == "first" { &mut opt.first } else { &mut opt.second };
            if list.len() <= i {
                list.resize(i + 1, None);
            }
            list[i] = v;
        }
    }
    let config_toml = meta.get("config").cloned().unwrap_or_default();
    Ok(Restored { step, best, model_tensors, config_toml })
}
