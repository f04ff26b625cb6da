//! The 3x3 valid convolution by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray
//! 2016): every 2x2 block of outputs (a *tile*) reads a 4x4 input patch `d`, and
//! `Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A` takes 16 multiplications per input/output channel
//! pair instead of 36, 2.25x fewer. Summed over input channels the products become 16
//! independent matrix products `M[xi] = U[xi] · V[xi]` (one per position `xi` of the 4x4
//! transformed tile), done by `gemm`; the transforms are additions only.
//!
//! Written here because no maintained Rust crate offers Winograd convolution on slices.
//! The transforms are vectorised along the tiles of a tile row: the input's even and odd
//! columns are split apart first, so tile `tx` reads columns `tx` and `tx + 1` of each.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::Dims;
use crate::chunks::{Bands, Scratch, SharedMut, accumulate_bands, buf, filled_through, for_each_band, with_scratch};
use crate::conv3x3::{output_dims, padded_dims};
use crate::matmul::{MatMul, Parallelism, View, ViewMut};

/// Positions of a transformed 4x4 tile.
const XI: usize = 16;

/// The weights `[co, ci, 3, 3]` transformed to `U[xi][o][c] = (G g[o][c] G^T)[xi]`, with
/// `G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]`.
pub(crate) fn transform_weights(weight: &[f32], co: usize, ci: usize) -> Vec<f32> {
    assert_eq!(weight.len(), co * ci * 9, "winograd: weight length");
    let mut u = vec![0.0f32; XI * co * ci];
    for o in 0..co {
        for c in 0..ci {
            let g = &weight[(o * ci + c) * 9..][..9];
            // G g: 4 rows of 3.
            let mut t = [[0.0f32; 3]; 4];
            for j in 0..3 {
                let (g0, g1, g2) = (g[j], g[3 + j], g[6 + j]);
                t[0][j] = g0;
                t[1][j] = 0.5 * (g0 + g1 + g2);
                t[2][j] = 0.5 * (g0 - g1 + g2);
                t[3][j] = g2;
            }
            // (G g) G^T: 4 x 4.
            for (i, r) in t.iter().enumerate() {
                let row = [r[0], 0.5 * (r[0] + r[1] + r[2]), 0.5 * (r[0] - r[1] + r[2]), r[2]];
                for (j, v) in row.into_iter().enumerate() {
                    u[((i * 4 + j) * co + o) * ci + c] = v;
                }
            }
        }
    }
    u
}

/// Whether F(2x2, 3x3) is the fastest way to convolve `d` to `co` channels. Measured per
/// layer against the direct and gemm paths (`cargo bench -p unet-kernels --bench kernels --
/// 16|64`): with 64 or more channels on both sides it was up to 2.4x faster at width 64
/// (forward sum 0.61 against 0.87 s) and 1.1-1.6x at width 16; on thinner layers the
/// transforms and the short products cost more than the saved multiplications (the
/// 16-channel 570x570 layer: 0.0074 against 0.0055 s), and where the image has fewer tiles
/// than half the output channels (the bottom of a width-64 net) the 16 transformed weight
/// matrices outweigh the activations (1.1-1.4x slower).
pub(crate) fn pays(d: Dims, co: usize) -> bool {
    let (ty, tx) = tiles(d);
    d.c >= 64 && co >= 64 && co <= 2 * ty * tx
}

/// Whether [`weight_gradient`] is the fastest way to the weight gradient: where the
/// forward pays, with more than 64 outputs (up to 64 the direct AVX-512 kernel was as
/// fast) and a transformed accumulator (`16 * ci * co` floats) within
/// `LARGE_ACCUMULATOR`; past it the products are memory-bound (the 1024 -> 512 layer of a
/// width-64 net: 0.105 against 0.077 s by gemm). Width-64 weight-gradient sum: 1.07 ->
/// 0.93-0.97 s (`cargo bench -p unet-kernels --bench kernels -- 64`).
pub(crate) fn pays_for_weight_gradient(d: Dims, co: usize) -> bool {
    pays(d, co) && co > 64 && XI * d.c * co <= crate::conv3x3::LARGE_ACCUMULATOR
}

