//! The 2x2 stride-2 up-convolution (transposed convolution) `[n, ci, h, w] ->
//! [n, co, 2h, 2w]` with weights `[ci, co, 2, 2]` and a bias, and its gradients. Every
//! output pixel takes exactly one tap per input channel, so all three passes are one gemm
//! over a band of input pixels plus an interleave (forward) or de-interleave (backward).

use crate::chunks::{Bands, MIN_BAND_PIXELS, SharedMut, accumulate_bands, buf, filled_through, for_each_band};
use crate::matmul::{MatMul, Parallelism, View, ViewMut};
use crate::{Dims, Grads, channel_sums};

/// Output size of the up-convolution of `d` to `co` channels.
pub fn output_dims(d: Dims, co: usize) -> Dims {
    Dims::new(d.n, co, 2 * d.h, 2 * d.w)
}

/// `bias + upconv(x, weight)`: `x` is `d`, `weight` is `[d.c, co, 2, 2]`.
pub fn forward(x: &[f32], d: Dims, weight: &[f32], co: usize, bias: Option<&[f32]>) -> Vec<f32> {
    assert_eq!(x.len(), d.len(), "upconv2x2: input length");
    assert_eq!(weight.len(), d.c * co * 4, "upconv2x2: weight length");
    let od = output_dims(d, co);
    let j = 4 * co;
    let bands = Bands::new(d.n, d.h, (d.c + j) * d.w);
    let run = |dst: SharedMut| {
        for_each_band(&bands, |i, s| {
            let (img, r0, r1) = bands.get(i);
            let len = (r1 - r0) * d.w;
            let tmp = buf(&mut s.a, j * len);
            // tmp (p x j) = x (p x c) · weight (c x j).
            // SAFETY: x rows r0..r1 of every channel of image img, weight and tmp are in bounds.
            unsafe {
                MatMul {
                    m: len,
                    n: j,
                    k: d.c,
                    dst: ViewMut::new(tmp.as_mut_ptr(), 1, len),
                    accumulate: false,
                    lhs: View::new(x, img * d.c * d.plane() + r0 * d.w, 1, d.plane()),
                    rhs: View::new(weight, 0, j, 1),
                    par: Parallelism::None,
                }
                .run()
            };
            for o in 0..co {
                let b = bias.map_or(0.0, |b| b[o]);
                for r in r0..r1 {
                    for a in 0..2 {
                        // SAFETY: band i alone writes output rows 2*r0..2*r1 of image img.
                        let row = unsafe {
                            std::slice::from_raw_parts_mut(
                                dst.ptr().add(((img * co + o) * od.h + 2 * r + a) * od.w),
                                od.w,
                            )
                        };
                        let t0 = &tmp[(o * 4 + a * 2) * len + (r - r0) * d.w..][..d.w];
                        let t1 = &tmp[(o * 4 + a * 2 + 1) * len + (r - r0) * d.w..][..d.w];
                        for (xx, pair) in row.chunks_exact_mut(2).enumerate() {
                            pair[0] = t0[xx] + b;
                            pair[1] = t1[xx] + b;
                        }
                    }
                }
            }
        })
    };
    // SAFETY: the bands cover every input row; each writes both output rows of it, whole,
    // for every output channel.
    unsafe { filled_through(od.len(), run) }
}

