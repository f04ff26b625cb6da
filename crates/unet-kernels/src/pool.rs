//! 2x2 stride-2 max-pooling of `[n, c, h, w]` to `[n, c, h/2, w/2]` (odd edges dropped) and
//! its gradient, which goes to the first maximum of each window in row-major order.
//! Parallel over planes; the backward recomputes the window maxima from the input instead
//! of keeping an index tensor.

use rayon::prelude::*;

use crate::Dims;

/// Output size of the pooling of `d`.
pub fn output_dims(d: Dims) -> Dims {
    Dims::new(d.n, d.c, d.h / 2, d.w / 2)
}

/// Max-pools `x` (`d`).
pub fn forward(x: &[f32], d: Dims) -> Vec<f32> {
    assert_eq!(x.len(), d.len(), "max_pool2x2: input length");
    let od = output_dims(d);
    let mut out = vec![0.0f32; od.len()];
    if od.is_empty() {
        return out;
    }
    out.par_chunks_mut(od.plane()).zip(x.par_chunks(d.plane())).for_each(|(y, x)| {
        for (i, row) in y.chunks_exact_mut(od.w).enumerate() {
            let (a, b) = (&x[2 * i * d.w..][..2 * od.w], &x[(2 * i + 1) * d.w..][..2 * od.w]);
            for (j, v) in row.iter_mut().enumerate() {
                *v = a[2 * j].max(a[2 * j + 1]).max(b[2 * j].max(b[2 * j + 1]));
            }
        }
    });
    out
}

/// Gradient of [`forward`] with respect to `x`, given the output gradient `dy`.
pub fn backward(x: &[f32], d: Dims, dy: &[f32]) -> Vec<f32> {
    let od = output_dims(d);
    assert_eq!(dy.len(), od.len(), "max_pool2x2 backward: output gradient length");
    let mut dx = vec![0.0f32; d.len()];
    if od.is_empty() {
        return dx;
    }
    dx.par_chunks_mut(d.plane()).zip(x.par_chunks(d.plane())).zip(dy.par_chunks(od.plane())).for_each(
        |((dx, x), g)| {
            for i in 0..od.h {
                let (r0, r1) = (2 * i * d.w, (2 * i + 1) * d.w);
                for j in 0..od.w {
                    let cand = [r0 + 2 * j, r0 + 2 * j + 1, r1 + 2 * j, r1 + 2 * j + 1];
                    let mut best = cand[0];
                    for &c in &cand[1..] {
                        if x[c] > x[best] {
                            best = c;
                        }
                    }
                    dx[best] = g[i * od.w + j];
                }
            }
        },
    );
    dx
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
    }
}
