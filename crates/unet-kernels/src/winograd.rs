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
use crate::chunks::{Bands, SharedMut, buf, filled, for_each_band, with_scratch};
use crate::matmul::{Parallelism, View, matmul};

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
    let od = Dims::new(d.n, co, d.h - 2, d.w - 2);
    let (ty, tx) = tiles(d);
    // A band of tile rows keeps its transformed input and products (16 * (ci + co) floats
    // per tile) within 1 MiB, but spans at least 256 tiles so the products stay efficient.
    let per_tile = XI * (d.c + co);
    let min_rows = 256usize.div_ceil(tx);
    let bands = Bands::within(d.n, ty, per_tile * tx, 1 << 18, min_rows);
    let threads = rayon::current_num_threads().max(1);
    let run = |dst: SharedMut| {
        if bands.count >= 2 * threads {
            // Many bands: one thread per band.
            for_each_band(&bands, |i, s| {
                let (img, t0, t1) = bands.get(i);
                let t = (t1 - t0) * tx;
                let (v, m) = (buf(&mut s.a, XI * d.c * t), buf(&mut s.b, XI * co * t));
                band(x, d, u, co, bias, relu, img, t0, t1, v, m, dst, false);
            });
        } else {
            // Few, large bands: each one's phases in parallel.
            with_scratch(|s| {
                for i in 0..bands.count {
                    let (img, t0, t1) = bands.get(i);
                    let t = (t1 - t0) * tx;
                    let (v, m) = (buf(&mut s.a, XI * d.c * t), buf(&mut s.b, XI * co * t));
                    band(x, d, u, co, bias, relu, img, t0, t1, v, m, dst, true);
                }
            });
        }
    };
    // SAFETY: the bands cover every tile row of every image; each writes both output rows
    // of its tile rows (one for an odd last row), whole, for every output channel.
    unsafe { filled(od.len(), |out| run(SharedMut(out.as_mut_ptr().cast()))) }
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
    let vp = SharedMut(v.as_mut_ptr());
    let input = |c: usize| {
        let plane = &x[(img * ci + c) * d.plane()..][..d.plane()];
        // SAFETY: channel c alone writes V[.][c][..].
        let rows: [&mut [f32]; XI] =
            std::array::from_fn(|xi| unsafe { std::slice::from_raw_parts_mut(vp.ptr().add((xi * ci + c) * t), t) });
        transform_input(plane, d, t0, t1, rows);
    };
    if parallel {
        (0..ci).into_par_iter().for_each(input);
    } else {
        (0..ci).for_each(input);
    }
    // 2. M[xi] (tile x o) = V[xi]^T (tile x c) · U[xi]^T (c x o).
    let mp = SharedMut(m.as_mut_ptr());
    let v: &[f32] = v;
    let product = |xi: usize| {
        // SAFETY: product xi alone writes M[xi]; V[xi] and U[xi] are in bounds.
        unsafe {
            matmul(
                t,
                co,
                ci,
                mp.ptr().add(xi * co * t),
                1,
                t,
                false,
                View::new(v, xi * ci * t, 1, t),
                View::new(u, xi * co * ci, 1, ci),
                Parallelism::None,
            )
        }
    };
    if parallel {
        (0..XI).into_par_iter().for_each(product);
    } else {
        (0..XI).for_each(product);
    }
    // 3. Y = A^T M A per output channel, into the output rows of these tile rows.
    let m: &[f32] = m;
    let output = |o: usize| {
        let rows: [&[f32]; XI] = std::array::from_fn(|xi| &m[(xi * co + o) * t..][..t]);
        let b = bias.map_or(0.0, |b| b[o]);
        // SAFETY (in transform_output's writes): channel o of image img, rows 2*t0..2*t1
        // (clipped to the output), written by this band alone.
        let plane = unsafe { dst.ptr().add((img * co + o) * (d.h - 2) * (d.w - 2)) };
        transform_output(rows, d, t0, t1, b, relu, plane);
    };
    if parallel {
        (0..co).into_par_iter().for_each(output);
    } else {
        (0..co).for_each(output);
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
}
