//! Optimisers: SGD with momentum (the paper's, PyTorch convention `v = mu v + g`,
//! `w -= lr v`) and Adam, written as a module mapper so that their state is indexed by the
//! parameters' fixed visiting order and can be saved and restored exactly for resume.

use burn::module::{AutodiffModule, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

/// Which optimiser.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    #[default]
    Sgd,
    Adam,
}

/// Optimiser state: per parameter (visiting order) the first and second moments, flat.
pub struct Optimizer<B: AutodiffBackend> {
    pub kind: OptimizerKind,
    pub momentum: f64,
    pub weight_decay: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Number of updates done (Adam's bias correction).
    pub t: u64,
    pub first: Vec<Option<Tensor<B::InnerBackend, 1>>>,
    pub second: Vec<Option<Tensor<B::InnerBackend, 1>>>,
}

impl<B: AutodiffBackend> Optimizer<B> {
    /// A fresh optimiser.
    pub fn new(kind: OptimizerKind, momentum: f64, weight_decay: f64) -> Self {
        Optimizer { kind, momentum, weight_decay, beta2: 0.999, eps: 1e-8, t: 0, first: Vec::new(), second: Vec::new() }
    }

    /// One update of every parameter that has a gradient.
    pub fn step<M: AutodiffModule<B>>(&mut self, lr: f64, module: M, grads: GradientsParams) -> M {
        self.t += 1;
        let mut mapper = Step { opt: self, grads, lr, index: 0 };
        module.map(&mut mapper)
    }
}

struct Step<'a, B: AutodiffBackend> {
    opt: &'a mut Optimizer<B>,
    grads: GradientsParams,
    lr: f64,
    index: usize,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Step<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let i = self.index;
        self.index += 1;
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<B::InnerBackend, D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let o = &mut *self.opt;
        if o.first.len() <= i {
            o.first.resize(i + 1, None);
            o.second.resize(i + 1, None);
        }
        let shape = grad.shape();
        let n = shape.num_elements();
        let w = tensor.inner();
        let mut g = grad.reshape([n]);
        if o.weight_decay > 0.0 {
            g = g + w.clone().reshape([n]).mul_scalar(o.weight_decay);
        }
        let update = match o.kind {
            OptimizerKind::Sgd => {
                let v = match o.first[i].take() {
                    Some(v) => v.mul_scalar(o.momentum) + g,
                    None => g,
                };
                o.first[i] = Some(v.clone());
                v.mul_scalar(self.lr)
            }
            OptimizerKind::Adam => {
                let b1 = o.momentum;
                let m = match o.first[i].take() {
                    Some(m) => m.mul_scalar(b1) + g.clone().mul_scalar(1.0 - b1),
                    None => g.clone().mul_scalar(1.0 - b1),
                };
                let g2 = g.clone() * g;
                let v = match o.second[i].take() {
                    Some(v) => v.mul_scalar(o.beta2) + g2.mul_scalar(1.0 - o.beta2),
                    None => g2.mul_scalar(1.0 - o.beta2),
                };
                o.first[i] = Some(m.clone());
                o.second[i] = Some(v.clone());
                let mh = m.div_scalar(1.0 - b1.powi(o.t as i32));
                let vh = v.div_scalar(1.0 - o.beta2.powi(o.t as i32));
                (mh / (vh.sqrt().add_scalar(o.eps))).mul_scalar(self.lr)
            }
        };
        let new = w - update.reshape(shape);
        Param::from_mapped_value(id, Tensor::from_inner(new).require_grad(), mapper)
    }
}

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    #[default]
    Constant,
    /// `lr * (1 - step / steps)^0.9`.
    Poly,
}

impl Schedule {
    /// The learning rate at `step` of `steps`.
    pub fn lr(&self, base: f64, step: u64, steps: u64) -> f64 {
        match self {
            Schedule::Constant => base,
            Schedule::Poly => base * (1.0 - step as f64 / steps.max(1) as f64).max(0.0).powf(0.9),
        }
    }
}
