//! The 8 symmetries of the square (4 rotations, each with and without a flip), applied to
//! images and undone on probability maps (every channel alike), for test-time augmentation.

use unet_grid::Grid;

/// A symmetry: flip left-right first (if `flip`), then rotate `rot` quarter turns clockwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symmetry {
    pub rot: u8,
    pub flip: bool,
}

/// All 8, the identity first.
pub const SYMMETRIES: [Symmetry; 8] = [
    Symmetry { rot: 0, flip: false },
    Symmetry { rot: 1, flip: false },
    Symmetry { rot: 2, flip: false },
    Symmetry { rot: 3, flip: false },
    Symmetry { rot: 0, flip: true },
    Symmetry { rot: 1, flip: true },
    Symmetry { rot: 2, flip: true },
    Symmetry { rot: 3, flip: true },
];

fn flip_lr(p: &[f32], w: usize, h: usize) -> Vec<f32> {
    (0..h).flat_map(|y| (0..w).rev().map(move |x| p[y * w + x])).collect()
}

/// One quarter turn clockwise: a `w x h` plane becomes `h x w`; `out(y, x) = in(h-1-x, y)`.
fn rot90(p: &[f32], w: usize, h: usize) -> Vec<f32> {
    let (ow, oh) = (h, w);
    (0..oh).flat_map(|y| (0..ow).map(move |x| p[(h - 1 - x) * w + y])).collect()
}

impl Symmetry {
    /// Size after the transform.
    pub fn size(&self, w: usize, h: usize) -> (usize, usize) {
        if self.rot % 2 == 1 { (h, w) } else { (w, h) }
    }

    /// Applies the symmetry to every channel of a grid.
    pub fn apply(&self, g: &Grid<f32>) -> Grid<f32> {
        self.per_channel(g, |p, w, h| self.apply_plane(p, w, h))
    }

    /// Undoes the symmetry on every channel of a grid of the transformed size.
    pub fn invert(&self, g: &Grid<f32>) -> Grid<f32> {
        self.per_channel(g, |p, w, h| self.invert_plane(p, w, h))
    }

    fn per_channel(&self, g: &Grid<f32>, f: impl Fn(&[f32], usize, usize) -> Vec<f32>) -> Grid<f32> {
        let (w, h) = self.size(g.width, g.height);
        let data = (0..g.channels).flat_map(|c| f(g.plane(c), g.width, g.height)).collect();
        Grid::with_channels(w, h, g.channels, data)
    }

    fn apply_plane(&self, p: &[f32], w: usize, h: usize) -> Vec<f32> {
        let mut cur = if self.flip { flip_lr(p, w, h) } else { p.to_vec() };
        let (mut cw, mut ch) = (w, h);
        for _ in 0..self.rot {
            cur = rot90(&cur, cw, ch);
            (cw, ch) = (ch, cw);
        }
        cur
    }

    fn invert_plane(&self, p: &[f32], w: usize, h: usize) -> Vec<f32> {
        let (mut cw, mut ch) = (w, h);
        let mut cur = p.to_vec();
        for _ in 0..(4 - self.rot) % 4 {
            cur = rot90(&cur, cw, ch);
            (cw, ch) = (ch, cw);
        }
        if self.flip { flip_lr(&cur, cw, ch) } else { cur }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_symmetry_inverts_and_all_differ() {
        let (w, h) = (3, 2);
        let p = Grid::with_channels(w, h, 2, (0..12).map(|v| v as f32).collect());
        let mut seen = Vec::new();
        for s in SYMMETRIES {
            let t = s.apply(&p);
            assert_eq!((t.size(), t.channels), (s.size(w, h), 2));
            assert_eq!(s.invert(&t), p, "{s:?}");
            assert!(!seen.contains(&t), "{s:?} repeats another symmetry");
            seen.push(t);
        }
        // A quarter turn clockwise by hand: [0 1 2; 3 4 5] -> [3 0; 4 1; 5 2].
        assert_eq!(SYMMETRIES[1].apply(&p).plane(0), &[3.0, 0.0, 4.0, 1.0, 5.0, 2.0]);
        assert_eq!(SYMMETRIES[1].apply(&p).plane(1), &[9.0, 6.0, 10.0, 7.0, 11.0, 8.0]);
    }
}
