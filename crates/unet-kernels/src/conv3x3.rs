//! The 3x3 valid convolution `[n, ci, h, w] -> [n, co, h-2, w-2]` (weights `[co, ci, 3, 3]`),
//! with bias and ReLU optionally fused, and its gradients.

use rayon::prelude::*;

use std::mem::MaybeUninit;

use crate::chunks::{
    Bands, MIN_BAND_PIXELS, SharedMut, accumulate_bands, buf, filled, filled_through, for_each_band, write_all,
    write_zeros,
};
use crate::matmul::{MatMul, Parallelism, View, ViewMut};
use crate::{Dims, Grads, channel_sums};

/// Output size of a valid 3x3 convolution of `d` to `co` channels.
pub fn output_dims(d: Dims, co: usize) -> Dims {
    Dims::new(d.n, co, d.h.saturating_sub(2), d.w.saturating_sub(2))
}

/// Size of the output gradient zero-padded by 2 on every side, as the backward pass keeps
/// it for all three gradients: `[n, co, h + 2, w + 2]` for an input `d`.
pub(crate) fn padded_dims(d: Dims, co: usize) -> Dims {
    let od = output_dims(d, co);
    Dims::new(d.n, co, od.h + 4, od.w + 4)
}

/// Fills `col` (`9 * ci` rows of `len` floats) with the flat im2col of image `img` for the
/// output rows starting at `r0`: row `c*9 + ky*3 + kx` is `x[c][(r0+ky)*w + kx ..][..len]`,
/// zero past the image's end.
fn im2col(x: &[f32], d: Dims, img: usize, r0: usize, len: usize, col: &mut [f32]) {
    let plane = d.plane();
    for c in 0..d.c {
        let src = &x[(img * d.c + c) * plane..][..plane];
        for ky in 0..3 {
            for kx in 0..3 {
                let row = &mut col[((c * 3 + ky) * 3 + kx) * len..][..len];
                let start = (r0 + ky) * d.w + kx;
                let avail = plane.saturating_sub(start).min(len);
                row[..avail].copy_from_slice(&src[start..start + avail]);
                row[avail..].fill(0.0);
            }
        }
    }
}

/// `relu(conv3x3(x, weight) + bias)` (ReLU when `relu`); `x` is `d`, `weight` is
/// `[co, d.c, 3, 3]`. Returns `[d.n, co, d.h-2, d.w-2]`.
pub fn forward(x: &[f32], d: Dims, weight: &[f32], co: usize, bias: Option<&[f32]>, relu: bool) -> Vec<f32> {
    assert!(d.h >= 3 && d.w >= 3, "conv3x3: input {}x{} is smaller than the kernel", d.h, d.w);
    assert_eq!(x.len(), d.len(), "conv3x3: input length");
    let k = 9 * d.c;
    assert_eq!(weight.len(), co * k, "conv3x3: weight length");
    if crate::winograd::pays(d, co) {
        return crate::winograd::forward(x, d, &crate::winograd::transform_weights(weight, co, d.c), co, bias, relu);
    }
    #[cfg(target_arch = "x86_64")]
    if use_direct(d, co) {
        return forward_with(x, d, weight, co, bias, relu, Product::Direct(crate::avx512_conv::pack(weight, co, k)));
    }
    forward_with(x, d, weight, co, bias, relu, Product::Gemm)
}

/// Whether the direct AVX-512 kernel computes the forward product of `d` to `co` channels:
/// on this CPU, with at least one full block of output channels, and while one input row
/// across all channels (`ci * w` floats) stays within 15K floats. Measured per layer
/// (`cargo bench -p unet-kernels --bench kernels -- 16|64`): every width-16 layer (up to
/// 14.3K floats per row) was faster direct; on most width-64 layers (16K-57K) gemm was as
/// fast or faster, by up to 1.7x.
#[cfg(target_arch = "x86_64")]
fn use_direct(d: Dims, co: usize) -> bool {
    co >= crate::avx512_conv::BLOCK && d.c * d.w <= DIRECT_MAX_ROW_FLOATS && crate::avx512_conv::available()
}

