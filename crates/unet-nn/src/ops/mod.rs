//! The network's convolutions, its 2x2 max-pool and its crop-and-concatenate join as
//! backend operations of our own, so a backend can run them with faster kernels and its own
//! backward while the model code stays the same.
//!
//! [`UnetBackend`] has a default body built from burn's ordinary ops ([`generic`]): CUDA
//! and any other backend work unchanged. The Flex CPU backend overrides it with the
//! hand-written kernels of `unet-kernels` ([`flex`]); `Autodiff<B>` records one graph node per
//! convolution whose backward calls `B`'s own backward ([`autodiff`]).

mod autodiff;
mod flex;
pub mod generic;

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};

/// Which of the network's convolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvKind {
    /// 3x3, stride 1, zero padding `pad` (0 = the paper's valid convolution), ReLU fused
    /// when `relu`. Weights `[co, ci, 3, 3]`.
    Conv3x3 { pad: usize, relu: bool },
    /// 2x2 stride-2 up-convolution (transposed). Weights `[ci, co, 2, 2]`.
    UpConv2x2,
    /// 1x1 convolution (the head). Weights `[co, ci, 1, 1]`.
    Conv1x1,
}

impl ConvKind {
    /// Whether the output went through a fused ReLU (its backward then needs the output).
    pub fn relu(self) -> bool {
        matches!(self, ConvKind::Conv3x3 { relu: true, .. })
    }
}

/// Gradients of one convolution: input (when asked for), weight, bias.
pub type ConvGrads<B> = (Option<FloatTensor<B>>, FloatTensor<B>, FloatTensor<B>);

/// A backend that runs the U-Net's convolutions.
pub trait UnetBackend: Backend {
    /// `kind`'s convolution of `x` (`[n, ci, h, w]`) with `weight` and `bias`.
    fn unet_conv(
        kind: ConvKind,
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        generic::conv::<Self>(kind, x, weight, bias)
    }

    /// Gradients of [`UnetBackend::unet_conv`] given its output gradient `grad`; `output` is
    /// the forward output when `kind` has a fused ReLU. The input gradient only when
    /// `input_grad`.
    fn unet_conv_backward(
        kind: ConvKind,
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        output: Option<FloatTensor<Self>>,
        grad: FloatTensor<Self>,
        input_grad: bool,
    ) -> ConvGrads<Self> {
        generic::conv_backward::<Self>(kind, x, weight, bias, output, grad, input_grad)
    }

    /// 2x2 stride-2 max-pooling of `[n, c, h, w]` to `[n, c, h/2, w/2]`.
    fn unet_max_pool(x: FloatTensor<Self>) -> FloatTensor<Self> {
        generic::max_pool::<Self>(x)
    }

    /// Gradient of [`UnetBackend::unet_max_pool`] with respect to its input `x`.
    fn unet_max_pool_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        generic::max_pool_backward::<Self>(x, grad)
    }

    /// `cat([centre_crop(skip), up], 1)`: the skip map cropped to `up`'s size, skip first.
    fn unet_crop_cat(skip: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        generic::crop_cat::<Self>(skip, up)
    }

    /// Gradients `(d_skip, d_up)` of [`UnetBackend::unet_crop_cat`] for inputs of the given
    /// shapes.
    fn unet_crop_cat_backward(
        skip_shape: [usize; 4],
        up_shape: [usize; 4],
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        generic::crop_cat_backward::<Self>(skip_shape, up_shape, grad)
    }
}

#[cfg(feature = "cuda")]
impl UnetBackend for burn::backend::Cuda {}

/// A float primitive as a tensor.
pub(crate) fn float<B: Backend, const D: usize>(t: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

/// A tensor's float primitive.
pub(crate) fn primitive<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

/// [`UnetBackend::unet_max_pool`] on tensors.
pub fn max_pool<B: UnetBackend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    float(B::unet_max_pool(primitive(x)))
}

/// [`UnetBackend::unet_crop_cat`] on tensors.
pub fn crop_cat<B: UnetBackend>(skip: Tensor<B, 4>, up: Tensor<B, 4>) -> Tensor<B, 4> {
    float(B::unet_crop_cat(primitive(skip), primitive(up)))
}

/// [`UnetBackend::unet_conv`] on tensors.
pub fn conv<B: UnetBackend>(kind: ConvKind, x: Tensor<B, 4>, weight: Tensor<B, 4>, bias: Tensor<B, 1>) -> Tensor<B, 4> {
    float(B::unet_conv(kind, primitive(x), primitive(weight), primitive(bias)))
}
