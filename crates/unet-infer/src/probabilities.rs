//! Class probability maps of one image.

/// Per-class probabilities, plane after plane (`data[(k * height + y) * width + x]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Probabilities {
    pub width: usize,
    pub height: usize,
    pub classes: usize,
    pub data: Vec<f32>,
}

impl Probabilities {
    /// All zeros.
    pub fn zeros(width: usize, height: usize, classes: usize) -> Self {
        Probabilities { width, height, classes, data: vec![0.0; width * height * classes] }
    }

    /// The plane of class `k`.
    pub fn class(&self, k: usize) -> &[f32] {
        let n = self.width * self.height;
        &self.data[k * n..(k + 1) * n]
    }

    /// The foreground probability: class 1 for two classes, else 1 - P(background).
    pub fn foreground(&self) -> Vec<f32> {
        if self.classes == 2 { self.class(1).to_vec() } else { self.class(0).iter().map(|p| 1.0 - p).collect() }
    }
}