/// Tiles per row and per column of the output of a valid 3x3 convolution of `d`.
fn tiles(d: Dims) -> (usize, usize) {
    ((d.h - 2).div_ceil(2), (d.w - 2).div_ceil(2))
}

/// `relu(conv3x3(x, weight) + bias)` (ReLU when `relu`) with `u` from
/// [`transform_weights`]; `x` is `d`. Returns `[d.n, co, d.h-2, d.w-2]`.
pub(crate) fn forward(x: &[f32], d: Dims, u: &[f32], co: usize, bias: Option<&[f32]>, relu: bool) -> Vec<f32> {
    assert!(d.h >= 3 && d.w >= 3, "winograd: input {}x{} is smaller than the kernel", d.h, d.w);
    assert_eq!(x.len(), d.len(), "winograd: input length");
    assert_eq!(u.len(), XI * co * d.c, "winograd: transformed weight length");
    let od = output_dims(d, co);
    let (ty, tx) = tiles(d);
    // A band of tile rows keeps its transformed input and products (16 * (ci + co) floats
    // per tile) within 1 MiB, but spans at least 256 tiles so the products stay efficient.
    let per_tile = XI * (d.c + co);
    let min_rows = 256usize.div_ceil(tx);
    let bands = Bands::within(d.n, ty, per_tile * tx, 1 << 18, min_rows);
    let threads = rayon::current_num_threads().max(1);
    let run = |dst: SharedMut| {
        let one = |i: usize, s: &mut Scratch, parallel: bool| {
            let (img, t0, t1) = bands.get(i);
            let t = (t1 - t0) * tx;
            let (v, m) = (buf(&mut s.a, XI * d.c * t), buf(&mut s.b, XI * co * t));
            band(x, d, u, co, bias, relu, img, t0, t1, v, m, dst, parallel);
        };
        if bands.count >= 2 * threads {
            // Many bands: one thread per band.
            for_each_band(&bands, |i, s| one(i, s, false));
        } else {
            // Few, large bands: each one's phases in parallel.
            with_scratch(|s| (0..bands.count).for_each(|i| one(i, s, true)));
        }
    };
    // SAFETY: the bands cover every tile row of every image; each writes both output rows
    // of its tile rows (one for an odd last row), whole, for every output channel.
    unsafe { filled_through(od.len(), run) }
}

/// Tile rows `t0..t1` of image `img`: input transform into `v` (`[16][ci][tiles]`), the 16
/// products into `m` (`[16][co][tiles]`), output transform into `dst`. With `parallel`,
/// each phase runs on all threads.
#[allow(clippy::too_many_arguments)]
fn band(
    x: &[f32],
    d: Dims,
    u: &[f32],
    co: usize,
    bias: Option<&[f32]>,
    relu: bool,
    img: usize,
    t0: usize,
    t1: usize,
    v: &mut [f32],
    m: &mut [f32],
    dst: SharedMut,
    parallel: bool,
) {
    let (_, tx) = tiles(d);
    let t = (t1 - t0) * tx;
    let ci = d.c;
    // 1. V[xi][c][tile] = (B^T d B)[xi], per input channel.
    transform_inputs(x, d, img, t0, t1, v, parallel);
    // 2. M[xi] (tile x o) = V[xi]^T (tile x c) · U[xi]^T (c x o).
    let mp = SharedMut(m.as_mut_ptr());
    let v: &[f32] = v;
    let product = |xi: usize| {
        // SAFETY: product xi alone writes M[xi]; V[xi] and U[xi] are in bounds.
        unsafe {
            MatMul {
                m: t,
                n: co,
                k: ci,
                dst: ViewMut::new(mp.ptr().add(xi * co * t), 1, t),
                accumulate: false,
                lhs: View::new(v, xi * ci * t, 1, t),
                rhs: View::new(u, xi * co * ci, 1, ci),
                par: Parallelism::None,
            }
            .run()
        }
    };
    phase(XI, parallel, product);
    // 3. Y = A^T M A per output channel, into the output rows of these tile rows.
    let m: &[f32] = m;
    let output = |o: usize| {
        let rows: [&[f32]; XI] = std::array::from_fn(|xi| &m[(xi * co + o) * t..][..t]);
        let b = bias.map_or(0.0, |b| b[o]);
        // SAFETY: (in transform_output's writes) channel o of image img, rows 2*t0..2*t1
        // (clipped to the output), written by this band alone.
        let plane = unsafe { dst.ptr().add((img * co + o) * output_dims(d, co).plane()) };
        transform_output(rows, d, t0, t1, b, relu, plane);
    };
    phase(co, parallel, output);
}

