//! Pyramid levels: the 2x2 reductions (mean for probabilities, mode for labels) and the
//! level-from-level builder, which walks the new level shard by shard so that memory stays
//! bounded by one output shard plus one strip of the level above, whatever the image size.
//!
//! Each level halves x and y, rounding up: output pixel `(oy, ox)` reduces the up-to-four input
//! pixels `(2oy, 2ox)`, `(2oy, 2ox+1)`, `(2oy+1, 2ox)`, `(2oy+1, 2ox+1)` that exist (the last
//! row or column of an odd-sized level has only two, the corner one). Channels and z planes are
//! kept.

use zarrs::array::{Array, ArraySubset, Element, ElementOwned};
use zarrs::filesystem::FilesystemStore;

use crate::error::{Result, ZarrError};

/// Reduces the up-to-four values of a 2x2 block, given in the order top-left, top-right,
/// bottom-left, bottom-right (missing ones left out).
pub(crate) type Reducer<T> = fn(&[T]) -> T;

/// Mean of `f32` values.
pub(crate) fn mean_f32(v: &[f32]) -> f32 {
    v.iter().sum::<f32>() / v.len() as f32
}

/// Mean of `u8` values, rounded half up.
pub(crate) fn mean_u8(v: &[u8]) -> u8 {
    let n = v.len() as u32;
    let sum: u32 = v.iter().map(|&x| u32::from(x)).sum();
    ((sum + n / 2) / n) as u8
}

/// The most frequent value; ties go to the one that comes first (top-left first).
pub(crate) fn mode<T: Copy + PartialEq>(v: &[T]) -> T {
    let mut best = v[0];
    let mut best_count = 0;
    for (i, &x) in v.iter().enumerate() {
        // Count each distinct value once, at its first occurrence.
        if v[..i].contains(&x) {
            continue;
        }
        let count = v[i..].iter().filter(|&&y| y == x).count();
        if count > best_count {
            best = x;
            best_count = count;
        }
    }
    best
}

/// Downsamples a `sh x sw` block into rows `row0..` of a `dw`-wide output (`dh` rows written):
/// `dst[(row0 + oy) * dw + ox] = reduce(block around (2oy, 2ox))`.
pub(crate) fn downsample<T: Copy>(
    src: &[T],
    sw: usize,
    sh: usize,
    dst: &mut [T],
    dw: usize,
    row0: usize,
    reduce: Reducer<T>,
) {
    let dh = sh.div_ceil(2);
    let mut vals: Vec<T> = Vec::with_capacity(4);
    for oy in 0..dh {
        let (y0, y1) = (2 * oy, (2 * oy + 1).min(sh - 1));
        for ox in 0..sw.div_ceil(2).min(dw) {
            let (x0, x1) = (2 * ox, (2 * ox + 1).min(sw - 1));
            vals.clear();
            vals.push(src[y0 * sw + x0]);
            if x1 != x0 {
                vals.push(src[y0 * sw + x1]);
            }
            if y1 != y0 {
                vals.push(src[y1 * sw + x0]);
                if x1 != x0 {
                    vals.push(src[y1 * sw + x1]);
                }
            }
            dst[(row0 + oy) * dw + ox] = reduce(&vals);
        }
    }
}

/// Geometry shared by the arrays of one image: `[c, (z,) y, x]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub channels: usize,
    pub planes: usize,
    pub has_z: bool,
    pub shard: usize,
    pub chunk: usize,
}

impl Geometry {
    /// The subset of channels `0..channels`, plane `plane`, rows `y0..y1`, columns `x0..x1`.
    pub fn subset(&self, plane: usize, y0: usize, y1: usize, x0: usize, x1: usize) -> ArraySubset {
        let c = 0..self.channels as u64;
        let y = y0 as u64..y1 as u64;
        let x = x0 as u64..x1 as u64;
        if self.has_z {
            ArraySubset::new_with_ranges(&[c, plane as u64..plane as u64 + 1, y, x])
        } else {
            ArraySubset::new_with_ranges(&[c, y, x])
        }
    }
}

/// One pyramid level: its array and its size.
pub(crate) struct Level<'a> {
    pub array: &'a Array<FilesystemStore>,
    pub width: usize,
    pub height: usize,
}