/// Gradients of [`forward`] given `dy` (`[n, co, 2h, 2w]`); the input gradient only when
/// `input_grad`.
pub fn backward(x: &[f32], d: Dims, weight: &[f32], co: usize, dy: &[f32], input_grad: bool) -> Grads {
    let od = output_dims(d, co);
    assert_eq!(dy.len(), od.len(), "upconv2x2 backward: output gradient length");
    let j = 4 * co;
    let bands = Bands::new(d.n, d.h, (d.c + j) * d.w);
    // g[(o*4 + a*2 + b)][p] = dy[o][2y + a][2x + b] for the band's pixels p = (y, x).
    let gather = |img: usize, r0: usize, r1: usize, g: &mut [f32]| {
        let len = (r1 - r0) * d.w;
        for o in 0..co {
            for r in r0..r1 {
                for a in 0..2 {
                    let src = &dy[((img * co + o) * od.h + 2 * r + a) * od.w..][..od.w];
                    for b in 0..2 {
                        let dst = &mut g[(o * 4 + a * 2 + b) * len + (r - r0) * d.w..][..d.w];
                        dst.iter_mut().zip(src.iter().skip(b).step_by(2)).for_each(|(t, &v)| *t = v);
                    }
                }
            }
        }
    };
    let input = input_grad.then(|| {
        let mut dx = vec![0.0f32; d.len()];
        let dst = SharedMut(dx.as_mut_ptr());
        for_each_band(&bands, |i, s| {
            let (img, r0, r1) = bands.get(i);
            let len = (r1 - r0) * d.w;
            let g = buf(&mut s.a, j * len);
            gather(img, r0, r1, g);
            // dx (p x c) = g^T (p x j) · weight^T (j x c), written straight into dx.
            // SAFETY: band i alone writes rows r0..r1 of image img; all views in bounds.
            unsafe {
                MatMul {
                    m: len,
                    n: d.c,
                    k: j,
                    dst: ViewMut::new(dst.ptr().add(img * d.c * d.plane() + r0 * d.w), 1, d.plane()),
                    accumulate: false,
                    lhs: View::new(g, 0, 1, len),
                    rhs: View::new(weight, 0, 1, j),
                    par: Parallelism::None,
                }
                .run()
            };
        });
        dx
    });
    let wbands = Bands::at_least(d.n, d.h, (d.c + j) * d.w, MIN_BAND_PIXELS.div_ceil(d.w));
    let weight_grad = accumulate_bands(&wbands, d.c * j, |i, acc, s, par| {
        let (img, r0, r1) = wbands.get(i);
        let len = (r1 - r0) * d.w;
        let g = buf(&mut s.a, j * len);
        gather(img, r0, r1, g);
        // acc (c x j) += x (c x p) · g^T (p x j).
        // SAFETY: all views in bounds; acc is this group's own buffer.
        unsafe {
            MatMul {
                m: d.c,
                n: j,
                k: len,
                dst: ViewMut::new(acc.as_mut_ptr(), j, 1),
                accumulate: true,
                lhs: View::new(x, img * d.c * d.plane() + r0 * d.w, d.plane(), 1),
                rhs: View::new(g, 0, 1, len),
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
        for &(d, co) in &[(Dims::new(1, 1, 1, 1), 1), (Dims::new(2, 6, 7, 5), 3), (Dims::new(1, 32, 40, 41), 16)] {
            let x = random(d.len(), 11);
            let w = random(d.c * co * 4, 12);
            let b = random(co, 13);
            let od = output_dims(d, co);
            let g = random(od.len(), 14);
            let y = forward(&x, d, &w, co, Some(&b));
            let gr = backward(&x, d, &w, co, &g, true);
            let mut ey = vec![0f64; od.len()];
            let mut dx = vec![0f64; x.len()];
            let mut dw = vec![0f64; w.len()];
            let mut db = vec![0f64; co];
            for n in 0..d.n {
                for o in 0..co {
                    for yy in 0..od.h {
                        for xx in 0..od.w {
                            let oi = ((n * co + o) * od.h + yy) * od.w + xx;
                            ey[oi] += b[o] as f64;
                            db[o] += g[oi] as f64;
                            for c in 0..d.c {
                                let xi = ((n * d.c + c) * d.h + yy / 2) * d.w + xx / 2;
                                let wi = ((c * co + o) * 2 + yy % 2) * 2 + xx % 2;
                                ey[oi] += x[xi] as f64 * w[wi] as f64;
                                dx[xi] += g[oi] as f64 * w[wi] as f64;
                                dw[wi] += g[oi] as f64 * x[xi] as f64;
                            }
                        }
                    }
                }
            }
            assert_values(&y, &ey);
            assert_grads(&gr, &dx, &dw, Some(&db));
        }
    }
}