/// `v[xi][c][tile] = (B^T d B)[xi]` for every input channel `c` of image `img`, tile rows
/// `t0..t1`; on all threads when `parallel`.
fn transform_inputs(x: &[f32], d: Dims, img: usize, t0: usize, t1: usize, v: &mut [f32], parallel: bool) {
    let t = (t1 - t0) * tiles(d).1;
    per_channel(v, d.c, t, parallel, |c, rows| {
        transform_input(&x[(img * d.c + c) * d.plane()..][..d.plane()], d, t0, t1, rows)
    });
}

/// `f(c, rows)` for every channel `c` of a `[16][channels][t]` buffer, `rows[xi]` being
/// its `t` values at position `xi`; on all threads when `parallel`.
fn per_channel(
    buf: &mut [f32],
    channels: usize,
    t: usize,
    parallel: bool,
    f: impl Fn(usize, [&mut [f32]; XI]) + Sync + Send,
) {
    assert!(buf.len() >= XI * channels * t, "winograd: transform buffer length");
    let base = SharedMut(buf.as_mut_ptr());
    phase(channels, parallel, |c| {
        // SAFETY: channel c alone takes the rows [xi][c][..], which lie in `buf`.
        let rows = std::array::from_fn(|xi| unsafe {
            std::slice::from_raw_parts_mut(base.ptr().add((xi * channels + c) * t), t)
        });
        f(c, rows)
    });
}

/// `f(0..n)`, on all threads when `parallel`.
fn phase(n: usize, parallel: bool, f: impl Fn(usize) + Sync + Send) {
    if parallel {
        (0..n).into_par_iter().for_each(f);
    } else {
        (0..n).for_each(f);
    }
}

