//! 2x2 stride-2 max-pooling of `[n, c, h, w]` to `[n, c, h/2, w/2]` (odd edges dropped) and
//! its gradient, which goes to the first maximum of each window in row-major order.
//! Parallel over planes; the backward recomputes the window maxima from the input instead
//! of keeping an index tensor.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::Dims;
use crate::chunks::{filled, write_zeros};

/// Output size of the pooling of `d`.
pub fn output_dims(d: Dims) -> Dims {
    Dims::new(d.n, d.c, d.h / 2, d.w / 2)
}

/// Max-pools `x` (`d`).
pub fn forward(x: &[f32], d: Dims) -> Vec<f32> {
    assert_eq!(x.len(), d.len(), "max_pool2x2: input length");
    let od = output_dims(d);
    if od.is_empty() {
        return Vec::new();
    }
    let fill = |out: &mut [MaybeUninit<f32>]| {
        out.par_chunks_mut(od.plane()).zip(x.par_chunks(d.plane())).for_each(|(y, x)| {
            for (i, row) in y.chunks_exact_mut(od.w).enumerate() {
                let (a, b) = (&x[2 * i * d.w..][..2 * od.w], &x[(2 * i + 1) * d.w..][..2 * od.w]);
                for (j, v) in row.iter_mut().enumerate() {
                    v.write(a[2 * j].max(a[2 * j + 1]).max(b[2 * j].max(b[2 * j + 1])));
                }
            }
        })
    };
    // SAFETY: every output plane is written row by row, every element of every row.
    unsafe { filled(od.len(), fill) }
}

/// Gradient of [`forward`] with respect to `x`, given the output gradient `dy`.
pub fn backward(x: &[f32], d: Dims, dy: &[f32]) -> Vec<f32> {
    let od = output_dims(d);
    assert_eq!(dy.len(), od.len(), "max_pool2x2 backward: output gradient length");
    if od.is_empty() {
        return vec![0.0; d.len()];
    }
    let fill = |dx: &mut [MaybeUninit<f32>]| {
        dx.par_chunks_mut(d.plane()).zip(x.par_chunks(d.plane())).zip(dy.par_chunks(od.plane())).for_each(
            |((dx, x), g)| {
                for i in 0..od.h {
                    let (top, bottom) = dx[2 * i * d.w..][..2 * d.w].split_at_mut(d.w);
                    window_gradients(
                        &x[2 * i * d.w..][..2 * od.w],
                        &x[(2 * i + 1) * d.w..][..2 * od.w],
                        &g[i * od.w..][..od.w],
                        &mut top[..2 * od.w],
                        &mut bottom[..2 * od.w],
                    );
                    // An odd width's last column takes no gradient.
                    write_zeros(&mut top[2 * od.w..]);
                    write_zeros(&mut bottom[2 * od.w..]);
                }
                // An odd height's last row takes no gradient.
                write_zeros(&mut dx[2 * od.h * d.w..]);
            },
        )
    };
    // SAFETY: every plane is written whole: both rows of every window row (windows and the
    // odd last column) and the odd last row.
    unsafe { filled(d.len(), fill) }
}

/// One row of windows: `top`/`bottom` get `g[j]` at the first maximum of window `j` of
/// rows `a`/`b` (order a0, a1, b0, b1) and 0 elsewhere. Branch-free, so it vectorises.
fn window_gradients(a: &[f32], b: &[f32], g: &[f32], top: &mut [MaybeUninit<f32>], bottom: &mut [MaybeUninit<f32>]) {
    for (j, &gj) in g.iter().enumerate() {
        let (a0, a1, b0, b1) = (a[2 * j], a[2 * j + 1], b[2 * j], b[2 * j + 1]);
        // The same choice as scanning a0, a1, b0, b1 and keeping a strictly greater value.
        let first = a0 >= a1 && a0 >= b0 && a0 >= b1;
        let second = !first && a1 >= b0 && a1 >= b1;
        let third = !first && !second && b0 >= b1;
        let fourth = !first && !second && !third;
        top[2 * j].write(if first { gj } else { 0.0 });
        top[2 * j + 1].write(if second { gj } else { 0.0 });
        bottom[2 * j].write(if third { gj } else { 0.0 });
        bottom[2 * j + 1].write(if fourth { gj } else { 0.0 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_and_backward_by_hand() {
        // A 4x5 plane (the odd last column is dropped) and its negation as a second image.
        let d = Dims::new(2, 1, 4, 5);
        #[rustfmt::skip]
        let plane = [
            1., 2., 0., 9., 7.,
            4., 3., -1., 5., 8.,
            0., 0., 6., 2., 1.,
            -3., 5., 1., 7., 0.,
        ];
        let x: Vec<f32> = plane.iter().copied().chain(plane.iter().map(|v| -v)).collect();
        assert_eq!(forward(&x, d), [4., 9., 5., 7., -1., 1., 3., -1.]);
        let dx = backward(&x, d, &[1., 2., 3., 4., 5., 6., 7., 8.]);
        let mut expect = vec![0.0; 40];
        for (at, g) in [(5, 1.), (3, 2.), (16, 3.), (18, 4.), (20, 5.), (27, 6.), (35, 7.), (37, 8.)] {
            expect[at] = g;
        }
        assert_eq!(dx, expect);
    }

    #[test]
    fn ties_go_to_the_first_maximum() {
        let d = Dims::new(1, 1, 2, 2);
        assert_eq!(backward(&[0.0; 4], d, &[3.0]), [3.0, 0.0, 0.0, 0.0]);
        assert_eq!(backward(&[0.0, 1.0, 1.0, 1.0], d, &[3.0]), [0.0, 3.0, 0.0, 0.0]);
        assert_eq!(backward(&[0.0, -1.0, 2.0, 2.0], d, &[3.0]), [0.0, 0.0, 3.0, 0.0]);
        assert_eq!(backward(&[0.0, -1.0, 2.0, 2.5], d, &[3.0]), [0.0, 0.0, 0.0, 3.0]);
        // An odd height's last row takes no gradient.
        let d = Dims::new(1, 1, 3, 2);
        assert_eq!(backward(&[5.0, 1.0, 1.0, 1.0, 9.0, 9.0], d, &[3.0]), [3.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }
}
