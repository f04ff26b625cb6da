//! Memory estimates for choosing the tile size: what one forward pass of a tile needs on
//! the CPU backend (activations kept for the skip connections, the current layer's input
//! and output, and the im2col buffer of its convolution).

use unet_nn::{Padding, UNetConfig};

/// Estimated peak memory (MB) of a forward pass on `batch` tiles of `tile x tile`.
pub fn estimate_tile_memory_mb(config: &UNetConfig, tile: usize, batch: usize) -> f64 {
    let loss = if config.padding == Padding::Valid { 2 } else { 0 };
    let mut s = tile;
    let mut c = config.in_channels;
    let mut skips = 0usize;
    let mut peak = 0usize;
    let mut conv = |cin: usize, cout: usize, s_in: usize, skips: usize| -> usize {
        let s_out = s_in - loss;
        let need = skips + cin * s_in * s_in + cout * s_out * s_out + cin * 9 * s_out * s_out;
        peak = peak.max(need);
        s_out
    };
    let mut sizes = Vec::new();
    for level in 0..=config.depth {
        let co = config.channels(level);
        s = conv(c, co, s, skips);
        s = conv(co, co, s, skips);
        c = co;
        if level < config.depth {
            skips += c * s * s;
            sizes.push((c, s));
            s /= 2;
        }
    }
    for level in (0..config.depth).rev() {
        let co = config.channels(level);
        s *= 2;
        let (sc, ss) = sizes[level];
        skips -= sc * ss * ss;
        s = conv(2 * co, co, s, skips);
        s = conv(co, co, s, skips);
        c = co;
    }
    let _ = c;
    (peak * batch * 4) as f64 / 1e6
}

/// Memory available to this process (MiB): `MemAvailable`, lowered to the room left under
/// the process's cgroup memory limit ([`unet_io::available_memory_bytes`]), or 4096 where
/// the system does not say.
pub fn available_memory_mb() -> f64 {
    unet_io::available_memory_bytes().map_or(4096.0, |b| b as f64 / (1u64 << 20) as f64)
}
