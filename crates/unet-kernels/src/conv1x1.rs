//! The 1x1 convolution (the head) `[n, ci, h, w] -> [n, co, h, w]` with weights
//! `[co, ci, 1, 1]` and a bias, and its gradients: one gemm per band of pixels.

use crate::chunks::{Bands, MIN_BAND_PIXELS, SharedMut, accumulate_bands, filled_through, for_each_band};
use crate::matmul::{MatMul, Parallelism, View, ViewMut};
use crate::{Dims, Grads, channel_sums};

/// `bias + weight · x` per pixel.
pub fn forward(x: &[f32], d: Dims, weight: &[f32], co: usize, bias: Option<&[f32]>) -> Vec<f32> {
    assert_eq!(x.len(), d.len(), "conv1x1: input length");
    assert_eq!(weight.len(), co * d.c, "conv1x1: weight length");
    let od = Dims::new(d.n, co, d.h, d.w);
    let bands = Bands::new(d.n, d.h, (d.c + co) * d.w);
    let run = |dst: SharedMut| {
        for_each_band(&bands, |i, _| {
            let (img, r0, r1) = bands.get(i);
            let len = (r1 - r0) * d.w;
            // y (p x o) = x (p x c) · weight^T (c x o), straight into the output.
            // SAFETY: band i alone writes rows r0..r1 of image img; all views in bounds.
            unsafe {
                let y = dst.ptr().add(img * co * d.plane() + r0 * d.w);
                MatMul {
                    m: len,
                    n: co,
                    k: d.c,
                    dst: ViewMut::new(y, 1, d.plane()),
                    accumulate: false,
                    lhs: View::new(x, img * d.c * d.plane() + r0 * d.w, 1, d.plane()),
                    rhs: View::new(weight, 0, 1, d.c),
                    par: Parallelism::None,
                }
                .run();
                if let Some(b) = bias {
                    for (o, &bo) in b.iter().enumerate() {
                        std::slice::from_raw_parts_mut(y.add(o * d.plane()), len).iter_mut().for_each(|v| *v += bo);
                    }
                }
            }
        })
    };
    // SAFETY: the bands cover every row of every image, and the gemm (not reading its
    // destination) writes all `co` channels of them.
    unsafe { filled_through(od.len(), run) }
}

/// Gradients of [`forward`] given `dy` (`[n, co, h, w]`).
pub fn backward(x: &[f32], d: Dims, weight: &[f32], co: usize, dy: &[f32], input_grad: bool) -> Grads {
    let od = Dims::new(d.n, co, d.h, d.w);
    assert_eq!(dy.len(), od.len(), "conv1x1 backward: output gradient length");
    let bands = Bands::new(d.n, d.h, (d.c + co) * d.w);
    let input = input_grad.then(|| {
        let mut dx = vec![0.0f32; d.len()];
        let dst = SharedMut(dx.as_mut_ptr());
        for_each_band(&bands, |i, _| {
            let (img, r0, r1) = bands.get(i);
            // dx (p x c) = dy (p x o) · weight (o x c).
            // SAFETY: band i alone writes rows r0..r1 of image img; all views in bounds.
            unsafe {
                MatMul {
                    m: (r1 - r0) * d.w,
                    n: d.c,
                    k: co,
                    dst: ViewMut::new(dst.ptr().add(img * d.c * d.plane() + r0 * d.w), 1, d.plane()),
                    accumulate: false,
                    lhs: View::new(dy, img * co * d.plane() + r0 * d.w, 1, d.plane()),
                    rhs: View::new(weight, 0, d.c, 1),
                    par: Parallelism::None,
                }
                .run()
            };
        });
        dx
    });
    let wbands = Bands::at_least(d.n, d.h, (d.c + co) * d.w, MIN_BAND_PIXELS.div_ceil(d.w));
    let weight_grad = accumulate_bands(&wbands, co * d.c, |i, acc, _, par| {
        let (img, r0, r1) = wbands.get(i);
        // acc (o x c) += dy (o x p) · x^T (p x c).
        // SAFETY: all views in bounds; acc is this group's own buffer.
        unsafe {
            MatMul {
                m: co,
                n: d.c,
                k: (r1 - r0) * d.w,
                dst: ViewMut::new(acc.as_mut_ptr(), d.c, 1),
                accumulate: true,
                lhs: View::new(dy, img * co * d.plane() + r0 * d.w, d.plane(), 1),
                rhs: View::new(x, img * d.c * d.plane() + r0 * d.w, 1, d.plane()),
                par,
            }
            .run()
        };
    });
    Grads { input, weight: weight_grad, bias: channel_sums(dy, od) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naive::{assert_grads, assert_values, random};

    #[test]
    fn forward_and_gradients_match_direct_sums() {
        for &(d, co) in &[(Dims::new(1, 1, 1, 1), 1), (Dims::new(2, 16, 13, 11), 2), (Dims::new(1, 64, 50, 3), 5)] {
            let x = random(d.len(), 21);
            let w = random(co * d.c, 22);
            let b = random(co, 23);
            let g = random(d.n * co * d.plane(), 24);
            let y = forward(&x, d, &w, co, Some(&b));
            let gr = backward(&x, d, &w, co, &g, true);
            let p = d.plane();
            let mut ey = vec![0f64; y.len()];
            let mut dx = vec![0f64; x.len()];
            let mut dw = vec![0f64; w.len()];
            for n in 0..d.n {
                for o in 0..co {
                    for i in 0..p {
                        let oi = (n * co + o) * p + i;
                        ey[oi] += b[o] as f64;
                        for c in 0..d.c {
                            let xi = (n * d.c + c) * p + i;
                            ey[oi] += (w[o * d.c + c] * x[xi]) as f64;
                            dx[xi] += (w[o * d.c + c] * g[oi]) as f64;
                            dw[o * d.c + c] += (g[oi] * x[xi]) as f64;
                        }
                    }
                }
            }
            assert_values(&y, &ey);
            assert_grads(&gr, &dx, &dw, None);
        }
    }
}
