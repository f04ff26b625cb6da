//! Direct (loop) reference implementations and helpers for the kernel tests.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Asserts `|a - b| <= tol * max(1, max|b|)` elementwise.
pub fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: length");
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * scale, "{what}[{i}]: {x} vs {y}");
    }
}

pub fn conv3x3_naive(x: &[f32], d: crate::Dims, w: &[f32], co: usize, b: &[f32], relu: bool) -> Vec<f32> {
    let (ho, wo) = (d.h - 2, d.w - 2);
    let mut out = vec![0f32; d.n * co * ho * wo];
    for n in 0..d.n {
        for o in 0..co {
            for y in 0..ho {
                for xx in 0..wo {
                    let mut s = b[o] as f64;
                    for c in 0..d.c {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                s += (x[((n * d.c + c) * d.h + y + ky) * d.w + xx + kx]
                                    * w[((o * d.c + c) * 3 + ky) * 3 + kx]) as f64;
                            }
                        }
                    }
                    let s = s as f32;
                    out[((n * co + o) * ho + y) * wo + xx] = if relu { s.max(0.0) } else { s };
                }
            }
        }
    }
    out
}

/// Asserts the kernel's gradients equal the direct sums `dx`, `dw` and (when given) `db`.
pub fn assert_grads(gr: &crate::Grads, dx: &[f64], dw: &[f64], db: Option<&[f64]>) {
    let f = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<_>>();
    assert_close(gr.input.as_ref().expect("input gradient"), &f(dx), 1e-4, "input");
    assert_close(&gr.weight, &f(dw), 1e-4, "weight");
    if let Some(db) = db {
        assert_close(&gr.bias, &f(db), 1e-4, "bias");
    }
}

/// Asserts `y` equals the direct sums `expect`.
pub fn assert_values(y: &[f32], expect: &[f64]) {
    assert_close(y, &expect.iter().map(|&v| v as f32).collect::<Vec<_>>(), 1e-4, "forward");
}
