//! Exact Euclidean distance transform (Felzenszwalb & Huttenlocher 2012): the lower
//! envelope of parabolas, one pass per axis. Written here because the weight maps need it
//! on small windows around each cell and instance splitting on whole masks, and the
//! algorithm is short; the image crates either
//! lack an exact EDT or bring a large dependency tree for it.

use unet_grid::Grid;

const INF: f64 = 1e20;

/// 1D squared distance transform of `f` (0 at sites, `INF` elsewhere) into `out`.
fn edt_1d(f: &[f64], out: &mut [f64], v: &mut [usize], z: &mut [f64]) {
    let n = f.len();
    let mut k = 0usize;
    v[0] = 0;
    z[0] = f64::NEG_INFINITY;
    z[1] = f64::INFINITY;
    let meet =
        |q: usize, p: usize| ((f[q] + (q * q) as f64) - (f[p] + (p * p) as f64)) / (2.0 * q as f64 - 2.0 * p as f64);
    for q in 1..n {
        let mut s = meet(q, v[k]);
        while s <= z[k] {
            k -= 1;
            s = meet(q, v[k]);
        }
        k += 1;
        v[k] = q;
        z[k] = s;
        z[k + 1] = f64::INFINITY;
    }
    k = 0;
    for (q, o) in out.iter_mut().enumerate().take(n) {
        while z[k + 1] < q as f64 {
            k += 1;
        }
        let p = v[k];
        *o = (q as f64 - p as f64).powi(2) + f[p];
    }
}

/// Euclidean distance from every pixel of a one-channel grid to the nearest `true` pixel
/// (`f64::INFINITY` when there is none).
pub fn euclidean_distance(sites: &Grid<bool>) -> Grid<f64> {
    let (w, h) = sites.size();
    let mut grid: Vec<f64> = sites.data.iter().map(|&s| if s { 0.0 } else { INF }).collect();
    let n = w.max(h);
    let (mut f, mut out, mut v, mut z) = (vec![0.0; n], vec![0.0; n], vec![0usize; n], vec![0.0; n + 1]);
    for x in 0..w {
        for y in 0..h {
            f[y] = grid[y * w + x];
        }
        edt_1d(&f[..h], &mut out[..h], &mut v, &mut z);
        for y in 0..h {
            grid[y * w + x] = out[y];
        }
    }
    for y in 0..h {
        f[..w].copy_from_slice(&grid[y * w..(y + 1) * w]);
        edt_1d(&f[..w], &mut out[..w], &mut v, &mut z);
        grid[y * w..(y + 1) * w].copy_from_slice(&out[..w]);
    }
    sites.with_plane(grid.into_iter().map(|d2| if d2 >= INF / 2.0 { f64::INFINITY } else { d2.sqrt() }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_brute_force() {
        let (w, h) = (13, 9);
        let sites: Vec<bool> = (0..w * h).map(|i| (i * 7 + i / 5) % 17 == 0).collect();
        let d = euclidean_distance(&Grid::new(w, h, sites.clone())).data;
        for y in 0..h {
            for x in 0..w {
                let mut best = f64::INFINITY;
                for (j, &s) in sites.iter().enumerate() {
                    if s {
                        let (sx, sy) = ((j % w) as f64, (j / w) as f64);
                        best = best.min(((x as f64 - sx).powi(2) + (y as f64 - sy).powi(2)).sqrt());
                    }
                }
                assert!((d[y * w + x] - best).abs() < 1e-9, "({x},{y}): {} vs {best}", d[y * w + x]);
            }
        }
        assert!(euclidean_distance(&Grid::new(2, 2, vec![false; 4])).data.iter().all(|v| v.is_infinite()));
    }
}
