//! The in-memory image: planar (channel-major) `f32` samples plus the sample type read.

/// Sample type of the file an image came from; it sets the nominal value range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    U8,
    U16,
    F32,
}

impl SampleKind {
    /// Largest nominal value: 255, 65535, or 1 for float images (which are taken as is).
    pub fn max_value(self) -> f32 {
        match self {
            SampleKind::U8 => 255.0,
            SampleKind::U16 => 65535.0,
            SampleKind::F32 => 1.0,
        }
    }

    /// Short name for messages and metadata.
    pub fn name(self) -> &'static str {
        match self {
            SampleKind::U8 => "u8",
            SampleKind::U16 => "u16",
            SampleKind::F32 => "f32",
        }
    }
}

/// A 2D image with `channels` planes of `height x width` samples, stored plane after plane
/// (`data[(c * height + y) * width + x]`), values as read (not rescaled).
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub kind: SampleKind,
    pub data: Vec<f32>,
}

impl Image {
    /// A new image; panics if `data` does not hold `channels * height * width` samples
    /// (a programming error, not an input error).
    pub fn new(width: usize, height: usize, channels: usize, kind: SampleKind, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), width * height * channels, "image buffer size");
        Image { width, height, channels, kind, data }
    }

    /// A one-channel image.
    pub fn gray(width: usize, height: usize, kind: SampleKind, data: Vec<f32>) -> Self {
        Image::new(width, height, 1, kind, data)
    }

    /// The samples of channel `c`.
    pub fn plane(&self, c: usize) -> &[f32] {
        let n = self.width * self.height;
        &self.data[c * n..(c + 1) * n]
    }

    /// Sample at channel `c`, row `y`, column `x`.
    pub fn get(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.height + y) * self.width + x]
    }

    /// `(width, height)`.
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// True when every sample is finite.
    pub fn is_finite(&self) -> bool {
        self.data.iter().all(|v| v.is_finite())
    }
}
