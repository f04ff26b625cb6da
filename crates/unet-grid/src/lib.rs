//! The one 2D grid type of unet.
//!
//! Every image-like value in the project is a [`Grid`]: an image (with its sample type
//! beside it, `unet_io::Image`), a label image (`Grid<u32>`), a metric's plane
//! (`Grid<f32>`), a binary mask (`Grid<bool>`), probability maps (one channel per class),
//! weight maps, distance maps. The size arithmetic and the memory layout live here once.
//!
//! Layout: `channels` planes of `height x width` values, plane after plane, rows within a
//! plane: the value of channel `c` at row `y`, column `x` is `data[(c * height + y) *
//! width + x]` (planar, "CHW"; the layout of the network's tensors).

#![forbid(unsafe_code)]

/// `channels` planes of `height x width` values, planar (see the crate docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Grid<T> {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<T>,
}

impl<T> Grid<T> {
    /// A one-channel grid; panics when `data` does not hold `width * height` values (a
    /// programming error, not an input error).
    pub fn new(width: usize, height: usize, data: Vec<T>) -> Self {
        Grid::with_channels(width, height, 1, data)
    }

    /// A grid of `channels` planes; panics when `data` does not hold
    /// `channels * height * width` values (a programming error).
    pub fn with_channels(width: usize, height: usize, channels: usize, data: Vec<T>) -> Self {
        assert_eq!(Some(data.len()), width.checked_mul(height).and_then(|n| n.checked_mul(channels)), "grid size");
        Grid { width, height, channels, data }
    }

    /// `(width, height)`.
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// Values in one plane: `width * height`.
    pub fn plane_len(&self) -> usize {
        self.width * self.height
    }

    /// All values, over all channels.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the grid holds no value.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The plane of channel `c`.
    pub fn plane(&self, c: usize) -> &[T] {
        let n = self.plane_len();
        &self.data[c * n..(c + 1) * n]
    }

    /// The plane of channel `c`, writable.
    pub fn plane_mut(&mut self, c: usize) -> &mut [T] {
        let n = self.plane_len();
        &mut self.data[c * n..(c + 1) * n]
    }

    /// The index of channel `c`, row `y`, column `x` in `data`.
    pub fn index(&self, c: usize, y: usize, x: usize) -> usize {
        (c * self.height + y) * self.width + x
    }

    /// A grid of the same size holding `f` of every value.
    pub fn map<U>(&self, f: impl FnMut(&T) -> U) -> Grid<U> {
        Grid {
            width: self.width,
            height: self.height,
            channels: self.channels,
            data: self.data.iter().map(f).collect(),
        }
    }

    /// A one-channel grid of the same size with other values (panics when `data` does not
    /// hold one plane).
    pub fn with_plane<U>(&self, data: Vec<U>) -> Grid<U> {
        Grid::new(self.width, self.height, data)
    }
}

impl<T: Clone> Grid<T> {
    /// A grid with every value `value`.
    pub fn filled(width: usize, height: usize, channels: usize, value: T) -> Self {
        Grid { width, height, channels, data: vec![value; width * height * channels] }
    }
}

impl<T: Copy> Grid<T> {
    /// The value of channel `c` at row `y`, column `x`.
    pub fn get(&self, c: usize, y: usize, x: usize) -> T {
        self.data[self.index(c, y, x)]
    }

    /// Channel `c` alone, as a one-channel grid.
    pub fn channel(&self, c: usize) -> Grid<T> {
        Grid::new(self.width, self.height, self.plane(c).to_vec())
    }
}

impl<T: Default + PartialEq> Grid<T> {
    /// True when some value differs from `T::default()` (0, false): a label with
    /// foreground, a mask with a pixel set.
    pub fn any_nonzero(&self) -> bool {
        let zero = T::default();
        self.data.iter().any(|v| *v != zero)
    }
}

impl Grid<f32> {
    /// True when every value is finite.
    pub fn is_finite(&self) -> bool {
        self.data.iter().all(|v| v.is_finite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planar_layout_and_accessors() {
        let g = Grid::with_channels(3, 2, 2, (0..12).collect::<Vec<u32>>());
        assert_eq!(g.size(), (3, 2));
        assert_eq!(g.plane_len(), 6);
        assert_eq!(g.get(1, 1, 2), 11);
        assert_eq!(g.get(0, 1, 0), 3);
        assert_eq!(g.plane(1), &[6, 7, 8, 9, 10, 11]);
        assert_eq!(g.channel(1).data, vec![6, 7, 8, 9, 10, 11]);
        assert_eq!(g.map(|&v| v * 2).get(1, 0, 1), 14);
        assert!(g.any_nonzero());
        assert!(!Grid::filled(4, 4, 1, 0u32).any_nonzero());
    }

    #[test]
    #[should_panic(expected = "grid size")]
    fn a_buffer_of_the_wrong_size_is_refused() {
        let _ = Grid::new(3, 3, vec![0u8; 8]);
    }

    #[test]
    #[should_panic(expected = "grid size")]
    fn an_overflowing_size_is_refused() {
        let _ = Grid::with_channels(usize::MAX, 2, 1, Vec::<u8>::new());
    }
}
