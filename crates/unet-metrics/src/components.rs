//! Connected-component labelling of binary masks (4- or 8-connectivity).
//!
//! Written here rather than taken from `imageproc`: the metrics need only this one
//! operation, with the exact connectivity the challenge fixes, and a flood fill is a few
//! lines.

use unet_grid::Grid;

/// Pixel adjacency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connectivity {
    /// Edge neighbours only.
    Four,
    /// Edge and corner neighbours.
    Eight,
}

impl Connectivity {
    pub(crate) fn offsets(self) -> &'static [(isize, isize)] {
        match self {
            Connectivity::Four => &[(-1, 0), (0, -1), (1, 0), (0, 1)],
            Connectivity::Eight => &[(-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)],
        }
    }
}

/// Labels the `true` pixels of a one-channel mask: 0 for background, `1..=count` for the
/// components in raster order of their first pixel. Returns the labels and the count.
pub fn label_components(mask: &Grid<bool>, conn: Connectivity) -> (Grid<u32>, u32) {
    let (labels, count) = components(&mask.data, mask.width, mask.height, conn);
    (mask.with_plane(labels), count)
}

/// [`label_components`] on a row-major slice (the warping error calls it on 3x3
/// neighbourhoods, where a grid would cost an allocation per pixel).
pub(crate) fn components(mask: &[bool], width: usize, height: usize, conn: Connectivity) -> (Vec<u32>, u32) {
    assert_eq!(mask.len(), width * height, "mask size");
    let mut labels = vec![0u32; mask.len()];
    let mut next = 0u32;
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || labels[start] != 0 {
            continue;
        }
        next += 1;
        labels[start] = next;
        stack.push(start);
        while let Some(p) = stack.pop() {
            let (x, y) = ((p % width) as isize, (p / width) as isize);
            for &(dx, dy) in conn.offsets() {
                let (nx, ny) = (x + dx, y + dy);
                if nx < 0 || ny < 0 || nx >= width as isize || ny >= height as isize {
                    continue;
                }
                let q = ny as usize * width + nx as usize;
                if mask[q] && labels[q] == 0 {
                    labels[q] = next;
                    stack.push(q);
                }
            }
        }
    }
    (labels, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagonal_pixels_split_under_four_join_under_eight() {
        let m = Grid::new(2, 2, vec![true, false, false, true]);
        assert_eq!(label_components(&m, Connectivity::Four).1, 2);
        assert_eq!(label_components(&m, Connectivity::Eight).1, 1);
        let (l, n) =
            label_components(&Grid::new(3, 2, vec![true, true, false, false, false, true]), Connectivity::Four);
        assert_eq!(n, 2);
        assert_eq!(l.size(), (3, 2));
        assert_eq!(l.data, vec![1, 1, 0, 0, 0, 2]);
    }
}
