//! Mirror extension of an image beyond its edges: reflection without repeating the edge
//! pixel (`... 2 1 | 0 1 2 ... n-1 | n-2 n-3 ...`), repeated as often as needed, so images
//! smaller than the network's border are extended too.

/// The in-image index that position `i` (any integer) mirrors to, for an axis of `n` pixels.
pub fn mirror_index(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    (if m < n as isize { m } else { period - m }) as usize
}

/// Copies the `h x w` window with top-left corner `(y0, x0)` (may lie outside) of a
/// `width x height` plane into `out`, mirroring outside the plane.
pub fn mirror_window(
    plane: &[f32],
    (width, height): (usize, usize),
    (y0, x0): (isize, isize),
    (h, w): (usize, usize),
    out: &mut [f32],
) {
    debug_assert_eq!(out.len(), h * w);
    let cols: Vec<usize> = (0..w).map(|x| mirror_index(x0 + x as isize, width)).collect();
    let inside_x = x0 >= 0 && x0 as usize + w <= width;
    for y in 0..h {
        let row = mirror_index(y0 + y as isize, height) * width;
        let dst = &mut out[y * w..(y + 1) * w];
        if inside_x {
            dst.copy_from_slice(&plane[row + x0 as usize..row + x0 as usize + w]);
        } else {
            for (d, &c) in dst.iter_mut().zip(&cols) {
                *d = plane[row + c];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflection_without_edge_repeat() {
        let n = 4; // 0 1 2 3
        let got: Vec<usize> = (-5..9).map(|i| mirror_index(i, n)).collect();
        // i: -5 -4 -3 -2 -1 | 0 1 2 3 | 4 5 6 7 8
        assert_eq!(got, vec![1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2]);
        assert_eq!(mirror_index(-7, 1), 0);
        assert_eq!((-3..5).map(|i| mirror_index(i, 2)).collect::<Vec<_>>(), vec![1, 0, 1, 0, 1, 0, 1, 0]);
    }

    #[test]
    fn window_by_hand() {
        // 2x3 plane:  a b c / d e f  (values 1..6)
        let p = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut out = vec![0.0; 4 * 5];
        mirror_window(&p, (3, 2), (-1, -1), (4, 5), &mut out);
        #[rustfmt::skip]
        let expected = [
            5.0, 4.0, 5.0, 6.0, 5.0,
            2.0, 1.0, 2.0, 3.0, 2.0,
            5.0, 4.0, 5.0, 6.0, 5.0,
            2.0, 1.0, 2.0, 3.0, 2.0,
        ];
        assert_eq!(out, expected);
    }
}
