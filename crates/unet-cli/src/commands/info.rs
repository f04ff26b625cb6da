//! `unet info`: what a network is (parameters, border, output size, valid tiles).

use anyhow::Context;
use unet_nn::{Geometry, Padding, UNetConfig};

use crate::cli::InfoArgs;
use crate::usage::usage;

/// The most input channels or classes `unet info` describes.
const MAX_CHANNELS: usize = 1 << 16;

pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let (config, normalization) = match &args.model {
        Some(path) => {
            let file = crate::commands::models::load_model(path).context("cannot describe the model")?;
            (file.config, Some(file.normalization))
        }
        None => {
            // Beyond these the parameter count does not fit a number (the widest layer
            // has width * 2^depth <= 65536 channels).
            for (flag, v) in [("--in-channels", args.in_channels), ("--classes", args.classes)] {
                if let Some(n) = v.filter(|&n| n > MAX_CHANNELS) {
                    return usage(format!("{flag} {n}: give at most {MAX_CHANNELS}"));
                }
            }
            let d = UNetConfig::default();
            let config = UNetConfig {
                depth: args.depth.unwrap_or(d.depth),
                width: args.width.unwrap_or(d.width),
                in_channels: args.in_channels.unwrap_or(d.in_channels),
                classes: args.classes.unwrap_or(d.classes),
                padding: match args.padding.as_deref() {
                    Some("same") => Padding::Same,
                    _ => Padding::Valid,
                },
                ..d
            };
            if let Err(e) = config.validate() {
                return usage(e.to_string());
            }
            (config, None)
        }
    };
    let geo = Geometry::of(&config);
    let output = match geo.output(args.tile) {
        Ok(o) => o,
        Err(e) => return usage(format!("{e} (--tile)")),
    };
    let step = geo.step();
    let near = geo.valid_sizes(args.tile.saturating_sub(3 * step), args.tile + 3 * step);
    if args.json {
        let v = serde_json::json!({
            "config": config,
            "normalization": normalization,
            "parameters": config.parameter_count(),
            "tile": args.tile,
            "output": output,
            "border": geo.border(args.tile)?,
            "min_tile": geo.min_input(),
            "tile_step": step,
            "valid_tiles_near": near,
        });
        println!("{v}");
        return Ok(());
    }
    println!(
        "U-Net: depth {}, width {}, {} input channel(s), {} classes, {} padding{}, dropout {}",
        config.depth,
        config.width,
        config.in_channels,
        config.classes,
        config.padding.name(),
        if config.batch_norm { ", batch norm" } else { "" },
        config.dropout
    );
    if let Some(n) = normalization {
        println!("input normalisation: {}", serde_json::to_string(&n)?);
    }
    println!("parameters: {}", group(config.parameter_count()));
    println!("tile {} -> output {} (border {} px per side)", args.tile, output, geo.border(args.tile)?);
    println!(
        "valid tiles: {} + {}k (smallest {}); near {}: {:?}",
        geo.min_input(),
        step,
        geo.min_input(),
        args.tile,
        near
    );
    Ok(())
}

/// 31030658 -> "31,030,658".
fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
