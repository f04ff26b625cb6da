//! The 3x3 convolution's weight gradient as a direct AVX-512 kernel, for x86-64 CPUs that
//! have AVX-512F (checked at run time; others use the im2col + gemm path).
//!
//! Why hand-written: `dW = dY · col(X)^T` is a product with a tiny output (`co x 9ci`) and
//! an enormous reduction (every pixel). A general gemm packs both operands in reduction
//! blocks and re-reads/writes the small output per block, after an im2col that copies the
//! input nine times; on the network's thin layers (16-32 channels) that ran at about half
//! the forward pass's speed. Here the nine shifted input rows are read straight from the
//! image (unaligned loads), a block of 8 output channels x 3 taps keeps its 24 partial sums
//! in vector registers over a whole band of rows, and the sums are reduced to scalars once
//! per band: 11 loads per 24 fused multiply-adds and no copies at all.

use std::arch::x86_64::*;

/// Whether this CPU can run [`accumulate`].
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// One band of rows of one image, and where its data lives.
pub(crate) struct Band {
    /// Input channel 0 of the image; channel `c` row `y` starts at `x + c * x_plane + y * w`.
    pub x: *const f32,
    pub x_plane: usize,
    /// Input row length (output rows are `w - 2` long).
    pub w: usize,
    pub ci: usize,
    /// Output gradient, channel 0 of the image at output row 0, column 0; element
    /// `(o, r, j)` at `dz + o * dz_plane + r * dz_row + j`.
    pub dz: *const f32,
    pub dz_plane: usize,
    pub dz_row: usize,
    pub co: usize,
    /// Output rows `r0..r1`.
    pub r0: usize,
    pub r1: usize,
}

/// `acc[o][c*9 + ky*3 + kx] += sum over the band's output pixels (r, j) of
/// dz[o][r][j] * x[c][r + ky][j + kx]`.
///
/// # Safety
/// The CPU has AVX-512F ([`available`]); every element the band addresses lies in a live
/// allocation; `acc` holds `co * 9 * ci` floats.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn accumulate(b: &Band, acc: &mut [f32]) {
    let k = 9 * b.ci;
    assert!(acc.len() >= b.co * k && b.w >= 3 && b.r0 <= b.r1);
    let mut o = 0;
    // SAFETY (all calls): forwarded from the caller; `o + OB <= co`.
    unsafe {
        while o + 8 <= b.co {
            taps::<8>(b, o, acc);
            o += 8;
        }
        if o + 4 <= b.co {
            taps::<4>(b, o, acc);
            o += 4;
        }
        if o + 2 <= b.co {
            taps::<2>(b, o, acc);
            o += 2;
        }
        if o < b.co {
            taps::<1>(b, o, acc);
        }
    }
}

/// All `9 * ci` taps of output channels `o..o + OB`.
#[target_feature(enable = "avx512f")]
unsafe fn taps<const OB: usize>(b: &Band, o: usize, acc: &mut [f32]) {
    let k = 9 * b.ci;
    for c in 0..b.ci {
        for ky in 0..3 {
            // SAFETY: rows r0 + ky .. r1 + ky of channel c and rows r0..r1 of channels
            // o..o+OB are inside the caller's allocations.
            let sums = unsafe {
                row_taps::<OB>(
                    b.x.add(c * b.x_plane + (b.r0 + ky) * b.w),
                    b.w,
                    b.dz.add(o * b.dz_plane + b.r0 * b.dz_row),
                    b.dz_plane,
                    b.dz_row,
                    b.r1 - b.r0,
                )
            };
            for (i, s) in sums.iter().enumerate() {
                let base = (o + i) * k + c * 9 + ky * 3;
                acc[base..base + 3].iter_mut().zip(s).for_each(|(a, v)| *a += v);
            }
        }
    }
}

/// `[i][kx] = sum over rows r < rows, columns j < w - 2 of dz[i][r][j] * x[r][j + kx]`.
#[target_feature(enable = "avx512f")]
unsafe fn row_taps<const OB: usize>(
    x: *const f32,
    w: usize,
    dz: *const f32,
    dz_plane: usize,
    dz_row: usize,
    rows: usize,
) -> [[f32; 3]; OB] {
    let ow = w - 2;
    let mut s = [[_mm512_setzero_ps(); 3]; OB];
    let tail = ow % 16;
    let mask: __mmask16 = ((1u32 << tail) - 1) as u16;
    for r in 0..rows {
        // SAFETY: the loads stay within row r of x (index < w) and of dz (index < ow);
        // the tail's masked loads touch only lanes below `ow`.
        unsafe {
            let xr = x.add(r * w);
            let dr = dz.add(r * dz_row);
            let mut j = 0;
            while j + 16 <= ow {
                let x0 = _mm512_loadu_ps(xr.add(j));
                let x1 = _mm512_loadu_ps(xr.add(j + 1));
                let x2 = _mm512_loadu_ps(xr.add(j + 2));
                for (i, si) in s.iter_mut().enumerate() {
                    let g = _mm512_loadu_ps(dr.add(i * dz_plane + j));
                    si[0] = _mm512_fmadd_ps(g, x0, si[0]);
                    si[1] = _mm512_fmadd_ps(g, x1, si[1]);
                    si[2] = _mm512_fmadd_ps(g, x2, si[2]);
                }
                j += 16;
            }
            if tail > 0 {
                let x0 = _mm512_maskz_loadu_ps(mask, xr.add(j));
                let x1 = _mm512_maskz_loadu_ps(mask, xr.add(j + 1));
                let x2 = _mm512_maskz_loadu_ps(mask, xr.add(j + 2));
                for (i, si) in s.iter_mut().enumerate() {
                    let g = _mm512_maskz_loadu_ps(mask, dr.add(i * dz_plane + j));
                    si[0] = _mm512_fmadd_ps(g, x0, si[0]);
                    si[1] = _mm512_fmadd_ps(g, x1, si[1]);
                    si[2] = _mm512_fmadd_ps(g, x2, si[2]);
                }
            }
        }
    }
    s.map(|t| t.map(|v| _mm512_reduce_add_ps(v)))
}
