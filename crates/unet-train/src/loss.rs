//! The paper's energy: pixel-wise softmax over the final feature map combined with the
//! cross-entropy, weighted per pixel by the weight map,
//! `E = mean_x w(x) * (-log p_{l(x)}(x))` (the paper's sum divided by the number of output
//! pixels, so the learning rate does not depend on the tile size).

use burn::tensor::activation::log_softmax;
use burn::tensor::{Tensor, backend::Backend};

/// Weighted cross-entropy of logits `[N, K, h, w]` against one-hot targets `[N, K, h, w]`
/// and weights `[N, 1, h, w]`.
pub fn weighted_cross_entropy<B: Backend>(
    logits: Tensor<B, 4>,
    onehot: Tensor<B, 4>,
    weights: Tensor<B, 4>,
) -> Tensor<B, 1> {
    let ce = (log_softmax(logits, 1) * onehot).sum_dim(1).neg();
    (ce * weights).mean()
}
