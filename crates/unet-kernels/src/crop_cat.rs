//! The expanding path's join: the centre crop of the skip map `[n, cs, H, W]` to the
//! up-convolution's size, then concatenation (skip first) with it `[n, cu, h, w]` into
//! `[n, cs + cu, h, w]`; and its gradient, split back (zero outside the crop window).

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::Dims;
use crate::chunks::{filled, write_all, write_zeros};

/// Top-left corner of the centred `h x w` window in an `H x W` map.
fn offset(skip: Dims, h: usize, w: usize) -> (usize, usize) {
    ((skip.h - h) / 2, (skip.w - w) / 2)
}

/// `cat([crop(skip), up], channels)`.
pub fn forward(skip: &[f32], sd: Dims, up: &[f32], ud: Dims) -> Vec<f32> {
    assert!(sd.n == ud.n && sd.h >= ud.h && sd.w >= ud.w, "crop_cat: skip {sd:?} cannot be cropped to {ud:?}");
    assert_eq!((skip.len(), up.len()), (sd.len(), ud.len()), "crop_cat: input lengths");
    let c = sd.c + ud.c;
    let plane = ud.plane();
    let (oy, ox) = offset(sd, ud.h, ud.w);
    if plane == 0 {
        return vec![0.0; ud.n * c * plane];
    }
    let fill = |out: &mut [MaybeUninit<f32>]| {
        out.par_chunks_mut(plane).enumerate().for_each(|(i, dst)| {
            let (img, ch) = (i / c, i % c);
            if ch < sd.c {
                let src = &skip[(img * sd.c + ch) * sd.plane()..][..sd.plane()];
                for (r, row) in dst.chunks_exact_mut(ud.w).enumerate() {
                    write_all(row, &src[(r + oy) * sd.w + ox..][..ud.w]);
                }
            } else {
                write_all(dst, &up[(img * ud.c + ch - sd.c) * plane..][..plane]);
            }
        })
    };
    // SAFETY: every output plane is written whole, from the skip's crop or from `up`.
    unsafe { filled(ud.n * c * plane, fill) }
}

/// Gradients `(d_skip, d_up)` of [`forward`] given `dy` (`[n, cs + cu, h, w]`).
pub fn backward(sd: Dims, ud: Dims, dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let c = sd.c + ud.c;
    let plane = ud.plane();
    assert_eq!(dy.len(), ud.n * c * plane, "crop_cat backward: gradient length");
    let (oy, ox) = offset(sd, ud.h, ud.w);
    if plane == 0 {
        return (vec![0.0; sd.len()], vec![0.0; ud.len()]);
    }
    let fill_skip = |dskip: &mut [MaybeUninit<f32>]| {
        dskip.par_chunks_mut(sd.plane()).enumerate().for_each(|(i, dst)| {
            let (img, ch) = (i / sd.c, i % sd.c);
            let src = &dy[(img * c + ch) * plane..][..plane];
            // Zero above the window, then each window row with the margins after it.
            write_zeros(&mut dst[..oy * sd.w + ox]);
            for (r, row) in src.chunks_exact(ud.w).enumerate() {
                let at = (r + oy) * sd.w + ox;
                write_all(&mut dst[at..at + ud.w], row);
                let next = if r + 1 < ud.h { at + sd.w } else { sd.plane() };
                write_zeros(&mut dst[at + ud.w..next]);
            }
        })
    };
    let fill_up = |dup: &mut [MaybeUninit<f32>]| {
        dup.par_chunks_mut(plane).enumerate().for_each(|(i, dst)| {
            let (img, ch) = (i / ud.c, i % ud.c);
            write_all(dst, &dy[(img * c + sd.c + ch) * plane..][..plane]);
        })
    };
    // SAFETY: every plane of both is written whole (see the comments above).
    let (dskip, dup) = unsafe { (filled(sd.len(), fill_skip), filled(ud.len(), fill_up)) };
    (dskip, dup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_the_centre_and_puts_the_skip_first() {
        // skip: 1 image, 1 channel, 4x4 of 0..16; up: 2 channels of 2x2.
        let sd = Dims::new(1, 1, 4, 4);
        let ud = Dims::new(1, 2, 2, 2);
        let skip: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let up = [100., 101., 102., 103., 200., 201., 202., 203.];
        let y = forward(&skip, sd, &up, ud);
        assert_eq!(y, [5., 6., 9., 10., 100., 101., 102., 103., 200., 201., 202., 203.]);
        let (ds, du) = backward(sd, ud, &y);
        let mut expect = vec![0.0; 16];
        for i in [5, 6, 9, 10] {
            expect[i] = i as f32;
        }
        assert_eq!(ds, expect);
        assert_eq!(du, up);
    }
}
