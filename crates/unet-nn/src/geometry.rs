//! Tile geometry: which input sizes a U-Net takes, what it outputs and the border it eats.
//!
//! Sizes are per axis (height and width are independent). With valid padding every level
//! loses 4 px to its two 3x3 convolutions, every max-pool needs an even size, and the
//! output must keep at least one pixel; with same padding the size must be divisible by
//! `2^depth` and the output equals the input.

use crate::config::{Padding, UNetConfig};
use crate::error::{NnError, Result};

/// The size arithmetic of one network shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub depth: usize,
    pub padding: Padding,
}

impl Geometry {
    /// The geometry of a config.
    pub fn of(config: &UNetConfig) -> Self {
        Geometry { depth: config.depth, padding: config.padding }
    }

    /// Output size for an input size, or `None` when the network cannot take it.
    pub fn try_output(&self, input: usize) -> Option<usize> {
        let loss = self.padding.conv_loss() * 2;
        let mut s = input;
        for level in 0..=self.depth {
            s = s.checked_sub(loss).filter(|&v| v > 0)?;
            if level < self.depth {
                if !s.is_multiple_of(2) {
                    return None;
                }
                s /= 2;
            }
        }
        for _ in 0..self.depth {
            s = (s * 2).checked_sub(loss).filter(|&v| v > 0)?;
        }
        Some(s)
    }

    /// Output size for an input size; an invalid size is an error naming the nearest valid ones.
    pub fn output(&self, input: usize) -> Result<usize> {
        self.try_output(input).ok_or_else(|| {
            let (below, above) = self.nearest(input);
            let nearest = match (below, above) {
                (Some(b), Some(a)) => format!("{b} or {a}"),
                (None, Some(a)) => format!("{a} (the smallest)"),
                (Some(b), None) => b.to_string(),
                (None, None) => "none".into(),
            };
            NnError::InvalidTile { size: input, depth: self.depth, padding: self.padding.name(), nearest }
        })
    }

    /// Pixels lost on each side: `(input - output) / 2` (0 for same padding).
    pub fn border(&self, input: usize) -> Result<usize> {
        Ok((input - self.output(input)?) / 2)
    }

    /// The border of this geometry, which does not depend on the (valid) input size.
    pub fn border_px(&self) -> usize {
        let o = self.min_input();
        (o - self.try_output(o).expect("min_input is valid")) / 2
    }

    /// True when the network takes this size.
    pub fn is_valid(&self, input: usize) -> bool {
        self.try_output(input).is_some()
    }

    /// The smallest valid input size.
    pub fn min_input(&self) -> usize {
        (1..).find(|&s| self.is_valid(s)).expect("some size is valid")
    }

    /// Distance between consecutive valid sizes: `2^depth`.
    pub fn step(&self) -> usize {
        1 << self.depth
    }

    /// The largest valid size `<= n` and the smallest valid size `>= n` (either may be absent).
    pub fn nearest(&self, n: usize) -> (Option<usize>, Option<usize>) {
        let min = self.min_input();
        let step = self.step();
        if n < min {
            return (None, Some(min));
        }
        let below = min + (n - min) / step * step;
        // No valid size above the largest `usize` multiple: `None`, not an overflow.
        let above = if below == n { Some(n) } else { below.checked_add(step) };
        (Some(below), above)
    }

    /// Valid sizes in `lo..=hi`.
    pub fn valid_sizes(&self, lo: usize, hi: usize) -> Vec<usize> {
        let min = self.min_input();
        let step = self.step();
        let start = if lo <= min { min } else { min + (lo - min).div_ceil(step) * step };
        (start..=hi).step_by(step).collect()
    }

    /// Smallest valid input size whose output is at least `out`.
    pub fn input_for_output(&self, out: usize) -> usize {
        let mut s = self.min_input();
        while self.try_output(s).expect("valid") < out {
            s += self.step();
        }
        s
    }
}
