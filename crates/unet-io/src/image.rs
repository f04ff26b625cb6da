//! The in-memory image: planar (channel-major) `f32` samples plus the sample type read.

use unet_grid::Grid;

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

/// A 2D image: `channels` planes of `height x width` samples in a [`Grid`] (planar:
/// `data[(c * height + y) * width + x]`), values as read (not rescaled), and the sample
/// type of the file they came from. It derefs to its grid, so `image.width`,
/// `image.plane(c)`, `image.get(c, y, x)` read the grid's.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub grid: Grid<f32>,
    pub kind: SampleKind,
}

impl Image {
    /// A new image; panics if `data` does not hold `channels * height * width` samples
    /// (a programming error, not an input error).
    pub fn new(width: usize, height: usize, channels: usize, kind: SampleKind, data: Vec<f32>) -> Self {
        Image { grid: Grid::with_channels(width, height, channels, data), kind }
    }

    /// A one-channel image.
    pub fn gray(width: usize, height: usize, kind: SampleKind, data: Vec<f32>) -> Self {
        Image::new(width, height, 1, kind, data)
    }
}

impl std::ops::Deref for Image {
    type Target = Grid<f32>;
    fn deref(&self) -> &Grid<f32> {
        &self.grid
    }
}

impl std::ops::DerefMut for Image {
    fn deref_mut(&mut self) -> &mut Grid<f32> {
        &mut self.grid
    }
}
