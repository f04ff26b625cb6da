//! One level's pair of 3x3 convolutions, each followed by ReLU (and batch norm before the
//! ReLU when enabled).

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer as BurnInit, PaddingConfig2d};
use burn::tensor::{Tensor, activation::relu, backend::Backend};

use crate::ops::{self, ConvKind, UnetBackend};

use crate::config::Padding;
use crate::init::Initializer;

/// Builds a convolution with He-initialised weights and zero bias.
pub(crate) fn he_conv<B: Backend>(
    cin: usize,
    cout: usize,
    kernel: usize,
    padding: PaddingConfig2d,
    init: &mut Initializer,
    device: &B::Device,
) -> Conv2d<B> {
    let mut conv = Conv2dConfig::new([cin, cout], [kernel, kernel])
        .with_padding(padding)
        .with_initializer(BurnInit::Zeros)
        .init(device);
    conv.weight = Param::from_tensor(init.he_normal([cout, cin, kernel, kernel], cin * kernel * kernel, device));
    conv
}

/// `conv3x3 -> [bn] -> relu -> conv3x3 -> [bn] -> relu`.
#[derive(Module, Debug)]
pub struct ConvBlock<B: Backend> {
    pub conv1: Conv2d<B>,
    pub bn1: Option<BatchNorm<B>>,
    pub conv2: Conv2d<B>,
    pub bn2: Option<BatchNorm<B>>,
}

impl<B: Backend> ConvBlock<B> {
    pub(crate) fn new(
        cin: usize,
        cout: usize,
        padding: Padding,
        batch_norm: bool,
        init: &mut Initializer,
        device: &B::Device,
    ) -> Self {
        let pad = match padding {
            Padding::Valid => PaddingConfig2d::Valid,
            Padding::Same => PaddingConfig2d::Explicit(1, 1, 1, 1),
        };
        let bn = || batch_norm.then(|| BatchNormConfig::new(cout).init(device));
        ConvBlock {
            conv1: he_conv(cin, cout, 3, pad.clone(), init, device),
            bn1: bn(),
            conv2: he_conv(cout, cout, 3, pad, init, device),
            bn2: bn(),
        }
    }
}

impl<B: UnetBackend> ConvBlock<B> {
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = conv_bn_relu(&self.conv1, self.bn1.as_ref(), x);
        conv_bn_relu(&self.conv2, self.bn2.as_ref(), x)
    }
}

/// `relu([bn](conv(x)))`; without batch norm the ReLU is fused into the convolution.
fn conv_bn_relu<B: UnetBackend>(conv: &Conv2d<B>, bn: Option<&BatchNorm<B>>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let pad = match conv.padding {
        PaddingConfig2d::Explicit(p, ..) => p,
        _ => 0,
    };
    let kind = ConvKind::Conv3x3 { pad, relu: bn.is_none() };
    let y = ops::conv(kind, x, conv.weight.val(), conv_bias(conv));
    match bn {
        Some(bn) => relu(bn.forward(y)),
        None => y,
    }
}

/// The bias of a convolution we built (always with bias).
pub(crate) fn conv_bias<B: Backend>(conv: &Conv2d<B>) -> Tensor<B, 1> {
    conv.bias.as_ref().expect("the network's convolutions have biases").val()
}