/// Builds level `dst` from level `src`, one output shard at a time: for each shard, strips of
/// `chunk` output rows are read from `src` (all channels), reduced, and the whole shard is
/// stored once. Both arrays have geometry `g`; `path` (of `dst`) is for messages.
pub(crate) fn build_level<T: Element + ElementOwned + Copy + Default>(
    src: Level<'_>,
    dst: Level<'_>,
    g: Geometry,
    reduce: Reducer<T>,
    path: &std::path::Path,
) -> Result<()> {
    let (sw, sh) = (src.width, src.height);
    let (dw, dh) = (dst.width, dst.height);
    let strip = g.chunk.max(1);
    for plane in 0..g.planes {
        for ys in (0..dh).step_by(g.shard) {
            for xs in (0..dw).step_by(g.shard) {
                let (bw, bh) = ((dw - xs).min(g.shard), (dh - ys).min(g.shard));
                let mut out = vec![T::default(); g.channels * bw * bh];
                // Source columns of this shard.
                let (sx0, sx1) = (2 * xs, (2 * (xs + bw)).min(sw));
                let src_w = sx1 - sx0;
                for r0 in (0..bh).step_by(strip) {
                    let r1 = (r0 + strip).min(bh);
                    let (sy0, sy1) = (2 * (ys + r0), (2 * (ys + r1)).min(sh));
                    let src_h = sy1 - sy0;
                    let block: Vec<T> = src
                        .array
                        .retrieve_array_subset(&g.subset(plane, sy0, sy1, sx0, sx1))
                        .map_err(|e| ZarrError::zarr(path, e))?;
                    if block.len() != g.channels * src_w * src_h {
                        return Err(ZarrError::bad_metadata(path, "a pyramid level read back with the wrong size"));
                    }
                    for c in 0..g.channels {
                        let s = &block[c * src_w * src_h..(c + 1) * src_w * src_h];
                        let d = &mut out[c * bw * bh..(c + 1) * bw * bh];
                        downsample(s, src_w, src_h, d, bw, r0, reduce);
                    }
                }
                dst.array
                    .store_array_subset(&g.subset(plane, ys, ys + bh, xs, xs + bw), out)
                    .map_err(|e| ZarrError::zarr(path, e))?;
            }
        }
    }
    Ok(())
}

/// Sizes of levels 0, 1, ...: halved (rounded up) until both fit in one `chunk`.
pub(crate) fn level_sizes(width: usize, height: usize, chunk: usize) -> Vec<(usize, usize)> {
    let mut sizes = vec![(width, height)];
    let (mut w, mut h) = (width, height);
    while (w > chunk || h > chunk) && (w > 1 || h > 1) {
        w = w.div_ceil(2);
        h = h.div_ceil(2);
        sizes.push((w, h));
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reducers() {
        assert_eq!(mean_f32(&[0.0, 1.0, 0.5, 0.5]), 0.5);
        assert_eq!(mean_f32(&[0.25]), 0.25);
        assert_eq!(mean_u8(&[0, 1]), 1); // 0.5 rounds up
        assert_eq!(mean_u8(&[10, 20, 30, 41]), 25); // 25.25
        assert_eq!(mean_u8(&[255, 255, 255, 254]), 255);
        assert_eq!(mode(&[3u64, 5, 5, 3]), 3); // tie: top-left wins
        assert_eq!(mode(&[3u64, 5, 5, 7]), 5);
        assert_eq!(mode(&[0u8, 1, 2, 3]), 0);
        assert_eq!(mode(&[9u8]), 9);
    }

    #[test]
    fn downsample_odd_sizes() {
        // 3x3 -> 2x2
        let src = [1.0f32, 3.0, 5.0, 3.0, 5.0, 7.0, 10.0, 20.0, 30.0];
        let mut dst = [0.0f32; 4];
        downsample(&src, 3, 3, &mut dst, 2, 0, mean_f32);
        assert_eq!(dst, [3.0, 6.0, 15.0, 30.0]);
    }

    #[test]
    fn level_sizes_stop_at_one_chunk() {
        assert_eq!(level_sizes(1000, 300, 256), vec![(1000, 300), (500, 150), (250, 75)]);
        assert_eq!(level_sizes(100, 100, 256), vec![(100, 100)]);
        assert_eq!(level_sizes(5, 1, 1), vec![(5, 1), (3, 1), (2, 1), (1, 1)]);
    }
}
