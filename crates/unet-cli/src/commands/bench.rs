//! `unet bench`: medians of the forward pass (no gradient) and of a full training step
//! (forward with dropout, weighted softmax cross-entropy, backward, SGD momentum 0.99
//! update) on one tile, with the keys of `../shared/bench/torch_unet.py` so the two
//! compare directly. Timings are for comparisons in one run, never for tests.

use std::time::Instant;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::{Distribution, Tensor, TensorData};
use rand::SeedableRng;
use unet_nn::{Geometry, UNetConfig, UnetBackend};
use unet_train::loss::weighted_cross_entropy;
use unet_train::optim::{Optimizer, OptimizerKind};

use crate::cli::BenchArgs;
use crate::device::{DeviceJob, run_on};
use crate::usage::usage;

/// Forward GFLOP of the network on a square tile (multiply-adds x 2), as the reference
/// script counts them.
pub fn gflop_forward(config: &UNetConfig, tile: usize) -> f64 {
    let (mut macs, mut s, mut c) = (0f64, tile as f64, config.in_channels as f64);
    for level in 0..=config.depth {
        let co = config.channels(level) as f64;
        for _ in 0..2 {
            s -= 2.0;
            macs += s * s * co * c * 9.0;
            c = co;
        }
        if level < config.depth {
            s = (s / 2.0).floor();
        }
    }
    for level in (0..config.depth).rev() {
        let co = config.channels(level) as f64;
        s *= 2.0;
        macs += s * s * co * c;
        c = 2.0 * co;
        for _ in 0..2 {
            s -= 2.0;
            macs += s * s * co * c * 9.0;
            c = co;
        }
    }
    macs += s * s * config.classes as f64 * c;
    2.0 * macs / 1e9
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Peak resident memory of this process (MB), from /proc/self/status.
fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

struct BenchJob {
    args: BenchArgs,
    config: UNetConfig,
}

impl DeviceJob for BenchJob {
    type Output = serde_json::Value;

    fn run<B: UnetBackend>(self, device: B::Device) -> anyhow::Result<serde_json::Value> {
        let BenchJob { args, config } = self;
        let out = Geometry::of(&config).output(args.tile)?;
        let model = config.init::<Autodiff<B>>(0, &device)?;
        let x = Tensor::<B, 4>::random([1, 1, args.tile, args.tile], Distribution::Normal(0.0, 1.0), &device);
        let sync = |t: Tensor<B, 4>| {
            let _ = t.into_data();
        };
        let inference = model.valid();
        let mut forward = Vec::new();
        for i in 0..=args.repeat {
            let t = Instant::now();
            sync(inference.forward(x.clone()));
            if i > 0 {
                forward.push(t.elapsed().as_secs_f64());
            }
        }
        let forward_s = median(forward);
        let gflop = gflop_forward(&config, args.tile);
        let mut res = serde_json::json!({
            "framework": "unet (burn 0.21)",
            "device": args.device,
            "threads": rayon::current_num_threads(),
            "width": args.width,
            "depth": args.depth,
            "tile": args.tile,
            "out": [out, out],
            "gflop_forward": (gflop * 100.0).round() / 100.0,
            "forward_s": forward_s,
            "forward_gflops": (gflop / forward_s * 10.0).round() / 10.0,
        });
        if !args.skip_train {
            let n = out * out;
            let labels: Vec<f32> = (0..n).flat_map(|i| [(i % 2) as f32, 1.0 - (i % 2) as f32]).collect();
            let mut onehot = vec![0f32; 2 * n];
            for i in 0..n {
                onehot[i] = labels[2 * i];
                onehot[n + i] = labels[2 * i + 1];
            }
            let y = Tensor::<Autodiff<B>, 4>::from_data(TensorData::new(onehot, [1, 2, out, out]), &device);
            let w = Tensor::<Autodiff<B>, 4>::random([1, 1, out, out], Distribution::Uniform(0.5, 1.5), &device);
            let xa = Tensor::<Autodiff<B>, 4>::from_inner(x.clone());
            let mut opt = Optimizer::<Autodiff<B>>::new(OptimizerKind::Sgd, 0.99, 0.0);
            let mut model = model;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
            let mut steps = Vec::new();
            for i in 0..=args.repeat {
                let t = Instant::now();
                let loss = weighted_cross_entropy(model.forward_train(xa.clone(), &mut rng), y.clone(), w.clone());
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = opt.step(1e-4, model, grads);
                // Wait for the update to finish.
                let _ = model.head.weight.val().into_data();
                if i > 0 {
                    steps.push(t.elapsed().as_secs_f64());
                }
            }
            res["train_step_s"] = median(steps).into();
        }
        if let Some(mb) = peak_rss_mb() {
            res["peak_rss_mb"] = ((mb * 10.0).round() / 10.0).into();
        }
        Ok(res)
    }
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.repeat == 0 {
        return usage("--repeat must be at least 1");
    }
    let config = UNetConfig { width: args.width, depth: args.depth, ..UNetConfig::default() };
    if let Err(e) = config.validate() {
        return usage(e.to_string());
    }
    if let Err(e) = Geometry::of(&config).output(args.tile) {
        return usage(format!("{e} (--tile)"));
    }
    // The training step is the larger of the two timed; checked before anything is built.
    if let Err(e) = unet_train::check_tile_memory(&config, args.tile, unet_infer::available_memory_mb()) {
        return usage(format!("{e} (--tile)"));
    }
    let json = args.json;
    let device = args.device.clone();
    let res = run_on(&device, BenchJob { args, config })?;
    if json {
        println!("{res}");
    } else {
        println!(
            "width {} tile {}: forward {:.3} s ({} GFLOP/s){}, peak RSS {} MB",
            res["width"],
            res["tile"],
            res["forward_s"].as_f64().unwrap_or(0.0),
            res["forward_gflops"],
            res.get("train_step_s")
                .and_then(|v| v.as_f64())
                .map(|s| format!(", train step {s:.3} s"))
                .unwrap_or_default(),
            res["peak_rss_mb"]
        );
    }
    Ok(())
}
