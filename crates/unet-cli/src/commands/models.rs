//! `unet models`: the trained models built into the binary, and `--model` resolution (a
//! file path, or the name of a built-in model).

use std::path::Path;

use anyhow::Context;
use unet_nn::ModelFile;

use crate::cli::ModelsArgs;

/// The model `arg` names: the file at that path, else the built-in model of that name.
pub fn load_model(arg: &Path) -> anyhow::Result<ModelFile> {
    if !arg.exists()
        && let Some(m) = arg.to_str().and_then(unet_models::find)
    {
        return m.load().with_context(|| format!("cannot load the built-in model '{}'", m.name));
    }
    if !arg.exists() {
        let names: Vec<&str> = unet_models::MODELS.iter().map(|m| m.name).collect();
        anyhow::bail!(
            "{}: no such file, and no built-in model of that name (built in: {}; `unet models` describes them)",
            arg.display(),
            names.join(", ")
        );
    }
    ModelFile::load(arg).with_context(|| "cannot load the model")
}

pub fn run(args: ModelsArgs) -> anyhow::Result<()> {
    match &args.card {
        Some(name) => match unet_models::find(name) {
            Some(m) => print!("{}", m.card),
            None => crate::usage::usage(format!("--card {name}: no built-in model of that name"))?,
        },
        None => {
            for m in unet_models::MODELS {
                let f = m.load()?;
                println!(
                    "{}  width {}, depth {}, {} MB: {}",
                    m.name,
                    f.config.width,
                    f.config.depth,
                    (m.bytes.len() as f64 / 1e6).round(),
                    m.summary
                );
            }
            println!("use: unet predict --model NAME ...; the model card: unet models --card NAME");
        }
    }
    Ok(())
}
