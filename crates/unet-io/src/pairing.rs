//! Listing image folders and pairing images with labels by file stem. Stems are compared
//! as the file system's bytes (`OsStr::as_encoded_bytes`), so names that are not UTF-8 pair
//! exactly: `x\xff.png` pairs with `x\xff.tif`, never with `x\xfe.tif`, although both
//! print as `x\u{fffd}`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::error::{IoError, Result};
use crate::read::is_image_path;

/// An image file and its label file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePair {
    /// The stem for display (bytes that are not UTF-8 shown as U+FFFD); pairing used the
    /// raw bytes.
    pub stem: String,
    pub image: PathBuf,
    pub label: PathBuf,
}

/// A file's stem as the file system's bytes: the pairing key.
pub fn stem_key(path: &Path) -> Vec<u8> {
    path.file_stem().map(|s| s.as_encoded_bytes().to_vec()).unwrap_or_default()
}

fn stem_of(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The image files (.png, .tif, .tiff) of a folder, or the file itself, sorted by name.
/// Hidden files are skipped; an empty folder is an error.
pub fn list_images(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let rd = std::fs::read_dir(path).map_err(|error| IoError::Read { path: path.to_path_buf(), error })?;
    let mut files = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|error| IoError::Read { path: path.to_path_buf(), error })?;
        let p = entry.path();
        let hidden = p.file_name().map(OsStr::as_encoded_bytes).is_some_and(|n| n.starts_with(b"."));
        if p.is_file() && !hidden && is_image_path(&p) {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(IoError::EmptyDir { dir: path.to_path_buf() });
    }
    Ok(files)
}

fn by_stem(dir: &Path) -> Result<BTreeMap<Vec<u8>, PathBuf>> {
    let mut map = BTreeMap::new();
    for f in list_images(dir)? {
        if map.insert(stem_key(&f), f.clone()).is_some() {
            return Err(IoError::DuplicateStem { stem: stem_of(&f), path: f });
        }
    }
    Ok(map)
}

/// Pairs the files of two folders by stem (`a.png` with `a.tif`); a file without a partner
/// on either side is an error naming it.
pub fn pair_by_stem(images: &Path, labels: &Path) -> Result<Vec<ImagePair>> {
    let imgs = by_stem(images)?;
    let labs = by_stem(labels)?;
    for (key, path) in &labs {
        if !imgs.contains_key(key) {
            return Err(IoError::MissingPartner { path: path.clone(), stem: stem_of(path), dir: images.to_path_buf() });
        }
    }
    imgs.into_iter()
        .map(|(key, image)| match labs.get(&key) {
            Some(label) => Ok(ImagePair { stem: stem_of(&image), image, label: label.clone() }),
            None => Err(IoError::MissingPartner { stem: stem_of(&image), path: image, dir: labels.to_path_buf() }),
        })
        .collect()
}

impl ImagePair {
    /// Reads the image (all pages) and its label (all pages), checking that they have the
    /// same number of pages and the same size.
    pub fn load(
        &self,
        mode: crate::ColorMode,
        kind: crate::LabelKind,
    ) -> Result<(Vec<crate::Image>, Vec<crate::Label>)> {
        let images = crate::read_stack(&self.image, mode)?;
        let labels = crate::read_label_stack(&self.label, kind)?;
        if images.len() != labels.len() {
            return Err(IoError::Invalid {
                path: self.label.clone(),
                message: format!(
                    "has {} pages but its image {} has {}; give one label page per image page",
                    labels.len(),
                    self.image.display(),
                    images.len()
                ),
            });
        }
        for (i, l) in images.iter().zip(&labels) {
            if i.size() != l.size() {
                return Err(IoError::SizeMismatch {
                    image: self.image.clone(),
                    label: self.label.clone(),
                    image_size: i.size(),
                    label_size: l.size(),
                });
            }
        }
        Ok((images, labels))
    }
}
