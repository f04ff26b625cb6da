//! Times each kernel on the layer shapes of the paper's network (572 tile, batch 1):
//! `cargo bench -p unet-kernels --bench kernels [-- WIDTH]` (default width 16).
//! Per layer: forward, weight+bias gradient, and input gradient, medians of 5 runs.

use std::time::Instant;

use unet_kernels::{Dims, conv3x3, upconv2x2};

fn median(mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..5)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[2]
}

fn main() {
    let width: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(16);
    let fill = |n: usize| (0..n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect::<Vec<f32>>();
    let mut total = [0.0f64; 3];
    // Contracting path: two convs per level, sizes from 572.
    let mut size = 572;
    let mut cin = 1;
    let mut layers = Vec::new();
    for level in 0..5 {
        let c = width << level;
        layers.push((cin, c, size));
        layers.push((c, c, size - 2));
        size -= 4;
        cin = c;
        if level < 4 {
            size /= 2;
        }
    }
    for level in (0..4).rev() {
        let c = width << level;
        size *= 2;
        layers.push((2 * c, c, size));
        layers.push((c, c, size - 2));
        size -= 4;
    }
    println!("width {width}: layer (ci -> co @ size): forward / weight grad / input grad, seconds");
    for (ci, co, s) in layers {
        let d = Dims::new(1, ci, s, s);
        let x = fill(d.len());
        let w = fill(co * ci * 9);
        let od = conv3x3::output_dims(d, co);
        let g = fill(od.len());
        let f = median(|| drop(conv3x3::forward(&x, d, &w, co, None, true)));
        let wg = median(|| drop(conv3x3::backward(&x, d, &w, co, None, &g, false)));
        let all = median(|| drop(conv3x3::backward(&x, d, &w, co, None, &g, true)));
        total[0] += f;
        total[1] += wg;
        total[2] += all - wg;
        println!("conv3x3 {ci:5} -> {co:5} @ {s:4}: {f:.4} / {wg:.4} / {:.4}", all - wg);
    }
    let mut s = 28;
    for level in (0..4).rev() {
        let (ci, co) = (width << (level + 1), width << level);
        let d = Dims::new(1, ci, s, s);
        let x = fill(d.len());
        let w = fill(ci * co * 4);
        let g = fill(upconv2x2::output_dims(d, co).len());
        let f = median(|| drop(upconv2x2::forward(&x, d, &w, co, None)));
        let all = median(|| drop(upconv2x2::backward(&x, d, &w, co, &g, true)));
        total[0] += f;
        total[1] += all;
        println!("upconv  {ci:5} -> {co:5} @ {s:4}: {f:.4} / {all:.4} (both grads)");
        s = 2 * s - 4;
    }
    println!("total: forward {:.3} s, weight grads {:.3} s, input grads {:.3} s", total[0], total[1], total[2]);
}
