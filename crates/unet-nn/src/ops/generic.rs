//! The network's convolutions and their gradients from burn's own module ops: the default
//! for every backend, and the reference the fast kernels are tested against.

use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, FloatTensor};

use super::{ConvGrads, ConvKind};

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
