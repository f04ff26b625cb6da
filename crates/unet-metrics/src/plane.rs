//! A 2D slice of values: the unit every metric works on.

/// One 2D slice, row-major (`data[y * width + x]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Plane {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl Plane {
    /// A plane; panics when `data` does not hold `width * height` values (a programming error).
    pub fn new(width: usize, height: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), width * height, "plane buffer size");
        Plane { width, height, data }
    }

    /// `value > threshold` per pixel.
    pub fn binarize(&self, threshold: f64) -> Vec<bool> {
        self.data.iter().map(|&v| f64::from(v) > threshold).collect()
    }

    /// Number of pixels.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the plane has no pixels.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// True when every value is 0 or 1.
    pub fn is_binary(&self) -> bool {
        self.data.iter().all(|&v| v == 0.0 || v == 1.0)
    }
}