/// See [`use_direct`].
#[cfg(target_arch = "x86_64")]
const DIRECT_MAX_ROW_FLOATS: usize = 15_000;

/// How a band's product `W · col(X)` is computed.
enum Product {
    /// im2col + gemm.
    Gemm,
    /// The direct AVX-512 kernel, with the weights packed by `avx512_conv::pack`.
    #[cfg(target_arch = "x86_64")]
    Direct(Vec<f32>),
}

/// [`forward`] with the band product computed by `product`.
fn forward_with(
    x: &[f32],
    d: Dims,
    weight: &[f32],
    co: usize,
    bias: Option<&[f32]>,
    relu: bool,
    product: Product,
) -> Vec<f32> {
    let k = 9 * d.c;
    let od = output_dims(d, co);
    let bands = match product {
        // The column buffer of a band fits the L2 cache.
        Product::Gemm => Bands::new(d.n, od.h, k * d.w),
        // The direct kernel walks all input channels for every block of pixels: bands of
        // input rows that span 256 KiB were fastest (measured 16-256 KiB at width 16).
        #[cfg(target_arch = "x86_64")]
        Product::Direct(_) => Bands::within(d.n, od.h, d.c * d.w, 1 << 16, 1),
    };
    let run = |dst: SharedMut| {
        for_each_band(&bands, |i, s| {
            let (img, r0, r1) = bands.get(i);
            let len = (r1 - r0) * d.w;
            let tmp = match &product {
                Product::Gemm => {
                    let col = buf(&mut s.a, k * len);
                    im2col(x, d, img, r0, len, col);
                    let tmp = buf(&mut s.b, co * len);
                    // tmp[o][p] = sum_kk weight[o][kk] col[kk][p]; as (p x o) = (p x kk)(kk x o).
                    // SAFETY: col, weight and tmp hold len*k, co*k and co*len floats.
                    unsafe {
                        MatMul {
                            m: len,
                            n: co,
                            k,
                            dst: ViewMut::new(tmp.as_mut_ptr(), 1, len),
                            accumulate: false,
                            lhs: View::new(col, 0, 1, len),
                            rhs: View::new(weight, 0, 1, k),
                            par: Parallelism::None,
                        }
                        .run()
                    };
                    tmp
                }
                #[cfg(target_arch = "x86_64")]
                Product::Direct(packed) => {
                    use crate::avx512_conv::{BLOCK, Band, band};
                    let blocks = co.div_ceil(BLOCK);
                    let tmp = buf(&mut s.b, blocks * BLOCK * len);
                    // The band's last two positions are the last row's dropped columns; leaving
                    // them out keeps every read inside the image.
                    let b = Band {
                        x: x[(img * d.c) * d.plane() + r0 * d.w..].as_ptr(),
                        x_plane: d.plane(),
                        w: d.w,
                        ci: d.c,
                        len: len - 2,
                    };
                    for blk in 0..blocks {
                        // SAFETY: AVX-512F is available; the band reads input rows r0..r1+2 of
                        // image img (flat positions below (r1 + 2) * w); packed holds `blocks`
                        // blocks of 9*ci*8 floats; tmp holds blocks*8 rows of len floats.
                        unsafe {
                            band(&b, packed[blk * k * BLOCK..].as_ptr(), tmp[blk * BLOCK * len..].as_mut_ptr(), len)
                        };
                    }
                    tmp
                }
            };
            for o in 0..co {
                let b = bias.map_or(0.0, |b| b[o]);
                for r in r0..r1 {
                    let src = &tmp[o * len + (r - r0) * d.w..][..od.w];
                    // SAFETY: band i alone writes output rows r0..r1 of image img.
                    let row = unsafe {
                        std::slice::from_raw_parts_mut(
                            dst.ptr().add(((img * co + o) * od.h + r) * od.w).cast::<MaybeUninit<f32>>(),
                            od.w,
                        )
                    };
                    if relu {
                        row.iter_mut().zip(src).for_each(|(y, &v)| {
                            y.write((v + b).max(0.0));
                        });
                    } else {
                        row.iter_mut().zip(src).for_each(|(y, &v)| {
                            y.write(v + b);
                        });
                    }
                }
            }
        })
    };
    // SAFETY: the bands cover every output row of every image, and each writes all `co`
    // channels of its rows.
    unsafe { filled_through(od.len(), run) }
}

