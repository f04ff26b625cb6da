//! The U-Net (Fig. 1 of the paper): contracting path of conv blocks and 2x2 max-pools,
//! dropout at its end, expanding path of 2x2 up-convolutions, centre crop of the skip map,
//! concatenation (skip first) and conv blocks, and a 1x1 head.

use burn::module::{Module, Param};
use burn::nn::Initializer as BurnInit;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, ConvTranspose2d, ConvTranspose2dConfig};
use burn::tensor::{Tensor, TensorData, backend::Backend};
use rand::Rng;

use crate::block::{ConvBlock, conv_bias, he_conv};
use crate::config::UNetConfig;
use crate::error::Result;
use crate::init::Initializer;
use crate::ops::{self, ConvKind, UnetBackend};

/// The network. Build it with [`UNetConfig::init`].
#[derive(Module, Debug)]
pub struct UNet<B: Backend> {
    /// Contracting path, level 0 (full resolution) to `depth` (bottleneck).
    pub down: Vec<ConvBlock<B>>,
    /// Up-convolutions, deepest first.
    pub upconv: Vec<ConvTranspose2d<B>>,
    /// Expanding path conv blocks, deepest first.
    pub up: Vec<ConvBlock<B>>,
    /// 1x1 convolution to the class scores.
    pub head: Conv2d<B>,
    /// Dropout probability applied after the bottleneck during training.
    pub dropout: f64,
}

impl UNetConfig {
    /// Builds the network with He-initialised weights drawn from `seed` (biases 0).
    pub fn init<B: Backend>(&self, seed: u64, device: &B::Device) -> Result<UNet<B>> {
        self.validate()?;
        let mut init = Initializer::new(seed);
        let mut down = Vec::new();
        let mut c = self.in_channels;
        for level in 0..=self.depth {
            let co = self.channels(level);
            down.push(ConvBlock::new(c, co, self.padding, self.batch_norm, &mut init, device));
            c = co;
        }
        let mut upconv = Vec::new();
        let mut up = Vec::new();
        for level in (0..self.depth).rev() {
            let co = self.channels(level);
            let mut t = ConvTranspose2dConfig::new([c, co], [2, 2])
                .with_stride([2, 2])
                .with_initializer(BurnInit::Zeros)
                .init(device);
            // Each output pixel of a 2x2 stride-2 transposed conv receives exactly one tap per
            // input channel, so its fan-in is `c`.
            t.weight = Param::from_tensor(init.he_normal([c, co, 2, 2], c, device));
            upconv.push(t);
            up.push(ConvBlock::new(2 * co, co, self.padding, self.batch_norm, &mut init, device));
            c = co;
        }
        let head = he_conv(c, self.classes, 1, PaddingConfig2d::Valid, &mut init, device);
        Ok(UNet { down, upconv, up, head, dropout: self.dropout })
    }
}

impl<B: Backend> UNet<B> {
    /// Number of poolings.
    pub fn depth(&self) -> usize {
        self.down.len() - 1
    }
}

impl<B: UnetBackend> UNet<B> {
    /// Class scores (logits) `[N, K, h, w]` for an input `[N, C, H, W]`, without dropout.
    /// `H` and `W` must be valid sizes (see [`crate::Geometry`]).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_impl(x, None::<&mut rand_chacha::ChaCha8Rng>)
    }

    /// As [`UNet::forward`], with dropout after the bottleneck when `rng` is given (training):
    /// each bottleneck activation is zeroed with probability `dropout`, the rest scaled by
    /// `1 / (1 - dropout)`; the mask comes from `rng`, so training is reproducible.
    pub fn forward_train<R: Rng>(&self, x: Tensor<B, 4>, rng: &mut R) -> Tensor<B, 4> {
        self.forward_impl(x, Some(rng))
    }

    fn forward_impl<R: Rng>(&self, x: Tensor<B, 4>, rng: Option<&mut R>) -> Tensor<B, 4> {
        let depth = self.depth();
        let mut skips = Vec::with_capacity(depth);
        let mut x = x;
        for (level, block) in self.down.iter().enumerate() {
            x = block.forward(x);
            if level < depth {
                skips.push(x.clone());
                x = ops::max_pool(x);
            }
        }
        if let Some(rng) = rng
            && self.dropout > 0.0
        {
            x = self.apply_dropout(x, rng);
        }
        for ((upconv, block), skip) in self.upconv.iter().zip(&self.up).zip(skips.into_iter().rev()) {
            let bias = upconv.bias.as_ref().expect("the up-convolutions have biases").val();
            let u = ops::conv(ConvKind::UpConv2x2, x, upconv.weight.val(), bias);
            x = block.forward(ops::crop_cat(skip, u));
        }
        ops::conv(ConvKind::Conv1x1, x, self.head.weight.val(), conv_bias(&self.head))
    }

    fn apply_dropout<R: Rng>(&self, x: Tensor<B, 4>, rng: &mut R) -> Tensor<B, 4> {
        let dims = x.dims();
        let keep = 1.0 - self.dropout;
        let scale = (1.0 / keep) as f32;
        let n: usize = dims.iter().product();
        let mask: Vec<f32> = (0..n).map(|_| if rng.random_bool(keep) { scale } else { 0.0 }).collect();
        let mask = Tensor::<B, 4>::from_data(TensorData::new(mask, dims), &x.device());
        x * mask
    }
}
