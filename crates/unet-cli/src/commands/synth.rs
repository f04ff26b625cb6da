//! `unet synth`: synthetic images of touching cells with instance labels.

use std::path::Path;

use unet_io::BitDepth;
use unet_synth::{SynthParams, generate};

use crate::cli::SynthArgs;
use crate::usage::usage;

/// Writes `n` images and labels (`images/NNN.png`, `labels/NNN.png`, 16-bit instance ids)
/// into `out`; image `k` uses seed `seed + k`.
pub fn write_set(out: &Path, n: usize, params: &SynthParams, seed: u64, force: bool) -> anyhow::Result<usize> {
    let mut cells = 0;
    for k in 0..n {
        let s = generate(params, seed + k as u64);
        cells += s.cells;
        let depth = if params.bit_depth == 16 { BitDepth::U16 } else { BitDepth::U8 };
        unet_io::write_image(&out.join(format!("images/{k:03}.png")), &[s.image], depth, force)?;
        unet_io::write_labels(&out.join(format!("labels/{k:03}.png")), &[s.labels], force)?;
    }
    Ok(cells)
}

pub fn run(args: SynthArgs) -> anyhow::Result<()> {
    if args.bit_depth != 8 && args.bit_depth != 16 {
        return usage("--bit-depth must be 8 or 16");
    }
    let (h, w) = (args.size[0], args.size[1]);
    if h < 32 || w < 32 {
        return usage("--size must be at least 32 32");
    }
    let params = SynthParams { width: w, height: h, bit_depth: args.bit_depth, ..SynthParams::default() };
    let needed = unet_synth::bytes_needed(&params);
    if let Some(available) = unet_io::available_memory_bytes()
        && needed > u128::from(available)
    {
        anyhow::bail!(
            "{}: {w} x {h} images need about {} MiB of memory but {} MiB are available; choose a smaller --size",
            args.out.display(),
            needed >> 20,
            available >> 20
        );
    }
    let cells = write_set(&args.out, args.n, &params, args.seed, args.force)?;
    println!("{} image(s) with {cells} cells in {}", args.n, args.out.display());
    Ok(())
}
