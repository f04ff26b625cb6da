//! The 3x3 convolution's forward product as a direct AVX-512 kernel, for x86-64 CPUs that
//! have AVX-512F (checked at run time; others use the im2col + gemm path).
//!
//! Why hand-written: on the network's thin layers (up to 64 input channels) the im2col
//! copy of nine shifted input rows per channel, and gemm's packing of that copy, cost as
//! much as the product itself. Here a block of 8 output channels x 48 pixels keeps its 24
//! vector sums in registers while the kernel walks the `9 * ci` taps, loading the shifted
//! input straight from the flat image (output computed at the input's row stride, as in
//! the im2col path) and broadcasting the weights from a small packed copy: 11 loads per 24
//! fused multiply-adds, no copies.

use std::arch::x86_64::*;

/// Output channels per block.
pub(crate) const BLOCK: usize = 8;
/// Pixels per block: three 16-lane vectors.
const PIXELS: usize = 48;

/// Whether this CPU can run [`band`].
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// The weights `[co, k]` as `co.div_ceil(8)` blocks of `[k][8]` (tap-major, 8 output
/// channels side by side), zero past `co`.
pub(crate) fn pack(weight: &[f32], co: usize, k: usize) -> Vec<f32> {
    let blocks = co.div_ceil(BLOCK);
    let mut out = vec![0.0f32; blocks * k * BLOCK];
    for o in 0..co {
        let (b, i) = (o / BLOCK, o % BLOCK);
        for (kk, &v) in weight[o * k..(o + 1) * k].iter().enumerate() {
            out[(b * k + kk) * BLOCK + i] = v;
        }
    }
    out
}

/// One band of flat output positions of one image.
pub(crate) struct Band {
    /// Input channel 0 at the band's first output row: flat position `p` of channel `c`,
    /// tap `(ky, kx)` reads `x + c * x_plane + p + ky * w + kx`.
    pub x: *const f32,
    pub x_plane: usize,
    pub w: usize,
    pub ci: usize,
    /// Flat output positions `0..len` (at the input's row stride) to compute.
    pub len: usize,
}

/// `tmp[i * tmp_row + p] = sum over c, ky, kx of wp[(c*9 + ky*3 + kx) * 8 + i] *
/// x[c][p + ky*w + kx]` for `i < 8`, `p < b.len`; `wp` is one block of [`pack`].
///
/// # Safety
/// The CPU has AVX-512F ([`available`]); every input element at flat positions below
/// `b.len + 2 * w + 2` of channels `0..ci` lies in a live allocation; `wp` holds
/// `9 * ci * 8` floats; `tmp` rows `0..8` hold `b.len` floats each at stride `tmp_row`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn band(b: &Band, wp: *const f32, tmp: *mut f32, tmp_row: usize) {
    let mut p = 0;
    while p < b.len {
        let n = (b.len - p).min(PIXELS);
        let mask = |v: usize| -> __mmask16 {
            let lanes = n.saturating_sub(16 * v).min(16);
            ((1u32 << lanes) - 1) as u16
        };
        let m = [mask(0), mask(1), mask(2)];
        let mut acc = [[_mm512_setzero_ps(); 3]; BLOCK];
        for c in 0..b.ci {
            // SAFETY: lanes past `n` are masked off (their addresses, formed with
            // `wrapping_add`, are never touched), so every load stays below flat position
            // `len + 2w + 2` of channel c; wp holds 9 taps x 8 floats per channel.
            unsafe {
                let xc = b.x.add(c * b.x_plane + p);
                let wc = wp.add(c * 9 * BLOCK);
                for ky in 0..3 {
                    for kx in 0..3 {
                        let xs = xc.add(ky * b.w + kx);
                        let v0 = _mm512_maskz_loadu_ps(m[0], xs);
                        let v1 = _mm512_maskz_loadu_ps(m[1], xs.wrapping_add(16));
                        let v2 = _mm512_maskz_loadu_ps(m[2], xs.wrapping_add(32));
                        let wt = wc.add((ky * 3 + kx) * BLOCK);
                        for (i, a) in acc.iter_mut().enumerate() {
                            let s = _mm512_set1_ps(*wt.add(i));
                            a[0] = _mm512_fmadd_ps(s, v0, a[0]);
                            a[1] = _mm512_fmadd_ps(s, v1, a[1]);
                            a[2] = _mm512_fmadd_ps(s, v2, a[2]);
                        }
                    }
                }
            }
        }
        for (i, a) in acc.iter().enumerate() {
            // SAFETY: masked stores write positions p..p+n of tmp row i.
            unsafe {
                let dst = tmp.add(i * tmp_row + p);
                _mm512_mask_storeu_ps(dst, m[0], a[0]);
                _mm512_mask_storeu_ps(dst.wrapping_add(16), m[1], a[1]);
                _mm512_mask_storeu_ps(dst.wrapping_add(32), m[2], a[2]);
            }
        }
        p += PIXELS;
    }
}
