//! A 2D slice of values: the unit every metric works on.

use unet_grid::Grid;

/// One 2D slice of `f32` values, row-major (`Grid::new(width, height, data)`).
pub type Plane = Grid<f32>;

/// `value > threshold` per pixel.
pub fn binarize(plane: &Plane, threshold: f64) -> Grid<bool> {
    plane.map(|&v| f64::from(v) > threshold)
}

/// True when every value is 0 or 1.
pub fn is_binary(plane: &Plane) -> bool {
    plane.data.iter().all(|&v| v == 0.0 || v == 1.0)
}
