//! Class probability maps of one image.

use unet_grid::Grid;

/// Per-class probabilities: one channel per class (`probs.plane(k)` is class `k`,
/// `probs.channels` the number of classes).
pub type Probabilities = Grid<f32>;

/// The foreground probability: class 1 for two classes, else 1 - P(background).
pub fn foreground(probs: &Probabilities) -> Grid<f32> {
    if probs.channels == 2 {
        probs.channel(1)
    } else {
        probs.with_plane(probs.plane(0).iter().map(|p| 1.0 - p).collect())
    }
}
