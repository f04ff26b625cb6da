//! Row-chunked, rayon-parallel drivers shared by the kernels: a chunk is a band of rows of
//! one image, sized so its column buffer stays in the L2 cache.

use std::cell::RefCell;
use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::matmul::Parallelism;

/// Floats a chunk's column buffer may hold (1 MiB).
const CHUNK_FLOATS: usize = 1 << 18;
/// Pixels a weight-gradient band should at least cover, so that reading and writing the
/// accumulator costs little next to the band's product.
pub(crate) const MIN_BAND_PIXELS: usize = 512;
/// Floats all weight-gradient accumulators together may hold (256 MiB).
const ACC_FLOATS: usize = 1 << 26;

/// A partition of `n` images of `rows` rows each into bands of at most `band` rows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bands {
    pub rows: usize,
    pub band: usize,
    per_image: usize,
    pub count: usize,
}

impl Bands {
    /// Bands for `rows` rows of `floats_per_row` column-buffer floats each, small enough for
    /// the cache and many enough to keep every thread busy.
    pub fn new(n: usize, rows: usize, floats_per_row: usize) -> Bands {
        Bands::at_least(n, rows, floats_per_row, 1)
    }

    /// As [`Bands::new`] with at least `min_rows` rows per band (a weight gradient's
    /// accumulator is read and written once per band, so bands must not be too thin).
    pub fn at_least(n: usize, rows: usize, floats_per_row: usize, min_rows: usize) -> Bands {
        Bands::within(n, rows, floats_per_row, CHUNK_FLOATS, min_rows)
    }

    /// As [`Bands::at_least`] for bands of at most `budget` floats (but `min_rows` rows).
    pub fn within(n: usize, rows: usize, floats_per_row: usize, budget: usize, min_rows: usize) -> Bands {
        let threads = rayon::current_num_threads().max(1);
        let by_cache = (budget / floats_per_row.max(1)).max(1);
        let by_balance = (rows * n).div_ceil(4 * threads).max(1);
        let band = by_cache.min(by_balance).max(min_rows).min(rows.max(1));
        let per_image = rows.div_ceil(band);
        Bands { rows, band, per_image, count: n * per_image }
    }

    /// One band per image.
    pub fn single(n: usize, rows: usize) -> Bands {
        Bands { rows, band: rows.max(1), per_image: 1, count: n }
    }

    /// `(image, first row, end row)` of band `i`.
    pub fn get(&self, i: usize) -> (usize, usize, usize) {
        let (img, b) = (i / self.per_image, i % self.per_image);
        let r0 = b * self.band;
        (img, r0, (r0 + self.band).min(self.rows))
    }
}

/// Per-thread scratch buffers, grown on demand and reused across bands.
#[derive(Default)]
pub(crate) struct Scratch {
    pub a: Vec<f32>,
    pub b: Vec<f32>,
}

/// `v[..n]`, growing `v` when needed (contents unspecified).
pub(crate) fn buf(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

/// A vector of `n` floats, every one of them written by `fill` into the uninitialised
/// buffer it is given. Outputs are activation-sized: `vec![0.0; n]` would write each of
/// them once more (measured 4-5% of a width-16 training step).
///
/// # Safety
/// `fill` writes all `n` elements.
pub(crate) unsafe fn filled(n: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    fill(&mut v.spare_capacity_mut()[..n]);
    // SAFETY: the caller's `fill` initialised the first n elements.
    unsafe { v.set_len(n) };
    v
}

/// [`filled`] for kernels that write their output through a raw pointer shared by bands.
///
/// # Safety
/// `fill` writes all `n` elements through the pointer it is given.
pub(crate) unsafe fn filled_through(n: usize, fill: impl FnOnce(SharedMut)) -> Vec<f32> {
    // SAFETY: forwarded from the caller.
    unsafe { filled(n, |out| fill(SharedMut(out.as_mut_ptr().cast()))) }
}

/// Writes `src` into `dst` (of equal length).
pub(crate) fn write_all(dst: &mut [MaybeUninit<f32>], src: &[f32]) {
    assert_eq!(dst.len(), src.len(), "write_all: lengths");
    dst.iter_mut().zip(src).for_each(|(d, &s)| {
        d.write(s);
    });
}

/// Writes zeros into `dst`.
pub(crate) fn write_zeros(dst: &mut [MaybeUninit<f32>]) {
    dst.iter_mut().for_each(|d| {
        d.write(0.0);
    });
}

/// A raw output pointer shared by bands that write disjoint elements.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut(pub *mut f32);
// SAFETY: the kernels write disjoint elements from different bands.
unsafe impl Send for SharedMut {}
// SAFETY: as for Send: no two bands touch one element.
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The pointer (a method, so closures capture the `Sync` wrapper, not the raw field).
    pub fn ptr(&self) -> *mut f32 {
        self.0
    }
}

thread_local! {
    /// Each thread's scratch buffers, kept between calls so that bands neither allocate nor
    /// page-fault.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch buffers (fresh ones if they are in use further up
/// this thread's stack, which rayon's work stealing can cause).
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// Runs `f(band, scratch)` for every band, in parallel.
pub(crate) fn for_each_band(bands: &Bands, f: impl Fn(usize, &mut Scratch) + Sync + Send) {
    (0..bands.count).into_par_iter().for_each(|i| with_scratch(|s| f(i, s)));
}

/// Sums `f(band, acc, scratch, parallelism)` over all bands into one `size`-float
/// accumulator: per-thread accumulators when they fit, else one accumulator and a
/// multi-threaded gemm inside `f`.
pub(crate) fn accumulate_bands(
    bands: &Bands,
    size: usize,
    f: impl Fn(usize, &mut [f32], &mut Scratch, Parallelism) + Sync + Send,
) -> Vec<f32> {
    let threads = rayon::current_num_threads().max(1);
    let groups = threads.min(bands.count).min((ACC_FLOATS / size.max(1)).max(1));
    if groups <= 1 {
        let par = if threads > 1 { Parallelism::Rayon(threads) } else { Parallelism::None };
        let mut acc = vec![0.0; size];
        with_scratch(|s| (0..bands.count).for_each(|i| f(i, &mut acc, s, par)));
        return acc;
    }
    let per = bands.count.div_ceil(groups);
    let parts: Vec<Vec<f32>> = (0..groups)
        .into_par_iter()
        .map(|g| {
            let mut acc = vec![0.0; size];
            with_scratch(|s| {
                (g * per..((g + 1) * per).min(bands.count)).for_each(|i| f(i, &mut acc, s, Parallelism::None))
            });
            acc
        })
        .collect();
    // Summed in group order, so the result does not depend on thread timing.
    let mut parts = parts.into_iter();
    let mut total = parts.next().unwrap_or_else(|| vec![0.0; size]);
    for p in parts {
        total.iter_mut().zip(&p).for_each(|(x, y)| *x += y);
    }
    total
}