/// Gradients of [`forward`] given the output gradient `dy` (`[n, co, h-2, w-2]`). With
/// `relu_output` (the forward output of a fused ReLU) the gradient is masked where the
/// output was 0. The input gradient is computed only when `input_grad`.
pub fn backward(
    x: &[f32],
    d: Dims,
    weight: &[f32],
    co: usize,
    relu_output: Option<&[f32]>,
    dy: &[f32],
    input_grad: bool,
) -> Grads {
    let od = output_dims(d, co);
    assert_eq!(dy.len(), od.len(), "conv3x3 backward: output gradient length");
    if let Some(y) = relu_output {
        assert_eq!(y.len(), od.len(), "conv3x3 backward: output length");
    }
    // The masked gradient, zero-padded by 2 on every side (the input gradient's input), in
    // one parallel pass; the other two gradients read its interior.
    let pd = padded_dims(d, co);
    let fill = |planes: &mut [MaybeUninit<f32>]| {
        planes.par_chunks_mut(pd.plane()).enumerate().for_each(|(plane, dst)| {
            write_zeros(&mut dst[..2 * pd.w + 2]);
            for r in 0..od.h {
                let at = (plane * od.h + r) * od.w;
                let row = &mut dst[(r + 2) * pd.w + 2..][..od.w];
                match relu_output {
                    Some(y) => {
                        row.iter_mut().zip(&dy[at..at + od.w]).zip(&y[at..at + od.w]).for_each(|((t, &g), &v)| {
                            t.write(if v > 0.0 { g } else { 0.0 });
                        })
                    }
                    None => write_all(row, &dy[at..at + od.w]),
                }
                // This row's right margin and the next row's left margin.
                write_zeros(&mut dst[(r + 2) * pd.w + 2 + od.w..][..4]);
            }
            write_zeros(&mut dst[(od.h + 2) * pd.w + 2..]);
        })
    };
    // SAFETY: every plane is written whole: its first two rows and the next row's left
    // margin, each interior row and the margins that follow it, and the rest to the end.
    let padded = unsafe { filled(pd.len(), fill) };
    Grads {
        weight: weight_gradient(x, d, &padded, co),
        bias: channel_sums(&padded, pd),
        input: input_grad.then(|| input_gradient(&padded, pd, d.c, weight, co)),
    }
}

