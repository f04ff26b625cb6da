//! The network's configuration: what the paper fixes, made configurable.

use serde::{Deserialize, Serialize};

use crate::error::{NnError, Result};

/// Convolution padding: the paper's `valid` (output smaller than input) or `same`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    #[default]
    Valid,
    Same,
}

impl Padding {
    /// `"valid"` or `"same"`.
    pub fn name(self) -> &'static str {
        match self {
            Padding::Valid => "valid",
            Padding::Same => "same",
        }
    }

    /// Pixels lost per 3x3 convolution on each side.
    pub(crate) fn conv_loss(self) -> usize {
        match self {
            Padding::Valid => 2,
            Padding::Same => 0,
        }
    }
}

/// The U-Net's shape. Defaults are the paper's: 1 input channel, 2 classes, 4 poolings,
/// 64 features at the first level, valid convolutions, no batch norm, dropout 0.5.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UNetConfig {
    pub in_channels: usize,
    pub classes: usize,
    pub depth: usize,
    pub width: usize,
    pub padding: Padding,
    pub batch_norm: bool,
    pub dropout: f64,
}

impl Default for UNetConfig {
    fn default() -> Self {
        UNetConfig {
            in_channels: 1,
            classes: 2,
            depth: 4,
            width: 64,
            padding: Padding::Valid,
            batch_norm: false,
            dropout: 0.5,
        }
    }
}

impl UNetConfig {
    /// Checks that the numbers make a network.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(NnError::Config(m.to_string()));
        if self.in_channels == 0 {
            return bad("in_channels must be at least 1");
        }
        if self.classes < 2 {
            return bad("classes must be at least 2 (background and foreground)");
        }
        if self.width == 0 {
            return bad("width must be at least 1");
        }
        if self.depth > 8 {
            return bad("depth must be at most 8");
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout must be in [0, 1)");
        }
        if self.width.checked_shl(self.depth as u32).is_none_or(|w| w > 1 << 16) {
            return bad("width * 2^depth is too large");
        }
        Ok(())
    }

    /// Feature channels at level `l` (0 = first): `width * 2^l`.
    pub fn channels(&self, level: usize) -> usize {
        self.width << level
    }

    /// Number of trainable parameters (batch-norm running statistics excluded).
    pub fn parameter_count(&self) -> usize {
        let conv = |ci: usize, co: usize, k: usize| ci * co * k * k + co;
        let bn = |c: usize| if self.batch_norm { 2 * c } else { 0 };
        let mut n = 0;
        let mut c = self.in_channels;
        for l in 0..=self.depth {
            let co = self.channels(l);
            n += conv(c, co, 3) + bn(co) + conv(co, co, 3) + bn(co);
            c = co;
        }
        for l in (0..self.depth).rev() {
            let co = self.channels(l);
            n += conv(c, co, 2);
            n += conv(2 * co, co, 3) + bn(co) + conv(co, co, 3) + bn(co);
            c = co;
        }
        n + conv(c, self.classes, 1)
    }
}