/// The weight gradient `dW[o][c] = sum over pixels of dz[o] * shifted x[c]` of the forward
/// pass, through the same transform: `Y = A^T [U ⊙ V] A` is linear in `U = G g G^T`, so
/// `dU[xi] = sum over tiles of (A dY A^T)[xi] * V[xi]` and `dW = G^T dU G`. `dz` is the
/// output gradient zero-padded by 2 (`[n, co, h + 2, w + 2]`), so the tiles past an odd
/// edge read zeros. 16 products `dU[xi] (c x o) += V[xi] (c x tile) · Z[xi] (tile x o)`
/// replace the 36 multiply-adds per pixel and channel pair of the direct formula.
pub(crate) fn weight_gradient(x: &[f32], d: Dims, dz: &[f32], co: usize) -> Vec<f32> {
    let ci = d.c;
    let pd = padded_dims(d, co);
    assert_eq!(x.len(), d.len(), "winograd weight gradient: input length");
    assert_eq!(dz.len(), pd.len(), "winograd weight gradient: padded gradient length");
    let (ty, tx) = tiles(d);
    // Bands of at least 1024 tiles, so the products' reductions are long.
    let bands = if XI * ci * co > crate::conv3x3::LARGE_ACCUMULATOR {
        Bands::single(d.n, ty)
    } else {
        Bands::within(d.n, ty, XI * (ci + co) * tx, 1 << 20, 1024usize.div_ceil(tx))
    };
    let du = accumulate_bands(&bands, XI * ci * co, |i, acc, s, par| {
        let parallel = !matches!(par, Parallelism::None);
        let (img, t0, t1) = bands.get(i);
        let t = (t1 - t0) * tx;
        let (v, z) = (buf(&mut s.a, XI * ci * t), buf(&mut s.b, XI * co * t));
        transform_inputs(x, d, img, t0, t1, v, parallel);
        per_channel(z, co, t, parallel, |o, rows| {
            transform_gradient(&dz[(img * co + o) * pd.plane()..][..pd.plane()], pd.w, tx, t0, t1, rows)
        });
        let (v, z): (&[f32], &[f32]) = (v, z);
        let ap = SharedMut(acc.as_mut_ptr());
        phase(XI, parallel, |xi| {
            // SAFETY: product xi alone writes dU[xi]; V[xi] and Z[xi] are in bounds.
            unsafe {
                MatMul {
                    m: ci,
                    n: co,
                    k: t,
                    dst: ViewMut::new(ap.ptr().add(xi * ci * co), 1, ci),
                    accumulate: true,
                    lhs: View::new(v, xi * ci * t, t, 1),
                    rhs: View::new(z, xi * co * t, 1, t),
                    par: Parallelism::None,
                }
                .run()
            }
        });
    });
    // dW[o][c] = G^T dU[.][c][o] G, G^T = [[1, 1/2, 1/2, 0], [0, 1/2, -1/2, 0], [0, 1/2, 1/2, 1]].
    const GT: [[f32; 4]; 3] = [[1.0, 0.5, 0.5, 0.0], [0.0, 0.5, -0.5, 0.0], [0.0, 0.5, 0.5, 1.0]];
    let mut dw = vec![0.0f32; co * ci * 9];
    dw.par_chunks_mut(ci * 9).enumerate().for_each(|(o, dwo)| {
        for c in 0..ci {
            let m: [f32; XI] = std::array::from_fn(|xi| du[(xi * co + o) * ci + c]);
            for ky in 0..3 {
                for kx in 0..3 {
                    let mut sum = 0.0;
                    for i in 0..4 {
                        for j in 0..4 {
                            sum += GT[ky][i] * m[i * 4 + j] * GT[kx][j];
                        }
                    }
                    dwo[c * 9 + ky * 3 + kx] = sum;
                }
            }
        }
    });
    dw
}

/// `rows[xi][(ty - t0) * tx + j]` = position `xi` of `A dY A^T` for the 2x2 output-gradient
/// tile `(ty, j)` of one channel, read from its plane zero-padded by 2 (`pw` wide), with
/// `A = [[1, 0], [1, 1], [1, -1], [0, -1]]`.
fn transform_gradient(plane: &[f32], pw: usize, tx: usize, t0: usize, t1: usize, mut rows: [&mut [f32]; XI]) {
    let mut eo = vec![0.0f32; 4 * tx];
    for ty in t0..t1 {
        // Output rows 2ty and 2ty + 1, from column 0: padded rows + 2, columns + 2.
        for (r, half) in eo.chunks_exact_mut(2 * tx).enumerate() {
            let src = &plane[(2 * ty + r + 2) * pw + 2..][..2 * tx];
            let (e, o) = half.split_at_mut(tx);
            for (k, pair) in src.chunks_exact(2).enumerate() {
                e[k] = pair[0];
                o[k] = pair[1];
            }
        }
        let (y00, rest) = eo.split_at(tx);
        let (y01, rest) = rest.split_at(tx);
        let (y10, y11) = rest.split_at(tx);
        let at = (ty - t0) * tx;
        for i in 0..4 {
            let [q0, q1, q2, q3] = &mut rows[4 * i..4 * i + 4] else { unreachable!("four rows") };
            let (q0, q1, q2, q3) =
                (&mut q0[at..at + tx], &mut q1[at..at + tx], &mut q2[at..at + tx], &mut q3[at..at + tx]);
            for j in 0..tx {
                // Row i of A y: (p, q); then [p, p + q, p - q, -q].
                let (p, q) = match i {
                    0 => (y00[j], y01[j]),
                    1 => (y00[j] + y10[j], y01[j] + y11[j]),
                    2 => (y00[j] - y10[j], y01[j] - y11[j]),
                    _ => (-y10[j], -y11[j]),
                };
                q0[j] = p;
                q1[j] = p + q;
                q2[j] = p - q;
                q3[j] = -q;
            }
        }
    }
}

