//! Writes an untrained (He-initialised) model file, for benchmarks and smoke tests:
//!
//!     cargo run --release -p unet-nn --example init_model -- OUT.safetensors [WIDTH] [DEPTH] [SEED]

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(out) = args.get(1) else {
        eprintln!("usage: init_model OUT.safetensors [WIDTH] [DEPTH] [SEED]");
        std::process::exit(2);
    };
    let num = |i: usize, d: usize| args.get(i).map(|s| s.parse().expect("a number")).unwrap_or(d);
    let config = unet_nn::UNetConfig { width: num(2, 64), depth: num(3, 4), ..Default::default() };
    let model = config.init::<unet_nn::CpuBackend>(num(4, 0) as u64, &Default::default()).expect("valid config");
    unet_nn::ModelFile::from_model(&model, &config, unet_nn::Normalization::PerImage)
        .save(std::path::Path::new(out), true)
        .expect("writable");
    println!("{out}: width {}, depth {}, {} parameters", config.width, config.depth, config.parameter_count());
}