/// `dW[o][c*9 + ky*3 + kx] = sum_p dz[o][p] x[c][p + ky*w + kx]`; `dz` is the output
/// gradient zero-padded by 2.
fn weight_gradient(x: &[f32], d: Dims, dz: &[f32], co: usize) -> Vec<f32> {
    if crate::winograd::pays_for_weight_gradient(d, co) {
        return crate::winograd::weight_gradient(x, d, dz, co);
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(isa) = crate::direct_wgrad::isa().filter(|_| co <= WGRAD_DIRECT_MAX_OUTPUTS) {
        return weight_gradient_direct(isa, x, d, dz, co);
    }
    weight_gradient_gemm(x, d, dz, co)
}

/// Weight-gradient accumulators larger than this many floats (16 MiB) are summed over one
/// band per image, with the product itself multi-threaded: per-thread copies and thin bands
/// made the gradient of the 30x30, 1024-channel layer memory-bound (0.18 s; 0.10-0.11 s as
/// one band).
pub(crate) const LARGE_ACCUMULATOR: usize = 1 << 22;

/// Output channels up to which the direct weight gradient is used. Measured per layer with
/// AVX-512 (`cargo bench -p unet-kernels --bench kernels -- 64`): up to 64 outputs it was
/// faster than im2col + gemm at widths 16 and 64 (the width-64 top layer 0.090 against
/// 0.105 s); from 128 outputs up the two were even at width 16 and gemm won at width 64
/// (up to 1.8x), where the kernel's passes over thin row bands grow short.
#[cfg(target_arch = "x86_64")]
const WGRAD_DIRECT_MAX_OUTPUTS: usize = 64;

/// [`weight_gradient`] by the direct kernel on `isa`. Threads split the output channels
/// (blocks of 8, disjoint rows of `dW`, no merging) and, when there are fewer blocks than
/// threads, also the rows (one accumulator per row group, summed in a fixed order). Each
/// task walks its rows in bands whose input rows fit the L2 cache.
#[cfg(target_arch = "x86_64")]
fn weight_gradient_direct(isa: crate::direct_wgrad::Isa, x: &[f32], d: Dims, dz: &[f32], co: usize) -> Vec<f32> {
    use crate::direct_wgrad::{Band, accumulate};
    /// Input floats a band may span (1 MiB).
    const BAND_FLOATS: usize = 1 << 18;
    let k = 9 * d.c;
    let od = output_dims(d, co);
    let pd = padded_dims(d, co);
    assert_eq!(x.len(), d.len(), "conv3x3 weight gradient: input length");
    assert_eq!(dz.len(), pd.len(), "conv3x3 weight gradient: padded gradient length");
    let threads = rayon::current_num_threads().max(1);
    let blocks = co.div_ceil(8);
    let ogroups = blocks.min(threads);
    let rgroups = threads.div_ceil(ogroups).min(od.h).max(1);
    let max_rows = (BAND_FLOATS / (d.c * d.w).max(1)).saturating_sub(2).max(1);
    let mut accs = vec![0.0f32; rgroups * co * k];
    let dst = SharedMut(accs.as_mut_ptr());
    (0..rgroups * ogroups).into_par_iter().for_each(|t| {
        let (rg, og) = (t / ogroups, t % ogroups);
        let (o0, o1) = ((og * blocks / ogroups) * 8, ((og + 1) * blocks / ogroups * 8).min(co));
        let (g0, g1) = (rg * od.h / rgroups, (rg + 1) * od.h / rgroups);
        // SAFETY: task (rg, og) alone writes rows o0..o1 of accumulator rg.
        let acc = unsafe { std::slice::from_raw_parts_mut(dst.ptr().add((rg * co + o0) * k), (o1 - o0) * k) };
        for img in 0..d.n {
            // Bands of equal height, so no band is a thin remainder.
            let band_rows = (g1 - g0).div_ceil((g1 - g0).div_ceil(max_rows)).max(1);
            for r0 in (g0..g1).step_by(band_rows) {
                let band = Band {
                    x: x[img * d.c * d.plane()..].as_ptr(),
                    x_plane: d.plane(),
                    w: d.w,
                    ci: d.c,
                    dz: dz[(img * co + o0) * pd.plane() + 2 * pd.w + 2..].as_ptr(),
                    dz_plane: pd.plane(),
                    dz_row: pd.w,
                    co: o1 - o0,
                    r0,
                    r1: (r0 + band_rows).min(g1),
                };
                // SAFETY: the CPU has `isa`; the band's rows lie inside `x` and `dz`
                // (lengths checked above) and `acc` holds (o1 - o0) * 9 * ci floats.
                unsafe { accumulate(isa, &band, acc) };
            }
        }
    });
    // Row groups summed in order, so the result does not depend on thread timing.
    let (first, rest) = accs.split_at_mut(co * k);
    for part in rest.chunks(co * k) {
        first.iter_mut().zip(part).for_each(|(a, b)| *a += b);
    }
    accs.truncate(co * k);
    accs
}

/// [`weight_gradient`] as im2col + gemm, over bands of rows.
fn weight_gradient_gemm(x: &[f32], d: Dims, dz: &[f32], co: usize) -> Vec<f32> {
    let k = 9 * d.c;
    let od = output_dims(d, co);
    let pd = padded_dims(d, co);
    let bands = if co * k > LARGE_ACCUMULATOR {
        Bands::single(d.n, od.h)
    } else {
        Bands::at_least(d.n, od.h, k * d.w, MIN_BAND_PIXELS.div_ceil(d.w))
    };
    accumulate_bands(&bands, co * k, |i, acc, s, par| {
        let (img, r0, r1) = bands.get(i);
        let len = (r1 - r0) * d.w;
        let col = buf(&mut s.a, k * len);
        im2col(x, d, img, r0, len, col);
        // dz at the input's row stride, zero in the two dropped columns.
        let dzf = buf(&mut s.b, co * len);
        for o in 0..co {
            for r in r0..r1 {
                let dst = &mut dzf[o * len + (r - r0) * d.w..][..d.w];
                dst[..od.w].copy_from_slice(&dz[((img * co + o) * pd.h + r + 2) * pd.w + 2..][..od.w]);
                dst[od.w..].fill(0.0);
            }
        }
        // acc^T (kk x o) += col (kk x p) · dzf^T (p x o): the long side (kk) as gemm rows,
        // which suits its column-major micro-kernels when `co` is small.
        // SAFETY: sizes as allocated above; acc is this group's own buffer.
        unsafe {
            MatMul {
                m: k,
                n: co,
                k: len,
                dst: ViewMut::new(acc.as_mut_ptr(), 1, k),
                accumulate: true,
                lhs: View::new(col, 0, len, 1),
                rhs: View::new(dzf, 0, 1, len),
                par,
            }
            .run()
        };
    })
}

/// `dx = conv3x3(padded, flip(weight)^T)`: the full correlation of the output gradient as a
/// valid convolution of its zero-padded copy `padded` (`pd`) to `ci` channels.
fn input_gradient(padded: &[f32], pd: Dims, ci: usize, weight: &[f32], co: usize) -> Vec<f32> {
    let mut flipped = vec![0.0f32; weight.len()];
    for o in 0..co {
        for c in 0..ci {
            for t in 0..9 {
                flipped[(c * co + o) * 9 + 8 - t] = weight[(o * ci + c) * 9 + t];
            }
        }
    }
    forward(padded, pd, &flipped, ci, None, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naive::{assert_close, assert_grads, conv3x3_naive, random};

    fn check(d: Dims, co: usize, relu: bool) {
        let x = random(d.len(), 1);
        let w = random(co * d.c * 9, 2);
        let b = random(co, 3);
        let expect = conv3x3_naive(&x, d, &w, co, &b, relu);
        assert_close(&forward(&x, d, &w, co, Some(&b), relu), &expect, 1e-4, "forward");
        // Both band products, whichever `forward` picked on this CPU.
        let gemm = forward_with(&x, d, &w, co, Some(&b), relu, Product::Gemm);
        assert_close(&gemm, &expect, 1e-4, "forward (gemm)");
        #[cfg(target_arch = "x86_64")]
        if use_direct(d, co) {
            let packed = crate::avx512_conv::pack(&w, co, 9 * d.c);
            let direct = forward_with(&x, d, &w, co, Some(&b), relu, Product::Direct(packed));
            assert_close(&direct, &expect, 1e-4, "forward (direct)");
        }
    }

    #[test]
    fn forward_matches_direct_convolution() {
        check(Dims::new(1, 1, 3, 3), 1, false);
        check(Dims::new(2, 3, 17, 23), 5, true);
        check(Dims::new(1, 16, 40, 9), 7, false);
        check(Dims::new(3, 2, 64, 70), 16, true);
        // Row tails of every kind, output-channel blocks with a partial last block, and
        // narrow images where one pixel block spans several rows.
        check(Dims::new(2, 9, 21, 50), 13, true);
        check(Dims::new(1, 4, 5, 4), 9, false);
        check(Dims::new(2, 33, 11, 66), 8, true);
    }

    /// The direct weight gradient on every instruction set this CPU has (and whatever
    /// `weight_gradient` picks) against the gemm path, on shapes
    /// that exercise every output-channel block size (8, 4, 2, 1), row tails of every
    /// length, one-row images and several images.
    #[test]
    fn weight_gradient_paths_agree() {
        for (i, &(d, co)) in [
            (Dims::new(1, 1, 3, 3), 1),
            (Dims::new(2, 3, 9, 18), 15),
            (Dims::new(1, 5, 30, 17), 6),
            (Dims::new(3, 2, 12, 35), 13),
            (Dims::new(1, 16, 40, 66), 24),
        ]
        .iter()
        .enumerate()
        {
            let x = random(d.len(), 10 + i as u64);
            let od = output_dims(d, co);
            let mut dz = vec![0.0f32; d.n * co * (od.h + 4) * (od.w + 4)];
            let g = random(od.len(), 20 + i as u64);
            for p in 0..d.n * co {
                for r in 0..od.h {
                    let at = (p * (od.h + 4) + r + 2) * (od.w + 4) + 2;
                    dz[at..at + od.w].copy_from_slice(&g[(p * od.h + r) * od.w..][..od.w]);
                }
            }
            let reference = weight_gradient_gemm(&x, d, &dz, co);
            assert_close(&weight_gradient(&x, d, &dz, co), &reference, 1e-4, "weight gradient");
            #[cfg(target_arch = "x86_64")]
            for isa in crate::direct_wgrad::supported() {
                let direct = weight_gradient_direct(isa, &x, d, &dz, co);
                assert_close(&direct, &reference, 1e-4, &format!("weight gradient (direct, {isa:?})"));
            }
        }
    }

    /// Finite-difference-free check: the gradients of `L = sum(g * y)` against the direct
    /// formulas evaluated with the naive convolution.
    #[test]
    fn gradients_match_direct_formulas() {
        for &(d, co, relu) in &[(Dims::new(2, 3, 9, 12), 4, true), (Dims::new(1, 5, 30, 17), 6, false)] {
            let x = random(d.len(), 4);
            let w = random(co * d.c * 9, 5);
            let b = random(co, 6);
            let y = forward(&x, d, &w, co, Some(&b), relu);
            let od = output_dims(d, co);
            let g = random(od.len(), 7);
            let gr = backward(&x, d, &w, co, relu.then_some(&y[..]), &g, true);
            let dz: Vec<f32> = g.iter().zip(&y).map(|(&g, &v)| if !relu || v > 0.0 { g } else { 0.0 }).collect();
            // Direct sums.
            let mut dw = vec![0f64; w.len()];
            let mut dx = vec![0f64; x.len()];
            let mut db = vec![0f64; co];
            for n in 0..d.n {
                for o in 0..co {
                    for yy in 0..od.h {
                        for xx in 0..od.w {
                            let gv = dz[((n * co + o) * od.h + yy) * od.w + xx] as f64;
                            db[o] += gv;
                            for c in 0..d.c {
                                for ky in 0..3 {
                                    for kx in 0..3 {
                                        let xi = ((n * d.c + c) * d.h + yy + ky) * d.w + xx + kx;
                                        let wi = ((o * d.c + c) * 3 + ky) * 3 + kx;
                                        dw[wi] += gv * x[xi] as f64;
                                        dx[xi] += gv * w[wi] as f64;
                                    }
                                }
                            }
                        }
                    }
                }
            }
            assert_grads(&gr, &dx, &dw, Some(&db));
        }
    }
}
