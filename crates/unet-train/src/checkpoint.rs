//! Checkpoints: the model's parameters, the optimiser's state, the moving average of the
//! weights and the step, in one safetensors file written atomically, enough to continue a
//! run exactly.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use unet_nn::{NamedTensor, UNet, read_safetensors, to_safetensors_bytes};

use crate::ema::Ema;
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
    ema: Option<&Ema<B::InnerBackend>>,
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
    if let Some(e) = ema {
        for (i, a) in e.avg.iter().enumerate() {
            tensors.push(flat(format!("ema.{i}"), a));
        }
    }
    let mut meta = HashMap::new();
    if let Some(e) = ema {
        meta.insert("ema_updates".to_string(), e.updates.to_string());
    }
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

/// Reads a checkpoint and restores the optimiser state into `opt` and the moving average
/// into `ema` (a checkpoint without one leaves `ema` empty: it starts again from the
/// restored weights).
pub fn load<B: AutodiffBackend>(
    path: &Path,
    opt: &mut Optimizer<B>,
    ema: Option<&mut Ema<B::InnerBackend>>,
    device: &B::Device,
) -> Result<Restored> {
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
    let mut averages: Vec<Option<Tensor<B::InnerBackend, 1>>> = Vec::new();
    // No list can be longer than the file has tensors (a larger index is a broken file,
    // not an allocation to attempt).
    let count = tensors.len();
    for t in tensors {
        // Optimiser state and moving average: flat tensors named `opt.first.{i}`,
        // `opt.second.{i}` and `ema.{i}`, put back at index `i` of their list.
        let (list, index) = if let Some(name) = t.name.strip_prefix("model.") {
            model_tensors.push(NamedTensor { name: name.to_string(), ..t });
            continue;
        } else if let Some(i) = t.name.strip_prefix("ema.") {
            (&mut averages, i)
        } else if let Some((slot, i)) = t.name.strip_prefix("opt.").and_then(|r| r.split_once('.')) {
            (if slot == "first" { &mut opt.first } else { &mut opt.second }, i)
        } else {
            continue;
        };
        let i = index.parse::<usize>().ok().filter(|&i| i < count);
        let (Some(i), &[n]) = (i, t.shape.as_slice()) else {
            return Err(bad(format!("bad tensor '{}' (shape {:?})", t.name, t.shape)));
        };
        if list.len() <= i {
            list.resize(i + 1, None);
        }
        list[i] = Some(Tensor::from_data(TensorData::new(t.data, [n]), device));
    }
    if let Some(e) = ema {
        match meta.get("ema_updates").and_then(|v| v.parse::<u64>().ok()) {
            Some(updates) if !averages.is_empty() => {
                e.avg = averages
                    .into_iter()
                    .enumerate()
                    .map(|(i, a)| a.ok_or_else(|| bad(format!("the moving average of parameter {i} is missing"))))
                    .collect::<Result<_>>()?;
                e.updates = updates;
            }
            _ => {
                tracing::warn!("{}: holds no moving average of the weights; it starts from this step", path.display());
                e.avg.clear();
                e.updates = 0;
            }
        }
    }
    let config_toml = meta.get("config").cloned().unwrap_or_default();
    Ok(Restored { step, best, model_tensors, config_toml })
}
