//! An exponential moving average of the weights (Polyak averaging): after every step
//! `avg = d avg + (1 - d) w`, with `d = min(decay, (1 + t) / (10 + t))` at the `t`-th
//! update so that the first steps do not drag the initial weights along. At momentum 0.99
//! and a constant learning rate the weights of any one step carry that step's noise; their
//! average is the better network to validate and to ship. The state is indexed by the
//! parameters' fixed visiting order, as the optimiser's is, so a checkpoint restores it
//! exactly.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

/// The average of the weights over the steps.
pub struct Ema<B: Backend> {
    /// The configured decay (0 < decay < 1).
    pub decay: f64,
    /// Updates done.
    pub updates: u64,
    /// Per parameter (visiting order), flat.
    pub avg: Vec<Tensor<B, 1>>,
}

impl<B: Backend> Ema<B> {
    /// An empty average: the first update copies the weights.
    pub fn new(decay: f64) -> Self {
        Ema { decay, updates: 0, avg: Vec::new() }
    }

    /// The decay the next update uses.
    pub fn current_decay(&self) -> f64 {
        let t = self.updates as f64;
        self.decay.min((1.0 + t) / (10.0 + t))
    }

    /// Folds the weights of `module` (an autodiff module whose inner backend is `B`) in.
    pub fn update<A, M>(&mut self, module: &M)
    where
        A: AutodiffBackend<InnerBackend = B>,
        M: Module<A>,
    {
        let mut weights = Collect::<A> { out: Vec::new() };
        module.visit(&mut weights);
        let d = self.current_decay();
        if self.avg.len() != weights.out.len() {
            self.avg = weights.out;
        } else {
            for (a, w) in self.avg.iter_mut().zip(weights.out) {
                *a = a.clone().mul_scalar(d) + w.mul_scalar(1.0 - d);
            }
        }
        self.updates += 1;
    }

    /// Whether the average (when it has one) has the parameters of `module`, one for one
    /// and of the same lengths (a checkpoint's average is checked so before it is used).
    pub fn matches<A, M>(&self, module: &M) -> bool
    where
        A: AutodiffBackend<InnerBackend = B>,
        M: Module<A>,
    {
        let mut weights = Collect::<A> { out: Vec::new() };
        module.visit(&mut weights);
        self.avg.is_empty()
            || (self.avg.len() == weights.out.len()
                && self.avg.iter().zip(&weights.out).all(|(a, w)| a.dims() == w.dims()))
    }

    /// `module` with the averaged weights in place of its own (unchanged before the first
    /// update).
    pub fn apply<M: Module<B>>(&self, module: M) -> M {
        if self.avg.is_empty() {
            return module;
        }
        module.map(&mut Replace { avg: &self.avg, index: 0 })
    }
}

struct Collect<A: AutodiffBackend> {
    out: Vec<Tensor<A::InnerBackend, 1>>,
}

impl<A: AutodiffBackend> ModuleVisitor<A> for Collect<A> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<A, D>>) {
        let t = param.val().inner();
        let n = t.shape().num_elements();
        self.out.push(t.reshape([n]));
    }
}

struct Replace<'a, B: Backend> {
    avg: &'a [Tensor<B, 1>],
    index: usize,
}

impl<B: Backend> ModuleMapper<B> for Replace<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let avg = self.avg.get(self.index).cloned();
        self.index += 1;
        match avg {
            Some(a) => {
                let shape = tensor.shape();
                Param::from_mapped_value(id, a.reshape(shape), mapper)
            }
            None => Param::from_mapped_value(id, tensor, mapper),
        }
    }
}
