//! Input normalisation: how raw samples become network input. Stored in the model file so
//! that prediction normalises exactly as training did.

use serde::{Deserialize, Serialize};

/// How an image's samples are mapped before entering the network.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Normalization {
    /// Per image and channel: subtract the mean, divide by the standard deviation
    /// (robust to bit depth and to brightness differences between images).
    #[default]
    PerImage,
    /// Fixed: `(v / max_value - mean) / std`, with `max_value` 255 for 8-bit, 65535 for
    /// 16-bit and 1 for float images; `mean` and `std` measured on the training set.
    Fixed { mean: f32, std: f32 },
}

impl Normalization {
    /// Normalises one channel plane in place; `max_value` is the nominal maximum of the
    /// file's sample type.
    pub fn apply(&self, plane: &mut [f32], max_value: f32) {
        match *self {
            Normalization::PerImage => {
                let n = plane.len().max(1) as f64;
                let mean = plane.iter().map(|&v| v as f64).sum::<f64>() / n;
                let var = plane.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
                let std = var.sqrt().max(1e-6 * (max_value as f64).max(1e-6));
                plane.iter_mut().for_each(|v| *v = ((*v as f64 - mean) / std) as f32);
            }
            Normalization::Fixed { mean, std } => {
                let std = if std > 0.0 { std } else { 1.0 };
                plane.iter_mut().for_each(|v| *v = (*v / max_value - mean) / std);
            }
        }
    }
}
