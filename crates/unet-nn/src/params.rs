//! Parameters by name: the bridge between a [`UNet`] and flat tensor files (our model
//! files and the PyTorch parity fixture). Names: `down.{level}.conv{1,2}.{weight,bias}`,
//! `down.{level}.bn{1,2}.{gamma,beta,running_mean,running_var}`, `upconv.{i}.{weight,bias}`
//! and `up.{i}...` (deepest first), `head.{weight,bias}`. Layouts are PyTorch's.

use std::collections::HashMap;

use burn::module::{Param, RunningState};
use burn::nn::BatchNorm;
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::tensor::{Tensor, TensorData, backend::Backend};

use crate::block::ConvBlock;
use crate::config::UNetConfig;
use crate::model::UNet;

/// One named `f32` tensor in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

fn named<B: Backend, const D: usize>(name: String, t: Tensor<B, D>) -> NamedTensor {
    let shape = t.dims().to_vec();
    let data = t.into_data().convert::<f32>().to_vec::<f32>().expect("f32 tensor data");
    NamedTensor { name, shape, data }
}

fn export_conv2d<B: Backend>(p: &str, c: &Conv2d<B>, out: &mut Vec<NamedTensor>) {
    out.push(named(format!("{p}.weight"), c.weight.val()));
    if let Some(b) = &c.bias {
        out.push(named(format!("{p}.bias"), b.val()));
    }
}

fn export_convt<B: Backend>(p: &str, c: &ConvTranspose2d<B>, out: &mut Vec<NamedTensor>) {
    out.push(named(format!("{p}.weight"), c.weight.val()));
    if let Some(b) = &c.bias {
        out.push(named(format!("{p}.bias"), b.val()));
    }
}

fn export_bn<B: Backend>(p: &str, bn: &Option<BatchNorm<B>>, out: &mut Vec<NamedTensor>) {
    if let Some(bn) = bn {
        out.push(named(format!("{p}.gamma"), bn.gamma.val()));
        out.push(named(format!("{p}.beta"), bn.beta.val()));
        out.push(named(format!("{p}.running_mean"), bn.running_mean.value()));
        out.push(named(format!("{p}.running_var"), bn.running_var.value()));
    }
}

fn export_block<B: Backend>(p: &str, b: &ConvBlock<B>, out: &mut Vec<NamedTensor>) {
    export_conv2d(&format!("{p}.conv1"), &b.conv1, out);
    export_bn(&format!("{p}.bn1"), &b.bn1, out);
    export_conv2d(&format!("{p}.conv2"), &b.conv2, out);
    export_bn(&format!("{p}.bn2"), &b.bn2, out);
}

impl UNetConfig {
    /// The name and shape of every tensor a network of this config holds, in the order of
    /// [`UNet::named_tensors`], computed without building the network: what a model file
    /// of this config must contain.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let conv = |out: &mut Vec<(String, Vec<usize>)>, p: &str, ci: usize, co: usize, k: usize| {
            out.push((format!("{p}.weight"), vec![co, ci, k, k]));
            out.push((format!("{p}.bias"), vec![co]));
        };
        let bn = |out: &mut Vec<(String, Vec<usize>)>, p: &str, c: usize| {
            if self.batch_norm {
                for s in ["gamma", "beta", "running_mean", "running_var"] {
                    out.push((format!("{p}.{s}"), vec![c]));
                }
            }
        };
        let block = |out: &mut Vec<(String, Vec<usize>)>, p: &str, ci: usize, co: usize| {
            conv(out, &format!("{p}.conv1"), ci, co, 3);
            bn(out, &format!("{p}.bn1"), co);
            conv(out, &format!("{p}.conv2"), co, co, 3);
            bn(out, &format!("{p}.bn2"), co);
        };
        let mut c = self.in_channels;
        for level in 0..=self.depth {
            let co = self.channels(level);
            block(&mut out, &format!("down.{level}"), c, co);
            c = co;
        }
        for (i, level) in (0..self.depth).rev().enumerate() {
            let co = self.channels(level);
            // Transposed convolution: PyTorch's [in, out, kh, kw].
            out.push((format!("upconv.{i}.weight"), vec![c, co, 2, 2]));
            out.push((format!("upconv.{i}.bias"), vec![co]));
            block(&mut out, &format!("up.{i}"), 2 * co, co);
            c = co;
        }
        conv(&mut out, "head", c, self.classes, 1);
        out
    }
}

/// Checks that `tensors` are exactly the tensors of `config` (names and shapes), without
/// building anything; the message names the first tensor that differs.
pub(crate) fn check_tensor_shapes(config: &UNetConfig, tensors: &[NamedTensor]) -> Result<(), String> {
    let expected = config.tensor_shapes();
    let have: HashMap<&str, &NamedTensor> = tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    for (name, shape) in &expected {
        let t = have.get(name.as_str()).ok_or_else(|| format!("missing tensor '{name}' that the config needs"))?;
        if &t.shape != shape {
            return Err(format!("tensor '{name}' has shape {:?}, the config needs {shape:?}", t.shape));
        }
        if t.data.len() != shape.iter().product::<usize>() {
            return Err(format!("tensor '{name}' holds {} values for shape {shape:?}", t.data.len()));
        }
    }
    if tensors.len() != expected.len() {
        let known: std::collections::HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
        let extra: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).filter(|n| !known.contains(n)).take(3).collect();
        if extra.is_empty() {
            return Err("some tensors appear twice".into());
        }
        return Err(format!("tensors not part of this network: {extra:?}"));
    }
    Ok(())
}

