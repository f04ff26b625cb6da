//! CPU kernels of the U-Net's convolutions and their gradients, on contiguous NCHW `f32`
//! slices: the 3x3 valid convolution (optionally with bias and ReLU fused), the 2x2 stride-2
//! up-convolution and the 1x1 head; and the network's other per-step ops, the 2x2 max-pool
//! and the crop-and-concatenate join (burn's generic `cat` of a cropped view walks a strided
//! index per element).
//!
//! Why hand-written: burn 0.21's Flex backend runs the generic convolution backward (a
//! single-threaded col2im for the input gradient, a swapped convolution with an image-sized
//! kernel for the weight gradient), which made a training step cost 6-8x its forward pass.
//! Here every pass is parallel over cache-sized bands of rows (rayon), and the 3x3
//! convolution picks, per layer shape, the fastest of three methods measured on the paper's
//! network (`conv3x3`):
//! - Winograd F(2x2, 3x3) (`winograd`) on layers with 64+ channels: 2.25x fewer
//!   multiplications, the products done by `gemm`;
//! - direct kernels on thin layers, register-blocked sums read straight from the image:
//!   the forward (`avx512_conv`) with AVX-512F, the weight gradient (`direct_wgrad`) with
//!   AVX-512F or AVX2 + FMA;
//! - otherwise a banded im2col by `memcpy` plus one `gemm` per band (the same `gemm` crate
//!   Flex uses): `Y = W · col(X)`, `dW = dY · col(X)^T` in per-thread accumulators.
//!
//! The input gradient is a valid convolution of the zero-padded `dY` with the flipped,
//! transposed kernel (no column scatter at all), so it takes the forward's methods.
//! The direct and im2col paths work on the *flat* image: output pixel `(y, x)` reads input
//! element `(y + ky) * W + x + kx`, so with the output laid out at the input's row stride
//! every row of a column matrix (or every vector load) is contiguous; the two extra
//! columns per row are computed and dropped.

#[cfg(target_arch = "x86_64")]
mod avx512_conv;
mod chunks;
pub mod conv1x1;
pub mod conv3x3;
pub mod crop_cat;
#[cfg(target_arch = "x86_64")]
mod direct_wgrad;
mod matmul;
pub mod pool;
pub mod upconv2x2;
mod winograd;

#[cfg(test)]
mod naive;

/// The size of a batch of feature maps `[n, c, h, w]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Dims {
    pub fn new(n: usize, c: usize, h: usize, w: usize) -> Self {
        Dims { n, c, h, w }
    }

    pub fn len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements of one plane (`h * w`).
    pub fn plane(&self) -> usize {
        self.h * self.w
    }
}

/// Gradients of a convolution with bias.
#[derive(Debug, Clone)]
pub struct Grads {
    /// Input gradient, when asked for.
    pub input: Option<Vec<f32>>,
    /// Weight gradient, in the weight's layout.
    pub weight: Vec<f32>,
    /// Bias gradient.
    pub bias: Vec<f32>,
}

/// Per-channel sums of `[n, c, h, w]` data: the bias gradient. Planes are summed in
/// parallel (f32 within a row, f64 across rows), then added in a fixed order.
pub(crate) fn channel_sums(dy: &[f32], d: Dims) -> Vec<f32> {
    use rayon::prelude::*;
    let plane = d.plane().max(1);
    let w = d.w.max(1);
    let sums: Vec<f64> =
        dy.par_chunks(plane).map(|p| p.chunks(w).map(|row| lane_sum(row) as f64).sum::<f64>()).collect();
    let mut out = vec![0f64; d.c];
    for (i, s) in sums.iter().enumerate() {
        out[i % d.c] += s;
    }
    out.into_iter().map(|v| v as f32).collect()
}

/// The sum of `v` in 16 interleaved partial sums (a sequential f32 sum cannot be
/// vectorised: it fixes the order of the additions).
fn lane_sum(v: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let mut chunks = v.chunks_exact(16);
    for c in &mut chunks {
        lanes.iter_mut().zip(c).for_each(|(l, &x)| *l += x);
    }
    lanes.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}
