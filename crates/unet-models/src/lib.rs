//! Trained models built into `unet`: each a model file embedded in the binary (the files
//! and their model cards live in `models/` at the repository root), found by name, so that
//! `unet predict --model isbi2012-em` works from a fresh build with no download.

#![forbid(unsafe_code)]

use std::path::Path;

use unet_nn::{ModelFile, Result};

/// A model shipped inside the binary.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinModel {
    /// The name users give instead of a file path.
    pub name: &'static str,
    /// One line: what it segments.
    pub summary: &'static str,
    /// The model card (Markdown): data, licence, recipe, command, validation scores.
    pub card: &'static str,
    /// The model file's bytes.
    pub bytes: &'static [u8],
}

impl BuiltinModel {
    /// The model file, checked as any file is ([`ModelFile::from_bytes`]).
    pub fn load(&self) -> Result<ModelFile> {
        ModelFile::from_bytes(self.bytes, Path::new(self.name))
    }
}

/// Every built-in model.
pub const MODELS: &[BuiltinModel] = &[BuiltinModel {
    name: "isbi2012-em",
    summary: "neuron membranes in serial-section TEM of the Drosophila larva VNC (ISBI 2012), 8-bit gray, \
              cells = class 1",
    card: include_str!("../../../models/isbi2012-em.md"),
    bytes: include_bytes!("../../../models/isbi2012-em.safetensors"),
}];

/// The built-in model called `name`.
pub fn find(name: &str) -> Option<&'static BuiltinModel> {
    MODELS.iter().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_model_loads_and_has_a_card() {
        for m in MODELS {
            let f = m.load().unwrap_or_else(|e| panic!("{}: {e}", m.name));
            assert_eq!(f.config.in_channels, 1, "{}", m.name);
            assert!(m.card.contains(m.name) && m.card.contains("Licence"), "{}: card", m.name);
            assert!(m.bytes.len() <= 32 << 20, "{}: {} bytes, more than 32 MB", m.name, m.bytes.len());
            assert!(find(m.name).is_some());
        }
        assert!(find("no-such-model").is_none());
    }
}
