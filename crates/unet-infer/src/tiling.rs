//! Tile plans: where the tiles of an image go.
//!
//! Valid padding: output tiles of `step` pixels partition the image, `step` being the
//! tile's output size rounded down to a multiple of `2^depth`, so that every tile origin
//! lies on the same pooling grid (the key to tiling invariance); the input window is the
//! output tile plus the border on every side. An axis shorter than a tile's output gets
//! the smallest valid tile that covers it. Same padding: overlapping tiles (half-tile step)
//! blended with a Gaussian window.

use unet_nn::{Geometry, Padding};

use crate::error::{InferError, Result};

/// One tile: its input window (top-left, may lie outside the image) and the part of the
/// image its output is written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    pub in_y: isize,
    pub in_x: isize,
    pub out_y: usize,
    pub out_x: usize,
    pub out_h: usize,
    pub out_w: usize,
    /// Offset of the written part inside the network's output.
    pub skip_y: usize,
    pub skip_x: usize,
}

/// The tiles of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct TilePlan {
    /// Input tile size (height, width).
    pub tile_h: usize,
    pub tile_w: usize,
    /// Network output size for that tile.
    pub net_out_h: usize,
    pub net_out_w: usize,
    /// Blend overlapping outputs with a Gaussian window (same padding).
    pub blend: bool,
    pub tiles: Vec<Tile>,
}

/// Per-axis layout: input tile size, net output, and (input start, output start, written
/// length, skip inside output) per tile.
type Axis = (usize, usize, Vec<(isize, usize, usize, usize)>);

fn axis_valid(geo: &Geometry, tile: usize, n: usize) -> Result<Axis> {
    let g = geo.step();
    let b = geo.border_px() as isize;
    let o = geo.output(tile)?;
    let step = o / g * g;
    if o >= n || geo.input_for_output(n) <= tile {
        // One tile covers the axis: the smallest valid tile with output >= n.
        let t = geo.input_for_output(n);
        return Ok((t, geo.output(t)?, vec![(-b, 0, n, 0)]));
    }
    if step < g {
        return Err(InferError::Tile(format!(
            "tile {tile} is too small to tile an image (its output {o} px is below the {g}-px pooling grid); use at least {}",
            geo.input_for_output(g)
        )));
    }
    let tiles = (0..n).step_by(step).map(|y0| (y0 as isize - b, y0, step.min(n - y0), 0)).collect();
    Ok((tile, o, tiles))
}

fn axis_same(geo: &Geometry, tile: usize, n: usize) -> Axis {
    let g = geo.step();
    let pad = g;
    let t = tile.min((n + 2 * pad).div_ceil(g) * g);
    let step = (t / 2 / g * g).max(g);
    let mut tiles = Vec::new();
    let mut start = -(pad as isize);
    loop {
        // Written part: the tile's intersection with the image.
        let lo = start.max(0) as usize;
        let hi = ((start + t as isize).min(n as isize)).max(0) as usize;
        if hi > lo {
            tiles.push((start, lo, hi - lo, (lo as isize - start) as usize));
        }
        if start + t as isize >= (n + pad) as isize {
            break;
        }
        start += step as isize;
    }
    (t, t, tiles)
}

impl TilePlan {
    /// Plans the tiles of a `height x width` image for tiles of `tile` pixels.
    pub fn new(geo: &Geometry, tile: usize, height: usize, width: usize) -> Result<Self> {
        if !geo.is_valid(tile) {
            geo.output(tile)?;
        }
        let ((th, oh, ys), (tw, ow, xs), blend) = match geo.padding {
            Padding::Valid => (axis_valid(geo, tile, height)?, axis_valid(geo, tile, width)?, false),
            Padding::Same => (axis_same(geo, tile, height), axis_same(geo, tile, width), true),
        };
        let mut tiles = Vec::with_capacity(ys.len() * xs.len());
        for &(in_y, out_y, out_h, skip_y) in &ys {
            for &(in_x, out_x, out_w, skip_x) in &xs {
                tiles.push(Tile { in_y, in_x, out_y, out_x, out_h, out_w, skip_y, skip_x });
            }
        }
        Ok(TilePlan { tile_h: th, tile_w: tw, net_out_h: oh, net_out_w: ow, blend, tiles })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_tiles_partition_the_image_on_the_pooling_grid() {
        let geo = Geometry { depth: 4, padding: Padding::Valid };
        for (h, w, tile) in [(1, 1, 572), (7, 300, 204), (513, 777, 572), (1500, 1200, 252)] {
            let plan = TilePlan::new(&geo, tile, h, w).unwrap();
            let mut cover = vec![0u8; h * w];
            for t in &plan.tiles {
                assert!(t.out_y + t.out_h <= h && t.out_x + t.out_w <= w);
                // Output pixel (y, x) of the tile comes from input origin y - border.
                assert_eq!(t.in_y, t.out_y as isize - 92);
                if plan.tiles.len() > 1 {
                    assert_eq!(t.out_y % 16, 0);
                    assert_eq!(t.out_x % 16, 0);
                }
                assert!(t.skip_y + t.out_h <= plan.net_out_h && t.skip_x + t.out_w <= plan.net_out_w);
                for y in t.out_y..t.out_y + t.out_h {
                    for x in t.out_x..t.out_x + t.out_w {
                        cover[y * w + x] += 1;
                    }
                }
            }
            assert!(cover.iter().all(|&c| c == 1), "{h}x{w} tile {tile}: every pixel exactly once");
        }
        assert!(TilePlan::new(&geo, 188, 1000, 1000).is_err());
        assert!(TilePlan::new(&geo, 570, 100, 100).is_err());
    }

    #[test]
    fn same_padding_tiles_cover_with_overlap() {
        let geo = Geometry { depth: 3, padding: Padding::Same };
        let plan = TilePlan::new(&geo, 64, 100, 37).unwrap();
        let mut cover = vec![0u8; 100 * 37];
        for t in &plan.tiles {
            for y in t.out_y..t.out_y + t.out_h {
                for x in t.out_x..t.out_x + t.out_w {
                    cover[y * 37 + x] += 1;
                }
            }
        }
        assert!(cover.iter().all(|&c| c >= 1));
        assert!(plan.blend);
    }
}
