//! The network's ops and their gradients from burn's own ops: the default for every
//! backend, and the reference the fast kernels are tested against.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, FloatTensor};

use super::{ConvGrads, ConvKind, float, primitive};

fn conv_options(kind: ConvKind) -> ConvOptions<2> {
    let pad = match kind {
        ConvKind::Conv3x3 { pad, .. } => pad,
        _ => 0,
    };
    ConvOptions::new([1, 1], [pad, pad], [1, 1], 1)
}

fn transpose_options() -> ConvTransposeOptions<2> {
    ConvTransposeOptions::new([2, 2], [0, 0], [0, 0], [1, 1], 1)
}

/// `kind`'s convolution with burn's `conv2d` / `conv_transpose2d` (and `relu`).
pub fn conv<B: Backend>(
    kind: ConvKind,
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
) -> FloatTensor<B> {
    match kind {
        ConvKind::UpConv2x2 => B::conv_transpose2d(x, weight, Some(bias), transpose_options()),
        _ => {
            let y = B::conv2d(x, weight, Some(bias), conv_options(kind));
            if kind.relu() { B::relu(y) } else { y }
        }
    }
}

/// Gradients of [`conv`] with burn's backward ops.
pub fn conv_backward<B: Backend>(
    kind: ConvKind,
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
    output: Option<FloatTensor<B>>,
    grad: FloatTensor<B>,
    input_grad: bool,
) -> ConvGrads<B> {
    let grad = match output {
        Some(y) if kind.relu() => B::relu_backward(y, grad),
        _ => grad,
    };
    match kind {
        ConvKind::UpConv2x2 => {
            let o = transpose_options();
            let dx = input_grad.then(|| B::conv_transpose2d_x_backward(weight.clone(), grad.clone(), o.clone()));
            let dw = B::conv_transpose2d_weight_backward(x.clone(), weight, grad.clone(), o);
            (dx, dw, B::conv_transpose2d_bias_backward(x, bias, grad))
        }
        _ => {
            let o = conv_options(kind);
            let dx = input_grad.then(|| B::conv2d_x_backward(x.clone(), weight.clone(), grad.clone(), o.clone()));
            let dw = B::conv2d_weight_backward(x.clone(), weight, grad.clone(), o);
            (dx, dw, B::conv2d_bias_backward(x, bias, grad))
        }
    }
}

/// 2x2 stride-2 max-pooling with burn's `max_pool2d`.
pub fn max_pool<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    B::max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], false)
}

/// Gradient of [`max_pool`] through burn's pooling indices.
pub fn max_pool_backward<B: Backend>(x: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
    let indices = B::max_pool2d_with_indices(x.clone(), [2, 2], [2, 2], [0, 0], [1, 1], false).indices;
    B::max_pool2d_with_indices_backward(x, [2, 2], [2, 2], [0, 0], [1, 1], false, grad, indices).x_grad
}

/// The centre crop window of a `[N, C, H, W]` map for an `h x w` target.
fn window(shape: [usize; 4], h: usize, w: usize) -> [std::ops::Range<usize>; 4] {
    let [n, c, hh, ww] = shape;
    let (dy, dx) = ((hh - h) / 2, (ww - w) / 2);
    [0..n, 0..c, dy..dy + h, dx..dx + w]
}

/// `cat([centre_crop(skip), up], 1)` with burn's `slice` and `cat`.
pub fn crop_cat<B: Backend>(skip: FloatTensor<B>, up: FloatTensor<B>) -> FloatTensor<B> {
    let (skip, up): (Tensor<B, 4>, Tensor<B, 4>) = (float(skip), float(up));
    let [_, _, h, w] = up.dims();
    let crop = skip.clone().slice(window(skip.dims(), h, w));
    primitive(Tensor::cat(vec![crop, up], 1))
}

/// Gradients of [`crop_cat`]: the first channels back into a zero skip map, the rest to `up`.
pub fn crop_cat_backward<B: Backend>(
    skip_shape: [usize; 4],
    up_shape: [usize; 4],
    grad: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let grad: Tensor<B, 4> = float(grad);
    let [n, cs, h, w] = [skip_shape[0], skip_shape[1], up_shape[2], up_shape[3]];
    let d_up = grad.clone().slice([0..n, cs..cs + up_shape[1], 0..h, 0..w]);
    let d_crop = grad.slice([0..n, 0..cs, 0..h, 0..w]);
    let d_skip = Tensor::<B, 4>::zeros(skip_shape, &d_crop.device()).slice_assign(window(skip_shape, h, w), d_crop);
    (primitive(d_skip), primitive(d_up))
}