/// `rows[xi][(ty - t0) * tx + j]` = position `xi` of `B^T d B` for the input patch of tile
/// `(ty, j)` of one channel's `plane`, with
/// `B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]`. Input past the
/// plane's edge (the last tile of an odd output size) reads as zero.
fn transform_input(plane: &[f32], d: Dims, t0: usize, t1: usize, mut rows: [&mut [f32]; XI]) {
    let (_, tx) = tiles(d);
    // Columns of the vertically transformed rows: 2 * (tx + 1) >= w, zero past w.
    let half = tx + 1;
    let zero = vec![0.0f32; d.w];
    let mut vt = vec![0.0f32; 4 * 2 * half];
    let mut eo = vec![0.0f32; 8 * half];
    for ty in t0..t1 {
        let r = |k: usize| {
            let y = 2 * ty + k;
            if y < d.h { &plane[y * d.w..][..d.w] } else { &zero[..] }
        };
        let (r0, r1, r2, r3) = (r(0), r(1), r(2), r(3));
        {
            let (v0, rest) = vt.split_at_mut(2 * half);
            let (v1, rest) = rest.split_at_mut(2 * half);
            let (v2, v3) = rest.split_at_mut(2 * half);
            for col in 0..d.w {
                let (a, b, c, e) = (r0[col], r1[col], r2[col], r3[col]);
                v0[col] = a - c;
                v1[col] = b + c;
                v2[col] = c - b;
                v3[col] = b - e;
            }
        }
        // Even and odd columns apart: tile j reads columns j and j + 1 of each.
        for i in 0..4 {
            let src = &vt[i * 2 * half..][..2 * half];
            let (e, o) = eo[2 * i * half..][..2 * half].split_at_mut(half);
            for (k, pair) in src.chunks_exact(2).enumerate() {
                e[k] = pair[0];
                o[k] = pair[1];
            }
        }
        let at = (ty - t0) * tx;
        for i in 0..4 {
            let (e, o) = eo[2 * i * half..][..2 * half].split_at(half);
            let [q0, q1, q2, q3] = &mut rows[4 * i..4 * i + 4] else { unreachable!("four rows") };
            let (q0, q1, q2, q3) =
                (&mut q0[at..at + tx], &mut q1[at..at + tx], &mut q2[at..at + tx], &mut q3[at..at + tx]);
            for j in 0..tx {
                q0[j] = e[j] - e[j + 1];
                q1[j] = o[j] + e[j + 1];
                q2[j] = e[j + 1] - o[j];
                q3[j] = o[j] - o[j + 1];
            }
        }
    }
}

