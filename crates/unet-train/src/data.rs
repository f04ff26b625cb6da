//! Loading a training set: pairs images with labels, turns labels into cells with
//! separation borders, measures the class balance over the whole set, computes the
//! weight maps and the normalisation statistics.

use std::path::Path;

use unet_io::{ColorMode, Grid, Image, Label, LabelKind};
use unet_nn::Normalization;

use crate::config::{LabelMode, NormMode};
use crate::error::{Result, TrainError};
use crate::sampling::TrainImage;
use crate::weights::{ClassCounts, WeightParams, instances, separate_touching, weight_map};

/// A labelled image as read: the image, and the cells after separation (instance ids,
/// touching cells split by one-pixel background lines).
#[derive(Debug, Clone)]
pub struct LabelledImage {
    /// The image's stem, with `[page]` for the pages of a stack.
    pub name: String,
    /// The image file.
    pub path: std::path::PathBuf,
    pub image: Image,
    pub cells: Label,
}

fn distinct_at_most_two(v: &[u32]) -> bool {
    let first_nonzero = v.iter().copied().find(|&x| x != 0);
    v.iter().all(|&x| x == 0 || Some(x) == first_nonzero)
}

/// The cells of a label image (read as instance ids) as the mode says: instance ids as
/// they are, or the 4-connected components of a binary mask, with touching cells split by
/// one-pixel separation borders. `path` names the file in errors.
pub fn label_cells(label: &Label, mode: LabelMode, path: &Path) -> Result<Label> {
    let is_instance = match mode {
        LabelMode::Instance => true,
        LabelMode::Binary => {
            if !distinct_at_most_two(&label.data) {
                return Err(TrainError::Data(format!(
                    "{}: has more than two values but --label-mode is binary; use instance",
                    path.display()
                )));
            }
            false
        }
        LabelMode::Auto => !distinct_at_most_two(&label.data),
    };
    Ok(separate_touching(&instances(label, is_instance)))
}

/// A labelled image from memory (say, numpy arrays or images made by a program): the
/// label read as the mode says, checked against the image's size. `name` names it in
/// messages.
pub fn labelled(name: &str, image: Image, label: &Label, mode: LabelMode) -> Result<LabelledImage> {
    if image.size() != label.size() {
        return Err(TrainError::Data(format!(
            "{name}: the image is {:?} but its label is {:?}; give a label of the image's size",
            image.size(),
            label.size()
        )));
    }
    let cells = label_cells(label, mode, Path::new(name))?;
    Ok(LabelledImage { name: name.to_string(), path: name.into(), image, cells })
}

/// Reads and pairs a folder of images with a folder of labels (all pages of stacks).
pub fn load_labelled(images: &Path, labels: &Path, mode: LabelMode) -> Result<Vec<LabelledImage>> {
    let mut out = Vec::new();
    for pair in unet_io::pair_by_stem(images, labels)? {
        let (imgs, labs) = pair.load(ColorMode::Gray, LabelKind::Instance)?;
        let multi = imgs.len() > 1;
        for (k, (image, label)) in imgs.into_iter().zip(labs).enumerate() {
            let cells = label_cells(&label, mode, &pair.label)?;
            let name = if multi { format!("{}[{k}]", pair.stem) } else { pair.stem.clone() };
            out.push(LabelledImage { name, path: pair.image.clone(), image, cells });
        }
    }
    if !out.iter().any(|l| l.cells.any_nonzero()) {
        return Err(TrainError::Data(format!(
            "{}: no label has any foreground (cells); annotate cells with non-zero values",
            labels.display()
        )));
    }
    Ok(out)
}

/// Network inputs beyond this magnitude mean that a few extreme samples dwarf the image's
/// intensity range (hot pixels, a saturated border, a wrong value range): training on them
/// would diverge, so such an image is refused up front.
pub const INPUT_LIMIT: f32 = 1000.0;

/// Weight maps, class balance and normalisation for a labelled set. Each image is stored in
/// its own intensity unit ([`unet_nn::intensity_unit`]) with the map from that unit to the
/// network input, which is the model's [`Normalization`] of the original samples.
pub fn prepare(
    set: &[LabelledImage],
    params: &WeightParams,
    norm: NormMode,
) -> Result<(Vec<TrainImage>, Normalization, Vec<f32>)> {
    let mut counts = ClassCounts::default();
    for l in set {
        counts.add(&l.cells.data.iter().map(|&c| u32::from(c != 0)).collect::<Vec<_>>());
    }
    let mut class_weight = counts.balance();
    class_weight.resize(2, 1.0);
    let normalization = match norm {
        NormMode::Percentile => Normalization::default(),
        NormMode::PerImage => Normalization::PerImage,
        NormMode::Fixed => {
            let (mut sum, mut sum2, mut n) = (0.0f64, 0.0f64, 0.0f64);
            for l in set {
                let s = l.image.kind.max_value() as f64;
                for &v in &l.image.data {
                    sum += v as f64 / s;
                    sum2 += (v as f64 / s).powi(2);
                    n += 1.0;
                }
            }
            let mean = sum / n;
            Normalization::Fixed { mean: mean as f32, std: (sum2 / n - mean * mean).max(1e-12).sqrt() as f32 }
        }
    };
    let mut images = Vec::with_capacity(set.len());
    for l in set {
        let mut data = Vec::with_capacity(l.image.data.len());
        let (mut gain, mut bias) = (Vec::new(), Vec::new());
        for c in 0..l.image.channels {
            let plane = l.image.plane(c);
            let unit = unet_nn::intensity_unit(plane);
            let input = normalization.affine(plane, l.image.kind.max_value());
            // x = offset + u / scale (u = 0 on a constant channel), so the input is
            // (offset - input.offset) * input.scale + u * input.scale / scale.
            let g = if unit.scale > 0.0 { input.scale / unit.scale } else { 0.0 };
            let b = input.map(unit.offset);
            let extreme = plane.iter().map(|&x| (unit.map(x) * g + b).abs()).fold(0f32, |m, v| m.max(v));
            if extreme.is_nan() || extreme > INPUT_LIMIT {
                return Err(TrainError::Data(format!(
                    "{} ('{}'): normalised, its values reach {extreme:.3e} (limit {INPUT_LIMIT}): a few extreme \
                     samples (hot pixels, a saturated border, a wrong value range) dwarf the image's intensity \
                     range; clip them, or leave this image out",
                    l.path.display(),
                    l.name
                )));
            }
            data.extend(plane.iter().map(|&x| unit.map(x)));
            gain.push(g);
            bias.push(b);
        }
        images.push(TrainImage {
            image: Grid::with_channels(l.image.width, l.image.height, l.image.channels, data),
            gain,
            bias,
            classes: l.cells.map(|&c| u32::from(c != 0)),
            weights: weight_map(&l.cells, &class_weight, params),
        });
    }
    Ok((images, normalization, class_weight))
}
