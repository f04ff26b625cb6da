//! He initialisation drawn on the host from a seeded generator, so that a seed gives the
//! same weights on every backend and every run.

use burn::tensor::{Tensor, TensorData, backend::Backend};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// Seeded source of initial weights.
pub(crate) struct Initializer {
    rng: ChaCha8Rng,
}

impl Initializer {
    pub fn new(seed: u64) -> Self {
        Initializer { rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    /// A tensor of the given shape with samples from N(0, sqrt(2 / fan_in)) (He et al. 2015,
    /// the paper's Section 3: "N denotes the number of incoming nodes of one neuron").
    pub fn he_normal<B: Backend, const D: usize>(
        &mut self,
        shape: [usize; D],
        fan_in: usize,
        device: &B::Device,
    ) -> Tensor<B, D> {
        let std = (2.0 / fan_in as f64).sqrt() as f32;
        let normal = Normal::new(0.0f32, std).expect("finite std");
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| normal.sample(&mut self.rng)).collect();
        Tensor::from_data(TensorData::new(data, shape), device)
    }
}