/// One output channel's rows of tile rows `t0..t1`: `Y = A^T M A + bias` (then ReLU), with
/// `A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]`, written into `plane` (the channel's output
/// plane), dropping the outputs past an odd edge.
fn transform_output(rows: [&[f32]; XI], d: Dims, t0: usize, t1: usize, bias: f32, relu: bool, plane: *mut f32) {
    let (oh, ow) = (d.h - 2, d.w - 2);
    let (_, tx) = tiles(d);
    let floor = if relu { 0.0 } else { f32::NEG_INFINITY };
    let mut s = vec![0.0f32; 4 * tx];
    for ty in t0..t1 {
        let at = (ty - t0) * tx;
        for a in 0..2 {
            let y = 2 * ty + a;
            if y >= oh {
                break;
            }
            // s[col][j]: row a of A^T applied down column col of tile j's M.
            for col in 0..4 {
                let m = |r: usize| &rows[r * 4 + col][at..at + tx];
                let sc = &mut s[col * tx..][..tx];
                let (m0, m1, m2, m3) = (m(0), m(1), m(2), m(3));
                if a == 0 {
                    for j in 0..tx {
                        sc[j] = m0[j] + m1[j] + m2[j];
                    }
                } else {
                    for j in 0..tx {
                        sc[j] = m1[j] - m2[j] - m3[j];
                    }
                }
            }
            // SAFETY: row y of this channel's plane, written by this call alone (caller).
            let out = unsafe { std::slice::from_raw_parts_mut(plane.add(y * ow).cast::<MaybeUninit<f32>>(), ow) };
            let (s0, s1, s2, s3) = (&s[..tx], &s[tx..2 * tx], &s[2 * tx..3 * tx], &s[3 * tx..]);
            let pairs = ow / 2;
            for (j, pair) in out[..2 * pairs].chunks_exact_mut(2).enumerate() {
                pair[0].write((s0[j] + s1[j] + s2[j] + bias).max(floor));
                pair[1].write((s1[j] - s2[j] - s3[j] + bias).max(floor));
            }
            if ow % 2 == 1 {
                out[ow - 1].write((s0[pairs] + s1[pairs] + s2[pairs] + bias).max(floor));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naive::{assert_close, conv3x3_naive, random};

    #[test]
    fn matches_direct_convolution() {
        // Even and odd output sizes, single rows and columns of tiles, several images,
        // with and without ReLU and bias.
        for (i, &(d, co, relu)) in [
            (Dims::new(1, 1, 3, 3), 1, false),
            (Dims::new(1, 2, 4, 4), 3, true),
            (Dims::new(2, 3, 9, 12), 5, true),
            (Dims::new(1, 16, 40, 9), 7, false),
            (Dims::new(3, 2, 64, 70), 16, true),
            (Dims::new(1, 33, 11, 66), 8, true),
        ]
        .iter()
        .enumerate()
        {
            let x = random(d.len(), 40 + i as u64);
            let w = random(co * d.c * 9, 50 + i as u64);
            let b = random(co, 60 + i as u64);
            let y = forward(&x, d, &transform_weights(&w, co, d.c), co, Some(&b), relu);
            assert_close(&y, &conv3x3_naive(&x, d, &w, co, &b, relu), 1e-4, "winograd forward");
        }
    }

    /// Against the direct sums `dW[o][c][ky][kx] = sum dz[o][y][x] * x[c][y + ky][x + kx]`.
    #[test]
    fn weight_gradient_matches_direct_sums() {
        for (i, &(d, co)) in [
            (Dims::new(1, 1, 3, 3), 1),
            (Dims::new(2, 3, 9, 12), 5),
            (Dims::new(1, 4, 8, 7), 6),
            (Dims::new(2, 7, 21, 34), 3),
        ]
        .iter()
        .enumerate()
        {
            let (oh, ow) = (d.h - 2, d.w - 2);
            let x = random(d.len(), 70 + i as u64);
            let g = random(d.n * co * oh * ow, 80 + i as u64);
            let (ph, pw) = (oh + 4, ow + 4);
            let mut padded = vec![0.0f32; d.n * co * ph * pw];
            for p in 0..d.n * co {
                for r in 0..oh {
                    padded[(p * ph + r + 2) * pw + 2..][..ow].copy_from_slice(&g[(p * oh + r) * ow..][..ow]);
                }
            }
            let mut expect = vec![0.0f32; co * d.c * 9];
            for n in 0..d.n {
                for o in 0..co {
                    for c in 0..d.c {
                        for t in 0..9 {
                            let (ky, kx) = (t / 3, t % 3);
                            let mut s = 0.0f64;
                            for y in 0..oh {
                                for xx in 0..ow {
                                    s += g[((n * co + o) * oh + y) * ow + xx] as f64
                                        * x[((n * d.c + c) * d.h + y + ky) * d.w + xx + kx] as f64;
                                }
                            }
                            expect[(o * d.c + c) * 9 + t] += s as f32;
                        }
                    }
                }
            }
            assert_close(&weight_gradient(&x, d, &padded, co), &expect, 1e-4, "winograd weight gradient");
        }
    }
}