/// Looks tensors up by name and checks their shapes while a model is filled in.
struct Loader<'a, B: Backend> {
    map: HashMap<&'a str, &'a NamedTensor>,
    device: B::Device,
    used: usize,
}

impl<B: Backend> Loader<'_, B> {
    fn take<const D: usize>(&mut self, name: &str, like: Tensor<B, D>) -> Result<Tensor<B, D>, String> {
        let t = self.map.get(name).ok_or_else(|| format!("missing tensor '{name}'"))?;
        let expected = like.dims().to_vec();
        if t.shape != expected {
            return Err(format!("tensor '{name}' has shape {:?}, the config needs {:?}", t.shape, expected));
        }
        if t.data.len() != expected.iter().product::<usize>() {
            return Err(format!("tensor '{name}' holds {} values for shape {:?}", t.data.len(), expected));
        }
        self.used += 1;
        Ok(Tensor::from_data(TensorData::new(t.data.clone(), expected), &self.device))
    }

    fn param<const D: usize>(&mut self, name: &str, p: &mut Param<Tensor<B, D>>) -> Result<(), String> {
        *p = Param::from_tensor(self.take(name, p.val())?);
        Ok(())
    }

    fn conv2d(&mut self, p: &str, c: &mut Conv2d<B>) -> Result<(), String> {
        self.param(&format!("{p}.weight"), &mut c.weight)?;
        if let Some(b) = &mut c.bias {
            self.param(&format!("{p}.bias"), b)?;
        }
        Ok(())
    }

    fn convt(&mut self, p: &str, c: &mut ConvTranspose2d<B>) -> Result<(), String> {
        self.param(&format!("{p}.weight"), &mut c.weight)?;
        if let Some(b) = &mut c.bias {
            self.param(&format!("{p}.bias"), b)?;
        }
        Ok(())
    }

    fn bn(&mut self, p: &str, bn: &mut Option<BatchNorm<B>>) -> Result<(), String> {
        if let Some(bn) = bn {
            self.param(&format!("{p}.gamma"), &mut bn.gamma)?;
            self.param(&format!("{p}.beta"), &mut bn.beta)?;
            bn.running_mean = RunningState::new(self.take(&format!("{p}.running_mean"), bn.running_mean.value())?);
            bn.running_var = RunningState::new(self.take(&format!("{p}.running_var"), bn.running_var.value())?);
        }
        Ok(())
    }

    fn block(&mut self, p: &str, b: &mut ConvBlock<B>) -> Result<(), String> {
        self.conv2d(&format!("{p}.conv1"), &mut b.conv1)?;
        self.bn(&format!("{p}.bn1"), &mut b.bn1)?;
        self.conv2d(&format!("{p}.conv2"), &mut b.conv2)?;
        self.bn(&format!("{p}.bn2"), &mut b.bn2)
    }
}

impl<B: Backend> UNet<B> {
    /// Every parameter (and batch-norm statistic) with its name, in a fixed order.
    pub fn named_tensors(&self) -> Vec<NamedTensor> {
        let mut out = Vec::new();
        for (i, b) in self.down.iter().enumerate() {
            export_block(&format!("down.{i}"), b, &mut out);
        }
        for (i, (t, b)) in self.upconv.iter().zip(&self.up).enumerate() {
            export_convt(&format!("upconv.{i}"), t, &mut out);
            export_block(&format!("up.{i}"), b, &mut out);
        }
        export_conv2d("head", &self.head, &mut out);
        out
    }

    /// Replaces every parameter with the tensor of the same name. Missing names, wrong
    /// shapes and unused tensors are errors (described in the returned message).
    pub fn load_named_tensors(mut self, tensors: &[NamedTensor]) -> Result<Self, String> {
        let device = self.head.weight.val().device();
        let mut l = Loader::<B> { map: tensors.iter().map(|t| (t.name.as_str(), t)).collect(), device, used: 0 };
        for (i, b) in self.down.iter_mut().enumerate() {
            l.block(&format!("down.{i}"), b)?;
        }
        for (i, (t, b)) in self.upconv.iter_mut().zip(self.up.iter_mut()).enumerate() {
            l.convt(&format!("upconv.{i}"), t)?;
            l.block(&format!("up.{i}"), b)?;
        }
        l.conv2d("head", &mut self.head)?;
        if l.used != tensors.len() {
            let known: std::collections::HashSet<String> = self.named_tensors().into_iter().map(|t| t.name).collect();
            let extra: Vec<&str> =
                tensors.iter().map(|t| t.name.as_str()).filter(|n| !known.contains(*n)).take(3).collect();
            return Err(format!("tensors not part of this network: {extra:?}"));
        }
        Ok(self)
    }
}
